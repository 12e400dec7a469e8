package httpapi_test

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/httpapi"
)

const (
	ordersAdminKey = "orders-admin-key-0123456789abcdef"
	ordersAgentKey = "orders-agent-key-0123456789abcdef"
)

// ordersEnv is mustEnv with the admin order API switched on.
func ordersEnv(t *testing.T, opts ...func(*httpapi.Config)) *testEnv {
	t.Helper()
	withAdmin := func(c *httpapi.Config) { c.AdminAPIKeys = []string{ordersAdminKey} }
	return mustEnv(t, append([]func(*httpapi.Config){withAdmin}, opts...)...)
}

// ordersAdmin calls the admin API with the admin key.
func ordersAdmin(e *testEnv, method, path string, body any) response {
	e.t.Helper()
	return e.do(method, path, body, "Authorization", "Bearer "+ordersAdminKey)
}

// ordersMustOrder completes a ready session (item_123 x1 by default) with token and
// returns the order id, the session id and the total paid.
func ordersMustOrder(e *testEnv, token string, pairs ...any) (string, string, int64) {
	e.t.Helper()
	sid, total := mustReadySession(e, pairs...)
	if token == "" {
		token = delegate(e, sid, total, "usd", visaNumber, "9871")
	}
	s := e.mustCompleted(completeSession(e, sid, token))
	ord, _ := s["order"].(map[string]any)
	id, _ := ord["id"].(string)
	if !strings.HasPrefix(id, "ord_") {
		e.t.Fatalf("complete: no order in %v", s)
	}
	return id, sid, total
}

// ordersOrder is the admin API's order.
type ordersOrder struct {
	ID, CheckoutSessionID, Status, Currency, PermalinkURL string
	Amount, Refunded                                      int64
	Refunds                                               []map[string]any
	CreatedAt, UpdatedAt                                  time.Time
}

