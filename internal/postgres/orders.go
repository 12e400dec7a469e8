package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/agentic-commerce/agentic-commerce-server/db"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/payment"
	"github.com/agentic-commerce/agentic-commerce-server/internal/webhook"
)

// Orders is the merchant's side of orders: list, read, move through the lifecycle and
// refund. Every change writes an order_update event in its own transaction's outbox.
type Orders struct {
	pool   *pgxpool.Pool
	events bool
	now    func() time.Time
	// gateway refunds orders paid with a PSP token (nil: refunds are only recorded).
	gateway payment.Gateway
}

// NewOrders returns the order store; events says whether order events are written to
// the outbox (only when a webhook receiver is configured).
func NewOrders(pool *pgxpool.Pool, events bool) *Orders {
	return &Orders{pool: pool, events: events, now: storedNow}
}

// ErrOrderNotFound is returned for an unknown order id.
var ErrOrderNotFound = &checkout.Error{Kind: checkout.KindNotFound, Code: "not_found", Message: "Order not found."}

// Get returns an order with its refunds and lines.
func (o *Orders) Get(ctx context.Context, id string) (*checkout.Order, error) {
	return o.get(ctx, id)
}

// get reads order id and everything it is read from, and the reads of more, in one
// round trip: a pipeline of reads outside any transaction, each with its own snapshot,
// as separate statements would be.
func (o *Orders) get(ctx context.Context, id string, more ...orderRead) (*checkout.Order, error) {
	return withPipelinedTx(ctx, o.pool, o.now, func(tx *pipelinedTx, _ time.Time) (*checkout.Order, error) {
		tx.readOutside()
		return readOrder(ctx, tx, id, "load order", func(q *db.Queries) (db.Order, error) { return q.GetOrder(ctx, id) }, more...)
	})
}

// readOrder reads order id in one round trip of tx: its row, as row reads it (what
// names the read in its error), then the reads of more, then everything the order is
// read from (orderDetails), which so sees what more wrote.
func readOrder(ctx context.Context, tx *pipelinedTx, id, what string, row func(q *db.Queries) (db.Order, error), more ...orderRead) (*checkout.Order, error) {
	var order db.Order
	var rowErr error
	readRow := func(q *db.Queries) error {
		order, rowErr = row(q)
		if rowErr != nil && !isNoRows(rowErr) {
			return fmt.Errorf("%s: %w", what, rowErr)
		}
		return nil // no such order: answered once the round trip is back
	}
	var d orderDetails
	if err := tx.readAll(append(append([]orderRead{readRow}, more...), d.reads(ctx, id)...)); err != nil {
		return nil, err
	}
	if isNoRows(rowErr) {
		return nil, ErrOrderNotFound
	}
	return d.order(order)
}

// List returns up to limit orders, newest first, created before the order
// (beforeCreated, beforeID) when given, with status when not empty.
func (o *Orders) List(ctx context.Context, status string, beforeCreated *time.Time, beforeID string, limit int) ([]*checkout.Order, error) {
	q := db.New(o.pool)
	p := db.ListOrdersParams{BeforeCreated: beforeCreated, BeforeID: beforeID, MaxRows: int32(limit)}
	if status != "" {
		p.Status = &status
	}
	rows, err := q.ListOrders(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("list orders: %w", err)
	}
	if len(rows) == 0 {
		return nil, nil
	}
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	// The page's refunds in one round trip: a page is two, whatever its size.
	refunds, err := q.ListRefunds(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("load refunds: %w", err)
	}
	byOrder := make(map[string][]db.Refund, len(rows))
	for _, r := range refunds {
		byOrder[r.OrderID] = append(byOrder[r.OrderID], r)
	}
	out := make([]*checkout.Order, len(rows))
	for i, r := range rows {
		out[i] = orderWithRefunds(r, byOrder[r.ID])
	}
	return out, nil
}

// SetStatus moves an order to status. Shipping puts every unit left into one shipment,
// fulfilling delivers the shipments, and canceling takes the units off the order and
// puts them back in stock.
func (o *Orders) SetStatus(ctx context.Context, id string, status checkout.OrderStatus) (*checkout.Order, error) {
	return o.change(ctx, id, func(ord *checkout.Order, now time.Time) error {
		return ord.MoveTo(status, now)
	})
}

