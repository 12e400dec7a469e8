package postgres_test

// Lock tests: another transaction holds a row that a completion or an update needs, and
// the test asks PostgreSQL (pg_stat_activity) which statement waits for it. Each test
// fails when the lock it is about is removed from its query: docs/testing.md, "Mutation
// check by hand".

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/agentic-commerce/agentic-commerce-server/db"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/payment"
	"github.com/agentic-commerce/agentic-commerce-server/internal/pgtest"
	"github.com/agentic-commerce/agentic-commerce-server/internal/postgres"
)

// lockWaitTimeout bounds how long a test waits for its statement to block: generous,
// since the machine may be loaded, and only spent when the lock is missing.
const lockWaitTimeout = 30 * time.Second

// vaultToken delegates a card for sessionID (allowance 1000.00 usd) and returns the token.
func (e *outboxEnv) vaultToken(sessionID string) string {
	e.t.Helper()
	v := postgres.NewVault(e.pool, payment.NewFingerprinter([]byte("locks-test-fingerprint-key-0123456789")))
	tok, err := v.Delegate(context.Background(), "", &payment.Delegation{
		Card: payment.Card{
			Type: "card", NumberType: "fpan", Number: "4242424242424242", ExpMonth: "12", ExpYear: "2040",
			CVC: "9871", FundingType: "credit", IIN: "424242", Last4: "4242", Metadata: map[string]string{},
		},
		Allowance: payment.Allowance{
			Reason: "one_time", MaxAmount: 100000, Currency: "usd", CheckoutSessionID: sessionID,
			MerchantID: "merchant", ExpiresAt: time.Now().Add(time.Hour),
		},
		RiskSignals: []payment.RiskSignal{{Type: "card_testing", Score: 10, Action: "authorized"}},
		Metadata:    map[string]string{},
	})
	if err != nil {
		e.t.Fatalf("delegate: %v", err)
	}
	return tok.ID
}

// inBackground runs fn in a goroutine and returns a channel that yields its error.
func inBackground(fn func() error) <-chan error {
	done := make(chan error, 1)
	go func() { done <- fn() }()
	return done
}

// mustStillWait fails the test when done has already yielded: the call must be blocked.
func mustStillWait(t *testing.T, done <-chan error, what string) {
	t.Helper()
	select {
	case err := <-done:
		t.Fatalf("%s returned (%v) while the row was locked", what, err)
	default:
	}
}

// mustCode fails the test unless err is a domain error with code.
func mustCode(t *testing.T, err error, code string) {
	t.Helper()
	if de, ok := checkout.AsError(err); !ok || de.Code != code {
		t.Errorf("error = %v, want %s", err, code)
	}
}

// TestCompleteWaitsForTheSessionLock: while another transaction cancels the session, a
// completion with a PSP token waits on its first statement, the session's FOR UPDATE,
// before anything is charged; once the cancel commits, it sees the canceled session and
// charges nothing. Without the lock it would charge on the stale open session (a real
// double charge when two completions race: both charge, one order survives).
func TestCompleteWaitsForTheSessionLock(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t)
	sid := e.readySession()
	holder := pgtest.HoldLocks(t, e.pool,
		`UPDATE checkout_sessions SET state = 'canceled', cancel_reason = 'agent' WHERE id = $1`, sid)

	done := inBackground(func() error {
		_, err := e.store.CompleteSession(context.Background(), "", sid, checkout.Completion{Token: "tok_visa", Provider: "stripe"})
		return err
	})
	mustWaitInRowLock(t, e, "checkout_sessions", "completion")
	if n := e.gateway.Attempts(); n != 0 {
		t.Errorf("%d charges were asked for while the session was locked, want 0", n)
	}
	mustStillWait(t, done, "CompleteSession")

	if err := holder.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	mustCode(t, <-done, "checkout_session_canceled")
	if n := e.gateway.ChargesFor(sid); n != 0 {
		t.Errorf("charges = %d, want 0", n)
	}
	if n := e.count(`SELECT count(*) FROM orders WHERE checkout_session_id = $1`, sid); n != 0 {
		t.Errorf("orders = %d, want 0", n)
	}
	if n := e.count(`SELECT count(*) FROM checkout_sessions WHERE id = $1 AND state = 'canceled'`, sid); n != 1 {
		t.Error("the session is no longer canceled")
	}
}

