// Package acpspec lets tests validate JSON against the official ACP JSON Schemas. The
// schemas are read from $ACP_SPEC_DIR, or from shared/acp-spec beside the repository;
// tests skip with a clear message when neither exists.
package acpspec

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Dir returns the directory holding the spec versions, or "" when none is found.
func Dir() string {
	if d := os.Getenv("ACP_SPEC_DIR"); d != "" {
		return d
	}
	wd, err := os.Getwd()
	if err != nil {
		return ""
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			spec := filepath.Join(dir, "..", "shared", "acp-spec")
			if _, err := os.Stat(spec); err == nil {
				return spec
			}
			return ""
		}
		if filepath.Dir(dir) == dir {
			return ""
		}
	}
}

// Validator validates documents against one schema bundle.
type Validator struct {
	compiler *jsonschema.Compiler
	id       string
	mu       sync.Mutex
	cache    map[string]*jsonschema.Schema
}

// MustLoad loads version's bundle file (e.g. "2025-09-29", "schema.agentic_checkout.json"),
// skipping the test when the spec is not on this machine.
func MustLoad(tb testing.TB, version, file string) *Validator {
	tb.Helper()
	dir := Dir()
	if dir == "" {
		tb.Skip("ACP spec not found: set ACP_SPEC_DIR or put shared/acp-spec beside the repository")
	}
	raw, err := os.ReadFile(filepath.Join(dir, version, "json-schema", file))
	if err != nil {
		tb.Fatalf("read schema: %v", err)
	}
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
