package httpapi_test

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/acpspec"
	"github.com/agentic-commerce/agentic-commerce-server/internal/httpapi"
	"github.com/agentic-commerce/agentic-commerce-server/internal/postgres"
)

// cartEnv is a 2026-04-17 env (carts exist from that version) with the cart schema,
// compiled with the checkout bundle its $refs name (checklist I-37).
func cartEnv(t *testing.T, opts ...func(*httpapi.Config)) (*testEnv, *acpspec.Validator) {
	t.Helper()
	return mustEnvVersion(t, v0417, time.Minute, opts...),
		acpspec.MustLoad(t, v0417, "schema.cart.json", "schema.agentic_checkout.json")
}

// mustCart expects status and a body that is a valid 2026-04-17 Cart.
func mustCart(t *testing.T, schema *acpspec.Validator, r response, status int) map[string]any {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body: %s", r.status, status, r.body)
	}
	schema.MustValidate(t, "Cart", r.body)
	c := r.json(t)
	for _, f := range []string{"id", "line_items", "currency", "totals"} {
		if _, ok := c[f]; !ok {
			t.Errorf("cart without %s: %s", f, r.body)
		}
	}
	return c
}

// put sends a PUT with a fresh Idempotency-Key unless headers name one.
func (e *testEnv) put(path string, body any, headers ...string) response {
	e.t.Helper()
	if !namesHeader(headers, "Idempotency-Key") {
		headers = append(headers, "Idempotency-Key", newKey())
	}
	return e.do(http.MethodPut, path, body, headers...)
}

// cartLines returns "item id x quantity" for each line item of a cart or session.
func cartLines(c map[string]any) []string {
	var out []string
	for _, raw := range c["line_items"].([]any) {
		l := raw.(map[string]any)
		out = append(out, l["item"].(map[string]any)["id"].(string)+"x"+jsonInt(l["quantity"]))
	}
	return out
}

func jsonInt(v any) string { return strconv.FormatInt(int64(v.(float64)), 10) }

func TestCartCreateGetReplaceCancel(t *testing.T) {
	e, schema := cartEnv(t)

	created := mustCart(t, schema, e.do(http.MethodPost, "/carts", map[string]any{
		"line_items": items("item_123", 2, "item_456", 1),
		"buyer":      map[string]any{"email": "ada@example.com"},
		"locale":     "en-US",
	}), http.StatusCreated)
	id := created["id"].(string)
	if got := cartLines(created); !slices.Equal(got, []string{"item_123x2", "item_456x1"}) {
		t.Errorf("line items = %v", got)
	}
	// Estimated totals: no tax entry before an address is known, nothing for fulfillment.
	if got, want := totals(t, created), map[string]int64{"items_base_amount": 6000, "subtotal": 6000, "total": 6000}; !mapsEqual(got, want) {
		t.Errorf("totals = %v, want %v", got, want)
	}
	if created["currency"] != "usd" || created["buyer"].(map[string]any)["email"] != "ada@example.com" {
		t.Errorf("currency or buyer: %v", created)
	}
	if _, ok := created["messages"]; ok {
		t.Errorf("messages on a cart of available items: %v", created["messages"])
	}
	firstExpiry, _ := time.Parse(time.RFC3339, created["expires_at"].(string))

	got := mustCart(t, schema, e.do(http.MethodGet, "/carts/"+id, nil), http.StatusOK)
	if !slices.Equal(cartLines(got), cartLines(created)) || got["expires_at"] != created["expires_at"] {
		t.Errorf("GET = %v, want the created cart %v", got, created)
	}

	// Full replacement: the items replace the old ones, the buyer left out goes, the line
	// of an item still in the cart keeps its id, and the expiry moves on.
	time.Sleep(1100 * time.Millisecond)
	replaced := mustCart(t, schema, e.put("/carts/"+id, map[string]any{"line_items": items("item_456", 3)}), http.StatusOK)
	if got := cartLines(replaced); !slices.Equal(got, []string{"item_456x3"}) {
		t.Errorf("replaced line items = %v", got)
	}
	if _, ok := replaced["buyer"]; ok {
		t.Errorf("the buyer survived a replacement without one: %v", replaced["buyer"])
	}
	if replaced["line_items"].([]any)[0].(map[string]any)["id"] != created["line_items"].([]any)[1].(map[string]any)["id"] {
		t.Error("the line of item_456 changed its id on replacement")
	}
	if totals(t, replaced)["total"] != 9000 {
		t.Errorf("replaced totals = %v", totals(t, replaced))
	}
	if exp, _ := time.Parse(time.RFC3339, replaced["expires_at"].(string)); !exp.After(firstExpiry) {
		t.Errorf("expires_at %v not refreshed past %v", exp, firstExpiry)
	}

	// Cancel returns the final state; afterwards the cart is gone for every operation.
	final := mustCart(t, schema, e.do(http.MethodPost, "/carts/"+id+"/cancel", nil), http.StatusOK)
	if final["id"] != id || !slices.Equal(cartLines(final), cartLines(replaced)) || totals(t, final)["total"] != 9000 {
		t.Errorf("cancel = %v, want the cart's final state %v", final, replaced)
	}
	e.mustError(e.do(http.MethodGet, "/carts/"+id, nil), http.StatusNotFound, "not_found", "")
	e.mustError(e.put("/carts/"+id, map[string]any{"line_items": items("item_123", 1)}), http.StatusNotFound, "not_found", "")
	e.mustError(e.do(http.MethodPost, "/carts/"+id+"/cancel", "{}"), http.StatusNotFound, "not_found", "")
	e.mustError(e.do(http.MethodGet, "/carts/cart_unknown", nil), http.StatusNotFound, "not_found", "")
}

