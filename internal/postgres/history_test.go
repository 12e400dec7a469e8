package postgres_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/agentic-commerce/agentic-commerce-server/db"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/pgtest"
)

// rowsRead returns a function that runs op and reports, for each of tables, the rows
// op read from the table and its indexes in tx's transaction: PostgreSQL's counts of
// the rows its scans returned and fetched (pg_stat_xact; a row read through an index
// counts twice, its entry and its heap tuple). A test holds a statement to the rows it
// reads, so that its cost cannot grow with a table without the test seeing it.
func rowsRead(t *testing.T, tx pgx.Tx, tables ...string) func(op func()) map[string]int64 {
	t.Helper()
	counts := func() map[string]int64 {
		t.Helper()
		rows, err := tx.Query(context.Background(), `SELECT i.tbl::text, sum(pg_stat_get_xact_tuples_returned(i.rel)
				+ pg_stat_get_xact_tuples_fetched(i.rel))::bigint
			FROM (SELECT t AS tbl, t AS rel FROM unnest($1::regclass[]) t
				UNION ALL SELECT x.indrelid, x.indexrelid FROM pg_index x WHERE x.indrelid = ANY($1::regclass[])) i
			GROUP BY i.tbl`, tables)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int64{}
		var table string
		var n int64
		if _, err := pgx.ForEachRow(rows, []any{&table, &n}, func() error {
			out[table] = n
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	return func(op func()) map[string]int64 {
		t.Helper()
		before := counts()
		op()
		read := counts()
		for table := range read {
			read[table] -= before[table]
		}
		return read
	}
}

// plannedTx begins a transaction on e's pool in which statements are planned as
// planCacheMode says ("auto", "force_custom_plan" or "force_generic_plan": the plan of
// the values at hand, or the one plan for all values a prepared statement may settle
// on); it is rolled back when t ends.
func (e *outboxEnv) plannedTx(t *testing.T, planCacheMode string) pgx.Tx {
	t.Helper()
	ctx := context.Background()
	tx, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(ctx) })
	if _, err := tx.Exec(ctx, `SELECT set_config('plan_cache_mode', $1, true)`, planCacheMode); err != nil {
		t.Fatal(err)
	}
	return tx
}

// underEachPlan runs check, as a subtest, in a transaction of e's (plannedTx) under the
// plan of the values at hand, and again under the one plan for all values that
// PostgreSQL's plan cache may settle on for a prepared statement: a statement must
// read no more under either.
func (e *outboxEnv) underEachPlan(t *testing.T, check func(t *testing.T, tx pgx.Tx)) {
	for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
		t.Run(strings.TrimPrefix(mode, "force_"), func(t *testing.T) { check(t, e.plannedTx(t, mode)) })
	}
}

// pastOrders stores n completed orders of past sessions ("ord_past1" to "ord_pastN", of
// sessions "cs_past1" to "cs_pastN", each a second older than the one before, each with
// one line of item_123), written directly: the history a merchant's tables hold after n
// orders, for tests that measure what reading them costs.
func (e *outboxEnv) pastOrders(n int) {
	e.t.Helper()
	e.exec(`INSERT INTO checkout_sessions (id, state, currency, expires_at, created_at)
		SELECT 'cs_past' || g, 'completed', 'usd', now(), now() - g * interval '1 second'
		FROM generate_series(1, $1::int) g`, n)
	e.exec(`INSERT INTO orders (id, checkout_session_id, amount, currency, permalink_url, payment_method,
			payment_reference, created_at)
		SELECT 'ord_past' || g, 'cs_past' || g, 1000, 'usd', 'https://shop.example/o', 'vault_token', 'ref',
			now() - g * interval '1 second'
		FROM generate_series(1, $1::int) g`, n)
	e.exec(`INSERT INTO line_items (id, checkout_session_id, position, variant_id, quantity, unit_amount)
		SELECT 'li_past' || g, 'cs_past' || g, 0, 'item_123', 1, 1500 FROM generate_series(1, $1::int) g`, n)
	e.exec(`INSERT INTO order_lines (order_id, line_item_id, quantity_current, subtotal, tax)
		SELECT 'ord_past' || g, 'li_past' || g, 1, 1500, 0 FROM generate_series(1, $1::int) g`, n)
}

