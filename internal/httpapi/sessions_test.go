package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestCreateSessionNotReadyListsWhatIsMissing(t *testing.T) {
	t.Parallel()
	forEachVersion(t, func(t *testing.T, e *testEnv) {
		s := e.mustCreate(e.createBody(fields{items: items("item_123", 2)}))

		if s["status"] != "not_ready_for_payment" {
			t.Errorf("status = %v", s["status"])
		}
		if !strings.HasPrefix(s["id"].(string), "cs_") || s["currency"] != "usd" {
			t.Errorf("id/currency = %v/%v", s["id"], s["currency"])
		}
		// Only the address is missing: the first option that can deliver the cart is
		// pre-selected, and a missing buyer does not hold the session back.
		want := []string{"missing@" + e.param("$.fulfillment_address")}
		if got := messages(s); !slices.Equal(got, want) {
			t.Errorf("messages = %v, want %v", got, want)
		}
		if got := e.selectedOption(s); got != "standard_shipping" {
			t.Errorf("selected option = %v, want the first option standard_shipping", got)
		}
		got := totals(t, s)
		if got["items_base_amount"] != 3000 || got["subtotal"] != 3000 || got["fulfillment"] != 500 || got["tax"] != 0 || got["total"] != 3500 {
			t.Errorf("totals = %v", got)
		}
		e.checkPayment(t, s)
		opts := s["fulfillment_options"].([]any)
		if len(opts) != 2 || opts[0].(map[string]any)["id"] != "standard_shipping" || opts[1].(map[string]any)["id"] != "express_shipping" {
			t.Fatalf("fulfillment_options = %v", opts)
		}
		std := opts[0].(map[string]any)
		if std["earliest_delivery_time"] == nil || std["latest_delivery_time"] == nil || e.optionTotal(std) != 500 {
			t.Errorf("standard_shipping = %v", std)
		}
	})
}

func TestWalkThroughReachesReadyForPaymentWithTaxAndShipping(t *testing.T) {
	t.Parallel()
	forEachVersion(t, func(t *testing.T, e *testEnv) {
		s := e.mustCreate(e.createBody(fields{items: items("item_123", 2, "item_456", 1), address: address}))
		id := s["id"].(string)

		s = e.mustSession(e.do(http.MethodPost, "/checkout_sessions/"+id,
			e.updateBody(fields{buyer: buyer, option: "standard_shipping"})), http.StatusOK)
		if s["status"] != "ready_for_payment" || len(messages(s)) != 0 {
			t.Fatalf("status = %v, messages = %v", s["status"], messages(s))
		}
		if got := e.selectedOption(s); got != "standard_shipping" {
			t.Errorf("selected option = %v", got)
		}

		// CA is 7.25% in the seed: line 1 3000 -> 217.5 rounds half up to 218; line 2 the same.
		lines := s["line_items"].([]any)
		wantLines := [][5]float64{{3000, 0, 3000, 218, 3218}, {3000, 0, 3000, 218, 3218}}
		for i, raw := range lines {
			if got := e.lineAmounts(raw.(map[string]any)); got != wantLines[i] {
				t.Errorf("line %d amounts = %v, want %v", i, got, wantLines[i])
			}
		}
		want := map[string]int64{"items_base_amount": 6000, "subtotal": 6000, "fulfillment": 500, "tax": 436, "total": 6936}
		if got := totals(t, s); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("totals = %v, want %v", got, want)
		}

		// Express is 1500; the total follows the option.
		s = e.mustSession(e.do(http.MethodPost, "/checkout_sessions/"+id, e.updateBody(fields{option: "express_shipping"})), http.StatusOK)
		if got := totals(t, s); got["fulfillment"] != 1500 || got["total"] != 7936 {
			t.Errorf("express totals = %v", got)
		}

		// GET returns the same authoritative state.
		g := e.mustSession(e.do(http.MethodGet, "/checkout_sessions/"+id, nil), http.StatusOK)
		if fmt.Sprint(totals(t, g)) != fmt.Sprint(totals(t, s)) || g["status"] != "ready_for_payment" {
			t.Errorf("GET differs from the update response: %v vs %v", g, s)
		}
	})
}

