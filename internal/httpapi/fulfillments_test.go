package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/agentic-commerce/agentic-commerce-server/internal/acp/v20260417"
	"github.com/agentic-commerce/agentic-commerce-server/internal/postgres"
	"github.com/agentic-commerce/agentic-commerce-server/internal/testkit"
)

// fulfilOrder completes a session for the item/quantity pairs with fulfilment option
// optionID, after setting the California tax rate to rateBps, and returns the order id
// and its line ids in order.
func fulfilOrder(e *testEnv, rateBps int, optionID string, pairs ...any) (string, []string) {
	e.t.Helper()
	if _, err := e.pool.Exec(context.Background(), `UPDATE tax_rates SET rate_bps = $1 WHERE country = 'US' AND region = 'CA'`, rateBps); err != nil {
		e.t.Fatal(err)
	}
	s := e.mustCreate(map[string]any{"items": items(pairs...), "buyer": buyer, "fulfillment_address": address})
	id := s["id"].(string)
	s = e.mustSession(e.do(http.MethodPost, "/checkout_sessions/"+id, map[string]any{"fulfillment_option_id": optionID}), http.StatusOK)
	total := totals(e.t, s)["total"]
	r := completeSession(e, id, delegate(e, id, total, "usd", visaNumber, "9871"))
	if r.status != http.StatusOK {
		e.t.Fatalf("complete: %d %s", r.status, r.body)
	}
	return completedOrder(e.t, r)
}

// fulfilAdmin posts to the admin API and returns the admin order, failing on another status.
func fulfilAdmin(e *testEnv, path string, body any, status int) map[string]any {
	e.t.Helper()
	r := ordersAdmin(e, http.MethodPost, path, body)
	if r.status != status {
		e.t.Fatalf("POST %s: %d, want %d: %s", path, r.status, status, r.body)
	}
	return r.json(e.t)
}

// fulfilEncoded is the 2026-04-17 Order of id as events and complete responses render
// it, validated against the official schema.
func fulfilEncoded(e *testEnv, id string) map[string]any {
	e.t.Helper()
	ord, err := postgres.NewOrders(e.pool, false).Get(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	raw, err := json.Marshal(v20260417.EncodeOrder(ord))
	if err != nil {
		e.t.Fatal(err)
	}
	testkit.Schemas(e.t, "2026-04-17").Checkout.MustValidate(e.t, "Order", raw)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		e.t.Fatal(err)
	}
	return m
}

// fulfilExample reads an official order example.
func fulfilExample(t *testing.T, name string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "acpspec", "spec", "2026-04-17", "orders", name))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// fulfilCompare checks that got has the example's amounts, quantities, statuses, types,
// carriers and event sequences (ids and times aside; line ids mapped by position), and
// the totals of the types in totalTypes.
func fulfilCompare(t *testing.T, want, got map[string]any, totalTypes ...string) {
	t.Helper()
	lineIdx := func(m map[string]any) map[string]int {
		out := map[string]int{}
		for i, l := range arr(m["line_items"]) {
			out[l["id"].(string)] = i
		}
		return out
	}
	wi, gi := lineIdx(want), lineIdx(got)
	refs := func(v any, idx map[string]int) string {
		s := ""
		for _, r := range arr(v) {
			s += fmt.Sprintf("%d:%v ", idx[r["id"].(string)], r["quantity"])
		}
		return s
	}
	same := func(what string, a, b any) {
		if fmt.Sprint(a) != fmt.Sprint(b) {
			t.Errorf("%s = %v, want %v", what, b, a)
		}
	}
	same("status", want["status"], got["status"])
	wl, gl := arr(want["line_items"]), arr(got["line_items"])
	same("line count", len(wl), len(gl))
	for i := range min(len(wl), len(gl)) {
		for _, k := range []string{"quantity", "unit_price", "subtotal", "status"} {
			same(fmt.Sprintf("line %d %s", i, k), wl[i][k], gl[i][k])
		}
	}
	wf, gf := arr(want["fulfillments"]), arr(got["fulfillments"])
	same("fulfillment count", len(wf), len(gf))
	for i := range min(len(wf), len(gf)) {
		for _, k := range []string{"type", "status", "carrier", "tracking_number", "tracking_url", "description", "digital_delivery", "estimated_delivery", "destination"} {
			same(fmt.Sprintf("fulfillment %d %s", i, k), wf[i][k], gf[i][k])
		}
		same(fmt.Sprintf("fulfillment %d lines", i), refs(wf[i]["line_items"], wi), refs(gf[i]["line_items"], gi))
		var we, ge []string
		for _, ev := range arr(wf[i]["events"]) {
			we = append(we, fmt.Sprint(ev["type"], ev["description"], ev["location"], ev["occurred_at"]))
		}
		for _, ev := range arr(gf[i]["events"]) {
			ge = append(ge, fmt.Sprint(ev["type"], ev["description"], ev["location"], ev["occurred_at"]))
		}
		same(fmt.Sprintf("fulfillment %d events", i), we, ge)
	}
	wa, ga := arr(want["adjustments"]), arr(got["adjustments"])
	same("adjustment count", len(wa), len(ga))
	for i := range min(len(wa), len(ga)) {
		for _, k := range []string{"type", "status", "amount", "currency", "description", "reason"} {
			same(fmt.Sprintf("adjustment %d %s", i, k), wa[i][k], ga[i][k])
		}
		same(fmt.Sprintf("adjustment %d lines", i), refs(wa[i]["line_items"], wi), refs(ga[i]["line_items"], gi))
	}
	gt := map[string]any{}
	for _, x := range arr(got["totals"]) {
		gt[x["type"].(string)] = x["amount"]
	}
	for _, x := range arr(want["totals"]) {
		for _, typ := range totalTypes {
			if x["type"] == typ {
				same("total "+typ, x["amount"], gt[typ])
			}
		}
	}
}

