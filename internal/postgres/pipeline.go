package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/agentic-commerce/agentic-commerce-server/db"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/idempotency"
)

// pipelinedTx is a transaction that takes as few round trips to the server as its
// statements allow (docs/PERFORMANCE.md, "Round trips"). A pgx.Tx spends one on BEGIN,
// one per statement and one on COMMIT; here
//   - BEGIN goes out with the first statement, unless that is in the COMMIT's round
//     trip: a transaction of one round trip needs neither BEGIN nor COMMIT (commit);
//   - a statement whose only result is its error (an INSERT, an UPDATE of sqlc's :exec)
//     can be deferred: queued through the Queries of deferred, it goes out with the
//     next statement that needs its result, or with the COMMIT;
//   - the COMMIT goes out with the deferred statements;
//   - a statement queued through the Queries of beforeCommit goes out after every
//     statement deferred with it: what locks hot rows (the stock a completion takes)
//     holds them from the last statement before the COMMIT to the COMMIT;
//   - a read can go along (readAlong): queued in order as a deferred statement, its
//     result is read in the round trip that sends it, so two reads take one round
//     trip when the second needs nothing of the first's result.
//
// A request whose idempotency claim is deferred (idempotency.NewDeferred) may settle it
// in the first round trip (rideClaim): the key's look-up goes out ahead of that round
// trip's reads, outside the transaction, so it costs no round trip of its own. A key
// with a record stops the work there; a free one is held by the transaction, first in
// it (HoldIdempotencyKey, a transaction-level advisory lock that a concurrent duplicate
// meets and answers 409 to), and inserted with the response last
// (InsertIdempotentResponse), which fails the transaction when another request recorded
// or claimed the key since the look-up. A key found free by the transport's look-up (a
// completion's) is held and inserted the same way, or held and claimed for a later
// transaction to record (withClaimingTx). A transaction that reads nothing (a vault
// token's) claims the key in its only round trip instead, inside the transaction, ahead
// of its writes (commitRidden).
//
// A pipeline is sent as a pgx.Batch: the statements of one round trip run in order and
// the first that fails aborts the transaction, so nothing after it applies (the COMMIT
// included) and rollback ends it (a transaction of one round trip ends with it).
// Nothing here is session state: behind PgBouncer in transaction pooling the server
// connection is the transaction's from BEGIN to COMMIT (or to a pipeline's Sync), as
// with a pgx.Tx.
type pipelinedTx struct {
	conn *pgxpool.Conn
	// begun says BEGIN was sent; committed that COMMIT succeeded.
	begun, committed bool
	// queued are the deferred statements not sent yet, in their order; queuedLast
	// those of beforeCommit, sent after them.
	queued, queuedLast []queuedStatement
	// ride is a deferred claim to settle in the first round trip (rideClaim); nil once
	// sent or when there is none.
	ride *idempotency.Claim
	// hold is the deferred claim whose key the first round trip found free: the
	// transaction holds the key (HoldIdempotencyKey) first, and held says that went out.
	hold *idempotency.Claim
	held bool
	// reads are the reads along (readAlong) of the batch pending made last, by
	// their position in it: nil for a statement whose only result is its error.
	reads []func(q *db.Queries) error
	// readFirst says reads sent before any write go outside the transaction
	// (readOutside), which BEGIN then opens with the writes.
	readFirst bool
	// holdRide says a deferred claim that rides the COMMIT holds its key too
	// (holdWhenRiding).
	holdRide bool
}

// errRideMissed says a deferred claim could not be settled in the first round trip: a
// statement that writes went first, the key's row needs the claim's own statements (a
// request in flight, maybe dead), or a key found free was recorded or claimed by another
// request before the transaction inserted it. runPipelinedTx then takes the claim on its
// own and runs the transaction again (or answers with what the key holds).
var errRideMissed = errors.New("postgres: the deferred idempotency claim did not ride the first round trip")

// queuedStatement is a deferred statement.
type queuedStatement struct {
	sql  string
	args []any
	// read reads its result, for a read along (readAlong); nil for the others.
	read func(q *db.Queries) error
}

var _ db.DBTX = (*pipelinedTx)(nil)

// beginPipelinedTx acquires a connection of pool for a transaction; nothing is sent yet.
// The caller must end it with commit or rollback.
func beginPipelinedTx(ctx context.Context, pool *pgxpool.Pool) (*pipelinedTx, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	return &pipelinedTx{conn: conn}, nil
}

// deferred returns the Queries whose statements are queued (see pipelinedTx). Only
// statements that return nothing but their error may run through it: one that returns
// rows or a row count fails.
func (t *pipelinedTx) deferred() *db.Queries { return db.New(deferredDBTX{t: t}) }

