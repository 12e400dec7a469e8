package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"
	"unicode"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentic-commerce/agentic-commerce-server/internal/acp"
	"github.com/agentic-commerce/agentic-commerce-server/internal/acp/v20260417"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/idempotency"
	"github.com/agentic-commerce/agentic-commerce-server/internal/metrics"
)

// The MCP binding of ACP (docs/transports.md): the five checkout tools over MCP's
// Streamable HTTP transport at /mcp, built on the official Go SDK. A tool call is the
// REST request it stands for, run by the same operation (operations.go) under the same
// caller, version table, idempotency records and error classification; only the
// envelope differs: meta for the headers, id for the path, payload for the body.

// mcpPath is the endpoint of the MCP binding.
const mcpPath = "/mcp"

// mcpServerName is the implementation name the server gives MCP clients.
const mcpServerName = "agentic-commerce-server"

// mcpVersions are the API versions served over MCP: those whose specification defines
// the binding (2025-09-29 has none). The newest renders the refusals made before the
// call's own version is known.
var mcpVersions = []string{v20260417.Version}

// mcpAnswerMargin bounds the time a tool keeps before the request's deadline to answer
// in (a tenth of REQUEST_TIMEOUT, at most this).
const mcpAnswerMargin = 500 * time.Millisecond

// mcpErrorCode is the JSON-RPC error code of every ACP refusal (the binding's "Error
// Handling"); the ACP Error is its data.
const mcpErrorCode = -32000

// mcpOperation is the REST request a tool stands for: the route its idempotency key is
// recorded under (so a retry may come over either transport), the status of its
// success, and the operation both transports run.
type mcpOperation struct {
	method string
	// path is the REST path with the session id after it (and suffix), "" for create.
	path, suffix string
	status       int
	op           func(s *Server) operation
}

// mcpOperations maps the binding's tools onto the checkout operations. Every tool of
// the OpenRPC document must be here (mcpTools refuses to build otherwise).
var mcpOperations = map[string]mcpOperation{
	"create_checkout_session":   {method: http.MethodPost, path: "/checkout_sessions", status: http.StatusCreated, op: func(s *Server) operation { return s.createOp }},
	"get_checkout_session":      {method: http.MethodGet, path: "/checkout_sessions/", status: http.StatusOK, op: func(s *Server) operation { return s.getOp }},
	"update_checkout_session":   {method: http.MethodPost, path: "/checkout_sessions/", status: http.StatusOK, op: func(s *Server) operation { return s.updateOp }},
	"complete_checkout_session": {method: http.MethodPost, path: "/checkout_sessions/", suffix: "/complete", status: http.StatusOK, op: func(s *Server) operation { return s.completeOp }},
	"cancel_checkout_session":   {method: http.MethodPost, path: "/checkout_sessions/", suffix: "/cancel", status: http.StatusOK, op: func(s *Server) operation { return s.cancelOp }},
}

// newMCPHandler serves the binding's tools. It is stateless: every POST is a complete
// exchange with no Mcp-Session-Id, so any instance behind a load balancer can answer
// any call, the caller of each call is the one its own Authorization header names, and
// the tool handler sees the request's context values (the request info with the caller
// and the request id). Responses are plain JSON, not SSE: a tool call has one answer.
func (s *Server) newMCPHandler() http.Handler {
	tools, err := mcpTools(mcpVersions[0])
	if err != nil {
		panic(err) // the embedded OpenRPC document and the table above are fixed at build time; a test builds them
	}
	srv := mcp.NewServer(&mcp.Implementation{Name: mcpServerName, Title: "Agentic Commerce Protocol checkout", Version: mcpVersions[0]},
		&mcp.ServerOptions{Logger: s.logger, Instructions: "ACP checkout: create a session, update it until it is ready_for_payment, " +
			"then complete it with a payment token. Every call needs meta.api_version; " +
			"create, update, complete and cancel need meta.idempotency_key (reuse it to retry safely)."})
	for _, t := range tools {
		srv.AddTool(t.tool, s.mcpToolHandler(t))
	}
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv },
		&mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true, Logger: s.logger})
	return s.withMCPBody(h)
}

