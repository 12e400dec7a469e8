package postgres_test

import (
	"context"
	"errors"
	"testing"

	"github.com/agentic-commerce/agentic-commerce-server/db"
	"github.com/agentic-commerce/agentic-commerce-server/internal/pgtest"
	"github.com/agentic-commerce/agentic-commerce-server/internal/postgres"
)

// A request canceled during its transaction still rolls it back on the server: pgx
// closes a connection whose rollback fails, so a rollback under the canceled context
// would cost the pool a connection (and its server a backend) every time.
func TestWithTxRollsBackAfterTheContextIsCanceled(t *testing.T) {
	t.Parallel()
	pool := pgtest.MustPool(t)
	ctx := context.Background()
	var before int32
	if err := pool.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&before); err != nil {
		t.Fatal(err)
	}
	canceled, cancel := context.WithCancel(ctx)
	failed := errors.New("body failed")
	err := postgres.WithTx(canceled, pool, func(q *db.Queries) error {
		cancel()
		return failed
	})
	if !errors.Is(err, failed) {
		t.Fatalf("WithTx = %v, want the body's error", err)
	}
	var after int32
	if err := pool.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&after); err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Fatalf("backend %d after the rollback, want %d: the connection was closed", after, before)
	}
}