// beforeCommit returns the Queries whose statements are deferred as those of deferred
// are, but sent after every other deferred statement of their round trip.
func (t *pipelinedTx) beforeCommit() *db.Queries { return db.New(deferredDBTX{t: t, last: true}) }

// errReadAlong is the error of a read along that does not run exactly one statement
// (Exec, Query or QueryRow): a bug of the caller.
var errReadAlong = errors.New("postgres: a read along must run exactly one statement")

// readAlong queues a read as a deferred statement, in order, so that it goes out with
// the next round trip: read calls exactly one method of q, which returns a result
// (:one, :many), and keeps it in a variable of the caller. It is called twice: now,
// with Queries that capture its statement (its result is then an error to ignore), and
// once the round trip is sent, with Queries that read its result, in order, before the
// result of the statement that sends the round trip is returned. An error it returns
// then is that of the round trip (the batch is closed, the transaction aborts); an
// error that must not stop the round trip (pgx.ErrNoRows, say) read keeps for its
// caller and returns nil. Nothing of the read is known before the round trip returns.
func (t *pipelinedTx) readAlong(read func(q *db.Queries) error) error {
	var c capturedRead
	_ = read(db.New(&c))
	if c.n != 1 || c.sql == "" {
		return errReadAlong
	}
	t.queued = append(t.queued, queuedStatement{sql: c.sql, args: c.args, read: read})
	return nil
}

// readAll sends reads in one round trip: every read but the last goes along
// (readAlong), and the last, run through t's Queries, sends them. Each keeps its result
// as readAlong's read does.
func (t *pipelinedTx) readAll(reads []func(q *db.Queries) error) error {
	if len(reads) == 0 {
		return nil
	}
	for _, read := range reads[:len(reads)-1] {
		if err := t.readAlong(read); err != nil {
			return err
		}
	}
	return reads[len(reads)-1](db.New(t))
}

// readOutside makes the reads t sends before any write go outside the transaction, as
// a claim that rides does: BEGIN goes out with the first write, so a transaction whose
// writes are one round trip needs neither BEGIN nor COMMIT (commit). Reads along
// (readAlong) queued before the first write go out with them. Only for reads that take
// no lock: under READ COMMITTED each statement reads its own snapshot, so a
// read inside the transaction sees nothing a read outside would not, but a lock taken
// outside (FOR UPDATE) ends with its statement.
func (t *pipelinedTx) readOutside() { t.readFirst = true }

// holdWhenRiding makes a deferred claim that rides the COMMIT (commitRidden) hold its
// key first in the transaction (HoldIdempotencyKey), ahead of its look-up, as the
// transaction of a key found free does: a duplicate running beside it meets the hold
// and is answered at once, 409 idempotency_in_flight or the key's conflict, where one
// riding without the hold (a delegation's) waits on the key's index entry and then
// gets the replay. A completion from a kept view rides so: its duplicates are answered
// as those of a completion whose key was looked up first.
func (t *pipelinedTx) holdWhenRiding() { t.holdRide = true }

// rideClaim makes claim, a deferred one not taken yet, settle in the first round trip,
// which must be a read (Query): the key's look-up goes out with it, outside the
// transaction (or, when nothing is read, first in the COMMIT's: commitRidden).
func (t *pipelinedTx) rideClaim(claim *idempotency.Claim) { t.ride = claim }

// pending is a batch of BEGIN (unless sent, and then the hold of a free key) and the
// queued statements, which the statement about to be sent follows; it empties the
// queue. With read, the statement is a read that the deferred claim may ride: the batch
// is then the key's look-up and the reads along queued before it (which readOutside
// let go outside the transaction), and rides says so. A claim that cannot ride (a write
// goes first) is errRideMissed.
func (t *pipelinedTx) pending(read bool) (b *pgx.Batch, rides bool, err error) {
	b = &pgx.Batch{}
	t.reads = t.reads[:0]
	readsFirst := read && len(t.queuedLast) == 0 && !slices.ContainsFunc(t.queued, func(s queuedStatement) bool { return s.read == nil })
	if t.ride != nil {
		if !readsFirst || t.begun || (len(t.queued) > 0 && !t.readFirst) {
			return nil, false, errRideMissed
		}
		c := lookupStatement(t.ride.Key)
		b.Queue(c.sql, c.args...)
		t.queue(b)
		return b, true, nil
	}
	if !t.begun && !(readsFirst && t.readFirst) {
		b.Queue("begin")
		t.reads = append(t.reads, nil)
		t.begun = true
		t.queueHold(b)
	}
	t.queue(b)
	return b, false, nil
}

