package httpapi_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/testkit"
)

// The 2026-04-17 wire format end to end: every request in its shapes, every response
// validated against its schemas (mustSession, mustError).

// as returns a copy of e speaking version to the same server.
func (e *testEnv) as(version string) *testEnv {
	c := *e
	c.version, c.schemas = version, testkit.Schemas(e.t, version)
	return &c
}

// create0417 is a full 2026-04-17 create request: two tees, a buyer known by email
// and full name only, an agent that supports 3-D Secure, biometrics and something this
// server has never heard of, and the fields accepted but not acted on yet.
var create0417 = map[string]any{
	"line_items": []any{map[string]any{"id": "item_123", "quantity": 2, "name": "Agent's name", "unit_amount": 1}},
	"currency":   "usd",
	"capabilities": map[string]any{
		"interventions": map[string]any{"supported": []any{"3ds", "biometric", "telepathy"}, "display_context": "webview"},
		"extensions":    []any{},
	},
	"buyer":    map[string]any{"email": "ada@example.com", "full_name": "Ada Lovelace"},
	"locale":   "en-GB",
	"timezone": "Europe/London",
	"metadata": map[string]any{"agent_cart": "c_1", "attempt": 1},
	"affiliate_attribution": map[string]any{
		"provider": "impact.com", "token": "atp_1", "touchpoint": "first", "metadata": map[string]any{"campaign": "spring"},
	},
	"order_notes": "Leave at the door.",
	"discounts":   map[string]any{"codes": []any{"SPRING"}},
}