func arr(v any) []map[string]any {
	var out []map[string]any
	for _, x := range asSlice(v) {
		out = append(out, x.(map[string]any))
	}
	return out
}

func asSlice(v any) []any { s, _ := v.([]any); return s }

// fulfilCatalog adds the example products and a free shipping option.
func fulfilCatalog(e *testEnv) {
	e.t.Helper()
	_, err := e.pool.Exec(context.Background(), `
INSERT INTO products (id, title) VALUES ('prod_ex', 'Examples');
INSERT INTO variants (id, product_id, title, price_amount, currency, fulfillment_type) VALUES
  ('prod_headphones_nc', 'prod_ex', 'Wireless Noise-Canceling Headphones', 29900, 'usd', 'shipping'),
  ('prod_cable_usbc', 'prod_ex', 'USB-C Charging Cable', 1900, 'usd', 'shipping'),
  ('prod_shoes_10', 'prod_ex', 'Running Shoes - Size 10', 12900, 'usd', 'shipping'),
  ('prod_shirt_blue_m', 'prod_ex', 'Cotton T-Shirt - Blue - Medium', 2900, 'usd', 'shipping'),
  ('prod_mbp16', 'prod_ex', 'MacBook Pro 16"', 249900, 'usd', 'shipping'),
  ('prod_sleeve', 'prod_ex', 'Laptop Sleeve', 4900, 'usd', 'shipping'),
  ('prod_photo_editor_pro', 'prod_ex', 'Pro Photo Editor - Annual License', 9900, 'usd', 'digital');
INSERT INTO fulfillment_options (id, type, title, amount, currency, carrier) VALUES
  ('free_shipping', 'shipping', 'Free', 0, 'usd', 'USPS'), ('ground_899', 'shipping', 'Ground', 899, 'usd', 'UPS');`)
	if err != nil {
		e.t.Fatal(err)
	}
}

func eventsOf(e *testEnv, oid, fid string, evs ...map[string]any) {
	e.t.Helper()
	for _, ev := range evs {
		fulfilAdmin(e, "/admin/orders/"+oid+"/fulfillments/"+fid+"/events", ev, http.StatusCreated)
	}
}

func lastFulfillmentID(m map[string]any) string {
	fs := arr(m["fulfillments"])
	return fs[len(fs)-1]["id"].(string)
}

