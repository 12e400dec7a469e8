package postgres_test

import (
	"context"
	"net/url"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/agentic-commerce/agentic-commerce-server/internal/pgtest"
	"github.com/agentic-commerce/agentic-commerce-server/internal/postgres"
)

// TestLostConnectionsFailOneQueryNotOneEach kills every server session of a warm pool, as
// a crash or a failover does, and checks that one query fails, not one per pooled
// connection: the first loss resets the pool (without the reset, 4 fail).
func TestLostConnectionsFailOneQueryNotOneEach(t *testing.T) {
	if pgtest.ThroughPgBouncer() {
		t.Skip("through pgbouncer, ending server sessions leaves the pool's client connections open")
	}
	t.Parallel()
	ctx := context.Background()
	pool, err := postgres.Connect(ctx, withOption(pgtest.NewDatabase(t), "pool_max_conns", "4"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)

	// Four connections open at once, then idle in the pool.
	var held []*pgxpool.Conn
	for range 4 {
		c, err := pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	pids := make([]uint32, 0, len(held))
	for _, c := range held {
		pids = append(pids, c.Conn().PgConn().PID())
		c.Release()
	}
	killer, err := postgres.Connect(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer killer.Close()
	if _, err := killer.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid`, pids); err != nil {
		t.Fatal(err)
	}

	failed := 0
	for i := range 8 {
		var one int
		if err := pool.QueryRow(ctx, `SELECT 1`).Scan(&one); err != nil {
			if !postgres.IsUnavailable(err) {
				t.Errorf("query %d: %v, want a connection error", i, err)
			}
			failed++
		}
	}
	// One, or none: pgxpool pings a connection idle for over a second before handing it
	// out, so on a loaded machine the dead ones may all be found that way first.
	if failed > 1 {
		t.Errorf("%d of 8 queries failed after the server ended the pool's 4 sessions, want at most 1", failed)
	}
}

// withOption adds a connection option to a URL or keyword/value connection string.
func withOption(conn, key, value string) string {
	u, err := url.Parse(conn)
	if err != nil || u.Scheme == "" {
		return conn + " " + key + "=" + value
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}
