package idempotency

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"testing"
)

func rawHash(b string) string {
	sum := sha256.Sum256([]byte(b))
	return hex.EncodeToString(sum[:])
}

func TestHashIgnoresKeyOrderAndWhitespace(t *testing.T) {
	t.Parallel()
	base := Hash([]byte(`{"items":[{"id":"item_123","quantity":2}],"buyer":{"email":"a@b.c","first_name":"Ada"}}`))
	for _, body := range []string{
		`{"buyer":{"first_name":"Ada","email":"a@b.c"},"items":[{"quantity":2,"id":"item_123"}]}`,
		"{\n  \"items\" : [ { \"id\" : \"item_123\", \"quantity\" : 2 } ],\n\t\"buyer\": {\"email\":\"a@b.c\",\"first_name\":\"Ada\"}\n}\n",
		"  \r\n" + `{"items":[{"id":"item_123","quantity":2}],"buyer":{"email":"a@b.c","first_name":"Ada"}}` + "\n\n",
		// Escapes decode to the same string.
		`{"items":[{"id":"item\u005f123","quantity":2}],"buyer":{"email":"a@b.c","first_name":"\u0041da"}}`,
	} {
		if got := Hash([]byte(body)); got != base {
			t.Errorf("Hash(%q) = %s, want the hash of the canonical body %s", body, got, base)
		}
	}
	if len(base) != 64 {
		t.Errorf("hash %q is not hex SHA-256", base)
	}
}

func TestHashTellsApartWhatMeansSomethingElse(t *testing.T) {
	t.Parallel()
	pairs := []struct{ name, a, b string }{
		{"null vs absent", `{"a":1,"b":null}`, `{"a":1}`},
		{"null vs empty object", `{"b":null}`, `{"b":{}}`},
		{"string vs number", `{"a":"1"}`, `{"a":1}`},
		// json.Number keeps the literal: 1 and 1.0 (and 1e0, 100 and 1e2) are different
		// bodies although they are the same JSON number. A client that re-serialises its
		// numbers differently on a retry gets a conflict, never a wrong replay.
		{"1 vs 1.0", `{"a":1}`, `{"a":1.0}`},
		{"1 vs 1e0", `{"a":1}`, `{"a":1e0}`},
		{"100 vs 1e2", `{"a":100}`, `{"a":1e2}`},
		{"array order", `{"a":[1,2]}`, `{"a":[2,1]}`},
		{"case of key", `{"items":[]}`, `{"Items":[]}`},
		{"empty body vs empty object", ``, `{}`},
		{"empty object vs null", `{}`, `null`},
	}
	for _, p := range pairs {
		if Hash([]byte(p.a)) == Hash([]byte(p.b)) {
			t.Errorf("%s: Hash(%q) == Hash(%q)", p.name, p.a, p.b)
		}
	}
}

func TestHashKeepsBigNumbersExact(t *testing.T) {
	t.Parallel()
	// Through float64 both would be 9007199254740992.
	a, b := `{"max_amount":9007199254740993}`, `{"max_amount":9007199254740992}`
	if Hash([]byte(a)) == Hash([]byte(b)) {
		t.Errorf("numbers beyond float64 precision hash equal")
	}
}

func TestHashOfNonJSONIsTheRawBytes(t *testing.T) {
	t.Parallel()
	for _, body := range []string{
		"",
		"not json",
		`{"a":`,         // truncated
		`{"a":1} x`,     // trailing garbage
		`{"a":1} {}`,    // two values
		`{"a":1} "s"`,   // two values
		`{"a":1,}`,      // syntax error
		"\xff\xfe{}",    // not UTF-8 before the value
		`{"a":1} 2`,     // trailing number
		`{"a":1}` + "x", // garbage right after the value
	} {
		if got, want := Hash([]byte(body)), rawHash(body); got != want {
			t.Errorf("Hash(%q) = %s, want the raw SHA-256 %s", body, got, want)
		}
	}
	// The raw bytes count: whitespace around garbage is not normalised.
	if Hash([]byte(`{"a":1} x`)) == Hash([]byte(`{"a":1}  x`)) {
		t.Errorf("two different non-JSON bodies hash equal")
	}
	// A non-JSON body never hashes like the JSON value it starts with.
	if Hash([]byte(`{"a":1} x`)) == Hash([]byte(`{"a":1}`)) {
		t.Errorf("trailing garbage ignored")
	}
}

