package httpapi_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/acpspec"
)

// 3-D Secure over HTTP (issue 10; docs/decisions.md, "3-D Secure").

// Stripe's test cards whose issuer requires 3-D Secure, and its PSP test token that does.
const (
	threeDSCard  = "4000000000003220"
	threeDSCard2 = "4000002760003184"
	threeDSToken = "tok_threeDSecure2Required"
)

// cryptogram is the authentication value of the tests' results: it goes to the charge
// and must be stored nowhere.
const cryptogram = "AbCdEfGhIjKlMnOpQrStUvWxY0="

// authenticated is a successful authentication_result.
func authenticated(outcome, eci string) map[string]any {
	return map[string]any{"outcome": outcome, "outcome_details": map[string]any{
		"three_ds_cryptogram": cryptogram, "electronic_commerce_indicator": eci,
		"transaction_id": "dsTransId_" + outcome, "version": "2.2.0",
	}}
}

// failedOutcomes are the outcomes that must leave the session unpaid.
var failedOutcomes = []string{"denied", "rejected", "abandoned", "canceled", "internal_error", "not_supported", "processing_error"}

// ready0417 creates a ready 2026-04-17 session (item_123, CA address, standard shipping)
// of an agent declaring the interventions supported, and returns its id and total.
func ready0417(e *testEnv, supported ...string) (string, int64) {
	e.t.Helper()
	body := e.createBody(fields{items: items("item_123", 1), buyer: buyer, address: address})
	body["capabilities"] = map[string]any{"interventions": map[string]any{"supported": supported}}
	sid := e.mustCreate(body)["id"].(string)
	s := e.mustSession(e.do(http.MethodPost, "/checkout_sessions/"+sid,
		e.updateBody(fields{items: items("item_123", 1), option: "standard_shipping"})), http.StatusOK)
	if s["status"] != "ready_for_payment" {
		e.t.Fatalf("session is %v, messages %v", s["status"], messages(s))
	}
	return s["id"].(string), totals(e.t, s)["total"]
}

// complete0417 completes sid with token through handler, with result (nil: none).
func complete0417(e *testEnv, sid, handler, token string, result any) response {
	e.t.Helper()
	body := map[string]any{"payment_data": map[string]any{
		"handler_id": handler,
		"instrument": map[string]any{"type": "card", "credential": map[string]any{"type": "spt", "token": token}},
	}}
	if result != nil {
		body["authentication_result"] = result
	}
	return e.do(http.MethodPost, "/checkout_sessions/"+sid+"/complete", body)
}

func (e *testEnv) getSession(sid string) map[string]any {
	e.t.Helper()
	return e.mustSession(e.do(http.MethodGet, "/checkout_sessions/"+sid, nil), http.StatusOK)
}

// checkAuthenticationRequired checks a 2026-04-17 session that asks the agent for 3-D
// Secure with a Visa card: status, metadata and the capabilities.
func checkAuthenticationRequired(t *testing.T, s map[string]any) {
	t.Helper()
	if s["status"] != "authentication_required" {
		t.Fatalf("status = %v, messages %v", s["status"], messages(s))
	}
	md, _ := s["authentication_metadata"].(map[string]any)
	acq, _ := md["acquirer_details"].(map[string]any)
	fp, _ := md["flow_preference"].(map[string]any)
	if md["directory_server"] != "visa" || acq["acquirer_country"] != "US" || acq["acquirer_bin"] == "" ||
		acq["acquirer_merchant_id"] == "" || acq["merchant_name"] == "" || fp["type"] != "challenge" {
		t.Errorf("authentication_metadata = %v", md)
	}
	iv := s["capabilities"].(map[string]any)["interventions"].(map[string]any)
	if !slices.Equal(iv["supported"].([]any), []any{"3ds"}) || !slices.Equal(iv["required"].([]any), []any{"3ds"}) {
		t.Errorf("interventions = %v", iv)
	}
}

// orderAuthentication returns what the order of sid keeps of its authentication.
func orderAuthentication(e *testEnv, sid string) string {
	e.t.Helper()
	return dbText(e, `SELECT concat_ws('/', authentication_outcome, authentication_eci, authentication_version, authentication_transaction_id)
		FROM orders WHERE checkout_session_id = $1`, sid)
}

// noCryptogramStored fails when any row of any table holds the cryptogram.
func noCryptogramStored(e *testEnv) {
	e.t.Helper()
	for table, rows := range allRows(e) {
		for _, row := range rows {
			if strings.Contains(row, cryptogram) {
				e.t.Errorf("%s stores the cryptogram: %s", table, row)
			}
		}
	}
}

