package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/agentic-commerce/agentic-commerce-server/internal/acp"
	"github.com/agentic-commerce/agentic-commerce-server/internal/acpspec"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
)

// compileToolSchema compiles a schema the server gives MCP clients, as a client would:
// on its own, every $ref inside it.
func compileToolSchema(t *testing.T, name string, schema any) *jsonschema.Schema {
	t.Helper()
	raw, err := json.Marshal(schema)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	url := "urn:tool:" + name
	if err := c.AddResource(url, doc); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	sch, err := c.Compile(url)
	if err != nil {
		t.Fatalf("%s: the schema does not compile on its own: %v", name, err)
	}
	return sch
}

func TestMCPToolSchemas(t *testing.T) {
	tools, err := mcpTools("2026-04-17")
	if err != nil {
		t.Fatal(err)
	}
	var examples map[string]struct {
		Params struct {
			Name      string
			Arguments json.RawMessage
		}
	}
	if err := json.Unmarshal(acpspec.ReadFile(t, "2026-04-17/examples.mcp.agentic_checkout.json"), &examples); err != nil {
		t.Fatal(err)
	}
	// The examples whose arguments pass their schema, the others failing it (I-39: the
	// update example nests its option under "shipping", the complete example's
	// instrument has a bare token).
	valid := map[string]bool{
		"create_checkout_session": true, "get_checkout_session": true, "cancel_checkout_session": true,
		"update_checkout_session": false, "complete_checkout_session": false,
	}
	required := map[string][]string{
		"create_checkout_session": {"meta", "payload"}, "get_checkout_session": {"id", "meta"},
		"update_checkout_session": {"id", "meta", "payload"}, "complete_checkout_session": {"id", "meta", "payload"},
		"cancel_checkout_session": {"id", "meta"},
	}
	var names []string
	for _, tool := range tools {
		name := tool.tool.Name
		names = append(names, name)
		in := compileToolSchema(t, name+"/input", tool.tool.InputSchema)
		compileToolSchema(t, name+"/output", tool.tool.OutputSchema)

		got := slices.Clone(tool.tool.InputSchema.(map[string]any)["required"].([]string))
		slices.Sort(got)
		if !slices.Equal(got, required[name]) {
			t.Errorf("%s: required %v, want %v", name, got, required[name])
		}
		ex, ok := examples[name+"_request"]
		if !ok || ex.Params.Name != name {
			t.Fatalf("no example request of %s", name)
		}
		args, err := jsonschema.UnmarshalJSON(strings.NewReader(string(ex.Params.Arguments)))
		if err != nil {
			t.Fatal(err)
		}
		if err := in.Validate(args); (err == nil) != valid[name] {
			t.Errorf("%s: the example's arguments validate: %v, want %v (%v)", name, err == nil, valid[name], err)
		}
		// Arguments the tool does not take are refused, as the server refuses them.
		if err := in.Validate(map[string]any{"meta": map[string]any{"api_version": "2026-04-17"}, "id": "cs_1", "extra": true}); err == nil {
			t.Errorf("%s: an unknown argument validates", name)
		}
		// Each tool carries the definitions it reaches, not the whole bundle.
		out := tool.tool.OutputSchema.(map[string]any)
		defs := out["$defs"].(map[string]any)
		result := strings.TrimPrefix(out["$ref"].(string), "#/$defs/")
		if _, ok := defs[result]; !ok || len(defs) > 70 {
			t.Errorf("%s: output $defs has %d definitions (%s: %v)", name, len(defs), result, ok)
		}
		for _, s := range []any{tool.tool.InputSchema, tool.tool.OutputSchema} {
			raw, _ := json.Marshal(s)
			if strings.Contains(string(raw), "../json-schema") || strings.Contains(string(raw), "#/components/") {
				t.Errorf("%s: an unresolved $ref is left: %.200s", name, fmt.Sprint(s))
			}
			if strings.Contains(string(raw), `"example":`) || strings.Contains(string(raw), `"examples":`) {
				t.Errorf("%s: an example annotation is left", name)
			}
		}
	}
	slices.Sort(names)
	if len(names) != len(mcpOperations) {
		t.Errorf("tools %v, operations %d", names, len(mcpOperations))
	}
}

