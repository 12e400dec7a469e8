package v20260417

import (
	"slices"
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
// way in both). Line quantities and statuses come from the order's fulfilments and
// cancellations (ORD-RFC §4.2); a refund to the card is an adjustment of type refund,
// store credit one of type credit, a cancellation one of type cancellation; the total
// is what was charged, never net of refunds (ORD-RFC §4.6), and amount_refunded their
// sum. It reads nothing but o: the webhook encodes the same event to the same bytes on
// every attempt.
func EncodeOrder(o *checkout.Order) Order {
	out := Order{
		Type: ptr(OrderTypeOrder), Id: o.ID, CheckoutSessionId: o.CheckoutSessionID,
		PermalinkUrl: o.PermalinkURL, Status: nonEmpty(orderStatus(o.Status)),
	}
	if o.Notes != "" {
		// The buyer's own notes, echoed where the JSON Schema has them (checklist I-08).
		out.Confirmation = &OrderConfirmation{OrderNotes: &o.Notes}
	}
	if len(o.Lines) > 0 {
		lines := make([]OrderLineItem, len(o.Lines))
		for i, l := range o.Lines {
			lines[i] = orderLine(l, o.FulfilledUnits(l.ID))
		}
		out.LineItems = &lines
	}
	// An empty list says no fulfilment is tracked yet (ORD-RFC §7.3).
	fulfillments := make([]Fulfillment, len(o.Fulfillments))
	for i, f := range o.Fulfillments {
		fulfillments[i] = fulfillment(f)
	}
	out.Fulfillments = &fulfillments

	var totals []Total
	if a := o.Amounts; a != nil {
		totals = append(totals, Total{Type: TotalTypeSubtotal, DisplayText: "Subtotal", Amount: int(a.Subtotal)})
		if a.Discount > 0 {
			totals = append(totals, Total{Type: TotalTypeDiscount, DisplayText: "Discount", Amount: int(a.Discount)})
		}
		totals = append(totals,
			Total{Type: TotalTypeFulfillment, DisplayText: "Shipping", Amount: int(a.Fulfillment)},
			Total{Type: TotalTypeTax, DisplayText: "Tax", Amount: int(a.Tax)})
	}
	totals = append(totals, Total{Type: TotalTypeTotal, DisplayText: "Total", Amount: int(o.Amount)})
	if refunded := o.Refunded(); refunded > 0 {
		totals = append(totals, Total{Type: TotalTypeAmountRefunded, DisplayText: "Refunded", Amount: int(refunded)})
	}
	out.Totals = &totals

	adjustments := make([]Adjustment, 0, len(o.Refunds)+len(o.Cancellations))
	for _, r := range o.Refunds {
		adjustments = append(adjustments, Adjustment{
			Id: r.ID, Type: adjustmentType(r.Type), OccurredAt: r.CreatedAt.UTC(),
			// A refund is recorded once it is made: there is no pending state.
			Status: "completed", Amount: ptr(int(r.Amount)), Currency: nonEmpty(o.Currency),
			LineItems: lineRefs(r.Lines), Description: nonEmpty(r.Description), Reason: nonEmpty(r.Reason),
		})
	}
	for _, c := range o.Cancellations {
		adjustments = append(adjustments, Adjustment{
			Id: c.ID, Type: "cancellation", OccurredAt: c.CreatedAt.UTC(), Status: "completed",
			LineItems: lineRefs(c.Lines), Description: nonEmpty(c.Description), Reason: nonEmpty(c.Reason),
		})
	}
	slices.SortStableFunc(adjustments, func(a, b Adjustment) int { return a.OccurredAt.Compare(b.OccurredAt) })
	out.Adjustments = &adjustments
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

// orderLine renders one bought line by ORD-RFC's quantity model, its status derived
// from the quantities (§4.2). The subtotal is what the line cost at completion (after
// discounts), or its price times the quantity ordered for orders from before that was
// kept.
func orderLine(l checkout.OrderLine, fulfilled int) OrderLineItem {
	subtotal := l.UnitAmount * int64(l.Quantity)
	if l.Priced {
		subtotal = l.Subtotal
	}
	status := string(checkout.LineStatusOf(l.Current, fulfilled))
	return OrderLineItem{
		Id: l.ID, Title: l.Title, ProductId: nonEmpty(l.ItemID),
		Quantity: OrderLineItemQuantity{Ordered: l.Quantity, Current: l.Current, Fulfilled: ptr(fulfilled)},
		Status:   &status, UnitPrice: ptr(int(l.UnitAmount)), Subtotal: ptr(int(subtotal)),
	}
}

// fulfillment renders one fulfilment with its whole event history.
func fulfillment(f checkout.Fulfillment) Fulfillment {
	out := Fulfillment{
		Id: f.ID, Type: FulfillmentType(f.Type), Status: nonEmpty(string(f.Status)), LineItems: lineRefs(f.Lines),
		Carrier: nonEmpty(f.Carrier), TrackingNumber: nonEmpty(f.TrackingNumber), TrackingUrl: nonEmpty(f.TrackingURL),
		Description: nonEmpty(f.Description),
	}
	if d := f.Destination; d != nil {
		out.Destination = &Address{Name: d.Name, Company: nonEmpty(d.Company), LineOne: d.LineOne, LineTwo: nonEmpty(d.LineTwo),
			City: d.City, State: d.State, Country: d.Country, PostalCode: d.PostalCode}
	}
	if f.EarliestDelivery != nil && f.LatestDelivery != nil {
		out.EstimatedDelivery = &EstimatedDelivery{Earliest: f.EarliestDelivery.UTC(), Latest: f.LatestDelivery.UTC()}
	}
	if d := f.Digital; d != nil {
		out.DigitalDelivery = &struct {
			AccessUrl  *string    `json:"access_url,omitempty"`
			ExpiresAt  *time.Time `json:"expires_at,omitempty"`
			LicenseKey *string    `json:"license_key,omitempty"`
		}{AccessUrl: nonEmpty(d.AccessURL), LicenseKey: nonEmpty(d.LicenseKey)}
		if d.ExpiresAt != nil {
			out.DigitalDelivery.ExpiresAt = timePtr(*d.ExpiresAt)
		}
	}
	events := make([]FulfillmentEvent, len(f.Events))
	for i, e := range f.Events {
		events[i] = FulfillmentEvent{Id: e.ID, Type: string(e.Type), OccurredAt: e.OccurredAt.UTC(),
			Description: nonEmpty(e.Description), Location: nonEmpty(e.Location)}
	}
	out.Events = &events
	return out
}

// lineRefs renders units of lines as LineItemReferences, or nil for none.
func lineRefs(ls []checkout.LineQuantity) *[]LineItemReference {
	if len(ls) == 0 {
		return nil
	}
	out := make([]LineItemReference, len(ls))
	for i, l := range ls {
		out[i] = LineItemReference{Id: l.LineID, Quantity: l.Quantity}
	}
	return &out
}

// timePtr is t in UTC, or nil for the zero time (a field the session does not have).
func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}