// TestOrdersReproduceTheOfficialExamples sets up each order of
// internal/acpspec/spec/2026-04-17/orders through the checkout and admin APIs and
// compares the encoded Order with the example. Tax totals are compared where the
// example's tax is a single rate on each line (refunded-order, digital-fulfillment):
// the tax of shipped-order and partial-fulfillment is no whole basis-point rate
// (docs/decisions.md).
func TestOrdersReproduceTheOfficialExamples(t *testing.T) {
	t.Parallel()
	e := ordersEnv(t)
	fulfilCatalog(e)

	t.Run("simple-order", func(t *testing.T) {
		id, _ := fulfilOrder(e, 725, "standard_shipping", "item_123", 1)
		got, want := fulfilEncoded(e, id), fulfilExample(t, "simple-order.json")
		for k := range want {
			if k[0] != '$' && k[0] != '_' && got[k] == nil {
				t.Errorf("%s missing", k)
			}
		}
	})

	t.Run("refunded-order", func(t *testing.T) {
		id, lines := fulfilOrder(e, 875, "free_shipping", "prod_headphones_nc", 2, "prod_cable_usbc", 1)
		fulfilAdmin(e, "/admin/orders/"+id+"/status", map[string]any{"status": "confirmed"}, http.StatusOK)
		o := fulfilAdmin(e, "/admin/orders/"+id+"/fulfillments", map[string]any{
			"type": "shipping", "carrier": "USPS", "tracking_number": "9400111899223456789012",
			"tracking_url": "https://tools.usps.com/go/TrackConfirmAction?tLabels=9400111899223456789012",
			"line_items":   []map[string]any{{"id": lines[0], "quantity": 2}, {"id": lines[1], "quantity": 1}},
		}, http.StatusCreated)
		eventsOf(e, id, lastFulfillmentID(o),
			map[string]any{"type": "shipped", "occurred_at": "2026-01-20T09:00:00Z"},
			map[string]any{"type": "delivered", "occurred_at": "2026-01-24T11:30:00Z", "description": "Delivered, In/At Mailbox"})
		// No amount: the unit's share of the line's subtotal plus tax.
		fulfilAdmin(e, "/admin/orders/"+id+"/refunds", map[string]any{
			"type": "original_payment", "line_items": []map[string]any{{"id": lines[0], "quantity": 1}},
			"description": "Defective item - left earpiece intermittent audio (includes $26.16 tax)", "reason": "defective",
		}, http.StatusCreated)
		fulfilCompare(t, fulfilExample(t, "refunded-order.json"), fulfilEncoded(e, id), "subtotal", "fulfillment", "tax", "total", "amount_refunded")
	})

	t.Run("digital-fulfillment", func(t *testing.T) {
		id, lines := fulfilOrder(e, 875, "digital", "prod_photo_editor_pro", 1)
		o := fulfilAdmin(e, "/admin/orders/"+id+"/fulfillments", map[string]any{
			"type": "digital", "description": "Digital license delivered via email",
			"digital_delivery": map[string]any{"access_url": "https://merchant.example.com/downloads/photo-editor-pro?token=abc123",
				"license_key": "PPRO-2026-XXXX-YYYY-ZZZZ", "expires_at": "2027-02-10T00:00:00Z"},
			"line_items": []map[string]any{{"id": lines[0], "quantity": 1}},
		}, http.StatusCreated)
		eventsOf(e, id, lastFulfillmentID(o),
			map[string]any{"type": "processing", "occurred_at": "2026-02-10T09:00:00Z", "description": "Generating license key"},
			map[string]any{"type": "delivered", "occurred_at": "2026-02-10T09:00:30Z", "description": "License key sent to buyer's email"})
		fulfilCompare(t, fulfilExample(t, "digital-fulfillment.json"), fulfilEncoded(e, id), "subtotal", "tax", "total")
	})

	t.Run("partial-fulfillment", func(t *testing.T) {
		id, lines := fulfilOrder(e, 875, "ground_899", "prod_shoes_10", 3, "prod_shirt_blue_m", 2)
		fulfilAdmin(e, "/admin/orders/"+id+"/status", map[string]any{"status": "confirmed"}, http.StatusOK)
		o := fulfilAdmin(e, "/admin/orders/"+id+"/fulfillments", map[string]any{
			"type": "shipping", "carrier": "UPS", "tracking_number": "1Z999AA10123456784",
			"tracking_url": "https://www.ups.com/track?tracknum=1Z999AA10123456784",
			"line_items":   []map[string]any{{"id": lines[0], "quantity": 3}},
		}, http.StatusCreated)
		eventsOf(e, id, lastFulfillmentID(o),
			map[string]any{"type": "shipped", "occurred_at": "2026-02-02T10:00:00Z"},
			map[string]any{"type": "delivered", "occurred_at": "2026-02-04T14:00:00Z", "description": "Left at front door"})
		fulfilAdmin(e, "/admin/orders/"+id+"/fulfillments", map[string]any{
			"type": "shipping", "description": "Backordered - Expected to ship by Feb 15, 2026",
			"estimated_delivery": map[string]any{"earliest": "2026-02-18T00:00:00Z", "latest": "2026-02-22T00:00:00Z"},
			"line_items":         []map[string]any{{"id": lines[1], "quantity": 2}},
		}, http.StatusCreated)
		fulfilCompare(t, fulfilExample(t, "partial-fulfillment.json"), fulfilEncoded(e, id), "subtotal", "fulfillment")
	})

	t.Run("shipped-order", func(t *testing.T) {
		id, lines := fulfilOrder(e, 875, "free_shipping", "prod_mbp16", 1, "prod_sleeve", 1)
		fulfilAdmin(e, "/admin/orders/"+id+"/status", map[string]any{"status": "confirmed"}, http.StatusOK)
		o := fulfilAdmin(e, "/admin/orders/"+id+"/fulfillments", map[string]any{
			"type": "shipping", "carrier": "FedEx", "tracking_number": "794644790138",
			"tracking_url": "https://www.fedex.com/fedextrack/?trknbr=794644790138",
			"destination": map[string]any{"name": "John Smith", "line_one": "123 Main Street", "line_two": "Apt 4B",
				"city": "San Francisco", "state": "CA", "country": "US", "postal_code": "94102"},
			"estimated_delivery": map[string]any{"earliest": "2026-02-05T09:00:00Z", "latest": "2026-02-05T18:00:00Z"},
			"line_items":         []map[string]any{{"id": lines[0], "quantity": 1}, {"id": lines[1], "quantity": 1}},
		}, http.StatusCreated)
		eventsOf(e, id, lastFulfillmentID(o),
			map[string]any{"type": "processing", "occurred_at": "2026-02-01T10:00:00Z", "description": "Order received and being processed"},
			map[string]any{"type": "shipped", "occurred_at": "2026-02-02T14:30:00Z", "description": "Picked up by carrier", "location": "Memphis, TN"},
			map[string]any{"type": "in_transit", "occurred_at": "2026-02-03T08:00:00Z", "location": "Oakland, CA"},
			map[string]any{"type": "out_for_delivery", "occurred_at": "2026-02-05T07:30:00Z", "location": "San Francisco, CA"},
			map[string]any{"type": "delivered", "occurred_at": "2026-02-05T14:22:00Z", "description": "Delivered - Left at front door", "location": "San Francisco, CA"})
		fulfilCompare(t, fulfilExample(t, "shipped-order.json"), fulfilEncoded(e, id), "subtotal", "fulfillment")
	})
}

