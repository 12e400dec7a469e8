package httpapi_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/httpapi"
)

// errorCase provokes one refusal: prep (optional) runs first, then the request, whose
// answer must be status with code, param (when not "") and reason in its message.
type errorCase struct {
	name         string
	env          *testEnv
	prep         func(e *testEnv)
	method, path string
	body         any
	headers      []string
	status       int
	code, param  string
	reason       string
}

func (tc errorCase) run(t *testing.T) {
	t.Helper()
	e := *tc.env
	e.t = t
	if tc.prep != nil {
		tc.prep(&e)
	}
	// mustError validates the body against the Error schema of the path's route.
	e.mustDelegateError(e.do(tc.method, tc.path, tc.body, tc.headers...), tc.status, tc.code, tc.param, tc.reason)
}

// errorEnvs are the servers the refusals need: a plain one, one with API keys and one
// rate limited to a single request per address.
func errorEnvs(t *testing.T) (plain, keyed, limited *testEnv) {
	t.Helper()
	return mustEnv(t), mustEnv(t, safetyWithKeys),
		mustEnv(t, func(c *httpapi.Config) { c.RateLimit = 0.01; c.RateBurst = 1 })
}

// TestDelegatePaymentErrorsMatchTheSpecEnums provokes every kind of delegate_payment
// refusal and checks each body against the 2025-09-29 delegate_payment Error: type and
// code from the spec's enums, the precise reason in the message, the field in param.
func TestDelegatePaymentErrorsMatchTheSpecEnums(t *testing.T) {
	t.Parallel()
	plain, keyed, limited := errorEnvs(t)
	valid := func() map[string]any { return delegateBody("cs_errors", 2109, "usd", visaNumber, "987") }
	with := func(mod func(b map[string]any)) map[string]any { b := valid(); mod(b); return b }
	pm := func(b map[string]any) map[string]any { return b["payment_method"].(map[string]any) }
	al := func(b map[string]any) map[string]any { return b["allowance"].(map[string]any) }
	post := func(e *testEnv, body any, headers ...string) response {
		return e.do(http.MethodPost, delegatePath, body, headers...)
	}

	for _, tc := range []errorCase{
		{name: "bad JSON", body: `{"payment_method":`, status: 400, code: "invalid_card", reason: "(reason: invalid_json)"},
		{name: "unknown field", body: with(func(b map[string]any) { b["customer"] = "x" }), status: 400, code: "invalid_card", reason: "(reason: unknown_field)"},
		{name: "missing field", body: with(func(b map[string]any) { delete(b, "allowance") }), status: 400, code: "invalid_card", param: "$.allowance", reason: "(reason: missing)"},
		{name: "bad card number", body: with(func(b map[string]any) { pm(b)["number"] = luhnFailing }), status: 400, code: "invalid_card", param: "$.payment_method.number", reason: "Luhn"},
		{name: "bad expiry", body: with(func(b map[string]any) { pm(b)["exp_month"] = "13" }), status: 400, code: "invalid_card", param: "$.payment_method.exp_month", reason: "exp_month"},
		{name: "bad allowance", body: with(func(b map[string]any) { al(b)["max_amount"] = 0 }), status: 400, code: "invalid_card", param: "$.allowance.max_amount", reason: "(reason: invalid_allowance)"},
		{name: "expired allowance", body: with(func(b map[string]any) {
			al(b)["expires_at"] = time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
		}), status: 400, code: "invalid_card", param: "$.allowance.expires_at", reason: "in the past. (reason: invalid_allowance)"},
		{name: "wrong currency", body: with(func(b map[string]any) { al(b)["currency"] = "USD" }), status: 400, code: "invalid_card", param: "$.allowance.currency", reason: "(reason: invalid_allowance)"},
		{name: "too long metadata", body: with(func(b map[string]any) { b["metadata"] = map[string]any{"k": strings.Repeat("v", 501)} }),
			status: 400, code: "invalid_card", param: "$.metadata", reason: "(reason: invalid_request)"},
		{name: "risk blocked", body: with(func(b map[string]any) { b["risk_signals"].([]any)[0].(map[string]any)["action"] = "blocked" }),
			status: 400, code: "invalid_card", param: "$.risk_signals[0].action", reason: "(reason: risk_blocked)"},
		{name: "empty body", body: ``, status: 400, code: "invalid_card", reason: "(reason: missing_body)"},
		{name: "wrong content type", body: `{}`, headers: []string{"Content-Type", "text/plain"}, status: 415, code: "invalid_card", reason: "(reason: unsupported_media_type)"},
		{name: "body too large", body: `{"metadata":{"k":"` + strings.Repeat("a", 2<<20) + `"}}`, status: 413, code: "invalid_card", reason: "(reason: request_too_large)"},
		{name: "unsupported API-Version", body: valid(), headers: []string{"API-Version", "2099-01-01"}, status: 400, code: "invalid_card",
			reason: "Supported versions: 2026-04-17, 2025-09-29. (reason: unsupported_api_version)"},
		{name: "wrong method", method: http.MethodGet, status: 405, code: "invalid_card", reason: "(reason: method_not_allowed)"},
		{name: "conflicting idempotency key", body: valid(), headers: []string{"Idempotency-Key", "idem-delegate-conflict"},
			prep: func(e *testEnv) {
				if r := post(e, with(func(b map[string]any) { al(b)["max_amount"] = 1 }), "Idempotency-Key", "idem-delegate-conflict"); r.status != http.StatusCreated {
					e.t.Fatalf("first delegation = %d: %s", r.status, r.body)
				}
			}, status: 409, code: "idempotency_conflict", reason: "different request body"},
		{name: "missing auth", env: keyed, body: valid(), status: 401, code: "invalid_card", reason: "(reason: missing_authorization)"},
		{name: "wrong API key", env: keyed, body: valid(), headers: safetyAuth("nope-0123456789abcdef"), status: 401, code: "invalid_card", reason: "(reason: invalid_api_key)"},
		{name: "rate limited", env: limited, body: valid(), prep: func(e *testEnv) { post(e, valid()) },
			status: 429, code: "too_many_requests", reason: "Too many requests"},
	} {
		if tc.env == nil {
			tc.env = plain
		}
		if tc.method == "" {
			tc.method = http.MethodPost
		}
		tc.path = delegatePath
		t.Run(tc.name, tc.run)
	}

	// The types: a rate limit has its own, a bad request is invalid_request.
	r := post(limited, valid())
	if m := limited.mustError(r, http.StatusTooManyRequests, "too_many_requests", ""); m["type"] != "rate_limit_exceeded" {
		t.Errorf("type of a 429 = %v, want rate_limit_exceeded", m["type"])
	}
	r = post(plain, ``)
	if m := plain.mustError(r, http.StatusBadRequest, "invalid_card", ""); m["type"] != "invalid_request" {
		t.Errorf("type of a 400 = %v, want invalid_request", m["type"])
	}
}