// withMCPBody reads the body once under MAX_BODY_BYTES, as every REST route does, so an
// oversized call is refused with the same 413 ACP Error before the SDK parses it.
func (s *Server) withMCPBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			body, err := s.rawBody(w, r)
			if err != nil {
				s.writeError(w, r, err)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		next.ServeHTTP(w, r)
	})
}

// mcpArguments is the binding's argument structure; fields the tool does not take are
// refused (mcpTool.params).
type mcpArguments struct {
	Meta    json.RawMessage `json:"meta"`
	ID      json.RawMessage `json:"id"`
	Payload json.RawMessage `json:"payload"`
}

// mcpMeta is what the server reads of meta: the headers it acts on. Other fields are
// ignored, as the binding asks (meta is extensible).
type mcpMeta struct {
	APIVersion     string `json:"api_version"`
	IdempotencyKey string `json:"idempotency_key"`
	Signature      string `json:"signature"`
	Timestamp      string `json:"timestamp"`
}

// mcpToolHandler answers calls of one tool: the session as the result (structured and
// as text), or the ACP Error as a JSON-RPC error.
func (s *Server) mcpToolHandler(t mcpTool) mcp.ToolHandler {
	name := t.tool.Name
	op := mcpOperations[name]
	run := op.op(s)
	return func(ctx context.Context, req *mcp.CallToolRequest) (res *mcp.CallToolResult, err error) {
		start := time.Now()
		api := versions[mcpVersions[0]] // the Error shape until the call's version is known
		defer func() {
			if v := recover(); v != nil {
				// The SDK runs tools outside the HTTP handler's goroutine, where REST's
				// withRecovery cannot catch a panic: without this, one ends the process.
				res, err = nil, s.toolRefusal(ctx, name, start, api,
					s.acpError(ctx, api, fmt.Errorf("panic: %v\n%s", v, debug.Stack())))
			}
		}()
		info, ok := ctx.Value(ctxRequestInfo).(*requestInfo)
		if !ok {
			// Cannot happen behind New's middleware; without it there is no caller, and
			// serving the call as nobody's would expose the sessions of an open server.
			return nil, s.toolRefusal(ctx, name, start, api, s.acpError(ctx, api, errors.New("mcp: no request info in the tool's context")))
		}
		if !info.deadline.IsZero() {
			// The SDK detaches the handler's context from the HTTP request (keeping its
			// values): without this a stuck database holds the call for good. It ends a
			// little before the request's own deadline, so the tool's 503 is written
			// while the request still stands, as REST's is.
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, info.deadline.Add(-min(s.cfg.RequestTimeout/10, mcpAnswerMargin)))
			defer cancel()
		}
		callAPI, status, body, replayed, err := s.callTool(ctx, info.caller, t, op, run, req.Params.Arguments)
		if callAPI != nil {
			api = callAPI
		}
		if err != nil {
			return nil, s.toolRefusal(ctx, name, start, api, s.acpError(ctx, api, err))
		}
		if status >= http.StatusBadRequest {
			e, data := mcpErrorData(body)
			s.observeTool(ctx, name, start, toolResult(status), e.Code)
			return nil, &jsonrpc.Error{Code: mcpErrorCode, Message: e.Message, Data: data}
		}
		result := metrics.ToolOK
		if replayed {
			result = metrics.ToolReplayed
		}
		s.observeTool(ctx, name, start, result, "")
		return &mcp.CallToolResult{
			Content:           []mcp.Content{&mcp.TextContent{Text: string(bytes.TrimSpace(body))}},
			StructuredContent: json.RawMessage(body),
		}, nil
	}
}

// observeTool counts and logs one tool call. The HTTP access log has its own line for
// the request; the tool's outcome is told here, not written into the request's info,
// which the access log may already be reading when a timed-out call ends.
func (s *Server) observeTool(ctx context.Context, tool string, start time.Time, result, code string) {
	elapsed := time.Since(start)
	s.metrics.ToolCall(tool, result, elapsed)
	attrs := []slog.Attr{
		slog.String("request_id", requestID(ctx)),
		slog.String("tool", tool),
		slog.String("result", result),
		slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
	}
	if code != "" {
		s.metrics.Refusal(code)
		attrs = append(attrs, slog.String("error_code", code))
	}
	level := slog.LevelInfo
	if result == metrics.ToolFailed {
		level = slog.LevelError
	}
	s.logger.LogAttrs(ctx, level, "mcp tool call", attrs...)
}

