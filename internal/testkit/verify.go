package testkit

import (
	"crypto/subtle"
	"strconv"
	"strings"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/webhook"
)

// Verify is what a webhook receiver does with a Merchant-Signature header
// ("t=<unix>,v1=<hex>"): it takes the signing time t and compares the header, in
// constant time, with the production webhook.Signature of body at t. It returns t and
// whether the signature is valid; callers check how fresh t must be.
func Verify(secret []byte, header string, body []byte) (time.Time, bool) {
	ts, _, ok := strings.Cut(header, ",")
	if !ok || !strings.HasPrefix(ts, "t=") {
		return time.Time{}, false
	}
	sec, err := strconv.ParseInt(strings.TrimPrefix(ts, "t="), 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	at := time.Unix(sec, 0)
	want := webhook.Signature(secret, at, body)
	return at, subtle.ConstantTimeCompare([]byte(header), []byte(want)) == 1
}

// VerifyFresh is Verify that also wants the signature made within skew of now.
func VerifyFresh(secret []byte, header string, body []byte, skew time.Duration) bool {
	at, ok := Verify(secret, header, body)
	return ok && time.Since(at).Abs() < skew
}
