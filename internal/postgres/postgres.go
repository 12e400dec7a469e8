// Package postgres is the storage adapter: the connection pool, transactions, migrations
// and the translation of PostgreSQL errors into the checkout domain's errors.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/multitracer"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/agentic-commerce/agentic-commerce-server/db"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/idempotency"
	"github.com/agentic-commerce/agentic-commerce-server/internal/payment"
)

// storedTime is t as PostgreSQL keeps it: a timestamptz is an instant to the
// microsecond (pgx drops the rest of a time it sends), without the offset it was given
// in, and reads come back in UTC. A write answers with the times it stored, so that its
// response shows what a later read does.
func storedTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// storedTimeOf is storedTime of *t, or nil.
func storedTimeOf(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := storedTime(*t)
	return &u
}

// storedNow is every store's clock: now at PostgreSQL's precision (storedTime).
func storedNow() time.Time { return storedTime(time.Now()) }

// The services the transports consume, as this package implements them.
var (
	_ checkout.SessionService = (*Store)(nil)
	_ checkout.OrderService   = (*Orders)(nil)
	_ payment.VaultService    = (*Vault)(nil)
	_ idempotency.Store       = (*Idempotency)(nil)
)

// Connect opens a pool to databaseURL and checks that the database answers.
//
// The URL may carry pgx's options: behind PgBouncer in transaction pooling it needs
// default_query_exec_mode=cache_describe (docs/operations.md, "PgBouncer"); with
// several hosts and target_session_attrs=read-write the pool follows a promoted standby
// (docs/operations.md, "Failover").
func Connect(ctx context.Context, databaseURL string) (*pgxpool.Pool, error) {
	return ConnectTraced(ctx, databaseURL, nil)
}

// ConnectTraced is Connect with tracer (nil: none) tracing the pool's connections beside
// the tracer that resets the pool when the server is lost. Tests count the round trips of
// an operation this way (pgtest.RoundTrips).
func ConnectTraced(ctx context.Context, databaseURL string, tracer pgx.QueryTracer) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("parse DATABASE_URL: %w", err)
	}
	lossTracer := &connLossTracer{}
	cfg.ConnConfig.Tracer = lossTracer
	if tracer != nil {
		cfg.ConnConfig.Tracer = multitracer.New(lossTracer, tracer)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open pool: %w", err)
	}
	lossTracer.pool.Store(pool)
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	return pool, nil
}

// connLossResetEvery is the least time between two pool resets: every connection that
// died with the server reports it, and one reset is enough for all of them.
const connLossResetEvery = time.Second

// connLossTracer resets the pool when a connection is lost with the server (a crash, a
// failover, a cut link). The pool's other connections went with it, but the pool only
// pings one that has been idle for a second, so under traffic each dead connection would
// fail one more request; after a reset the next requests connect afresh, and with
// target_session_attrs=read-write they reach the promoted standby at once.
type connLossTracer struct {
	pool      atomic.Pointer[pgxpool.Pool]
	lastReset atomic.Int64 // unix nanoseconds
}

// TraceQueryStart is part of pgx.QueryTracer; only the end of a query matters here.
func (t *connLossTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return ctx
}

// TraceQueryEnd resets the pool when the query's connection is closed by a failure that
// is not the caller's own deadline or cancellation (pgx closes a connection whose query
// was canceled, which says nothing about the others).
func (t *connLossTracer) TraceQueryEnd(ctx context.Context, conn *pgx.Conn, data pgx.TraceQueryEndData) {
	if data.Err == nil || !conn.IsClosed() || ctx.Err() != nil || pgconn.Timeout(data.Err) || !IsUnavailable(data.Err) {
		return
	}
	now := time.Now().UnixNano()
	last := t.lastReset.Load()
	if now-last < int64(connLossResetEvery) || !t.lastReset.CompareAndSwap(last, now) {
		return
	}
	if pool := t.pool.Load(); pool != nil {
		pool.Reset()
	}
}

// rollbackTimeout bounds the rollback of a transaction that did not commit.
const rollbackTimeout = time.Second

// WithTx runs fn inside one transaction: committed when fn returns nil, rolled back
// otherwise (and on panic, by the deferred rollback).
func WithTx(ctx context.Context, pool *pgxpool.Pool, fn func(q *db.Queries) error) error {
	_, err := withTxV(ctx, pool, func(q *db.Queries) (struct{}, error) { return struct{}{}, fn(q) })
	return err
}

// withTxV is WithTx for a body that returns a value, as in riverqueue/river's
// dbutil.WithTxV: fn's result once the transaction committed, the zero T with an error.
func withTxV[T any](ctx context.Context, pool *pgxpool.Pool, fn func(q *db.Queries) (T, error)) (T, error) {
	var zero T
	tx, err := pool.Begin(ctx)
	if err != nil {
		return zero, fmt.Errorf("begin: %w", err)
	}
	defer rollback(ctx, tx)
	v, err := fn(db.New(tx))
	if err != nil {
		return zero, err
	}
	if err := tx.Commit(ctx); err != nil {
		return zero, fmt.Errorf("commit: %w", err)
	}
	return v, nil
}

// rollback ends tx unless it committed. It ignores ctx's cancellation: a request canceled
// mid-transaction must still roll back cleanly, where a rollback refused for a done
// context makes pgx close the connection. rollbackTimeout bounds the wait instead.
func rollback(ctx context.Context, tx pgx.Tx) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
	defer cancel()
	_ = tx.Rollback(ctx)
}

// isNoRows reports whether err says a query found no row.
func isNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }

// IsUnavailable reports whether err means the database could not be reached or the link
// to it broke (as opposed to a query or constraint error), so the caller should answer
// 503 and the client retry: the pool reconnects on its own once the link is back.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &connectErr), errors.As(err, &netErr), pgconn.Timeout(err),
		errors.Is(err, pgconn.ErrConnClosed), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, context.DeadlineExceeded):
		return true
	case errors.As(err, &pgErr):
		// Class 08: connection exception; 57P01-57P03: the server is shutting down or
		// starting; 53300: too many connections.
		return strings.HasPrefix(pgErr.Code, "08") || pgErr.Code == "57P01" || pgErr.Code == "57P02" ||
			pgErr.Code == "57P03" || pgErr.Code == "53300"
	}
	return false
}
