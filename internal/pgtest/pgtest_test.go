package pgtest_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/agentic-commerce/agentic-commerce-server/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestIsolation runs two parallel tests that meet in the middle: each writes a row, then
// both check that only their own row is visible.
func TestIsolation(t *testing.T) {
	var (
		wrote sync.WaitGroup
		mu    sync.Mutex
		names = map[string]string{}
	)
	wrote.Add(2)
	for _, label := range []string{"a", "b"} {
		t.Run(label, func(t *testing.T) {
			t.Parallel()
			// Done runs once however this test ends, so the other never waits forever.
			done := sync.OnceFunc(wrote.Done)
			defer done()
			ctx := context.Background()
			pool := pgtest.MustPool(t)

			var db string
			if err := pool.QueryRow(ctx, `SELECT current_database()`).Scan(&db); err != nil {
				t.Fatal(err)
			}
			var migrated bool
			if err := pool.QueryRow(ctx, `SELECT to_regclass('public.checkout_sessions') IS NOT NULL`).Scan(&migrated); err != nil || !migrated {
				t.Fatalf("checkout_sessions missing in %s (err %v): database not migrated", db, err)
			}
			mu.Lock()
			names[label] = db
			mu.Unlock()

			_, err := pool.Exec(ctx, `CREATE TABLE isolation_probe (label text)`)
			if err == nil {
				_, err = pool.Exec(ctx, `INSERT INTO isolation_probe VALUES ($1)`, label)
			}
			done()
			if err != nil {
				t.Fatal(err)
			}
			wrote.Wait()

			rows, err := pool.Query(ctx, `SELECT label FROM isolation_probe`)
			if err != nil {
				t.Fatal(err)
			}
			labels, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
			if len(labels) != 1 || labels[0] != label {
				t.Errorf("database %s sees rows %q, want only %q", db, labels, label)
			}
		})
	}
	t.Cleanup(func() {
		// An empty name means that subtest was skipped or has already failed.
		if names["a"] != "" && names["a"] == names["b"] {
			t.Errorf("both parallel tests got database %q, want two different ones", names["a"])
		}
	})
}

// TestDatabaseDroppedAfterTest checks that a test's database is gone once it ends.
func TestDatabaseDroppedAfterTest(t *testing.T) {
	var name string
	t.Run("user", func(t *testing.T) {
		pool := pgtest.MustPool(t)
		if err := pool.QueryRow(context.Background(), `SELECT current_database()`).Scan(&name); err != nil {
			t.Fatal(err)
		}
	})
	if name == "" {
		t.Skip("subtest did not get a database")
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.ServerURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Errorf("database %s still exists after its test ended", name)
	}
}

// TestManyParallel copies the template concurrently, as a package full of parallel tests does.
func TestManyParallel(t *testing.T) {
	for i := range 16 {
		t.Run("", func(t *testing.T) {
			t.Parallel()
			pool := pgtest.MustPool(t)
			if _, err := pool.Exec(context.Background(), `SELECT 1 FROM checkout_sessions LIMIT 1`); err != nil {
				t.Fatalf("parallel test %d: %v", i, err)
			}
		})
	}
}

// TestWaitForLockWaitReadsTheWaitingStatement: a backend whose last statement was
// prepared (so pg_stat_activity showed it while the backend sat idle) and which then
// blocks on a row lock is reported with the statement it waits in. It checks the answer,
// not the race the second query closes (pg_stat_activity's statement read from an older
// copy than its wait): that one showed in about 1 run of 250 with the CPUs kept busy
// (docs/testing.md, "Charges and row locks").
func TestWaitForLockWaitReadsTheWaitingStatement(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.MustPool(t)
	if _, err := pool.Exec(ctx, `CREATE TABLE lock_probe (id int PRIMARY KEY, n int); INSERT INTO lock_probe VALUES (1, 0)`); err != nil {
		t.Fatal(err)
	}
	holder := pgtest.HoldLocks(t, pool, `SELECT 1 FROM lock_probe WHERE id = 1 FOR UPDATE`)

	waiter, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := waiter.Conn().Prepare(ctx, "prepared_last", `SELECT 'prepared last'`); err != nil {
		waiter.Release()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		// The goroutine gives the connection back itself: should the test stop early,
		// the holder's rollback ends the wait, and the pool closes after it.
		defer waiter.Release()
		_, err := waiter.Exec(ctx, `UPDATE lock_probe SET n = n + 1 WHERE id = 1`)
		done <- err
	}()
	if q := pgtest.WaitForLockWait(t, pool, 30*time.Second); q != `UPDATE lock_probe SET n = n + 1 WHERE id = 1` {
		t.Errorf("WaitForLockWait = %q, want the UPDATE that waits", q)
	}
	if err := holder.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the waiting UPDATE: %v", err)
	}
}

// TestAwaitLockWaitEndsWithItsContext: with no backend waiting and a long timeout,
// AwaitLockWait returns when its context is cancelled, with the context's cause, so a
// goroutine that gave up says why instead of waiting out the timeout or reporting the
// poll's query.
func TestAwaitLockWaitEndsWithItsContext(t *testing.T) {
	t.Parallel()
	pool := pgtest.MustPool(t)
	ctx, cancel := context.WithCancelCause(context.Background())
	stop := errors.New("the test gave up")
	time.AfterFunc(50*time.Millisecond, func() { cancel(stop) })
	start := time.Now()
	query, err := pgtest.AwaitLockWait(ctx, pool, time.Minute)
	if !errors.Is(err, stop) {
		t.Fatalf("AwaitLockWait = %q, %v; want the context's cause", query, err)
	}
	if waited := time.Since(start); waited > 30*time.Second {
		t.Errorf("AwaitLockWait returned after %v, not when its context ended", waited)
	}
}