func TestTaxFallsBackToCountryRateAndRegionIsCaseInsensitive(t *testing.T) {
	t.Parallel()
	forEachVersion(t, func(t *testing.T, e *testEnv) {
		if _, err := e.pool.Exec(context.Background(), `UPDATE tax_rates SET rate_bps = 1000 WHERE country = 'US' AND region = ''`); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			state   string
			wantTax int64
		}{{"OR", 150}, {"ca", 109}, {"Ny", 60}} {
			addr := map[string]any{}
			for k, v := range address {
				addr[k] = v
			}
			addr["state"] = tc.state
			s := e.mustCreate(e.createBody(fields{items: items("item_123", 1), address: addr}))
			if got := totals(t, s)["tax"]; got != tc.wantTax {
				t.Errorf("state %s: tax = %d, want %d", tc.state, got, tc.wantTax)
			}
		}
	})
}

func TestDigitalGoodsNeedNoAddress(t *testing.T) {
	t.Parallel()
	forEachVersion(t, func(t *testing.T, e *testEnv) {
		s := e.mustCreate(e.createBody(fields{items: items("ebook_001", 1)}))
		opts := s["fulfillment_options"].([]any)
		if len(opts) != 1 || opts[0].(map[string]any)["type"] != "digital" {
			t.Fatalf("options = %v", opts)
		}
		// No address, no buyer: the digital option is pre-selected and the session is ready.
		if s["status"] != "ready_for_payment" || e.selectedOption(s) != "digital" || len(messages(s)) != 0 {
			t.Errorf("status = %v, option = %v, messages = %v", s["status"], e.selectedOption(s), messages(s))
		}
		s = e.mustSession(e.do(http.MethodPost, "/checkout_sessions/"+s["id"].(string),
			e.updateBody(fields{items: items("ebook_001", 1), option: "digital"})), http.StatusOK)
		if s["status"] != "ready_for_payment" {
			t.Errorf("status = %v, messages = %v", s["status"], messages(s))
		}
		if got := totals(t, s); got["total"] != 999 || got["fulfillment"] != 0 {
			t.Errorf("totals = %v", got)
		}
	})
}

func TestChangingItemsReselectsWhenTheOptionNoLongerFits(t *testing.T) {
	t.Parallel()
	forEachVersion(t, func(t *testing.T, e *testEnv) {
		s := e.mustCreate(e.createBody(fields{items: items("item_123", 1), address: address, buyer: buyer}))
		id := s["id"].(string)
		s = e.mustSession(e.do(http.MethodPost, "/checkout_sessions/"+id, e.updateBody(fields{option: "express_shipping"})), http.StatusOK)
		if e.selectedOption(s) != "express_shipping" {
			t.Fatalf("express shipping was not chosen: %v, messages = %v", e.selectedOption(s), messages(s))
		}

		// Only digital goods now: express shipping no longer applies, the first option
		// that can deliver the cart is selected instead, and GET shows the same.
		s = e.mustSession(e.do(http.MethodPost, "/checkout_sessions/"+id, e.updateBody(fields{items: items("ebook_001", 1)})), http.StatusOK)
		if e.selectedOption(s) != "digital" || s["status"] != "ready_for_payment" || len(messages(s)) != 0 {
			t.Errorf("option = %v, status = %v, messages = %v", e.selectedOption(s), s["status"], messages(s))
		}
		if g := e.mustSession(e.do(http.MethodGet, "/checkout_sessions/"+id, nil), http.StatusOK); e.selectedOption(g) != "digital" {
			t.Errorf("GET option = %v", e.selectedOption(g))
		}

		lineID := s["line_items"].([]any)[0].(map[string]any)["id"]

		// A hoodie joins the e-book: the e-book keeps its line id, the hoodie gets a new one,
		// and shipping is needed again.
		s = e.mustSession(e.do(http.MethodPost, "/checkout_sessions/"+id, e.updateBody(fields{items: items("item_456", 1, "ebook_001", 3)})), http.StatusOK)
		lines := s["line_items"].([]any)
		if len(lines) != 2 || lines[1].(map[string]any)["id"] != lineID || lines[0].(map[string]any)["id"] == lineID {
			t.Errorf("line ids = %v (e-book was %v)", lines, lineID)
		}
		if e.selectedOption(s) != "standard_shipping" || s["status"] != "ready_for_payment" {
			t.Errorf("status = %v, messages = %v", s["status"], messages(s))
		}
	})
}

