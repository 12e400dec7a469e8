package webhook

import (
	"encoding/json"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
)

// Version0417 is ACP 2026-04-17: the event's data is the full Order (with its lines,
// adjustments and totals), sent whole on every event.
const Version0417 = "2026-04-17"

// The wire shapes of the 2026-04-17 WebhookEvent. They are kept here, not shared with
// the checkout API's Order, so that the webhook package depends on the domain only;
// encoding/json writes their fields in the declared order, which keeps bodies
// byte-identical across attempts.
type event0417 struct {
	Type string    `json:"type"`
	Data order0417 `json:"data"`
}

type order0417 struct {
	// Type is always "order": 2026-04-17 requires the discriminator in webhooks.
	Type string `json:"type"`
	// ID is sent although the 2026-04-17 examples lack it: the schema requires it
	// (checklist I-27).
	ID                string `json:"id"`
	CheckoutSessionID string `json:"checkout_session_id"`
	PermalinkURL      string `json:"permalink_url"`
	Status            string `json:"status"`
	// LineItems is left out when the event's snapshot has no lines (a snapshot written
	// before lines were kept): an empty array would say nothing was bought.
	LineItems []lineItem0417 `json:"line_items,omitempty"`
	// Fulfillments is empty: fulfilments are not tracked yet, and an empty array is how
	// ORD-RFC §7.3 says so.
	Fulfillments []struct{}       `json:"fulfillments"`
	Adjustments  []adjustment0417 `json:"adjustments"`
	Totals       []total0417      `json:"totals"`
}

type lineItem0417 struct {
	ID        string           `json:"id"`
	Title     string           `json:"title"`
	ProductID string           `json:"product_id,omitempty"`
	Quantity  lineQuantity0417 `json:"quantity"`
	UnitPrice int64            `json:"unit_price"`
	Subtotal  int64            `json:"subtotal"`
	Status    string           `json:"status"`
}

type lineQuantity0417 struct {
	Ordered   int `json:"ordered"`
	Current   int `json:"current"`
	Fulfilled int `json:"fulfilled"`
}

type adjustment0417 struct {
	ID         string `json:"id"`
	Type       string `json:"type"`
	OccurredAt string `json:"occurred_at"`
	Status     string `json:"status"`
	Amount     int64  `json:"amount"`
	Currency   string `json:"currency,omitempty"`
}

type total0417 struct {
	Type        string `json:"type"`
	DisplayText string `json:"display_text"`
	Amount      int64  `json:"amount"`
}

// encode0417 renders the 2026-04-17 WebhookEvent of e: {type, data: the full Order}.
// Everything comes from the snapshot (times included), so every attempt sends the same
// bytes.
func encode0417(e Event) ([]byte, error) {
	o := e.Order
	data := order0417{
		Type: "order", ID: o.ID, CheckoutSessionID: o.CheckoutSessionID, PermalinkURL: o.PermalinkURL,
		Status:       orderStatus0417(o.Status),
		Fulfillments: []struct{}{},
		Adjustments:  make([]adjustment0417, len(o.Refunds)),
		Totals:       []total0417{{Type: "total", DisplayText: "Total", Amount: o.Amount}},
	}
	for _, l := range o.Lines {
		q := lineQuantity0417{Ordered: l.Quantity, Current: l.Quantity}
		switch o.Status {
		case checkout.OrderCanceled:
			// A canceled order's items are put back in stock: none remain on it.
			q.Current = 0
		case checkout.OrderShipped, checkout.OrderFulfilled:
			// Line "fulfilled" means dispatched by the seller (the Order.status
			// description; the spec's order_shipped example has fulfilled = current).
			// Orders ship whole, so every unit of every line is fulfilled once shipped.
			q.Fulfilled = l.Quantity
		}
		data.LineItems = append(data.LineItems, lineItem0417{
			ID: l.ID, Title: l.Title, ProductID: l.ItemID, Quantity: q,
			UnitPrice: l.UnitAmount, Subtotal: int64(l.Quantity) * l.UnitAmount, Status: lineStatus0417(q),
		})
	}
	for i, r := range o.Refunds {
		data.Adjustments[i] = adjustment0417{
			ID: r.ID, Type: adjustmentType0417(r.Type), OccurredAt: r.CreatedAt.UTC().Format(time.RFC3339Nano),
			// A refund is recorded once it is made: there is no pending state.
			Status: "completed", Amount: r.Amount, Currency: o.Currency,
		}
	}
	if refunded := o.Refunded(); refunded > 0 {
		// total stays the original charge (ORD-RFC §4.6); what went back is its own entry.
		data.Totals = append(data.Totals, total0417{Type: "amount_refunded", DisplayText: "Refunded", Amount: refunded})
	}
	return json.Marshal(event0417{Type: e.Type, Data: data})
}

// orderStatus0417 is the 2026-04-17 name of an order status. They are the domain's
// (2025-09-29's) names but for fulfilled, which 2026-04-17 calls completed (SEP #232,
// after the release; checklist I-02). A status it does not know passes as it is: the
// field is an open string.
func orderStatus0417(s checkout.OrderStatus) string {
	if s == checkout.OrderFulfilled {
		return "completed"
	}
	return string(s)
}

// lineStatus0417 derives a line's status from its quantities, by ORD-RFC §4.2.
func lineStatus0417(q lineQuantity0417) string {
	switch {
	case q.Current == 0:
		return "removed"
	case q.Fulfilled == q.Current:
		return "fulfilled"
	case q.Fulfilled > 0:
		return "partial"
	default:
		return "processing"
	}
}

// adjustmentType0417 is the adjustment type of a refund: money back to the original
// payment is a "refund", store credit a "credit" (2026-04-17 renamed store_credit).
func adjustmentType0417(t checkout.RefundType) string {
	switch t {
	case checkout.RefundOriginalPayment:
		return "refund"
	case checkout.RefundStoreCredit:
		return "credit"
	}
	return string(t)
}
