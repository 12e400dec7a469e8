package testkit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"

	"github.com/agentic-commerce/agentic-commerce-server/internal/acpspec"
)

// The webhook request body has no JSON Schema bundle: it is defined in the webhook
// OpenAPI document, whose 2026-04-17 EventDataOrder refers to the checkout OpenAPI
// document's Order. Both are loaded as resources under these names, so the relative
// $ref resolves as it does upstream.
const (
	webhookOAS  = "openapi.agentic_checkout_webhook.yaml"
	checkoutOAS = "openapi.agentic_checkout.yaml"
)

var (
	webhookSchemasMu sync.Mutex
	webhookSchemas   = map[string]*jsonschema.Schema{}
)

// WebhookEventSchema returns the WebhookEvent schema of version (the order webhook's
// request body), compiled from the vendored OpenAPI documents with formats asserted,
// failing tb when it cannot be built. It is compiled once per version and process.
func WebhookEventSchema(tb testing.TB, version string) *jsonschema.Schema {
	tb.Helper()
	webhookSchemasMu.Lock()
	defer webhookSchemasMu.Unlock()
	if sch, ok := webhookSchemas[version]; ok {
		return sch
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	base := "file:///acp/" + version + "/openapi/"
	for _, name := range []string{webhookOAS, checkoutOAS} {
		doc, err := yamlAsJSON(acpspec.ReadFile(tb, path.Join(version, "openapi", name)))
		if err != nil {
			tb.Fatalf("testkit: %s %s: %v", version, name, err)
		}
		if err := c.AddResource(base+name, doc); err != nil {
			tb.Fatalf("testkit: add %s %s: %v", version, name, err)
		}
	}
	sch, err := c.Compile(base + webhookOAS + "#/components/schemas/WebhookEvent")
	if err != nil {
		tb.Fatalf("testkit: compile %s WebhookEvent: %v", version, err)
	}
	webhookSchemas[version] = sch
	return sch
}

// yamlAsJSON is a YAML document as the JSON value the schema compiler takes.
func yamlAsJSON(raw []byte) (any, error) {
	var doc any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	asJSON, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("as JSON: %w", err)
	}
	return jsonschema.UnmarshalJSON(bytes.NewReader(asJSON))
}

// ValidateWebhookEvent reports whether body is a valid WebhookEvent of s.Version.
func (s *SchemaSet) ValidateWebhookEvent(body []byte) error {
	s.tb.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	if err := WebhookEventSchema(s.tb, s.Version).Validate(inst); err != nil {
		return fmt.Errorf("WebhookEvent does not validate: %w\nbody: %s", err, body)
	}
	return nil
}

// WebhookEvent fails the test unless body is a valid WebhookEvent of s.Version.
func (s *SchemaSet) WebhookEvent(body []byte) {
	s.tb.Helper()
	if err := s.ValidateWebhookEvent(body); err != nil {
		s.tb.Error(err)
	}
}
