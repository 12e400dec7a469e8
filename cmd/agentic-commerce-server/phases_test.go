package main

// The completion's phases on the real binary with the Stripe gateway: the server is
// killed (SIGKILL) after Stripe charged and before the order was written; the restarted
// server's recovery job asks Stripe again with the same idempotency key and writes the
// order once.

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/payment/stripegw/stripefake"
)

func TestKilledBetweenTheChargeAndTheOrder(t *testing.T) {
	t.Parallel()
	// The fake takes the first charge and holds its answer while the server is killed.
	stripe, err := stripefake.Start(stripefake.Options{HoldFirstCharge: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stripe.Close)
	dbURL := emptyDatabase(t)
	mustRun(t, []string{"DATABASE_URL=" + dbURL}, "migrate", "up")
	mustRun(t, []string{"DATABASE_URL=" + dbURL}, "catalog", "import", faultCatalog)
	mustRun(t, []string{"DATABASE_URL=" + dbURL}, "catalog", "stock", "item_123", "10")
	env := []string{
		"DATABASE_URL=" + dbURL, "PAYMENT_GATEWAY=stripe", "STRIPE_SECRET_KEY=sk_test_51KillTestKey0123456789",
		"STRIPE_API_BASE=" + stripe.URL(), "REQUEST_TIMEOUT=2s", "IDEMPOTENCY_RECOVER_AFTER=2s",
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
	case <-stripe.Held():
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
	stripe.Release()

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
	intents := stripe.PaymentIntentsByKey()
	if c := stripe.TakeCounts(); len(intents) != 1 || c.PaymentIntents != 1 || c.Replays < 1 {
		t.Errorf("Stripe made payment intents %v (counts %+v), want 1 charge asked again under its key", intents, c)
	}
	var firstIntent string
	for _, id := range intents {
		firstIntent = id
	}
	if n := faultInt(t, conn, `SELECT count(*) FROM orders o JOIN payment_attempts a ON a.order_id = o.id
		WHERE o.checkout_session_id = $1 AND a.status = 'succeeded' AND o.payment_reference = $2 AND o.payment_gateway = 'stripe'`, sid, firstIntent); n != 1 {
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
	if intents := stripe.PaymentIntentsByKey(); len(intents) != 1 {
		t.Errorf("Stripe made payment intents %v after the retry, want the 1", intents)
	}
	faultCheckInvariants(t, conn, false)
	srv.stop(t)
}