func TestThreeDSVaultCard0417(t *testing.T) {
	t.Parallel()
	e := mustEnvVersion(t, v0417, time.Minute)
	sid, total := ready0417(e, "3ds", "biometric")
	s := e.getSession(sid)
	if s["status"] != "ready_for_payment" || s["authentication_metadata"] != nil {
		t.Fatalf("before delegation: %v %v", s["status"], s["authentication_metadata"])
	}
	iv := s["capabilities"].(map[string]any)["interventions"].(map[string]any)
	if !slices.Equal(iv["supported"].([]any), []any{"3ds"}) || len(iv["required"].([]any)) != 0 {
		t.Errorf("interventions = %v", iv)
	}

	token := delegate(e, sid, total, "usd", threeDSCard, "9871")
	checkAuthenticationRequired(t, e.getSession(sid))
	// An update shows it too.
	checkAuthenticationRequired(t, e.mustSession(e.do(http.MethodPost, "/checkout_sessions/"+sid, e.updateBody(fields{buyer: buyer})), http.StatusOK))

	before := paymentSnapshot(e, sid, token)
	e.mustError(complete0417(e, sid, "card_tokenized", token, nil), http.StatusBadRequest, "requires_3ds", "$.authentication_result")
	for _, outcome := range failedOutcomes {
		m := e.mustError(complete0417(e, sid, "card_tokenized", token, map[string]any{"outcome": outcome}),
			http.StatusBadRequest, "authentication_failed", "$.authentication_result.outcome")
		if msg := m["message"].(string); m["type"] != "invalid_request" || !strings.Contains(msg, "No payment was taken") {
			t.Errorf("%s: %v", outcome, m)
		}
		// The session is unpaid and still asks for authentication, and says what failed.
		s := e.getSession(sid)
		checkAuthenticationRequired(t, s)
		if got := messages(s); !slices.Equal(got, []string{"payment_declined@$.payment_data"}) {
			t.Errorf("%s: messages = %v", outcome, got)
		}
		if after := paymentSnapshot(e, sid, token); after != before {
			t.Errorf("%s changed the payment state: %+v, was %+v", outcome, after, before)
		}
	}
	// Outcome details a failure carries are checked, not required (the official denied
	// example has only transaction_id and version; checklist I-39).
	e.mustError(complete0417(e, sid, "card_tokenized", token, map[string]any{"outcome": "denied",
		"outcome_details": map[string]any{"transaction_id": "ds_1", "version": "2.2.0"}}),
		http.StatusBadRequest, "authentication_failed", "$.authentication_result.outcome")
	if n := e.gateway.Attempts(); n != 0 {
		t.Errorf("gateway attempts = %d, want 0 (a vault token is never sent to the PSP)", n)
	}

	s = e.mustSession(complete0417(e, sid, "card_tokenized", token, authenticated("authenticated", "05")), http.StatusOK)
	if s["status"] != "completed" || s["order"] == nil || s["authentication_metadata"] != nil {
		t.Fatalf("complete = %v", s)
	}
	if used, order := tokenUse(e, token); used == "" || order == "" {
		t.Errorf("token used %q order %q", used, order)
	}
	if got := orderAuthentication(e, sid); got != "authenticated/05/2.2.0/dsTransId_authenticated" {
		t.Errorf("order authentication = %s", got)
	}
	noCryptogramStored(e)
}

func TestThreeDSResultValidation0417(t *testing.T) {
	t.Parallel()
	e := mustEnvVersion(t, v0417, time.Minute)
	sid, total := ready0417(e, "3ds")
	token := delegate(e, sid, total, "usd", threeDSCard2, "9871")
	details := func(mod func(map[string]any)) map[string]any {
		r := authenticated("authenticated", "05")
		mod(r["outcome_details"].(map[string]any))
		return r
	}
	for _, tc := range []struct {
		result      any
		code, param string
	}{
		{map[string]any{"outcome": "authenticated"}, "missing", "$.authentication_result.outcome_details"},
		{map[string]any{"outcome": "informational"}, "missing", "$.authentication_result.outcome_details"},
		{map[string]any{"outcome": "attempt_acknowledged"}, "missing", "$.authentication_result.outcome_details"},
		{map[string]any{"outcome_details": map[string]any{}}, "missing", "$.authentication_result.outcome"},
		{map[string]any{"outcome": "failed"}, "invalid", "$.authentication_result.outcome"},
		{details(func(d map[string]any) { delete(d, "version") }), "missing", "$.authentication_result.outcome_details.version"},
		{details(func(d map[string]any) { delete(d, "three_ds_cryptogram") }), "missing", "$.authentication_result.outcome_details.three_ds_cryptogram"},
		{details(func(d map[string]any) { d["electronic_commerce_indicator"] = "03" }), "invalid", "$.authentication_result.outcome_details.electronic_commerce_indicator"},
		{details(func(d map[string]any) { d["transaction_id"] = "" }), "invalid", "$.authentication_result.outcome_details.transaction_id"},
		{details(func(d map[string]any) { d["eci"] = "05" }), "unknown_field", "$.authentication_result.outcome_details.eci"},
	} {
		e.mustError(complete0417(e, sid, "card_tokenized", token, tc.result), http.StatusBadRequest, tc.code, tc.param)
	}
	if used, _ := tokenUse(e, token); used != "" {
		t.Fatal("a refused completion spent the token")
	}
	// The frictionless official example: attempt_acknowledged (ECI 06) pays.
	var frictionless map[string]any
	officialExample(t, "authentication_result_frictionless_example", &frictionless)
	e.mustSession(complete0417(e, sid, "card_tokenized", token, frictionless), http.StatusOK)
	if got := orderAuthentication(e, sid); got != "attempt_acknowledged/06/2.2.0/dsTransId_frictionless_456" {
		t.Errorf("order authentication = %s", got)
	}
}

