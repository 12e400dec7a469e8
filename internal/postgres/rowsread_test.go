package postgres_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

// rowsRead returns a function that reports, for each of tables, the rows tx's
// transaction has read so far from the table and its indexes: PostgreSQL's counts of
// the rows its scans returned and fetched (pg_stat_xact; a row read through an index
// counts twice, its entry and its heap tuple). A test holds a statement to the rows it
// reads, so that its cost cannot grow with a table without the test seeing it.
func rowsRead(t *testing.T, tx pgx.Tx, tables ...string) func() map[string]int64 {
	t.Helper()
	return func() map[string]int64 {
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
}

// pastOrders stores n completed orders of past sessions ("ord_past1" to "ord_pastN", of
// sessions "cs_past1" to "cs_pastN"), written directly: the history a merchant's tables
// hold after n orders, for tests that measure what reading them costs.
func (e *outboxEnv) pastOrders(n int) {
	e.t.Helper()
	e.exec(`INSERT INTO checkout_sessions (id, state, currency, expires_at)
		SELECT 'cs_past' || g, 'completed', 'usd', now() FROM generate_series(1, $1::int) g`, n)
	e.exec(`INSERT INTO orders (id, checkout_session_id, amount, currency, permalink_url, payment_method, payment_reference)
		SELECT 'ord_past' || g, 'cs_past' || g, 1000, 'usd', 'https://shop.example/o', 'vault_token', 'ref'
		FROM generate_series(1, $1::int) g`, n)
}