// TestUpdateWaitsForTheSessionLock: an update waits for a transaction holding the
// session and then applies to what it committed, so the cancel is not overwritten by a
// write based on the session as it was before.
func TestUpdateWaitsForTheSessionLock(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t)
	sid := e.readySession()
	holder := pgtest.HoldLocks(t, e.pool,
		`UPDATE checkout_sessions SET state = 'canceled', cancel_reason = 'agent' WHERE id = $1`, sid)

	done := inBackground(func() error {
		_, err := e.store.UpdateSession(context.Background(), "", sid, checkout.Changes{
			Buyer: &checkout.Buyer{FirstName: "Grace", LastName: "Hopper", Email: "grace@example.com"},
		})
		return err
	})
	mustWaitInRowLock(t, e, "checkout_sessions", "update")
	mustStillWait(t, done, "UpdateSession")

	if err := holder.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	mustCode(t, <-done, "checkout_session_canceled")
	if n := e.count(`SELECT count(*) FROM checkout_sessions WHERE id = $1 AND state = 'canceled' AND buyer->>'first_name' = 'Ada'`, sid); n != 1 {
		t.Error("the update overwrote the committed cancel")
	}
}

// TestCompleteWaitsForTheVaultTokenLock: a transaction deleting a completion's vault
// token (as the sweeper does with expired ones) makes the completion wait on the token's
// row and then refuse cleanly with payment_token_not_found. The completion reads ahead
// of its locks (completeReadAhead), so it waits in the token's use (ConsumeVaultToken),
// which raises when the token is gone; it then runs again under its locks, reads the
// token under FOR UPDATE and finds it deleted. Without that it would answer "vault token
// changed under its row lock", a 500 for the agent.
func TestCompleteWaitsForTheVaultTokenLock(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t)
	sid := e.readySession()
	tok := e.vaultToken(sid)
	holder := pgtest.HoldLocks(t, e.pool, `DELETE FROM vault_tokens WHERE id = $1`, tok)

	done := inBackground(func() error {
		_, err := e.store.CompleteSession(context.Background(), "", sid, checkout.Completion{Token: tok, Provider: "stripe"})
		return err
	})
	if q := pgtest.WaitForLockWait(t, e.pool, lockWaitTimeout); !strings.Contains(q, "UPDATE vault_tokens") && !strings.Contains(q, "FROM vault_tokens") {
		t.Errorf("the completion waits in %q, want the token's row", q)
	}
	mustStillWait(t, done, "CompleteSession")

	if err := holder.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	mustCode(t, <-done, payment.CodeTokenNotFound)
	if n := e.count(`SELECT count(*) FROM orders WHERE checkout_session_id = $1`, sid); n != 0 {
		t.Errorf("orders = %d, want 0", n)
	}

	// A rolled-back holder leaves the token as it was: the waiting completion pays.
	sid2 := e.readySession()
	tok2 := e.vaultToken(sid2)
	holder = pgtest.HoldLocks(t, e.pool, `SELECT 1 FROM vault_tokens WHERE id = $1 FOR UPDATE`, tok2)
	done = inBackground(func() error {
		_, err := e.store.CompleteSession(context.Background(), "", sid2, checkout.Completion{Token: tok2, Provider: "stripe"})
		return err
	})
	pgtest.WaitForLockWait(t, e.pool, lockWaitTimeout)
	mustStillWait(t, done, "CompleteSession")
	if err := holder.Rollback(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("complete after the rollback: %v", err)
	}
	if n := e.count(`SELECT count(*) FROM vault_tokens t JOIN orders o ON o.id = t.order_id WHERE t.id = $1 AND o.checkout_session_id = $2`, tok2, sid2); n != 1 {
		t.Error("the token did not pay the session's order")
	}
}