func mapsEqual(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestCartReportsUnavailableItems: an item out of stock stays in the cart with a
// message naming it (CART-RFC §4.2: never dropped silently), on create and on replace,
// and a cart of only unavailable items is still created (decision: the agent decides).
func TestCartReportsUnavailableItems(t *testing.T) {
	e, schema := cartEnv(t)
	c := mustCart(t, schema, e.do(http.MethodPost, "/carts", map[string]any{"line_items": items("item_123", 1, "item_789", 2)}), http.StatusCreated)
	if got := cartLines(c); !slices.Equal(got, []string{"item_123x1", "item_789x2"}) {
		t.Fatalf("line items = %v: the unavailable item was dropped", got)
	}
	if got := messages(c); !slices.Equal(got, []string{"out_of_stock@$.line_items[1]"}) {
		t.Errorf("messages = %v", got)
	}
	if totals(t, c)["total"] != 1500+2*900 {
		t.Errorf("totals = %v", totals(t, c))
	}

	r := mustCart(t, schema, e.put("/carts/"+c["id"].(string), map[string]any{"line_items": items("item_789", 1, "item_456", 1)}), http.StatusOK)
	if got := messages(r); !slices.Equal(got, []string{"out_of_stock@$.line_items[0]"}) {
		t.Errorf("messages after replace = %v", got)
	}

	only := mustCart(t, schema, e.do(http.MethodPost, "/carts", map[string]any{"line_items": items("item_789", 1)}), http.StatusCreated)
	if got := messages(only); !slices.Equal(got, []string{"out_of_stock@$.line_items[0]"}) {
		t.Errorf("messages of a cart of unavailable items = %v", got)
	}
}

// TestCartToCheckoutSession: the agent creates a checkout session from the cart's items
// as GET /carts/{id} shows them (CART-RFC §3.2; cart_id is deferred), and the session
// holds the same items at the same prices.
func TestCartToCheckoutSession(t *testing.T) {
	e, schema := cartEnv(t)
	id := mustCart(t, schema, e.do(http.MethodPost, "/carts", map[string]any{"line_items": items("item_123", 2, "ebook_001", 1)}), http.StatusCreated)["id"].(string)
	cart := mustCart(t, schema, e.do(http.MethodGet, "/carts/"+id, nil), http.StatusOK)

	var lineItems []map[string]any
	for _, raw := range cart["line_items"].([]any) {
		l := raw.(map[string]any)
		lineItems = append(lineItems, map[string]any{"id": l["item"].(map[string]any)["id"], "quantity": l["quantity"]})
	}
	s := e.mustCreate(map[string]any{"line_items": lineItems, "currency": cart["currency"], "capabilities": map[string]any{}})
	if got := cartLines(s); !slices.Equal(got, cartLines(cart)) {
		t.Errorf("session items = %v, cart items = %v", got, cartLines(cart))
	}
	for i, raw := range s["line_items"].([]any) {
		sl, cl := raw.(map[string]any), cart["line_items"].([]any)[i].(map[string]any)
		if sl["unit_amount"] != cl["unit_amount"] || totals(t, sl)["subtotal"] != totals(t, cl)["subtotal"] {
			t.Errorf("line %d: session %v, cart %v", i, sl, cl)
		}
	}
	if st, ct := totals(t, s), totals(t, cart); st["subtotal"] != ct["subtotal"] || st["items_base_amount"] != ct["items_base_amount"] {
		t.Errorf("session totals %v, cart totals %v", st, ct)
	}
	// The cart is not consumed: conversion rules are deferred by the RFC.
	mustCart(t, schema, e.do(http.MethodGet, "/carts/"+id, nil), http.StatusOK)
}

func TestCartIdempotency(t *testing.T) {
	e, schema := cartEnv(t)
	body := map[string]any{"line_items": items("item_123", 1)}
	key := newKey()
	first := mustCart(t, schema, e.do(http.MethodPost, "/carts", body, "Idempotency-Key", key), http.StatusCreated)
	again := e.do(http.MethodPost, "/carts", body, "Idempotency-Key", key)
	if mustCart(t, schema, again, http.StatusCreated)["id"] != first["id"] || again.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("a repeated create is not a replay: %s (headers %v)", again.body, again.header)
	}
	var n int
	if err := e.pool.QueryRow(context.Background(), "SELECT count(*) FROM carts").Scan(&n); err != nil || n != 1 {
		t.Errorf("carts stored = %d (%v), want 1", n, err)
	}
	e.mustError(e.do(http.MethodPost, "/carts", map[string]any{"line_items": items("item_456", 1)}, "Idempotency-Key", key),
		http.StatusUnprocessableEntity, "idempotency_conflict", "")
	e.mustError(e.do(http.MethodPost, "/carts", body, "Idempotency-Key", ""), http.StatusBadRequest, "idempotency_key_required", "")

	// PUT is keyed too: required, and replayed.
	id := first["id"].(string)
	e.mustError(e.do(http.MethodPut, "/carts/"+id, body), http.StatusBadRequest, "idempotency_key_required", "")
	putKey := newKey()
	replace := map[string]any{"line_items": items("item_123", 4)}
	mustCart(t, schema, e.put("/carts/"+id, replace, "Idempotency-Key", putKey), http.StatusOK)
	if r := e.put("/carts/"+id, replace, "Idempotency-Key", putKey); r.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("a repeated replacement is not a replay: %v", r.header)
	}
}

