package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/testkit"
	"github.com/agentic-commerce/agentic-commerce-server/internal/webhook"
)

// webhook0417Order is the order of the 2026-04-17 tests: two lines, two refunds.
func webhook0417Order() *checkout.Order {
	at := time.Date(2026, 4, 17, 10, 30, 0, 123456000, time.UTC)
	o := webhookTestOrder(
		checkout.Refund{ID: "rf_1", Type: checkout.RefundStoreCredit, Amount: 100, CreatedAt: at},
		checkout.Refund{ID: "rf_2", Type: checkout.RefundOriginalPayment, Amount: 400, CreatedAt: at.Add(time.Hour)},
	)
	o.Lines = []checkout.OrderLine{
		{ID: "li_1", ItemID: "item_123", Title: "Tee", Quantity: 2, Current: 2, UnitAmount: 1000},
		{ID: "li_2", ItemID: "item_456", Title: "Hoodie", Quantity: 1, Current: 1, UnitAmount: 500},
	}
	return o
}

// body0417 is the decoded 2026-04-17 body, every field the encoder writes.
type body0417 struct {
	Type string
	Data struct {
		Type              string
		ID                string
		CheckoutSessionID string `json:"checkout_session_id"`
		PermalinkURL      string `json:"permalink_url"`
		Status            string
		LineItems         []struct {
			ID, Title, Status string
			ProductID         string `json:"product_id"`
			Quantity          struct{ Ordered, Current, Fulfilled int }
			UnitPrice         int64 `json:"unit_price"`
			Subtotal          int64
		} `json:"line_items"`
		Fulfillments []any
		Adjustments  []struct {
			ID, Type, Status, Currency string
			OccurredAt                 string `json:"occurred_at"`
			Amount                     int64
		}
		Totals []struct {
			Type        string
			DisplayText string `json:"display_text"`
			Amount      int64
		}
	}
}

func decode0417(t *testing.T, raw []byte) body0417 {
	t.Helper()
	var b body0417
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		t.Fatalf("body: %v\n%s", err, raw)
	}
	return b
}

// The 2026-04-17 body is the full Order of the spec's WebhookEvent, in every status
// and for both event types; the same event always gives the same bytes.
func TestWebhook0417FullOrder(t *testing.T) {
	t.Parallel()
	sch := testkit.Schemas(t, webhook.Version0417)
	type line struct {
		ordered, current, fulfilled int
		status                      string
	}
	for _, c := range []struct {
		status checkout.OrderStatus
		wire   string
		lines  [2]line
	}{
		{checkout.OrderCreated, "created", [2]line{{2, 2, 0, "processing"}, {1, 1, 0, "processing"}}},
		{checkout.OrderManualReview, "manual_review", [2]line{{2, 2, 0, "processing"}, {1, 1, 0, "processing"}}},
		{checkout.OrderConfirmed, "confirmed", [2]line{{2, 2, 0, "processing"}, {1, 1, 0, "processing"}}},
		{checkout.OrderShipped, "shipped", [2]line{{2, 2, 2, "fulfilled"}, {1, 1, 1, "fulfilled"}}},
		{checkout.OrderFulfilled, "completed", [2]line{{2, 2, 2, "fulfilled"}, {1, 1, 1, "fulfilled"}}},
		{checkout.OrderCanceled, "canceled", [2]line{{2, 0, 0, "removed"}, {1, 0, 0, "removed"}}},
	} {
		for _, typ := range []string{webhook.OrderCreate, webhook.OrderUpdate} {
			o := webhook0417Order()
			o.Status = c.status
			// The quantities come from the order's fulfilments and current quantities,
			// as the store keeps them for each status.
			shipment := checkout.Fulfillment{ID: "ful_1", Type: checkout.FulfillmentShipping, Status: checkout.FulfillmentShipped,
				Lines: []checkout.LineQuantity{{LineID: "li_1", Quantity: 2}, {LineID: "li_2", Quantity: 1}}}
			switch c.status {
			case checkout.OrderFulfilled:
				shipment.Status = checkout.FulfillmentDelivered
				fallthrough
			case checkout.OrderShipped:
				o.Fulfillments = []checkout.Fulfillment{shipment}
			case checkout.OrderCanceled:
				o.Lines[0].Current, o.Lines[1].Current = 0, 0
			}
			ev := webhook.Event{ID: 1, OrderID: o.ID, Type: typ, Order: o, OccurredAt: o.Refunds[1].CreatedAt}
			raw, err := webhook.Body(webhook.Version0417, ev)
			if err != nil {
				t.Fatal(err)
			}
			sch.WebhookEvent(raw)
			again, err := webhook.Body(webhook.Version0417, ev)
			if err != nil || !bytes.Equal(again, raw) {
				t.Errorf("%s %s: second encoding %s, want %s", c.status, typ, again, raw)
			}
			b := decode0417(t, raw)
			d := b.Data
			if b.Type != typ || d.Type != "order" || d.ID != "ord_1" || d.CheckoutSessionID != "cs_123" ||
				d.PermalinkURL != "https://shop.example/orders/ord_1" || d.Status != c.wire {
				t.Errorf("%s %s: %s", c.status, typ, raw)
			}
			if len(d.LineItems) != 2 {
				t.Fatalf("%s: line_items %s", c.status, raw)
			}
			for i, want := range []struct {
				id, title, product string
				unit, subtotal     int64
			}{{"li_1", "Tee", "item_123", 1000, 2000}, {"li_2", "Hoodie", "item_456", 500, 500}} {
				l, q := d.LineItems[i], c.lines[i]
				if l.ID != want.id || l.Title != want.title || l.ProductID != want.product || l.UnitPrice != want.unit ||
					l.Subtotal != want.subtotal || l.Quantity.Ordered != q.ordered || l.Quantity.Current != q.current ||
					l.Quantity.Fulfilled != q.fulfilled || l.Status != q.status {
					t.Errorf("%s line %d = %+v, want %+v %+v", c.status, i, l, want, q)
				}
			}
			if d.Fulfillments == nil || len(d.Fulfillments) != len(o.Fulfillments) {
				t.Errorf("%s: fulfillments %v, want %d", c.status, d.Fulfillments, len(o.Fulfillments))
			}
			type adj struct {
				ID, Type, Status, Currency, OccurredAt string
				Amount                                 int64
			}
			var adjs []adj
			for _, a := range d.Adjustments {
				adjs = append(adjs, adj{a.ID, a.Type, a.Status, a.Currency, a.OccurredAt, a.Amount})
			}
			wantAdjs := []adj{
				{"rf_1", "credit", "completed", "usd", "2026-04-17T10:30:00.123456Z", 100},
				{"rf_2", "refund", "completed", "usd", "2026-04-17T11:30:00.123456Z", 400},
			}
			if !reflect.DeepEqual(adjs, wantAdjs) {
				t.Errorf("%s: adjustments %+v, want %+v", c.status, adjs, wantAdjs)
			}
			if len(d.Totals) != 2 || d.Totals[0].Type != "total" || d.Totals[0].Amount != 2500 ||
				d.Totals[1].Type != "amount_refunded" || d.Totals[1].Amount != 500 {
				t.Errorf("%s: totals %+v", c.status, d.Totals)
			}
		}
	}
}