// TestVaultTokenPaysOnceWithoutItsRowLock tests the layers that make one token pay at
// most once even without the token's FOR UPDATE (see GetVaultTokenForUpdate): a token
// pays only the session it is bound to, whose row lock serialises its completions; the
// used_at IS NULL guard marks it used once; and a session has at most one order.
func TestVaultTokenPaysOnceWithoutItsRowLock(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t)
	ctx := context.Background()
	sid, other := e.readySession(), e.readySession()
	tok := e.vaultToken(sid)

	// Bound to sid: refused on another session, whose lock it therefore never shares.
	_, err := e.store.CompleteSession(ctx, "", other, checkout.Completion{Token: tok, Provider: "stripe"})
	mustCode(t, err, payment.CodeTokenSessionBinding)

	v, err := e.store.CompleteSession(ctx, "", sid, checkout.Completion{Token: tok, Provider: "stripe"})
	if err != nil {
		t.Fatalf("complete: %v", err)
	}
	q := db.New(e.pool)
	now := time.Now()
	// used_at IS NULL: a second mark changes nothing, even for another order.
	orderOfOther := e.mustOrder()
	n, err := q.MarkVaultTokenUsed(ctx, db.MarkVaultTokenUsedParams{ID: tok, UsedAt: &now, OrderID: &orderOfOther.ID})
	if err != nil || n != 0 {
		t.Errorf("marking a used token again: %d rows, %v; want 0 rows", n, err)
	}
	if got := e.count(`SELECT count(*) FROM vault_tokens WHERE id = $1 AND order_id = $2`, tok, v.Order.ID); got != 1 {
		t.Error("the token no longer points at its first order")
	}
	// One order per session: a second one is a unique violation.
	err = q.InsertOrder(ctx, db.InsertOrderParams{
		ID: "ord_second", CheckoutSessionID: sid, Status: "created", Amount: 1, Currency: "usd",
		PermalinkUrl: "https://shop.example/orders/ord_second", PaymentMethod: "vault_token", PaymentReference: tok, Now: now,
	})
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "23505" {
		t.Errorf("second order for one session: %v, want a unique violation", err)
	}
}

// mustWaitInRowLock waits until a backend of e's database waits for a lock, and checks
// that it waits in the SELECT … FOR UPDATE of table: what (the completion, the update)
// must be held there, not by a later statement.
func mustWaitInRowLock(t *testing.T, e *outboxEnv, table, what string) {
	t.Helper()
	q := pgtest.WaitForLockWait(t, e.pool, lockWaitTimeout)
	if strings.Contains(q, "FROM "+table) && strings.Contains(q, "FOR UPDATE") {
		return
	}
	// Through PgBouncer (TEST_PGBOUNCER=1, default_query_exec_mode=cache_describe), pgx
	// describes a pipeline's new statements in a round trip of their own, and the
	// waiting backend was once seen reporting the last statement so described, the
	// view read in the same pipeline after the lock, while its lock waited: only the
	// text differs, the wait is the same (the tests check what happens after it).
	if os.Getenv("TEST_PGBOUNCER") != "" && strings.Contains(q, "-- name: GetSessionView") {
		t.Logf("the %s waits with %q reported (PgBouncer: the pipeline's last described statement)", what, firstLine(q))
		return
	}
	t.Errorf("the %s waits in %q, want the SELECT … FOR UPDATE of %s", what, q, table)
}

