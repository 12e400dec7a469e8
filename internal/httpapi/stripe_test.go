package httpapi_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/payment"
	"github.com/agentic-commerce/agentic-commerce-server/internal/payment/stripegw"
	"github.com/agentic-commerce/agentic-commerce-server/internal/postgres"
)

// TestCompleteWithStripeSharedPaymentToken0417 completes a 2026-04-17 session with a
// Stripe Shared Payment Token through the Stripe gateway, pointed at a local Stripe that
// answers every PaymentIntent with succeeded: the session offers the SPT handler, the
// charge asks for the session's total under the session's idempotency key, and the
// order's payment reference is the PaymentIntent's id.
func TestCompleteWithStripeSharedPaymentToken0417(t *testing.T) {
	t.Parallel()
	const (
		spt           = "spt_1RgaZcFfrsXiS9Fab3PsUTwX"
		paymentIntent = "pi_3RgaZdFfrsXiS9Fa0uYtW9Qb"
		merchant      = "acct_1RgaZ0FfrsXiS9Fa"
	)
	var (
		mu      sync.Mutex
		charges []url.Values
		keys    []string
	)
	stripeAPI := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		mu.Lock()
		charges, keys = append(charges, form), append(keys, r.Header.Get("Idempotency-Key"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id": "`+paymentIntent+`", "object": "payment_intent", "status": "succeeded"}`)
	}))
	t.Cleanup(stripeAPI.Close)
	gw, err := stripegw.New(stripegw.Config{SecretKey: "sk_test_51AbCdEfGhIjKlMnOpQrStUv", APIBase: stripeAPI.URL})
	if err != nil {
		t.Fatal(err)
	}

	e := mustEnvVersion(t, v0417, time.Minute)
	e.gateway = &payment.CountingGateway{Gateway: gw}
	e.storeOpts = append(e.storeOpts, func(c *postgres.StoreConfig) { c.MerchantID = merchant })
	e.server = e.startServer(time.Minute)

	s := e.mustCreate(e.createBody(fields{items: items("item_123", 2), buyer: buyer, address: address}))
	id := s["id"].(string)
	if s["status"] != "ready_for_payment" {
		t.Fatalf("status %v, messages %v", s["status"], messages(s))
	}
	var offered []string
	for _, h := range s["capabilities"].(map[string]any)["payment"].(map[string]any)["handlers"].([]any) {
		h := h.(map[string]any)
		offered = append(offered, h["id"].(string))
		if h["id"] == "card_stripe_spt" && (h["psp"] != "stripe" || h["requires_delegate_payment"] != true ||
			h["config"].(map[string]any)["merchant_id"] != merchant) {
			t.Errorf("SPT handler = %v", h)
		}
	}
	if want := []string{"card_tokenized", "card_psp_test", "card_stripe_spt"}; !slices.Equal(offered, want) {
		t.Errorf("handlers = %v, want %v", offered, want)
	}
	total := totals(t, s)["total"]

	completed := e.mustCompleted(e.do(http.MethodPost, "/checkout_sessions/"+id+"/complete", map[string]any{
		"payment_data": map[string]any{
			"handler_id": "card_stripe_spt",
			"instrument": map[string]any{"type": "card", "credential": map[string]any{"type": "spt", "token": spt}},
		},
	}))
	order := completed["order"].(map[string]any)
	var reference, method string
	if err := e.pool.QueryRow(context.Background(), `SELECT payment_reference, payment_method FROM orders WHERE id = $1`,
		order["id"]).Scan(&reference, &method); err != nil {
		t.Fatal(err)
	}
	if reference != paymentIntent || method != "psp_token" {
		t.Errorf("order paid by %s %s, want psp_token %s", method, reference, paymentIntent)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(charges) != 1 {
		t.Fatalf("Stripe was asked %d times, want once", len(charges))
	}
	c := charges[0]
	if c.Get("payment_method_data[shared_payment_granted_token]") != spt || c.Get("amount") != strconv.FormatInt(total, 10) ||
		c.Get("currency") != "usd" || c.Get("confirm") != "true" || c.Get("metadata[checkout_session_id]") != id || keys[0] != id {
		t.Errorf("charge %v under key %q; want the SPT, %d usd, confirmed, for %s under its id", c, keys[0], total, id)
	}
}
