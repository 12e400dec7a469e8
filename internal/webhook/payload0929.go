package webhook

import (
	"encoding/json"

	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
)

// Version0929 is ACP 2025-09-29, the version whose events every deployment sent before
// WEBHOOK_API_VERSION existed, and still the default.
const Version0929 = "2025-09-29"

// Event types of ACP 2025-09-29.
const (
	OrderCreate = "order_create"
	OrderUpdate = "order_update"
)

type event0929 struct {
	Type string   `json:"type"`
	Data data0929 `json:"data"`
}

type data0929 struct {
	Type              string       `json:"type"`
	CheckoutSessionID string       `json:"checkout_session_id"`
	PermalinkURL      string       `json:"permalink_url"`
	Status            string       `json:"status"`
	Refunds           []refund0929 `json:"refunds"`
}

type refund0929 struct {
	Type   string `json:"type"`
	Amount int64  `json:"amount"`
}

// encode0929 renders the WebhookEvent of 2025-09-29 for e. The body holds no time, and
// encoding/json writes struct fields in their declared order, so the same event always
// gives the same bytes.
func encode0929(e Event) ([]byte, error) {
	return Payload(e.Type, e.Order)
}

// Payload renders the 2025-09-29 event body (WebhookEvent) of an event of eventType
// for the order o.
func Payload(eventType string, o *checkout.Order) ([]byte, error) {
	ev := event0929{Type: eventType, Data: data0929{
		Type: "order", CheckoutSessionID: o.CheckoutSessionID, PermalinkURL: o.PermalinkURL,
		Status: status0929(o.Status), Refunds: make([]refund0929, len(o.Refunds)),
	}}
	for i, r := range o.Refunds {
		ev.Data.Refunds[i] = refund0929{Type: string(r.Type), Amount: r.Amount}
	}
	return json.Marshal(ev)
}

// status0929 is the order status in 2025-09-29, which has no processing: an order with
// some units on their way but not all is still only confirmed there (shipped would tell
// the buyer everything has left). Its line quantities and fulfilments have no field in
// that version; shipped and fulfilled say when every unit has left and arrived.
func status0929(s checkout.OrderStatus) string {
	if s == checkout.OrderProcessing {
		return string(checkout.OrderConfirmed)
	}
	return string(s)
}
