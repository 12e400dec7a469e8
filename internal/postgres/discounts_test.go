package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/agentic-commerce/agentic-commerce-server/db"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/postgres"
)

// discountSession creates a ready session of one tee for buyer email, using the
// discount extension with codes.
func (e *outboxEnv) discountSession(email string, codes ...string) string {
	e.t.Helper()
	v, err := e.store.CreateSession(context.Background(), "", checkout.Changes{
		Items: []checkout.ItemRequest{{ID: "item_123", Quantity: 1}},
		Buyer: &checkout.Buyer{FirstName: "Ada", LastName: "Lovelace", Email: email},
		FulfillmentAddress: &checkout.Address{Name: "Ada", LineOne: "1 Road", City: "San Francisco", State: "CA",
			Country: "US", PostalCode: "94131"},
		DiscountExtension: true, DiscountCodes: &codes,
	})
	if err != nil {
		e.t.Fatalf("create session: %v", err)
	}
	if v.Quote.Status != checkout.StatusReadyForPayment || len(v.Quote.Discounts.Applied) != len(codes) {
		e.t.Fatalf("session: status %s, discounts %+v", v.Quote.Status, v.Quote.Discounts)
	}
	return v.Session.ID
}

// oncePerBuyerDiscount creates a 10% discount under code that each buyer may use once.
func (e *outboxEnv) oncePerBuyerDiscount(code string) {
	e.t.Helper()
	one := 1
	if _, err := postgres.NewDiscounts(e.pool).Create(context.Background(), checkout.Discount{
		ID: strings.ToLower(code), Code: code, Title: code, PercentBps: 1000, PerBuyerLimit: &one, Stackable: true,
	}); err != nil {
		e.t.Fatal(err)
	}
}

// limitedDiscount creates discount "limited", $1 off under code, which limit orders
// may use in all.
func (e *outboxEnv) limitedDiscount(code string, limit int) {
	e.t.Helper()
	if _, err := postgres.NewDiscounts(e.pool).Create(context.Background(), checkout.Discount{
		ID: "limited", Code: code, Title: "$1 off", AmountOff: 100, Currency: "usd", UsageLimit: &limit, Stackable: true,
	}); err != nil {
		e.t.Fatal(err)
	}
}

// mustRedeemExactly fails unless limit of the concurrent completions whose errors are
// errs succeeded, each other was refused with a 409 naming the first code's usage
// limit, "limited" was redeemed limit times, and the refused sessions are still open.
func (e *outboxEnv) mustRedeemExactly(errs []error, limit int) {
	e.t.Helper()
	ok := 0
	for i, err := range errs {
		if err == nil {
			ok++
			continue
		}
		de, isDomain := checkout.AsError(err)
		if !isDomain || de.Kind != checkout.KindConflict || de.Code != "discount_code_usage_limit_reached" ||
			de.Field != checkout.At(checkout.FieldDiscountCodes).Index(0) {
			e.t.Errorf("completion %d: %v", i, err)
		}
	}
	if ok != limit {
		e.t.Errorf("%d completions succeeded, want %d", ok, limit)
	}
	if got := e.count(`SELECT count(*) FROM discount_redemptions WHERE discount_id = 'limited'`); got != limit {
		e.t.Errorf("%d redemptions, want %d", got, limit)
	}
	if got := e.count(`SELECT count(*) FROM checkout_sessions WHERE state = 'open'`); got != len(errs)-limit {
		e.t.Errorf("%d sessions still open, want %d", got, len(errs)-limit)
	}
}

