package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/agentic-commerce/agentic-commerce-server/db"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"

	"github.com/agentic-commerce/agentic-commerce-server/internal/webhook"
)

// OutboxEvent is the webhook.Event the outbox hands a worker for an order_events row.
func OutboxEvent(id int64, orderID, eventType, format string, payload []byte, attempts int, createdAt time.Time) webhook.Event {
	return outboxEvent(id, orderID, eventType, format, payload, attempts, createdAt)
}

// GetSessionByParts is GetSession as it was before GetSessionView, without the lazy
// expiry: the session, its catalog and its consents each read by their own queries.
// TestGetSessionViewIsTheViewOfItsParts holds the one statement to it.
func (s *Store) GetSessionByParts(ctx context.Context, owner, id string) (checkout.View, error) {
	q := db.New(s.pool)
	now := s.now()
	sess, err := s.loadSession(ctx, q, owner, id, false, now)
	if err != nil {
		return checkout.View{}, err
	}
	cat, err := loadCatalog(ctx, q, sess, checkout.VariantIDs(sess, checkout.Changes{}))
	if err != nil {
		return checkout.View{}, err
	}
	return s.view(ctx, q, sess, cat, now, nil)
}

// WithClock makes now the clock of s and returns s.
func (s *Store) WithClock(now func() time.Time) *Store {
	s.now = now
	return s
}

// WithPipelinedTx runs fn in a pipelinedTx (as the session writes do, without an
// idempotency claim): q runs statements now, deferred queues them for the COMMIT.
func WithPipelinedTx(ctx context.Context, pool *pgxpool.Pool, fn func(q, deferred *db.Queries) error) error {
	_, err := withPipelinedRecordedTxV(ctx, pool, time.Now, func(q, deferred *db.Queries, _ time.Time) (struct{}, error) {
		return struct{}{}, fn(q, deferred)
	})
	return err
}

// CompleteStatementByStatement is CompleteSession for a vault token as it was before the
// pipelined completion (completeWithVaultToken): each statement sent and checked on its
// own, the stock taken before the order is written. TestPipelinedCompletionAnswersAsBefore
// holds the pipelined completion to it.
func (s *Store) CompleteStatementByStatement(ctx context.Context, owner, id string, c checkout.Completion) (checkout.View, error) {
	view, err := s.completeStatementByStatement(ctx, owner, id, c)
	return view, s.recordRefusal(ctx, owner, id, err, "")
}

// TakeStockBeforeCommit takes the stock of lines as a pipelined completion does: in the
// last statement before the COMMIT (takeStockLast), its failure mapped back to the
// refusal of the statement-by-statement completion (pipelinedCompletionError).
func TakeStockBeforeCommit(ctx context.Context, pool *pgxpool.Pool, lines []checkout.Line) error {
	_, err := withPipelinedRecordedTx(ctx, pool, time.Now, func(tx *pipelinedTx, _ time.Time) (struct{}, error) {
		return struct{}{}, takeStockLast(ctx, tx.beforeCommit(), lines)
	})
	return pipelinedCompletionError(err, lines)
}

// TakeStockInTransaction takes the stock of lines as a completion sent statement by
// statement does: TakeStock in a transaction, its failure mapped as it returns
// (takeStock).
func TakeStockInTransaction(ctx context.Context, pool *pgxpool.Pool, lines []checkout.Line) error {
	return WithTx(ctx, pool, func(q *db.Queries) error { return takeStock(ctx, q, lines) })
}

// WithPipelinedReads is WithPipelinedTx whose fn may also queue reads along
// (pipelinedTx.readAlong) through readAlong.
func WithPipelinedReads(ctx context.Context, pool *pgxpool.Pool,
	fn func(q, deferred *db.Queries, readAlong func(read func(q *db.Queries) error) error) error,
) error {
	_, err := withPipelinedRecordedTx(ctx, pool, time.Now, func(tx *pipelinedTx, _ time.Time) (struct{}, error) {
		return struct{}{}, fn(db.New(tx), tx.deferred(), tx.readAlong)
	})
	return err
}

// WithReadOutside is WithPipelinedTx for a transaction whose reads before its first
// write go outside it (pipelinedTx.readOutside), as the read-ahead completion's view.
func WithReadOutside(ctx context.Context, pool *pgxpool.Pool, fn func(q, deferred *db.Queries) error) error {
	_, err := withPipelinedRecordedTx(ctx, pool, time.Now, func(tx *pipelinedTx, _ time.Time) (struct{}, error) {
		tx.readOutside()
		return struct{}{}, fn(db.New(tx), tx.deferred())
	})
	return err
}

// WithRiddenReads runs reads in one round trip (readAll), as a cart's create does
// (withRiddenRecordedTx), then write's deferred statements with the record of the
// response and the COMMIT. With outside (readOutside) the reads go outside the
// transaction and the deferred claim of ctx rides ahead of them; without, they go inside
// it, which the claim cannot ride: it is then taken on its own first.
func WithRiddenReads(ctx context.Context, pool *pgxpool.Pool, outside bool, reads []func(q *db.Queries) error, write func(deferred *db.Queries) error) error {
	_, err := withRiddenRecordedTx(ctx, pool, time.Now, func(tx *pipelinedTx, _ time.Time) (struct{}, error) {
		if outside {
			tx.readOutside()
		}
		if err := tx.readAll(reads); err != nil {
			return struct{}{}, err
		}
		return struct{}{}, write(tx.deferred())
	})
	return err
}

// WithRiddenTx runs fn as the writes of a create, an update or a delegation do
// (withRiddenRecordedTxV): the deferred claim of ctx rides fn's first read through q,
// with that read alone, or, when fn reads nothing, the COMMIT of its writes.
func WithRiddenTx(ctx context.Context, pool *pgxpool.Pool, fn func(q, deferred *db.Queries) error) error {
	_, err := withRiddenRecordedTxV(ctx, pool, time.Now, func(q, deferred *db.Queries, _ time.Time) (struct{}, error) {
		return struct{}{}, fn(q, deferred)
	})
	return err
}

// VariantColumnsOutsideGeneration are the columns of variants that the catalog's
// generation does not count (TestCatalogGenerationCoversTheVariants).
var VariantColumnsOutsideGeneration = variantColumnsOutsideGeneration

// KeepCopies keeps n copies of the view of owner's session id in s's SessionCache, each
// under an id of its own (BenchmarkKeptViewMemory).
func (s *Store) KeepCopies(ctx context.Context, owner, id string, n int) error {
	sv, err := s.loadSessionView(ctx, db.New(s.pool), owner, id, s.now())
	if err != nil {
		return err
	}
	// Each copy its own session and read, as each write's view is.
	for i := range n {
		c := sv
		c.session, c.read = cloneSession(sv.session), sv.read.clone()
		c.session.ID = fmt.Sprintf("%s_%d", id, i)
		s.cache.keepView(c, sv.version)
	}
	return nil
}