func TestUnavailableAndLowStockItemsAreOutOfStock(t *testing.T) {
	t.Parallel()
	forEachVersion(t, func(t *testing.T, e *testEnv) {
		s := e.mustCreate(e.createBody(fields{items: items("item_123", 1, "item_789", 1), address: address, buyer: buyer}))
		id := s["id"].(string)
		s = e.mustSession(e.do(http.MethodPost, "/checkout_sessions/"+id, e.updateBody(fields{option: "standard_shipping"})), http.StatusOK)
		if s["status"] != "not_ready_for_payment" || !slices.Equal(messages(s), []string{"out_of_stock@$.line_items[1]"}) {
			t.Errorf("status = %v, messages = %v", s["status"], messages(s))
		}

		// Stock tracked on item_123: 2 left, 3 wanted.
		if _, err := e.pool.Exec(context.Background(), `UPDATE variants SET stock_quantity = 2 WHERE id = 'item_123'`); err != nil {
			t.Fatal(err)
		}
		s = e.mustSession(e.do(http.MethodPost, "/checkout_sessions/"+id, e.updateBody(fields{items: items("item_123", 3)})), http.StatusOK)
		if s["status"] != "not_ready_for_payment" || !slices.Equal(messages(s), []string{"out_of_stock@$.line_items[0]"}) {
			t.Errorf("status = %v, messages = %v", s["status"], messages(s))
		}
		s = e.mustSession(e.do(http.MethodPost, "/checkout_sessions/"+id, e.updateBody(fields{items: items("item_123", 2)})), http.StatusOK)
		if s["status"] != "ready_for_payment" {
			t.Errorf("status = %v, messages = %v", s["status"], messages(s))
		}

		// Availability is read live: the merchant marking the item unavailable shows on GET.
		if _, err := e.pool.Exec(context.Background(), `UPDATE variants SET available = false WHERE id = 'item_123'`); err != nil {
			t.Fatal(err)
		}
		s = e.mustSession(e.do(http.MethodGet, "/checkout_sessions/"+id, nil), http.StatusOK)
		if s["status"] != "not_ready_for_payment" {
			t.Errorf("status after the item became unavailable = %v", s["status"])
		}
	})
}

