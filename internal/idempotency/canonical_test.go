package idempotency

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
)

// marshalCanonical is the definition of the canonical form: the body decoded as Decode
// does and marshalled back. The fast path must write exactly these bytes.
func marshalCanonical(body []byte) ([]byte, bool) {
	v, ok := Decode(body)
	if !ok {
		return nil, false
	}
	b, err := json.Marshal(v)
	return b, err == nil
}

// fastCanonical runs the fast path alone.
func fastCanonical(body []byte) ([]byte, bool) {
	var w canonicalWriter
	ok := appendCanonical(&w, body)
	return w.out, ok
}

// slowHash is Hash without its fast path.
func slowHash(body []byte) string {
	if b, ok := marshalCanonical(body); ok {
		sum := sha256.Sum256(b)
		return hex.EncodeToString(sum[:])
	}
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// agentBodies are bodies as agents send them: the fast path must take every one, or
// the CPU it saves is not saved.
var agentBodies = []string{
	`{"items":[{"id":"item_123","quantity":1}],"fulfillment_address":{"name":"John Doe","line_one":"1234 Chat Road","city":"San Francisco","state":"CA","country":"US","postal_code":"94131"}}`,
	`{"buyer":{"first_name":"Ada","last_name":"Lovelace","email":"ada@example.com"},"fulfillment_option_id":"standard_shipping"}`,
	`{"payment_data":{"token":"vt_01J8Z3WXYZ9ABC","provider":"stripe"}}`,
	"{\n  \"items\": [\n    {\"id\": \"item_456\", \"quantity\": 2},\n    {\"id\": \"item_123\", \"quantity\": 10}\n  ],\n  \"buyer\": {\"first_name\": \"José\", \"last_name\": \"Müller\", \"email\": \"jm@example.com\", \"phone_number\": \"+15552003434\"}\n}\n",
	`{"amount":{"total":-0.5e-3,"n":[0,1.25,-7,3E+2,1e-9]},"ok":true,"no":false,"none":null,"e":{},"a":[],"nested":[[[]],{"z":{"y":{"x":1}}}]}`,
	`{"z":1,"a":{"d":1,"c":[{"b":2,"a":1}],"b":"x"},"m":"emoji 😀 and ünïcödé"}`,
	`"just a string"`,
	` 42 `,
}

func TestCanonicalFastPathTakesAgentBodies(t *testing.T) {
	t.Parallel()
	for _, body := range agentBodies {
		got, ok := fastCanonical([]byte(body))
		if !ok {
			t.Errorf("fast path refused %q", body)
			continue
		}
		want, _ := marshalCanonical([]byte(body))
		if !bytes.Equal(got, want) {
			t.Errorf("fast path of %q:\n got %s\nwant %s", body, got, want)
		}
		if Hash([]byte(body)) != slowHash([]byte(body)) {
			t.Errorf("Hash(%q) changed", body)
		}
	}
}

func TestCanonicalFastPathLeavesTheRestToMarshal(t *testing.T) {
	t.Parallel()
	for _, body := range []string{
		`{"a":"line\nbreak"}`,                                                 // an escape
		`{"a":"\u0041"}`,                                                      // an escape Marshal would not write
		`{"a":"<b>&"}`,                                                        // HTML characters Marshal escapes
		"{\"a\":\"\u2028\"}",                                                  // escaped by Marshal
		"{\"a\":\"\xff\"}",                                                    // invalid UTF-8
		"{\"a\":\"tab\there\"}",                                               // a raw control character: not JSON
		`{"é":1}`,                                                             // a key that is not ASCII
		`{"a":1,"b":2,"a":3}`,                                                 // a duplicate key, Decode keeps the last
		`{"b":1,"a":2,"b":3}`,                                                 // a duplicate key found by the sort
		`{"a":1} x`,                                                           // trailing data
		`{"a":1}{}`,                                                           // two values
		`{"a":01}`, `{"a":1.}`, `{"a":-}`, `{"a":.5}`, `{"a":1e}`, `{"a":+1}`, // bad numbers
		`{"a":tru}`, `{"a":nulll}`, `[1,]`, `{"a":1,}`, `{,}`, `{"a"}`, `{"a" 1}`, // bad syntax
		"\ufeff{}", // a byte order mark
		strings.Repeat("[", maxCanonicalDepth+1) + strings.Repeat("]", maxCanonicalDepth+1),
		"",
	} {
		if _, ok := fastCanonical([]byte(body)); ok {
			t.Errorf("fast path took %q", body)
		}
		if Hash([]byte(body)) != slowHash([]byte(body)) {
			t.Errorf("Hash(%q) changed", body)
		}
	}
}

// FuzzCanonicalIsMarshal holds the fast path to the definition: whatever it accepts is
// a body Decode accepts, written exactly as Marshal writes it.
func FuzzCanonicalIsMarshal(f *testing.F) {
	for _, body := range agentBodies {
		f.Add([]byte(body))
	}
	f.Add([]byte(`{"a":1,"a":2}`))
	f.Add([]byte(`{"<&>":"\u2028\u2029","é":"😀"}`))
	f.Add([]byte(`{"a":1.0,"b":1e2,"c":-0,"d":123456789012345678901234567890}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		got, ok := fastCanonical(body)
		if !ok {
			return
		}
		want, wantOK := marshalCanonical(body)
		if !wantOK {
			t.Fatalf("fast path took %q, which Decode refuses", body)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("fast path of %q:\n got %s\nwant %s", body, got, want)
		}
	})
}

func BenchmarkHash(b *testing.B) {
	body := []byte(agentBodies[0])
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			Hash(body)
		}
	})
	b.Run("marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			slowHash(body)
		}
	})
}
