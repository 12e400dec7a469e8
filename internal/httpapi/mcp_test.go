package httpapi_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/agentic-commerce/agentic-commerce-server/internal/acpspec"
	"github.com/agentic-commerce/agentic-commerce-server/internal/httpapi"
)

// The MCP binding end to end: the official SDK's client (or the binding's examples,
// sent as raw JSON-RPC) against a running server on PostgreSQL, over real HTTP.

const (
	mcpKeyA = "sk_mcp_agent_a"
	mcpKeyB = "sk_mcp_agent_b"
)

// mcpEnv is a 2026-04-17 env whose server requires one of two API keys.
func mcpEnv(t *testing.T, opts ...func(*httpapi.Config)) *testEnv {
	t.Helper()
	opts = append([]func(*httpapi.Config){func(c *httpapi.Config) {
		c.APIKeys = []httpapi.APIKey{{Name: "agent_a", Key: mcpKeyA}, {Name: "agent_b", Key: mcpKeyB}}
	}}, opts...)
	return mustEnvVersion(t, "2026-04-17", time.Minute, opts...)
}

// bearer adds an Authorization header to every request ("" sends none).
type bearer struct {
	key  string
	next http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	if b.key != "" {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+b.key)
	}
	return b.next.RoundTrip(r)
}

// mcpConnect connects the SDK's client to e's /mcp as the holder of key.
func (e *testEnv) mcpConnect(key string) (*mcp.ClientSession, error) {
	transport := &mcp.StreamableClientTransport{
		Endpoint:             e.server.URL + "/mcp",
		HTTPClient:           &http.Client{Transport: bearer{key: key, next: e.server.Client().Transport}},
		DisableStandaloneSSE: true,
		MaxRetries:           -1,
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "test-agent", Version: "1.0"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return client.Connect(ctx, transport, nil)
}

// mustMCP is mcpConnect failing the test.
func (e *testEnv) mustMCP(key string) *mcp.ClientSession {
	e.t.Helper()
	cs, err := e.mcpConnect(key)
	if err != nil {
		e.t.Fatalf("connect: %v", err)
	}
	e.t.Cleanup(func() { _ = cs.Close() })
	return cs
}

// toolCall is the answer to one tools/call: the result, or the JSON-RPC error.
type toolCall struct {
	result *mcp.CallToolResult
	err    *jsonrpc.Error
}

// call calls tool with args; a failure other than a JSON-RPC error fails the test.
func call(t *testing.T, cs *mcp.ClientSession, tool string, args any) toolCall {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		var jerr *jsonrpc.Error
		if errors.As(err, &jerr) {
			return toolCall{err: jerr}
		}
		t.Fatalf("%s: %v", tool, err)
	}
	return toolCall{result: res}
}

// mustSession expects a session: valid against def (CheckoutSession, or
// CheckoutSessionWithOrder after complete) as structuredContent, the same JSON as the
// text content.
func (c toolCall) mustSession(e *testEnv, def string) map[string]any {
	e.t.Helper()
	if c.err != nil {
		e.t.Fatalf("error %d %s: %s", c.err.Code, c.err.Message, c.err.Data)
	}
	if c.result.IsError {
		e.t.Fatalf("tool error: %v", c.result.Content)
	}
	structured, err := json.Marshal(c.result.StructuredContent)
	if err != nil {
		e.t.Fatal(err)
	}
	e.schemas.Checkout.MustValidate(e.t, def, structured)
	if len(c.result.Content) != 1 {
		e.t.Fatalf("content = %v", c.result.Content)
	}
	text, ok := c.result.Content[0].(*mcp.TextContent)
	if !ok {
		e.t.Fatalf("content is a %T", c.result.Content[0])
	}
	var fromText, fromStructured map[string]any
	if err := json.Unmarshal([]byte(text.Text), &fromText); err != nil {
		e.t.Fatalf("text content is not JSON: %v", err)
	}
	_ = json.Unmarshal(structured, &fromStructured)
	if fmt.Sprint(fromText) != fmt.Sprint(fromStructured) {
		e.t.Errorf("text content %s differs from structuredContent %s", text.Text, structured)
	}
	return fromStructured
}

