package testkit_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/acpspec"
	"github.com/agentic-commerce/agentic-commerce-server/internal/testkit"
	"github.com/agentic-commerce/agentic-commerce-server/internal/webhook"
)

func TestVerify(t *testing.T) {
	t.Parallel()
	secret, body := []byte("kit-secret-0123456789abcdef0123456789"), []byte(`{"type":"order_create"}`)
	at := time.Now()
	sig := webhook.Signature(secret, at, body)
	if got, ok := testkit.Verify(secret, sig, body); !ok || got.Unix() != at.Unix() {
		t.Errorf("Verify(%q) = %v, %v", sig, got, ok)
	}
	if !testkit.VerifyFresh(secret, sig, body, time.Minute) {
		t.Error("a fresh signature is not fresh")
	}
	old := webhook.Signature(secret, at.Add(-time.Hour), body)
	if testkit.VerifyFresh(secret, old, body, time.Minute) {
		t.Error("an hour-old signature is fresh")
	}
	for name, c := range map[string]struct {
		secret []byte
		header string
		body   []byte
	}{
		"changed body":   {secret, sig, append(body, ' ')},
		"another secret": {[]byte("other"), sig, body},
		"new t":          {secret, strings.Replace(sig, "t=", "t=1", 1), body},
		"no v1":          {secret, strings.Split(sig, ",")[0], body},
		"empty":          {secret, "", body},
	} {
		if _, ok := testkit.Verify(c.secret, c.header, c.body); ok {
			t.Errorf("%s: verifies", name)
		}
	}
}

func TestReceiverAndClient(t *testing.T) {
	t.Parallel()
	rcv := testkit.NewReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"n":2}`))
	})
	c := &testkit.Client{Base: rcv.URL, Header: http.Header{"Api-Version": {"2025-09-29"}}}
	r, err := c.Do(http.MethodPost, "/hook", map[string]any{"a": 1}, "Request-Id", "evt_1")
	if err != nil || r.Status != http.StatusServiceUnavailable || r.Path != "/hook" {
		t.Fatalf("first: %+v, %v", r, err)
	}
	r, err = c.Do(http.MethodPost, "/hook", `{"b":2}`, "API-Version", "")
	if err != nil || r.Status != http.StatusOK {
		t.Fatalf("second: %+v, %v", r, err)
	}
	if m, err := r.JSON(); err != nil || m["n"] != float64(2) {
		t.Errorf("JSON = %v, %v", m, err)
	}
	hits := rcv.WaitFor(t, 2, 5*time.Second)
	if h := hits[0]; h.Status != http.StatusServiceUnavailable || h.RequestID() != "evt_1" ||
		string(h.Body) != `{"a":1}` || h.Header.Get("Api-Version") != "2025-09-29" || h.Header.Get("Content-Type") != "application/json" {
		t.Errorf("first hit: %+v %s", h, h.Body)
	}
	if h := hits[1]; h.Status != http.StatusOK || string(h.Body) != `{"b":2}` || h.Header.Get("Api-Version") != "" {
		t.Errorf("second hit: %+v %s", h, h.Body)
	}
}

func TestSchemas(t *testing.T) {
	t.Parallel()
	s := testkit.Schemas(t, "2025-09-29")
	s.Error([]byte(`{"type":"invalid_request","code":"invalid","message":"bad"}`), "/checkout_sessions")
	s.Error([]byte(`{"type":"invalid_request","code":"invalid_card","message":"bad"}`), testkit.DelegatePath)
	if err := s.Delegate.Validate("Error", []byte(`{"type":"nope"}`)); err == nil {
		t.Error("an invalid Error validates")
	}
}

// The WebhookEvent schemas are built from the OpenAPI documents: the 2026-04-17 one
// reaches into the checkout document for Order, and neither is vacuous.
func TestWebhookEventSchemas(t *testing.T) {
	t.Parallel()
	legacy := `{"type":"order_create","data":{"type":"order","checkout_session_id":"cs_1","permalink_url":"https://shop.example/o/1","status":"created","refunds":[]}}`
	full := `{"type":"order_update","data":{"type":"order","id":"ord_1","checkout_session_id":"cs_1","permalink_url":"https://shop.example/o/1","status":"completed",` +
		`"line_items":[{"id":"li_1","title":"Tee","quantity":{"ordered":1,"current":1,"fulfilled":1},"status":"fulfilled"}],` +
		`"adjustments":[{"id":"rf_1","type":"refund","occurred_at":"2026-04-17T10:00:00Z","status":"completed","amount":100}],` +
		`"totals":[{"type":"total","display_text":"Total","amount":1500},{"type":"amount_refunded","display_text":"Refunded","amount":100}]}}`
	for _, c := range []struct {
		version, body string
		valid         bool
	}{
		{"2025-09-29", legacy, true},
		{"2025-09-29", full, false},
		{"2026-04-17", full, true},
		// refunds[] is gone in 2026-04-17, and the Order needs its id.
		{"2026-04-17", legacy, false},
		{"2026-04-17", strings.Replace(full, `"id":"ord_1",`, "", 1), false},
		// Order's own rules apply through the $ref: quantity.ordered >= 1, known Total types.
		{"2026-04-17", strings.Replace(full, `"ordered":1`, `"ordered":0`, 1), false},
		{"2026-04-17", strings.Replace(full, `"amount_refunded"`, `"refunded"`, 1), false},
		{"2026-04-17", strings.Replace(full, `"2026-04-17T10:00:00Z"`, `"yesterday"`, 1), false},
	} {
		err := testkit.Schemas(t, c.version).ValidateWebhookEvent([]byte(c.body))
		if (err == nil) != c.valid {
			t.Errorf("%s: valid = %v, want %v (%v)\n%s", c.version, err == nil, c.valid, err, c.body)
		}
	}
}

// failures is a testing.TB that records the failures a validation reports instead of
// failing the test, so that a test can show that a broken body does fail.
type failures struct {
	testing.TB
	n int
}

func (f *failures) Helper()                   {}
func (f *failures) Error(...any)              { f.n++ }
func (f *failures) Errorf(string, ...any)     { f.n++ }
func (f *failures) Fatal(args ...any)         { f.TB.Fatal(args...) }
func (f *failures) Fatalf(s string, a ...any) { f.TB.Fatalf(s, a...) }

// SessionWithOrder accepts the official 2026-04-17 complete response and refuses a
// complete response without its order, or with an order that is no Order, in both
// versions: it is not vacuous, whichever way a version is validated.
func TestSessionWithOrder(t *testing.T) {
	t.Parallel()
	var examples map[string]json.RawMessage
	if err := json.Unmarshal(acpspec.ReadFile(t, "2026-04-17/examples.agentic_checkout.json"), &examples); err != nil {
		t.Fatal(err)
	}
	official := examples["complete_checkout_session_response"]
	f := &failures{TB: t}
	testkit.Schemas(f, "2026-04-17").SessionWithOrder(official)
	if f.n != 0 {
		t.Fatalf("the official complete response fails %d time(s)", f.n)
	}
	var m map[string]any
	if err := json.Unmarshal(official, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "order")
	noOrder, _ := json.Marshal(m)
	m["order"] = map[string]any{"type": "order"}
	badOrder, _ := json.Marshal(m)
	for _, v := range []string{"2025-09-29", "2026-04-17"} {
		for name, body := range map[string][]byte{"no order": noOrder, "bad order": badOrder} {
			f := &failures{TB: t}
			testkit.Schemas(f, v).SessionWithOrder(body)
			if f.n == 0 {
				t.Errorf("%s: a complete response with %s validates", v, name)
			}
		}
	}
}