func TestFlow0417(t *testing.T) {
	t.Parallel()
	e := mustEnvVersion(t, "2026-04-17", time.Minute)
	s := e.mustSession(e.do(http.MethodPost, "/checkout_sessions", create0417, "Idempotency-Key", "flow-create"), http.StatusCreated)
	id := s["id"].(string)
	if s["status"] != "not_ready_for_payment" || s["protocol"].(map[string]any)["version"] != "2026-04-17" {
		t.Errorf("status %v, protocol %v", s["status"], s["protocol"])
	}
	// Prices are the catalog's, whatever the agent says an item costs.
	if l := s["line_items"].([]any)[0].(map[string]any); l["quantity"].(float64) != 2 || l["unit_amount"].(float64) != 1500 || l["name"] != "Tee" {
		t.Errorf("line = %v", l)
	}
	caps := s["capabilities"].(map[string]any)
	// The merchant runs 3-D Secure only, so the intersection is ["3ds"]; extensions
	// are never sent (an empty list is invalid, checklist I-14).
	if iv := caps["interventions"].(map[string]any); !slices.Equal(iv["supported"].([]any), []any{"3ds"}) || caps["extensions"] != nil {
		t.Errorf("capabilities = %v", caps)
	}
	e.checkPayment(t, s)
	if s["locale"] != "en-GB" || s["timezone"] != "Europe/London" || s["metadata"].(map[string]any)["agent_cart"] != "c_1" {
		t.Errorf("locale %v, timezone %v, metadata %v", s["locale"], s["timezone"], s["metadata"])
	}
	if b := s["buyer"].(map[string]any); b["email"] != "ada@example.com" || b["full_name"] != "Ada Lovelace" {
		t.Errorf("buyer = %v", b)
	}
	for _, secret := range []string{"affiliate_attribution", "order_notes", "intent_trace", "atp_1", "telepathy"} {
		if strings.Contains(string(e.do(http.MethodGet, "/checkout_sessions/"+id, nil).body), secret) {
			t.Errorf("the session shows %s", secret)
		}
	}

	s = e.mustSession(e.do(http.MethodPost, "/checkout_sessions/"+id, map[string]any{
		"fulfillment_details": map[string]any{
			"name": "Ada Lovelace", "phone_number": "15551234567", "email": "ada@example.com",
			"address": map[string]any{"name": "Ada Lovelace", "company": "Analytical Engines", "line_one": "1 Road", "city": "San Francisco",
				"state": "CA", "country": "US", "postal_code": "94131"},
		},
		"selected_fulfillment_options": []any{map[string]any{"type": "shipping", "option_id": "express_shipping", "item_ids": []any{"item_123"}}},
	}, "Idempotency-Key", "flow-update"), http.StatusOK)
	if s["status"] != "ready_for_payment" || e.selectedOption(s) != "express_shipping" {
		t.Fatalf("status %v, option %v, messages %v", s["status"], e.selectedOption(s), messages(s))
	}
	sel := s["selected_fulfillment_options"].([]any)[0].(map[string]any)
	if fmtIDs := sel["item_ids"].([]any); len(fmtIDs) != 1 || fmtIDs[0] != "item_123" || sel["type"] != "shipping" {
		t.Errorf("selected = %v", sel)
	}
	fd := s["fulfillment_details"].(map[string]any)
	if fd["name"] != "Ada Lovelace" || fd["phone_number"] != "15551234567" || fd["address"].(map[string]any)["company"] != "Analytical Engines" {
		t.Errorf("fulfillment_details = %v", fd)
	}
	total := int64(totals(t, s)["total"])

	r := e.do(http.MethodPost, delegatePath, delegateBody(id, total, "usd", visaNumber, "123"), "Idempotency-Key", "flow-delegate")
	if r.status != http.StatusCreated {
		t.Fatalf("delegate = %d %s", r.status, r.body)
	}
	e.schemas.Delegate.MustValidate(t, "DelegatePaymentResponse", r.body)
	token := r.json(t)["id"].(string)
	if !strings.HasPrefix(token, "vt_") {
		t.Fatalf("token = %q", token)
	}

	complete := func(handler, token string) map[string]any {
		return map[string]any{
			"payment_data": map[string]any{
				"handler_id": handler,
				"instrument": map[string]any{"type": "card", "credential": map[string]any{"type": "spt", "token": token}},
			},
			"marketing_consents": []any{map[string]any{"channel": "email", "opted_in": true}},
			"risk_signals":       map[string]any{"ip_address": "203.0.113.7"},
		}
	}
	// A handler the session does not offer, and a vault token to the handler of the
	// PSP's test tokens, are refused before anything is charged.
	e.mustError(e.do(http.MethodPost, "/checkout_sessions/"+id+"/complete", complete("seller_pm_123", token), "Idempotency-Key", "flow-complete-1"),
		http.StatusBadRequest, "invalid_payment_handler", "$.payment_data.handler_id")
	e.mustError(e.do(http.MethodPost, "/checkout_sessions/"+id+"/complete", complete("card_psp_test", token), "Idempotency-Key", "flow-complete-2"),
		http.StatusBadRequest, "invalid_payment_token", "$.payment_data.instrument.credential.token")
	e.mustError(e.do(http.MethodPost, "/checkout_sessions/"+id+"/complete",
		map[string]any{"payment_data": map[string]any{"purchase_order_number": "PO-1"}}, "Idempotency-Key", "flow-complete-3"),
		http.StatusBadRequest, "unsupported", "$.payment_data.purchase_order_number")

	s = e.mustCompleted(e.do(http.MethodPost, "/checkout_sessions/"+id+"/complete", complete("card_tokenized", token), "Idempotency-Key", "flow-complete"))
	if s["status"] != "completed" {
		t.Errorf("status %v", s["status"])
	}
	o := s["order"].(map[string]any)
	if o["type"] != "order" || o["checkout_session_id"] != id || o["status"] != "created" || !strings.HasPrefix(o["permalink_url"].(string), "https://") {
		t.Errorf("order = %v", o)
	}
	lines := o["line_items"].([]any)
	if len(lines) != 1 {
		t.Fatalf("order lines = %v", lines)
	}
	l := lines[0].(map[string]any)
	if l["title"] != "Tee" || l["unit_price"].(float64) != 1500 || l["quantity"].(map[string]any)["ordered"].(float64) != 2 || l["status"] != "processing" {
		t.Errorf("order line = %v", l)
	}
	if got := totalsOf(o["totals"])["total"]; int64(got) != total {
		t.Errorf("order total = %v, want %d", got, total)
	}
	// The replay of complete is the same response, marked as such, with no second order.
	r = e.do(http.MethodPost, "/checkout_sessions/"+id+"/complete", complete("card_tokenized", token), "Idempotency-Key", "flow-complete")
	if r.status != http.StatusOK || r.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay = %d %v", r.status, r.header)
	}
	if n := dbInt(e, `SELECT count(*) FROM orders WHERE checkout_session_id = $1`, id); n != 1 {
		t.Errorf("orders = %d, want 1", n)
	}
	if g := e.mustSession(e.do(http.MethodGet, "/checkout_sessions/"+id, nil), http.StatusOK); g["status"] != "completed" {
		t.Errorf("GET status = %v", g["status"])
	}
}