func ordersDecode(e *testEnv, r response, status int) ordersOrder {
	e.t.Helper()
	if r.status != status {
		e.t.Fatalf("status = %d, want %d; body: %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		e.t.Errorf("Content-Type = %q", ct)
	}
	m := r.json(e.t)
	o := ordersOrder{}
	o.ID, _ = m["id"].(string)
	o.CheckoutSessionID, _ = m["checkout_session_id"].(string)
	o.Status, _ = m["status"].(string)
	o.Currency, _ = m["currency"].(string)
	o.PermalinkURL, _ = m["permalink_url"].(string)
	amount, _ := m["amount"].(float64)
	refunded, _ := m["refunded"].(float64)
	o.Amount, o.Refunded = int64(amount), int64(refunded)
	rs, ok := m["refunds"].([]any)
	if !ok {
		e.t.Errorf("refunds = %#v, want an array", m["refunds"])
	}
	for _, x := range rs {
		o.Refunds = append(o.Refunds, x.(map[string]any))
	}
	var err error
	if o.CreatedAt, err = time.Parse(time.RFC3339Nano, fmt.Sprint(m["created_at"])); err != nil {
		e.t.Errorf("created_at: %v", err)
	}
	if o.UpdatedAt, err = time.Parse(time.RFC3339Nano, fmt.Sprint(m["updated_at"])); err != nil {
		e.t.Errorf("updated_at: %v", err)
	}
	return o
}

func TestOrdersAdminAuthentication(t *testing.T) {
	t.Parallel()
	e := ordersEnv(t, func(c *httpapi.Config) {
		c.APIKeys = []httpapi.APIKey{{Name: "agent", Key: ordersAgentKey}}
	})
	for _, tc := range []struct {
		name, auth, code string
	}{
		{"no key", "", "missing_authorization"},
		{"wrong key", "Bearer not-the-admin-key-at-all", "invalid_api_key"},
		{"agent key", "Bearer " + ordersAgentKey, "invalid_api_key"},
		{"basic scheme", "Basic " + ordersAdminKey, "missing_authorization"},
		{"bare key", ordersAdminKey, "missing_authorization"},
		{"key with a suffix", "Bearer " + ordersAdminKey + "x", "invalid_api_key"},
		{"empty bearer", "Bearer ", ""}, // the header's trailing space may be trimmed on the way
	} {
		for _, req := range []struct{ method, path string }{
			{http.MethodGet, "/admin/orders"},
			{http.MethodGet, "/admin/orders/ord_x"},
			{http.MethodPost, "/admin/orders/ord_x/status"},
			{http.MethodPost, "/admin/orders/ord_x/refunds"},
		} {
			var body any
			if req.method == http.MethodPost {
				body = map[string]any{"status": "canceled"}
			}
			r := e.do(req.method, req.path, body, "Authorization", tc.auth)
			if tc.code == "" {
				if r.status != http.StatusUnauthorized {
					t.Errorf("%s %s (%s): %d %s", req.method, req.path, tc.name, r.status, r.body)
				}
			} else {
				e.mustError(r, http.StatusUnauthorized, tc.code, "")
			}
			if !strings.Contains(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s %s (%s): WWW-Authenticate = %q", req.method, req.path, tc.name, r.header.Get("WWW-Authenticate"))
			}
		}
	}
	for _, auth := range []string{"Bearer " + ordersAdminKey, "bearer " + ordersAdminKey, "Bearer  " + ordersAdminKey + " "} {
		r := e.do(http.MethodGet, "/admin/orders", nil, "Authorization", auth)
		if r.status != http.StatusOK {
			t.Errorf("%q: status %d %s", auth, r.status, r.body)
		}
	}
	// The admin key is no agent key: it opens no ACP endpoint.
	r := e.do(http.MethodPost, "/checkout_sessions", map[string]any{"items": items("item_123", 1)}, "Authorization", "Bearer "+ordersAdminKey)
	e.mustError(r, http.StatusUnauthorized, "invalid_api_key", "")
}

func TestOrdersAdminOffWithoutAdminKeys(t *testing.T) {
	t.Parallel()
	e := ordersEnv(t, func(c *httpapi.Config) { c.AdminAPIKeys = nil })
	for _, auth := range []string{"", "Bearer " + ordersAdminKey} {
		r := e.do(http.MethodGet, "/admin/orders", nil, "Authorization", auth)
		if r.status != http.StatusNotFound {
			t.Errorf("admin API without ADMIN_API_KEYS (%q): %d %s", auth, r.status, r.body)
		}
	}
}

func TestOrdersAdminGetStatusAndRefund(t *testing.T) {
	t.Parallel()
	e := ordersEnv(t)
	id, sid, total := ordersMustOrder(e, "tok_visa")

	o := ordersDecode(e, ordersAdmin(e, http.MethodGet, "/admin/orders/"+id, nil), http.StatusOK)
	if o.ID != id || o.CheckoutSessionID != sid || o.Status != "created" || o.Amount != total || o.Currency != "usd" ||
		o.Refunded != 0 || len(o.Refunds) != 0 || o.PermalinkURL != "https://shop.example/orders/"+id {
		t.Errorf("order = %+v", o)
	}
	created := o.UpdatedAt

	// Through the lifecycle.
	for _, st := range []string{"confirmed", "shipped"} {
		o = ordersDecode(e, ordersAdmin(e, http.MethodPost, "/admin/orders/"+id+"/status", map[string]any{"status": st}), http.StatusOK)
		if o.Status != st {
			t.Errorf("status = %s, want %s", o.Status, st)
		}
	}
	if !o.UpdatedAt.After(created) {
		t.Errorf("updated_at %v did not move from %v", o.UpdatedAt, created)
	}

	// Refunds.
	o = ordersDecode(e, ordersAdmin(e, http.MethodPost, "/admin/orders/"+id+"/refunds", map[string]any{"type": "store_credit", "amount": 100}), http.StatusCreated)
	if o.Refunded != 100 || len(o.Refunds) != 1 || o.Refunds[0]["type"] != "store_credit" || o.Refunds[0]["amount"] != float64(100) ||
		!strings.HasPrefix(fmt.Sprint(o.Refunds[0]["id"]), "rf_") || o.Status != "shipped" {
		t.Errorf("after a refund: %+v", o)
	}
	// Above what is left: 409.
	r := ordersAdmin(e, http.MethodPost, "/admin/orders/"+id+"/refunds", map[string]any{"type": "original_payment", "amount": total - 100 + 1})
	e.mustError(r, http.StatusConflict, "refund_exceeds_payment", "$.amount")
	// Exactly what is left: fine.
	o = ordersDecode(e, ordersAdmin(e, http.MethodPost, "/admin/orders/"+id+"/refunds", map[string]any{"type": "original_payment", "amount": total - 100}), http.StatusCreated)
	if o.Refunded != total || len(o.Refunds) != 2 {
		t.Errorf("after the full refund: %+v", o)
	}
	e.mustError(ordersAdmin(e, http.MethodPost, "/admin/orders/"+id+"/refunds", map[string]any{"type": "store_credit", "amount": 1}),
		http.StatusConflict, "refund_exceeds_payment", "$.amount")

	// Illegal transitions: 409 invalid_transition, and nothing changes.
	for _, st := range []string{"created", "confirmed", "manual_review", "canceled", "shipped"} {
		r := ordersAdmin(e, http.MethodPost, "/admin/orders/"+id+"/status", map[string]any{"status": st})
		e.mustError(r, http.StatusConflict, "invalid_transition", "$.status")
	}
	ordersDecode(e, ordersAdmin(e, http.MethodPost, "/admin/orders/"+id+"/status", map[string]any{"status": "fulfilled"}), http.StatusOK)
	e.mustError(ordersAdmin(e, http.MethodPost, "/admin/orders/"+id+"/status", map[string]any{"status": "canceled"}),
		http.StatusConflict, "invalid_transition", "$.status")

	o = ordersDecode(e, ordersAdmin(e, http.MethodGet, "/admin/orders/"+id, nil), http.StatusOK)
	if o.Status != "fulfilled" || o.Refunded != total {
		t.Errorf("final order = %+v", o)
	}
	// Every change wrote one event: create, confirmed, shipped, 2 refunds, fulfilled.
	if n := dbInt(e, `SELECT count(*) FROM order_events WHERE order_id = $1`, id); n != 6 {
		t.Errorf("order events = %d, want 6", n)
	}
}

func TestOrdersAdminRefusesBadRequests(t *testing.T) {
	t.Parallel()
	e := ordersEnv(t)
	id, _, _ := ordersMustOrder(e, "tok_visa")
	statusPath, refundPath := "/admin/orders/"+id+"/status", "/admin/orders/"+id+"/refunds"

	for _, tc := range []struct {
		path  string
		body  any
		code  string
		param string
	}{
		{statusPath, map[string]any{"status": "lost"}, "invalid", "$.status"},
		{statusPath, map[string]any{"status": ""}, "invalid", "$.status"},
		{statusPath, map[string]any{}, "missing", "$.status"},
		{statusPath, map[string]any{"status": 3}, "invalid_type", ""},
		{statusPath, map[string]any{"status": "confirmed", "note": "x"}, "", ""},
		{statusPath, `{"status":`, "", ""},
		{refundPath, map[string]any{"type": "cash", "amount": 100}, "invalid", "$.type"},
		{refundPath, map[string]any{"type": "store_credit", "amount": 0}, "invalid", "$.amount"},
		{refundPath, map[string]any{"type": "store_credit", "amount": -5}, "invalid", "$.amount"},
		{refundPath, map[string]any{"type": "store_credit", "amount": 1.5}, "", ""},
		{refundPath, map[string]any{"type": "store_credit", "amount": "100"}, "invalid_type", ""},
		{refundPath, map[string]any{"type": "store_credit"}, "missing", "$.amount"},
		{refundPath, map[string]any{"amount": 100}, "missing", "$.type"},
		{refundPath, `not json`, "", ""},
	} {
		r := ordersAdmin(e, http.MethodPost, tc.path, tc.body)
		if r.status != http.StatusBadRequest {
			t.Errorf("%s %v: status %d, want 400; %s", tc.path, tc.body, r.status, r.body)
			continue
		}
		if tc.code != "" {
			e.mustError(r, http.StatusBadRequest, tc.code, tc.param)
		}
	}
	// No body at all.
	if r := ordersAdmin(e, http.MethodPost, statusPath, nil); r.status != http.StatusBadRequest {
		t.Errorf("status without a body: %d %s", r.status, r.body)
	}
	// Unknown order: 404 everywhere.
	e.mustError(ordersAdmin(e, http.MethodGet, "/admin/orders/ord_nope", nil), http.StatusNotFound, "not_found", "")
	e.mustError(ordersAdmin(e, http.MethodPost, "/admin/orders/ord_nope/status", map[string]any{"status": "confirmed"}), http.StatusNotFound, "not_found", "")
	e.mustError(ordersAdmin(e, http.MethodPost, "/admin/orders/ord_nope/refunds", map[string]any{"type": "store_credit", "amount": 1}), http.StatusNotFound, "not_found", "")
	// Nothing above changed the order or wrote an event.
	o := ordersDecode(e, ordersAdmin(e, http.MethodGet, "/admin/orders/"+id, nil), http.StatusOK)
	if o.Status != "created" || o.Refunded != 0 {
		t.Errorf("order after refused requests: %+v", o)
	}
	if n := dbInt(e, `SELECT count(*) FROM order_events`); n != 1 {
		t.Errorf("events after refused requests = %d, want 1", n)
	}
}

func TestOrdersAdminListPaginates(t *testing.T) {
	t.Parallel()
	e := ordersEnv(t)
	var ids []string // oldest first
	for range 5 {
		id, _, _ := ordersMustOrder(e, "tok_visa")
		ids = append(ids, id)
	}
	ordersDecode(e, ordersAdmin(e, http.MethodPost, "/admin/orders/"+ids[1]+"/status", map[string]any{"status": "confirmed"}), http.StatusOK)
	ordersDecode(e, ordersAdmin(e, http.MethodPost, "/admin/orders/"+ids[3]+"/status", map[string]any{"status": "confirmed"}), http.StatusOK)

	list := func(query string) ([]string, string) {
		t.Helper()
		r := ordersAdmin(e, http.MethodGet, "/admin/orders"+query, nil)
		if r.status != http.StatusOK {
			t.Fatalf("list %s: %d %s", query, r.status, r.body)
		}
		m := r.json(t)
		arr, ok := m["orders"].([]any)
		if !ok {
			t.Fatalf("orders = %#v", m["orders"])
		}
		var out []string
		for _, o := range arr {
			out = append(out, o.(map[string]any)["id"].(string))
		}
		cursor, _ := m["next_cursor"].(string)
		return out, cursor
	}

	newestFirst := slices.Clone(ids)
	slices.Reverse(newestFirst)
	all, cursor := list("")
	if !slices.Equal(all, newestFirst) || cursor != "" {
		t.Errorf("list = %v (cursor %q), want %v", all, cursor, newestFirst)
	}

	var paged []string
	query, pages := "?limit=2", 0
	for {
		page, next := list(query)
		pages++
		if len(page) > 2 {
			t.Fatalf("page of %d orders with limit 2", len(page))
		}
		paged = append(paged, page...)
		if next == "" || pages > 10 {
			break
		}
		query = "?limit=2&cursor=" + next
	}
	if !slices.Equal(paged, newestFirst) {
		t.Errorf("paged = %v, want every order once, newest first: %v", paged, newestFirst)
	}
	if pages < 3 || pages > 4 {
		t.Errorf("pages = %d", pages)
	}

	got, _ := list("?status=confirmed")
	if want := []string{ids[3], ids[1]}; !slices.Equal(got, want) {
		t.Errorf("confirmed = %v, want %v", got, want)
	}
	first, next := list("?status=created&limit=1")
	second, _ := list("?status=created&limit=2&cursor=" + next)
	if want := []string{ids[4], ids[2], ids[0]}; !slices.Equal(append(first, second...), want) {
		t.Errorf("created, paged = %v + %v, want %v", first, second, want)
	}
	if got, _ := list("?status=fulfilled"); len(got) != 0 {
		t.Errorf("fulfilled = %v", got)
	}

	for _, q := range []string{"?limit=0", "?limit=201", "?limit=x", "?limit=-1", "?status=lost", "?cursor=!!!", "?cursor=bm90LWEtY3Vyc29y"} {
		r := ordersAdmin(e, http.MethodGet, "/admin/orders"+q, nil)
		if r.status != http.StatusBadRequest {
			t.Errorf("list %s: %d %s", q, r.status, r.body)
			continue
		}
		e.mustError(r, http.StatusBadRequest, "invalid", "")
	}
}

func TestOrdersPage(t *testing.T) {
	t.Parallel()
	e := ordersEnv(t)
	dbExec(e, `UPDATE variants SET title = '<script>alert("x")</script> & Tee' WHERE id = 'item_123'`)
	id, _, total := ordersMustOrder(e, "", "item_123", 2) // paid with a vault token for a visa

	r := e.do(http.MethodGet, "/orders/"+id, nil)
	if r.status != http.StatusOK {
		t.Fatalf("order page: %d %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("Content-Type = %q", ct)
	}
	page := string(r.body)
	money := fmt.Sprintf("%d.%02d USD", total/100, total%100)
	for _, want := range []string{"<!doctype html>", id, "Received", money, "visa", "4242", "&lt;script&gt;", "&amp; Tee",
		fmt.Sprintf("%d.%02d USD", 1500/100, 1500%100)} {
		if !strings.Contains(page, want) {
			t.Errorf("order page lacks %q:\n%s", want, page)
		}
	}
	for _, never := range []string{visaNumber, "<script>", "9871", "Ada", "ada@example.com"} {
		if strings.Contains(page, never) {
			t.Errorf("order page shows %q:\n%s", never, page)
		}
	}
	if !regexp.MustCompile(`visa ending in 4242`).MatchString(page) {
		t.Errorf("order page does not name the card as brand + last 4:\n%s", page)
	}
	for _, h := range []string{"Content-Security-Policy", "Cache-Control"} {
		if r.header.Get(h) == "" {
			t.Errorf("order page without %s", h)
		}
	}

	// The status follows the order; a refund shows.
	ordersDecode(e, ordersAdmin(e, http.MethodPost, "/admin/orders/"+id+"/status", map[string]any{"status": "confirmed"}), http.StatusOK)
	ordersDecode(e, ordersAdmin(e, http.MethodPost, "/admin/orders/"+id+"/refunds", map[string]any{"type": "store_credit", "amount": 250}), http.StatusCreated)
	page = string(e.do(http.MethodGet, "/orders/"+id, nil).body)
	if !strings.Contains(page, "Confirmed") || strings.Contains(page, "Received") || !strings.Contains(page, "2.50 USD") {
		t.Errorf("order page after confirm + refund:\n%s", page)
	}

	// A PSP-token order has no card to show.
	pspID, _, _ := ordersMustOrder(e, "tok_visa")
	page = string(e.do(http.MethodGet, "/orders/"+pspID, nil).body)
	if strings.Contains(page, "ending in") {
		t.Errorf("PSP-token order page names a card:\n%s", page)
	}

	// Unknown order: an HTML 404.
	for _, path := range []string{"/orders/ord_nope", "/orders/" + strings.Repeat("x", 300), "/orders/%3Cscript%3E"} {
		r = e.do(http.MethodGet, path, nil)
		if r.status != http.StatusNotFound || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
			t.Errorf("%s: %d %q", path, r.status, r.header.Get("Content-Type"))
		}
		if bytes.Contains(r.body, []byte("<script>")) {
			t.Errorf("%s: 404 page echoes the id: %s", path, r.body)
		}
	}
}

func TestOrdersLazyExpiry(t *testing.T) {
	t.Parallel()
	e := ordersEnv(t)
	sid, _ := mustReadySession(e)
	token := delegate(e, sid, 100000, "usd", visaNumber, "9871")
	dbExec(e, `UPDATE checkout_sessions SET expires_at = now() - interval '1 second' WHERE id = $1`, sid)

	s := e.mustSession(e.do(http.MethodGet, "/checkout_sessions/"+sid, nil), http.StatusOK)
	if s["status"] != "canceled" {
		t.Errorf("expired session shows %v", s["status"])
	}
	var info []string
	for _, raw := range s["messages"].([]any) {
		m := raw.(map[string]any)
		if m["type"] == "info" {
			info = append(info, fmt.Sprint(m["content"]))
		}
	}
	if len(info) != 1 || !strings.Contains(strings.ToLower(info[0]), "expired") {
		t.Errorf("info messages = %v, want one mentioning the expiry", info)
	}
	if st := dbText(e, `SELECT state || '/' || coalesce(cancel_reason, '') FROM checkout_sessions WHERE id = $1`, sid); st != "canceled/expired" {
		t.Errorf("stored state = %s", st)
	}

	r := e.do(http.MethodPost, "/checkout_sessions/"+sid, map[string]any{"fulfillment_option_id": "express_shipping"})
	e.mustError(r, http.StatusMethodNotAllowed, "checkout_session_expired", "")
	r = completeSession(e, sid, "tok_visa")
	e.mustError(r, http.StatusMethodNotAllowed, "checkout_session_expired", "")
	r = completeSession(e, sid, token)
	e.mustError(r, http.StatusMethodNotAllowed, "checkout_session_expired", "")
	r = e.do(http.MethodPost, "/checkout_sessions/"+sid+"/cancel", nil)
	e.mustError(r, http.StatusMethodNotAllowed, "checkout_session_expired", "")
	if n := dbInt(e, `SELECT count(*) FROM orders`); n != 0 {
		t.Errorf("orders = %d", n)
	}
	if used, _ := tokenUse(e, token); used != "" {
		t.Errorf("the token was used on an expired session")
	}

	// An expired session that nobody reads is expired on the first write too.
	sid2, _ := mustReadySession(e)
	dbExec(e, `UPDATE checkout_sessions SET expires_at = now() - interval '1 second' WHERE id = $1`, sid2)
	e.mustError(completeSession(e, sid2, "tok_visa"), http.StatusMethodNotAllowed, "checkout_session_expired", "")
	if st := dbText(e, `SELECT state || '/' || coalesce(cancel_reason, '') FROM checkout_sessions WHERE id = $1`, sid2); st != "canceled/expired" {
		t.Errorf("stored state after a refused complete = %s", st)
	}
	// A fresh one is untouched.
	sid3, _ := mustReadySession(e)
	if s := e.mustSession(e.do(http.MethodGet, "/checkout_sessions/"+sid3, nil), http.StatusOK); s["status"] != "ready_for_payment" {
		t.Errorf("fresh session: %v", s["status"])
	}
}

// ordersMetric returns the value of the sample whose name and labels match exactly
// (labels as Prometheus prints them, sorted), or -1 when there is none.
func ordersMetric(text, sample string) float64 {
	for line := range strings.SplitSeq(text, "\n") {
		name, value, ok := strings.Cut(line, " ")
		if !ok || name != sample {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			return -1
		}
		return v
	}
	return -1
}

func TestOrdersMetrics(t *testing.T) {
	t.Parallel()
	e := ordersEnv(t)
	scrape := func() string {
		t.Helper()
		r := e.do(http.MethodGet, "/metrics", nil, "Accept-Encoding", "identity")
		if r.status != http.StatusOK {
			t.Fatalf("/metrics: %d %s", r.status, r.body)
		}
		if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
			t.Errorf("/metrics Content-Type = %q", ct)
		}
		return string(r.body)
	}
	before := scrape()
	if v := ordersMetric(before, `acp_checkout_outcomes_total{outcome="session_created"}`); v > 0 {
		t.Errorf("session_created = %v before any create", v)
	}
	if v := ordersMetric(before, "acp_webhook_outbox_backlog"); v != 0 {
		t.Errorf("backlog = %v on an empty database", v)
	}
	if v := ordersMetric(before, "acp_db_pool_connections_total"); v < 1 {
		t.Errorf("pool connections = %v", v)
	}

	e.mustCreate(map[string]any{"items": items("item_123", 1)})
	e.mustCreate(map[string]any{"items": items("item_456", 1)})
	e.mustError(e.do(http.MethodGet, "/checkout_sessions/cs_does_not_exist", nil), http.StatusNotFound, "not_found", "")
	ordersMustOrder(e, "tok_visa")

	after := scrape()
	for _, name := range []string{"acp_http_requests_total", "acp_webhook_outbox_backlog", "acp_db_pool_connections_total",
		"acp_checkout_outcomes_total", "acp_refusals_total", "acp_http_request_duration_seconds"} {
		if !strings.Contains(after, "# TYPE "+name+" ") {
			t.Errorf("/metrics lacks %s:\n%s", name, after)
		}
	}
	if v := ordersMetric(after, `acp_checkout_outcomes_total{outcome="session_created"}`); v != 3 {
		t.Errorf("session_created = %v, want 3\n%s", v, after)
	}
	if v := ordersMetric(after, `acp_checkout_outcomes_total{outcome="session_completed"}`); v != 1 {
		t.Errorf("session_completed = %v, want 1", v)
	}
	if v := ordersMetric(after, `acp_refusals_total{code="not_found"}`); v != 1 {
		t.Errorf(`refusals{not_found} = %v, want 1`, v)
	}
	if v := ordersMetric(after, `acp_http_requests_total{method="POST",route="/checkout_sessions",status="201"}`); v != 3 {
		t.Errorf(`requests{POST /checkout_sessions 201} = %v, want 3`, v)
	}
	if v := ordersMetric(after, `acp_http_requests_total{method="GET",route="/checkout_sessions/{id}",status="404"}`); v != 1 {
		t.Errorf(`requests{GET /checkout_sessions/{id} 404} = %v, want 1`, v)
	}
	if v := ordersMetric(after, "acp_webhook_outbox_backlog"); v != 1 {
		t.Errorf("backlog = %v after one order, want 1", v)
	}
	// The order's session was written through this one instance: with a cache, its
	// completion started from the view its last update kept.
	if cached := ordersMetric(after, `acp_session_cache_views_total{result="current"}`); testSessionCacheSize(t) > 0 && cached < 1 {
		t.Errorf(`session_cache_views{current} = %v with a cache, want at least 1`, cached)
	} else if testSessionCacheSize(t) == 0 && strings.Contains(after, "acp_session_cache_views_total") {
		t.Errorf("/metrics counts a session cache the instance does not have")
	}
	// An unrouted path is counted under one label, not one series per path.
	e.do(http.MethodGet, "/no/such/path/1", nil)
	e.do(http.MethodGet, "/no/such/path/2", nil)
	final := scrape()
	if strings.Contains(final, "/no/such/path") {
		t.Errorf("unmatched paths become metric labels")
	}
	if v := ordersMetric(final, `acp_http_requests_total{method="GET",route="unmatched",status="404"}`); v != 2 {
		t.Errorf(`requests{unmatched 404} = %v, want 2`, v)
	}
}

