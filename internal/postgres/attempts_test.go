package postgres_test

// Completion in phases (docs/payments.md): a PSP-token completion reserves in one
// transaction, charges with nothing held, and writes its order in another; an answer in
// doubt leaves the attempt pending for a retry or the recovery job.

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/idempotency"
	"github.com/agentic-commerce/agentic-commerce-server/internal/payment"
	"github.com/agentic-commerce/agentic-commerce-server/internal/pgtest"
	"github.com/agentic-commerce/agentic-commerce-server/internal/postgres"
)

// withKey is ctx carrying a claim of the agent's Idempotency-Key key, as the HTTP layer
// gives a completion (without an encoder: nothing is recorded).
func withKey(ctx context.Context, key string) context.Context {
	return idempotency.NewContext(ctx, &idempotency.Claim{Key: idempotency.Key{Caller: "agent", Method: "POST", Path: "/complete", Key: key}})
}

var visa = checkout.Completion{Token: "tok_visa", Provider: "stripe"}

func (e *outboxEnv) text(sql string, args ...any) string {
	e.t.Helper()
	var s string
	if err := e.pool.QueryRow(context.Background(), sql, args...).Scan(&s); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
	return s
}

// chargeInDoubt completes a session of quantity tees (5 in stock) with the Idempotency-Key
// k1 through a PSP that charges and loses the answer of the first call, and returns the
// env, the PSP, the session and the completion's error (payment_pending, checked).
func chargeInDoubt(t *testing.T, quantity int) (*outboxEnv, *payment.ScriptedGateway, string, error) {
	t.Helper()
	psp := &payment.ScriptedGateway{Decide: payment.LoseAnswers(1)}
	e := outboxEnvWith(t, pgtest.MustPool(t), true, psp)
	e.exec(`UPDATE variants SET stock_quantity = 5 WHERE id = 'item_123'`)
	sid := e.readySession("item_123", quantity)
	_, err := e.store.CompleteSession(withKey(context.Background(), "k1"), "", sid, visa)
	mustCode(t, err, checkout.CodePaymentPending)
	return e, psp, sid, err
}

// staleAttempts makes every pending attempt look abandoned (its PSP call began long
// ago), as after a crash.
func (e *outboxEnv) staleAttempts() {
	e.t.Helper()
	e.exec(`UPDATE payment_attempts SET attempted_at = attempted_at - interval '1 hour' WHERE status = 'pending'`)
}

// While the PSP charges, the session is complete_in_progress: it shows so, refuses
// updates, cancels and other completions; once charged, the order is written with the
// pre-allocated id, the attempt succeeded and the cryptogram-bearing column emptied.
func TestCompletionInPhases(t *testing.T) {
	t.Parallel()
	psp := &payment.ScriptedGateway{}
	e := outboxEnvWith(t, pgtest.MustPool(t), true, psp)
	ctx := context.Background()
	e.exec(`UPDATE variants SET stock_quantity = 5 WHERE id = 'item_123'`)
	sid := e.readySession("item_123", 2)
	var getErr error
	var during []error
	psp.InCharge = func(payment.Charge) {
		v, err := e.store.GetSession(ctx, "", sid)
		if err != nil || v.Quote.Status != checkout.StatusCompleteInProgress {
			getErr = fmt.Errorf("GET during the charge: %v, %v", v.Quote.Status, err)
		}
		opt := "standard_shipping"
		_, err = e.store.UpdateSession(ctx, "", sid, checkout.Changes{FulfillmentOptionID: &opt})
		during = append(during, err)
		_, err = e.store.CancelSession(ctx, "", sid, nil)
		during = append(during, err)
		_, err = e.store.CompleteSession(withKey(ctx, "other"), "", sid, visa)
		during = append(during, err)
	}
	v, err := e.store.CompleteSession(withKey(ctx, "k1"), "", sid, visa)
	if err != nil {
		t.Fatal(err)
	}
	if getErr != nil {
		t.Error(getErr)
	}
	if len(during) != 3 {
		t.Fatalf("the PSP was called %d times", len(during)/3+1)
	}
	for i, err := range during {
		mustCode(t, err, checkout.CodeCompleteInProgress)
		if de, _ := checkout.AsError(err); de == nil || de.Kind != checkout.KindConflict {
			t.Errorf("refusal %d during the charge = %v, want a conflict", i, err)
		}
	}
	if v.Order == nil || v.Session.State != checkout.StateCompleted {
		t.Fatalf("view = %+v", v)
	}
	if got := e.text(`SELECT order_id FROM payment_attempts WHERE checkout_session_id = $1 AND status = 'succeeded'`, sid); got != v.Order.ID {
		t.Errorf("attempt's order = %s, want %s", got, v.Order.ID)
	}
	if got := e.text(`SELECT a.idempotency_key || ' ' || o.payment_gateway FROM orders o
		JOIN payment_attempts a ON a.order_id = o.id AND a.psp_reference = o.payment_reference WHERE o.id = $1`, v.Order.ID); got != sid+" scripted" {
		t.Errorf("order's payment = %q, want the first attempt's key (the session id) through the scripted gateway", got)
	}
	if n := e.count(`SELECT count(*) FROM payment_attempts WHERE authentication IS NOT NULL`); n != 0 {
		t.Errorf("%d settled attempts keep their authentication", n)
	}
	if n := e.count(`SELECT stock_quantity FROM variants WHERE id = 'item_123'`); n != 3 {
		t.Errorf("stock = %d, want 3", n)
	}
	if psp.Charged() != 1 || e.gateway.ChargesFor(sid) != 1 {
		t.Errorf("charges = %d (counted %d), want 1", psp.Charged(), e.gateway.ChargesFor(sid))
	}
}