func TestIdempotencyKeyRequired0417(t *testing.T) {
	t.Parallel()
	e := mustEnvVersion(t, "2026-04-17", time.Minute)
	id := e.mustCreate(e.createBody(fields{items: items("item_123", 1)}))["id"].(string)
	for path, body := range map[string]any{
		"/checkout_sessions":       e.createBody(fields{items: items("item_123", 1)}),
		"/checkout_sessions/" + id: e.updateBody(fields{buyer: buyer}),
		"/checkout_sessions/" + id + "/complete": map[string]any{"payment_data": map[string]any{"handler_id": "card_psp_test",
			"instrument": map[string]any{"type": "card", "credential": map[string]any{"type": "spt", "token": "tok_visa"}}}},
		"/checkout_sessions/" + id + "/cancel": nil,
		delegatePath:                           delegateBody(id, 100, "usd", visaNumber, "123"),
	} {
		e.mustError(e.do(http.MethodPost, path, body, "Idempotency-Key", ""), http.StatusBadRequest, "idempotency_key_required", "")
	}
	// GET needs none; nothing refused changed the session.
	if g := e.mustSession(e.do(http.MethodGet, "/checkout_sessions/"+id, nil), http.StatusOK); g["buyer"] != nil || g["status"] == "canceled" {
		t.Errorf("a refused request changed the session: %v", g)
	}

	// A key reused with another body is 422 in 2026-04-17, in checkout and delegate_payment.
	e.mustCreate(e.createBody(fields{items: items("item_123", 1)}))
	first := e.do(http.MethodPost, "/checkout_sessions", e.createBody(fields{items: items("item_123", 1)}), "Idempotency-Key", "reused")
	e.mustSession(first, http.StatusCreated)
	e.mustError(e.do(http.MethodPost, "/checkout_sessions", e.createBody(fields{items: items("item_123", 2)}), "Idempotency-Key", "reused"),
		http.StatusUnprocessableEntity, "idempotency_conflict", "")
	if r := e.do(http.MethodPost, delegatePath, delegateBody(id, 100, "usd", visaNumber, "123"), "Idempotency-Key", "reused-dp"); r.status != http.StatusCreated {
		t.Fatalf("delegate = %d %s", r.status, r.body)
	}
	e.mustError(e.do(http.MethodPost, delegatePath, delegateBody(id, 200, "usd", visaNumber, "123"), "Idempotency-Key", "reused-dp"),
		http.StatusUnprocessableEntity, "idempotency_conflict", "")
	// The same body again is the original response.
	again := e.do(http.MethodPost, "/checkout_sessions", e.createBody(fields{items: items("item_123", 1)}), "Idempotency-Key", "reused")
	if again.status != http.StatusCreated || string(again.body) != string(first.body) || again.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay = %d %s", again.status, again.body)
	}
}

