// Package acpspec gives tests the official ACP specification files and validates JSON
// against its JSON Schemas. The files are vendored under spec/ and embedded, so every
// clone has them: a missing file is a compile error or a test failure, never a skip.
package acpspec

import (
	"bytes"
	"fmt"
	"io/fs"
	"path"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/agentic-commerce/agentic-commerce-server/internal/acpspec/spec"
)

// FS returns the vendored spec (package spec embeds it), rooted at the folder holding
// the version directories (e.g. "2025-09-29/json-schema/schema.agentic_checkout.json").
func FS() fs.FS { return spec.FS() }

// ReadFile returns one vendored file, by its path below spec/ (e.g.
// "2026-04-17/openapi/openapi.agentic_checkout_webhook.yaml"), failing the test when
// it is not there.
func ReadFile(tb testing.TB, name string) []byte {
	tb.Helper()
	raw, err := fs.ReadFile(FS(), name)
	if err != nil {
		tb.Fatalf("acpspec: %v", err)
	}
	return raw
}

// Validator validates documents against one schema bundle.
type Validator struct {
	compiler *jsonschema.Compiler
	id       string
	mu       sync.Mutex
	cache    map[string]*jsonschema.Schema
}

// MustLoad loads version's bundle file (e.g. "2025-09-29", "schema.agentic_checkout.json"),
// failing the test when it cannot be read or compiled.
func MustLoad(tb testing.TB, version, file string) *Validator {
	tb.Helper()
	raw := ReadFile(tb, path.Join(version, "json-schema", file))
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		tb.Fatalf("parse schema: %v", err)
	}
	patchDraft4(doc)
	root, _ := doc.(map[string]any)
	id, _ := root["$id"].(string)
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource(id, doc); err != nil {
		tb.Fatalf("add schema: %v", err)
	}
	return &Validator{compiler: c, id: id, cache: map[string]*jsonschema.Schema{}}
}

// Validate checks body against the definition def (e.g. "CheckoutSession").
func (v *Validator) Validate(def string, body []byte) error {
	v.mu.Lock()
	sch, ok := v.cache[def]
	if !ok {
		var err error
		sch, err = v.compiler.Compile(v.id + "#/$defs/" + def)
		if err != nil {
			v.mu.Unlock()
			return fmt.Errorf("compile %s: %w", def, err)
		}
		v.cache[def] = sch
	}
	v.mu.Unlock()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	if err := sch.Validate(inst); err != nil {
		return fmt.Errorf("%s does not validate: %w\nbody: %s", def, err, body)
	}
	return nil
}

// MustValidate fails the test when body does not validate against def.
func (v *Validator) MustValidate(tb testing.TB, def string, body []byte) {
	tb.Helper()
	if err := v.Validate(def, body); err != nil {
		tb.Error(err)
	}
}

// patchDraft4 rewrites the draft-4 boolean form `"exclusiveMinimum": true` (with
// "minimum") into the 2020-12 numeric form, which the 2025-09-29 bundle needs to compile
// (checklist I-38).
func patchDraft4(v any) {
	switch n := v.(type) {
	case map[string]any:
		if b, ok := n["exclusiveMinimum"].(bool); ok {
			if min, ok := n["minimum"]; ok && b {
				n["exclusiveMinimum"] = min
				delete(n, "minimum")
			} else {
				delete(n, "exclusiveMinimum")
			}
		}
		for _, c := range n {
			patchDraft4(c)
		}
	case []any:
		for _, c := range n {
			patchDraft4(c)
		}
	}
}
