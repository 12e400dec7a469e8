package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/db"
)

// Retention says how long finished data is kept before the sweeper deletes it.
type Retention struct {
	// CanceledSessions is how long a canceled (or expired) session and its line items
	// are kept after its last change. Completed sessions are kept with their orders.
	CanceledSessions time.Duration
	// OrderEvents is how long a delivered or dead order event is kept after it was
	// written. Pending events are never deleted.
	OrderEvents time.Duration
	// ExpiredTokenGrace keeps unused vault tokens this long past their expiry, for
	// investigation; TokenLifetime deletes unused tokens created longer ago than that,
	// whatever their expiry says (tokens stored before the lifetime cap existed).
	ExpiredTokenGrace time.Duration
	TokenLifetime     time.Duration
}

// Purged counts what one retention pass deleted.
type Purged struct {
	Sessions, OrderEvents, Tokens, Signatures int64
	// Carts are the expired carts deleted (already not found since they expired).
	Carts int64
}

// Purge deletes what Retention no longer keeps, in bounded batches. Every statement is
// safe on several instances at once (SKIP LOCKED or idempotent deletes).
func (s *Sweeper) Purge(ctx context.Context, r Retention) (Purged, error) {
	var p Purged
	q := db.New(s.pool)
	now := s.now()
	var err error
	if p.Sessions, err = batched(func() (int64, error) {
		return q.DeleteCanceledSessions(ctx, db.DeleteCanceledSessionsParams{Before: now.Add(-r.CanceledSessions), MaxRows: sweepBatch})
	}); err != nil {
		return p, fmt.Errorf("delete canceled sessions: %w", err)
	}
	if p.OrderEvents, err = batched(func() (int64, error) {
		return q.DeleteFinishedOrderEvents(ctx, db.DeleteFinishedOrderEventsParams{Before: now.Add(-r.OrderEvents), MaxRows: sweepBatch})
	}); err != nil {
		return p, fmt.Errorf("delete finished order events: %w", err)
	}
	if p.Tokens, err = s.DeleteExpiredTokens(ctx, r.ExpiredTokenGrace, r.TokenLifetime); err != nil {
		return p, err
	}
	if p.Signatures, err = q.DeleteExpiredSignatures(ctx, now); err != nil {
		return p, fmt.Errorf("delete expired signatures: %w", err)
	}
	if p.Carts, err = batched(func() (int64, error) {
		return q.DeleteExpiredCarts(ctx, db.DeleteExpiredCartsParams{Now: now, MaxRows: sweepBatch})
	}); err != nil {
		return p, fmt.Errorf("delete expired carts: %w", err)
	}
	return p, nil
}

// batched repeats one bounded delete until a batch comes back short.
func batched(del func() (int64, error)) (int64, error) {
	var total int64
	for {
		n, err := del()
		total += n
		if err != nil || n < sweepBatch {
			return total, err
		}
	}
}