func TestVersionsReadEachOthersSessions(t *testing.T) {
	t.Parallel()
	e := mustEnvVersion(t, "2026-04-17", time.Minute)
	old := e.as("2025-09-29")

	// Created in 2025-09-29, read and completed in 2026-04-17.
	s := old.mustCreate(old.createBody(fields{items: items("item_123", 1, "item_456", 2), address: address, buyer: buyer}))
	id := s["id"].(string)
	s = old.mustSession(old.do(http.MethodPost, "/checkout_sessions/"+id, old.updateBody(fields{option: "express_shipping"})), http.StatusOK)
	g := e.mustSession(e.do(http.MethodGet, "/checkout_sessions/"+id, nil), http.StatusOK)
	if g["status"] != "ready_for_payment" || e.selectedOption(g) != "express_shipping" || g["buyer"].(map[string]any)["first_name"] != "Ada" ||
		e.address(g).(map[string]any)["city"] != "San Francisco" || len(g["line_items"].([]any)) != 2 {
		t.Errorf("2025-09-29 session in 2026-04-17: %v", g)
	}
	if totalsOf(g["totals"])["total"] != totalsOf(s["totals"])["total"] {
		t.Errorf("totals differ: %v vs %v", g["totals"], s["totals"])
	}
	// A 2025-09-29 agent declared no interventions: the intersection is empty.
	if iv := g["capabilities"].(map[string]any)["interventions"].(map[string]any); len(iv["supported"].([]any)) != 0 {
		t.Errorf("interventions = %v", iv)
	}

	// Created in 2026-04-17 with what 2025-09-29 cannot show, read in 2025-09-29.
	s = e.mustCreate(create0417)
	id = s["id"].(string)
	e.mustSession(e.do(http.MethodPost, "/checkout_sessions/"+id, map[string]any{
		"fulfillment_details": map[string]any{"name": "Ada", "address": address},
	}), http.StatusOK)
	g = old.mustSession(old.do(http.MethodGet, "/checkout_sessions/"+id, nil), http.StatusOK)
	if b := g["buyer"].(map[string]any); b["first_name"] != "Ada" || b["last_name"] != "Lovelace" || b["email"] != "ada@example.com" {
		t.Errorf("buyer in 2025-09-29 = %v", b)
	}
	if old.address(g).(map[string]any)["postal_code"] != "94131" || old.selectedOption(g) != "standard_shipping" {
		t.Errorf("2026-04-17 session in 2025-09-29: %v", g)
	}
	// Canceled with a trace in 2026-04-17: 2025-09-29 shows it canceled, the trace is
	// the merchant's only.
	e.mustSession(e.do(http.MethodPost, "/checkout_sessions/"+id+"/cancel",
		map[string]any{"intent_trace": map[string]any{"reason_code": "shipping_cost", "trace_summary": "Too dear.", "metadata": map[string]any{"quoted": 500}}}), http.StatusOK)
	if g := old.mustSession(old.do(http.MethodGet, "/checkout_sessions/"+id, nil), http.StatusOK); g["status"] != "canceled" {
		t.Errorf("status in 2025-09-29 = %v", g["status"])
	}
	var reason string
	if err := e.pool.QueryRow(context.Background(), `SELECT cancel_intent_trace->>'reason_code' FROM checkout_sessions WHERE id = $1`, id).Scan(&reason); err != nil || reason != "shipping_cost" {
		t.Errorf("recorded trace reason = %q (%v)", reason, err)
	}
}