// A decline, a card that needs 3-D Secure and an unknown token each give back what the
// first phase took: the stock, the usage-limited redemption (another buyer can use the
// last one), and the session, open with today's refusal; a later attempt gets a key of
// its own.
func TestRefusedChargeReleasesEverything(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		token, code string
	}{
		{"tok_chargeDeclined", payment.CodePaymentDeclined},
		{"tok_threeDSecure2Required", checkout.CodeRequires3DS},
		{"tok_nobodyKnowsMe", payment.CodeTokenNotFound},
	} {
		t.Run(tc.token, func(t *testing.T) {
			t.Parallel()
			psp := &payment.ScriptedGateway{Decide: func(_ int, c payment.Charge) error {
				_, err := payment.MockGateway{}.Charge(context.Background(), c)
				return err
			}}
			e := outboxEnvWith(t, pgtest.MustPool(t), true, psp)
			ctx := context.Background()
			limit := 1
			if _, err := postgres.NewDiscounts(e.pool).Create(ctx, checkout.Discount{
				ID: "once", Code: "ONCE", Title: "$1 off", AmountOff: 100, Currency: "usd", UsageLimit: &limit, Stackable: true,
			}); err != nil {
				t.Fatal(err)
			}
			e.exec(`UPDATE variants SET stock_quantity = 5 WHERE id = 'item_123'`)
			sid := e.discountSession("ada@example.com", "once")
			const sessionRow = `SELECT row_to_json(s)::text FROM (SELECT state, buyer, order_notes, expires_at, updated_at FROM checkout_sessions WHERE id = $1) s`
			before := e.text(sessionRow, sid)

			other := e.discountSession("grace@example.com", "once")
			// While its charge is in flight, the session shows the discount it pays with:
			// its own reservation of the code's last use does not count against it; it
			// does against another buyer's session.
			var during, otherDuring checkout.View
			psp.InCharge = func(payment.Charge) {
				during, _ = e.store.GetSession(ctx, "", sid)
				otherDuring, _ = e.store.GetSession(ctx, "", other)
			}
			_, err := e.store.CompleteSession(withKey(ctx, "k1"), "", sid, checkout.Completion{Token: tc.token, Provider: "stripe", CarriesAuthentication: true})
			mustCode(t, err, tc.code)
			psp.InCharge = nil
			if d := during.Quote.Discounts; len(d.Applied) != 1 || len(d.Rejected) != 0 {
				t.Errorf("discounts shown during the charge = %+v, want the code applied", d)
			}
			if d := otherDuring.Quote.Discounts; len(d.Applied) != 0 || len(d.Rejected) != 1 || d.Rejected[0].Reason != checkout.ReasonUsageLimitReached {
				t.Errorf("another session's discounts during the charge = %+v, want the code's last use taken", d)
			}

			if n := e.count(`SELECT stock_quantity FROM variants WHERE id = 'item_123'`); n != 5 {
				t.Errorf("stock = %d, want 5", n)
			}
			if st := e.text(`SELECT status FROM payment_attempts WHERE checkout_session_id = $1`, sid); st != postgres.AttemptFailed {
				t.Errorf("attempt = %s, want failed", st)
			}
			if after := e.text(sessionRow, sid); after != before {
				t.Errorf("session after the refusal = %s, want %s", after, before)
			}
			if tc.code == payment.CodePaymentDeclined && e.text(`SELECT coalesce(payment_error, '') FROM checkout_sessions WHERE id = $1`, sid) == "" {
				t.Error("the decline is not shown on the session")
			}
			if tc.code == checkout.CodeRequires3DS && e.text(`SELECT coalesce(authentication_directory_server, '') FROM checkout_sessions WHERE id = $1`, sid) == "" {
				t.Error("the session does not show the 3-D Secure the PSP asked for")
			}
			// The redemption went back: another buyer redeems the one use left.
			if _, err := e.store.CompleteSession(ctx, "", other, visa); err != nil {
				t.Errorf("another buyer's completion with the released code: %v", err)
			}
			// The session pays with another card under a key of its own.
			v, err := e.store.CompleteSession(withKey(ctx, "k2"), "", sid, visa)
			if err == nil {
				t.Errorf("the code's last use was taken: the retry should be refused, got order %v", v.Order)
			}
			mustCode(t, err, string(checkout.ReasonUsageLimitReached))
			e.exec(`UPDATE discounts SET usage_limit = 10`)
			if _, err := e.store.CompleteSession(withKey(ctx, "k2"), "", sid, visa); err != nil {
				t.Fatal(err)
			}
			if key := e.text(`SELECT idempotency_key FROM payment_attempts WHERE checkout_session_id = $1 AND status = 'succeeded'`, sid); key != sid+":2" {
				t.Errorf("the second attempt's key = %s, want %s:2", key, sid)
			}
			if psp.Charged() != 2 {
				t.Errorf("PSP charges = %d, want 2 (the other buyer's and the retry)", psp.Charged())
			}
		})
	}
}