// mustError expects the binding's error: -32000 with an ACP Error of code (and param,
// when not "") in data, valid against the Error schema, its message the error's.
func (c toolCall) mustError(e *testEnv, code, param string) map[string]any {
	e.t.Helper()
	if c.err == nil {
		e.t.Fatalf("want error %s, got result %v", code, c.result.StructuredContent)
	}
	if c.err.Code != -32000 {
		e.t.Errorf("JSON-RPC code = %d, want -32000", c.err.Code)
	}
	e.schemas.Error(c.err.Data, "/checkout_sessions")
	var data map[string]any
	if err := json.Unmarshal(c.err.Data, &data); err != nil {
		e.t.Fatalf("data is not an object: %v: %s", err, c.err.Data)
	}
	if data["code"] != code || (param != "" && data["param"] != param) {
		e.t.Errorf("data = %s, want code %s param %q", c.err.Data, code, param)
	}
	if c.err.Message != data["message"] {
		e.t.Errorf("message %q is not data.message %q", c.err.Message, data["message"])
	}
	return data
}

func meta(key string) map[string]any {
	m := map[string]any{"api_version": "2026-04-17", "user_agent": "test-agent/1.0", "x-unknown": "ignored"}
	if key != "" {
		m["idempotency_key"] = key
	}
	return m
}

var (
	mcpAddress = map[string]any{"name": "Ada Lovelace", "line_one": "1 Road", "city": "San Francisco", "state": "CA", "country": "US", "postal_code": "94131"}
	mcpCreate  = map[string]any{
		"currency":   "usd",
		"line_items": []any{map[string]any{"id": "item_123", "quantity": 2}},
		"fulfillment_details": map[string]any{
			"name": "Ada Lovelace", "phone_number": "15551234567", "email": "ada@example.com", "address": mcpAddress,
		},
	}
	mcpSelect = map[string]any{
		"selected_fulfillment_options": []any{map[string]any{"type": "shipping", "option_id": "standard_shipping", "item_ids": []any{"item_123"}}},
	}
)

func mcpComplete(token string) map[string]any {
	return map[string]any{
		"buyer": map[string]any{"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com"},
		"payment_data": map[string]any{
			"handler_id": "card_psp_test",
			"instrument": map[string]any{"type": "card", "credential": map[string]any{"type": "spt", "token": token}},
		},
	}
}

// mcpReady creates a ready_for_payment session over cs and returns its id.
func mcpReady(e *testEnv, cs *mcp.ClientSession, prefix string) string {
	e.t.Helper()
	s := call(e.t, cs, "create_checkout_session", map[string]any{"meta": meta(prefix + "-create"), "payload": mcpCreate}).mustSession(e, "CheckoutSession")
	id := s["id"].(string)
	s = call(e.t, cs, "update_checkout_session", map[string]any{"meta": meta(prefix + "-update"), "id": id, "payload": mcpSelect}).mustSession(e, "CheckoutSession")
	if s["status"] != "ready_for_payment" {
		e.t.Fatalf("status %v, messages %v", s["status"], messages(s))
	}
	return id
}