// callTool runs one call as the REST request it stands for and returns that request's
// response (status and body, the same bytes REST would send and the idempotency record
// keeps), or a refusal of the envelope. api is the call's version once known.
func (s *Server) callTool(ctx context.Context, caller string, t mcpTool, op mcpOperation, run operation, raw json.RawMessage) (
	api API, status int, body []byte, replayed bool, err error) {
	var args mcpArguments
	if err := acp.DecodeStrict(raw, &args); err != nil {
		return nil, 0, nil, false, err
	}
	for name, present := range map[string]bool{"id": args.ID != nil, "payload": args.Payload != nil} {
		if _, takes := t.params[name]; present && !takes {
			return nil, 0, nil, false, acp.InvalidRequest("unknown_field", t.tool.Name+" takes no "+name+".", "$."+name)
		}
	}
	meta, api, err := mcpMetaOf(args.Meta)
	if err != nil {
		return nil, 0, nil, false, err
	}
	id, err := mcpSessionID(api, t, args.ID)
	if err != nil {
		return api, 0, nil, false, err
	}
	payload := args.Payload
	if isJSONNull(payload) {
		payload = nil // absent or null: "Servers MUST NOT require payload: null"
	}
	if payload == nil && t.params["payload"] {
		return api, 0, nil, false, acp.InvalidRequest("missing_required_field", "payload is required.", "$.payload")
	}
	if len(s.cfg.SigningSecrets) > 0 {
		// The payload is the body: the signature covers the same bytes REST signs.
		if err := s.verifySigned(ctx, meta.Signature, meta.Timestamp, time.Now(), func() ([]byte, error) { return payload, nil }); err != nil {
			return api, 0, nil, false, err
		}
	}
	// exec is the REST request's response: the session (as recorded in the transaction
	// of its side effect, when it was) or the Error, in the call's version.
	exec := func(ctx context.Context) (int, []byte) {
		view, err := run(ctx, api, caller, id, payload)
		if err == nil {
			st, session, encErr := recordedOr(ctx, op.status, api.EncodeSession(view, s.cfg.Links))
			if encErr == nil {
				return st, session
			}
			err = encErr
		}
		e := s.acpError(ctx, api, err)
		refusal, encErr := encodeJSON(api.EncodeError(e))
		if encErr != nil {
			return http.StatusInternalServerError, nil // cannot happen: an Error always encodes
		}
		return e.Status, refusal
	}
	if op.method != http.MethodPost {
		status, body = exec(ctx)
		return api, status, body, false, nil
	}
	// I-17 (docs/decisions.md): REST's rule, a key on every call that is a POST in REST
	// where the version requires one, not the binding's "optional".
	if meta.IdempotencyKey == "" {
		if api.RequiresIdempotencyKey() {
			return api, 0, nil, false, acp.InvalidRequest(acp.CodeIdempotencyKeyRequired,
				"meta.idempotency_key is required on "+t.tool.Name+" in API version "+meta.APIVersion+".", "$.meta.idempotency_key")
		}
		status, body = exec(ctx)
		return api, status, body, false, nil
	}
	if err := checkIdempotencyKey(meta.IdempotencyKey, "meta.idempotency_key"); err != nil {
		return api, 0, nil, false, err
	}
	if s.idempotency == nil {
		status, body = exec(ctx)
		return api, status, body, false, nil
	}
	path := op.path
	if id != "" {
		path += id + op.suffix
	}
	k := idempotency.Key{Caller: caller, Method: op.method, Path: path, Key: meta.IdempotencyKey, APIVersion: meta.APIVersion}
	tpl := op.path
	if strings.HasSuffix(tpl, "/") {
		tpl += "{id}" + op.suffix
	}
	// MCP's answers carry the JSON itself: a response recorded compressed for a REST
	// client is replayed decompressed (pack nil).
	ans, err := s.runOnce(ctx, api, k, s.bodyHash(payload), s.keyModeFor(op.method, tpl, caller, id), nil, exec)
	return api, ans.Status, ans.Body, ans.replayed, err
}