// An answer in doubt leaves the attempt pending, its stock taken and the session in
// progress; another key is refused while the attempt is fresh; a retry with the same
// key asks the PSP again with the same idempotency key and writes the order: one charge.
func TestChargeInDoubtThenRetryWithTheSameKey(t *testing.T) {
	t.Parallel()
	e, psp, sid, err := chargeInDoubt(t, 1)
	ctx := context.Background()
	if de, _ := checkout.AsError(err); de == nil || de.Kind != checkout.KindUnavailable {
		t.Errorf("in doubt = %v, want KindUnavailable (503, released idempotency claim)", err)
	}
	if st := e.text(`SELECT status FROM payment_attempts WHERE checkout_session_id = $1`, sid); st != postgres.AttemptPending {
		t.Errorf("attempt = %s, want pending", st)
	}
	if n := e.count(`SELECT count(*) FROM payment_attempts WHERE checkout_session_id = $1 AND last_error LIKE '%unavailable%'`, sid); n != 1 {
		t.Error("the attempt does not keep the PSP's last answer")
	}
	if st := e.text(`SELECT state FROM checkout_sessions WHERE id = $1`, sid); st != string(checkout.StateCompleteInProgress) {
		t.Errorf("session = %s, want complete_in_progress", st)
	}
	if n := e.count(`SELECT stock_quantity FROM variants WHERE id = 'item_123'`); n != 4 {
		t.Errorf("stock = %d, want 4 (held by the attempt)", n)
	}
	_, err = e.store.CompleteSession(withKey(ctx, "k2"), "", sid, visa)
	mustCode(t, err, checkout.CodeCompleteInProgress)

	v, err := e.store.CompleteSession(withKey(ctx, "k1"), "", sid, visa)
	if err != nil {
		t.Fatal(err)
	}
	if v.Order == nil {
		t.Fatal("no order")
	}
	if psp.Charged() != 1 || e.gateway.ChargesFor(sid) != 1 || e.count(`SELECT count(*) FROM orders`) != 1 {
		t.Errorf("PSP charges %d, counted %d, orders %d; want 1 each", psp.Charged(), e.gateway.ChargesFor(sid), e.count(`SELECT count(*) FROM orders`))
	}
	// Asked again once the order is written, the same key answers with it.
	again, err := e.store.CompleteSession(withKey(ctx, "k1"), "", sid, visa)
	if err != nil || again.Order == nil || again.Order.ID != v.Order.ID {
		t.Errorf("retry after completion = %+v, %v", again.Order, err)
	}
	_, err = e.store.CompleteSession(withKey(ctx, "k3"), "", sid, visa)
	mustCode(t, err, "checkout_session_completed")
}

