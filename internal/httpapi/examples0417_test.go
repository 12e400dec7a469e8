package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/acpspec"
)

// The official 2026-04-17 example requests, sent to the running server as the spec
// writes them. They are read from the vendored spec (internal/acpspec), never copied
// here; what is adapted is only what must be: ids that name the spec's imaginary
// catalog, the vault token a completion pays with, and what a clock has overtaken.

// examples0417 reads the official example requests and records which ones a test sent,
// so that it can tell when a vendored example request was never sent.
type examples0417 struct {
	t    *testing.T
	sent map[string]bool // "file#name"
}

// exampleFiles0417 are the example files below spec/2026-04-17 whose requests go to
// an API this server serves, with the name each file gives its requests. Every other
// examples file of the version must be in exampleFilesElsewhere0417.
var exampleFiles0417 = []string{
	"examples.agentic_checkout.json",
	"examples.multi_item_checkout.json",
	"examples.delegate_payment.json",
	"discount-extension/automatic-discount.json",
	"discount-extension/order-level-discount.json",
	"discount-extension/percentage-discount-with-allocations.json",
	"discount-extension/rejected-discount-code.json",
	"discount-extension/stacked-discounts.json",
}

// exampleFilesElsewhere0417 are the example files of APIs or bindings this server does
// not serve, with why; their requests cannot be sent.
var exampleFilesElsewhere0417 = map[string]string{
	"examples.delegate_authentication.json": "delegate_authentication is the PSP's API, not the merchant's",
	"examples.mcp.agentic_checkout.json":    "the MCP binding's JSON-RPC requests, sent to /mcp by TestMCPExamples",
	"examples.feed.json":                    "the product feed is pushed to the agent, not served here",
}

// request returns a fresh copy of the example request name of file (a path below
// spec/2026-04-17), numbers kept as written, and marks it sent.
func (x *examples0417) request(file, name string) map[string]any {
	x.t.Helper()
	var all map[string]json.RawMessage
	if err := json.Unmarshal(acpspec.ReadFile(x.t, path.Join(v0417, file)), &all); err != nil {
		x.t.Fatalf("%s: %v", file, err)
	}
	raw, ok := all[name]
	if !ok {
		x.t.Fatalf("%s has no example %s", file, name)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		x.t.Fatalf("%s#%s: %v", file, name, err)
	}
	x.sent[file+"#"+name] = true
	return m
}

// mustHaveSentAll fails unless every example request of the version was sent: a
// request example that a new spec release adds is not silently left out.
func (x *examples0417) mustHaveSentAll() {
	x.t.Helper()
	files, err := fs.Glob(acpspec.FS(), v0417+"/examples.*.json")
	if err != nil {
		x.t.Fatal(err)
	}
	discounts, err := fs.Glob(acpspec.FS(), v0417+"/discount-extension/*.json")
	if err != nil {
		x.t.Fatal(err)
	}
	for _, f := range append(files, discounts...) {
		f = strings.TrimPrefix(f, v0417+"/")
		if _, ok := exampleFilesElsewhere0417[f]; ok {
			continue
		}
		if !slices.Contains(exampleFiles0417, f) {
			x.t.Errorf("examples file %s: neither sent nor said to be another API's", f)
			continue
		}
		var all map[string]json.RawMessage
		if err := json.Unmarshal(acpspec.ReadFile(x.t, path.Join(v0417, f)), &all); err != nil {
			x.t.Fatalf("%s: %v", f, err)
		}
		for name := range all {
			if strings.HasSuffix(name, "request") || strings.Contains(name, "_request_") {
				if !x.sent[f+"#"+name] {
					x.t.Errorf("example request %s#%s was not sent", f, name)
				}
			}
		}
	}
}

// obj is the object at key of m.
func obj(t *testing.T, m map[string]any, key string) map[string]any {
	t.Helper()
	o, ok := m[key].(map[string]any)
	if !ok {
		t.Fatalf("%s is not an object in %v", key, m)
	}
	return o
}

