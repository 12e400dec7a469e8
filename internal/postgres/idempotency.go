package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/agentic-commerce/agentic-commerce-server/db"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/idempotency"
)

// errClaimLost says the request's idempotency claim was recovered by another request
// while this one ran (it was presumed dead); its work is rolled back.
var errClaimLost = checkout.Errorf(checkout.KindConflict, "idempotency_in_flight", checkout.Field{},
	"Another request with this Idempotency-Key took over; retry to get its result.")

// commitThen is returned by a transaction body that wrote something that must stay (a
// session it found expired) but still refuses the request: the transaction commits and
// the caller gets err.
type commitThen struct{ err error }

func (c *commitThen) Error() string { return c.err.Error() }
func (c *commitThen) Unwrap() error { return c.err }

// withRecordedTxV runs fn in a transaction and returns its result once committed. When
// ctx carries an idempotency claim with an encoder, the encoded result is stored as the
// key's response before committing; the claim learns of it only once the commit
// succeeded. A *commitThen from fn commits and returns its error with the zero T.
func withRecordedTxV[T any](ctx context.Context, pool *pgxpool.Pool, clock func() time.Time, fn func(q *db.Queries, now time.Time) (T, error)) (T, error) {
	claim := idempotency.FromContext(ctx)
	if claim != nil {
		// A deferred claim rides only in a pipelinedTx's first round trip; here it is
		// taken before anything is written.
		if err := claim.Take(ctx); err != nil {
			var zero T
			return zero, err
		}
	}
	var recorded *idempotency.Response
	var refusal error
	result, err := withTxV(ctx, pool, func(q *db.Queries) (T, error) {
		now := clock()
		result, err := fn(q, now)
		var ct *commitThen
		if errors.As(err, &ct) {
			refusal = ct.err
			return result, nil
		}
		if err != nil || claim == nil || claim.Encode == nil {
			return result, err
		}
		response, err := claim.Render(result)
		if err != nil {
			return result, fmt.Errorf("encode response: %w", err)
		}
		recorded = &response
		n, err := q.CompleteIdempotencyKey(ctx, completeKeyParams(claim, response, now))
		if err != nil {
			return result, fmt.Errorf("record idempotent response: %w", err)
		}
		if n != 1 {
			return result, errClaimLost
		}
		return result, nil
	})
	if err != nil {
		return result, err
	}
	if refusal != nil {
		var zero T
		return zero, refusal
	}
	if recorded != nil {
		claim.Committed(*recorded)
	}
	return result, nil
}

// completeKeyParams records r as the response of c's key at now.
func completeKeyParams(c *idempotency.Claim, r idempotency.Response, now time.Time) db.CompleteIdempotencyKeyParams {
	return db.CompleteIdempotencyKeyParams{
		Caller: c.Key.Caller, Method: c.Key.Method, Path: c.Key.Path, Key: c.Key.Key, ApiVersion: c.Key.APIVersion,
		ClaimID: c.ClaimID, ResponseStatus: ptrInt32(int32(r.Status)), ResponseBody: r.Body, Gzipped: r.Gzipped, Now: &now,
	}
}

func ptrInt32(v int32) *int32 { return &v }

// Idempotency records Idempotency-Keys in PostgreSQL.
type Idempotency struct {
	pool *pgxpool.Pool
	// recoverAfter is how long a claim may stay in flight before it is presumed dead
	// (its request crashed) and may be taken over.
	recoverAfter time.Duration
	now          func() time.Time
}

// NewIdempotency returns the key store; claims older than recoverAfter are recovered.
func NewIdempotency(pool *pgxpool.Pool, recoverAfter time.Duration) *Idempotency {
	return &Idempotency{pool: pool, recoverAfter: recoverAfter, now: storedNow}
}

// Claim claims k for a request whose body hashes to hash. Every statement commits on its
// own, so a concurrent request with the same key is answered at once instead of
// waiting on a lock.
func (i *Idempotency) Claim(ctx context.Context, k idempotency.Key, hash string) (idempotency.Outcome, error) {
	q := db.New(i.pool)
	for range 3 {
		now := i.now()
		p := claimKeyParams(k, hash, now)
		row, err := q.ClaimIdempotencyKey(ctx, p)
		if isNoRows(err) {
			continue // recorded by a transaction newer than the statement's snapshot
		}
		if err != nil {
			return idempotency.Outcome{}, fmt.Errorf("claim idempotency key: %w", err)
		}
		if out, ok := settledOutcome(row, p); ok {
			return out, nil
		}
		if row.ClaimedAt.Before(now.Add(-i.recoverAfter)) {
			n, err := q.RecoverIdempotencyKey(ctx, db.RecoverIdempotencyKeyParams{
				Caller: k.Caller, Method: k.Method, Path: k.Path, Key: k.Key, ApiVersion: k.APIVersion,
				NewClaimID: p.ClaimID, OldClaimID: row.ClaimID, Now: now, StaleBefore: now.Add(-i.recoverAfter),
			})
			if err != nil {
				return idempotency.Outcome{}, fmt.Errorf("recover idempotency key: %w", err)
			}
			if n == 1 {
				return idempotency.Outcome{Kind: idempotency.Claimed, ClaimID: p.ClaimID}, nil
			}
		}
		return idempotency.Outcome{Kind: idempotency.InFlight}, nil
	}
	return idempotency.Outcome{}, errors.New("idempotency key kept changing under its claim")
}

