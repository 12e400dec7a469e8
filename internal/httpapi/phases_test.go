package httpapi_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/payment"
)

// A PSP charge whose answer is lost answers 503 payment_pending with Retry-After, and
// the session shows each version's in-progress status and refuses changes and other
// completions (409). The 503 is not recorded against the Idempotency-Key: the retry with
// the same key asks the PSP again with the same idempotency key and answers 200 with
// the order, charged once.
func TestCompletionInDoubtRetriesWithTheSameKey(t *testing.T) {
	t.Parallel()
	forEachVersion(t, func(t *testing.T, e *testEnv) {
		t.Parallel()
		psp := &payment.ScriptedGateway{Decide: payment.LoseAnswers(1)}
		e.gateway = &payment.CountingGateway{Gateway: psp}
		e.server = e.startServer(time.Minute)
		sid := e.mustCreate(e.createBody(fields{items: items("item_123", 1), buyer: buyer, address: address}))["id"].(string)
		path := "/checkout_sessions/" + sid
		e.mustSession(e.do(http.MethodPost, path, e.updateBody(fields{items: items("item_123", 1), option: "standard_shipping"})), http.StatusOK)
		pay := paymentData("tok_visa")
		if e.is0417() {
			pay = map[string]any{"payment_data": map[string]any{"handler_id": "card_psp_test",
				"instrument": map[string]any{"type": "card", "credential": map[string]any{"type": "spt", "token": "tok_visa"}}}}
		}
		key := newKey()

		r := e.do(http.MethodPost, path+"/complete", pay, "Idempotency-Key", key)
		e.mustError(r, http.StatusServiceUnavailable, "payment_pending", "")
		if r.header.Get("Retry-After") == "" {
			t.Error("no Retry-After on payment_pending")
		}
		want := "in_progress"
		if e.is0417() {
			want = "complete_in_progress"
		}
		if s := e.mustSession(e.do(http.MethodGet, path, nil), http.StatusOK); s["status"] != want {
			t.Errorf("status while the charge is in doubt = %v, want %s", s["status"], want)
		}
		e.mustError(e.do(http.MethodPost, path, e.updateBody(fields{items: items("item_123", 2)})), http.StatusConflict, "checkout_session_complete_in_progress", "")
		e.mustError(e.do(http.MethodPost, path+"/cancel", nil), http.StatusConflict, "checkout_session_complete_in_progress", "")
		e.mustError(e.do(http.MethodPost, path+"/complete", pay, "Idempotency-Key", newKey()),
			http.StatusConflict, "checkout_session_complete_in_progress", "")

		done := e.mustCompleted(e.do(http.MethodPost, path+"/complete", pay, "Idempotency-Key", key))
		if done["status"] != "completed" {
			t.Errorf("status after the retry = %v", done["status"])
		}
		if psp.Charged() != 1 || e.gateway.ChargesFor(sid) != 1 {
			t.Errorf("PSP charges %d, counted %d; want 1", psp.Charged(), e.gateway.ChargesFor(sid))
		}
		if n := dbInt(e, `SELECT count(*) FROM orders WHERE checkout_session_id = $1`, sid); n != 1 {
			t.Errorf("orders = %d, want 1", n)
		}
	})
}