// queueHold adds to b, first in the transaction, the hold of the key found free, unless
// it went out already or there is none.
func (t *pipelinedTx) queueHold(b *pgx.Batch) {
	if t.hold == nil || t.held {
		return
	}
	var c capturedStatement
	k := t.hold.Key
	_ = db.New(&c).HoldIdempotencyKey(context.Background(), db.HoldIdempotencyKeyParams{
		Caller: k.Caller, Method: k.Method, Path: k.Path, Key: k.Key, ApiVersion: k.APIVersion, RequestHash: t.hold.Hash,
	})
	b.Queue(c.sql, c.args...)
	t.reads = append(t.reads, nil)
	t.held = true
}

// lookupKeyParams looks k up.
func lookupKeyParams(k idempotency.Key) db.LookupIdempotencyKeyParams {
	return db.LookupIdempotencyKeyParams{Caller: k.Caller, Method: k.Method, Path: k.Path, Key: k.Key, ApiVersion: k.APIVersion}
}

// lookupStatement is the look-up of k (LookupIdempotencyKey), to queue in a batch.
func lookupStatement(k idempotency.Key) capturedStatement {
	var c capturedStatement
	_, _ = db.New(&c).LookupIdempotencyKey(context.Background(), lookupKeyParams(k))
	return c
}

// lookUpKey looks k up through q (LookupIdempotencyKey: sent now, or read from the
// batch that sent it). free says k has no row; otherwise out is what the row says to a
// request whose body hashes to hash: Replay, Conflict, or InFlight for a key claimed
// and not recorded, maybe by a dead request, which only the claim's own statements
// settle.
func lookUpKey(ctx context.Context, q *db.Queries, k idempotency.Key, hash string) (out idempotency.Outcome, free bool, err error) {
	row, err := q.LookupIdempotencyKey(ctx, lookupKeyParams(k))
	switch {
	case isNoRows(err):
		return idempotency.Outcome{}, true, nil
	case err != nil:
		return idempotency.Outcome{}, false, fmt.Errorf("look up idempotency key: %w", err)
	}
	if out, ok := lookedUpOutcome(row, hash); ok {
		return out, false, nil
	}
	return idempotency.Outcome{Kind: idempotency.InFlight}, false, nil
}

// readRiddenLookup reads the result of claim's look-up through q: the outcome of the
// key's record when it has one (nil otherwise), which the caller settles the claim
// with, or free when the key has no row. A key in flight, maybe a dead request's, needs
// the claim's own statements (errRideMissed).
func readRiddenLookup(ctx context.Context, q *db.Queries, claim *idempotency.Claim) (recorded *idempotency.Outcome, free bool, err error) {
	out, free, err := lookUpKey(ctx, q, claim.Key, claim.Hash)
	switch {
	case err != nil || free:
		return nil, free, err
	case out.Kind == idempotency.InFlight:
		return nil, false, errRideMissed
	}
	return &out, false, nil
}

// queue moves the queued statements to b, in their order, after what b holds (whose
// reads t.reads already notes), and notes their reads; it empties the queue.
func (t *pipelinedTx) queue(b *pgx.Batch) {
	for _, s := range append(t.queued, t.queuedLast...) {
		b.Queue(s.sql, s.args...)
		t.reads = append(t.reads, s.read)
	}
	t.queued, t.queuedLast = nil, nil
}

// send sends b, whose first n statements are those of pending, and reads their
// results (a read along's with its read): an error of one of them is that of the
// round trip. When the deferred claim rides, the key's look-up is read first: a key
// that is not the request's stops the work with idempotency.ErrNotClaimed, and a free
// one is held by the transaction from its first statement on.
func (t *pipelinedTx) send(ctx context.Context, b *pgx.Batch, n int, rides bool) (pgx.BatchResults, error) {
	br := t.conn.SendBatch(ctx, b)
	if rides {
		claim := t.ride
		t.ride = nil
		recorded, free, err := readRiddenLookup(ctx, db.New(batchResultsDBTX{br}), claim)
		if free {
			claim.MarkFree()
			t.hold = claim
		}
		if recorded != nil { // nothing in this round trip writes: the record settles it now
			err = claim.Resolve(*recorded) // idempotency.ErrNotClaimed
		}
		if err != nil {
			_ = br.Close()
			return nil, err
		}
	}
	for i := range n {
		var err error
		if i < len(t.reads) && t.reads[i] != nil {
			err = t.reads[i](db.New(batchResultsDBTX{br}))
		} else {
			_, err = br.Exec()
		}
		if err != nil {
			_ = br.Close()
			return nil, err
		}
	}
	return br, nil
}

