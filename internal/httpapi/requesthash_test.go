package httpapi

import (
	"net/http/httptest"
	"testing"

	"github.com/agentic-commerce/agentic-commerce-server/internal/idempotency"
	"github.com/agentic-commerce/agentic-commerce-server/internal/payment"
)

// redactedSlowHash is the definition of a delegate_payment body's canonical hash: the
// body decoded, its card secrets replaced (redactCard) and the value hashed.
func redactedSlowHash(t *testing.T, body string, fp payment.Fingerprinter) (string, bool) {
	t.Helper()
	v, ok := idempotency.Decode([]byte(body))
	if !ok {
		return "", false
	}
	redactCard(v, fp)
	h, err := idempotency.HashValue(v)
	return h, err == nil
}

// delegateHashBodies are delegate_payment bodies: the fast path must take the first
// ones (agents send them), and hash each one it takes as the definition does.
var delegateHashBodies = []struct {
	body string
	fast bool
}{
	{`{"payment_method":{"type":"card","card_number_type":"fpan","number":"4242424242424242","exp_month":"11","exp_year":"2026","cvc":"223","display_card_funding_type":"credit","metadata":{}},"allowance":{"reason":"one_time","max_amount":2000,"currency":"usd","checkout_session_id":"cs_1","merchant_id":"m","expires_at":"2026-12-31T00:00:00Z"},"risk_signals":[{"type":"card_testing","score":10,"action":"authorized"}],"metadata":{"source":"agent"}}`, true},
	{`{"Payment_Method":{"NUMBER":"4242424242424242","Cvc":"1","cryptogram":"abc"},"payment_method":{"number":4242,"cvc":{"a":[1,2]},"cryptogram":null}}`, true},
	{`{"payment_method":"not an object","number":"4242424242424242"}`, true},
	{`{"payment_method":{"number":"4242\u00424242"}}`, false},       // an escape: the slow path decodes it
	{`{"payment_method":{"number":"4242","number":"5555"}}`, false}, // a duplicate
	{`[{"payment_method":{"number":"4242"}}]`, true},                // not an object at the top: nothing to replace
}

func TestDelegateRequestHashFastPathIsTheRedactedHash(t *testing.T) {
	t.Parallel()
	for _, fp := range []payment.Fingerprinter{payment.NewFingerprinter([]byte("test-key")), payment.NewFingerprinter(nil)} {
		s := &Server{fingerprint: fp}
		redaction := idempotency.Redaction{Parent: "payment_method", Fields: cardSecrets,
			Replace: func(secret string) string { return "fp:" + fp.Fingerprint(secret) }}
		for _, c := range delegateHashBodies {
			fast, ok := idempotency.RedactedSum([]byte(c.body), redaction)
			if ok != c.fast {
				t.Errorf("fast path took %q: %v, want %v", c.body, ok, c.fast)
			}
			want, wantOK := redactedSlowHash(t, c.body, fp)
			if ok && (!wantOK || fast != want) {
				t.Errorf("fast hash of %q = %s, the redacted value hashes to %s (%v)", c.body, fast, want, wantOK)
			}
			// requestHash gives the keyed form of the same digest, whichever path it took.
			got, _ := s.requestHash(httptest.NewRequest("POST", delegatePaymentPath, nil), []byte(c.body))
			if wantOK && got != s.keyedHash(want) {
				t.Errorf("requestHash(%q) = %s, want %s", c.body, got, s.keyedHash(want))
			}
		}
	}
}

// FuzzDelegateRequestHash holds the fast path of a delegate_payment body's hash to its
// definition on any body.
func FuzzDelegateRequestHash(f *testing.F) {
	for _, c := range delegateHashBodies {
		f.Add([]byte(c.body))
	}
	fp := payment.NewFingerprinter([]byte("fuzz-key"))
	redaction := idempotency.Redaction{Parent: "payment_method", Fields: cardSecrets,
		Replace: func(secret string) string { return "fp:" + fp.Fingerprint(secret) }}
	f.Fuzz(func(t *testing.T, body []byte) {
		fast, ok := idempotency.RedactedSum(body, redaction)
		if !ok {
			return
		}
		want, wantOK := redactedSlowHash(t, string(body), fp)
		if !wantOK || fast != want {
			t.Fatalf("fast hash of %q = %s, the redacted value hashes to %s (%v)", body, fast, want, wantOK)
		}
	})
}