func TestNullClears0417(t *testing.T) {
	t.Parallel()
	e := mustEnvVersion(t, "2026-04-17", time.Minute)
	s := e.mustCreate(e.createBody(fields{items: items("item_123", 1), address: address, buyer: buyer}))
	id := s["id"].(string)
	s = e.mustSession(e.do(http.MethodPost, "/checkout_sessions/"+id, e.updateBody(fields{option: "express_shipping"})), http.StatusOK)
	if s["status"] != "ready_for_payment" || s["buyer"] == nil {
		t.Fatalf("status %v, messages %v", s["status"], messages(s))
	}

	// Absent keeps: an update of something else leaves buyer and address.
	s = e.mustSession(e.do(http.MethodPost, "/checkout_sessions/"+id, `{"order_notes":"Ring twice."}`), http.StatusOK)
	if s["buyer"] == nil || e.address(s) == nil || e.selectedOption(s) != "express_shipping" {
		t.Errorf("an absent field was cleared: %v", s)
	}
	// null clears: the buyer, then the fulfillment details (the session needs an address
	// again), then the selection (the first fitting option is pre-selected again).
	s = e.mustSession(e.do(http.MethodPost, "/checkout_sessions/"+id, `{"buyer":null}`), http.StatusOK)
	if _, ok := s["buyer"]; ok || e.address(s) == nil {
		t.Errorf("buyer: null: %v", s)
	}
	s = e.mustSession(e.do(http.MethodPost, "/checkout_sessions/"+id, `{"selected_fulfillment_options":null}`), http.StatusOK)
	if e.selectedOption(s) != "standard_shipping" {
		t.Errorf("selection after null = %v", e.selectedOption(s))
	}
	s = e.mustSession(e.do(http.MethodPost, "/checkout_sessions/"+id, `{"fulfillment_details":null}`), http.StatusOK)
	if _, ok := s["fulfillment_details"]; ok || s["status"] != "not_ready_for_payment" ||
		!slices.Equal(messages(s), []string{"missing@$.fulfillment_details.address"}) {
		t.Errorf("fulfillment_details: null: status %v, messages %v, %v", s["status"], messages(s), s["fulfillment_details"])
	}
	e.mustError(e.do(http.MethodPost, "/checkout_sessions/"+id, `{"line_items":null}`), http.StatusBadRequest, "invalid", "$.line_items")
}

func TestUnknownFields0417(t *testing.T) {
	t.Parallel()
	e := mustEnvVersion(t, "2026-04-17", time.Minute)
	id := e.mustCreate(e.createBody(fields{items: items("item_123", 1)}))["id"].(string)
	for _, tc := range []struct{ path, body, param string }{
		{"/checkout_sessions", e.rawCreate(`[{"id":"item_123"}]`, `,"items":[]`), "$.items"},
		{"/checkout_sessions", `{"line_items":[{"id":"item_123"}],"currency":"usd","capabilities":{"payment_methods":["card"]}}`, "$.capabilities.payment_methods"},
		{"/checkout_sessions/" + id, `{"fulfillment_details":{"address":{"zip":"94131"}}}`, "$.fulfillment_details.address.zip"},
		{"/checkout_sessions/" + id, `{"fulfillment_address":{}}`, "$.fulfillment_address"},
		{"/checkout_sessions/" + id + "/complete", `{"payment_data":{"token":"tok_visa","provider":"stripe"}}`, "$.payment_data.token"},
		{"/checkout_sessions/" + id + "/cancel", `{"intent_trace":{"reason_code":"other","mood":"sad"}}`, "$.intent_trace.mood"},
	} {
		e.mustError(e.do(http.MethodPost, tc.path, tc.body), http.StatusBadRequest, "unknown_field", tc.param)
	}
	// A missing quantity is 1 (our extension, checklist I-09); an unknown reason code is other.
	s := e.mustCreate(e.rawCreate(`[{"id":"item_456"}]`, ""))
	if l := s["line_items"].([]any)[0].(map[string]any); l["quantity"].(float64) != 1 {
		t.Errorf("default quantity = %v", l["quantity"])
	}
	e.mustSession(e.do(http.MethodPost, "/checkout_sessions/"+id+"/cancel", `{"intent_trace":{"reason_code":"moon_phase"}}`), http.StatusOK)
}
