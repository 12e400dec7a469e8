package postgres_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/agentic-commerce/agentic-commerce-server/db"
	"github.com/agentic-commerce/agentic-commerce-server/internal/postgres"
)

// Issue 15, item 7: canceled sessions, finished order events and unused vault tokens
// were never deleted. One Purge deletes what the retention periods no longer keep, and
// nothing else.
func TestRetentionPurgeDeletesOnlyWhatIsPastItsPeriod(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t)
	ctx := context.Background()
	ids := func(query string) []string {
		t.Helper()
		rows, err := e.pool.Query(ctx, query)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			out = append(out, id)
		}
		slices.Sort(out)
		return out
	}

	// Sessions: canceled long ago (by the agent, by expiry), canceled recently, open and
	// untouched long ago (the expiry sweep's business, not the purge's), completed long
	// ago with its order.
	oldCanceled, oldExpired, newCanceled, oldOpen := e.readySession(), e.readySession(), e.readySession(), e.readySession()
	for _, id := range []string{oldCanceled, newCanceled} {
		if _, err := e.store.CancelSession(ctx, "", id, nil); err != nil {
			t.Fatal(err)
		}
	}
	e.exec(`UPDATE checkout_sessions SET state = 'canceled', cancel_reason = 'expired' WHERE id = $1`, oldExpired)
	done := e.mustOrder()
	e.exec(`UPDATE checkout_sessions SET created_at = now() - interval '40 days', updated_at = now() - interval '31 days'
		WHERE id = ANY($1)`, []string{oldCanceled, oldExpired, oldOpen, done.CheckoutSessionID})

	// Order events: the order's order_create (delivered long ago) and three more.
	e.exec(`UPDATE order_events SET status = 'delivered', delivered_at = now(), created_at = now() - interval '31 days'`)
	for _, ev := range []struct{ status, age string }{
		{"dead", "31 days"}, {"pending", "31 days"}, {"delivered", "1 day"},
	} {
		e.exec(`INSERT INTO order_events (order_id, type, payload, status, delivered_at, created_at)
			VALUES ($1, 'order_update', '{}', $2, CASE WHEN $2 = 'delivered' THEN now() END, now() - $3::interval)`,
			done.ID, ev.status, ev.age)
	}

	// Vault tokens: unused with a 2099 allowance created 8 days ago (stored before the
	// lifetime cap), unused and live, used long ago, expired 2 days ago.
	token := func(id, created, expires string, orderID *string) {
		t.Helper()
		var usedAt any
		if orderID != nil {
			usedAt = time.Now()
		}
		e.exec(`INSERT INTO vault_tokens (id, checkout_session_id, merchant_id, max_amount, currency, created_at, expires_at, used_at, order_id,
			card_brand, card_funding_type, card_last4, card_number_type, risk_signals)
			VALUES ($1, 'cs_x', 'merchant', 100, 'usd', now() - $2::interval, $3::timestamptz, $4, $5, 'visa', 'credit', '4242', 'fpan', '[]')`,
			id, created, expires, usedAt, orderID)
	}
	token("vt_forever_unused", "8 days", "2099-01-01T00:00:00Z", nil)
	token("vt_live", "1 hour", time.Now().Add(time.Hour).Format(time.RFC3339), nil)
	token("vt_used", "60 days", "2099-01-01T00:00:00Z", &done.ID)
	token("vt_expired", "3 days", time.Now().Add(-48*time.Hour).Format(time.RFC3339), nil)

	// Signatures: one past its window, one inside.
	e.exec(`INSERT INTO signature_replays (digest, expires_at) VALUES (sha256('old'), now() - interval '1 second'), (sha256('new'), now() + interval '5 minutes')`)

	p, err := postgres.NewSweeper(e.pool).Purge(ctx, postgres.Retention{
		CanceledSessions: 30 * 24 * time.Hour, OrderEvents: 30 * 24 * time.Hour,
		ExpiredTokenGrace: 24 * time.Hour, TokenLifetime: 7 * 24 * time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := (postgres.Purged{Sessions: 2, OrderEvents: 2, Tokens: 2, Signatures: 1}); p != want {
		t.Errorf("Purge = %+v, want %+v", p, want)
	}
	if got, want := ids(`SELECT id FROM checkout_sessions`), slices.Sorted(slices.Values([]string{newCanceled, oldOpen, done.CheckoutSessionID})); !slices.Equal(got, want) {
		t.Errorf("sessions left = %v, want %v", got, want)
	}
	if n := e.count(`SELECT count(*) FROM line_items WHERE checkout_session_id = ANY($1)`, []string{oldCanceled, oldExpired}); n != 0 {
		t.Errorf("line items of deleted sessions left: %d", n)
	}
	if got := ids(`SELECT status || ':' || (created_at > now() - interval '2 days')::text FROM order_events`); !slices.Equal(got, []string{"delivered:true", "pending:false"}) {
		t.Errorf("order events left = %v", got)
	}
	if got := ids(`SELECT id FROM vault_tokens`); !slices.Equal(got, []string{"vt_live", "vt_used"}) {
		t.Errorf("vault tokens left = %v", got)
	}
	if n := e.count(`SELECT count(*) FROM signature_replays WHERE expires_at > now()`); n != 1 || e.count(`SELECT count(*) FROM signature_replays`) != 1 {
		t.Errorf("signature_replays keeps the wrong rows")
	}
	// The order and its refunds are the merchant's books: never purged.
	if n := e.count(`SELECT count(*) FROM orders`); n != 1 {
		t.Errorf("orders = %d, want 1", n)
	}
	// A second pass finds nothing more.
	if p, err := postgres.NewSweeper(e.pool).Purge(ctx, postgres.Retention{
		CanceledSessions: 30 * 24 * time.Hour, OrderEvents: 30 * 24 * time.Hour,
		ExpiredTokenGrace: 24 * time.Hour, TokenLifetime: 7 * 24 * time.Hour,
	}); err != nil || p != (postgres.Purged{}) {
		t.Errorf("second Purge = %+v, %v", p, err)
	}
}

// The sweep of unused vault tokens past their allowance reads the unused tokens and no
// others (migration 00019). Used tokens stay with their orders for good; before, every
// sweep, on every instance, read all of them.
func TestExpiredTokenSweepDoesNotReadUsedTokens(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t)
	ctx := context.Background()
	const columns = `(id, checkout_session_id, merchant_id, max_amount, currency, expires_at, used_at, order_id,
		card_brand, card_funding_type, card_last4, card_number_type, risk_signals, created_at)`
	e.pastOrders(1000)
	e.exec(`INSERT INTO vault_tokens ` + columns + `
		SELECT 'vt_used' || g, 'cs_past' || g, 'merchant', 1000, 'usd', now() - interval '1 day',
			now() - interval '2 days', 'ord_past' || g, 'visa', 'credit', '4242', 'fpan', '[]', now() - interval '2 days'
		FROM generate_series(1, 1000) g`)
	// Five unused tokens: three expired beyond the grace, two still usable.
	e.exec(`INSERT INTO vault_tokens ` + columns + `
		SELECT 'vt_unused' || g, 'cs_past1', 'merchant', 1000, 'usd',
			CASE WHEN g <= 3 THEN now() - interval '2 hours' ELSE now() + interval '1 hour' END,
			NULL, NULL, 'visa', 'credit', '4242', 'fpan', '[]', now() - interval '3 hours'
		FROM generate_series(1, 5) g`)

	// Each check deletes the same three: its transaction is rolled back.
	check := func(t *testing.T, tx pgx.Tx) {
		var n int64
		var err error
		read := rowsRead(t, tx, "vault_tokens")(func() {
			n, err = db.New(tx).DeleteExpiredVaultTokens(ctx, db.DeleteExpiredVaultTokensParams{
				ExpiredBefore: time.Now().Add(-time.Hour), CreatedBefore: time.Now().Add(-24 * time.Hour),
			})
		})
		if err != nil || n != 3 {
			t.Fatalf("deleted %d tokens (%v), want the 3 expired", n, err)
		}
		// Five unused tokens, each counted once or twice by each scan that reads it.
		if read["vault_tokens"] > 40 {
			t.Errorf("the sweep read %d rows of vault_tokens (table and indexes), want at most 40: there are 5 unused tokens and 1000 used ones", read["vault_tokens"])
		}
	}
	// Before and after the table's statistics are gathered.
	t.Run("unanalyzed", func(t *testing.T) { check(t, e.plannedTx(t, "auto")) })
	e.exec(`ANALYZE vault_tokens`)
	e.underEachPlan(t, check)
}
