package stripegw_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
)

// testKey is the secret key every test gateway signs with.
const testKey = "sk_test_51AbCdEfGhIjKlMnOpQrStUv"

// request is one request the fake Stripe received.
type request struct {
	Method, Path string
	Header       http.Header
	Form         url.Values
}

// answer is what the fake Stripe says to one request: a status and a JSON body, or
// nothing at all (dropConnection).
type answer struct {
	status int
	body   string
}

// fakeStripe is a local Stripe API: it records every request and answers each with the
// next of its answers (the last one again once they run out).
type fakeStripe struct {
	*httptest.Server
	mu       sync.Mutex
	answers  []answer
	requests []request
}

// newFakeStripe starts a fake Stripe answering with answers, stopped with the test.
func newFakeStripe(t *testing.T, answers ...answer) *fakeStripe {
	t.Helper()
	f := &fakeStripe{answers: answers}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeStripe) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	form, err := url.ParseQuery(string(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.requests = append(f.requests, request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Form: form})
	a := f.answers[min(len(f.requests), len(f.answers))-1]
	f.mu.Unlock()
	if a.status == dropConnection {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			_ = conn.Close()
		}
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Request-Id", "req_test")
	w.WriteHeader(a.status)
	_, _ = io.WriteString(w, a.body)
}

// received returns the requests so far.
func (f *fakeStripe) received() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]request(nil), f.requests...)
}

// dropConnection as an answer's status closes the connection without a response.
const dropConnection = -1

// Stripe's answers the tests use, as the API writes them.
const (
	succeededIntent = `{"id": "pi_succeeded", "object": "payment_intent", "status": "succeeded", "amount": 3718, "currency": "usd"}`
	actionIntent    = `{"id": "pi_action", "object": "payment_intent", "status": "requires_action",
		"payment_method": {"id": "pm_1", "object": "payment_method", "type": "card", "card": {"brand": "mastercard", "last4": "4444"}}}`
	processingIntent = `{"id": "pi_processing", "object": "payment_intent", "status": "processing"}`
	captureIntent    = `{"id": "pi_capture", "object": "payment_intent", "status": "requires_capture"}`
	cardDeclined     = `{"error": {"type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds",
		"message": "Your card has insufficient funds.", "payment_intent": {"id": "pi_declined", "object": "payment_intent", "status": "requires_payment_method"}}}`
	authenticationDeclined = `{"error": {"type": "card_error", "code": "authentication_required", "decline_code": "authentication_required",
		"message": "Your card was declined. This transaction requires authentication.",
		"payment_method": {"id": "pm_2", "object": "payment_method", "type": "card", "card": {"brand": "visa"}}}}`
	serverError = `{"error": {"type": "api_error", "message": "An unknown error occurred"}}`
	rateLimited = `{"error": {"type": "invalid_request_error", "code": "rate_limit", "message": "Too many requests."}}`
	refunded    = `{"id": "re_1", "object": "refund", "status": "succeeded", "amount": 500, "currency": "usd", "payment_intent": "pi_succeeded"}`
)
