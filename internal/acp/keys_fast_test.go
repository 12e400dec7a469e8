package acp

import (
	"strings"
	"testing"
)

// cleanBodies are bodies checkKeys finds nothing to refuse in, as agents send them: the
// fast path must take every one, or the CPU it saves is not saved.
var cleanBodies = []string{
	`{"items":[{"id":"a","quantity":2},{"id":"b","quantity":3}],"payment_method":{"number":"4242424242424242","cvc":"123","metadata":{"a":"b"}}}`,
	"{\n  \"note\": \"line\\nbreak \\u00e9 \\\"quoted\\\" José\",\n  \"free\": {\"any\": [1, -2.5e+3, true, false, null, {\"x\": {}}]},\n  \"Untagged\": \"\"\n}",
	`{"meta":{"k1":{"id":"x"},"k2":{"quantity":0}},"raw":{"anything":{"goes":[{"here":1,"here2":2}]}},"nested":[[{"id":"a"}],[]]}`,
	`{"self":{"self":{"items":[]}},"hidden_by_outer":1}`,
	`{}`,
	`  {"items":null}  trailing data is DecodeStrict's to refuse`,
}

func TestKeysCleanTakesCleanBodies(t *testing.T) {
	t.Parallel()
	root := shapeFor(typeOfTestRequest)
	for _, body := range cleanBodies {
		if !keysClean([]byte(body), root) {
			t.Errorf("fast path refused %q", body)
		}
		if err := walkKeys([]byte(body), root); err != nil {
			t.Errorf("the walk refuses %q: %v", body, err)
		}
	}
}

func TestKeysCleanLeavesTheRestToTheWalk(t *testing.T) {
	t.Parallel()
	root := shapeFor(typeOfTestRequest)
	for _, body := range []string{
		`{"items":[],"items":[]}`,                           // duplicate
		`{"payment_method":{"metadata":{"k":"a","k":"b"}}}`, // duplicate in a map
		`{"free":{"a":1,"a":2}}`,                            // duplicate under any
		`{"ITEMS":[]}`,                                      // a case variant
		`{"unknown":1}`,                                     // unknown
		`{"items":[{"id":"a","price":1}]}`,                  // unknown, nested
		`{"it\u0065ms":[]}`,                                 // an escaped key
		`{"é":1}`,                                           // a key that is not ASCII
		"{\"note\":\"\xff\"}",                               // invalid UTF-8
		"{\"note\":\"tab\there\"}",                          // a raw control character
		`{"note":"\x"}`, `{"note":"\u12"}`,                  // bad escapes
		`{"free":01}`, `{"free":1.}`, `{"free":-}`, `{"free":+1}`, `{"free":tru}`, // bad literals
		`{"items":[1,]}`, `{"items":1,}`, `{"items"}`, `{"items" 1}`, `{"items":1`, `{`, // bad syntax
		`{"free":` + strings.Repeat("[", maxCleanDepth) + strings.Repeat("]", maxCleanDepth) + `}`,
		"",
	} {
		if keysClean([]byte(body), root) {
			t.Errorf("fast path took %q", body)
		}
	}
}

// FuzzKeysCleanAgrees holds the fast path to the token walk: a body it takes is one the
// walk finds nothing wrong with.
func FuzzKeysCleanAgrees(f *testing.F) {
	for _, body := range cleanBodies {
		f.Add([]byte(body))
	}
	f.Add([]byte(`{"items":[],"items":[]}`))
	f.Add([]byte(`{"payment_method":{"Number":"1"}}`))
	root := shapeFor(typeOfTestRequest)
	f.Fuzz(func(t *testing.T, body []byte) {
		if keysClean(body, root) {
			if err := walkKeys(body, root); err != nil {
				t.Fatalf("fast path took %q, which the walk refuses: %v", body, err)
			}
		}
	})
}

func BenchmarkCheckKeys(b *testing.B) {
	body := []byte(cleanBodies[0])
	root := shapeFor(typeOfTestRequest)
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := checkKeys(body, typeOfTestRequest); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("walk", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := walkKeys(body, root); err != nil {
				b.Fatal(err)
			}
		}
	})
}