// LookUp finds k's record without claiming the key, in one statement. free says k has
// none: the work may hold the key in its transaction and insert it with its response
// (idempotency.Claim.MarkFree). Otherwise out is what the record says to a request whose
// body hashes to hash: Replay, Conflict, or InFlight for a key claimed and not recorded,
// maybe by a dead request, which only Claim can settle (it recovers a dead claim).
func (i *Idempotency) LookUp(ctx context.Context, k idempotency.Key, hash string) (out idempotency.Outcome, free bool, err error) {
	return lookUpKey(ctx, db.New(i.pool), k, hash)
}

// claimKeyParams claims k for a request hashing to hash at now, under a new claim id.
// The claim is its statement's own transaction, which holds nothing else, so its
// commit need not wait for the WAL flush (CommitAsync; see ClaimIdempotencyKey): a key
// that rides in the work's transaction is looked up and inserted instead.
func claimKeyParams(k idempotency.Key, hash string, now time.Time) db.ClaimIdempotencyKeyParams {
	return db.ClaimIdempotencyKeyParams{
		Caller: k.Caller, Method: k.Method, Path: k.Path, Key: k.Key, ApiVersion: k.APIVersion,
		RequestHash: hash, ClaimID: checkout.NewID("clm_"), Now: now, CommitAsync: true,
	}
}

// settledOutcome is what the row of a claim made with p says without another statement:
// the key is the request's (inserted), was used with another body, or has a response to
// replay. A key in flight (maybe a dead request's, to recover) is not settled.
func settledOutcome(row db.ClaimIdempotencyKeyRow, p db.ClaimIdempotencyKeyParams) (idempotency.Outcome, bool) {
	switch {
	case row.Inserted:
		return idempotency.Outcome{Kind: idempotency.Claimed, ClaimID: p.ClaimID}, true
	case row.RequestHash != p.RequestHash:
		return idempotency.Outcome{Kind: idempotency.Conflict}, true
	case (row.State == stateCompleted || row.State == stateCompletedGzip) && row.ResponseStatus != nil:
		return idempotency.Outcome{Kind: idempotency.Replay, Response: idempotency.Response{
			Status: int(*row.ResponseStatus), Body: row.ResponseBody, Gzipped: row.State == stateCompletedGzip,
		}}, true
	}
	return idempotency.Outcome{}, false
}

// The states of a key that has its response (CompleteIdempotencyKey): its JSON, or
// the gzip of it as it was sent (migration 00028).
const (
	stateCompleted     = "completed"
	stateCompletedGzip = "completed_gzip"
)

// Complete stores the response of a claimed request (one that wrote nothing, or whose
// response was not recorded with its side effect), as JSON.
func (i *Idempotency) Complete(ctx context.Context, c *idempotency.Claim, status int, body []byte) error {
	n, err := db.New(i.pool).CompleteIdempotencyKey(ctx, completeKeyParams(c, idempotency.Response{Status: status, Body: body}, i.now()))
	if err != nil {
		return fmt.Errorf("store idempotent response: %w", err)
	}
	if n != 1 {
		return errClaimLost
	}
	return nil
}

// Release drops a claim whose request failed with a server error, so a retry runs
// the request again.
func (i *Idempotency) Release(ctx context.Context, c *idempotency.Claim) error {
	err := db.New(i.pool).ReleaseIdempotencyKey(ctx, db.ReleaseIdempotencyKeyParams{
		Caller: c.Key.Caller, Method: c.Key.Method, Path: c.Key.Path, Key: c.Key.Key, ApiVersion: c.Key.APIVersion,
		ClaimID: c.ClaimID,
	})
	if err != nil {
		return fmt.Errorf("release idempotency key: %w", err)
	}
	return nil
}

// DeleteBefore removes keys created before t and returns how many went, in bounded
// batches, safe on several instances at once.
func (i *Idempotency) DeleteBefore(ctx context.Context, t time.Time) (int64, error) {
	q := db.New(i.pool)
	n, err := batched(func() (int64, error) {
		return q.DeleteIdempotencyKeysBefore(ctx, db.DeleteIdempotencyKeysBeforeParams{Before: t, MaxRows: sweepBatch})
	})
	if err != nil {
		return n, fmt.Errorf("delete old idempotency keys: %w", err)
	}
	return n, nil
}