// Regression (found on 740cfa0, fixed in c6d1c95 by Decode): json.Decoder.More reports
// false when the next byte is '}' or ']', so a body with a stray closing bracket after
// the value hashed as the valid value before it. The handler refuses such a body (400
// invalid_json), but under a used key it was replayed as if it were the same request
// (see TestIdempotencyMalformedBodyIsNotAReplay in internal/httpapi).
func TestHashOfTrailingClosingBracketIsRaw(t *testing.T) {
	t.Parallel()
	for _, body := range []string{`{"a":1}}`, `{"a":1}]`, `{"a":1} ]]]`, "[1]\n}"} {
		if got, want := Hash([]byte(body)), rawHash(body); got != want {
			t.Errorf("Hash(%q) = %s, want the raw SHA-256 %s (it is not one JSON value)", body, got, want)
		}
	}
}

func TestHashOfScalarsAndArrays(t *testing.T) {
	t.Parallel()
	if Hash([]byte(" null ")) != Hash([]byte("null")) {
		t.Errorf("whitespace around null matters")
	}
	if Hash([]byte("[ 1 , 2 ]")) != Hash([]byte("[1,2]")) {
		t.Errorf("whitespace in an array matters")
	}
	if Hash([]byte(`"a"`)) == Hash([]byte(`a`)) {
		t.Errorf("a JSON string and raw text hash equal")
	}
}

func TestClaimContextAndRecording(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	if FromContext(ctx) != nil {
		t.Fatal("empty context carries a claim")
	}
	c := &Claim{Key: Key{Caller: "a", Method: "POST", Path: "/x", Key: "k"}, ClaimID: "clm_1"}
	got := FromContext(NewContext(ctx, c))
	if got != c {
		t.Fatalf("FromContext = %v, want %v", got, c)
	}
	if _, ok := c.Recorded(); ok {
		t.Fatal("a fresh claim has a recorded response")
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			c.Committed(Response{Status: 201, Body: []byte(`{"id":"cs_1"}`)})
			_, _ = c.Recorded()
		})
	}
	wg.Wait()
	r, ok := c.Recorded()
	if !ok || r.Status != 201 || string(r.Body) != `{"id":"cs_1"}` || r.Gzipped {
		t.Errorf("Recorded = %+v %v", r, ok)
	}
}

func TestSetEncoderChecksTheResultType(t *testing.T) {
	var c Claim
	SetEncoder(&c, func(n int) (int, []byte, error) { return 201, []byte{byte(n)}, nil })
	if status, body, err := c.Encode(7); err != nil || status != 201 || string(body) != "\x07" {
		t.Fatalf("Encode(7) = %d, %q, %v", status, body, err)
	}
	if _, _, err := c.Encode("seven"); err == nil {
		t.Fatal("Encode of a string by an int encoder: no error")
	}
}

func TestRenderRecordsTheBodyAsPacked(t *testing.T) {
	var c Claim
	SetEncoder(&c, func(n int) (int, []byte, error) { return 201, []byte{byte(n)}, nil })
	if r, err := c.Render(7); err != nil || r.Status != 201 || string(r.Body) != "\x07" || r.Gzipped {
		t.Fatalf("Render(7) without Pack = %+v, %v", r, err)
	}
	c.Pack = func(body []byte) ([]byte, bool) { return append([]byte("packed:"), body...), true }
	if r, err := c.Render(7); err != nil || r.Status != 201 || string(r.Body) != "packed:\x07" || !r.Gzipped {
		t.Fatalf("Render(7) with Pack = %+v, %v", r, err)
	}
	if _, err := c.Render("seven"); err == nil {
		t.Fatal("Render of a string by an int encoder: no error")
	}
}