func TestMCPFlow(t *testing.T) {
	t.Parallel()
	e := mcpEnv(t)
	cs := e.mustMCP(mcpKeyA)

	// The five tools of the binding, each with the input schema of the OpenRPC document
	// and an output schema.
	ctx := context.Background()
	list, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	outputs := map[string]*jsonschema.Schema{}
	for _, tool := range list.Tools {
		names = append(names, tool.Name)
		if tool.InputSchema == nil || tool.OutputSchema == nil {
			t.Fatalf("%s: input schema %v, output schema %v", tool.Name, tool.InputSchema != nil, tool.OutputSchema != nil)
		}
		// The output schema as a client gets it: self-contained, compiled on its own.
		raw, _ := json.Marshal(tool.OutputSchema)
		doc, err := jsonschema.UnmarshalJSON(strings.NewReader(string(raw)))
		if err != nil {
			t.Fatal(err)
		}
		c := jsonschema.NewCompiler()
		if err := c.AddResource("urn:"+tool.Name, doc); err != nil {
			t.Fatal(err)
		}
		if outputs[tool.Name], err = c.Compile("urn:" + tool.Name); err != nil {
			t.Fatalf("%s: output schema: %v", tool.Name, err)
		}
	}
	conforms := func(tool string, c toolCall) {
		t.Helper()
		raw, _ := json.Marshal(c.result.StructuredContent)
		v, _ := jsonschema.UnmarshalJSON(strings.NewReader(string(raw)))
		if err := outputs[tool].Validate(v); err != nil {
			t.Errorf("%s: the result does not match the tool's output schema: %v", tool, err)
		}
	}
	slices.Sort(names)
	if want := []string{"cancel_checkout_session", "complete_checkout_session", "create_checkout_session", "get_checkout_session", "update_checkout_session"}; !slices.Equal(names, want) {
		t.Errorf("tools = %v", names)
	}

	createCall := call(t, cs, "create_checkout_session", map[string]any{"meta": meta("flow-create"), "payload": mcpCreate})
	created := createCall.mustSession(e, "CheckoutSession")
	conforms("create_checkout_session", createCall)
	id := created["id"].(string)
	if created["protocol"].(map[string]any)["version"] != "2026-04-17" {
		t.Errorf("created: status %v protocol %v", created["status"], created["protocol"])
	}
	s := call(t, cs, "update_checkout_session", map[string]any{"meta": meta("flow-update"), "id": id, "payload": mcpSelect}).mustSession(e, "CheckoutSession")
	if s["status"] != "ready_for_payment" {
		t.Fatalf("status %v, messages %v", s["status"], messages(s))
	}
	got := call(t, cs, "get_checkout_session", map[string]any{"meta": meta(""), "id": id}).mustSession(e, "CheckoutSession")
	if got["status"] != "ready_for_payment" || got["id"] != id {
		t.Errorf("get = %v", got)
	}

	completeCall := call(t, cs, "complete_checkout_session", map[string]any{"meta": meta("flow-complete"), "id": id, "payload": mcpComplete("tok_visa")})
	done := completeCall.mustSession(e, "CheckoutSessionWithOrder")
	conforms("complete_checkout_session", completeCall)
	if done["status"] != "completed" || done["order"].(map[string]any)["checkout_session_id"] != id {
		t.Fatalf("completed = %v", done)
	}
	if n := e.gateway.ChargesFor(id); n != 1 {
		t.Fatalf("charges = %d, want 1", n)
	}

	// A replay answers with the stored result and charges nothing; the same key with
	// another payload is refused.
	replay := call(t, cs, "complete_checkout_session", map[string]any{"meta": meta("flow-complete"), "id": id, "payload": mcpComplete("tok_visa")}).
		mustSession(e, "CheckoutSessionWithOrder")
	if fmt.Sprint(replay) != fmt.Sprint(done) {
		t.Errorf("replay %v differs from %v", replay, done)
	}
	if n := e.gateway.ChargesFor(id); n != 1 {
		t.Errorf("charges after the replay = %d, want 1", n)
	}
	call(t, cs, "complete_checkout_session", map[string]any{"meta": meta("flow-complete"), "id": id, "payload": mcpComplete("tok_mastercard")}).
		mustError(e, "idempotency_conflict", "")
	if n := e.gateway.Attempts(); n != 1 {
		t.Errorf("gateway attempts = %d, want 1", n)
	}

	// Cancel, of another session, with an intent trace.
	other := call(t, cs, "create_checkout_session", map[string]any{"meta": meta("flow-create-2"), "payload": mcpCreate}).mustSession(e, "CheckoutSession")
	canceled := call(t, cs, "cancel_checkout_session", map[string]any{"meta": meta("flow-cancel"), "id": other["id"],
		"payload": map[string]any{"intent_trace": map[string]any{"reason_code": "price_sensitivity", "trace_summary": "Found it cheaper."}}}).
		mustSession(e, "CheckoutSession")
	if canceled["status"] != "canceled" {
		t.Errorf("canceled: status %v", canceled["status"])
	}
	// Cancel without a payload is valid; a completed session cannot be canceled.
	call(t, cs, "cancel_checkout_session", map[string]any{"meta": meta("flow-cancel-2"), "id": id}).mustError(e, "checkout_session_completed", "")

	// The sessions are the REST API's: readable with the same key, not found with another.
	rest := e.mustSession(e.do(http.MethodGet, "/checkout_sessions/"+id, nil, "Authorization", "Bearer "+mcpKeyA), http.StatusOK)
	if rest["status"] != "completed" {
		t.Errorf("REST sees status %v", rest["status"])
	}
	e.mustError(e.do(http.MethodGet, "/checkout_sessions/"+id, nil, "Authorization", "Bearer "+mcpKeyB), http.StatusNotFound, "not_found", "")
	csB := e.mustMCP(mcpKeyB)
	call(t, csB, "get_checkout_session", map[string]any{"meta": meta(""), "id": id}).mustError(e, "not_found", "")

	// Per-tool metrics.
	r := e.do(http.MethodGet, "/metrics", nil)
	for _, series := range []string{
		`acp_mcp_tool_calls_total{result="ok",tool="complete_checkout_session"} 1`,
		`acp_mcp_tool_calls_total{result="replayed",tool="complete_checkout_session"} 1`,
		`acp_mcp_tool_calls_total{result="refused",tool="complete_checkout_session"} 1`,
		`acp_mcp_tool_calls_total{result="ok",tool="create_checkout_session"} 2`,
	} {
		if !strings.Contains(string(r.body), series) {
			t.Errorf("/metrics lacks %s", series)
		}
	}
}