// adminPost sends an admin POST from a goroutine (e.do would call t.Fatal there).
func adminPost(e *testEnv, path string, body any) (int, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequest(http.MethodPost, e.server.URL+path, bytes.NewReader(raw))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+ordersAdminKey)
	resp, err := e.server.Client().Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// concurrently sends n copies of body to path at once and counts the 201s; every other
// answer must be a 409.
func concurrently(t *testing.T, e *testEnv, n int, path string, body any) int {
	t.Helper()
	var wg sync.WaitGroup
	codes := make([]int, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], errs[i] = adminPost(e, path, body)
		}()
	}
	wg.Wait()
	ok := 0
	for i, c := range codes {
		switch {
		case errs[i] != nil:
			t.Fatal(errs[i])
		case c == http.StatusCreated:
			ok++
		case c != http.StatusConflict:
			t.Errorf("status %d, want 201 or 409", c)
		}
	}
	return ok
}

// Many concurrent refunds adding up to more than was paid: exactly those that fit
// succeed, and the refunds never exceed the payment.
func TestOrdersConcurrentRefundsNeverExceedThePayment(t *testing.T) {
	t.Parallel()
	e := ordersEnv(t)
	id, _, total := ordersMustOrder(e, "")
	amount := total/7 + 1 // 7 fit at most; 20 are asked
	ok := concurrently(t, e, 20, "/admin/orders/"+id+"/refunds", map[string]any{"type": "original_payment", "amount": amount})
	o := ordersDecode(e, ordersAdmin(e, http.MethodGet, "/admin/orders/"+id, nil), http.StatusOK)
	if want := int(total / amount); ok != want || o.Refunded != int64(ok)*amount || o.Refunded > total {
		t.Errorf("%d refunds of %d succeeded (refunded %d of %d), want %d", ok, amount, o.Refunded, total, want)
	}
}