// A Prometheus server scrapes with Accept-Encoding: gzip. The body must then be the text
// format compressed once: promhttp compresses on its own, so the server's gzip
// middleware must not compress it a second time.
func TestOrdersMetricsScrapeWithGzip(t *testing.T) {
	t.Parallel()
	e := ordersEnv(t)
	req, err := http.NewRequest(http.MethodGet, e.server.URL+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := http.DefaultTransport.RoundTrip(req) // no transparent decompression
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("status %d, Content-Encoding %q", resp.StatusCode, resp.Header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(body, []byte("# HELP ")) {
		prefix := body[:min(len(body), 16)]
		if bytes.HasPrefix(body, []byte{0x1f, 0x8b}) {
			t.Fatalf("BUG: /metrics is gzip-compressed twice (once by promhttp, once by withCompression), "+
				"so a Prometheus scrape gets binary garbage; after one gunzip the body starts %q", prefix)
		}
		t.Fatalf("/metrics after one gunzip is not the text format: %q", prefix)
	}
}

// A delegated card whose risk signal asks for a review makes a manual_review order,
// announced as such, which the merchant must confirm before it can ship.
func TestOrdersManualReview(t *testing.T) {
	t.Parallel()
	e := ordersEnv(t)
	sid, total := mustReadySession(e)
	body := delegateBody(sid, total, "usd", visaNumber, "9871")
	body["risk_signals"] = []any{map[string]any{"type": "card_testing", "score": 80, "action": "manual_review"}}
	r := e.do(http.MethodPost, delegatePath, body)
	if r.status != http.StatusCreated {
		t.Fatalf("delegate: %d %s", r.status, r.body)
	}
	token := r.json(t)["id"].(string)
	r = completeSession(e, sid, token)
	if r.status != http.StatusOK {
		t.Fatalf("complete: %d %s", r.status, r.body)
	}
	id := r.json(t)["order"].(map[string]any)["id"].(string)

	if o := ordersDecode(e, ordersAdmin(e, http.MethodGet, "/admin/orders/"+id, nil), http.StatusOK); o.Status != "manual_review" {
		t.Errorf("status = %s, want manual_review", o.Status)
	}
	if p := dbText(e, `SELECT payload->'order'->>'status' FROM order_events WHERE order_id = $1 AND type = 'order_create'`, id); p != "manual_review" {
		t.Errorf("order_create announces %q", p)
	}
	if page := string(e.do(http.MethodGet, "/orders/"+id, nil).body); !strings.Contains(page, "Under review") {
		t.Errorf("order page:\n%s", page)
	}
	e.mustError(ordersAdmin(e, http.MethodPost, "/admin/orders/"+id+"/status", map[string]any{"status": "shipped"}),
		http.StatusConflict, "invalid_transition", "$.status")
	ordersDecode(e, ordersAdmin(e, http.MethodPost, "/admin/orders/"+id+"/status", map[string]any{"status": "confirmed"}), http.StatusOK)
	ordersDecode(e, ordersAdmin(e, http.MethodPost, "/admin/orders/"+id+"/status", map[string]any{"status": "shipped"}), http.StatusOK)
}
