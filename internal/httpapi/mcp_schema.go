package httpapi

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentic-commerce/agentic-commerce-server/internal/acpspec/spec"
)

// mcpTool is one tool of the binding as the OpenRPC document defines it, with the
// arguments it takes (name → required).
type mcpTool struct {
	tool   *mcp.Tool
	params map[string]bool
}

// openRPC is what the server reads of the binding's OpenRPC document.
type openRPC struct {
	Components struct {
		Schemas map[string]any `json:"schemas"`
	} `json:"components"`
	Methods []struct {
		Name        string `json:"name"`
		Summary     string `json:"summary"`
		Description string `json:"description"`
		Params      []struct {
			Name        string `json:"name"`
			Required    bool   `json:"required"`
			Description string `json:"description"`
			Schema      any    `json:"schema"`
		} `json:"params"`
		Result struct {
			Description string `json:"description"`
			Schema      any    `json:"schema"`
		} `json:"result"`
	} `json:"methods"`
}

// mcpTools builds the tools of version's binding from its OpenRPC document and JSON
// Schema bundle, as the binding asks: every $ref resolved into the tool's own $defs, so
// a client needs no other document. The schemas are the spec's own, so they follow a
// refresh of the vendored files; each tool carries only the definitions it reaches.
func mcpTools(version string) ([]mcpTool, error) {
	var doc openRPC
	if err := readSpecJSON(path.Join(version, "openrpc", "openrpc.agentic_checkout.json"), &doc); err != nil {
		return nil, err
	}
	var bundle struct {
		Defs map[string]any `json:"$defs"`
	}
	if err := readSpecJSON(path.Join(version, "json-schema", "schema.agentic_checkout.json"), &bundle); err != nil {
		return nil, err
	}
	// The OpenRPC document refers to the bundle by a relative file path and to its own
	// components; both become references into the tool's $defs.
	const bundleRef = "../json-schema/schema.agentic_checkout.json#/$defs/"
	const componentRef = "#/components/schemas/"
	var resolve func(v any) (any, error)
	resolve = func(v any) (any, error) {
		switch n := v.(type) {
		case map[string]any:
			out := make(map[string]any, len(n))
			for k, c := range n {
				r, err := resolve(c)
				if err != nil {
					return nil, err
				}
				out[k] = r
			}
			ref, _ := n["$ref"].(string)
			switch {
			case strings.HasPrefix(ref, bundleRef):
				out["$ref"] = "#/$defs/" + strings.TrimPrefix(ref, bundleRef)
			case strings.HasPrefix(ref, componentRef):
				comp, ok := doc.Components.Schemas[strings.TrimPrefix(ref, componentRef)]
				if !ok {
					return nil, fmt.Errorf("mcp tools: unknown component %s", ref)
				}
				delete(out, "$ref")
				inlined, err := resolve(comp)
				if err != nil {
					return nil, err
				}
				maps.Copy(out, inlined.(map[string]any))
			case ref != "" && !strings.HasPrefix(ref, "#/$defs/"):
				return nil, fmt.Errorf("mcp tools: unresolvable $ref %s", ref)
			}
			return out, nil
		case []any:
			out := make([]any, len(n))
			for i, c := range n {
				r, err := resolve(c)
				if err != nil {
					return nil, err
				}
				out[i] = r
			}
			return out, nil
		}
		return v, nil
	}

	var tools []mcpTool
	for _, m := range doc.Methods {
		if _, ok := mcpOperations[m.Name]; !ok {
			return nil, fmt.Errorf("mcp tools: the binding's %s has no operation", m.Name)
		}
		props := map[string]any{}
		required := []string{}
		params := map[string]bool{}
		for _, p := range m.Params {
			sch, err := resolve(p.Schema)
			if err != nil {
				return nil, err
			}
			if obj, ok := sch.(map[string]any); ok && p.Description != "" {
				obj["description"] = p.Description
			}
			props[p.Name] = sch
			params[p.Name] = p.Required
			if p.Required {
				required = append(required, p.Name)
			}
		}
		input := map[string]any{"type": "object", "properties": props, "required": required, "additionalProperties": false}
		if err := withDefs(input, bundle.Defs); err != nil {
			return nil, err
		}
		result, err := resolve(m.Result.Schema)
		if err != nil {
			return nil, err
		}
		output, ok := result.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("mcp tools: %s: the result schema is not an object", m.Name)
		}
		// MCP asks for an object schema; the session definitions are objects without
		// saying so at the top.
		output["type"] = "object"
		if m.Result.Description != "" {
			output["description"] = m.Result.Description
		}
		if err := withDefs(output, bundle.Defs); err != nil {
			return nil, err
		}
		stripExamples(input, false)
		stripExamples(output, false)
		tools = append(tools, mcpTool{
			tool: &mcp.Tool{
				Name: m.Name, Title: m.Summary, Description: m.Description,
				InputSchema: input, OutputSchema: output,
				Annotations: &mcp.ToolAnnotations{ReadOnlyHint: m.Name == "get_checkout_session", IdempotentHint: true, OpenWorldHint: new(false)},
			},
			params: params,
		})
	}
	if len(tools) != len(mcpOperations) {
		return nil, fmt.Errorf("mcp tools: the binding defines %d tools, %d are served", len(tools), len(mcpOperations))
	}
	return tools, nil
}

// withDefs adds to schema the definitions of defs it reaches, directly or through
// other definitions.
func withDefs(schema map[string]any, defs map[string]any) error {
	reached := map[string]any{}
	var walk func(v any) error
	walk = func(v any) error {
		switch n := v.(type) {
		case map[string]any:
			if ref, ok := n["$ref"].(string); ok {
				name, local := strings.CutPrefix(ref, "#/$defs/")
				if !local {
					return fmt.Errorf("mcp tools: unresolved $ref %s", ref)
				}
				if _, seen := reached[name]; !seen {
					def, ok := defs[name]
					if !ok {
						return fmt.Errorf("mcp tools: no definition %s", name)
					}
					reached[name] = def
					if err := walk(def); err != nil {
						return err
					}
				}
			}
			for _, k := range slices.Sorted(maps.Keys(n)) {
				if err := walk(n[k]); err != nil {
					return err
				}
			}
		case []any:
			for _, c := range n {
				if err := walk(c); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(schema); err != nil {
		return err
	}
	if len(reached) > 0 {
		schema["$defs"] = reached
	}
	return nil
}

// stripExamples removes the example annotations from a schema. They validate nothing,
// a tool's schemas are read by the model on every turn, and many of the bundle's
// examples fail their own schema (checklist I-39): an agent should not copy them.
// names says that the keys of v are names (of properties or definitions), not keywords.
func stripExamples(v any, names bool) {
	switch n := v.(type) {
	case map[string]any:
		for k, c := range n {
			if !names && (k == "example" || k == "examples") {
				delete(n, k)
				continue
			}
			stripExamples(c, !names && (k == "properties" || k == "$defs" || k == "patternProperties" || k == "dependentSchemas"))
		}
	case []any:
		for _, c := range n {
			stripExamples(c, false)
		}
	}
}

// readSpecJSON decodes one vendored spec file.
func readSpecJSON(name string, dst any) error {
	raw, err := fs.ReadFile(spec.FS(), name)
	if err != nil {
		return fmt.Errorf("mcp tools: %w", err)
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return fmt.Errorf("mcp tools: %s: %w", name, err)
	}
	return nil
}