// A cart's replacement and cancel look their key up before they run and hold a free
// key first in their transaction, which then waits on the cart's row lock: a duplicate
// meanwhile is answered at once, and the first replacement is the only one applied.
func TestCartWritesInFlightAreAnsweredAtOnce(t *testing.T) {
	e, schema := cartEnv(t)
	id := mustCart(t, schema, e.do(http.MethodPost, "/carts", map[string]any{"line_items": items("item_123", 1)}), http.StatusCreated)["id"].(string)
	for _, op := range []struct{ method, path, body, other string }{
		{http.MethodPut, "/carts/" + id, `{"line_items":[{"id":"item_123","quantity":3}]}`, `{"line_items":[{"id":"item_123","quantity":4}]}`},
		{http.MethodPost, "/carts/" + id + "/cancel", "", "{}"},
	} {
		release := safetyLockRow(e, "carts", id)
		done := make(chan response, 1)
		go func() {
			r, err := e.client().Do(op.method, op.path, op.body, "Idempotency-Key", "K")
			if err != nil {
				t.Error(err)
			}
			done <- response{status: r.Status, header: r.Header, body: r.Body}
		}()
		safetyWaitFor(t, "the hold of K on "+op.path, func() bool { return safetyHeldKeyLocks(e) == 2 })
		safetyMustRefuseDuplicates(e, op.method, op.path, op.body, op.other)
		release()
		first := safetyAwait(t, done, op.path)
		mustCart(t, schema, first, http.StatusOK)
		safetyMustReplay(t, e.do(op.method, op.path, op.body, "Idempotency-Key", "K"), first)
	}
	var n int
	if err := e.pool.QueryRow(context.Background(), "SELECT count(*) FROM carts").Scan(&n); err != nil || n != 0 {
		t.Errorf("carts stored = %d (%v), want 0: the cancel deletes the cart", n, err)
	}
}