// Without refunds there is no amount_refunded and adjustments is []; without lines (a
// snapshot from before lines were kept) there is no line_items rather than an empty
// list. Both still validate.
func TestWebhook0417WithoutRefundsOrLines(t *testing.T) {
	t.Parallel()
	sch := testkit.Schemas(t, webhook.Version0417)
	o := webhook0417Order()
	o.Status, o.Refunds = checkout.OrderCreated, nil
	raw, err := webhook.Body(webhook.Version0417, webhook.Event{Type: webhook.OrderCreate, Order: o})
	if err != nil {
		t.Fatal(err)
	}
	sch.WebhookEvent(raw)
	var got struct {
		Data struct {
			Adjustments []any `json:"adjustments"`
			Totals      []any `json:"totals"`
		} `json:"data"`
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if got.Data.Adjustments == nil || len(got.Data.Adjustments) != 0 ||
		fmt.Sprint(got.Data.Totals) != "[map[amount:2500 display_text:Total type:total]]" {
		t.Errorf("body %s, want adjustments [] and only the total", raw)
	}
	o.Lines = nil
	raw, err = webhook.Body(webhook.Version0417, webhook.Event{Type: webhook.OrderCreate, Order: o})
	if err != nil {
		t.Fatal(err)
	}
	sch.WebhookEvent(raw)
	if bytes.Contains(raw, []byte("line_items")) {
		t.Errorf("body %s has line_items without lines", raw)
	}
	if d := decode0417(t, raw).Data; d.ID != "ord_1" || d.Status != "created" {
		t.Errorf("body %s", raw)
	}
}

// A worker configured for 2026-04-17 sends that body, signed t=…,v1=… (I-29), the same
// bytes on a retry.
func TestWebhookWorkerSends0417(t *testing.T) {
	t.Parallel()
	rcv := testkit.NewReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	ob := &webhookFakeOutbox{}
	o := webhook0417Order()
	ev := webhook.Event{ID: 7, OrderID: o.ID, Type: webhook.OrderUpdate, Order: o, CreatedAt: time.Now()}
	ob.add(ev)
	w := webhook.NewWorker(webhook.Config{URL: rcv.URL, Secret: webhookTestSecret, Timeout: 5 * time.Second,
		Horizon: time.Hour, APIVersion: webhook.Version0417}, ob, webhookLogger())
	for range 2 {
		if n, err := w.DeliverDue(context.Background()); n != 1 || err != nil {
			t.Fatalf("DeliverDue = %d, %v", n, err)
		}
		ob.dueAgain()
	}
	want, err := webhook.Body(webhook.Version0417, ev)
	if err != nil {
		t.Fatal(err)
	}
	hits := rcv.Hits()
	if len(hits) != 2 || ob.get(7).status != "delivered" {
		t.Fatalf("%d requests, event %+v", len(hits), ob.get(7))
	}
	for i, h := range hits {
		if !bytes.Equal(h.Body, want) {
			t.Errorf("attempt %d: body %s, want %s", i+1, h.Body, want)
		}
		if _, ok := testkit.Verify(webhookTestSecret, h.Header.Get("Merchant-Signature"), h.Body); !ok {
			t.Errorf("attempt %d: signature %q does not verify", i+1, h.Header.Get("Merchant-Signature"))
		}
	}
	testkit.Schemas(t, webhook.Version0417).WebhookEvent(hits[0].Body)
}