// firstLine is the first line of s.
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// TestCompleteWaitsForTheDiscountLock: a completion whose session holds a
// usage-limited code waits for a transaction holding the discount, whether it read its
// view ahead of its locks or starts from one its instance kept, and counts the
// redemption that transaction commits: with the limit reached there, it is refused
// (usage limit reached) and redeems nothing. Without the discount's lock before the
// check of its counts (CheckDiscountUsageUnchanged), the check would count at a
// snapshot without that redemption, and the code would be redeemed past its limit. A
// holder that rolls back leaves the code to the waiting completion.
func TestCompleteWaitsForTheDiscountLock(t *testing.T) {
	t.Parallel()
	for name, kept := range map[string]bool{"read ahead": false, "from a kept view": true} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newCacheEnv(t)
			ctx := context.Background()
			limit := 1
			e.limitedDiscount("ONLYONE", limit)
			store := e.other
			if kept {
				store = e.store
			}
			complete := func(commit bool) error {
				t.Helper()
				sid := e.discountSession("ada@example.com", "ONLYONE")
				tok := delegateVisa(t, e.vault, sid, time.Now().Add(time.Hour)).ID
				// Another completion's redemption, the one that reaches the limit,
				// holding the discount's lock.
				holder := pgtest.HoldLocks(t, e.pool, `WITH locked AS (SELECT id FROM discounts WHERE id = 'limited' FOR UPDATE)
					INSERT INTO discount_redemptions (discount_id, order_id, buyer_email, amount)
					SELECT locked.id, $1, 'grace@example.com', 100 FROM locked`, e.mustOrder().ID)
				before := e.cache.Stats()
				done := inBackground(func() error {
					_, err := store.CompleteSession(ctx, "", sid, checkout.Completion{Token: tok, Provider: "stripe"})
					return err
				})
				defer func() {
					// A completion from the kept view finds it out of date when the
					// holder reached the limit, current when it rolled back.
					after, want := e.cache.Stats(), before
					if kept && commit {
						want.OutOfDate++
					} else if kept {
						want.Current++
					}
					if after != want {
						t.Errorf("kept views: %+v after the completion, want %+v", after, want)
					}
				}()
				if q := pgtest.WaitForLockWait(t, e.pool, lockWaitTimeout); !strings.Contains(q, "FROM discounts") {
					t.Errorf("the completion waits in %q, want the discount's row", q)
				}
				mustStillWait(t, done, "CompleteSession")
				end := holder.Rollback
				if commit {
					end = holder.Commit
				}
				if err := end(ctx); err != nil {
					t.Fatal(err)
				}
				return <-done
			}
			mustCode(t, complete(true), string(checkout.ReasonUsageLimitReached))
			if got := e.count(`SELECT count(*) FROM discount_redemptions WHERE discount_id = 'limited'`); got != limit {
				t.Errorf("%d redemptions of a code limited to %d", got, limit)
			}
			e.exec(`DELETE FROM discount_redemptions`)
			if err := complete(false); err != nil {
				t.Fatalf("complete after the holder rolled back: %v", err)
			}
			if got := e.count(`SELECT count(*) FROM discount_redemptions WHERE discount_id = 'limited'`); got != 1 {
				t.Errorf("%d redemptions after the holder rolled back, want the completion's", got)
			}
		})
	}
}

// TestCompleteDoesNotWaitForADiscountItDoesNotRedeem: a completion locks only the
// usage-limited discounts its quote redeems. Once a promotion is used up, the
// completions that no longer get it do not queue on its row: one completes while
// another transaction holds the discount, read ahead or from a kept view, and its
// check still finds the promotion used up. Until the forty-fifth round every completion
// to which such a discount could apply locked it, and waited here.
func TestCompleteDoesNotWaitForADiscountItDoesNotRedeem(t *testing.T) {
	t.Parallel()
	for name, kept := range map[string]bool{"read ahead": false, "from a kept view": true} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newCacheEnv(t)
			ctx := context.Background()
			e.exec(`INSERT INTO discounts (id, title, percent_bps, usage_limit) VALUES ('promo', '5% off our first order', 500, 1)`)
			first := e.readySession()
			if v, err := e.other.CompleteSession(ctx, "", first, checkout.Completion{Token: delegateVisa(t, e.vault, first, time.Now().Add(time.Hour)).ID, Provider: "stripe"}); err != nil || len(v.Quote.Discounts.Applied) != 1 {
				t.Fatalf("the order that uses the promotion up: %v", err)
			}
			store := e.other
			if kept {
				store = e.store
			}
			sid := e.readySession()
			tok := delegateVisa(t, e.vault, sid, time.Now().Add(time.Hour)).ID
			holder := pgtest.HoldLocks(t, e.pool, `SELECT 1 FROM discounts WHERE id = 'promo' FOR UPDATE`)
			bounded, cancel := context.WithTimeout(ctx, lockWaitTimeout)
			defer cancel()
			v, err := store.CompleteSession(bounded, "", sid, checkout.Completion{Token: tok, Provider: "stripe"})
			if err != nil || v.Order == nil || len(v.Quote.Discounts.Applied) != 0 {
				t.Fatalf("a completion without the used-up promotion, while it is held: %v", err)
			}
			if err := holder.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
			if got := e.count(`SELECT count(*) FROM discount_redemptions WHERE discount_id = 'promo'`); got != 1 {
				t.Errorf("%d redemptions of a promotion limited to 1", got)
			}
		})
	}
}