func TestCartRefusesBadInput(t *testing.T) {
	e, schema := cartEnv(t)
	e.mustError(e.do(http.MethodPost, "/carts", map[string]any{}), http.StatusBadRequest, "missing", "$.line_items")
	e.mustError(e.do(http.MethodPost, "/carts", map[string]any{"line_items": []any{}}), http.StatusBadRequest, "invalid", "$.line_items")
	e.mustError(e.do(http.MethodPost, "/carts", map[string]any{"line_items": items("nope", 1)}), http.StatusBadRequest, "invalid_item_id", "$.line_items[0].id")
	e.mustError(e.do(http.MethodPost, "/carts", map[string]any{"line_items": items("item_123", 0)}), http.StatusBadRequest, "invalid", "$.line_items[0].quantity")
	e.mustError(e.do(http.MethodPost, "/carts", map[string]any{"line_items": items("item_123", 1), "currency": "usd"}), http.StatusBadRequest, "unknown_field", "$.currency")
	e.mustError(e.do(http.MethodPost, "/carts", map[string]any{"line_items": items("item_123", 1), "buyer": map[string]any{"email": "not-an-email"}}),
		http.StatusBadRequest, "invalid", "$.buyer.email")
	e.mustError(e.do(http.MethodPost, "/carts", map[string]any{"line_items": items("item_123", 1, "mug_eur", 1)}), http.StatusBadRequest, "currency_mismatch", "$.line_items[1].id")

	id := mustCart(t, schema, e.do(http.MethodPost, "/carts", map[string]any{"line_items": items("item_123", 1)}), http.StatusCreated)["id"].(string)
	// locale is only on create; a refused replacement leaves the cart as it was.
	e.mustError(e.put("/carts/"+id, map[string]any{"line_items": items("item_456", 1), "locale": "en"}), http.StatusBadRequest, "unknown_field", "$.locale")
	e.mustError(e.do(http.MethodPost, "/carts/"+id+"/cancel", `{"reason":"x"}`), http.StatusBadRequest, "unknown_field", "$.reason")
	if got := cartLines(mustCart(t, schema, e.do(http.MethodGet, "/carts/"+id, nil), http.StatusOK)); !slices.Equal(got, []string{"item_123x1"}) {
		t.Errorf("a refused request changed the cart: %v", got)
	}
}

// TestCartExpiry: an expired cart is not found (CART-RFC §4.3) and the sweeper deletes it.
func TestCartExpiry(t *testing.T) {
	e, schema := cartEnv(t)
	id := mustCart(t, schema, e.do(http.MethodPost, "/carts", map[string]any{"line_items": items("item_123", 1)}), http.StatusCreated)["id"].(string)
	ctx := context.Background()
	if _, err := e.pool.Exec(ctx, "UPDATE carts SET expires_at = now() - interval '1 second', created_at = now() - interval '1 hour', updated_at = now() - interval '1 hour' WHERE id = $1", id); err != nil {
		t.Fatal(err)
	}
	e.mustError(e.do(http.MethodGet, "/carts/"+id, nil), http.StatusNotFound, "not_found", "")
	e.mustError(e.put("/carts/"+id, map[string]any{"line_items": items("item_123", 2)}), http.StatusNotFound, "not_found", "")
	p, err := postgres.NewSweeper(e.pool).Purge(ctx, postgres.Retention{CanceledSessions: time.Hour, OrderEvents: time.Hour, ExpiredTokenGrace: time.Hour, TokenLifetime: time.Hour})
	if err != nil || p.Carts != 1 {
		t.Errorf("purge = %+v, %v; want 1 cart", p, err)
	}
	var n int
	if err := e.pool.QueryRow(ctx, "SELECT count(*) FROM cart_items").Scan(&n); err != nil || n != 0 {
		t.Errorf("cart items left = %d (%v)", n, err)
	}
}

