package v20260417

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/acp"
	"github.com/agentic-commerce/agentic-commerce-server/internal/acpspec"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/testkit"
)

// example returns the official 2026-04-17 example name of file.
func example(t *testing.T, file, name string) []byte {
	t.Helper()
	var all map[string]json.RawMessage
	if err := json.Unmarshal(acpspec.ReadFile(t, "2026-04-17/"+file), &all); err != nil {
		t.Fatal(err)
	}
	raw, ok := all[name]
	if !ok {
		t.Fatalf("%s has no example %s", file, name)
	}
	return raw
}

// TestOfficialRequestsDecode decodes every official 2026-04-17 checkout request
// example into domain values.
func TestOfficialRequestsDecode(t *testing.T) {
	t.Parallel()
	const file = "examples.agentic_checkout.json"
	for _, name := range []string{"create_checkout_session_request", "create_checkout_session_request_with_first_touch_attribution"} {
		ch, err := API{}.DecodeCreate(example(t, file, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(ch.Items) != 1 || ch.Items[0] != (checkout.ItemRequest{ID: "item_123", Quantity: 1}) || ch.Currency != "usd" {
			t.Errorf("%s: items %v, currency %q", name, ch.Items, ch.Currency)
		}
		if !slices.Equal(ch.AgentInterventions, []string{"3ds", "address_verification"}) {
			t.Errorf("%s: interventions %v", name, ch.AgentInterventions)
		}
	}
	ch, _ := API{}.DecodeCreate(example(t, file, "create_checkout_session_request"))
	if ch.FulfillmentAddress == nil || ch.FulfillmentAddress.City != "San Francisco" ||
		ch.FulfillmentContact == nil || *ch.FulfillmentContact != (checkout.FulfillmentContact{Name: "John Doe", PhoneNumber: "15551234567", Email: "johndoe@example.com"}) {
		t.Errorf("fulfillment details: %+v %+v", ch.FulfillmentAddress, ch.FulfillmentContact)
	}

	// The multi-item example omits the required capabilities; it is served as an
	// agent declaring none (docs/decisions.md).
	ch, err := API{}.DecodeCreate(example(t, "examples.multi_item_checkout.json", "create_multi_item_checkout_request"))
	if err != nil || len(ch.Items) != 2 || ch.Items[1].ID != "item_456" || ch.AgentInterventions == nil || len(ch.AgentInterventions) != 0 {
		t.Errorf("multi-item: %+v, %v", ch, err)
	}

	up, err := API{}.DecodeUpdate(example(t, file, "update_checkout_session_request"))
	if err != nil || up.FulfillmentOptionID == nil || *up.FulfillmentOptionID != "fulfillment_option_456" || up.Clear != (checkout.Clear{}) {
		t.Errorf("update: %+v, %v", up, err)
	}

	for name, want := range map[string]checkout.Completion{
		"complete_checkout_session_request":                             {HandlerID: "card_tokenized", Token: "spt_123"},
		"complete_checkout_session_request_with_last_touch_attribution": {HandlerID: "card_tokenized", Token: "spt_123"},
		// A handler this server does not offer: decoding succeeds, the store refuses it.
		"complete_checkout_session_request_seller_backed":     {HandlerID: "seller_pm_123", Token: "vt_01J8Z3WXYZ9ABC"},
		"complete_session_with_authentication_result_request": {HandlerID: "card_tokenized", Token: "spt_3ds_token_001"},
		"complete_session_with_denied_authentication_request": {HandlerID: "card_tokenized"},
	} {
		c, err := API{}.DecodeComplete(example(t, file, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if c.HandlerID != want.HandlerID || (want.Token != "" && c.Token != want.Token) || c.Buyer == nil {
			t.Errorf("%s: %+v", name, c)
		}
	}
	c, _ := API{}.DecodeComplete(example(t, file, "complete_checkout_session_request"))
	if c.BillingAddress == nil || c.BillingAddress.Name != "John Smith" || c.Buyer.FirstName != "John" {
		t.Errorf("complete: %+v", c)
	}

	for name, code := range map[string]string{"cancel_checkout_session_request": "shipping_cost", "cancel_checkout_session_request_timing_deferred": "timing_deferred"} {
		tr, err := API{}.DecodeCancel(example(t, file, name))
		if err != nil || tr == nil || tr.ReasonCode != code || tr.Summary == "" || len(tr.Metadata) != 2 {
			t.Errorf("%s: %+v, %v", name, tr, err)
		}
	}
}

// mustRefuse expects err to be a 400 refusal with code and param.
func mustRefuse(t *testing.T, what string, err error, code, param string) {
	t.Helper()
	var e *acp.Error
	if !errors.As(err, &e) {
		t.Errorf("%s: err = %v, want %s at %s", what, err, code, param)
		return
	}
	if e.Status != http.StatusBadRequest || e.Code != code || e.Param != param {
		t.Errorf("%s: got %d %s at %q (%s), want %s at %q", what, e.Status, e.Code, e.Param, e.Message, code, param)
	}
}

func TestDecodeRefusesBadRequests(t *testing.T) {
	t.Parallel()
	const caps = `"capabilities":{}`
	for _, tc := range []struct {
		name, body, code, param string
	}{
		{"no line items", `{"currency":"usd",` + caps + `}`, "missing", "$.line_items"},
		{"no currency", `{"line_items":[{"id":"a"}],` + caps + `}`, "missing", "$.currency"},
		{"no item id", `{"currency":"usd","line_items":[{"name":"x"}],` + caps + `}`, "missing", "$.line_items[0].id"},
		{"zero quantity", `{"currency":"usd","line_items":[{"id":"a","quantity":0}],` + caps + `}`, "invalid", "$.line_items[0].quantity"},
		{"string quantity", `{"currency":"usd","line_items":[{"id":"a","quantity":"2"}],` + caps + `}`, "invalid", "$.line_items[0].quantity"},
		{"fractional quantity", `{"currency":"usd","line_items":[{"id":"a","quantity":1.5}],` + caps + `}`, "invalid", "$.line_items[0].quantity"},
		{"unknown field", `{"currency":"usd","line_items":[{"id":"a"}],` + caps + `,"items":[]}`, "unknown_field", "$.items"},
		{"unknown capability", `{"currency":"usd","line_items":[{"id":"a"}],"capabilities":{"payment_methods":[]}}`, "unknown_field", "$.capabilities.payment_methods"},
		{"buyer without email", `{"currency":"usd","line_items":[{"id":"a"}],` + caps + `,"buyer":{"first_name":"A"}}`, "missing", "$.buyer.email"},
		{"attribution without provider", `{"currency":"usd","line_items":[{"id":"a"}],` + caps + `,"affiliate_attribution":{"token":"t"}}`, "missing", "$.affiliate_attribution.provider"},
		{"nested attribution metadata", `{"currency":"usd","line_items":[{"id":"a"}],` + caps + `,"affiliate_attribution":{"provider":"p","token":"t","metadata":{"a":{"b":1}}}}`, "invalid", "$.affiliate_attribution.metadata"},
	} {
		_, err := API{}.DecodeCreate([]byte(tc.body))
		mustRefuse(t, "create "+tc.name, err, tc.code, tc.param)
	}
	for _, tc := range []struct {
		name, body, code, param string
	}{
		{"items cleared", `{"line_items":null}`, "invalid", "$.line_items"},
		{"currency", `{"currency":"usd"}`, "unknown_field", "$.currency"},
		{"two options", `{"selected_fulfillment_options":[{"type":"shipping","option_id":"a","item_ids":["x"]},{"type":"shipping","option_id":"b","item_ids":["y"]}]}`, "unsupported", "$.selected_fulfillment_options[1].option_id"},
		{"selection without item_ids", `{"selected_fulfillment_options":[{"type":"shipping","option_id":"a"}]}`, "missing", "$.selected_fulfillment_options[0].item_ids"},
		{"selection of unknown type", `{"selected_fulfillment_options":[{"type":"teleport","option_id":"a","item_ids":[]}]}`, "invalid", "$.selected_fulfillment_options[0].type"},
		{"2025-09-29 option id", `{"fulfillment_option_id":"a"}`, "unknown_field", "$.fulfillment_option_id"},
	} {
		_, err := API{}.DecodeUpdate([]byte(tc.body))
		mustRefuse(t, "update "+tc.name, err, tc.code, tc.param)
	}
	card := `"instrument":{"type":"card","credential":{"type":"spt","token":"vt_1"}}`
	for _, tc := range []struct {
		name, body, code, param string
	}{
		{"no payment data", `{}`, "missing", "$.payment_data"},
		{"no handler", `{"payment_data":{` + card + `}}`, "missing", "$.payment_data.handler_id"},
		{"no instrument", `{"payment_data":{"handler_id":"h"}}`, "missing", "$.payment_data.instrument"},
		{"no token", `{"payment_data":{"handler_id":"h","instrument":{"type":"card","credential":{"type":"spt"}}}}`, "missing", "$.payment_data.instrument.credential.token"},
		{"purchase order", `{"payment_data":{"purchase_order_number":"PO-1"}}`, "unsupported", "$.payment_data.purchase_order_number"},
		{"2025-09-29 payment data", `{"payment_data":{"token":"vt_1","provider":"stripe"}}`, "unknown_field", "$.payment_data.token"},
		{"unknown outcome", `{"payment_data":{"handler_id":"h",` + card + `},"authentication_result":{"outcome":"great"}}`, "invalid", "$.authentication_result.outcome"},
		{"consent without opted_in", `{"payment_data":{"handler_id":"h",` + card + `},"marketing_consents":[{"channel":"email"}]}`, "missing", "$.marketing_consents[0].opted_in"},
		{"consent without channel", `{"payment_data":{"handler_id":"h",` + card + `},"marketing_consents":[{"opted_in":true}]}`, "missing", "$.marketing_consents[0].channel"},
		{"consent with unknown field", `{"payment_data":{"handler_id":"h",` + card + `},"marketing_consents":[{"channel":"email","opted_in":true,"when":1}]}`, "unknown_field", "$.marketing_consents[0].when"},
	} {
		_, err := API{}.DecodeComplete([]byte(tc.body))
		mustRefuse(t, "complete "+tc.name, err, tc.code, tc.param)
	}
	for _, tc := range []struct {
		name, body, code, param string
	}{
		{"no reason", `{"intent_trace":{}}`, "missing", "$.intent_trace.reason_code"},
		{"nested metadata", `{"intent_trace":{"reason_code":"other","metadata":{"a":[1]}}}`, "invalid", "$.intent_trace.metadata"},
		{"long summary", `{"intent_trace":{"reason_code":"other","trace_summary":"` + strings.Repeat("s", MaxTraceSummary+1) + `"}}`, "invalid", "$.intent_trace.trace_summary"},
		{"unknown field", `{"reason":"x"}`, "unknown_field", "$.reason"},
		{"not JSON", `{"intent_trace":`, "invalid_json", ""},
	} {
		_, err := API{}.DecodeCancel([]byte(tc.body))
		mustRefuse(t, "cancel "+tc.name, err, tc.code, tc.param)
	}
}

func TestDecodeUpdateTellsNullFromAbsent(t *testing.T) {
	t.Parallel()
	ch, err := API{}.DecodeUpdate([]byte(`{"buyer":null,"fulfillment_details":null,"selected_fulfillment_options":null}`))
	if err != nil || ch.Clear != (checkout.Clear{Buyer: true, FulfillmentDetails: true, FulfillmentOption: true}) || ch.Buyer != nil {
		t.Errorf("nulls: %+v, %v", ch, err)
	}
	ch, err = API{}.DecodeUpdate([]byte(`{"line_items":[{"id":"a","quantity":2}]}`))
	if err != nil || ch.Clear != (checkout.Clear{}) || ch.Items[0].Quantity != 2 {
		t.Errorf("absent: %+v, %v", ch, err)
	}
	// fulfillment_details is replaced whole: without an address it removes the old one.
	ch, err = API{}.DecodeUpdate([]byte(`{"fulfillment_details":{"name":"Ada"}}`))
	if err != nil || !ch.Clear.FulfillmentDetails || ch.FulfillmentContact.Name != "Ada" || ch.FulfillmentAddress != nil {
		t.Errorf("contact only: %+v, %v", ch, err)
	}
	// Several entries naming the one option select it.
	ch, err = API{}.DecodeUpdate([]byte(`{"selected_fulfillment_options":[{"type":"shipping","option_id":"std","item_ids":["a"]},{"type":"shipping","option_id":"std","item_ids":["b"]}]}`))
	if err != nil || ch.FulfillmentOptionID == nil || *ch.FulfillmentOptionID != "std" {
		t.Errorf("same option twice: %+v, %v", ch, err)
	}
}

func TestDecodeCancelTrace(t *testing.T) {
	t.Parallel()
	for _, body := range []string{"", "  ", "{}", `{"intent_trace":null}`} {
		if tr, err := (API{}).DecodeCancel([]byte(body)); tr != nil || err != nil {
			t.Errorf("%q: %+v, %v", body, tr, err)
		}
	}
	tr, err := API{}.DecodeCancel([]byte(`{"intent_trace":{"reason_code":"moon_phase","metadata":{"n":1,"ok":true,"s":"x"}}}`))
	if err != nil || tr.ReasonCode != "other" || len(tr.Metadata) != 3 {
		t.Errorf("unknown reason: %+v, %v", tr, err)
	}
}

// views are representative sessions in every state a response shows.
func views(t *testing.T) map[string]checkout.View {
	t.Helper()
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	days := func(n int) *int { return &n }
	cat := checkout.Catalog{
		Variants: map[string]checkout.Variant{
			"tee":   {ID: "tee", Title: "Tee", PriceAmount: 1500, Currency: "usd", Available: true, Fulfillment: checkout.FulfillmentShipping},
			"ebook": {ID: "ebook", Title: "E-book", PriceAmount: 999, Currency: "usd", Available: true, Fulfillment: checkout.FulfillmentDigital},
			"cap":   {ID: "cap", Title: "Cap", PriceAmount: 900, Currency: "usd", Available: false, Fulfillment: checkout.FulfillmentShipping},
		},
		Options: []checkout.FulfillmentOption{
			{ID: "standard_shipping", Type: checkout.FulfillmentShipping, Title: "Standard", Subtitle: "3-5 days", Carrier: "USPS", Amount: 500, Currency: "usd", MinDeliveryDays: days(3), MaxDeliveryDays: days(5)},
			{ID: "digital", Type: checkout.FulfillmentDigital, Title: "Download", Amount: 0, Currency: "usd"},
		},
		TaxRateBps: 725,
	}
	mk := func(items []checkout.ItemRequest, ch checkout.Changes) *checkout.Session {
		t.Helper()
		s := &checkout.Session{ID: "cs_test", State: checkout.StateOpen, CreatedAt: now}
		ch.Items = items
		if err := s.Apply(ch, cat, now, time.Hour); err != nil {
			t.Fatal(err)
		}
		return s
	}
	addr := &checkout.Address{Name: "Ada", Company: "Analytical Ltd", LineOne: "1 Road", City: "San Francisco", State: "CA", Country: "US", PostalCode: "94131"}
	open := mk([]checkout.ItemRequest{{ID: "tee", Quantity: 2}, {ID: "cap", Quantity: 1}}, checkout.Changes{AgentInterventions: []string{"3ds"}})
	ready := mk([]checkout.ItemRequest{{ID: "tee", Quantity: 2}}, checkout.Changes{
		Buyer: &checkout.Buyer{FullName: "Ada Lovelace", Email: "ada@example.com"}, FulfillmentAddress: addr,
		FulfillmentContact: &checkout.FulfillmentContact{Name: "Ada", Email: "ada@example.com"},
		Locale:             ptr("en-US"), Timezone: ptr("America/Los_Angeles"), Metadata: map[string]any{"cart": "c1", "n": 2.0},
	})
	digital := mk([]checkout.ItemRequest{{ID: "ebook", Quantity: 1}}, checkout.Changes{})
	canceled := mk([]checkout.ItemRequest{{ID: "ebook", Quantity: 1}}, checkout.Changes{})
	if err := canceled.Cancel(checkout.CanceledByAgent, &checkout.IntentTrace{ReasonCode: "other"}, now); err != nil {
		t.Fatal(err)
	}
	expired := mk([]checkout.ItemRequest{{ID: "ebook", Quantity: 1}}, checkout.Changes{})
	if err := expired.Cancel(checkout.CanceledExpired, nil, now); err != nil {
		t.Fatal(err)
	}
	completed := mk([]checkout.ItemRequest{{ID: "tee", Quantity: 2}}, checkout.Changes{FulfillmentAddress: addr})
	completed.Complete(now)
	order := &checkout.Order{
		ID: "ord_1", CheckoutSessionID: "cs_test", PermalinkURL: "https://shop.example/orders/ord_1",
		Status: checkout.OrderFulfilled, Amount: 3718, Currency: "usd",
		Lines: []checkout.OrderLine{{ID: "li_1", ItemID: "tee", Title: "Tee", Quantity: 2, Current: 2, UnitAmount: 1500}},
		Fulfillments: []checkout.Fulfillment{{ID: "ful_1", Type: checkout.FulfillmentShipping, Status: checkout.FulfillmentDelivered,
			Lines: []checkout.LineQuantity{{LineID: "li_1", Quantity: 2}}}},
		Refunds: []checkout.Refund{{ID: "rf_1", Type: checkout.RefundOriginalPayment, Amount: 500, CreatedAt: now},
			{ID: "rf_2", Type: checkout.RefundStoreCredit, Amount: 100, CreatedAt: now}},
	}
	handlers := checkout.PaymentHandlers("acct_1", "mock")
	view := func(s *checkout.Session, o *checkout.Order) checkout.View {
		return checkout.View{Session: s, Quote: checkout.Price(s, cat, now), Order: o, Handlers: handlers}
	}
	return map[string]checkout.View{
		"open": view(open, nil), "ready": view(ready, nil), "digital": view(digital, nil),
		"canceled": view(canceled, nil), "expired": view(expired, nil), "completed": view(completed, order),
		"no handlers": {Session: digital, Quote: checkout.Price(digital, cat, now)},
		// Stripe as the gateway adds the Shared Payment Token handler.
		"stripe handlers": {Session: ready, Quote: checkout.Price(ready, cat, now), Handlers: checkout.PaymentHandlers("acct_1", "stripe")},
	}
}

// TestEncodeSessionValidates encodes a session in every state and checks it against
// the official 2026-04-17 JSON Schema, and what the schema cannot tell.
func TestEncodeSessionValidates(t *testing.T) {
	t.Parallel()
	schemas := testkit.Schemas(t, Version)
	links := []acp.Link{{Type: "terms_of_use", URL: "https://shop.example/terms"}, {Type: "seller_shop_policies", URL: "https://shop.example/policies"}}
	got := map[string]map[string]any{}
	for name, v := range views(t) {
		raw, err := json.Marshal(API{}.EncodeSession(v, links))
		if err != nil {
			t.Fatal(err)
		}
		schemas.Session(raw)
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		if caps := m["capabilities"].(map[string]any); caps["extensions"] != nil {
			t.Errorf("%s: extensions sent: %v", name, caps)
		}
		if m["protocol"].(map[string]any)["version"] != Version {
			t.Errorf("%s: protocol = %v", name, m["protocol"])
		}
		if links := m["links"].([]any); len(links) != 1 {
			t.Errorf("%s: links = %v, want terms_of_use only", name, links)
		}
		got[name] = m
	}
	if got["open"]["status"] != "not_ready_for_payment" || got["expired"]["status"] != "expired" ||
		got["canceled"]["status"] != "canceled" || got["completed"]["status"] != "completed" || got["digital"]["status"] != "ready_for_payment" {
		t.Errorf("statuses: %v %v %v %v", got["open"]["status"], got["expired"]["status"], got["canceled"]["status"], got["completed"]["status"])
	}
	// The merchant runs 3-D Secure: the intersection with the agent's is ["3ds"], and
	// nothing is required while no card needs it.
	if iv := got["open"]["capabilities"].(map[string]any)["interventions"].(map[string]any); !slices.Equal(iv["supported"].([]any), []any{"3ds"}) ||
		len(iv["required"].([]any)) != 0 || iv["enforcement"] != "conditional" {
		t.Errorf("interventions = %v", iv)
	}
	h := got["ready"]["capabilities"].(map[string]any)["payment"].(map[string]any)["handlers"].([]any)
	if len(h) != 2 || h[0].(map[string]any)["id"] != checkout.HandlerVaultCard || h[0].(map[string]any)["config"].(map[string]any)["merchant_id"] != "acct_1" {
		t.Errorf("handlers = %v", h)
	}
	sel := got["ready"]["selected_fulfillment_options"].([]any)[0].(map[string]any)
	if sel["option_id"] != "standard_shipping" || sel["type"] != "shipping" || len(sel["item_ids"].([]any)) != 1 || sel["item_ids"].([]any)[0] != "tee" {
		t.Errorf("selected = %v", sel)
	}
	fd := got["ready"]["fulfillment_details"].(map[string]any)
	if fd["name"] != "Ada" || fd["address"].(map[string]any)["company"] != "Analytical Ltd" {
		t.Errorf("fulfillment_details = %v", fd)
	}
	if got["ready"]["locale"] != "en-US" || got["ready"]["metadata"].(map[string]any)["cart"] != "c1" || got["ready"]["buyer"].(map[string]any)["full_name"] != "Ada Lovelace" {
		t.Errorf("locale/metadata/buyer = %v %v %v", got["ready"]["locale"], got["ready"]["metadata"], got["ready"]["buyer"])
	}
	msgs := got["open"]["messages"].([]any)
	var kinds []string
	for _, raw := range msgs {
		m := raw.(map[string]any)
		kinds = append(kinds, m["code"].(string)+"@"+m["param"].(string)+":"+m["severity"].(string)+"/"+m["resolution"].(string))
	}
	want := []string{"out_of_stock@$.line_items[1]:high/requires_buyer_review", "missing@$.fulfillment_details.address:high/requires_buyer_input"}
	if !slices.Equal(kinds, want) {
		t.Errorf("messages = %v, want %v", kinds, want)
	}
	line := got["ready"]["line_items"].([]any)[0].(map[string]any)
	if line["name"] != "Tee" || line["quantity"].(float64) != 2 || len(line["totals"].([]any)) != 5 {
		t.Errorf("line = %v", line)
	}
	order := got["completed"]["order"].(map[string]any)
	ol := order["line_items"].([]any)[0].(map[string]any)
	if order["status"] != "completed" || ol["status"] != "fulfilled" || ol["quantity"].(map[string]any)["fulfilled"].(float64) != 2 {
		t.Errorf("order = %v", order)
	}
	if adj := order["adjustments"].([]any); adj[0].(map[string]any)["type"] != "refund" || adj[0].(map[string]any)["amount"].(float64) != 500 ||
		adj[0].(map[string]any)["status"] != "completed" || adj[1].(map[string]any)["type"] != "credit" {
		t.Errorf("adjustments = %v", order["adjustments"])
	}
	if tot := order["totals"].([]any); len(tot) != 2 || tot[0].(map[string]any)["amount"].(float64) != 3718 || tot[1].(map[string]any)["amount"].(float64) != 600 {
		t.Errorf("order totals = %v", tot)
	}
	if h := got["no handlers"]["capabilities"].(map[string]any)["payment"].(map[string]any)["handlers"].([]any); len(h) != 0 {
		t.Errorf("handlers of a view without any = %v", h)
	}
}

// TestEncodeOrderStatuses: the domain's moves give a canceled order removed lines, an
// open one processing lines, a shipped one fulfilled (dispatched) lines; fulfilled is
// completed.
func TestEncodeOrderStatuses(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for status, want := range map[checkout.OrderStatus][2]string{
		checkout.OrderCreated: {"created", "processing"}, checkout.OrderCanceled: {"canceled", "removed"},
		checkout.OrderConfirmed: {"confirmed", "processing"},
		checkout.OrderShipped:   {"shipped", "fulfilled"}, checkout.OrderFulfilled: {"completed", "fulfilled"},
	} {
		ord := &checkout.Order{ID: "o", Status: checkout.OrderCreated,
			Lines: []checkout.OrderLine{{ID: "li", ItemID: "tee", Title: "Tee", Quantity: 1, Current: 1, UnitAmount: 100}}}
		path := map[checkout.OrderStatus][]checkout.OrderStatus{
			checkout.OrderCanceled: {checkout.OrderCanceled}, checkout.OrderConfirmed: {checkout.OrderConfirmed},
			checkout.OrderShipped:   {checkout.OrderConfirmed, checkout.OrderShipped},
			checkout.OrderFulfilled: {checkout.OrderConfirmed, checkout.OrderShipped, checkout.OrderFulfilled},
		}[status]
		for _, to := range path {
			if err := ord.MoveTo(to, now); err != nil {
				t.Fatal(err)
			}
		}
		o := EncodeOrder(ord)
		l := (*o.LineItems)[0]
		if *o.Status != want[0] || *l.Status != want[1] || *l.ProductId != "tee" {
			t.Errorf("%s: order %s, line %s %v", status, *o.Status, *l.Status, *l.ProductId)
		}
	}
}

func TestEncodeErrorsValidate(t *testing.T) {
	t.Parallel()
	schemas := testkit.Schemas(t, Version)
	for _, tc := range []struct {
		in                *acp.Error
		errType, code     string
		dpType, dpCode    string
		withVersions, dpR bool
	}{
		{acp.InvalidRequest("missing", "currency is required.", "$.currency"), "invalid_request", "missing", "invalid_request", "invalid_card", false, true},
		{acp.NewError(http.StatusTooManyRequests, acp.TypeInvalidRequest, acp.CodeTooManyRequests, "Slow down.", ""), "invalid_request", "too_many_requests", "rate_limit_exceeded", "too_many_requests", false, false},
		{acp.NewError(http.StatusTooManyRequests, acp.TypeRateLimitExceeded, acp.CodeTooManyRequests, "Slow down.", ""), "invalid_request", "too_many_requests", "rate_limit_exceeded", "too_many_requests", false, false},
		{acp.NewError(http.StatusUnprocessableEntity, acp.TypeInvalidRequest, acp.CodeIdempotencyConflict, "Other body.", ""), "invalid_request", "idempotency_conflict", "invalid_request", "idempotency_conflict", false, false},
		{acp.NewError(http.StatusConflict, acp.TypeInvalidRequest, acp.CodeIdempotencyInFlight, "Running.", ""), "invalid_request", "idempotency_in_flight", "invalid_request", "idempotency_in_flight", false, false},
		{acp.InvalidRequest(acp.CodeIdempotencyKeyRequired, "Key!", ""), "invalid_request", "idempotency_key_required", "invalid_request", "idempotency_key_required", false, false},
		{acp.NewError(http.StatusServiceUnavailable, acp.TypeServiceUnavailable, "database_unavailable", "Down.", ""), "service_unavailable", "database_unavailable", "service_unavailable", "invalid_card", false, true},
		{acp.NewError(http.StatusInternalServerError, acp.TypeProcessingError, "internal_error", "Oops.", ""), "processing_error", "internal_error", "processing_error", "invalid_card", false, true},
		{&acp.Error{Status: 400, Type: acp.TypeInvalidRequest, Code: "unsupported_api_version", Message: "Nope.", SupportedVersions: []string{Version, "2025-09-29"}},
			"invalid_request", "unsupported_api_version", "invalid_request", "invalid_card", true, true},
	} {
		raw, _ := json.Marshal(API{}.EncodeError(tc.in))
		schemas.Error(raw, "/checkout_sessions")
		var m map[string]any
		_ = json.Unmarshal(raw, &m)
		if m["type"] != tc.errType || m["code"] != tc.code || (m["supported_versions"] != nil) != tc.withVersions || (tc.in.Param != "") != (m["param"] != nil) {
			t.Errorf("checkout %s: %s", tc.in.Code, raw)
		}
		raw, _ = json.Marshal(API{}.EncodeDelegateError(tc.in))
		schemas.Error(raw, testkit.DelegatePath)
		m = nil
		_ = json.Unmarshal(raw, &m)
		if m["type"] != tc.dpType || m["code"] != tc.dpCode || (m["supported_versions"] != nil) != tc.withVersions ||
			strings.Contains(m["message"].(string), "(reason: "+tc.in.Code+")") != tc.dpR {
			t.Errorf("delegate %s: %s", tc.in.Code, raw)
		}
	}
}

func TestDomainErrorStatuses(t *testing.T) {
	t.Parallel()
	for kind, status := range map[checkout.Kind]int{
		checkout.KindInvalid: 400, checkout.KindNotFound: 404, checkout.KindNotAllowed: 405, checkout.KindConflict: 409,
		checkout.KindUnavailable: 503, checkout.KindInternal: 500, checkout.KindDeclined: 400, checkout.Kind(99): 500,
	} {
		e := API{}.DomainError(&checkout.Error{Kind: kind, Code: "c", Message: "m",
			Field: checkout.At(checkout.FieldPayment).Child(checkout.FieldHandler)})
		if e.Status != status || e.Param != "$.payment_data.handler_id" {
			t.Errorf("kind %d: %d %q", kind, e.Status, e.Param)
		}
	}
	if (API{}).IdempotencyConflictStatus() != http.StatusUnprocessableEntity || !(API{}).RequiresIdempotencyKey() {
		t.Error("2026-04-17 idempotency: conflict 422, key required")
	}
}
