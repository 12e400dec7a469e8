// Package wiretest checks generated ACP wire types against the official examples and
// JSON Schemas of their version, for the tests of the internal/acp packages.
package wiretest

import (
	"bytes"
	"encoding/json"
	"maps"
	"path"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/agentic-commerce/agentic-commerce-server/internal/acpspec"
)

// Type is the wire type of an example: the JSON Schema definition it must validate
// against, and a round trip through the Go type.
type Type struct {
	def       string
	roundTrip func(t *testing.T, raw []byte) []byte
}

// Of returns the wire type T, which must validate against the definition def.
func Of[T any](def string) *Type {
	return &Type{def: def, roundTrip: func(t *testing.T, raw []byte) []byte {
		t.Helper()
		var v T
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("decode into %T: %v\nbody: %s", v, err, raw)
		}
		out, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("encode %T: %v", v, err)
		}
		return out
	}}
}

// Examples checks every top-level example of file (a path below acpspec's spec/, e.g.
// "2026-04-17/examples.delegate_payment.json"). want maps each example to its wire
// type, or to nil for an example of another API (skipped); an example missing from
// want, or listed and gone, fails the test. Each one must validate against the official
// JSON Schema, decode into its type with unknown fields refused, and re-encode to the
// same JSON, which validates again. invalid lists, with why, the examples that fail the
// official schema themselves (checklist I-39): they must still fail it, and are not
// decoded.
func Examples(t *testing.T, schema *acpspec.Validator, file string, want map[string]*Type, invalid map[string]string) {
	t.Helper()
	var all map[string]json.RawMessage
	if err := json.Unmarshal(acpspec.ReadFile(t, file), &all); err != nil {
		t.Fatalf("parse %s: %v", file, err)
	}
	for name := range all {
		if _, ok := want[name]; !ok {
			t.Errorf("%s: example %q is new; map it to its wire type", file, name)
		}
	}
	base := strings.TrimSuffix(path.Base(file), ".json")
	for _, name := range slices.Sorted(maps.Keys(want)) {
		wt, raw := want[name], all[name]
		if raw == nil {
			t.Errorf("%s: example %q is gone", file, name)
			continue
		}
		if wt == nil {
			continue
		}
		t.Run(base+"/"+name, func(t *testing.T) {
			err := schema.Validate(wt.def, raw)
			if why, ok := invalid[name]; ok {
				if err == nil {
					t.Fatalf("the example now validates (it was invalid: %s); take it off the invalid list", why)
				}
				return
			}
			if err != nil {
				t.Fatalf("the official example does not validate: %v", err)
			}
			out := wt.roundTrip(t, raw)
			if !sameJSON(t, raw, out) {
				t.Errorf("re-encoded body differs from the example\nexample: %s\nencoded: %s", compact(t, raw), out)
			}
			if err := schema.Validate(wt.def, out); err != nil {
				t.Error(err)
			}
		})
	}
}

func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(va, vb)
}

func compact(t *testing.T, raw []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
