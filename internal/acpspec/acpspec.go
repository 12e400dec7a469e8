// Package acpspec gives tests the official ACP specification files and validates JSON
// against its JSON Schemas. The files are vendored under spec/ and embedded, so every
// clone has them: a missing file is a compile error or a test failure, never a skip.
package acpspec

import (
	"bytes"
	"fmt"
	"io/fs"
	"net/url"
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
// failing the test when it cannot be read or compiled. refs are the bundles of the same
// version that file's $refs name by file name (e.g. "schema.agentic_checkout.json" for
// the cart bundle): each is registered under the URL such a $ref resolves to against
// file's $id, a URL no bundle declares as its own (checklist I-37).
func MustLoad(tb testing.TB, version, file string, refs ...string) *Validator {
	tb.Helper()
	doc, id := loadBundle(tb, version, file)
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource(id, doc); err != nil {
		tb.Fatalf("add schema: %v", err)
	}
	for _, ref := range refs {
		base, err := url.Parse(id)
		if err != nil {
			tb.Fatalf("schema %s: $id %q: %v", file, id, err)
		}
		refDoc, _ := loadBundle(tb, version, ref)
		// The bundle keeps its own $id, which would make it a second resource at that
		// URL; as a $ref target it is only known by the URL resolved from file's $id.
		delete(refDoc.(map[string]any), "$id")
		if err := c.AddResource(base.ResolveReference(&url.URL{Path: ref}).String(), refDoc); err != nil {
			tb.Fatalf("add schema %s: %v", ref, err)
		}
	}
	return &Validator{compiler: c, id: id, cache: map[string]*jsonschema.Schema{}}
}

// loadBundle reads and parses version's bundle file, patched for 2020-12, with its $id.
func loadBundle(tb testing.TB, version, file string) (any, string) {
	tb.Helper()
	raw := ReadFile(tb, path.Join(version, "json-schema", file))
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		tb.Fatalf("parse schema %s: %v", file, err)
	}
	patchDraft4(doc)
	root, ok := doc.(map[string]any)
	if !ok {
		tb.Fatalf("schema %s is not a JSON object", file)
	}
	id, _ := root["$id"].(string)
	return doc, id
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