// TestMCPSharesIdempotencyWithREST: a tool call is the REST request it stands for, so
// a key used over one transport is answered over the other from the same record.
func TestMCPSharesIdempotencyWithREST(t *testing.T) {
	t.Parallel()
	e := mcpEnv(t)
	cs := e.mustMCP(mcpKeyA)
	first := e.mustSession(e.do(http.MethodPost, "/checkout_sessions", mcpCreate, "Authorization", "Bearer "+mcpKeyA, "Idempotency-Key", "shared-key"), http.StatusCreated)
	again := call(t, cs, "create_checkout_session", map[string]any{"meta": meta("shared-key"), "payload": mcpCreate}).mustSession(e, "CheckoutSession")
	if again["id"] != first["id"] {
		t.Errorf("MCP retry created %v, REST had created %v", again["id"], first["id"])
	}
	// REST's client accepted gzip, so the record keeps the compressed body: MCP's
	// answer above is that body decompressed.
	if rows := safetyKeyRows(e, "shared-key"); len(rows) != 1 || rows[0].state != "completed_gzip" {
		t.Errorf("shared-key rows = %+v, want one completed_gzip", rows)
	}
	if n := dbInt(e, `SELECT count(*) FROM checkout_sessions`); n != 1 {
		t.Errorf("sessions = %d, want 1", n)
	}
	call(t, cs, "create_checkout_session", map[string]any{"meta": meta("shared-key"),
		"payload": map[string]any{"currency": "usd", "line_items": []any{map[string]any{"id": "item_456"}}}}).mustError(e, "idempotency_conflict", "")
	// Another caller's key of the same name is another record.
	csB := e.mustMCP(mcpKeyB)
	b := call(t, csB, "create_checkout_session", map[string]any{"meta": meta("shared-key"), "payload": mcpCreate}).mustSession(e, "CheckoutSession")
	if b["id"] == first["id"] {
		t.Error("agent_b was answered with agent_a's session")
	}
}