// 200 concurrent completions of 200 sessions holding a code limited to 100 orders
// redeem it exactly 100 times: the other 100 are refused with a 409 naming the code's
// usage limit, charge nothing and leave their session open.
func TestDiscountUsageLimitUnderConcurrentCompletions(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t)
	ctx := context.Background()
	limit := 100
	e.limitedDiscount("LIMIT100", limit)
	const n = 200
	ids := make([]string, n)
	for i := range ids {
		ids[i] = e.discountSession(fmt.Sprintf("buyer%d@example.com", i), "limit100")
	}
	charged := e.gateway.Charges()
	errs := make([]error, n)
	totals := make([]int64, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range ids {
		wg.Go(func() {
			<-start
			v, err := e.store.CompleteSession(ctx, "", ids[i], checkout.Completion{Token: "tok_visa", Provider: "stripe"})
			errs[i] = err
			if err == nil {
				totals[i] = v.Order.Amount
			}
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		// 1500 + 500 shipping - 100, tax 7.25% on 1400: 102.
		if err == nil && totals[i] != 1500-100+500+102 {
			t.Errorf("order %d charged %d", i, totals[i])
		}
	}
	e.mustRedeemExactly(errs, limit)
	if got := e.gateway.Charges() - charged; got != limit {
		t.Errorf("%d charges, want %d", got, limit)
	}
	d, err := postgres.NewDiscounts(e.pool).Get(ctx, "limited")
	if err != nil || d.Redeemed != limit {
		t.Errorf("discount = %+v, %v", d, err)
	}
	// A completed session still shows the discount it was paid with, though the code is
	// used up now; an open one shows it rejected.
	for i, err := range errs {
		v, gerr := e.store.GetSession(ctx, "", ids[i])
		if gerr != nil {
			t.Fatal(gerr)
		}
		dq := v.Quote.Discounts
		if err == nil && (len(dq.Applied) != 1 || len(dq.Rejected) != 0) {
			t.Errorf("completed session %d: %+v", i, dq)
		}
		if err != nil && (len(dq.Applied) != 0 || len(dq.Rejected) != 1 || dq.Rejected[0].Reason != checkout.ReasonUsageLimitReached) {
			t.Errorf("refused session %d: %+v", i, dq)
		}
	}
}

// A per-buyer limit counts orders by email address, case-insensitively; the buyer's
// second session is refused at completion.
func TestDiscountPerBuyerLimit(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t)
	ctx := context.Background()
	e.oncePerBuyerDiscount("WELCOME")
	first := e.discountSession("ada@example.com", "WELCOME")
	second := e.discountSession("Ada@Example.com", "welcome")
	other := e.discountSession("bob@example.com", "WELCOME")
	for _, id := range []string{first, other} {
		if _, err := e.store.CompleteSession(ctx, "", id, checkout.Completion{Token: "tok_visa", Provider: "stripe"}); err != nil {
			t.Fatalf("complete %s: %v", id, err)
		}
	}
	_, err := e.store.CompleteSession(ctx, "", second, checkout.Completion{Token: "tok_visa", Provider: "stripe"})
	if de, ok := checkout.AsError(err); !ok || de.Code != "discount_code_usage_limit_reached" {
		t.Fatalf("second order of one buyer: %v", err)
	}
	v, err := e.store.GetSession(ctx, "", second)
	if err != nil || len(v.Quote.Discounts.Rejected) != 1 || v.Session.State != checkout.StateOpen {
		t.Fatalf("second session: %+v, %v", v.Quote.Discounts, err)
	}
	// Removing the code lets the buyer pay without it.
	if _, err := e.store.UpdateSession(ctx, "", second, checkout.Changes{DiscountCodes: &[]string{}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.CompleteSession(ctx, "", second, checkout.Completion{Token: "tok_visa", Provider: "stripe"}); err != nil {
		t.Fatalf("complete without the code: %v", err)
	}
}

// An update that sets the buyer of a session holding a discount with a per-buyer limit
// prices it with that buyer's redemptions. The discounts the session's view read were
// counted for no buyer; an update that sets the buyer reuses them only when no discount
// among them has a per-buyer limit (loadedParts.discountsServe).
func TestDiscountPerBuyerLimitWhenAnUpdateSetsTheBuyer(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t)
	ctx := context.Background()
	e.oncePerBuyerDiscount("WELCOME")
	first := e.discountSession("ada@example.com", "WELCOME")
	if _, err := e.store.CompleteSession(ctx, "", first, checkout.Completion{Token: "tok_visa", Provider: "stripe"}); err != nil {
		t.Fatal(err)
	}
	codes := []string{"WELCOME"}
	anonymous, err := e.store.CreateSession(ctx, "", checkout.Changes{
		Items:             []checkout.ItemRequest{{ID: "item_123", Quantity: 1}},
		DiscountExtension: true, DiscountCodes: &codes,
	})
	if err != nil || len(anonymous.Quote.Discounts.Applied) != 1 {
		t.Fatalf("a session without a buyer: %+v, %v", anonymous.Quote.Discounts, err)
	}
	v, err := e.store.UpdateSession(ctx, "", anonymous.Session.ID, checkout.Changes{
		Buyer: &checkout.Buyer{FirstName: "Ada", LastName: "Lovelace", Email: "ADA@example.com"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if dq := v.Quote.Discounts; len(dq.Applied) != 0 || len(dq.Rejected) != 1 || dq.Rejected[0].Reason != checkout.ReasonUsageLimitReached {
		t.Errorf("the code after the buyer who used it up was set: %+v", dq)
	}
}

// The three statements that read a session's discounts (GetSessionView, GetCatalogFor,
// ListSessionDiscounts) read as many rows with thousands of codes and hundreds of
// orders and attempts as with none: the discounts through their indexes, the
// redemptions only of a discount with a limit, no further than its limit, and the
// attempts from those still in flight. Before, each read scanned every
// discount and counted every redemption of the discounts that may apply, so that every
// request of every session grew slower with the merchant's codes and orders (1.2–1.8 s
// a view with 20,000 codes and 150,000 redemptions; docs/performance-history.md, "Seventh round").
// The rows read are PostgreSQL's own counts for the transaction (pg_stat_xact), and the
// counts the statements return must still tell pricing whether a limit is reached.
func TestReadingASessionsDiscountsDoesNotGrowWithCodesOrOrders(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t)
	// A merchant's single-use codes, and a code limited to 3 orders and 1 per buyer.
	e.exec(`INSERT INTO discounts (id, code, title, amount_off, currency, usage_limit)
		SELECT 'single' || g, 'SINGLE' || g, '$5 off', 500, 'usd', 1 FROM generate_series(1, 20000) g`)
	e.exec(`INSERT INTO discounts (id, code, title, percent_bps, usage_limit, per_buyer_limit)
		VALUES ('limited', 'LIMITED', '10% off', 1000, 3, 1)`)
	id := e.discountSession("ada@example.com", "single7", "limited")
	// An automatic discount without a limit, a promotion for the first 100,000 orders,
	// and 400 orders that used them and the limited code: more than its limit, as when a
	// limit is set on a discount already in use. Two are the buyer's.
	e.pastOrders(401)
	e.exec(`INSERT INTO discounts (id, title, percent_bps) VALUES ('auto', '5% off', 500)`)
	e.exec(`INSERT INTO discounts (id, title, percent_bps, usage_limit) VALUES ('promo', '5% off our first orders', 500, 100000)`)
	e.exec(`INSERT INTO discount_redemptions (discount_id, order_id, buyer_email, amount)
		SELECT d, 'ord_past' || g, CASE WHEN g <= 2 THEN 'ada@example.com' ELSE 'buyer' || g || '@example.com' END, 100
		FROM generate_series(1, 400) g, unnest(ARRAY['auto', 'limited', 'promo']) d`)
	// 400 PSP attempts with the limited code that failed, and one of the buyer's in
	// flight, which counts against both limits.
	e.exec(`INSERT INTO payment_attempts (id, checkout_session_id, owner, number, order_id, gateway, idempotency_key, token,
			amount, currency, plan, status, created_at, attempted_at, updated_at)
		SELECT 'pa_past' || g, 'cs_past' || g, '', 1, 'ord_attempt' || g, 'stripe', 'cs_past' || g, 'tok',
			1000, 'usd', '{}', CASE WHEN g = 1 THEN 'pending' ELSE 'failed' END, now(), now(), now()
		FROM generate_series(1, 401) g`)
	e.exec(`INSERT INTO payment_attempt_discounts (attempt_id, discount_id, buyer_email)
		SELECT 'pa_past' || g, 'limited', CASE WHEN g = 1 THEN 'ada@example.com' ELSE 'buyer' || g || '@example.com' END
		FROM generate_series(1, 401) g`)

	check := func(t *testing.T, tx pgx.Tx) {
		q := db.New(tx)
		measure := rowsRead(t, tx, "discounts", "discount_redemptions", "discount_redemption_counts", "payment_attempts", "payment_attempt_discounts")
		for _, c := range discountReads(q, id, "ada@example.com", "SINGLE7", "LIMITED") {
			var rows []db.ListSessionDiscountsRow
			var err error
			read := measure(func() { rows, err = c.run() })
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			// A row counts once or twice (its index entry and its heap tuple): the buyer's 2
			// redemptions of the limited code, the attempt in flight, the lookups of each
			// discount by code, id or automatic flag, stay well under 40. There are 20,003
			// discounts, 1,200 redemptions and 401 attempts. A limited discount's
			// redemptions are counted as they are written (discount_redemption_counts,
			// migration 00035): before, the promotion's 400 were read at every call.
			for table, n := range read {
				if n > 40 {
					t.Errorf("%s read %d rows of %s (table and indexes), want at most 40", c.name, n, table)
				}
			}
			got := map[string][2]int32{}
			for _, r := range rows {
				got[r.Discount.ID] = [2]int32{r.Redeemed, r.BuyerRedeemed}
			}
			// Counted up to the limit: enough for pricing, which compares them with it.
			want := map[string][2]int32{"auto": {0, 0}, "single7": {0, 0}, "limited": {4, 3}, "promo": {400, 0}}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s: discounts and their counts (redeemed, by the buyer) = %v, want %v", c.name, got, want)
			}
		}
	}
	// Before and after the tables' statistics are gathered.
	t.Run("unanalyzed", func(t *testing.T) { check(t, e.plannedTx(t, "auto")) })
	e.exec(`ANALYZE discounts, discount_redemptions, discount_redemption_counts, orders, checkout_sessions, payment_attempts, payment_attempt_discounts`)
	e.underEachPlan(t, check)
}

// discountRead is one of the three statements that read a session's discounts: run
// sends it and returns the discounts it read.
type discountRead struct {
	name string
	run  func() ([]db.ListSessionDiscountsRow, error)
}

// discountReads are the three statements that read the discounts of open session id
// for buyer (its email) and its codes (as stored): GetSessionView, GetCatalogFor (for
// a tee) and ListSessionDiscounts, on q.
func discountReads(q *db.Queries, id, buyer string, codes ...string) []discountRead {
	ctx := context.Background()
	return []discountRead{
		{"GetSessionView", func() ([]db.ListSessionDiscountsRow, error) {
			row, err := q.GetSessionView(ctx, db.GetSessionViewParams{Now: time.Now(), ID: id})
			return decodedDiscounts(row.Discounts, err)
		}},
		{"GetCatalogFor", func() ([]db.ListSessionDiscountsRow, error) {
			row, err := q.GetCatalogFor(ctx, db.GetCatalogForParams{
				VariantIds: []string{"item_123"}, CheckoutSessionID: id, BuyerEmail: buyer, Codes: codes,
			})
			return decodedDiscounts(row.Discounts, err)
		}},
		{"ListSessionDiscounts", func() ([]db.ListSessionDiscountsRow, error) {
			return q.ListSessionDiscounts(ctx, db.ListSessionDiscountsParams{
				CheckoutSessionID: id, BuyerEmail: buyer, Codes: codes,
			})
		}},
	}
}

// decodedDiscounts decodes the discounts column of a view.
func decodedDiscounts(column []byte, err error) ([]db.ListSessionDiscountsRow, error) {
	if err != nil {
		return nil, err
	}
	var rows []db.ListSessionDiscountsRow
	return rows, json.Unmarshal(column, &rows)
}

// The statements that read an open session's discounts do not look for its order: only
// a completion writes one, and it completes the session in the same transaction, so
// the discounts an order redeemed are read only for a session that is no longer open
// (migration 00033). Inlined, that part was a join whose nodes every view started, and
// which ran for every session. A completed session still shows the discount it was paid
// with (TestDiscountUsageLimitUnderConcurrentCompletions).
func TestAnOpenSessionsDiscountsDoNotLookForItsOrder(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t)
	ctx := context.Background()
	e.oncePerBuyerDiscount("ONCE")
	id := e.discountSession("ada@example.com", "ONCE")
	e.exec(`INSERT INTO discounts (id, title, percent_bps) VALUES ('auto', '5% off', 500)`)
	e.underEachPlan(t, func(t *testing.T, tx pgx.Tx) {
		q := db.New(tx)
		// Scans started on the index that finds a session's order, counted by
		// PostgreSQL for the transaction.
		scans := func() int64 {
			var n int64
			if err := tx.QueryRow(ctx,
				`SELECT pg_stat_get_xact_numscans('orders_checkout_session_id_key'::regclass)`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		for _, c := range discountReads(q, id, "ada@example.com", "ONCE") {
			before := scans()
			rows, err := c.run()
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if n := scans() - before; n != 0 {
				t.Errorf("%s looked for the open session's order %d times, want 0", c.name, n)
			}
			var got []string
			for _, r := range rows {
				got = append(got, fmt.Sprintf("%s used=%v", r.Discount.ID, r.UsedBySession))
			}
			if want := "[auto used=false once used=false]"; fmt.Sprint(got) != want {
				t.Errorf("%s: discounts %v, want %s", c.name, got, want)
			}
		}
	})
}

// 90 concurrent vault-token completions of sessions holding a code limited to 45 orders
// redeem it exactly 45 times, whether each starts from a view read ahead of its locks
// or from the view its instance kept: the counts are checked under the discount's lock
// (CheckDiscountUsageUnchanged), and a completion that finds the limit reached there
// runs again under the locks. The others are refused with a 409 naming the code's
// usage limit, use no token and leave their session open.
func TestDiscountUsageLimitUnderConcurrentVaultTokenCompletions(t *testing.T) {
	t.Parallel()
	for name, kept := range map[string]bool{"read ahead": false, "from kept views": true} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newCacheEnv(t) // its cache keeps 100 views and tokens: n fits
			ctx := context.Background()
			const n, limit = 90, 45
			e.limitedDiscount("LIMIT45", limit)
			store := e.other
			if kept {
				store = e.store
			}
			ids, tokens := make([]string, n), make([]string, n)
			for i := range ids {
				ids[i] = e.discountSession(fmt.Sprintf("buyer%d@example.com", i), "LIMIT45")
				tokens[i] = delegateVisa(t, e.vault, ids[i], time.Now().Add(time.Hour)).ID
			}
			errs := make([]error, n)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range ids {
				wg.Go(func() {
					<-start
					v, err := store.CompleteSession(ctx, "", ids[i], checkout.Completion{Token: tokens[i], Provider: "stripe"})
					if err == nil && v.Order.Amount != 1500-100+500+102 { // as TestDiscountUsageLimitUnderConcurrentCompletions
						err = fmt.Errorf("order of %d", v.Order.Amount)
					}
					errs[i] = err
				})
			}
			close(start)
			wg.Wait()
			e.mustRedeemExactly(errs, limit)
			if got := e.count(`SELECT count(*) FROM vault_tokens WHERE used_at IS NOT NULL`); got != limit {
				t.Errorf("%d tokens used, want %d", got, limit)
			}
			if st := e.cache.Stats(); kept && (st.Current == 0 || st.Current+st.OutOfDate+st.Passed != n) {
				t.Errorf("the kept views: %+v, want some current and one outcome a completion", st)
			}
		})
	}
}

// A discount with a usage limit has its redemptions counted as they are written and
// deleted (discount_redemption_counts, migration 00035), which the statements that
// price a session read in place of the redemptions. A limit set on a discount in use
// counts the redemptions it has; one removed drops the count; one set again counts
// afresh. The migration counts the redemptions already written.
func TestLimitedRedemptionsAreCountedAsWritten(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t)
	e.pastOrders(6)
	redeem := func(from, to int) {
		e.exec(`INSERT INTO discount_redemptions (discount_id, order_id, buyer_email, amount)
			SELECT 'promo', 'ord_past' || g, 'buyer@example.com', 100 FROM generate_series($1::int, $2::int) g`, from, to)
	}
	counted := func() int {
		t.Helper()
		return e.count(`SELECT coalesce((SELECT redeemed FROM discount_redemption_counts WHERE discount_id = 'promo'), -1)`)
	}
	mustCount := func(when string, want int) {
		t.Helper()
		if got := counted(); got != want {
			t.Errorf("%s: counted %d, want %d (-1: no count)", when, got, want)
		}
	}
	e.exec(`INSERT INTO discounts (id, title, percent_bps) VALUES ('promo', '5% off', 500)`)
	redeem(1, 2)
	mustCount("without a limit", -1)
	e.exec(`UPDATE discounts SET usage_limit = 100 WHERE id = 'promo'`)
	mustCount("a limit set on a discount in use", 2)
	redeem(3, 5)
	mustCount("three more redemptions", 5)
	e.exec(`DELETE FROM discount_redemptions WHERE order_id = 'ord_past1'`)
	mustCount("one deleted", 4)
	e.exec(`UPDATE discounts SET usage_limit = 3 WHERE id = 'promo'`)
	mustCount("the limit lowered", 4)
	e.exec(`UPDATE discounts SET usage_limit = NULL WHERE id = 'promo'`)
	mustCount("the limit removed", -1)
	redeem(6, 6)
	e.exec(`UPDATE discounts SET usage_limit = 10 WHERE id = 'promo'`)
	mustCount("the limit set again", 5)

	// What a view reads: the count, up to the limit.
	e.exec(`UPDATE discounts SET usage_limit = 4 WHERE id = 'promo'`)
	if got := e.count(`SELECT discount_redeemed('promo', 4, '')`); got != 4 {
		t.Errorf("discount_redeemed = %d, want the limit, 4", got)
	}

	// The migration counts what was written before it.
	m := e.migrator()
	if err := m.Down(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.exec(`DELETE FROM discount_redemptions WHERE order_id = 'ord_past6'`)
	if _, err := m.Up(context.Background()); err != nil {
		t.Fatal(err)
	}
	mustCount("migrated", 4)
}
