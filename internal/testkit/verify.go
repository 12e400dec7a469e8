package testkit

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"
)

// Verify is what a webhook receiver does with a Merchant-Signature header
// ("t=<unix>,v1=<hex>"): it takes the signing time t and compares v1, in constant time,
// with HMAC-SHA256(secret, t + "." + body) as the 2026-04-17 webhook spec defines it. It
// is written from the spec, not with the server's webhook.Signature, so a wrong
// signature in production fails the tests (and testkit imports nothing of the server:
// the version packages' own tests use it). It returns t and whether the signature is
// valid; callers check how fresh t must be.
func Verify(secret []byte, header string, body []byte) (time.Time, bool) {
	ts, sig, ok := strings.Cut(header, ",")
	if !ok || !strings.HasPrefix(ts, "t=") || !strings.HasPrefix(sig, "v1=") {
		return time.Time{}, false
	}
	sec, err := strconv.ParseInt(strings.TrimPrefix(ts, "t="), 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	got, err := hex.DecodeString(strings.TrimPrefix(sig, "v1="))
	if err != nil {
		return time.Time{}, false
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(strings.TrimPrefix(ts, "t=") + "."))
	m.Write(body)
	return time.Unix(sec, 0), hmac.Equal(got, m.Sum(nil))
}

// VerifyFresh is Verify that also wants the signature made within skew of now.
func VerifyFresh(secret []byte, header string, body []byte, skew time.Duration) bool {
	at, ok := Verify(secret, header, body)
	return ok && time.Since(at).Abs() < skew
}