func TestThreeDSAgentWithout3DS0417(t *testing.T) {
	t.Parallel()
	e := mustEnvVersion(t, v0417, time.Minute)
	sid, total := ready0417(e, "biometric")
	token := delegate(e, sid, total, "usd", threeDSCard, "9871")
	s := e.getSession(sid)
	// CN-RFC §4.6.1: the requirement holds, the agent cannot meet it.
	if s["status"] != "not_ready_for_payment" || s["authentication_metadata"] != nil ||
		!slices.Equal(messages(s), []string{"intervention_required@$.payment_data"}) {
		t.Fatalf("session = %v %v %v", s["status"], s["authentication_metadata"], messages(s))
	}
	iv := s["capabilities"].(map[string]any)["interventions"].(map[string]any)
	if len(iv["supported"].([]any)) != 0 || !slices.Equal(iv["required"].([]any), []any{"3ds"}) {
		t.Errorf("interventions = %v", iv)
	}
	e.mustError(complete0417(e, sid, "card_tokenized", token, nil), http.StatusBadRequest, "requires_3ds", "$.authentication_result")

	// A later card without 3-D Secure replaces it: the session is ready again, and
	// pays with that card.
	plain := delegate(e, sid, total, "usd", visaNumber, "9871")
	if s := e.getSession(sid); s["status"] != "ready_for_payment" || len(messages(s)) != 0 {
		t.Fatalf("after a plain card: %v %v", s["status"], messages(s))
	}
	// The earlier card still needs authentication when it is the one used.
	e.mustError(complete0417(e, sid, "card_tokenized", token, nil), http.StatusBadRequest, "requires_3ds", "$.authentication_result")
	e.mustSession(complete0417(e, sid, "card_tokenized", plain, nil), http.StatusOK)
	if got := orderAuthentication(e, sid); got != "" {
		t.Errorf("order authentication = %q, want none", got)
	}
}

func TestThreeDSPSPToken0417(t *testing.T) {
	t.Parallel()
	e := mustEnvVersion(t, v0417, time.Minute)
	sid, _ := ready0417(e, "3ds")
	// Only the charge tells: the session was ready, the completion asks for 3-D Secure,
	// and the session then shows what to authenticate with.
	e.mustError(complete0417(e, sid, "card_psp_test", threeDSToken, nil), http.StatusBadRequest, "requires_3ds", "$.authentication_result")
	checkAuthenticationRequired(t, e.getSession(sid))
	if e.gateway.Charges() != 0 || e.gateway.Attempts() != 1 {
		t.Fatalf("charges %d attempts %d", e.gateway.Charges(), e.gateway.Attempts())
	}
	for _, outcome := range failedOutcomes {
		e.mustError(complete0417(e, sid, "card_psp_test", threeDSToken, map[string]any{"outcome": outcome}),
			http.StatusBadRequest, "authentication_failed", "$.authentication_result.outcome")
	}
	// A failed authentication is refused before the PSP is asked.
	if e.gateway.Attempts() != 1 || dbInt(e, `SELECT count(*) FROM orders`) != 0 {
		t.Fatalf("attempts %d, orders %d", e.gateway.Attempts(), dbInt(e, `SELECT count(*) FROM orders`))
	}
	s := e.mustSession(complete0417(e, sid, "card_psp_test", threeDSToken, authenticated("informational", "07")), http.StatusOK)
	if s["status"] != "completed" || e.gateway.ChargesFor(sid) != 1 {
		t.Fatalf("complete = %v, charges %d", s["status"], e.gateway.ChargesFor(sid))
	}
	if got := orderAuthentication(e, sid); got != "informational/07/2.2.0/dsTransId_informational" {
		t.Errorf("order authentication = %s", got)
	}
	noCryptogramStored(e)
}