// smallPool is a pool of at most conns connections on a new test database.
func smallPool(t *testing.T, conns int) *pgxpool.Pool {
	t.Helper()
	u, err := url.Parse(pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("pool_max_conns", fmt.Sprint(conns))
	u.RawQuery = q.Encode()
	pool, err := pgxpool.New(context.Background(), u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// With a PSP that takes 300 ms and a pool of 4 connections, 16 completions are all
// inside the PSP at once, and while they are, no connection is acquired: the charge
// holds no lock and no connection. Were the charge inside the transaction, at most 4
// could be in the PSP and each would hold a connection.
func TestSlowPSPHoldsNoConnection(t *testing.T) {
	t.Parallel()
	const n = 16
	pool := smallPool(t, 4)

	var mu sync.Mutex
	inside, most := 0, 0
	acquiredWhenAllInside := int32(-1)
	all := make(chan struct{})
	psp := &payment.ScriptedGateway{InCharge: func(payment.Charge) {
		mu.Lock()
		inside++
		most = max(most, inside)
		if inside == n {
			// Every completion is in the PSP: none may hold a connection.
			acquiredWhenAllInside = pool.Stat().AcquiredConns()
			close(all)
		}
		mu.Unlock()
		select {
		case <-all:
		case <-time.After(30 * time.Second): // fails below: not every completion got here
		}
		time.Sleep(300 * time.Millisecond)
		mu.Lock()
		inside--
		mu.Unlock()
	}}
	e := outboxEnvWith(t, pool, true, psp)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = e.readySession()
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() { _, errs[i] = e.store.CompleteSession(context.Background(), "", ids[i], visa) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("completion %d: %v", i, err)
		}
	}
	if most != n {
		t.Errorf("at most %d completions were inside the PSP at once, want all %d", most, n)
	}
	if acquiredWhenAllInside != 0 {
		t.Errorf("%d connections acquired while every completion was in the PSP, want 0", acquiredWhenAllInside)
	}
	if got := e.count(`SELECT count(*) FROM orders`); got != n || psp.Charged() != n {
		t.Errorf("orders %d, charges %d; want %d", got, psp.Charged(), n)
	}
}

// The PSP charged, then the process "died" before the order's transaction (the answer
// was lost). The recovery job, run once, asks again with the same key and writes the
// order once; a second run finds nothing; the agent's retry gets the order.
func TestRecoveryFinishesAChargedAttempt(t *testing.T) {
	t.Parallel()
	e, psp, sid, _ := chargeInDoubt(t, 2)
	ctx := context.Background()

	// A fresh attempt is not the job's: its completion may still be running.
	if res, err := e.store.RecoverPayments(ctx, 24*time.Hour); err != nil || len(res) != 0 {
		t.Fatalf("recovery of a fresh attempt = %+v, %v", res, err)
	}
	e.staleAttempts()
	res, err := e.store.RecoverPayments(ctx, 24*time.Hour)
	if err != nil || len(res) != 1 || res[0].Outcome != postgres.RecoveredCompleted || res[0].Err != nil {
		t.Fatalf("recovery = %+v, %v", res, err)
	}
	if res, _ := e.store.RecoverPayments(ctx, 24*time.Hour); len(res) != 0 {
		t.Errorf("second run = %+v, want nothing to do", res)
	}
	if got := e.count(`SELECT count(*) FROM orders WHERE checkout_session_id = $1 AND id = $2`, sid, res[0].OrderID); got != 1 {
		t.Errorf("orders with the attempt's id = %d, want 1", got)
	}
	if psp.Charged() != 1 || e.gateway.ChargesFor(sid) != 1 {
		t.Errorf("charges = %d (counted %d), want 1", psp.Charged(), e.gateway.ChargesFor(sid))
	}
	if n := e.count(`SELECT stock_quantity FROM variants WHERE id = 'item_123'`); n != 3 {
		t.Errorf("stock = %d, want 3", n)
	}
	if n := e.count(`SELECT count(*) FROM order_events WHERE order_id = $1`, res[0].OrderID); n != 1 {
		t.Errorf("order_create events = %d, want 1", n)
	}
	v, err := e.store.CompleteSession(withKey(ctx, "k1"), "", sid, visa)
	if err != nil || v.Order == nil || v.Order.ID != res[0].OrderID {
		t.Errorf("the agent's retry = %+v, %v; want the recovered order", v.Order, err)
	}
}

// Two recovery runs at once share the stale attempts without overlap: each attempt is
// charged once and its order written once.
func TestConcurrentRecoveryRunsFinishEachAttemptOnce(t *testing.T) {
	t.Parallel()
	psp := &payment.ScriptedGateway{Decide: payment.LoseAnswers(6)}
	e := outboxEnvWith(t, pgtest.MustPool(t), true, psp)
	ctx := context.Background()
	for range 6 {
		_, err := e.store.CompleteSession(ctx, "", e.readySession(), visa)
		mustCode(t, err, checkout.CodePaymentPending)
	}
	e.staleAttempts()
	var runs [2][]postgres.RecoveryResult
	var wg sync.WaitGroup
	for i := range runs {
		wg.Go(func() {
			var err error
			if runs[i], err = e.store.RecoverPayments(ctx, 24*time.Hour); err != nil {
				t.Errorf("run %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	seen := map[string]int{}
	for _, run := range runs {
		for _, r := range run {
			seen[r.AttemptID]++
			if r.Outcome != postgres.RecoveredCompleted {
				t.Errorf("attempt %s: %s (%v)", r.AttemptID, r.Outcome, r.Err)
			}
		}
	}
	if len(seen) != 6 {
		t.Errorf("%d attempts recovered, want 6", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("attempt %s worked by %d runs", id, n)
		}
	}
	if got := e.count(`SELECT count(*) FROM orders`); got != 6 || psp.Charged() != 6 || e.gateway.Charges() != 6 {
		t.Errorf("orders %d, PSP charges %d, counted %d; want 6", got, psp.Charged(), e.gateway.Charges())
	}
}

// A PSP that never answers: the job asks again every run until the horizon, then marks
// the attempt in_doubt and keeps its stock; completions are refused until the operator
// decides.
func TestRecoveryLeavesAnUnansweredAttemptInDoubt(t *testing.T) {
	t.Parallel()
	psp := &payment.ScriptedGateway{Decide: func(int, payment.Charge) error {
		return fmt.Errorf("connect: %w", payment.ErrUnavailable)
	}}
	e := outboxEnvWith(t, pgtest.MustPool(t), true, psp)
	ctx := context.Background()
	e.exec(`UPDATE variants SET stock_quantity = 5 WHERE id = 'item_123'`)
	sid := e.readySession("item_123", 1)
	_, err := e.store.CompleteSession(ctx, "", sid, visa)
	mustCode(t, err, checkout.CodePaymentPending)

	e.staleAttempts()
	res, err := e.store.RecoverPayments(ctx, 24*time.Hour)
	if err != nil || len(res) != 1 || res[0].Outcome != postgres.RecoveredPending || !errors.Is(res[0].Err, payment.ErrUnavailable) {
		t.Fatalf("recovery within the horizon = %+v, %v", res, err)
	}
	e.exec(`UPDATE payment_attempts SET created_at = created_at - interval '2 days', attempted_at = attempted_at - interval '1 hour'`)
	res, err = e.store.RecoverPayments(ctx, 24*time.Hour)
	if err != nil || len(res) != 1 || res[0].Outcome != postgres.RecoveredInDoubt {
		t.Fatalf("recovery past the horizon = %+v, %v", res, err)
	}
	if st := e.text(`SELECT status FROM payment_attempts WHERE checkout_session_id = $1`, sid); st != postgres.AttemptInDoubt {
		t.Errorf("attempt = %s, want in_doubt", st)
	}
	if n := e.count(`SELECT stock_quantity FROM variants WHERE id = 'item_123'`); n != 4 {
		t.Errorf("stock = %d, want 4 (kept for the operator)", n)
	}
	e.exec(`UPDATE payment_attempts SET attempted_at = attempted_at - interval '1 hour'`)
	if res, _ := e.store.RecoverPayments(ctx, 24*time.Hour); len(res) != 0 {
		t.Errorf("the job still works an in_doubt attempt: %+v", res)
	}
	_, err = e.store.CompleteSession(ctx, "", sid, visa)
	mustCode(t, err, checkout.CodeCompleteInProgress)
	list, err := e.orders.PaymentAttempts(ctx, postgres.AttemptInDoubt, 10)
	if err != nil || len(list) != 1 || list[0].SessionID != sid || list[0].IdempotencyKey != sid || list[0].LastError == "" {
		t.Fatalf("operator's listing = %+v, %v", list, err)
	}
	// The operator finds no charge at the PSP and releases the attempt.
	if err := e.orders.ReleaseAttempt(ctx, list[0].ID); err != nil {
		t.Fatal(err)
	}
	if n := e.count(`SELECT stock_quantity FROM variants WHERE id = 'item_123'`); n != 5 {
		t.Errorf("stock after the release = %d, want 5", n)
	}
	if st := e.text(`SELECT s.state || ' ' || a.status FROM checkout_sessions s JOIN payment_attempts a ON a.checkout_session_id = s.id WHERE s.id = $1`, sid); st != "open released" {
		t.Errorf("session and attempt after the release = %s, want open released", st)
	}
	mustCode(t, e.orders.ReleaseAttempt(ctx, list[0].ID), "payment_attempt_not_in_doubt")
}

// A refund of a PSP-charged order goes through the gateway with the refund's id as
// idempotency key: an answer in doubt leaves it pending (and blocks other refunds), the
// retry with the same Idempotency-Key refunds once, and a refusal records nothing.
func TestRefundThroughTheGatewayOncePerRefund(t *testing.T) {
	t.Parallel()
	psp := &payment.ScriptedGateway{DecideRefund: func(n int, r payment.Refund) error {
		switch {
		case n == 1:
			return payment.ErrLostAnswer
		case r.Amount == 999:
			return payment.DeclinedError("The charge was disputed.")
		}
		return nil
	}}
	e := outboxEnvWith(t, pgtest.MustPool(t), true, psp)
	ctx := context.Background()
	ord := e.mustOrder()
	req := checkout.RefundRequest{Type: checkout.RefundOriginalPayment, Amount: 500}

	_, err := e.orders.RefundLines(withKey(ctx, "r1"), ord.ID, req)
	mustCode(t, err, checkout.CodeRefundPending)
	if st := e.text(`SELECT status FROM refunds WHERE order_id = $1`, ord.ID); st != "pending" {
		t.Errorf("refund = %s, want pending", st)
	}
	_, err = e.orders.RefundLines(withKey(ctx, "r2"), ord.ID, req)
	mustCode(t, err, checkout.CodeRefundInProgress)

	got, err := e.orders.RefundLines(withKey(ctx, "r1"), ord.ID, req)
	if err != nil || got.Refunded() != 500 {
		t.Fatalf("retry = %+v, %v", got, err)
	}
	if psp.Refunded() != 1 || e.count(`SELECT count(*) FROM refunds WHERE order_id = $1 AND status = 'succeeded' AND psp_reference IS NOT NULL`, ord.ID) != 1 {
		t.Errorf("PSP refunds = %d, refunds rows: want 1 succeeded", psp.Refunded())
	}
	_, err = e.orders.RefundLines(ctx, ord.ID, checkout.RefundRequest{Type: checkout.RefundOriginalPayment, Amount: 999})
	mustCode(t, err, payment.CodePaymentDeclined)
	if n := e.count(`SELECT count(*) FROM refunds WHERE order_id = $1`, ord.ID); n != 1 {
		t.Errorf("refunds = %d after a refused one, want 1", n)
	}
	// Store credit is the merchant's own: recorded, never sent.
	if _, err := e.orders.Refund(ctx, ord.ID, checkout.RefundStoreCredit, 100); err != nil {
		t.Fatal(err)
	}
	if psp.Refunded() != 1 {
		t.Errorf("PSP refunds = %d after store credit, want 1", psp.Refunded())
	}
}

// A refund through the gateway reads the order's payment, records the refund pending in
// a pipelinedTx of two round trips (the order locked and read with its pending refund;
// the refund's rows and COMMIT), asks the PSP, then settles it in another of two (the
// refund marked succeeded and the order read after it; the event, the record and
// COMMIT): five round trips, as many for two lines as for one. Statement by
// statement it was about thirty. A refund the PSP refuses is removed, with its lines,
// in one round trip after the PSP's answer: four in all (it was eight).
func TestARefundThroughTheGatewayTakesFiveRoundTrips(t *testing.T) {
	t.Parallel()
	trips := &pgtest.RoundTrips{}
	const refused = 1 // the amount the PSP refuses
	e := outboxEnvWith(t, pgtest.MustPoolTraced(t, trips), true, &payment.ScriptedGateway{DecideRefund: func(_ int, r payment.Refund) error {
		if r.Amount == refused {
			return payment.DeclinedError("The charge was disputed.")
		}
		return nil
	}})
	ctx := context.Background()
	var sentFor [][]string
	for _, pairs := range [][]any{{"item_123", 2}, {"item_123", 2, "item_456", 1}} {
		ord := e.mustOrder(pairs...)
		var lines []checkout.LineQuantity
		for _, l := range ord.Lines {
			lines = append(lines, checkout.LineQuantity{LineID: l.ID, Quantity: 1})
		}
		var got *checkout.Order
		var err error
		n, sent := trips.Measure(func() {
			got, err = e.orders.RefundLines(withKey(ctx, "refund-"+ord.ID), ord.ID, checkout.RefundRequest{Type: checkout.RefundOriginalPayment, Lines: lines})
		})
		if err != nil {
			t.Fatalf("refund of %d lines: %v", len(lines), err)
		}
		if len(got.Refunds) != 1 || len(got.Refunds[0].Lines) != len(lines) || got.Refunded() == 0 {
			t.Errorf("refund of %d lines: the order shows refunds %+v", len(lines), got.Refunds)
		}
		if st := e.text(`SELECT status FROM refunds WHERE order_id = $1`, ord.ID); st != "succeeded" {
			t.Errorf("refund of %d lines is %s, want succeeded", len(lines), st)
		}
		t.Logf("refund of %d lines: %d round trips\n\t%s", len(lines), n, strings.Join(sent, "\n\t"))
		if n > 5 {
			t.Errorf("refund of %d lines: %d round trips, want at most 5", len(lines), n)
		}
		sentFor = append(sentFor, sent)
	}
	if !slices.Equal(sentFor[0], sentFor[1]) {
		t.Errorf("a refund of two lines sends more than one of one:\n\t%s\nagainst\n\t%s",
			strings.Join(sentFor[1], "\n\t"), strings.Join(sentFor[0], "\n\t"))
	}

	ord := e.mustOrder("item_123", 2)
	var err error
	n, sent := trips.Measure(func() {
		_, err = e.orders.RefundLines(withKey(ctx, "refused-"+ord.ID), ord.ID, checkout.RefundRequest{
			Type: checkout.RefundOriginalPayment, Lines: []checkout.LineQuantity{{LineID: ord.Lines[0].ID, Quantity: 1}}, Amount: refused,
		})
	})
	mustCode(t, err, payment.CodePaymentDeclined)
	t.Logf("refused refund: %d round trips\n\t%s", n, strings.Join(sent, "\n\t"))
	if n > 4 {
		t.Errorf("refused refund: %d round trips, want at most 4", n)
	}
	if left := e.count(`SELECT count(*) FROM refunds WHERE order_id = $1`, ord.ID) +
		e.count(`SELECT count(*) FROM refund_lines l JOIN refunds r ON r.id = l.refund_id WHERE r.order_id = $1`, ord.ID); left != 0 {
		t.Errorf("a refused refund left %d rows of refunds and refund lines, want none", left)
	}
}

// A session whose charge was refused keeps its failed attempt; once the session is
// canceled and past its retention, the sweeper deletes both.
func TestRetentionDeletesTheAttemptsOfCanceledSessions(t *testing.T) {
	t.Parallel()
	e := outboxEnvWith(t, pgtest.MustPool(t), true, &payment.ScriptedGateway{Decide: func(int, payment.Charge) error {
		return payment.DeclinedError("Your card was declined.")
	}})
	ctx := context.Background()
	sid := e.readySession()
	_, err := e.store.CompleteSession(ctx, "", sid, visa)
	mustCode(t, err, payment.CodePaymentDeclined)
	if _, err := e.store.CancelSession(ctx, "", sid, nil); err != nil {
		t.Fatal(err)
	}
	e.exec(`UPDATE checkout_sessions SET created_at = now() - interval '801 hours', updated_at = now() - interval '800 hours' WHERE id = $1`, sid)
	p, err := postgres.NewSweeper(e.pool).Purge(ctx, postgres.Retention{CanceledSessions: 720 * time.Hour, OrderEvents: 720 * time.Hour})
	if err != nil || p.Sessions != 1 {
		t.Fatalf("purge = %+v, %v; want the canceled session deleted", p, err)
	}
	if n := e.count(`SELECT count(*) FROM payment_attempts`); n != 0 {
		t.Errorf("attempts left = %d, want 0", n)
	}
}

// An error the gateway did not classify (a bad key, a parameter) is the operator's to
// fix: the completion fails as an internal error (500, logged), and the attempt stays
// pending with its stock, since nothing says the PSP did not charge.
func TestUnclassifiedGatewayErrorLeavesTheAttemptPending(t *testing.T) {
	t.Parallel()
	e := outboxEnvWith(t, pgtest.MustPool(t), true, &payment.ScriptedGateway{Decide: func(int, payment.Charge) error {
		return errors.New("stripe: invalid API key")
	}})
	sid := e.readySession()
	_, err := e.store.CompleteSession(context.Background(), "", sid, visa)
	if err == nil {
		t.Fatal("the completion succeeded")
	}
	if de, ok := checkout.AsError(err); ok {
		t.Errorf("error = %v (%s), want an internal error", err, de.Code)
	}
	if st := e.text(`SELECT a.status || ' ' || s.state || ' ' || coalesce(a.last_error, '') FROM payment_attempts a
		JOIN checkout_sessions s ON s.id = a.checkout_session_id WHERE s.id = $1`, sid); st != "pending complete_in_progress stripe: invalid API key" {
		t.Errorf("attempt and session = %q", st)
	}
}

// An attempt sent to another gateway (PAYMENT_GATEWAY changed meanwhile) is never asked
// of this one: it stays pending for the operator.
func TestRecoveryAsksOnlyTheGatewayOfTheAttempt(t *testing.T) {
	t.Parallel()
	e, _, sid, _ := chargeInDoubt(t, 1)
	asked := e.gateway.Attempts()
	e.exec(`UPDATE payment_attempts SET gateway = 'another_psp'`)
	e.staleAttempts()
	res, err := e.store.RecoverPayments(context.Background(), 24*time.Hour)
	if err != nil || len(res) != 1 || res[0].Outcome != postgres.RecoveredPending || res[0].Err == nil {
		t.Fatalf("recovery = %+v, %v", res, err)
	}
	if e.gateway.Attempts() != asked {
		t.Errorf("this server's gateway was asked about another gateway's attempt")
	}
	if st := e.text(`SELECT status FROM payment_attempts WHERE checkout_session_id = $1`, sid); st != postgres.AttemptPending {
		t.Errorf("attempt = %s, want pending", st)
	}
}
