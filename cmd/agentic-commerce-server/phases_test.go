package main

// The completion's phases on the real binary with the Stripe gateway: the server is
// killed (SIGKILL) after Stripe charged and before the order was written; the restarted
// server's recovery job asks Stripe again with the same idempotency key and writes the
// order once.

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeStripe is a Stripe API that takes payments: POST /v1/payment_intents answers a
// succeeded PaymentIntent, and the same Idempotency-Key again answers the same one
// without a second charge, as Stripe does. While held, it keeps the first charge's
// response back (the charge is taken), so a test can kill the server meanwhile.
type fakeStripe struct {
	*httptest.Server
	charged chan struct{} // closed when the first charge is taken
	release chan struct{} // closed to let held responses go

	mu       sync.Mutex
	requests int
	byKey    map[string]string // idempotency key -> PaymentIntent id
}

func newFakeStripe(t *testing.T) *fakeStripe {
	t.Helper()
	f := &fakeStripe{charged: make(chan struct{}), release: make(chan struct{}), byKey: map[string]string{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(func() {
		f.letGo()
		f.Close()
	})
	return f
}

func (f *fakeStripe) letGo() {
	select {
	case <-f.release:
	default:
		close(f.release)
	}
}

func (f *fakeStripe) serve(w http.ResponseWriter, r *http.Request) {
	_, _ = io.ReadAll(r.Body)
	if r.Method != http.MethodPost || r.URL.Path != "/v1/payment_intents" {
		http.Error(w, `{"error":{"type":"invalid_request_error","message":"not faked"}}`, http.StatusNotFound)
		return
	}
	key := r.Header.Get("Idempotency-Key")
	f.mu.Lock()
	f.requests++
	id, seen := f.byKey[key]
	first := len(f.byKey) == 0
	if !seen {
		id = fmt.Sprintf("pi_fake_%d", len(f.byKey)+1)
		f.byKey[key] = id
	}
	f.mu.Unlock()
	if first && !seen {
		close(f.charged)
		<-f.release // the server is killed while this response waits
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = fmt.Fprintf(w, `{"id": %q, "object": "payment_intent", "status": "succeeded", "amount": 3718, "currency": "usd"}`, id)
}

// charges is how many payments the fake took (one per idempotency key), and requests
// how many charge requests it answered or held.
func (f *fakeStripe) counts() (charges, requests int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.byKey), f.requests
}

func TestKilledBetweenTheChargeAndTheOrder(t *testing.T) {
	t.Parallel()
	stripe := newFakeStripe(t)
	dbURL := emptyDatabase(t)
	mustRun(t, []string{"DATABASE_URL=" + dbURL}, "migrate", "up")
	mustRun(t, []string{"DATABASE_URL=" + dbURL}, "catalog", "import", faultCatalog)
	mustRun(t, []string{"DATABASE_URL=" + dbURL}, "catalog", "stock", "item_123", "10")
	env := []string{
		"DATABASE_URL=" + dbURL, "PAYMENT_GATEWAY=stripe", "STRIPE_SECRET_KEY=sk_test_51KillTestKey0123456789",
		"STRIPE_API_BASE=" + stripe.URL, "REQUEST_TIMEOUT=2s", "IDEMPOTENCY_RECOVER_AFTER=2s",
		"PAYMENT_ATTEMPT_TIMEOUT=2s", "PAYMENT_RECOVERY_INTERVAL=1s", "RATE_LIMIT_RPS=0",
	}
	srv := startServer(t, env...)
	c := newFaultClient(srv.base)
	sid := faultReadySession(t, c, "item_123")
	body := faultCompleteBody("spt_test_killed_mid_charge")

	cut := make(chan error, 1)
	go func() {
		_, err := c.do(http.MethodPost, "/checkout_sessions/"+sid+"/complete", body, "kill-complete")
		cut <- err
	}()
	select {
	case <-stripe.charged:
	case <-time.After(30 * time.Second):
		t.Fatalf("Stripe was never asked to charge:\n%s", srv.logs.String())
	}
	if err := srv.cmd.Process.Kill(); err != nil { // SIGKILL: no shutdown, no phase 3
		t.Fatal(err)
	}
	<-srv.done
	if err := <-cut; err == nil {
		t.Fatal("the completion was answered although its server was killed mid-charge")
	}
	stripe.letGo()

	conn := faultConn(t, dbURL)
	if n := faultInt(t, conn, `SELECT count(*) FROM payment_attempts WHERE checkout_session_id = $1 AND status = 'pending'`, sid); n != 1 {
		t.Fatalf("pending attempts after the kill = %d, want 1", n)
	}
	if n := faultInt(t, conn, `SELECT count(*) FROM orders`); n != 0 {
		t.Fatalf("orders after the kill = %d, want 0 (killed before the order's transaction)", n)
	}

	srv = startServer(t, env...)
	c = newFaultClient(srv.base)
	deadline := time.Now().Add(30 * time.Second)
	for faultInt(t, conn, `SELECT count(*) FROM orders WHERE checkout_session_id = $1`, sid) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the recovery job wrote no order:\n%s", srv.logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The job and a retry may both be at it: give them a moment, then count.
	time.Sleep(1500 * time.Millisecond)
	charges, requests := stripe.counts()
	if charges != 1 || requests < 2 {
		t.Errorf("Stripe took %d charges from %d requests, want 1 charge asked again under its key", charges, requests)
	}
	if n := faultInt(t, conn, `SELECT count(*) FROM orders o JOIN payment_attempts a ON a.order_id = o.id
		WHERE o.checkout_session_id = $1 AND a.status = 'succeeded' AND o.payment_reference = 'pi_fake_1' AND o.payment_gateway = 'stripe'`, sid); n != 1 {
		t.Errorf("orders paid by the first PaymentIntent through stripe = %d, want 1", n)
	}
	if n := faultInt(t, conn, `SELECT stock_quantity FROM variants WHERE id = 'item_123'`); n != 9 {
		t.Errorf("stock = %d, want 9", n)
	}
	if !strings.Contains(srv.logs.String(), `"msg":"payment attempt recovered"`) {
		t.Errorf("no recovery in the restarted server's logs:\n%s", srv.logs.String())
	}
	// The agent's retry with its key gets the recovered order.
	r, err := c.retryUntilFinal(http.MethodPost, "/checkout_sessions/"+sid+"/complete", body, "kill-complete", time.Now().Add(20*time.Second))
	if err != nil || r.status != http.StatusOK || faultOrderID(r.body) == "" {
		t.Errorf("retry after recovery = %v, %v", r, err)
	}
	if charges, _ := stripe.counts(); charges != 1 {
		t.Errorf("Stripe took %d charges after the retry, want 1", charges)
	}
	faultCheckInvariants(t, conn, false)
	srv.stop(t)
}