// pastAftermath gives every tenth of pastOrders' n orders what orders gather after
// they are taken: a refund, a fulfilment and a cancellation of its line, and the
// buyer's marketing decision recorded with it.
func (e *outboxEnv) pastAftermath(n int) {
	e.t.Helper()
	e.exec(`INSERT INTO refunds (id, order_id, type, amount) SELECT 'rf_past' || g, 'ord_past' || g, 'original_payment', 100
		FROM generate_series(10, $1::int, 10) g`, n)
	e.exec(`INSERT INTO refund_lines (refund_id, line_item_id, position, quantity) SELECT 'rf_past' || g, 'li_past' || g, 0, 1
		FROM generate_series(10, $1::int, 10) g`, n)
	e.exec(`INSERT INTO fulfillments (id, order_id, type, status) SELECT 'ful_past' || g, 'ord_past' || g, 'shipping', 'delivered'
		FROM generate_series(10, $1::int, 10) g`, n)
	e.exec(`INSERT INTO fulfillment_lines (fulfillment_id, line_item_id, position, quantity) SELECT 'ful_past' || g, 'li_past' || g, 0, 1
		FROM generate_series(10, $1::int, 10) g`, n)
	e.exec(`INSERT INTO order_cancellations (id, order_id, line_item_id, position, quantity, created_at)
		SELECT 'can_past' || g, 'ord_past' || g, 'li_past' || g, 0, 1, now() FROM generate_series(10, $1::int, 10) g`, n)
	e.exec(`INSERT INTO marketing_consents (channel, contact, opted_in, checkout_session_id, order_id, updated_at)
		SELECT 'email', 'buyer' || g || '@example.com', true, 'cs_past' || g, 'ord_past' || g, now()
		FROM generate_series(10, $1::int, 10) g`, n)
}

// A session's view and the catalog read for an update read the session's own variants,
// whatever the size of the catalog: with 20,000 variants, 2,000 past sessions and the
// session's item sorting after all of them, each reads a handful of rows of variants.
// As a join (IN), the view's plans merged the session's lines with the whole variants
// index in id order, and read every variant whose id sorts before the session's.
func TestASessionsViewReadsItsOwnVariants(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t)
	ctx := context.Background()
	e.exec(`INSERT INTO variants (id, product_id, title, price_amount, currency)
		SELECT 'item_big' || g, 'prod_tee', 'Tee ' || g, 1500, 'usd' FROM generate_series(1, 20000) g`)
	e.exec(`INSERT INTO variants (id, product_id, title, price_amount, currency) VALUES ('zz_last', 'prod_tee', 'Last', 1500, 'usd')`)
	e.pastOrders(2000)
	e.exec(`ANALYZE variants, line_items`)
	id := e.readySession("zz_last", 1)
	e.underEachPlan(t, func(t *testing.T, tx pgx.Tx) {
		q := db.New(tx)
		measure := rowsRead(t, tx, "variants")
		for name, op := range map[string]func() error{
			"GetSessionView": func() error {
				_, err := q.GetSessionView(ctx, db.GetSessionViewParams{Now: time.Now(), ID: id})
				return err
			},
			"GetCatalogFor": func() error {
				_, err := q.GetCatalogFor(ctx, db.GetCatalogForParams{VariantIds: []string{"zz_last"}, CheckoutSessionID: id})
				return err
			},
		} {
			var err error
			read := measure(func() { err = op() })
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if read["variants"] > 10 {
				t.Errorf("%s read %d rows of variants (table and indexes), want at most 10 of 20,003", name, read["variants"])
			}
		}
	})
}