// Concurrent fulfilments of one line never carry more units than are on the order.
func TestOrdersConcurrentFulfilmentsNeverExceedTheQuantity(t *testing.T) {
	t.Parallel()
	e := ordersEnv(t)
	id, lines := fulfilOrder(e, 725, "standard_shipping", "item_123", 5)
	ok := concurrently(t, e, 12, "/admin/orders/"+id+"/fulfillments", map[string]any{
		"type": "shipping", "status": "shipped", "line_items": []map[string]any{{"id": lines[0], "quantity": 1}}})
	got := fulfilEncoded(e, id)
	l := arr(got["line_items"])[0]
	if ok != 5 || fmt.Sprint(l["quantity"]) != "map[current:5 fulfilled:5 ordered:5]" || got["status"] != "shipped" {
		t.Errorf("%d fulfilments succeeded; order %v line %v", ok, got["status"], l)
	}
	// Nothing is left to fulfil or cancel; a refund of units is priced from the line.
	e.mustError(ordersAdmin(e, http.MethodPost, "/admin/orders/"+id+"/cancellations",
		map[string]any{"line_items": []map[string]any{{"id": lines[0], "quantity": 1}}}), http.StatusConflict, "quantity_exceeded", "$.line_items[0].quantity")
}

// A partial shipment makes the order processing; 2025-09-29 sees confirmed, then shipped
// and fulfilled once every unit has left and arrived. Cancelling the rest of a line
// lowers current and restocks; canceling every unit cancels the order.
func TestOrdersPartialShipmentAndCancellation(t *testing.T) {
	t.Parallel()
	e := ordersEnv(t)
	id, lines := fulfilOrder(e, 725, "standard_shipping", "item_123", 3, "item_456", 1)
	fulfilAdmin(e, "/admin/orders/"+id+"/status", map[string]any{"status": "confirmed"}, http.StatusOK)
	o := fulfilAdmin(e, "/admin/orders/"+id+"/fulfillments", map[string]any{
		"type": "shipping", "status": "shipped", "line_items": []map[string]any{{"id": lines[0], "quantity": 2}}}, http.StatusCreated)
	if o["status"] != "processing" {
		t.Errorf("after a partial shipment: %v", o["status"])
	}
	got := fulfilEncoded(e, id)
	if l := arr(got["line_items"]); l[0]["status"] != "partial" || l[1]["status"] != "processing" || got["status"] != "processing" {
		t.Errorf("encoded %v", got)
	}
	o = fulfilAdmin(e, "/admin/orders/"+id+"/cancellations", map[string]any{
		"line_items": []map[string]any{{"id": lines[0], "quantity": 1}}, "reason": "out_of_stock"}, http.StatusCreated)
	fid := lastFulfillmentID(o)
	fulfilAdmin(e, "/admin/orders/"+id+"/fulfillments", map[string]any{
		"type": "pickup", "status": "ready_for_pickup", "line_items": []map[string]any{{"id": lines[1], "quantity": 1}}}, http.StatusCreated)
	o = fulfilAdmin(e, "/admin/orders/"+id+"/fulfillments", map[string]any{
		"type": "pickup", "status": "ready_for_pickup", "line_items": []map[string]any{{"id": lines[1], "quantity": 1}}}, http.StatusConflict)
	_ = o
	o = fulfilAdmin(e, "/admin/orders/"+id+"/fulfillments/"+fid+"/events", map[string]any{"type": "delivered"}, http.StatusCreated)
	if o["status"] != "processing" {
		t.Errorf("pickup not collected yet: %v", o["status"])
	}
	got = fulfilEncoded(e, id)
	adj := arr(got["adjustments"])
	if len(adj) != 1 || adj[0]["type"] != "cancellation" || arr(got["line_items"])[0]["status"] != "fulfilled" {
		t.Errorf("encoded %v", got)
	}
	// Inapplicable statuses and events are refused.
	e.mustError(ordersAdmin(e, http.MethodPost, "/admin/orders/"+id+"/fulfillments/"+fid+"/events", map[string]any{"type": "ready_for_pickup"}),
		http.StatusBadRequest, "invalid", "$.type")
}