// TestCartsAreOwnedByTheirCaller: another agent platform's cart is not found.
func TestCartsAreOwnedByTheirCaller(t *testing.T) {
	e, schema := cartEnv(t, func(c *httpapi.Config) {
		c.APIKeys = []httpapi.APIKey{{Name: "a", Key: "sk_a"}, {Name: "b", Key: "sk_b"}}
	})
	id := mustCart(t, schema, e.do(http.MethodPost, "/carts", map[string]any{"line_items": items("item_123", 1)}, "Authorization", "Bearer sk_a"), http.StatusCreated)["id"].(string)
	e.mustError(e.do(http.MethodGet, "/carts/"+id, nil, "Authorization", "Bearer sk_b"), http.StatusNotFound, "not_found", "")
	e.mustError(e.do(http.MethodPost, "/carts/"+id+"/cancel", nil, "Authorization", "Bearer sk_b"), http.StatusNotFound, "not_found", "")
	mustCart(t, schema, e.do(http.MethodGet, "/carts/"+id, nil, "Authorization", "Bearer sk_a"), http.StatusOK)
}

// TestCartsAreNotIn20250929: the version has no carts; its requests get a 400 naming the
// version that has them, in its own Error shape.
func TestCartsAreNotIn20250929(t *testing.T) {
	e := mustEnvVersion(t, "2025-09-29", time.Minute)
	for _, r := range []response{
		e.do(http.MethodPost, "/carts", map[string]any{"line_items": items("item_123", 1)}),
		e.do(http.MethodGet, "/carts/cart_x", nil),
		e.do(http.MethodPut, "/carts/cart_x", map[string]any{"line_items": items("item_123", 1)}),
		e.do(http.MethodPost, "/carts/cart_x/cancel", nil),
	} {
		e.mustError(r, http.StatusBadRequest, "unsupported_api_version", "")
		if got := r.header.Get("API-Supported-Versions"); got != v0417 {
			t.Errorf("API-Supported-Versions = %q", got)
		}
	}
	var n int
	if err := e.pool.QueryRow(context.Background(), "SELECT count(*) FROM carts").Scan(&n); err != nil || n != 0 {
		t.Errorf("carts stored = %d (%v)", n, err)
	}
}

// TestConcurrentCartReplacementsSerialise: replacements of one cart at once all succeed
// (none collides with another's delete and re-insert of the same line ids: each
// transaction holds the cart's row from its read to its commit), and the cart ends with
// one row per item, as each of them wrote it.
func TestConcurrentCartReplacementsSerialise(t *testing.T) {
	e, schema := cartEnv(t)
	id := mustCart(t, schema, e.do(http.MethodPost, "/carts", map[string]any{"line_items": items("item_123", 1, "item_456", 1)}), http.StatusCreated)["id"].(string)
	const n = 8
	statuses := make(chan int, n)
	for i := range n {
		go func() {
			r, err := e.client().Do(http.MethodPut, "/carts/"+id, map[string]any{"line_items": items("item_123", i+1, "item_456", 1)},
				"Idempotency-Key", newKey())
			if err != nil {
				statuses <- 0
				return
			}
			statuses <- r.Status
		}()
	}
	for range n {
		if st := <-statuses; st != http.StatusOK {
			t.Errorf("a concurrent replacement answered %d", st)
		}
	}
	final := mustCart(t, schema, e.do(http.MethodGet, "/carts/"+id, nil), http.StatusOK)
	if lines := final["line_items"].([]any); len(lines) != 2 {
		t.Errorf("final cart has %d lines: %v", len(lines), lines)
	}
	var rows int
	if err := e.pool.QueryRow(context.Background(), "SELECT count(*) FROM cart_items WHERE cart_id = $1", id).Scan(&rows); err != nil || rows != 2 {
		t.Errorf("cart_items rows = %d (%v), want 2", rows, err)
	}
}