// TestOfficialExampleRequests0417 sends every official 2026-04-17 example request of
// checkout, multi-item checkout, delegate_payment and the discount extension to the
// server, each with its own Idempotency-Key, and checks each answer: its status, its
// schema (sessions, complete responses with their order, errors and vault tokens against
// the official JSON Schemas) and that it says what the request asked for.
func TestOfficialExampleRequests0417(t *testing.T) {
	t.Parallel()
	e := mustEnvVersion(t, v0417, time.Minute)
	x := &examples0417{t: t, sent: map[string]bool{}}
	const (
		checkoutEx = "examples.agentic_checkout.json"
		multiEx    = "examples.multi_item_checkout.json"
		delegateEx = "examples.delegate_payment.json"
	)
	post := func(path string, body any) response {
		t.Helper()
		return e.do(http.MethodPost, path, body, "Idempotency-Key", newKey())
	}

	// create_checkout_session_request: item_123 is in the test catalog as it stands.
	create := func() map[string]any {
		t.Helper()
		s := e.mustSession(post("/checkout_sessions", x.request(checkoutEx, "create_checkout_session_request")), http.StatusCreated)
		l := s["line_items"].([]any)[0].(map[string]any)
		if len(s["line_items"].([]any)) != 1 || obj(t, l, "item")["id"] != "item_123" || l["quantity"].(float64) != 1 ||
			l["unit_amount"].(float64) != 1500 || s["currency"] != "usd" {
			t.Errorf("create: lines %v, currency %v", s["line_items"], s["currency"])
		}
		fd := obj(t, s, "fulfillment_details")
		if fd["name"] != "John Doe" || fd["email"] != "johndoe@example.com" || obj(t, fd, "address")["postal_code"] != "94131" {
			t.Errorf("create: fulfillment_details = %v", fd)
		}
		// The agent supports 3ds and address_verification; the merchant runs 3ds only.
		if iv := obj(t, obj(t, s, "capabilities"), "interventions"); fmt.Sprint(iv["supported"]) != "[3ds]" {
			t.Errorf("create: interventions = %v", iv)
		}
		if strings.Contains(string(must(json.Marshal(s))), "Leave at front door") {
			t.Error("create: the session shows the order notes")
		}
		return s
	}
	// update_checkout_session_request selects the spec's fulfillment_option_456, its
	// express option (as 2025-09-29's examples list it); the seed calls that
	// express_shipping.
	update := func(id string) map[string]any {
		t.Helper()
		body := x.request(checkoutEx, "update_checkout_session_request")
		sel := body["selected_fulfillment_options"].([]any)[0].(map[string]any)
		if sel["option_id"] != "fulfillment_option_456" {
			t.Fatalf("the update example selects %v, not the option this test adapts", sel["option_id"])
		}
		sel["option_id"] = "express_shipping"
		s := e.mustSession(post("/checkout_sessions/"+id, body), http.StatusOK)
		if s["status"] != "ready_for_payment" || e.selectedOption(s) != "express_shipping" {
			t.Fatalf("update: status %v, option %v, messages %v", s["status"], e.selectedOption(s), messages(s))
		}
		return s
	}
	// vaultToken sends delegate_payment_request with its allowance bound to the session
	// (id, total, currency, a future expiry) and its card's expiry moved past today (the
	// example's card expires in November 2026), and returns the vault token. Its risk
	// signal asks for a manual review.
	vaultToken := func(id string, total int64) string {
		t.Helper()
		body := x.request(delegateEx, "delegate_payment_request")
		a := obj(t, body, "allowance")
		a["checkout_session_id"], a["max_amount"], a["currency"] = id, total, "usd"
		a["expires_at"] = time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
		obj(t, body, "payment_method")["exp_year"] = strconv.Itoa(time.Now().Year() + 1)
		r := post(delegatePath, body)
		if r.status != http.StatusCreated {
			t.Fatalf("delegate_payment_request: %d %s", r.status, r.body)
		}
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("delegate: Content-Type = %q", ct)
		}
		e.schemas.Delegate.MustValidate(t, "DelegatePaymentResponse", r.body)
		m := r.json(t)
		md := obj(t, m, "metadata")
		if md["campaign"] != "q4" || md["source"] != "chatgpt_checkout" || md["merchant_id"] != "acme_store" {
			t.Errorf("delegate: metadata = %v", md)
		}
		token, _ := m["id"].(string)
		if !strings.HasPrefix(token, "vt_") {
			t.Fatalf("delegate: id = %q", m["id"])
		}
		return token
	}
	// ready is a session the checkout examples made ready to pay, with its total.
	ready := func() (string, int64) {
		t.Helper()
		id := create()["id"].(string)
		return id, totals(t, update(id))["total"]
	}
	// complete sends the complete example name paying with a token delegated for a new
	// ready session (the spec's spt_… token names no vault token of ours), and checks
	// that it made the order it should.
	complete := func(name string) map[string]any {
		t.Helper()
		id, total := ready()
		body := x.request(checkoutEx, name)
		cred := obj(t, obj(t, obj(t, body, "payment_data"), "instrument"), "credential")
		cred["token"] = vaultToken(id, total)
		s := e.mustCompleted(post("/checkout_sessions/"+id+"/complete", body))
		o := obj(t, s, "order")
		if s["status"] != "completed" || o["checkout_session_id"] != id || int64(totalsOf(o["totals"])["total"]) != total ||
			o["status"] != "manual_review" {
			t.Errorf("%s: status %v, order %v, want an order of %d in manual review", name, s["status"], o, total)
		}
		want := obj(t, body, "buyer")
		if b := obj(t, s, "buyer"); b["email"] != want["email"] || b["first_name"] != want["first_name"] || b["last_name"] != want["last_name"] {
			t.Errorf("%s: buyer = %v, want %v", name, b, want)
		}
		if n := dbInt(e, `SELECT count(*) FROM orders WHERE checkout_session_id = $1`, id); n != 1 {
			t.Errorf("%s: orders = %d, want 1", name, n)
		}
		return s
	}

	// complete_checkout_session_request_seller_backed pays through seller_pm_123, a
	// handler this merchant does not offer: refused before anything is charged.
	id, total := ready()
	vaultToken(id, total)
	charges := e.gateway.Charges()
	e.mustError(post("/checkout_sessions/"+id+"/complete", x.request(checkoutEx, "complete_checkout_session_request_seller_backed")),
		http.StatusBadRequest, "invalid_payment_handler", "$.payment_data.handler_id")
	if g := e.mustSession(e.do(http.MethodGet, "/checkout_sessions/"+id, nil), http.StatusOK); g["status"] != "ready_for_payment" ||
		e.gateway.Charges() != charges {
		t.Errorf("the refused seller-backed completion changed the session (%v) or charged", g["status"])
	}

	complete("complete_checkout_session_request")
	// The attribution is taken, never shown.
	if s := complete("complete_checkout_session_request_with_last_touch_attribution"); strings.Contains(string(must(json.Marshal(s))), "atp_01J8Z3WXYZ9ABC") {
		t.Error("the complete response shows the affiliate token")
	}
	// A successful authentication result pays; a denied one is refused before anything
	// is charged, whether or not the card asked for 3-D Secure (docs/decisions.md).
	complete("complete_session_with_authentication_result_request")
	id, total = ready()
	denied := x.request(checkoutEx, "complete_session_with_denied_authentication_request")
	obj(t, obj(t, obj(t, denied, "payment_data"), "instrument"), "credential")["token"] = vaultToken(id, total)
	charges = e.gateway.Charges()
	e.mustError(post("/checkout_sessions/"+id+"/complete", denied),
		http.StatusBadRequest, "authentication_failed", "$.authentication_result.outcome")
	if n := dbInt(e, `SELECT count(*) FROM orders WHERE checkout_session_id = $1`, id); n != 0 || e.gateway.Charges() != charges {
		t.Errorf("the denied authentication made %d orders or charged", n)
	}

	// create_checkout_session_request_with_first_touch_attribution: no address yet.
	first := e.mustSession(post("/checkout_sessions", x.request(checkoutEx, "create_checkout_session_request_with_first_touch_attribution")), http.StatusCreated)
	if first["status"] != "not_ready_for_payment" || !slices.Equal(messages(first), []string{"missing@$.fulfillment_details.address"}) ||
		strings.Contains(string(must(json.Marshal(first))), "atp_01J8Z3WXYZ9ABC") {
		t.Errorf("first-touch create: status %v, messages %v: %v", first["status"], messages(first), first)
	}

	// create_multi_item_checkout_request: item_123 and item_456 are in the test catalog;
	// the agent's unit_amounts are not prices, the catalog's are. It lacks the required
	// capabilities, which the server does not insist on (checklist I-39).
	multi := e.mustSession(post("/checkout_sessions", x.request(multiEx, "create_multi_item_checkout_request")), http.StatusCreated)
	var got []string
	for _, raw := range multi["line_items"].([]any) {
		l := raw.(map[string]any)
		got = append(got, obj(t, l, "item")["id"].(string)+"@"+strconv.FormatFloat(l["unit_amount"].(float64), 'f', -1, 64))
	}
	if want := []string{"item_123@1500", "item_456@3000"}; !slices.Equal(got, want) || multi["status"] != "ready_for_payment" {
		t.Errorf("multi-item create: lines %v, want %v; status %v, messages %v", got, want, multi["status"], messages(multi))
	}

	// Both cancel examples, on the sessions just created: each is canceled, its trace
	// recorded for the merchant.
	for sid, name := range map[string]string{
		first["id"].(string): "cancel_checkout_session_request",
		multi["id"].(string): "cancel_checkout_session_request_timing_deferred",
	} {
		body := x.request(checkoutEx, name)
		if s := e.mustSession(post("/checkout_sessions/"+sid+"/cancel", body), http.StatusOK); s["status"] != "canceled" {
			t.Errorf("%s: status %v", name, s["status"])
		}
		var reason string
		if err := e.pool.QueryRow(context.Background(), `SELECT cancel_intent_trace->>'reason_code' FROM checkout_sessions WHERE id = $1`, sid).Scan(&reason); err != nil ||
			reason != obj(t, body, "intent_trace")["reason_code"] {
			t.Errorf("%s: recorded reason %q (%v)", name, reason, err)
		}
	}

	// The discount extension's create requests, their imaginary items mapped onto the
	// test catalog's. Discount codes are accepted and not applied yet: no discount.
	catalogID := map[string]string{"item_123": "item_123", "item_laptop": "item_123", "item_shirt": "item_123", "item_mouse": "item_456", "item_pants": "item_456"}
	for _, f := range exampleFiles0417 {
		if !strings.HasPrefix(f, "discount-extension/") {
			continue
		}
		body := x.request(f, "request")
		var want []string
		for _, raw := range body["line_items"].([]any) {
			l := raw.(map[string]any)
			to, ok := catalogID[l["id"].(string)]
			if !ok {
				t.Fatalf("%s: no catalog item stands for %v", f, l["id"])
			}
			l["id"] = to
			want = append(want, to+"x"+l["quantity"].(json.Number).String())
		}
		s := e.mustSession(post("/checkout_sessions", body), http.StatusCreated)
		var lines []string
		for _, raw := range s["line_items"].([]any) {
			l := raw.(map[string]any)
			lines = append(lines, obj(t, l, "item")["id"].(string)+"x"+strconv.FormatFloat(l["quantity"].(float64), 'f', -1, 64))
		}
		if !slices.Equal(lines, want) || totalsOf(s["totals"])["discount"] != 0 {
			t.Errorf("%s: lines %v, want %v; totals %v", f, lines, want, s["totals"])
		}
	}

	x.mustHaveSentAll()
}

// must is v, for encodings that cannot fail.
func must(v []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return v
}
