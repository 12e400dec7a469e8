package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/db"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/idempotency"
	"github.com/agentic-commerce/agentic-commerce-server/internal/payment"
	"github.com/agentic-commerce/agentic-commerce-server/internal/webhook"
)

var (
	errRefundPending = checkout.Errorf(checkout.KindUnavailable, checkout.CodeRefundPending, checkout.Field{},
		"The payment service provider has not confirmed the refund yet. Nothing more will be refunded: retry with the same Idempotency-Key to finish it.")
	errRefundInProgress = checkout.Errorf(checkout.KindConflict, checkout.CodeRefundInProgress, checkout.Field{},
		"Another refund of this order is waiting for the payment service provider; retry once it is settled.")
)

// mockGatewayName is the gateway of PSP-token orders from before payment_gateway was
// recorded: the mock was the only gateway then.
const mockGatewayName = "mock"

// WithGateway makes refunds to the original payment of orders paid with a PSP token go
// through g, the gateway that charged them, and returns o. Without it (and for orders
// paid with a vault token, our mock PSP, and store credit) refunds are only recorded.
func (o *Orders) WithGateway(g payment.Gateway) *Orders {
	o.gateway = g
	return o
}

// pendingRefund is a refund recorded pending, to be sent to the PSP.
type pendingRefund struct {
	id, orderID, reference, currency string
	amount                           int64
}

// refund records req on order id: through the gateway when the order was paid with a
// PSP token to its original payment, otherwise in one transaction.
func (o *Orders) refund(ctx context.Context, id string, req checkout.RefundRequest) (*checkout.Order, error) {
	if o.gateway == nil || req.Type != checkout.RefundOriginalPayment {
		return o.recordRefund(ctx, id, req)
	}
	pay, err := db.New(o.pool).GetOrderPayment(ctx, id)
	if isNoRows(err) {
		return nil, ErrOrderNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("load order payment: %w", err)
	}
	if pay.PaymentMethod != "psp_token" {
		return o.recordRefund(ctx, id, req)
	}
	if charged := cmp.Or(deref(pay.PaymentGateway), mockGatewayName); charged != o.gateway.Name() {
		return nil, checkout.Errorf(checkout.KindConflict, checkout.CodeRefundRefused, checkout.Field{},
			"Order %s was charged through the %s gateway; this server refunds through %s. Refund it at %s.",
			id, charged, o.gateway.Name(), charged)
	}
	p, err := o.beginRefund(ctx, id, req)
	if err != nil {
		return nil, err
	}
	receipt, err := o.gateway.Refund(ctx, payment.Refund{
		Reference: p.reference, Amount: p.amount, Currency: p.currency, OrderID: p.orderID, IdempotencyKey: p.id,
	})
	return o.settleRefund(ctx, p, receipt, err)
}

// recordRefund records req on order id in one transaction, with its order_update event.
func (o *Orders) recordRefund(ctx context.Context, id string, req checkout.RefundRequest) (*checkout.Order, error) {
	return o.change(ctx, id, func(ord *checkout.Order, now time.Time) error {
		_, err := ord.AddRefundRequest(req, now)
		return err
	})
}

// beginRefund records req pending on order id, under the order's row lock (refunds
// never exceed what was paid, pending ones included), and returns what to send to the
// PSP. A retry with the Idempotency-Key of a pending refund resumes it; any other
// refund waits until the pending one is settled. The request's key, found free by the
// transport's look-up, is held from the transaction's first statement and claimed with
// its writes (withClaimingTx), so that it stays claimed while the PSP answers and
// settleRefund records the response under that claim, as a PSP completion's first
// phase does.
func (o *Orders) beginRefund(ctx context.Context, id string, req checkout.RefundRequest) (pendingRefund, error) {
	key := requestKey(ctx)
	// A pipelinedTx of two round trips: BEGIN, the key's hold, the order's row lock,
	// its pending refund and everything the order is read from; then the refund's rows,
	// the key's claim and COMMIT.
	return withClaimingTx(ctx, o.pool, o.now, idempotency.FromContext(ctx), func(tx *pipelinedTx, now time.Time) (pendingRefund, error) {
		var row db.Order
		var pending db.Refund
		var pendingErr error
		ord, err := readOrder(ctx, tx, id, "lock order", func(q *db.Queries) (db.Order, error) {
			var err error
			row, err = q.GetOrderForUpdate(ctx, id)
			return row, err
		}, func(q *db.Queries) error {
			pending, pendingErr = q.GetPendingRefund(ctx, id)
			if pendingErr != nil && !isNoRows(pendingErr) {
				return fmt.Errorf("load pending refund: %w", pendingErr)
			}
			return nil // none pending: the usual case, answered below
		})
		if err != nil {
			return pendingRefund{}, err
		}
		p := pendingRefund{orderID: row.ID, reference: row.PaymentReference, currency: row.Currency}
		switch {
		case pendingErr == nil && key != "" && deref(pending.RequestKey) == key:
			p.id, p.amount = pending.ID, pending.Amount
			return p, nil
		case pendingErr == nil:
			return pendingRefund{}, errRefundInProgress
		}
		before := cloneOrder(ord)
		r, err := ord.AddRefundRequest(req, now)
		if err != nil {
			return pendingRefund{}, err
		}
		deferred := tx.deferred()
		if err := saveOrderChanges(ctx, deferred, before, ord, now); err != nil {
			return pendingRefund{}, err
		}
		if err := deferred.SetRefundPending(ctx, db.SetRefundPendingParams{ID: r.ID, RequestKey: nonEmpty(key)}); err != nil {
			return pendingRefund{}, fmt.Errorf("mark refund pending: %w", err)
		}
		p.id, p.amount = r.ID, r.Amount
		return p, nil
	})
}