// mcpMetaOf reads meta and picks the call's version, which must be one of mcpVersions.
func mcpMetaOf(raw json.RawMessage) (mcpMeta, API, error) {
	var meta mcpMeta
	if raw == nil {
		return meta, nil, mcpVersionError(acp.InvalidRequest("missing_api_version",
			"meta.api_version is required (meta is missing).", "$.meta"))
	}
	if err := json.Unmarshal(raw, &meta); err != nil || bytes.TrimSpace(raw)[0] != '{' {
		param := "$.meta"
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			param += "." + typeErr.Field
		}
		return meta, nil, acp.InvalidRequest("invalid_type", "meta must be an object whose fields are strings.", param)
	}
	meta.APIVersion = strings.TrimSpace(meta.APIVersion)
	if meta.APIVersion == "" {
		return meta, nil, mcpVersionError(acp.InvalidRequest("missing_api_version",
			"meta.api_version is required.", "$.meta.api_version"))
	}
	for _, v := range mcpVersions {
		if v == meta.APIVersion {
			return meta, versions[v], nil
		}
	}
	return meta, nil, mcpVersionError(acp.InvalidRequest("unsupported_api_version",
		fmt.Sprintf("API version %q is not served over MCP.", clip(meta.APIVersion, maxEchoedPath)), "$.meta.api_version"))
}

// mcpVersionError names the versions served over MCP in a version refusal.
func mcpVersionError(e *acp.Error) *acp.Error {
	e.SupportedVersions = mcpVersions
	return e
}

// mcpSessionID reads the id of a tool that takes one. An id that cannot name a session
// (a slash would make another tool's route of it in the idempotency record, a control
// character cannot be stored, an id that long exceeds the record) is not found.
func mcpSessionID(api API, t mcpTool, raw json.RawMessage) (string, error) {
	if _, takes := t.params["id"]; !takes {
		return "", nil
	}
	if raw == nil || isJSONNull(raw) {
		return "", acp.InvalidRequest("missing_required_field", "id is required.", "$.id")
	}
	var id string
	if err := json.Unmarshal(raw, &id); err != nil {
		return "", acp.InvalidRequest("invalid_type", "id must be a string.", "$.id")
	}
	if id == "" || len(id) > maxIdempotentPathLength/2 || strings.ContainsRune(id, '/') || strings.ContainsFunc(id, unicode.IsControl) {
		return "", api.DomainError(checkout.ErrNotFound)
	}
	return id, nil
}

// toolRefusal counts and logs a refusal made outside the REST request's cycle (the
// envelope, the idempotency claim) and renders it as the binding's JSON-RPC error.
func (s *Server) toolRefusal(ctx context.Context, tool string, start time.Time, api API, e *acp.Error) *jsonrpc.Error {
	s.observeTool(ctx, tool, start, toolResult(e.Status), e.Code)
	body, err := encodeJSON(api.EncodeError(e))
	if err != nil {
		return &jsonrpc.Error{Code: mcpErrorCode, Message: e.Message}
	}
	return &jsonrpc.Error{Code: mcpErrorCode, Message: e.Message, Data: body}
}

// toolResult is the metrics result of a refused call of status.
func toolResult(status int) string {
	if status >= http.StatusInternalServerError {
		return metrics.ToolFailed
	}
	return metrics.ToolRefused
}

// mcpErrorData turns the Error body of a refused call (fresh or replayed) into the
// JSON-RPC error's data. A param is a JSONPath into the REST body, which is the
// payload here: "$.currency" becomes "$.payload.currency", as in the binding's
// examples.
func mcpErrorData(body []byte) (*acp.Error, json.RawMessage) {
	var fields map[string]any
	if err := json.Unmarshal(body, &fields); err != nil {
		return &acp.Error{Code: "internal_error", Message: "The server could not process the request."}, nil
	}
	e := &acp.Error{}
	e.Code, _ = fields["code"].(string)
	e.Message, _ = fields["message"].(string)
	if p, ok := fields["param"].(string); ok && strings.HasPrefix(p, "$") {
		fields["param"] = "$.payload" + strings.TrimPrefix(p, "$")
	}
	data, err := json.Marshal(fields)
	if err != nil {
		return e, nil
	}
	return e, data
}

// isJSONNull reports whether raw is the JSON null.
func isJSONNull(raw json.RawMessage) bool {
	return raw != nil && bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}