func TestMCPConcurrentCompletionsMakeOneOrder(t *testing.T) {
	t.Parallel()
	e := mcpEnv(t)
	cs := e.mustMCP(mcpKeyA)
	id := mcpReady(e, cs, "race")

	const n = 40
	var wg sync.WaitGroup
	var mu sync.Mutex
	completed, refused := 0, map[string]int{}
	for i := range n {
		wg.Go(func() {
			// Half retry one key, half bring their own: neither may charge twice.
			key := "race-complete"
			if i%2 == 1 {
				key = fmt.Sprintf("race-complete-%d", i)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "complete_checkout_session",
				Arguments: map[string]any{"meta": meta(key), "id": id, "payload": mcpComplete("tok_visa")}})
			mu.Lock()
			defer mu.Unlock()
			var jerr *jsonrpc.Error
			switch {
			case err == nil && !res.IsError:
				completed++
			case errors.As(err, &jerr):
				var data map[string]any
				_ = json.Unmarshal(jerr.Data, &data)
				refused[fmt.Sprint(data["code"])]++
			default:
				t.Errorf("call %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if completed < 1 {
		t.Errorf("no call completed; refusals %v", refused)
	}
	if got := dbInt(e, `SELECT count(*) FROM orders WHERE checkout_session_id = $1`, id); got != 1 {
		t.Errorf("orders = %d, want 1", got)
	}
	if got := e.gateway.ChargesFor(id); got != 1 {
		t.Errorf("charges = %d, want 1", got)
	}
	for code := range refused {
		// checkout_session_complete_in_progress: another key's charge was in flight.
		if !slices.Contains([]string{"idempotency_in_flight", "checkout_session_completed", "checkout_session_complete_in_progress"}, code) {
			t.Errorf("unexpected refusal %s (%v)", code, refused)
		}
	}
	t.Logf("completed %d, refused %v", completed, refused)
}

func TestMCPAuthentication(t *testing.T) {
	t.Parallel()
	e := mcpEnv(t)
	for _, key := range []string{"", "sk_wrong"} {
		if _, err := e.mcpConnect(key); err == nil {
			t.Errorf("key %q: connected", key)
		}
		r := e.do(http.MethodPost, "/mcp", `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`,
			"Authorization", map[string]string{"": "", "sk_wrong": "Bearer sk_wrong"}[key],
			"Accept", "application/json, text/event-stream", "Idempotency-Key", "")
		if r.status != http.StatusUnauthorized || r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("key %q: status %d, WWW-Authenticate %q", key, r.status, r.header.Get("WWW-Authenticate"))
		}
	}
}

// TestMCPEnvelope: the binding's envelope is checked before anything runs, each fault
// refused with the binding's error and a param naming it.
func TestMCPEnvelope(t *testing.T) {
	t.Parallel()
	e := mcpEnv(t)
	cs := e.mustMCP(mcpKeyA)
	id := call(t, cs, "create_checkout_session", map[string]any{"meta": meta("env-create"), "payload": mcpCreate}).mustSession(e, "CheckoutSession")["id"]

	data := call(t, cs, "get_checkout_session", map[string]any{"meta": map[string]any{}, "id": id}).mustError(e, "missing_api_version", "$.meta.api_version")
	if v, _ := data["supported_versions"].([]any); len(v) != 1 || v[0] != "2026-04-17" {
		t.Errorf("supported_versions = %v", data["supported_versions"])
	}
	call(t, cs, "get_checkout_session", map[string]any{"id": id}).mustError(e, "missing_api_version", "$.meta")
	call(t, cs, "get_checkout_session", nil).mustError(e, "missing_api_version", "$.meta") // the SDK sends {}
	call(t, cs, "get_checkout_session", []any{meta(""), id}).mustError(e, "invalid_type", "")
	call(t, cs, "get_checkout_session", map[string]any{"meta": map[string]any{"api_version": "2025-09-29"}, "id": id}).
		mustError(e, "unsupported_api_version", "$.meta.api_version")
	call(t, cs, "get_checkout_session", map[string]any{"meta": map[string]any{"api_version": 20260417}, "id": id}).
		mustError(e, "invalid_type", "$.meta.api_version")
	call(t, cs, "get_checkout_session", map[string]any{"meta": meta("")}).mustError(e, "missing_required_field", "$.id")
	call(t, cs, "get_checkout_session", map[string]any{"meta": meta(""), "id": nil}).mustError(e, "missing_required_field", "$.id")
	call(t, cs, "get_checkout_session", map[string]any{"meta": nil, "id": id}).mustError(e, "invalid_type", "$.meta")
	call(t, cs, "get_checkout_session", map[string]any{"meta": meta(""), "id": 7}).mustError(e, "invalid_type", "$.id")
	call(t, cs, "get_checkout_session", map[string]any{"meta": meta(""), "id": id, "payload": map[string]any{}}).mustError(e, "unknown_field", "$.payload")
	call(t, cs, "get_checkout_session", map[string]any{"meta": meta(""), "id": id, "extra": true}).mustError(e, "unknown_field", "$.extra")
	for _, bad := range []string{"", "cs_x/complete", "cs_\t", strings.Repeat("x", 4096)} {
		call(t, cs, "get_checkout_session", map[string]any{"meta": meta(""), "id": bad}).mustError(e, "not_found", "")
	}
	call(t, cs, "get_checkout_session", map[string]any{"meta": meta(""), "id": "cs_\u0000"}).mustError(e, "invalid_json", "")
	call(t, cs, "create_checkout_session", map[string]any{"meta": meta(""), "payload": mcpCreate}).mustError(e, "idempotency_key_required", "$.meta.idempotency_key")
	call(t, cs, "complete_checkout_session", map[string]any{"meta": meta(""), "id": id, "payload": mcpComplete("tok_visa")}).
		mustError(e, "idempotency_key_required", "$.meta.idempotency_key")
	call(t, cs, "create_checkout_session", map[string]any{"meta": meta("env-no-payload")}).mustError(e, "missing_required_field", "$.payload")
	call(t, cs, "create_checkout_session", map[string]any{"meta": meta("env-null-payload"), "payload": nil}).mustError(e, "missing_required_field", "$.payload")
	call(t, cs, "create_checkout_session", map[string]any{"meta": meta(strings.Repeat("k", 256)), "payload": mcpCreate}).mustError(e, "invalid_idempotency_key", "")
	// The payload is checked by the REST decoders, its params pointing into payload.
	call(t, cs, "create_checkout_session", map[string]any{"meta": meta("env-no-currency"),
		"payload": map[string]any{"line_items": []any{map[string]any{"id": "item_123"}}}}).mustError(e, "missing", "$.payload.currency")
	call(t, cs, "update_checkout_session", map[string]any{"meta": meta("env-unknown"), "id": id,
		"payload": map[string]any{"colour": "red"}}).mustError(e, "unknown_field", "$.payload.colour")
	// A completion declined by the PSP is the binding's payment_declined.
	ready := mcpReady(e, cs, "env-declined")
	call(t, cs, "complete_checkout_session", map[string]any{"meta": meta("env-declined-complete"), "id": ready, "payload": mcpComplete("tok_chargeDeclined")}).
		mustError(e, "payment_declined", "")
	if n := dbInt(e, `SELECT count(*) FROM checkout_sessions`); n != 2 {
		t.Errorf("sessions = %d, want 2: a refused create made one", n)
	}
}

// TestMCPLimits: the HTTP middleware of REST wraps /mcp: the body limit and the rate
// limit are REST's, answered with REST's ACP Errors.
func TestMCPLimits(t *testing.T) {
	t.Parallel()
	e := mcpEnv(t, func(c *httpapi.Config) { c.MaxBodyBytes = 4096; c.RateLimit = 0.01; c.RateBurst = 3 })
	big := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_checkout_session","arguments":{"meta":{"api_version":"2026-04-17","pad":"` +
		strings.Repeat("x", 5000) + `"},"id":"cs_1"}}}`
	e.mustError(e.do(http.MethodPost, "/mcp", big, "Authorization", "Bearer "+mcpKeyA, "Accept", "application/json, text/event-stream", "Idempotency-Key", ""),
		http.StatusRequestEntityTooLarge, "request_too_large", "")
	var statuses []int
	for range 3 {
		r := e.do(http.MethodPost, "/mcp", `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`,
			"Authorization", "Bearer "+mcpKeyA, "Accept", "application/json, text/event-stream", "Idempotency-Key", "")
		statuses = append(statuses, r.status)
	}
	if !slices.Equal(statuses, []int{200, 200, 429}) {
		t.Errorf("statuses = %v, want 200 200 429 (the 413 took the first token)", statuses)
	}
}

// TestMCPExamples sends every request of the binding's examples as written, but for the
// ids: the session's, and the handler and token of the PSP's test cards (the examples'
// tokenized card needs a vault token of delegate_payment). Every answer must be
// schema-valid. The update and cancel examples carry no idempotency key, which REST
// 2026-04-17 requires on every POST (I-17): they are refused as REST would, then sent
// again with a key; the update example's payload fails its own schema (I-39) and is
// refused for it.
func TestMCPExamples(t *testing.T) {
	t.Parallel()
	e := mcpEnv(t)
	var examples map[string]json.RawMessage
	if err := json.Unmarshal(acpspec.ReadFile(t, "2026-04-17/examples.mcp.agentic_checkout.json"), &examples); err != nil {
		t.Fatal(err)
	}
	sent := map[string]bool{}
	post := func(name string, replace ...string) map[string]any {
		t.Helper()
		sent[name] = true
		body := string(examples[name])
		for i := 0; i+1 < len(replace); i += 2 {
			if !strings.Contains(body, replace[i]) {
				t.Fatalf("%s has no %s", name, replace[i])
			}
			body = strings.ReplaceAll(body, replace[i], replace[i+1])
		}
		r := e.do(http.MethodPost, "/mcp", body, "Authorization", "Bearer "+mcpKeyA,
			"Accept", "application/json, text/event-stream", "Idempotency-Key", "")
		if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
			t.Fatalf("%s: status %d %s: %s", name, r.status, r.header.Get("Content-Type"), r.body)
		}
		return r.json(t)
	}
	result := func(name, def string, resp map[string]any) map[string]any {
		t.Helper()
		if resp["error"] != nil {
			t.Fatalf("%s: %v", name, resp["error"])
		}
		res := resp["result"].(map[string]any)
		structured, _ := json.Marshal(res["structuredContent"])
		e.schemas.Checkout.MustValidate(t, def, structured)
		return res["structuredContent"].(map[string]any)
	}
	refusal := func(name string, resp map[string]any, code, param string) {
		t.Helper()
		got, _ := resp["error"].(map[string]any)
		if got == nil || got["code"] != float64(-32000) {
			t.Fatalf("%s: want error -32000, got %v", name, resp)
		}
		data, _ := json.Marshal(got["data"])
		e.schemas.Error(data, "/checkout_sessions")
		if d := got["data"].(map[string]any); d["code"] != code || d["param"] != param {
			t.Errorf("%s: data %s, want %s at %s", name, data, code, param)
		}
	}
	const withKey = `"api_version": "2026-04-17"`
	s := result("create", "CheckoutSession", post("create_checkout_session_request"))
	id := s["id"].(string)
	s = result("get", "CheckoutSession", post("get_checkout_session_request", "checkout_session_123", id))
	if s["id"] != id || s["status"] != "ready_for_payment" {
		t.Errorf("get: id %v, status %v", s["id"], s["status"])
	}
	refusal("update", post("update_checkout_session_request", "checkout_session_123", id), "idempotency_key_required", "$.meta.idempotency_key")
	refusal("update with a key", post("update_checkout_session_request", "checkout_session_123", id, withKey, withKey+`, "idempotency_key": "ex-update"`),
		"unknown_field", "$.payload.selected_fulfillment_options[0].shipping")
	refusal("complete", post("complete_checkout_session_request", "checkout_session_123", id,
		`"card_tokenized"`, `"card_psp_test"`, `"tok_visa_4242"`, `"tok_visa"`), "unknown_field", "$.payload.payment_data.instrument.token")
	// Both payloads fail their own schemas (I-39): the refusals are right.
	for name, def := range map[string]string{
		"update_checkout_session_request": "CheckoutSessionUpdateRequest", "complete_checkout_session_request": "CheckoutSessionCompleteRequest",
	} {
		var req struct {
			Params struct {
				Arguments struct{ Payload json.RawMessage }
			}
		}
		_ = json.Unmarshal(examples[name], &req)
		if e.schemas.Checkout.Validate(def, req.Params.Arguments.Payload) == nil {
			t.Errorf("the payload of %s passes its schema now: expect it to be served", name)
		}
	}
	// The complete example with its instrument in the schema's shape completes the
	// session (under a key of its own: the refusal is recorded under the example's).
	s = result("complete", "CheckoutSessionWithOrder", post("complete_checkout_session_request", "checkout_session_123", id, "idem_660e8400", "idem_fixed",
		`"card_tokenized"`, `"card_psp_test"`, `"token": "tok_visa_4242"`, `"type": "card", "credential": {"type": "spt", "token": "tok_visa"}`))
	if s["status"] != "completed" {
		t.Errorf("complete: status %v", s["status"])
	}

	// Cancel, of a session of its own (the first one is completed).
	other := result("create", "CheckoutSession", post("create_checkout_session_request", "idem_550e8400", "idem_other"))["id"].(string)
	refusal("cancel", post("cancel_checkout_session_request", "checkout_session_123", other), "idempotency_key_required", "$.meta.idempotency_key")
	s = result("cancel", "CheckoutSession", post("cancel_checkout_session_request", "checkout_session_123", other, withKey, withKey+`, "idempotency_key": "ex-cancel"`))
	if s["status"] != "canceled" {
		t.Errorf("cancel: status %v", s["status"])
	}

	// The error examples, for the requests that cause them.
	for name, want := range map[string]json.RawMessage{
		"error_invalid_request": examples["error_invalid_request"], "error_payment_declined": examples["error_payment_declined"],
	} {
		var example struct {
			Error struct {
				Code int64
				Data map[string]any
			}
		}
		_ = json.Unmarshal(want, &example)
		var resp map[string]any
		if name == "error_invalid_request" {
			resp = post("create_checkout_session_request", `"currency": "usd",`, ``, "idem_550e8400", "idem_nocurrency")
		} else {
			ready := result("create", "CheckoutSession", post("create_checkout_session_request", "idem_550e8400", "idem_declined"))["id"].(string)
			resp = post("complete_checkout_session_request", "checkout_session_123", ready, "idem_660e8400", "idem_declined",
				`"card_tokenized"`, `"card_psp_test"`, `"token": "tok_visa_4242"`, `"type": "card", "credential": {"type": "spt", "token": "tok_chargeDeclined"}`)
		}
		got, _ := resp["error"].(map[string]any)
		if got == nil {
			t.Errorf("%s: no error: %v", name, resp)
			continue
		}
		data, _ := json.Marshal(got["data"])
		e.schemas.Error(data, "/checkout_sessions")
		d := got["data"].(map[string]any)
		// The codes are REST's: a missing field is "missing" there, where the example
		// says missing_required_field; type, param and the decline's code are the example's.
		if got["code"].(float64) != float64(example.Error.Code) || d["type"] != example.Error.Data["type"] ||
			(name == "error_payment_declined" && d["code"] != example.Error.Data["code"]) ||
			(example.Error.Data["param"] != nil && d["param"] != example.Error.Data["param"]) {
			t.Errorf("%s: got %v, the example has %v", name, got, example.Error)
		}
	}
	// A new example request (an entry with a method) fails this test until it is sent.
	for name, raw := range examples {
		var msg struct{ Method string }
		if err := json.Unmarshal(raw, &msg); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if msg.Method != "" && !sent[name] {
			t.Errorf("example %s is not sent", name)
		}
	}
	if len(sent) != 5 {
		t.Errorf("sent %d example requests, want the 5 of the binding", len(sent))
	}
}

// TestMCPSignatures: with SIGNING_SECRET set, every call is signed as REST requests
// are, meta.signature and meta.timestamp standing for the headers and the payload for
// the body; a signature is spent by its first use.
func TestMCPSignatures(t *testing.T) {
	t.Parallel()
	secret := []byte("mcp-signing-secret")
	e := mcpEnv(t, func(c *httpapi.Config) { c.SigningSecrets = [][]byte{secret} })
	cs := e.mustMCP(mcpKeyA)
	signed := func(key string, payload any) map[string]any {
		raw, err := json.Marshal(payload)
		if err != nil {
			t.Fatal(err)
		}
		ts := time.Now().UTC().Format(time.RFC3339)
		m := meta(key)
		m["timestamp"] = ts
		m["signature"] = base64.RawURLEncoding.EncodeToString(httpapi.Sign(secret, ts, raw))
		return m
	}
	call(t, cs, "create_checkout_session", map[string]any{"meta": meta("sig-unsigned"), "payload": mcpCreate}).mustError(e, "missing_signature", "")
	m := signed("sig-create", mcpCreate)
	s := call(t, cs, "create_checkout_session", map[string]any{"meta": m, "payload": mcpCreate}).mustSession(e, "CheckoutSession")
	// The same signature again, even under another key, is a replay.
	m["idempotency_key"] = "sig-create-2"
	call(t, cs, "create_checkout_session", map[string]any{"meta": m, "payload": mcpCreate}).mustError(e, "signature_replayed", "")
	// A signature over another payload does not match.
	call(t, cs, "create_checkout_session", map[string]any{"meta": signed("sig-other", map[string]any{"currency": "eur"}), "payload": mcpCreate}).
		mustError(e, "invalid_signature", "")
	// A call without payload signs the empty body.
	call(t, cs, "get_checkout_session", map[string]any{"meta": signed("", nil), "id": s["id"]}).mustError(e, "invalid_signature", "")
	ts := time.Now().UTC().Format(time.RFC3339)
	get := meta("")
	get["timestamp"], get["signature"] = ts, base64.RawURLEncoding.EncodeToString(httpapi.Sign(secret, ts, nil))
	call(t, cs, "get_checkout_session", map[string]any{"meta": get, "id": s["id"]}).mustSession(e, "CheckoutSession")
}
