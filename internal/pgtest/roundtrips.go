package pgtest

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/agentic-commerce/agentic-commerce-server/internal/postgres"
)

// RoundTrips is a pgx tracer that counts the round trips a pool makes to the server, so
// a test can hold an operation to a ceiling (docs/PERFORMANCE.md, "Round trips").
//
// What it counts, in the steady state of a warm connection:
//   - a query, an exec, BEGIN and COMMIT: one each (pgx runs them through Query/Exec);
//   - a batch: one, however many statements it holds (pgx sends it as one pipeline);
//   - a COPY: one (its statement description is cached after the first).
//
// The description of a statement a connection runs for the first time is an extra
// round trip pgx makes inside the query (or before the batch); the tracer does not see
// it, so a count is that of the steady state whatever connection the operation gets,
// without warming statements up. Pings of idle connections and connects are not counted
// either.
type RoundTrips struct {
	mu         sync.Mutex
	count      int
	statements []string
}

var (
	_ pgx.QueryTracer    = (*RoundTrips)(nil)
	_ pgx.BatchTracer    = (*RoundTrips)(nil)
	_ pgx.CopyFromTracer = (*RoundTrips)(nil)
)

// Measure runs op and returns the round trips the pool made meanwhile, with a line per
// round trip naming what it sent (for a failure message). op must be the pool's only
// user while it runs.
func (r *RoundTrips) Measure(op func()) (n int, sent []string) {
	r.mu.Lock()
	r.count, r.statements = 0, nil
	r.mu.Unlock()
	op()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.count, r.statements
}

func (r *RoundTrips) add(what string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.count++
	r.statements = append(r.statements, what)
}

// TraceQueryStart counts a query, an exec, BEGIN or COMMIT.
func (r *RoundTrips) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	r.add(summary(data.SQL))
	return ctx
}

// TraceQueryEnd is part of pgx.QueryTracer; the start was counted.
func (r *RoundTrips) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// TraceBatchStart counts a batch: its statements go out together and their results come
// back together.
func (r *RoundTrips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchStartData) context.Context {
	parts := make([]string, 0, data.Batch.Len())
	for _, q := range data.Batch.QueuedQueries {
		parts = append(parts, summary(q.SQL))
	}
	r.add("batch [" + strings.Join(parts, "; ") + "]")
	return ctx
}

// TraceBatchQuery is part of pgx.BatchTracer; the batch was counted as a whole.
func (r *RoundTrips) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

// TraceBatchEnd is part of pgx.BatchTracer.
func (r *RoundTrips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// TraceCopyFromStart counts a COPY.
func (r *RoundTrips) TraceCopyFromStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceCopyFromStartData) context.Context {
	r.add("COPY " + data.TableName.Sanitize())
	return ctx
}

// TraceCopyFromEnd is part of pgx.CopyFromTracer.
func (r *RoundTrips) TraceCopyFromEnd(context.Context, *pgx.Conn, pgx.TraceCopyFromEndData) {}

// summary is the start of a statement, enough to tell it apart in a failure message:
// the sqlc query name when it has one, else its first line.
func summary(sql string) string {
	sql = strings.TrimSpace(sql)
	if name, ok := strings.CutPrefix(sql, "-- name: "); ok {
		sql = name
	}
	first, _, _ := strings.Cut(sql, "\n")
	return first
}

// MustPoolTraced is MustPool with tracer tracing the pool's connections (beside the
// tracer postgres.Connect installs).
func MustPoolTraced(tb testing.TB, tracer pgx.QueryTracer) *pgxpool.Pool {
	tb.Helper()
	u := NewDatabase(tb)
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	pool, err := postgres.ConnectTraced(ctx, u, tracer)
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	tb.Cleanup(pool.Close)
	return pool
}
