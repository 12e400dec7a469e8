// Package payment is the payment side of checkout: delegated card credentials turned into
// single-use vault tokens (the PSP's Delegate Payment endpoint), the rules that bind a
// token to one purchase, and the gateway that charges any other PSP token. It holds no
// SQL and no HTTP; the full card number and the CVC never leave Delegation.
package payment

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"strings"
	"sync"
)

// luhnValid reports whether digits passes the Luhn check used by card networks.
func luhnValid(digits string) bool {
	sum := 0
	double := false
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// brandOf names the card network from the number's leading digits (IIN ranges), for
// display and reporting only; unknown ranges are "unknown".
func brandOf(number string) string {
	prefix := func(n int) int {
		v := 0
		for i := 0; i < n && i < len(number); i++ {
			v = v*10 + int(number[i]-'0')
		}
		return v
	}
	switch {
	case strings.HasPrefix(number, "4"):
		return "visa"
	case prefix(2) >= 51 && prefix(2) <= 55, prefix(4) >= 2221 && prefix(4) <= 2720:
		return "mastercard"
	case strings.HasPrefix(number, "34"), strings.HasPrefix(number, "37"):
		return "amex"
	case strings.HasPrefix(number, "6011"), strings.HasPrefix(number, "65"), prefix(3) >= 644 && prefix(3) <= 649:
		return "discover"
	case prefix(4) >= 3528 && prefix(4) <= 3589:
		return "jcb"
	case strings.HasPrefix(number, "36"), strings.HasPrefix(number, "300"), strings.HasPrefix(number, "305"):
		return "diners"
	}
	return "unknown"
}

// Fingerprinter derives a stable, keyed fingerprint of a card number, so the same card
// can be recognised across tokens without storing the number. Without a key, no
// fingerprint is made: an unkeyed hash of a card number can be reversed by brute force.
// The server also keys every idempotent request's hash with it, so it runs on every
// write: it reuses its HMACs, whose Reset restores the key's precomputed state, rather
// than hashing the key's pads again in hmac.New at each call.
type Fingerprinter struct {
	macs *sync.Pool // of HMAC-SHA256 hash.Hash keyed with the key, Reset; nil without a key
}

// NewFingerprinter returns a Fingerprinter keyed with key; an empty key disables it.
func NewFingerprinter(key []byte) Fingerprinter {
	if len(key) == 0 {
		return Fingerprinter{}
	}
	key = bytes.Clone(key)
	return Fingerprinter{macs: &sync.Pool{New: func() any { return hmac.New(sha256.New, key) }}}
}

// Fingerprint returns hex(HMAC-SHA256(key, number)), or "" when no key is configured.
func (f Fingerprinter) Fingerprint(number string) string {
	if f.macs == nil {
		return ""
	}
	m := f.macs.Get().(hash.Hash)
	_, _ = io.WriteString(m, number)
	var sum [sha256.Size]byte
	fingerprint := hex.EncodeToString(m.Sum(sum[:0]))
	m.Reset()
	f.macs.Put(m)
	return fingerprint
}