// sendNow sends sql with BEGIN (unless sent) and the queued statements before it, and
// returns the results with sql's next. read says sql only reads (see pending).
func (t *pipelinedTx) sendNow(ctx context.Context, sql string, args []any, read bool) (pgx.BatchResults, error) {
	b, rides, err := t.pending(read)
	if err != nil {
		return nil, err
	}
	n := b.Len()
	if rides {
		n-- // the claim, which send reads first
	}
	b.Queue(sql, args...)
	return t.send(ctx, b, n, rides)
}

// Exec runs sql now, with BEGIN and the queued statements before it.
func (t *pipelinedTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	br, err := t.sendNow(ctx, sql, args, false)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return tag, err
}

// Query runs sql now, with BEGIN and the queued statements before it. A query is taken
// for a read: a deferred claim may ride with it (rideClaim's callers read first).
func (t *pipelinedTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	br, err := t.sendNow(ctx, sql, args, true)
	if err != nil {
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		_ = br.Close()
		return nil, err
	}
	return &batchRows{Rows: rows, results: br}, nil
}

// QueryRow runs sql now, with BEGIN and the queued statements before it.
func (t *pipelinedTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	rows, err := t.Query(ctx, sql, args...)
	if err != nil {
		return errRow{err}
	}
	return rowOf{rows}
}

// SendBatch sends BEGIN and the queued statements, then b.
func (t *pipelinedTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if err := t.flush(ctx); err != nil {
		return errBatchResults{err}
	}
	return t.conn.SendBatch(ctx, b)
}

// flush sends what is pending on its own.
func (t *pipelinedTx) flush(ctx context.Context) error {
	b, _, err := t.pending(false)
	if err != nil {
		return err
	}
	br, err := t.send(ctx, b, b.Len(), false)
	if err != nil {
		return err
	}
	return br.Close()
}

// commit sends the queued statements and COMMIT in one round trip. A transaction that
// sent nothing before is that round trip alone: its statements go out without BEGIN and
// COMMIT, as the implicit transaction of a pipeline's statements up to its Sync, which
// commits them together or, when one fails, none of them and leaves the connection
// idle (no ROLLBACK to send).
func (t *pipelinedTx) commit(ctx context.Context) error {
	if t.ride == nil && !t.begun && len(t.queued) == 0 && len(t.queuedLast) == 0 {
		t.committed = true // nothing was sent: there is nothing to commit
		return nil
	}
	if t.ride != nil {
		return errRideMissed
	}
	b := &pgx.Batch{}
	t.reads = t.reads[:0]
	if !t.begun {
		t.queueHold(b) // first in the implicit transaction
	}
	t.queue(b)
	if t.begun {
		b.Queue("commit")
	}
	br, err := t.send(ctx, b, b.Len(), false)
	if err != nil {
		return err
	}
	if err := br.Close(); err != nil {
		return err
	}
	t.committed = true
	return nil
}

// commitRidden is commit for a transaction that sent nothing yet and whose deferred
// claim rides with it: the key's look-up goes out first, in the implicit transaction of
// the queued statements (see commit). The caller must have queued the key's insert with
// the response (InsertIdempotentResponse, under claimID), so the key commits with the
// work or not at all. When the key has a record, the insert fails, so the implicit
// transaction rolls back and the connection is idle again, with no ROLLBACK to send;
// the record then settles the claim. The look-up and the insert each read their own
// snapshot, so a record settles the claim only when the round trip fails: should the
// retention sweeper delete it between them, the work commits under the key, and the
// request answers with that. A duplicate running beside it finds nothing, waits on the
// key's index entry at its insert, and then takes its claim on its own, which finds the
// record (errRideMissed). Otherwise the claim is resolved once the round trip
// succeeded: when a statement fails, the claim stays pending, and the transport takes
// it before it answers with the error (or with the response recorded, should the round
// trip have committed before its answer was lost). A key that is not the request's is
// ErrNotClaimed, as for rideClaim.
//
// With holdWhenRiding, the key's hold goes first, and a duplicate in flight stops the
// transaction there (heldKeyError); a key its look-up found free is marked so
// (MarkFree), so that a transaction run again after this one failed (a session changed
// since its view was kept) holds the key rather than claim it on its own.
func (t *pipelinedTx) commitRidden(ctx context.Context, claimID string) error {
	if t.ride == nil || t.begun {
		return errRideMissed
	}
	claim := t.ride
	t.ride = nil
	if t.holdRide {
		t.hold = claim // queued first in the implicit transaction by commit (queueHold)
	}
	var recorded *idempotency.Outcome // settled by how the round trip ends, below
	settle := func(q *db.Queries) error {
		var free bool
		var err error
		recorded, free, err = readRiddenLookup(ctx, q, claim)
		if free && t.holdRide { // inserted with the work
			claim.MarkFree()
		}
		return err
	}
	c := lookupStatement(claim.Key)
	t.queued = append([]queuedStatement{{sql: c.sql, args: c.args, read: settle}}, t.queued...)
	err := t.commit(ctx)
	switch {
	case recorded != nil && err != nil:
		// The key's insert failed on the record, or a statement before it did: the
		// implicit transaction rolled back, and the request gets what the key holds. So
		// does a request whose round trip was lost on the way: the record is what its
		// look-up found.
		return claim.Resolve(*recorded)
	case isKeyRecorded(err):
		return errRideMissed // recorded by a transaction that committed after the look-up
	case err != nil:
		return err
	}
	// Committed. A record the look-up found was deleted (the retention sweeper) before
	// the key's insert, in the same round trip: the work committed under the key, and
	// the request answers with it.
	return claim.Resolve(idempotency.Outcome{Kind: idempotency.Claimed, ClaimID: claimID})
}