// settleRefund records the gateway's answer (receipt, err) to pending refund p: marked
// succeeded with its order_update event (and the request's idempotent response), or
// removed when the PSP refused it, or left pending when the answer is in doubt.
func (o *Orders) settleRefund(ctx context.Context, p pendingRefund, receipt payment.RefundReceipt, err error) (*checkout.Order, error) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	switch {
	case err == nil:
		// A pipelinedTx of two round trips: BEGIN, the order's row lock, the refund
		// marked succeeded and the order read after it; then the event, the record of
		// the response and COMMIT.
		return withPipelinedRecordedTx(sctx, o.pool, o.now, func(tx *pipelinedTx, now time.Time) (*checkout.Order, error) {
			var marked int64
			ord, err := readOrder(sctx, tx, p.orderID, "lock order", func(q *db.Queries) (db.Order, error) {
				return q.GetOrderForUpdate(sctx, p.orderID)
			}, func(q *db.Queries) (err error) {
				marked, err = q.MarkRefundSucceeded(sctx, db.MarkRefundSucceededParams{ID: p.id, PspReference: &receipt.Reference})
				return wrapErr(err, "mark refund succeeded")
			})
			if err != nil || marked == 0 {
				return ord, err // settled by another caller, who sent the event
			}
			return ord, o.emit(sctx, tx.deferred(), webhook.OrderUpdate, ord, now)
		})
	case errors.Is(err, payment.ErrUnavailable) || ctx.Err() != nil:
		return nil, fmt.Errorf("%w (%w)", errRefundPending, err)
	}
	// One round trip, the pipeline's implicit transaction: the order's row lock (every
	// change of its refunds holds it) and the refund removed with its lines.
	if _, derr := withPipelinedTx(sctx, o.pool, o.now, func(tx *pipelinedTx, _ time.Time) (struct{}, error) {
		if err := tx.readAlong(func(q *db.Queries) error {
			_, err := q.GetOrderForUpdate(sctx, p.orderID)
			return wrapErr(err, "lock order")
		}); err != nil {
			return struct{}{}, err
		}
		return struct{}{}, wrapErr(tx.deferred().DeletePendingRefund(sctx, p.id), "delete refund")
	}); derr != nil {
		return nil, fmt.Errorf("remove refused refund %s: %w", p.id, derr)
	}
	if de, ok := checkout.AsError(err); ok && de.Kind != checkout.KindInternal {
		return nil, de
	}
	return nil, checkout.Errorf(checkout.KindConflict, checkout.CodeRefundRefused, checkout.Field{},
		"The payment service provider refused the refund: %v. Nothing was recorded.", err)
}

// RecoverRefunds settles the refunds still pending since before now-staleAfter (their
// request ended without the PSP's answer): each is sent to the gateway again with its
// id as idempotency key, so a refund the PSP made is not made twice. It returns how many
// it settled and the errors of those it could not.
func (o *Orders) RecoverRefunds(ctx context.Context, staleAfter time.Duration) (int, error) {
	if o.gateway == nil {
		return 0, nil
	}
	rows, err := db.New(o.pool).ListStalePendingRefunds(ctx, db.ListStalePendingRefundsParams{
		StaleBefore: o.now().Add(-staleAfter), MaxRows: recoveryBatch,
	})
	if err != nil {
		return 0, fmt.Errorf("list pending refunds: %w", err)
	}
	var settled int
	var errs []error
	for _, r := range rows {
		if ctx.Err() != nil {
			break
		}
		if err := o.recoverRefund(ctx, r.OrderID, r.ID); err != nil {
			errs = append(errs, fmt.Errorf("refund %s of order %s: %w", r.ID, r.OrderID, err))
			continue
		}
		settled++
	}
	return settled, errors.Join(errs...)
}

// recoverRefund sends pending refund id of order orderID to the gateway again.
func (o *Orders) recoverRefund(ctx context.Context, orderID, id string) error {
	q := db.New(o.pool)
	pay, err := q.GetOrderPayment(ctx, orderID)
	if err != nil {
		return fmt.Errorf("load order payment: %w", err)
	}
	refunds, err := q.ListRefunds(ctx, []string{orderID})
	if err != nil {
		return fmt.Errorf("load refunds: %w", err)
	}
	p := pendingRefund{id: id, orderID: orderID, reference: pay.PaymentReference, currency: pay.Currency}
	for _, r := range refunds {
		if r.ID == id {
			p.amount = r.Amount
		}
	}
	receipt, err := o.gateway.Refund(ctx, payment.Refund{
		Reference: p.reference, Amount: p.amount, Currency: p.currency, OrderID: orderID, IdempotencyKey: id,
	})
	_, err = o.settleRefund(ctx, p, receipt, err)
	return err
}