// A page of the order list reads its own rows, whatever the orders before and after it:
// the first page, and one deep in the list reached by its cursor (migration 00019's
// index, read backwards from the cursor). Before, every page sorted every order; with
// the index but the cursor in an OR, the generic plan read every newer order.
func TestAPageOfOrdersReadsItsOwnRows(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t)
	ctx := context.Background()
	// Enough orders for the planner to prefer reading a few through the index to
	// sorting them all, as it does on a merchant's table; ord_past1 is the newest.
	e.pastOrders(20000)
	var cursor time.Time
	if err := e.pool.QueryRow(ctx, `SELECT created_at FROM orders WHERE id = 'ord_past500'`).Scan(&cursor); err != nil {
		t.Fatal(err)
	}
	// Planned with the table's statistics, as autovacuum keeps them for a table that
	// grows with every order. (Without them, the planner takes a status for rare and
	// sorts every order rather than walk the index to find ten of them.)
	e.exec(`ANALYZE orders`)
	e.underEachPlan(t, func(t *testing.T, tx pgx.Tx) {
		q := db.New(tx)
		measure := rowsRead(t, tx, "orders")
		created := "created"
		for _, c := range []struct {
			name  string
			p     db.ListOrdersParams
			first int
		}{
			{"first page", db.ListOrdersParams{MaxRows: 10}, 1},
			{"after ord_past500", db.ListOrdersParams{BeforeCreated: &cursor, BeforeID: "ord_past500", MaxRows: 10}, 501},
			{"after ord_past500, created", db.ListOrdersParams{BeforeCreated: &cursor, BeforeID: "ord_past500", Status: &created, MaxRows: 10}, 501},
		} {
			var rows []db.Order
			var err error
			read := measure(func() { rows, err = q.ListOrders(ctx, c.p) })
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			// Ten rows, each counted once or twice (its index entry and its heap tuple).
			if read["orders"] > 30 {
				t.Errorf("%s read %d rows of orders (table and indexes), want at most 30 of 20,000", c.name, read["orders"])
			}
			var ids []string
			for _, r := range rows {
				ids = append(ids, r.ID)
			}
			var want []string
			for i := c.first; i < c.first+10; i++ {
				want = append(want, fmt.Sprintf("ord_past%d", i))
			}
			if !slices.Equal(ids, want) {
				t.Errorf("%s = %v, want %v", c.name, ids, want)
			}
		}
	})
}

// A page of the order list is two round trips whatever its size, the orders and their
// refunds, each refund on its own order: before, each order's refunds were a round trip
// of their own (51 for the default page of 50).
func TestAPageOfOrdersIsTwoRoundTrips(t *testing.T) {
	t.Parallel()
	trips := &pgtest.RoundTrips{}
	e := outboxEnvOn(t, pgtest.MustPoolTraced(t, trips), false)
	ctx := context.Background()
	refunded := map[string][]int64{}
	for i := range 5 {
		ord := e.mustOrder()
		for j := range i % 3 { // none, one, two refunds
			amount := int64(100 + 10*j)
			if _, err := e.orders.Refund(ctx, ord.ID, checkout.RefundStoreCredit, amount); err != nil {
				t.Fatal(err)
			}
			refunded[ord.ID] = append(refunded[ord.ID], amount)
		}
	}
	var page []*checkout.Order
	var err error
	n, sent := trips.Measure(func() { page, err = e.orders.List(ctx, "", nil, "", 50) })
	if err != nil || len(page) != 5 {
		t.Fatalf("List = %d orders, %v; want 5", len(page), err)
	}
	if n != 2 {
		t.Errorf("a page of 5 orders took %d round trips, want 2: %q", n, sent)
	}
	for _, ord := range page {
		var got []int64
		for _, r := range ord.Refunds {
			got = append(got, r.Amount)
		}
		if !slices.Equal(got, refunded[ord.ID]) {
			t.Errorf("order %s: refunds %v, want %v", ord.ID, got, refunded[ord.ID])
		}
	}
}