// lookedUpOutcome is what a key's row, found by its look-up, says to a request whose
// body hashes to hash: as settledOutcome says of a claim's row that was not inserted.
func lookedUpOutcome(row db.LookupIdempotencyKeyRow, hash string) (idempotency.Outcome, bool) {
	return settledOutcome(db.ClaimIdempotencyKeyRow{
		RequestHash: row.RequestHash, ClaimID: row.ClaimID, State: row.State,
		ResponseStatus: row.ResponseStatus, ResponseBody: row.ResponseBody, ClaimedAt: row.ClaimedAt,
	}, db.ClaimIdempotencyKeyParams{RequestHash: hash})
}

// rollback ends the transaction unless it committed, and releases the connection (see
// the package's rollback for the context). A connection whose rollback failed is
// closed by the pool on release, as it is left in a transaction.
func (t *pipelinedTx) rollback(ctx context.Context) {
	defer t.conn.Release()
	if t.committed || !t.begun {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
	defer cancel()
	_, _ = t.conn.Exec(ctx, "rollback")
}

// deferredDBTX queues the statements of a pipelinedTx's deferred Queries (last: those
// of its beforeCommit Queries).
type deferredDBTX struct {
	t    *pipelinedTx
	last bool
}

// errNotDeferrable is the error of a statement that returns more than its error run
// through deferred Queries: a bug of the caller.
var errNotDeferrable = errors.New("postgres: a statement whose result is read cannot be deferred")

// Exec queues sql; its error, if any, is that of the round trip that sends it. The
// command tag is empty: a caller that needs the row count must not defer the statement.
func (d deferredDBTX) Exec(_ context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	s := queuedStatement{sql: sql, args: args}
	if d.last {
		d.t.queuedLast = append(d.t.queuedLast, s)
	} else {
		d.t.queued = append(d.t.queued, s)
	}
	return pgconn.CommandTag{}, nil
}

func (d deferredDBTX) Query(context.Context, string, ...any) (pgx.Rows, error) {
	return nil, errNotDeferrable
}

func (d deferredDBTX) QueryRow(context.Context, string, ...any) pgx.Row {
	return errRow{errNotDeferrable}
}

func (d deferredDBTX) SendBatch(context.Context, *pgx.Batch) pgx.BatchResults {
	return errBatchResults{errNotDeferrable}
}

// capturedStatement is a db.DBTX that keeps the statement a Queries method would send,
// and sends nothing: sqlc stays the source of a statement queued in a pgx.Batch.
type capturedStatement struct {
	sql  string
	args []any
}

// errCaptured is what a captured statement's method returns; its result is unused.
var errCaptured = errors.New("postgres: statement captured, not sent")

func (c *capturedStatement) Exec(_ context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	c.sql, c.args = sql, args
	return pgconn.CommandTag{}, errCaptured
}

func (c *capturedStatement) Query(_ context.Context, sql string, args ...any) (pgx.Rows, error) {
	c.sql, c.args = sql, args
	return nil, errCaptured
}

func (c *capturedStatement) QueryRow(_ context.Context, sql string, args ...any) pgx.Row {
	c.sql, c.args = sql, args
	return errRow{errCaptured}
}

func (c *capturedStatement) SendBatch(context.Context, *pgx.Batch) pgx.BatchResults {
	return errBatchResults{errCaptured}
}

// capturedRead is a capturedStatement that counts the statements captured
// (readAlong's read must run one).
type capturedRead struct {
	capturedStatement
	n int
}

func (c *capturedRead) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	c.n++
	return c.capturedStatement.Exec(ctx, sql, args...)
}

