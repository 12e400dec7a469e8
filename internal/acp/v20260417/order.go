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
// session's response, and the data of an order webhook event of this version (whose
// encoder is elsewhere, so this is exported; it depends on nothing of the HTTP layer
// or the webhooks). Refunds are adjustments of type refund; the total is what was
// charged, never net of refunds (ORD-RFC §4.6), and amount_refunded their sum.
func EncodeOrder(o *checkout.Order) Order {
	out := Order{
		Type: ptr(OrderTypeOrder), Id: o.ID, CheckoutSessionId: o.CheckoutSessionID,
		PermalinkUrl: o.PermalinkURL, Status: nonEmpty(orderStatus(o.Status)),
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
	adjustments := make([]Adjustment, len(o.Refunds))
	var refunded int64
	for i, r := range o.Refunds {
		refunded += r.Amount
		adjustments[i] = Adjustment{
			Id: r.ID, Type: "refund", OccurredAt: r.CreatedAt.UTC(), Status: "completed",
			Amount: ptr(int(r.Amount)), Currency: nonEmpty(o.Currency),
			// How the money went back: to the card or as store credit.
			Reason: nonEmpty(string(r.Type)),
		}
	}
	if refunded > 0 {
		totals = append(totals, Total{Type: TotalTypeAmountRefunded, DisplayText: "Refunded", Amount: int(refunded)})
	}
	out.Totals, out.Adjustments = &totals, &adjustments
	return out
}

// orderLine renders one bought line. Its quantity follows ORD-RFC's model: all of it
// stays current unless the order was canceled, and all of it is fulfilled once the
// order is; the status is derived from the quantities as ORD-RFC §4.2 says.
func orderLine(l checkout.OrderLine, status checkout.OrderStatus) OrderLineItem {
	q := OrderLineItemQuantity{Ordered: l.Quantity, Current: l.Quantity, Fulfilled: ptr(0)}
	switch status {
	case checkout.OrderCanceled:
		q.Current = 0
	case checkout.OrderFulfilled:
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
	title := l.Title
	if title == "" {
		title = l.ItemID // a variant no longer sold has no title; its id still tells it apart
	}
	return OrderLineItem{
		Id: l.ID, Title: title, Quantity: q, Status: &lineStatus,
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