// Refund records a refund of amount; refunds never exceed what was paid. A refund to
// the original payment of an order paid with a PSP token goes through the gateway
// (WithGateway).
func (o *Orders) Refund(ctx context.Context, id string, t checkout.RefundType, amount int64) (*checkout.Order, error) {
	return o.refund(ctx, id, checkout.RefundRequest{Type: t, Amount: amount})
}

// change locks the order, applies fn and writes the order_update event, in one
// transaction, which also records the response of the request's Idempotency-Key.
//
// It is a pipelinedTx of two round trips: BEGIN, the order's row lock and everything
// the order is read from (with its lines: the event is the full order, and 2026-04-17
// sends every line in each order_update); then what fn changed, the event, the record
// of the response and COMMIT.
func (o *Orders) change(ctx context.Context, id string, fn func(ord *checkout.Order, now time.Time) error) (*checkout.Order, error) {
	return withPipelinedRecordedTx(ctx, o.pool, o.now, func(tx *pipelinedTx, now time.Time) (*checkout.Order, error) {
		ord, err := readOrder(ctx, tx, id, "lock order", func(q *db.Queries) (db.Order, error) { return q.GetOrderForUpdate(ctx, id) })
		if err != nil {
			return nil, err
		}
		before := cloneOrder(ord)
		if err := fn(ord, now); err != nil {
			return nil, err
		}
		deferred := tx.deferred()
		if err := saveOrderChanges(ctx, deferred, before, ord, now); err != nil {
			return nil, err
		}
		return ord, o.emit(ctx, deferred, webhook.OrderUpdate, ord, now)
	})
}

// emit writes an order event to the outbox, in the caller's transaction.
func (o *Orders) emit(ctx context.Context, q *db.Queries, eventType string, ord *checkout.Order, now time.Time) error {
	return emitEvent(ctx, q, o.events, eventType, ord, now)
}

func emitEvent(ctx context.Context, q *db.Queries, enabled bool, eventType string, ord *checkout.Order, now time.Time) error {
	if !enabled {
		return nil
	}
	// The outbox keeps a snapshot of the order; the worker encodes the body when it sends,
	// in the platform's WEBHOOK_API_VERSION.
	payload, err := encodeSnapshot(eventType, ord, now)
	if err != nil {
		return fmt.Errorf("encode order event: %w", err)
	}
	if err := q.InsertOrderEvent(ctx, db.InsertOrderEventParams{
		OrderID: ord.ID, Type: eventType, Payload: payload, PayloadFormat: formatSnapshotV1, Now: now,
	}); err != nil {
		return fmt.Errorf("write order event: %w", err)
	}
	return nil
}

// orderWithRefunds is the order of row with refunds, its rows in ListRefunds' order.
func orderWithRefunds(row db.Order, refunds []db.Refund) *checkout.Order {
	ord := &checkout.Order{
		ID: row.ID, CheckoutSessionID: row.CheckoutSessionID, PermalinkURL: row.PermalinkUrl,
		Status: checkout.OrderStatus(row.Status), Amount: row.Amount, Currency: row.Currency,
		Notes: deref(row.OrderNotes), CreatedAt: row.CreatedAt, UpdatedAt: row.UpdatedAt,
	}
	for _, r := range refunds {
		ord.Refunds = append(ord.Refunds, checkout.Refund{
			ID: r.ID, Type: checkout.RefundType(r.Type), Amount: r.Amount,
			Description: deref(r.Description), Reason: deref(r.Reason), CreatedAt: r.CreatedAt,
		})
	}
	return ord
}

// fullOrder is the order of row with its refunds, lines, fulfilments, cancellations and
// amounts (orderDetails), read through q a statement at a time: what an order event
// carries and what Get returns.
func fullOrder(ctx context.Context, q *db.Queries, row db.Order) (*checkout.Order, error) {
	var d orderDetails
	for _, read := range d.reads(ctx, row.ID) {
		if err := read(q); err != nil {
			return nil, err
		}
	}
	return d.order(row)
}

// Page reads what the order page of id shows.
func (o *Orders) Page(ctx context.Context, id string) (*checkout.OrderPage, error) {
	var card *db.GetOrderCardRow
	ord, err := o.get(ctx, id, func(q *db.Queries) error {
		card = nil
		c, err := q.GetOrderCard(ctx, &id)
		switch {
		case err == nil:
			card = &c
		case !isNoRows(err):
			return fmt.Errorf("load order card: %w", err)
		}
		return nil // no card: an order paid with a PSP token
	})
	if err != nil {
		return nil, err
	}
	page := &checkout.OrderPage{Order: ord, Lines: ord.Lines}
	if card != nil {
		page.CardBrand, page.CardLast4 = card.CardBrand, card.CardLast4
	}
	return page, nil
}