func (c *capturedRead) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	c.n++
	return c.capturedStatement.Query(ctx, sql, args...)
}

func (c *capturedRead) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	c.n++
	return c.capturedStatement.QueryRow(ctx, sql, args...)
}

// batchResultsDBTX is a db.DBTX that reads the next result of a batch already sent:
// the Queries method that captured a statement reads its result, so the row is scanned
// by the code sqlc generated for it.
type batchResultsDBTX struct{ br pgx.BatchResults }

func (d batchResultsDBTX) Exec(context.Context, string, ...any) (pgconn.CommandTag, error) {
	return d.br.Exec()
}

func (d batchResultsDBTX) Query(context.Context, string, ...any) (pgx.Rows, error) {
	return d.br.Query()
}

func (d batchResultsDBTX) QueryRow(context.Context, string, ...any) pgx.Row { return d.br.QueryRow() }

func (d batchResultsDBTX) SendBatch(context.Context, *pgx.Batch) pgx.BatchResults {
	return errBatchResults{errNotDeferrable}
}

// batchRows are the rows of the last statement of a batch; closing them reads the
// batch to its end.
type batchRows struct {
	pgx.Rows
	results pgx.BatchResults
	closed  bool
	err     error
}

func (r *batchRows) Close() {
	if r.closed {
		return
	}
	r.closed = true
	r.Rows.Close()
	r.err = r.results.Close()
}

func (r *batchRows) Err() error {
	if err := r.Rows.Err(); err != nil {
		return err
	}
	return r.err
}

// rowOf is the first row of rows, as pgx.Conn.QueryRow gives it.
type rowOf struct{ rows pgx.Rows }