// officialExample decodes the official 2026-04-17 checkout example name into v.
func officialExample(t *testing.T, name string, v any) {
	t.Helper()
	var all map[string]json.RawMessage
	if err := json.Unmarshal(acpspec.ReadFile(t, "2026-04-17/examples.agentic_checkout.json"), &all); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(all[name], v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// TestThreeDSOfficialExamples0417 answers the official 3-D Secure complete requests,
// their token replaced by one of this server's vault (spt_3ds_token_001 is Stripe's),
// and checks the refusal against error_400_requires_3ds.
func TestThreeDSOfficialExamples0417(t *testing.T) {
	t.Parallel()
	e := mustEnvVersion(t, v0417, time.Minute)
	var want map[string]any
	officialExample(t, "error_400_requires_3ds", &want)
	for _, tc := range []struct {
		name   string
		status int
	}{
		{"complete_session_with_denied_authentication_request", http.StatusBadRequest},
		{"complete_session_with_authentication_result_request", http.StatusOK},
	} {
		sid, total := ready0417(e, "3ds")
		token := delegate(e, sid, total, "usd", threeDSCard, "9871")
		var body map[string]any
		officialExample(t, tc.name, &body)
		body["payment_data"].(map[string]any)["instrument"].(map[string]any)["credential"].(map[string]any)["token"] = token

		// Without its authentication_result, the request is refused as the official
		// error example is.
		result := body["authentication_result"]
		delete(body, "authentication_result")
		m := e.mustError(e.do(http.MethodPost, "/checkout_sessions/"+sid+"/complete", body), http.StatusBadRequest, "requires_3ds", "$.authentication_result")
		if m["type"] != want["type"] || m["code"] != want["code"] || m["param"] != want["param"] {
			t.Errorf("%s: %v, want %v", tc.name, m, want)
		}
		body["authentication_result"] = result
		r := e.do(http.MethodPost, "/checkout_sessions/"+sid+"/complete", body)
		if tc.status == http.StatusOK {
			if s := e.mustSession(r, http.StatusOK); s["status"] != "completed" {
				t.Errorf("%s: %v", tc.name, s["status"])
			}
			continue
		}
		e.mustError(r, tc.status, "authentication_failed", "$.authentication_result.outcome")
	}
}

// TestThreeDS0929: 2025-09-29 has no 3-D Secure flow. A card that needs it makes the
// session not ready with a requires_3ds message, and its completion a 400 requires_3ds.
func TestThreeDS0929(t *testing.T) {
	t.Parallel()
	e := mustEnvVersion(t, "2025-09-29", time.Minute)
	sid, total := mustReadySession(e)
	token := delegate(e, sid, total, "usd", threeDSCard, "9871")
	s := e.getSession(sid)
	if s["status"] != "not_ready_for_payment" || !slices.Equal(messages(s), []string{"requires_3ds@$.payment_data"}) {
		t.Fatalf("session = %v %v", s["status"], messages(s))
	}
	before := paymentSnapshot(e, sid, token)
	m := e.mustError(completeSession(e, sid, token), http.StatusBadRequest, "requires_3ds", "")
	if m["param"] != nil || !strings.Contains(m["message"].(string), "cannot carry") {
		t.Errorf("refusal = %v", m)
	}
	if after := paymentSnapshot(e, sid, token); after != before {
		t.Errorf("the refusal changed the payment state: %+v, was %+v", after, before)
	}

	// The PSP's 3-D Secure token: refused at the charge, then shown on the session.
	sid2, _ := mustReadySession(e)
	e.mustError(completeSession(e, sid2, threeDSToken), http.StatusBadRequest, "requires_3ds", "")
	if s := e.getSession(sid2); s["status"] != "not_ready_for_payment" || !slices.Equal(messages(s), []string{"requires_3ds@$.payment_data"}) {
		t.Errorf("session = %v %v", s["status"], messages(s))
	}
	if e.gateway.Charges() != 0 {
		t.Errorf("charges = %d", e.gateway.Charges())
	}

	// A 2026-04-17 session waiting for authentication, read in 2025-09-29.
	e17 := e.as(v0417)
	sid3, total3 := ready0417(e17, "3ds")
	delegate(e17, sid3, total3, "usd", threeDSCard, "9871")
	checkAuthenticationRequired(t, e17.getSession(sid3))
	if s := e.getSession(sid3); s["status"] != "not_ready_for_payment" || !slices.Equal(messages(s), []string{"requires_3ds@$.payment_data"}) {
		t.Errorf("0929 view = %v %v", s["status"], messages(s))
	}
}