// Removing a session's lines reads none of the orders taken before: an update that sets
// the items deletes the session's lines, and the retention sweep deletes canceled
// sessions with their lines (ON DELETE CASCADE). PostgreSQL checks every foreign key
// that references a deleted row; without an index on the referencing column, each line
// deleted read every order line, refund line, fulfilment line and cancellation ever
// written, and each session every marketing decision (migration 00021).
func TestRemovingASessionsLinesDoesNotReadPastOrders(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t)
	ctx := context.Background()
	e.pastOrders(20000)
	e.pastAftermath(20000)
	open := e.readySession("item_123", 1, "item_456", 2)
	canceled := e.readySession("item_123", 1)
	if _, err := e.store.CancelSession(ctx, "", canceled, nil); err != nil {
		t.Fatal(err)
	}
	e.exec(`UPDATE checkout_sessions SET created_at = created_at - interval '90 days', updated_at = updated_at - interval '90 days' WHERE id = $1`, canceled)
	e.exec(`ANALYZE`)
	tables := []string{"order_lines", "refund_lines", "fulfillment_lines", "order_cancellations", "marketing_consents"}
	e.underEachPlan(t, func(t *testing.T, tx pgx.Tx) {
		q := db.New(tx)
		measure := rowsRead(t, tx, tables...)
		lines := func(session string) (n int) {
			t.Helper()
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM line_items WHERE checkout_session_id = $1`, session).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		for _, c := range []struct {
			name, session string
			op            func() error
		}{
			{"DeleteLineItems", open, func() error { return q.DeleteLineItems(ctx, open) }},
			{"DeleteCanceledSessions", canceled, func() error {
				_, err := q.DeleteCanceledSessions(ctx, db.DeleteCanceledSessionsParams{Before: time.Now(), MaxRows: 100})
				return err
			}},
		} {
			had := lines(c.session)
			var err error
			read := measure(func() { err = c.op() })
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if left := lines(c.session); had == 0 || left != 0 {
				t.Fatalf("%s: the session's lines went from %d to %d, want some to none", c.name, had, left)
			}
			for _, table := range tables {
				if read[table] > 10 {
					t.Errorf("%s read %d rows of %s (table and indexes), want at most 10 whatever the orders before", c.name, read[table], table)
				}
			}
		}
	})
}

// Every foreign key that references a table the server deletes from has an index on its
// referencing columns, so that deleting a row costs PostgreSQL's check of the key a
// probe, not a read of the whole referencing table (migration 00021). The tables the
// server deletes from are those its queries name in a DELETE (queries/*.sql), and those
// their rows cascade to. A foreign key without such an index references rows the server
// never deletes (an order, a variant, a fulfillment option); should a query start
// deleting them, this test asks for the index.
func TestEveryForeignKeyTheServerDeletesThroughIsIndexed(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../../queries/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("no queries found (../../queries/*.sql): %v", err)
	}
	deleteFrom := regexp.MustCompile(`(?i)\bDELETE\s+FROM\s+(\w+)`)
	var deleted []string
	for _, f := range files {
		sql, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range deleteFrom.FindAllStringSubmatch(string(sql), -1) {
			deleted = append(deleted, m[1])
		}
	}
	if !slices.Contains(deleted, "line_items") || !slices.Contains(deleted, "checkout_sessions") {
		t.Fatalf("DELETE statements found in queries/*.sql name %v; want line_items and checkout_sessions among them", deleted)
	}
	pool := pgtest.MustPool(t)
	rows, err := pool.Query(context.Background(), `
		WITH RECURSIVE deleted(rel) AS (
			SELECT to_regclass(name) FROM unnest($1::text[]) name
			UNION
			SELECT c.conrelid FROM pg_constraint c JOIN deleted d ON c.confrelid = d.rel
			WHERE c.contype = 'f' AND c.confdeltype = 'c'
		)
		SELECT c.conname::text, c.conrelid::regclass::text, c.confrelid::regclass::text
		FROM pg_constraint c
		WHERE c.contype = 'f' AND c.confrelid IN (SELECT rel FROM deleted)
		  AND NOT EXISTS (SELECT 1 FROM pg_index i
			WHERE i.indrelid = c.conrelid AND i.indisvalid AND i.indpred IS NULL
			  AND (i.indkey::int2[])[0:cardinality(c.conkey) - 1] @> c.conkey
			  AND (i.indkey::int2[])[0:cardinality(c.conkey) - 1] <@ c.conkey)
		ORDER BY 1`, deleted)
	if err != nil {
		t.Fatal(err)
	}
	var fk, from, to string
	if _, err := pgx.ForEachRow(rows, []any{&fk, &from, &to}, func() error {
		t.Errorf("foreign key %s of %s references %s, whose rows the server deletes, and no index leads with its columns", fk, from, to)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