func TestCreateAndUpdateRefuseBadInput(t *testing.T) {
	t.Parallel()
	forEachVersion(t, func(t *testing.T, e *testEnv) {
		s := e.mustCreate(e.createBody(fields{items: items("item_123", 1)}))
		id := s["id"].(string)
		create := e.rawCreate
		one := `[{"id":"item_123","quantity":1}]`
		addr := func(a string) string { return e.rawAddress(a) }

		type badInput struct {
			name, path, body string
			status           int
			code, param      string
		}
		cases := []badInput{
			{"unknown item", "/checkout_sessions", create(`[{"id":"item_123","quantity":1},{"id":"nope","quantity":1}]`, ""), 400, "invalid_item_id", "$.items[1].id"},
			{"empty items", "/checkout_sessions", create(`[]`, ""), 400, "invalid", "$.items"},
			{"zero quantity", "/checkout_sessions", create(`[{"id":"item_123","quantity":0}]`, ""), 400, "invalid", "$.items[0].quantity"},
			{"negative quantity", "/checkout_sessions", create(`[{"id":"item_123","quantity":-1}]`, ""), 400, "invalid", "$.items[0].quantity"},
			{"fractional quantity", "/checkout_sessions", create(`[{"id":"item_123","quantity":2.5}]`, ""), 400, "invalid", "$.items[0].quantity"},
			{"string quantity", "/checkout_sessions", create(`[{"id":"item_123","quantity":"2"}]`, ""), 400, "invalid", "$.items[0].quantity"},
			{"huge quantity", "/checkout_sessions", create(`[{"id":"item_123","quantity":10001}]`, ""), 400, "invalid", "$.items[0].quantity"},
			{"missing id", "/checkout_sessions", create(`[{"quantity":1}]`, ""), 400, "missing", "$.items[0].id"},
			{"duplicate item", "/checkout_sessions", create(`[{"id":"item_123","quantity":1},{"id":"item_123","quantity":1}]`, ""), 400, "invalid", "$.items[1].id"},
			{"mixed currencies", "/checkout_sessions", create(`[{"id":"item_123","quantity":1},{"id":"mug_eur","quantity":1}]`, ""), 400, "currency_mismatch", "$.items[1].id"},
			{"unknown field", "/checkout_sessions", create(one, `,"coupon":"X"`), 400, "unknown_field", "$.coupon"},
			{"unknown nested field", "/checkout_sessions", create(`[{"id":"item_123","quantity":1,"color":"red"}]`, ""), 400, "unknown_field", "$.items[0].color"},
			{"wrong type", "/checkout_sessions", create(`"item_123"`, ""), 400, "invalid_type", "$.items"},
			{"trailing data", "/checkout_sessions", create(one, "") + ` {}`, 400, "invalid_json", ""},
			{"not JSON", "/checkout_sessions", `{"items":`, 400, "invalid_json", ""},
			{"array body", "/checkout_sessions", `[]`, 400, "invalid_type", ""},
			{"empty body", "/checkout_sessions", ``, 400, "missing_body", ""},
			{"bad email", "/checkout_sessions/" + id, `{"buyer":{"first_name":"A","last_name":"B","email":"not-an-email"}}`, 400, "invalid", "$.buyer.email"},
			{"address without city", "/checkout_sessions/" + id, addr(`{"name":"A","line_one":"1 St","state":"CA","country":"US","postal_code":"1"}`), 400, "invalid", "$.fulfillment_address.city"},
			{"bad country", "/checkout_sessions/" + id, addr(`{"name":"A","line_one":"1 St","city":"X","state":"CA","country":"USA","postal_code":"1"}`), 400, "invalid", "$.fulfillment_address.country"},
			{"unknown option", "/checkout_sessions/" + id, e.rawOption("teleport"), 400, "invalid_fulfillment_option", "$.fulfillment_option_id"},
			{"option for other goods", "/checkout_sessions/" + id, e.rawOption("digital"), 400, "invalid_fulfillment_option", "$.fulfillment_option_id"},
			{"update unknown field", "/checkout_sessions/" + id, `{"status":"completed"}`, 400, "unknown_field", "$.status"},
		}
		// What differs between the versions beyond their shapes.
		if e.is0417() {
			cases = append(cases,
				badInput{"no items", "/checkout_sessions", `{"currency":"usd","capabilities":{}}`, 400, "missing", "$.items"},
				badInput{"no currency", "/checkout_sessions", `{"line_items":` + one + `,"capabilities":{}}`, 400, "missing", "$.currency"},
				badInput{"other currency", "/checkout_sessions", `{"line_items":` + one + `,"currency":"eur","capabilities":{}}`, 400, "currency_mismatch", "$.currency"},
				badInput{"items cleared", "/checkout_sessions/" + id, `{"line_items":null}`, 400, "invalid", "$.items"},
			)
		} else {
			cases = append(cases,
				badInput{"no items", "/checkout_sessions", `{"buyer":{"first_name":"a","last_name":"b","email":"a@b.co"}}`, 400, "missing", "$.items"},
				// 2026-04-17 defaults a missing quantity to 1 (checklist I-09).
				badInput{"missing quantity", "/checkout_sessions", `{"items":[{"id":"item_123"}]}`, 400, "missing", "$.items[0].quantity"},
			)
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				e := *e
				e.t = t
				e.mustError(e.do(http.MethodPost, tc.path, tc.body), tc.status, tc.code, e.param(tc.param))
			})
		}

		// None of the refused updates changed the session.
		after := e.mustSession(e.do(http.MethodGet, "/checkout_sessions/"+id, nil), http.StatusOK)
		if _, ok := after["buyer"]; ok {
			t.Errorf("a refused update left a buyer: %v", after["buyer"])
		}
		if a := e.address(after); a != nil {
			t.Errorf("a refused update left an address: %v", a)
		}
		var sessions int
		if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM checkout_sessions`).Scan(&sessions); err != nil || sessions != 1 {
			t.Errorf("sessions in the database = %d (%v), want 1: a refused create wrote something", sessions, err)
		}
	})
}

func TestTransportErrors(t *testing.T) {
	t.Parallel()
	e := mustEnv(t)
	big := `{"items":[{"id":"item_123","quantity":1}],"buyer":{"first_name":"` + strings.Repeat("a", 2<<20) + `","last_name":"b","email":"a@b.co"}}`
	e.mustError(e.do(http.MethodPost, "/checkout_sessions", big), http.StatusRequestEntityTooLarge, "request_too_large", "")
	e.mustError(e.do(http.MethodPost, "/checkout_sessions", `{"items":[{"id":"item_123","quantity":1}]}`, "Content-Type", "text/plain"),
		http.StatusUnsupportedMediaType, "unsupported_media_type", "")
	e.mustError(e.do(http.MethodPost, "/checkout_sessions", `{"items":[{"id":"item_123","quantity":1}]}`, "Content-Type", ""),
		http.StatusUnsupportedMediaType, "unsupported_media_type", "")
	e.mustCreate(`{"items":[{"id":"item_123","quantity":1}]}`) // application/json is accepted
	r := e.do(http.MethodPost, "/checkout_sessions", `{"items":[{"id":"item_123","quantity":1}]}`, "Content-Type", "application/json; charset=utf-8")
	e.mustSession(r, http.StatusCreated)

	e.mustError(e.do(http.MethodGet, "/checkout_sessions/cs_missing", nil), http.StatusNotFound, "not_found", "")
	e.mustError(e.do(http.MethodPost, "/checkout_sessions/cs_missing", map[string]any{"buyer": buyer}), http.StatusNotFound, "not_found", "")
	e.mustError(e.do(http.MethodPost, "/checkout_sessions/cs_missing/cancel", nil), http.StatusNotFound, "not_found", "")
	e.mustError(e.do(http.MethodGet, "/no/such/path", nil), http.StatusNotFound, "not_found", "")

	r = e.do(http.MethodDelete, "/checkout_sessions/cs_x", nil)
	e.mustError(r, http.StatusMethodNotAllowed, "method_not_allowed", "")
	if allow := r.header.Get("Allow"); allow != "GET, POST" {
		t.Errorf("Allow = %q, want GET, POST", allow)
	}
	r = e.do(http.MethodGet, "/checkout_sessions", nil)
	e.mustError(r, http.StatusMethodNotAllowed, "method_not_allowed", "")
	if allow := r.header.Get("Allow"); allow != "POST" {
		t.Errorf("Allow = %q, want POST", allow)
	}
}

func TestAPIVersionAndEchoedHeaders(t *testing.T) {
	t.Parallel()
	e := mustEnv(t)
	body := `{"items":[{"id":"item_123","quantity":1}]}`

	r := e.do(http.MethodPost, "/checkout_sessions", body, "API-Version", "2025-09-29", "Request-Id", "req-1", "Idempotency-Key", "idem-1")
	e.mustSession(r, http.StatusCreated)
	if r.header.Get("Request-Id") != "req-1" || r.header.Get("Idempotency-Key") != "idem-1" {
		t.Errorf("headers not echoed: %v", r.header)
	}

	r = e.do(http.MethodPost, "/checkout_sessions", body, "API-Version", "2099-01-01", "Request-Id", "req-2", "Idempotency-Key", "idem-2")
	m := e.mustError(r, http.StatusBadRequest, "unsupported_api_version", "")
	if !strings.Contains(m["message"].(string), "Supported versions: 2026-04-17, 2025-09-29.") || m["type"] != "invalid_request" {
		t.Errorf("error = %v", m)
	}
	if r.header.Get("Request-Id") != "req-2" || r.header.Get("Idempotency-Key") != "idem-2" {
		t.Errorf("headers not echoed on an error: %v", r.header)
	}

	// Without a Request-Id the server makes one, so every log line can be traced.
	r = e.do(http.MethodGet, "/checkout_sessions/cs_nope", nil)
	if !strings.HasPrefix(r.header.Get("Request-Id"), "req_") {
		t.Errorf("generated Request-Id = %q", r.header.Get("Request-Id"))
	}
	if !strings.Contains(e.logs.String(), r.header.Get("Request-Id")) || !strings.Contains(e.logs.String(), `"route":"/checkout_sessions/{id}"`) {
		t.Errorf("access log lacks the request id or route:\n%s", e.logs.String())
	}
}

func TestStatusMachine(t *testing.T) {
	t.Parallel()
	forEachVersion(t, func(t *testing.T, e *testEnv) {
		newSession := func() string {
			s := e.mustCreate(e.createBody(fields{items: items("item_123", 1), address: address, buyer: buyer}))
			return s["id"].(string)
		}

		// not_ready -> canceled
		id := newSession()
		s := e.mustSession(e.do(http.MethodPost, "/checkout_sessions/"+id+"/cancel", nil), http.StatusOK)
		if s["status"] != "canceled" {
			t.Errorf("status = %v", s["status"])
		}
		if msgs := s["messages"].([]any); len(msgs) != 1 || msgs[0].(map[string]any)["type"] != "info" {
			t.Errorf("messages = %v", msgs)
		}
		// canceled: cancel, update are 405; GET shows it.
		r := e.do(http.MethodPost, "/checkout_sessions/"+id+"/cancel", nil)
		e.mustError(r, http.StatusMethodNotAllowed, "checkout_session_canceled", "")
		if r.header.Get("Allow") != "GET" {
			t.Errorf("Allow = %q", r.header.Get("Allow"))
		}
		e.mustError(e.do(http.MethodPost, "/checkout_sessions/"+id, map[string]any{"buyer": buyer}), http.StatusMethodNotAllowed, "checkout_session_canceled", "")
		if g := e.mustSession(e.do(http.MethodGet, "/checkout_sessions/"+id, nil), http.StatusOK); g["status"] != "canceled" {
			t.Errorf("GET status = %v", g["status"])
		}

		// ready -> canceled, with a JSON body as newer clients send (intent_trace).
		id = newSession()
		s = e.mustSession(e.do(http.MethodPost, "/checkout_sessions/"+id, e.updateBody(fields{option: "standard_shipping"})), http.StatusOK)
		if s["status"] != "ready_for_payment" {
			t.Fatalf("status = %v", s["status"])
		}
		s = e.mustSession(e.do(http.MethodPost, "/checkout_sessions/"+id+"/cancel", map[string]any{"intent_trace": map[string]any{"reason_code": "other"}}), http.StatusOK)
		if s["status"] != "canceled" {
			t.Errorf("status = %v", s["status"])
		}
		// The cancel answers with the view it read before canceling: it must be the
		// canceled session's, as a GET then shows it.
		if after := e.mustSession(e.do(http.MethodGet, "/checkout_sessions/"+id, nil), http.StatusOK); !reflect.DeepEqual(after, s) {
			t.Errorf("the cancel answered\n%v\na GET then shows\n%v", s, after)
		}
		// A cancel body must still be JSON.
		id = newSession()
		e.mustError(e.do(http.MethodPost, "/checkout_sessions/"+id+"/cancel", "{not json"), http.StatusBadRequest, "invalid_json", "")

		// completed (written as the payment issue's complete will): cancel and update are 405.
		if _, err := e.pool.Exec(context.Background(), `UPDATE checkout_sessions SET state = 'completed' WHERE id = $1`, id); err != nil {
			t.Fatal(err)
		}
		e.mustError(e.do(http.MethodPost, "/checkout_sessions/"+id+"/cancel", nil), http.StatusMethodNotAllowed, "checkout_session_completed", "")
		e.mustError(e.do(http.MethodPost, "/checkout_sessions/"+id, map[string]any{"buyer": buyer}), http.StatusMethodNotAllowed, "checkout_session_completed", "")
		g := e.do(http.MethodGet, "/checkout_sessions/"+id, nil)
		if g.status != http.StatusOK || g.json(t)["status"] != "completed" {
			t.Errorf("GET completed = %d %s", g.status, g.body)
		}
	})
}

// TestWritesAnswerWhatAReadShows: a write answers with what it stored, as a read right
// after shows it, down to the times. PostgreSQL keeps microseconds; a write that
// answered with its clock's nanoseconds showed the agent an updated_at that no read of
// the session ever showed again. The admin API's writes are held to the same, with
// times given to it in nanoseconds and at an offset from UTC.
func TestWritesAnswerWhatAReadShows(t *testing.T) {
	t.Parallel()
	same := func(op, path string, wrote map[string]any, read func() response) {
		t.Helper()
		r := read()
		if r.status != http.StatusOK {
			t.Fatalf("GET %s after %s: %d %s", path, op, r.status, r.body)
		}
		if got := r.json(t); !reflect.DeepEqual(wrote, got) {
			t.Errorf("%s answered\n%v\na GET of %s then shows\n%v", op, wrote, path, got)
		}
	}
	forEachVersion(t, func(t *testing.T, e *testEnv) {
		session := func(op, id string, wrote map[string]any) {
			t.Helper()
			path := "/checkout_sessions/" + id
			same(op, path, wrote, func() response { return e.do(http.MethodGet, path, nil) })
		}
		created := e.mustCreate(e.createBody(fields{items: items("item_123", 1), address: address, buyer: buyer}))
		id := created["id"].(string)
		session("create", id, created)
		updated := e.mustSession(e.do(http.MethodPost, "/checkout_sessions/"+id, e.updateBody(fields{option: "standard_shipping"})), http.StatusOK)
		session("update", id, updated)
		token := delegate(e, id, totals(t, updated)["total"], "usd", visaNumber, "9871")
		completed := e.mustCompleted(e.do(http.MethodPost, "/checkout_sessions/"+id+"/complete", e.completeBody(token)))
		// A GET of a completed session does not carry its order (docs/decisions.md).
		delete(completed, "order")
		session("complete", id, completed)
		other := e.mustCreate(e.createBody(fields{items: items("item_123", 1), address: address, buyer: buyer}))["id"].(string)
		session("cancel", other, e.mustSession(e.do(http.MethodPost, "/checkout_sessions/"+other+"/cancel", nil), http.StatusOK))

		if e.is0417() {
			write := func(method, path string, lines []map[string]any, status int) map[string]any {
				t.Helper()
				r := e.do(method, path, map[string]any{"line_items": lines}, "Idempotency-Key", newKey())
				if r.status != status {
					t.Fatalf("%s %s: %d %s", method, path, r.status, r.body)
				}
				return r.json(t)
			}
			cart := write(http.MethodPost, "/carts", items("item_123", 1), http.StatusCreated)
			path := "/carts/" + cart["id"].(string)
			get := func() response { return e.do(http.MethodGet, path, nil) }
			same("cart create", path, cart, get)
			same("cart replace", path, write(http.MethodPut, path, items("item_123", 2), http.StatusOK), get)
		}
	})

	e := ordersEnv(t)
	order, lines := fulfilOrder(e, 725, "standard_shipping", "item_123", 1, "ebook_001", 1)
	path := "/admin/orders/" + order
	get := func() response { return ordersAdmin(e, http.MethodGet, path, nil) }
	same("status change", path, fulfilAdmin(e, path+"/status", map[string]any{"status": "confirmed"}, http.StatusOK), get)
	fulfilled := fulfilAdmin(e, path+"/fulfillments", map[string]any{
		"type": "shipping", "line_items": []map[string]any{{"id": lines[0], "quantity": 1}},
		"estimated_delivery": map[string]any{"earliest": "2030-01-02T10:00:00.123456789Z", "latest": "2030-01-03T10:00:00.987654321Z"}},
		http.StatusCreated)
	same("fulfil", path, fulfilled, get)
	same("digital fulfil", path, fulfilAdmin(e, path+"/fulfillments", map[string]any{
		"type": "digital", "line_items": []map[string]any{{"id": lines[1], "quantity": 1}},
		"digital_delivery": map[string]any{"access_url": "https://shop.example/downloads/1", "expires_at": "2030-01-02T10:00:00.123456789+01:00"}},
		http.StatusCreated), get)
	occurred := time.Now().Add(-time.Minute).In(time.FixedZone("UTC+2", 2*60*60)).Format(time.RFC3339Nano)
	same("fulfilment event", path, fulfilAdmin(e, path+"/fulfillments/"+lastFulfillmentID(fulfilled)+"/events",
		map[string]any{"type": "in_transit", "occurred_at": occurred}, http.StatusCreated), get)
}

func TestConcurrentUpdatesOfOneSessionStayConsistent(t *testing.T) {
	t.Parallel()
	forEachVersion(t, func(t *testing.T, e *testEnv) {
		s := e.mustCreate(e.createBody(fields{items: items("item_123", 1), address: address}))
		id := s["id"].(string)

		const writers = 20
		var wg sync.WaitGroup
		for i := range writers {
			wg.Go(func() {
				body := e.updateBody(fields{items: items("item_123", i+1, "item_456", writers-i)})
				if i%2 == 0 {
					body = e.updateBody(fields{items: items("item_456", i+1), option: "standard_shipping"})
				}
				r := e.do(http.MethodPost, "/checkout_sessions/"+id, body)
				if r.status != http.StatusOK {
					t.Errorf("update %d: %d %s", i, r.status, r.body)
				}
			})
		}
		wg.Wait()

		g := e.mustSession(e.do(http.MethodGet, "/checkout_sessions/"+id, nil), http.StatusOK)
		// Whatever update won, the stored lines are exactly one writer's, and the totals
		// agree with them.
		var sum int64
		for _, raw := range g["line_items"].([]any) {
			sum += int64(e.lineAmounts(raw.(map[string]any))[4])
		}
		tot := totals(t, g)
		if tot["total"] != sum+tot["fulfillment"] {
			t.Errorf("total %d != lines %d + fulfillment %d", tot["total"], sum, tot["fulfillment"])
		}
		var rows, positions int
		if err := e.pool.QueryRow(context.Background(),
			`SELECT count(*), count(DISTINCT position) FROM line_items WHERE checkout_session_id = $1`, id).Scan(&rows, &positions); err != nil {
			t.Fatal(err)
		}
		if rows != len(g["line_items"].([]any)) || rows != positions {
			t.Errorf("line_items rows = %d, distinct positions = %d, response lines = %d", rows, positions, len(g["line_items"].([]any)))
		}
	})
}

func TestHealthAndReady(t *testing.T) {
	t.Parallel()
	e := mustEnv(t)
	if r := e.do(http.MethodGet, "/health", nil); r.status != http.StatusOK {
		t.Errorf("/health = %d", r.status)
	}
	if r := e.do(http.MethodGet, "/ready", nil); r.status != http.StatusOK {
		t.Errorf("/ready = %d %s", r.status, r.body)
	}
	// /health and /ready are not ACP endpoints: no API-Version check.
	if r := e.do(http.MethodGet, "/health", nil, "API-Version", "1999-01-01"); r.status != http.StatusOK {
		t.Errorf("/health with an odd API-Version = %d", r.status)
	}
}
