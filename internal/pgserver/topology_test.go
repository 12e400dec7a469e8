package pgserver

import (
	"context"
	"errors"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// requireTopology skips t when the machine lacks a program the topology needs, except
// under CI=true, where a missing program fails the run: CI installs them (.ci/run).
func requireTopology(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	ci, _ := strconv.ParseBool(os.Getenv("CI"))
	if errors.Is(err, ErrNoBinaries) && !ci {
		t.Skipf("skipping: %v", err)
	}
	t.Fatal(err)
}

func startCluster(t *testing.T, ctx context.Context, opts ClusterOptions) *Cluster {
	t.Helper()
	c, err := StartCluster(ctx, opts)
	requireTopology(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log of port %d:\n%s", c.Port, lastLines([]byte(c.Log()), 30))
		}
		_ = c.Stop(context.Background())
	})
	return c
}

func execOn(t *testing.T, ctx context.Context, connURL, sql string) error {
	t.Helper()
	conn, err := pgx.Connect(ctx, connURL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// TestPgBouncerTransactionPoolingBreaksStatementCache shows why DATABASE_URL needs a
// query exec mode behind PgBouncer in transaction pooling: with one server connection
// shared by two clients, pgx's default statement cache prepares the same statement name
// twice on it, which PostgreSQL refuses; cache_describe (unnamed statements) does not.
func TestPgBouncerTransactionPoolingBreaksStatementCache(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	c := startCluster(t, ctx, ClusterOptions{})
	b, err := StartPgBouncer(ctx, PgBouncerOptions{Upstream: c.URL, PoolSize: 1})
	requireTopology(t, err)
	t.Cleanup(func() { _ = b.Stop(context.Background()) })
	t.Logf("%s on port %d in front of port %d", b.Version, b.Port, c.Port)

	through, err := b.URL("postgres")
	if err != nil {
		t.Fatal(err)
	}
	run := func(mode string) error {
		var conns []*pgx.Conn
		defer func() {
			for _, conn := range conns {
				_ = conn.Close(context.Background())
			}
		}()
		for range 2 {
			conn, err := pgx.Connect(ctx, through+"&default_query_exec_mode="+mode)
			if err != nil {
				t.Fatalf("%s: connect through pgbouncer: %v", mode, err)
			}
			conns = append(conns, conn)
		}
		for _, conn := range conns {
			var n int
			if err := conn.QueryRow(ctx, `SELECT $1::int + 1`, 41).Scan(&n); err != nil {
				return err
			}
		}
		return nil
	}
	err = run("cache_statement")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || (pgErr.Code != "42P05" && pgErr.Code != "26000") {
		t.Errorf("cache_statement through pgbouncer: %v, want a prepared statement error (42P05 or 26000)", err)
	}
	for _, mode := range []string{"cache_describe", "describe_exec", "exec", "simple_protocol"} {
		if err := run(mode); err != nil {
			t.Errorf("%s through pgbouncer: %v", mode, err)
		}
	}
	if n, err := b.ServerConnections(ctx, "postgres"); err != nil || n != 1 {
		t.Errorf("pgbouncer server connections = %d (%v), want 1: the clients must have shared one", n, err)
	}
}

// TestStandbyPromotion clones a primary into a synchronous standby, crashes the primary,
// promotes the standby and checks that a committed row survived and writes resume.
func TestStandbyPromotion(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	primary := startCluster(t, ctx, ClusterOptions{Conf: "synchronous_commit = on\nsynchronous_standby_names = 's1'\n"})
	standby, err := primary.StartStandby(ctx, StandbyOptions{Name: "s1"})
	requireTopology(t, err)
	t.Cleanup(func() { _ = standby.Stop(context.Background()) })
	if err := primary.WaitStreaming(ctx, "s1", true); err != nil {
		t.Fatal(err)
	}
	if err := execOn(t, ctx, primary.URL, `CREATE TABLE t AS SELECT 1 AS n`); err != nil {
		t.Fatal(err)
	}
	if err := primary.Kill(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := standby.Promote(ctx, false); err != nil {
		t.Fatal(err)
	}
	t.Logf("promoted in %s", time.Since(start).Round(time.Millisecond))
	// A synchronous commit is on the standby once acknowledged: the table is there.
	if err := execOn(t, ctx, standby.URL, `INSERT INTO t VALUES (2)`); err != nil {
		t.Fatalf("write on the promoted standby: %v", err)
	}
}

// TestPromotedStandbyKeepingSyncNamesHangsCommits is the trap docs/operations.md warns
// of: a standby cloned from a primary with synchronous_standby_names keeps it, and once
// promoted waits at every commit for a standby it does not have.
func TestPromotedStandbyKeepingSyncNamesHangsCommits(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	primary := startCluster(t, ctx, ClusterOptions{Conf: "synchronous_commit = on\nsynchronous_standby_names = 's1'\n"})
	standby, err := primary.StartStandby(ctx, StandbyOptions{Name: "s1", KeepSynchronousStandbyNames: true})
	requireTopology(t, err)
	t.Cleanup(func() { _ = standby.Stop(context.Background()) })
	if err := primary.WaitStreaming(ctx, "s1", true); err != nil {
		t.Fatal(err)
	}
	if err := primary.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := standby.Promote(ctx, true); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	err = execOn(t, wctx, standby.URL, `CREATE TABLE t (n int)`)
	if err == nil {
		t.Fatal("a commit on a promoted standby that kept synchronous_standby_names returned; the trap is gone, update docs/operations.md")
	}
	t.Logf("commit with the copied synchronous_standby_names: %v (as expected)", err)
	if err := execOn(t, ctx, standby.URL, `ALTER SYSTEM SET synchronous_standby_names = ''`); err != nil {
		t.Fatal(err)
	}
	if err := execOn(t, ctx, standby.URL, `SELECT pg_reload_conf()`); err != nil {
		t.Fatal(err)
	}
	wctx, cancel = context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := execOn(t, wctx, standby.URL, `CREATE TABLE u (n int)`); err != nil {
		t.Fatalf("commit after clearing synchronous_standby_names: %v", err)
	}
}