// TestCheckoutErrorsMatchTheSpec provokes the refusals of the checkout routes and checks
// each body against the 2025-09-29 checkout Error: its type enum, no other field.
func TestCheckoutErrorsMatchTheSpec(t *testing.T) {
	t.Parallel()
	plain, keyed, limited := errorEnvs(t)
	create := `{"items":[{"id":"item_123","quantity":1}]}`
	notReady := plain.mustCreate(create)["id"].(string) // no address: not ready for payment

	for _, tc := range []errorCase{
		{name: "bad JSON", path: "/checkout_sessions", body: `{"items":`, status: 400, code: "invalid_json"},
		{name: "unknown field", path: "/checkout_sessions", body: `{"items":[],"coupon":"x"}`, status: 400, code: "unknown_field"},
		{name: "unknown item", path: "/checkout_sessions", body: `{"items":[{"id":"nope","quantity":1}]}`, status: 400, code: "invalid_item_id", param: "$.items[0].id"},
		{name: "unknown session", method: http.MethodGet, path: "/checkout_sessions/cs_none", status: 404, code: "not_found"},
		{name: "unknown route", method: http.MethodGet, path: "/nowhere", status: 404, code: "not_found"},
		{name: "wrong method", method: http.MethodGet, path: "/checkout_sessions", status: 405, code: "method_not_allowed"},
		{name: "complete not ready", path: "/checkout_sessions/" + notReady + "/complete", body: safetyCompleteBody, status: 409, code: "not_ready_for_payment"},
		{name: "wrong content type", path: "/checkout_sessions", body: create, headers: []string{"Content-Type", "text/plain"}, status: 415, code: "unsupported_media_type"},
		{name: "body too large", path: "/checkout_sessions", body: `{"items":[],"x":"` + strings.Repeat("a", 2<<20) + `"}`, status: 413, code: "request_too_large"},
		{name: "unsupported API-Version", path: "/checkout_sessions", body: create, headers: []string{"API-Version", "2099-01-01"}, status: 400,
			code: "unsupported_api_version", reason: "Supported versions: 2026-04-17, 2025-09-29."},
		{name: "idempotency conflict", path: "/checkout_sessions", body: create, headers: []string{"Idempotency-Key", "idem-checkout-conflict"},
			prep: func(e *testEnv) {
				e.mustSession(e.do(http.MethodPost, "/checkout_sessions", `{"items":[{"id":"item_123","quantity":2}]}`, "Idempotency-Key", "idem-checkout-conflict"), http.StatusCreated)
			}, status: 409, code: "idempotency_conflict"},
		{name: "missing auth", env: keyed, path: "/checkout_sessions", body: create, status: 401, code: "missing_authorization"},
		{name: "wrong API key", env: keyed, path: "/checkout_sessions", body: create, headers: safetyAuth("nope-0123456789abcdef"), status: 401, code: "invalid_api_key"},
		{name: "rate limited", env: limited, method: http.MethodGet, path: "/checkout_sessions/cs_none",
			prep: func(e *testEnv) { e.do(http.MethodGet, "/checkout_sessions/cs_none", nil) }, status: 429, code: "too_many_requests"},
	} {
		if tc.env == nil {
			tc.env = plain
		}
		if tc.method == "" {
			tc.method = http.MethodPost
		}
		t.Run(tc.name, tc.run)
	}
}

// TestUnsupportedVersionNamesTheSupportedOnes: the 2025-09-29 Error has no
// supported_versions, so the list is in the message and the API-Supported-Versions header.
func TestUnsupportedVersionNamesTheSupportedOnes(t *testing.T) {
	t.Parallel()
	e := mustEnv(t, func(c *httpapi.Config) { c.RequireAPIVersion = true })
	for _, path := range []string{"/checkout_sessions", delegatePath} {
		for _, v := range []string{"", "2099-01-01"} {
			code := "unsupported_api_version"
			if v == "" {
				code = "missing_api_version"
			}
			if path == delegatePath {
				code = "invalid_card"
			}
			r := e.do(http.MethodPost, path, `{}`, "API-Version", v)
			m := e.mustDelegateError(r, http.StatusBadRequest, code, "", "Supported versions: 2026-04-17, 2025-09-29.")
			if _, ok := m["supported_versions"]; ok {
				t.Errorf("%s %q: supported_versions in a 2025-09-29 Error: %v", path, v, m)
			}
			if got := r.header.Get("API-Supported-Versions"); got != "2026-04-17, 2025-09-29" {
				t.Errorf("%s %q: API-Supported-Versions = %q", path, v, got)
			}
		}
	}
}