func (r rowOf) Scan(dest ...any) error {
	defer r.rows.Close()
	if !r.rows.Next() {
		r.rows.Close()
		if err := r.rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	r.rows.Close()
	return r.rows.Err()
}

// errRow is a row that could not be read.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// errBatchResults are the results of a batch that could not be sent.
type errBatchResults struct{ err error }

func (r errBatchResults) Exec() (pgconn.CommandTag, error) { return pgconn.CommandTag{}, r.err }
func (r errBatchResults) Query() (pgx.Rows, error)         { return nil, r.err }
func (r errBatchResults) QueryRow() pgx.Row                { return errRow(r) }
func (r errBatchResults) Close() error                     { return r.err }
func (r errBatchResults) Tx() pgx.Tx                       { return nil }

// claimLostCode is the SQLSTATE of raise_idempotency_claim_lost (migration 00014).
const claimLostCode = "AC409"

// withPipelinedRecordedTxV is withRecordedTxV in a pipelinedTx: fn gets the Queries of
// statements run now (q) and of statements deferred to the next round trip (deferred),
// and the record of the response goes out with the COMMIT (RecordIdempotentResponse),
// so a write whose reads are one round trip commits in the next.
func withPipelinedRecordedTxV[T any](ctx context.Context, pool *pgxpool.Pool, clock func() time.Time,
	fn func(q, deferred *db.Queries, now time.Time) (T, error),
) (T, error) {
	return withPipelinedRecordedTx(ctx, pool, clock, func(tx *pipelinedTx, now time.Time) (T, error) {
		return fn(db.New(tx), tx.deferred(), now)
	})
}

// withPipelinedRecordedTx is withPipelinedRecordedTxV for a fn that needs more of the
// transaction than its Queries of now and deferred statements (beforeCommit). An error
// of a deferred statement is returned wrapped, as that of the COMMIT.
func withPipelinedRecordedTx[T any](ctx context.Context, pool *pgxpool.Pool, clock func() time.Time,
	fn func(tx *pipelinedTx, now time.Time) (T, error),
) (T, error) {
	return runPipelinedTx(ctx, pool, clock, idempotency.FromContext(ctx), false, fn)
}

// withRiddenRecordedTxV is withPipelinedRecordedTxV for a fn whose first round trip is
// a read (a Query through q, nothing deferred before it), or that sends nothing before
// the COMMIT: a deferred idempotency claim rides in that round trip
// (pipelinedTx.rideClaim, pipelinedTx.commitRidden), so the claim costs no round trip of
// its own.
func withRiddenRecordedTxV[T any](ctx context.Context, pool *pgxpool.Pool, clock func() time.Time,
	fn func(q, deferred *db.Queries, now time.Time) (T, error),
) (T, error) {
	return withRiddenRecordedTx(ctx, pool, clock, func(tx *pipelinedTx, now time.Time) (T, error) {
		return fn(db.New(tx), tx.deferred(), now)
	})
}

// withRiddenRecordedTx is withRiddenRecordedTxV for a fn that needs the transaction: its
// first round trip may also carry reads along (readAll), when readOutside let them go
// outside the transaction with the claim.
func withRiddenRecordedTx[T any](ctx context.Context, pool *pgxpool.Pool, clock func() time.Time,
	fn func(tx *pipelinedTx, now time.Time) (T, error),
) (T, error) {
	return runPipelinedTx(ctx, pool, clock, idempotency.FromContext(ctx), true, fn)
}

// withPipelinedTx is withPipelinedRecordedTx for a transaction whose result is not the
// request's response (a PSP completion's first phase): nothing is recorded with it.
func withPipelinedTx[T any](ctx context.Context, pool *pgxpool.Pool, clock func() time.Time,
	fn func(tx *pipelinedTx, now time.Time) (T, error),
) (T, error) {
	return runPipelinedTx(ctx, pool, clock, nil, false, fn)
}

// withClaimingTx is withPipelinedTx for a transaction that must leave the request's key
// claimed for a later one to record the response under (a PSP completion's first phase:
// the charge, outside any transaction, comes between). A deferred claim whose key the
// transport found free is held first in the transaction (HoldIdempotencyKey) and
// inserted in flight with fn's writes (InsertIdempotencyClaim), so the claim commits
// with the work or not at all, and is resolved once it did. A key held by a duplicate
// in flight stops fn as the claim's refusal; a key recorded or claimed by another
// request since the look-up is claimed on its own, and fn runs again. Any other claim
// not taken yet is taken on its own first. When fn fails, or refuses with a commit
// (commitThen), the claim is left pending, and the transport takes it before it
// answers.
func withClaimingTx[T any](ctx context.Context, pool *pgxpool.Pool, clock func() time.Time, claim *idempotency.Claim,
	fn func(tx *pipelinedTx, now time.Time) (T, error),
) (T, error) {
	var zero T
	if claim == nil || !claim.Free() {
		if claim != nil {
			if err := claim.Take(ctx); err != nil {
				return zero, err
			}
		}
		return withPipelinedTx(ctx, pool, clock, fn)
	}
	claimID := checkout.NewID("clm_")
	result, err := runPipelinedTxOnce(ctx, pool, clock, nil, func(tx *pipelinedTx, now time.Time) (T, error) {
		tx.hold = claim
		result, err := fn(tx, now)
		if err != nil {
			return result, err
		}
		k := claim.Key
		if err := tx.deferred().InsertIdempotencyClaim(ctx, db.InsertIdempotencyClaimParams{
			Caller: k.Caller, Method: k.Method, Path: k.Path, Key: k.Key, ApiVersion: k.APIVersion,
			RequestHash: claim.Hash, ClaimID: claimID, Now: now,
		}); err != nil {
			return result, fmt.Errorf("claim idempotency key: %w", err)
		}
		return result, nil
	})
	switch {
	case errors.Is(err, errRideMissed):
		if err := claim.Take(ctx); err != nil {
			return zero, err
		}
		return withPipelinedTx(ctx, pool, clock, fn)
	case err != nil:
		return result, err
	}
	return result, claim.Resolve(idempotency.Outcome{Kind: idempotency.Claimed, ClaimID: claimID})
}

// runPipelinedTx runs fn in a pipelinedTx and commits, recording the response under
// claim (nil: none). A deferred claim not taken yet rides in fn's first round trip when
// ride says it may, and one whose key an earlier run found free is held by the
// transaction; otherwise, or when it could not settle there, it is taken on its own
// first and fn runs in a new transaction.
func runPipelinedTx[T any](ctx context.Context, pool *pgxpool.Pool, clock func() time.Time, claim *idempotency.Claim, ride bool,
	fn func(tx *pipelinedTx, now time.Time) (T, error),
) (T, error) {
	if claim != nil && !(claim.Pending() && (ride || claim.Free())) {
		if err := claim.Take(ctx); err != nil {
			var zero T
			return zero, err
		}
	}
	result, err := runPipelinedTxOnce(ctx, pool, clock, claim, fn)
	if errors.Is(err, errRideMissed) {
		if err := claim.Take(ctx); err != nil {
			return result, err
		}
		return runPipelinedTxOnce(ctx, pool, clock, claim, fn)
	}
	return result, err
}

// runPipelinedTxOnce is one run of runPipelinedTx's transaction.
func runPipelinedTxOnce[T any](ctx context.Context, pool *pgxpool.Pool, clock func() time.Time, claim *idempotency.Claim,
	fn func(tx *pipelinedTx, now time.Time) (T, error),
) (T, error) {
	var zero T
	tx, err := beginPipelinedTx(ctx, pool)
	if err != nil {
		return zero, err
	}
	defer tx.rollback(ctx)
	now := clock()
	switch {
	case claim == nil:
	case claim.Free():
		tx.hold = claim // found free by the transport's look-up, or by an earlier run's
	case claim.Pending():
		tx.rideClaim(claim)
	}
	result, err := fn(tx, now)
	var refusal *commitThen
	if errors.As(err, &refusal) {
		if err := tx.commit(ctx); err != nil {
			return zero, tx.heldKeyError(fmt.Errorf("commit: %w", err))
		}
		return zero, refusal.err
	}
	if err != nil {
		return zero, tx.heldKeyError(err)
	}
	var recorded *idempotency.Response
	// A claim whose key the first round trip found free is recorded by inserting the
	// key (holds). A claim still pending otherwise rides the COMMIT: fn sent nothing.
	// Without a response to record, nothing would stop the work when the key is not the
	// request's, so the claim is then taken on its own. A key fn holds without a claim
	// here is withClaimingTx's, which inserts and settles it.
	holds := claim != nil && tx.hold == claim
	ridesCommit := !holds && claim != nil && claim.Pending()
	if (holds || ridesCommit) && claim.Encode == nil {
		return zero, errRideMissed
	}
	var claimID string
	if claim != nil && claim.Encode != nil {
		response, err := claim.Render(result)
		if err != nil {
			return zero, fmt.Errorf("encode response: %w", err)
		}
		recorded = &response
		record := completeKeyParams(claim, response, now)
		if holds || ridesCommit {
			claimID = checkout.NewID("clm_")
			err = tx.deferred().InsertIdempotentResponse(ctx, db.InsertIdempotentResponseParams{
				Caller: claim.Key.Caller, Method: claim.Key.Method, Path: claim.Key.Path, Key: claim.Key.Key,
				ApiVersion: claim.Key.APIVersion, RequestHash: claim.Hash, ClaimID: claimID, Gzipped: response.Gzipped,
				Now: now, ResponseStatus: record.ResponseStatus, ResponseBody: response.Body,
			})
		} else {
			err = tx.deferred().RecordIdempotentResponse(ctx, db.RecordIdempotentResponseParams(record))
		}
		if err != nil {
			return zero, fmt.Errorf("record idempotent response: %w", err)
		}
	}
	commit := tx.commit
	if ridesCommit {
		commit = func(ctx context.Context) error { return tx.commitRidden(ctx, claimID) }
	}
	if err := commit(ctx); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == claimLostCode {
			return zero, errClaimLost
		}
		return zero, tx.heldKeyError(fmt.Errorf("commit: %w", err))
	}
	if holds {
		if err := claim.Resolve(idempotency.Outcome{Kind: idempotency.Claimed, ClaimID: claimID}); err != nil {
			return zero, err
		}
	}
	if recorded != nil {
		claim.Committed(*recorded)
	}
	return result, nil
}

