package pgtest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// HoldLocks begins a transaction on its own connection of pool and runs sql in it (say
// `SELECT … FOR UPDATE`), so the rows it locks stay locked until the caller commits or
// rolls back the returned transaction. It is rolled back when tb ends, should the test
// stop early.
func HoldLocks(tb testing.TB, pool *pgxpool.Pool, sql string, args ...any) pgx.Tx {
	tb.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		tb.Fatalf("pgtest: begin: %v", err)
	}
	tb.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	if _, err := tx.Exec(ctx, sql, args...); err != nil {
		tb.Fatalf("pgtest: %s: %v", sql, err)
	}
	return tx
}

// WaitForLockWait waits until another backend on pool's database waits for a lock
// (pg_stat_activity.wait_event_type = 'Lock') and returns the statement it is running,
// failing tb when none does within timeout. Asking the server who waits makes lock tests
// deterministic: no sleep has to guess how long "blocked" takes to show.
//
// The statement is read in a second query, after the wait was seen. pg_stat_activity's
// query comes from a copy of every backend's status taken once per transaction, while
// its wait_event_type is read live, so one query can pair a statement the backend
// finished a moment before (the last one it prepared, say) with the wait of the next.
// A copy taken after the wait began holds the waiting statement: a backend reports its
// statement before running it. The second query keeps the backend only if it still
// waits, so the statement and the wait are of one moment.
func WaitForLockWait(tb testing.TB, pool *pgxpool.Pool, timeout time.Duration) string {
	tb.Helper()
	query, err := AwaitLockWait(context.Background(), pool, timeout)
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	return query
}

// AwaitLockWait is WaitForLockWait for a goroutine other than the test's, which may
// not stop the test: it returns the error instead. It ends as soon as ctx is done,
// with ctx's cause.
func AwaitLockWait(ctx context.Context, pool *pgxpool.Pool, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		query, err := waitingStatement(ctx, pool)
		switch {
		case err == nil:
			return query, nil
		case ctx.Err() != nil:
			// The caller gave up, whatever the query answered: say why it did.
			return "", context.Cause(ctx)
		case !errors.Is(err, pgx.ErrNoRows):
			return "", fmt.Errorf("read pg_stat_activity: %w", err)
		case time.Now().After(deadline):
			return "", fmt.Errorf("no backend waited for a lock within %v", timeout)
		}
		// A cancelled context ends the wait now, not at the next poll's query.
		select {
		case <-ctx.Done():
			return "", context.Cause(ctx)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// waitingStatement returns the statement of the backend of pool's database that has
// waited longest for a lock (pgx.ErrNoRows: none waits), in two queries, each its own
// transaction and so its own copy of the backends' status: the first finds the backend,
// the second reads its statement if it still waits.
func waitingStatement(ctx context.Context, pool *pgxpool.Pool) (string, error) {
	var pid int32
	if err := pool.QueryRow(ctx, `
		SELECT pid FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'
		ORDER BY query_start LIMIT 1`).Scan(&pid); err != nil {
		return "", err
	}
	var query string
	err := pool.QueryRow(ctx, `
		SELECT query FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'`, pid).Scan(&query)
	return query, err
}