// Outbox is the order event outbox in PostgreSQL.
type Outbox struct {
	pool  *pgxpool.Pool
	lease time.Duration
	now   func() time.Time
}

// NewOutbox returns the outbox on pool. lease is how long a claimed event is kept from
// other workers; it must exceed one delivery attempt (the webhook timeout).
func NewOutbox(pool *pgxpool.Pool, lease time.Duration) *Outbox {
	return &Outbox{pool: pool, lease: lease, now: storedNow}
}

// Deliver leases the next due event (SKIP LOCKED, so instances share the work), calls
// send with no database connection held (a slow receiver cannot starve the API of
// connections), and records the result. A crash during send leaves the event pending;
// it is sent again when the lease runs out (at least once).
func (o *Outbox) Deliver(ctx context.Context, send func(webhook.Event) webhook.Result) (bool, error) {
	q := db.New(o.pool)
	now := o.now()
	row, err := q.ClaimOrderEvent(ctx, db.ClaimOrderEventParams{Now: now, LeaseUntil: now.Add(o.lease)})
	if isNoRows(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("claim order event: %w", err)
	}
	res := send(outboxEvent(row.ID, row.OrderID, row.Type, row.PayloadFormat, row.Payload, int(row.Attempts), row.CreatedAt))
	// The result is recorded even if ctx ended meanwhile (the attempt happened), within
	// a bound: an unrecorded attempt is simply retried when the lease runs out.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	now = o.now()
	if res.Delivered {
		_, err = q.MarkOrderEventDelivered(ctx, db.MarkOrderEventDeliveredParams{ID: row.ID, Attempts: row.Attempts, Now: &now})
	} else {
		next := res.NextRetry
		if next.IsZero() {
			next = now
		}
		_, err = q.MarkOrderEventFailed(ctx, db.MarkOrderEventFailedParams{
			ID: row.ID, Attempts: row.Attempts, LastError: &res.Error, NextAttemptAt: next, Dead: res.Dead,
		})
	}
	if err != nil {
		return true, fmt.Errorf("record delivery of event %d: %w", row.ID, err)
	}
	return true, nil
}

// Backlog counts the events still to deliver.
func (o *Outbox) Backlog(ctx context.Context) (int64, error) {
	return db.New(o.pool).CountPendingOrderEvents(ctx)
}

// Sweeper runs the time-based jobs. Each statement is safe on several instances at once.
type Sweeper struct {
	pool *pgxpool.Pool
	now  func() time.Time
}

// NewSweeper returns the sweeper on pool.
func NewSweeper(pool *pgxpool.Pool) *Sweeper { return &Sweeper{pool: pool, now: storedNow} }

// sweepBatch bounds one statement so a large backlog does not hold locks for long.
const sweepBatch = 1000

// ExpireSessions cancels open sessions past their expiry and returns how many.
func (s *Sweeper) ExpireSessions(ctx context.Context) (int64, error) {
	var total int64
	q := db.New(s.pool)
	for {
		n, err := q.ExpireSessions(ctx, db.ExpireSessionsParams{Now: s.now(), MaxRows: sweepBatch})
		total += n
		if err != nil {
			return total, fmt.Errorf("expire sessions: %w", err)
		}
		if n < sweepBatch {
			return total, nil
		}
	}
}

// DeleteExpiredTokens removes unused vault tokens expired before grace ago, or created
// before lifetime ago (0: no such bound).
func (s *Sweeper) DeleteExpiredTokens(ctx context.Context, grace, lifetime time.Duration) (int64, error) {
	now := s.now()
	createdBefore := time.Time{}
	if lifetime > 0 {
		createdBefore = now.Add(-lifetime)
	}
	n, err := db.New(s.pool).DeleteExpiredVaultTokens(ctx, db.DeleteExpiredVaultTokensParams{
		ExpiredBefore: now.Add(-grace), CreatedBefore: createdBefore,
	})
	if err != nil {
		return n, fmt.Errorf("delete expired vault tokens: %w", err)
	}
	return n, nil
}