// keyHeldCode and keyConflictCode are hold_idempotency_key's SQLSTATEs (migration
// 00030): the key is held by a request with the same body, or with another.
const (
	keyHeldCode     = "AC415"
	keyConflictCode = "AC416"
)

// isKeyRecorded reports whether err is the failure of a key's insert
// (InsertIdempotentResponse) because the key has a row since its look-up.
func isKeyRecorded(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "idempotency_keys_pkey"
}

// heldKeyError is err, the error that ended a transaction holding a free key, as the
// request answers it: the key held by another request in flight stops the work as the
// claim's refusal (409 idempotency_in_flight, or the key's conflict when that request
// has another body); the key recorded or claimed by another request since the look-up
// sends the request to its claim, on its own, which finds what that request left
// (errRideMissed).
func (t *pipelinedTx) heldKeyError(err error) error {
	var pgErr *pgconn.PgError
	if t.hold == nil || !errors.As(err, &pgErr) {
		return err
	}
	switch {
	case pgErr.Code == keyHeldCode:
		return t.hold.Resolve(idempotency.Outcome{Kind: idempotency.InFlight})
	case pgErr.Code == keyConflictCode:
		return t.hold.Resolve(idempotency.Outcome{Kind: idempotency.Conflict})
	case isKeyRecorded(err):
		return errRideMissed
	}
	return err
}