// TestStripExamples: the example keywords go, a property named "example" stays.
func TestStripExamples(t *testing.T) {
	schema := map[string]any{
		"example": map[string]any{"id": "x"},
		"properties": map[string]any{
			"example":  map[string]any{"type": "string", "examples": []any{"a"}},
			"examples": map[string]any{"type": "array", "items": map[string]any{"example": "b"}},
		},
		"$defs": map[string]any{"example": map[string]any{"type": "object"}},
	}
	stripExamples(schema, false)
	got, _ := json.Marshal(schema)
	want := `{"$defs":{"example":{"type":"object"}},"properties":{"example":{"type":"string"},"examples":{"items":{},"type":"array"}}}`
	if string(got) != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
}

// panickingSessions is a session service whose GetSession panics: a bug below the tool.
type panickingSessions struct{ checkout.SessionService }

func (panickingSessions) GetSession(context.Context, string, string) (checkout.View, error) {
	panic("bug below the tool")
}

// TestMCPToolPanic: the SDK runs tools outside the HTTP handler's goroutine, so a panic
// there must be caught by the tool handler: the call is a logged processing_error and
// the server keeps serving.
func TestMCPToolPanic(t *testing.T) {
	var logs strings.Builder
	var mu sync.Mutex
	logger := slog.New(slog.NewJSONHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	}), nil))
	srv := httptest.NewServer(New(Config{MaxBodyBytes: 1 << 20}, Deps{Sessions: panickingSessions{}, Logger: logger}))
	t.Cleanup(srv.Close)
	for range 2 {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+mcpPath, strings.NewReader(
			`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_checkout_session","arguments":{"meta":{"api_version":"2026-04-17"},"id":"cs_1"}}}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var msg struct {
			Error struct {
				Code int
				Data struct{ Type, Code string }
			}
		}
		err = json.NewDecoder(resp.Body).Decode(&msg)
		_ = resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || msg.Error.Code != mcpErrorCode ||
			msg.Error.Data.Type != acp.TypeProcessingError || msg.Error.Data.Code != "internal_error" {
			t.Fatalf("status %d, %+v, %v", resp.StatusCode, msg, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "bug below the tool") || !strings.Contains(logs.String(), `"msg":"mcp tool call"`) {
		t.Errorf("the panic is not logged:\n%s", logs.String())
	}
}

// slowSessions is a session service whose GetSession waits for its context to end, as
// a query on a stuck database does.
type slowSessions struct{ checkout.SessionService }

func (slowSessions) GetSession(ctx context.Context, _, _ string) (checkout.View, error) {
	<-ctx.Done()
	return checkout.View{}, ctx.Err()
}

// TestMCPToolTimeout: REQUEST_TIMEOUT ends a tool call with the binding's error for a
// timeout, answered before the HTTP request's own deadline (after which the SDK no
// longer waits for the tool).
func TestMCPToolTimeout(t *testing.T) {
	srv := httptest.NewServer(New(Config{MaxBodyBytes: 1 << 20, RequestTimeout: 300 * time.Millisecond},
		Deps{Sessions: slowSessions{}, Logger: slog.New(slog.DiscardHandler)}))
	t.Cleanup(srv.Close)
	req, _ := http.NewRequest(http.MethodPost, srv.URL+mcpPath, strings.NewReader(
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_checkout_session","arguments":{"meta":{"api_version":"2026-04-17"},"id":"cs_1"}}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	client := srv.Client()
	client.Timeout = 10 * time.Second // without the tool's own deadline the call never ends
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var msg struct {
		Error struct {
			Code int
			Data struct{ Type, Code string }
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&msg); err != nil || msg.Error.Code != mcpErrorCode ||
		msg.Error.Data.Type != acp.TypeServiceUnavailable || msg.Error.Data.Code != codeTimeout {
		t.Fatalf("status %d, %+v, %v", resp.StatusCode, msg, err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("answered after %v", elapsed)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
