package v20260417

import (
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
)

// orderStatus shows a domain order status in 2026-04-17: fulfilled is completed there
// ("all items delivered", checklist I-02); the other statuses are spelled alike.
func orderStatus(s checkout.OrderStatus) string {
	if s == checkout.OrderFulfilled {
		return "completed"
	}
	return string(s)
}

// EncodeOrder renders an order as the 2026-04-17 Order: the one of a completed
// session's response, and the data of every order webhook event of this version
// (internal/webhook's 2026-04-17 encoder calls it, so an agent reads one order the same
// way in both). A refund to the card is an adjustment of type refund, store credit one
// of type credit; the total is what was charged, never net of refunds (ORD-RFC §4.6),
// and amount_refunded their sum. It reads nothing but o: the webhook encodes the same
// event to the same bytes on every attempt.
func EncodeOrder(o *checkout.Order) Order {
	out := Order{
		Type: ptr(OrderTypeOrder), Id: o.ID, CheckoutSessionId: o.CheckoutSessionID,
		PermalinkUrl: o.PermalinkURL, Status: nonEmpty(orderStatus(o.Status)),
		// Fulfillments are not tracked yet; an empty list says so (ORD-RFC §7.3).
		Fulfillments: &[]Fulfillment{},
	}
	if len(o.Lines) > 0 {
		lines := make([]OrderLineItem, len(o.Lines))
		for i, l := range o.Lines {
			lines[i] = orderLine(l, o.Status)
		}
		out.LineItems = &lines
	}
	totals := []Total{{Type: TotalTypeTotal, DisplayText: "Total", Amount: int(o.Amount)}}
	if refunded := o.Refunded(); refunded > 0 {
		totals = append(totals, Total{Type: TotalTypeAmountRefunded, DisplayText: "Refunded", Amount: int(refunded)})
	}
	adjustments := make([]Adjustment, len(o.Refunds))
	for i, r := range o.Refunds {
		adjustments[i] = Adjustment{
			Id: r.ID, Type: adjustmentType(r.Type), OccurredAt: r.CreatedAt.UTC(),
			// A refund is recorded once it is made: there is no pending state.
			Status: "completed", Amount: ptr(int(r.Amount)), Currency: nonEmpty(o.Currency),
		}
	}
	out.Totals, out.Adjustments = &totals, &adjustments
	return out
}

// adjustmentType is the adjustment type of a refund: money back to the original
// payment is a refund, store credit a credit (2026-04-17 renamed store_credit).
func adjustmentType(t checkout.RefundType) string {
	if t == checkout.RefundStoreCredit {
		return "credit"
	}
	return "refund"
}

// orderLine renders one bought line by ORD-RFC's quantity model: a canceled order keeps
// none of its items, and orders ship whole, so every unit is fulfilled (dispatched)
// once the order has shipped. The status is derived from the quantities (§4.2).
func orderLine(l checkout.OrderLine, status checkout.OrderStatus) OrderLineItem {
	q := OrderLineItemQuantity{Ordered: l.Quantity, Current: l.Quantity, Fulfilled: ptr(0)}
	switch status {
	case checkout.OrderCanceled:
		q.Current = 0
	case checkout.OrderShipped, checkout.OrderFulfilled:
		q.Fulfilled = ptr(l.Quantity)
	}
	lineStatus := "processing"
	switch {
	case q.Current == 0:
		lineStatus = "removed"
	case *q.Fulfilled == q.Current:
		lineStatus = "fulfilled"
	case *q.Fulfilled > 0:
		lineStatus = "partial"
	}
	return OrderLineItem{
		Id: l.ID, Title: l.Title, ProductId: nonEmpty(l.ItemID), Quantity: q, Status: &lineStatus,
		UnitPrice: ptr(int(l.UnitAmount)), Subtotal: ptr(int(l.UnitAmount) * l.Quantity),
	}
}

// timePtr is t in UTC, or nil for the zero time (a field the session does not have).
func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}
