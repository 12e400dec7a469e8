package httpapi_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/idempotency"
)

// Regression tests of issue 15 (security hardening, items 3 to 7): each one replays the
// attack of the report.

// ---------------------------------------------------------------------------------
// Item 3: signed requests could be replayed.

func TestSignedRequestIsServedOnce(t *testing.T) {
	t.Parallel()
	e := mustEnv(t, safetyWithSecrets)
	ts := safetyTS(0)
	sig := safetySign(safetySecretOne, ts, safetyCreateBody)
	send := func(srvURL string) response {
		t.Helper()
		r, err := safetySend(http.DefaultClient, http.MethodPost, srvURL+"/checkout_sessions", safetyCreateBody,
			"Signature", sig, "Timestamp", ts)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	e.mustSession(send(e.server.URL), http.StatusCreated)
	// The same bytes again, to this instance and to another one on the same database.
	e.mustError(send(e.server.URL), http.StatusUnauthorized, "signature_replayed", "")
	other := e.startServer(time.Minute, safetyWithSecrets)
	e.mustError(send(other.URL), http.StatusUnauthorized, "signature_replayed", "")
	if n := dbInt(e, `SELECT count(*) FROM checkout_sessions`); n != 1 {
		t.Errorf("one signed create sent three times made %d sessions, want 1", n)
	}
	// The same signature with padding is the same signature.
	e.mustError(e.do(http.MethodPost, "/checkout_sessions", safetyCreateBody, "Signature", sig+"=", "Timestamp", ts),
		http.StatusUnauthorized, "signature_replayed", "")
	// A fresh signature of the same body is a new request.
	e.mustSession(safetySignedDo(e, safetySecretOne, safetyTS(0), http.MethodPost, "/checkout_sessions", safetyCreateBody), http.StatusCreated)
}

func TestSignedGetCannotBeReplayedAsCancel(t *testing.T) {
	t.Parallel()
	e := mustEnv(t, safetyWithSecrets)
	s := e.mustSession(safetySignedDo(e, safetySecretOne, safetyTS(0), http.MethodPost, "/checkout_sessions", safetyCreateBody), http.StatusCreated)
	id := s["id"].(string)
	// The agent reads the session: a GET signed over its empty body.
	ts := safetyTS(0)
	e.mustSession(safetySignedDo(e, safetySecretOne, ts, http.MethodGet, "/checkout_sessions/"+id, ""), http.StatusOK)
	// Whoever saw those headers sends them on POST …/cancel, also without a body.
	e.mustError(safetySignedDo(e, safetySecretOne, ts, http.MethodPost, "/checkout_sessions/"+id+"/cancel", ""),
		http.StatusUnauthorized, "signature_replayed", "")
	got := e.mustSession(safetySignedDo(e, safetySecretOne, safetyTS(0), http.MethodGet, "/checkout_sessions/"+id, ""), http.StatusOK)
	if got["status"] == "canceled" {
		t.Fatal("a replayed GET signature canceled the session")
	}
}

func TestRememberedSignaturesAreSwept(t *testing.T) {
	t.Parallel()
	e := mustEnv(t, safetyWithSecrets)
	e.mustSession(safetySignedDo(e, safetySecretOne, safetyTS(0), http.MethodPost, "/checkout_sessions", safetyCreateBody), http.StatusCreated)
	var expires time.Time
	if err := e.pool.QueryRow(t.Context(), `SELECT expires_at FROM signature_replays`).Scan(&expires); err != nil {
		t.Fatalf("the accepted signature was not remembered: %v", err)
	}
	// Kept at least as long as the timestamp is accepted (300 s), not forever.
	if d := time.Until(expires); d < 300*time.Second || d > 10*time.Minute {
		t.Errorf("signature kept for %s, want the 300 s window plus a margin", d)
	}
}

// ---------------------------------------------------------------------------------
// Item 4: a card number could reach the database as an unkeyed hash.

func TestIdempotencyHashOfACaseVariantCardIsKeyed(t *testing.T) {
	t.Parallel()
	e := mustEnv(t)
	const number, cvc = mastercard, "739"
	body := delegateBody("cs_case", 2109, "usd", number, cvc)
	pm := body["payment_method"].(map[string]any)
	// Field names are case-sensitive: "NUMBER" and "Cvc" are unknown fields, refused
	// before anything is stored but the recorded 400.
	delete(pm, "number")
	delete(pm, "cvc")
	pm["NUMBER"], pm["Cvc"] = number, cvc
	refused := e.do(http.MethodPost, delegatePath, body, "Idempotency-Key", "dp-case")
	// json.Marshal sorts the keys: "Cvc" comes first.
	e.mustDelegateRefusal(refused, http.StatusBadRequest, "unknown_field", "$.payment_method.Cvc")
	if n := dbInt(e, `SELECT count(*) FROM vault_tokens`); n != 0 {
		t.Errorf("a delegation with NUMBER/Cvc stored %d tokens", n)
	}
	if n := dbInt(e, `SELECT count(*) FROM idempotency_keys WHERE key = 'dp-case' AND response_status = 400`); n != 1 {
		t.Errorf("the refusal is recorded %d times as a 400, want once", n)
	}
	safetyMustReplay(t, e.do(http.MethodPost, delegatePath, body, "Idempotency-Key", "dp-case"), refused)
	// The number's digits are long enough to search the whole row; the three-digit CVC
	// would turn up by chance in the row's hex columns, so it is searched as a JSON value
	// in the stored response, the only place that carries text from the request.
	mustHoldNoCard := func(key string) {
		t.Helper()
		row := dbText(e, `SELECT row_to_json(k)::text FROM idempotency_keys k WHERE key = $1`, key)
		for _, secret := range []string{number, number[6:12]} {
			if strings.Contains(row, secret) {
				t.Errorf("the idempotency record %s holds %q: %s", key, secret, row)
			}
		}
		if stored := dbText(e, `SELECT convert_from(response_body, 'UTF8') FROM idempotency_keys WHERE key = $1`, key); strings.Contains(stored, `"`+cvc+`"`) {
			t.Errorf("the stored response of %s holds the CVC: %s", key, stored)
		}
	}
	mustHoldNoCard("dp-case")

	// A correctly spelled body is served, and its request hash is keyed.
	delete(pm, "NUMBER")
	delete(pm, "Cvc")
	pm["number"], pm["cvc"] = number, cvc
	r := e.do(http.MethodPost, delegatePath, body, "Idempotency-Key", "dp-exact")
	if r.status != http.StatusCreated {
		t.Fatalf("delegate: %d %s", r.status, r.body)
	}
	mustHoldNoCard("dp-exact")
	// The attacker's side: the body is known but for the middle digits of the number
	// (BIN and last 4 are in vault_tokens). Every canonical form that can be computed
	// without the server's key must miss, for both records.
	canonical, err := json.Marshal(body) // sorted keys, as idempotency.Hash writes them
	if err != nil {
		t.Fatal(err)
	}
	candidates := [][]byte{canonical, []byte(idempotency.Hash(canonical))}
	for _, variant := range []map[string]any{
		{"number": number, "cvc": cvc}, {"NUMBER": number, "cvc": cvc}, {"number": number, "Cvc": cvc}, {"NUMBER": number, "Cvc": cvc},
	} {
		delete(pm, "NUMBER")
		delete(pm, "Cvc")
		delete(pm, "number")
		delete(pm, "cvc")
		for k, v := range variant {
			pm[k] = v
		}
		raw, _ := json.Marshal(body)
		candidates = append(candidates, raw)
	}
	for _, key := range []string{"dp-case", "dp-exact"} {
		stored := dbText(e, `SELECT request_hash FROM idempotency_keys WHERE key = $1`, key)
		for _, c := range candidates {
			sum := sha256.Sum256(c)
			if h := hex.EncodeToString(sum[:]); h == stored || strings.Contains(stored, h) {
				t.Fatalf("request_hash %s of %s is the unkeyed SHA-256 of %s: the card number can be brute-forced from it", stored, key, c)
			}
		}
	}
	// The key makes it a replay all the same.
	delete(pm, "NUMBER")
	delete(pm, "Cvc")
	pm["number"], pm["cvc"] = number, cvc
	safetyMustReplay(t, e.do(http.MethodPost, delegatePath, body, "Idempotency-Key", "dp-exact"), r)
}

// ---------------------------------------------------------------------------------
// Item 5: admin POSTs ignored Idempotency-Key.

func TestAdminPostsHonourIdempotencyKey(t *testing.T) {
	t.Parallel()
	e := ordersEnv(t)
	id, _, _ := ordersMustOrder(e, "tok_visa")
	refund := map[string]any{"type": "store_credit", "amount": 100}
	post := func(path string, body any, key string) response {
		t.Helper()
		return e.do(http.MethodPost, path, body, "Authorization", "Bearer "+ordersAdminKey, "Idempotency-Key", key)
	}
	first := post("/admin/orders/"+id+"/refunds", refund, "refund-1")
	ordersDecode(e, first, http.StatusCreated)
	safetyMustNotReplay(t, first)
	safetyMustReplay(t, post("/admin/orders/"+id+"/refunds", refund, "refund-1"), first)
	if n := dbInt(e, `SELECT count(*) FROM refunds WHERE order_id = $1`, id); n != 1 {
		t.Errorf("the same Idempotency-Key twice recorded %d refunds, want 1", n)
	}
	// Same key, another amount: a conflict, and no refund.
	e.mustError(post("/admin/orders/"+id+"/refunds", map[string]any{"type": "store_credit", "amount": 200}, "refund-1"),
		http.StatusConflict, "idempotency_conflict", "")
	if n := dbInt(e, `SELECT coalesce(sum(amount), 0) FROM refunds WHERE order_id = $1`, id); n != 100 {
		t.Errorf("refunded %d, want 100", n)
	}
	// Status changes too; the replay is the first answer, not the refusal a second
	// confirm would get (confirmed -> confirmed is not a transition).
	confirm := map[string]any{"status": "confirmed"}
	first = post("/admin/orders/"+id+"/status", confirm, "confirm-1")
	ordersDecode(e, first, http.StatusOK)
	safetyMustReplay(t, post("/admin/orders/"+id+"/status", confirm, "confirm-1"), first)
	// The response was recorded by the transaction of the change itself, under no API
	// version (the admin API has none).
	if n := dbInt(e, `SELECT count(*) FROM idempotency_keys WHERE caller = 'admin' AND state = 'completed' AND api_version = ''`); n != 2 {
		t.Errorf("completed admin idempotency keys = %d, want 2", n)
	}
	// One event per change: order_create, one refund, one confirm.
	if n := dbInt(e, `SELECT count(*) FROM order_events WHERE order_id = $1`, id); n != 3 {
		t.Errorf("order events = %d, want 3", n)
	}
}

// ---------------------------------------------------------------------------------
// Item 6: a very long path with an Idempotency-Key was a 500.

func TestLongPathWithIdempotencyKeyIsNotFound(t *testing.T) {
	t.Parallel()
	e := ordersEnv(t)
	// Random characters: PostgreSQL compresses long index entries, and a run of one
	// letter would fit after all.
	long := make([]byte, 5000)
	for i := range long {
		long[i] = "abcdefghijklmnopqrstuvwxyz0123456789"[rand.IntN(36)]
	}
	for _, path := range []string{
		"/checkout_sessions/cs_" + string(long),
		"/checkout_sessions/cs_" + string(long) + "/cancel",
		"/admin/orders/ord_" + string(long) + "/refunds",
	} {
		r := e.do(http.MethodPost, path, map[string]any{"type": "store_credit", "amount": 1},
			"Idempotency-Key", "long-path", "Authorization", "Bearer "+ordersAdminKey)
		e.mustError(r, http.StatusNotFound, "not_found", "")
	}
	if n := dbInt(e, `SELECT count(*) FROM idempotency_keys`); n != 0 {
		t.Errorf("idempotency_keys = %d, want 0", n)
	}
}

// ---------------------------------------------------------------------------------
// Item 7: no length limits on what sessions and tokens store.

func TestSessionTextIsBounded(t *testing.T) {
	t.Parallel()
	e := mustEnv(t)
	// The report's request: a 1,000,000-character first_name.
	huge := map[string]any{"first_name": strings.Repeat("A", 1_000_000), "last_name": "Lovelace", "email": "ada@example.com"}
	e.mustError(e.do(http.MethodPost, "/checkout_sessions", map[string]any{"items": items("item_123", 1), "buyer": huge}),
		http.StatusBadRequest, "invalid", "$.buyer.first_name")

	with := func(base map[string]any, key string, v any) map[string]any {
		out := map[string]any{}
		for k, x := range base {
			out[k] = x
		}
		out[key] = v
		return out
	}
	long := func(n int) string { return strings.Repeat("é", n) } // characters, not bytes
	for _, tc := range []struct {
		field string
		limit int
		body  func(v string) map[string]any
	}{
		{"$.buyer.first_name", 256, func(v string) map[string]any { return map[string]any{"buyer": with(buyer, "first_name", v)} }},
		{"$.buyer.last_name", 256, func(v string) map[string]any { return map[string]any{"buyer": with(buyer, "last_name", v)} }},
		{"$.buyer.phone_number", 64, func(v string) map[string]any { return map[string]any{"buyer": with(buyer, "phone_number", v)} }},
		{"$.fulfillment_address.name", 256, func(v string) map[string]any {
			return map[string]any{"fulfillment_address": with(address, "name", v)}
		}},
		{"$.fulfillment_address.line_one", 256, func(v string) map[string]any {
			return map[string]any{"fulfillment_address": with(address, "line_one", v)}
		}},
		{"$.fulfillment_address.line_two", 256, func(v string) map[string]any {
			return map[string]any{"fulfillment_address": with(address, "line_two", v)}
		}},
		{"$.fulfillment_address.city", 256, func(v string) map[string]any {
			return map[string]any{"fulfillment_address": with(address, "city", v)}
		}},
		{"$.fulfillment_address.state", 256, func(v string) map[string]any {
			return map[string]any{"fulfillment_address": with(address, "state", v)}
		}},
		{"$.fulfillment_address.postal_code", 32, func(v string) map[string]any {
			return map[string]any{"fulfillment_address": with(address, "postal_code", v)}
		}},
	} {
		body := tc.body(long(tc.limit + 1))
		body["items"] = items("item_123", 1)
		e.mustError(e.do(http.MethodPost, "/checkout_sessions", body), http.StatusBadRequest, "invalid", tc.field)
		// At the limit it is accepted: the limits are for abuse, not for real data.
		body = tc.body(long(tc.limit))
		body["items"] = items("item_123", 1)
		e.mustSession(e.do(http.MethodPost, "/checkout_sessions", body), http.StatusCreated)
	}
	// An email address of 321 characters, valid otherwise.
	email := strings.Repeat("a", 64) + "@" + strings.Repeat(strings.Repeat("b", 60)+".", 4) + "examples.com"
	if len(email) != 321 {
		t.Fatalf("test email is %d characters", len(email))
	}
	e.mustError(e.do(http.MethodPost, "/checkout_sessions", map[string]any{"items": items("item_123", 1), "buyer": with(buyer, "email", email)}),
		http.StatusBadRequest, "invalid", "$.buyer.email")
	e.mustError(e.do(http.MethodPost, "/checkout_sessions", map[string]any{"items": items(strings.Repeat("x", 257), 1)}),
		http.StatusBadRequest, "invalid", "$.items[0].id")
	s := e.mustCreate(map[string]any{"items": items("item_123", 1)})
	e.mustError(e.do(http.MethodPost, "/checkout_sessions/"+s["id"].(string), map[string]any{"fulfillment_option_id": strings.Repeat("x", 257)}),
		http.StatusBadRequest, "invalid", "$.fulfillment_option_id")
	e.mustError(e.do(http.MethodPost, "/checkout_sessions/"+s["id"].(string)+"/complete",
		map[string]any{"payment_data": map[string]any{"token": "tok_" + strings.Repeat("x", 300), "provider": "stripe"}}),
		http.StatusBadRequest, "invalid", "$.payment_data.token")
	if n := dbInt(e, `SELECT count(*) FROM checkout_sessions WHERE length(buyer::text) > 2000 OR length(fulfillment_address::text) > 3000`); n != 0 {
		t.Errorf("%d sessions store an over-long field", n)
	}
}

func TestDelegationTextIsBounded(t *testing.T) {
	t.Parallel()
	e := mustEnv(t)
	manyKeys := map[string]string{}
	for i := range 51 {
		manyKeys[fmt.Sprintf("k%02d", i)] = "v"
	}
	pm := func(b map[string]any) map[string]any { return b["payment_method"].(map[string]any) }
	al := func(b map[string]any) map[string]any { return b["allowance"].(map[string]any) }
	for _, tc := range []struct {
		name, code, param string
		mod               func(b map[string]any)
	}{
		{"51 metadata keys", "invalid_request", "$.metadata", func(b map[string]any) { b["metadata"] = manyKeys }},
		{"metadata key of 41", "invalid_request", "$.metadata", func(b map[string]any) { b["metadata"] = map[string]string{strings.Repeat("k", 41): "v"} }},
		{"metadata value of 501", "invalid_request", "$.metadata", func(b map[string]any) { b["metadata"] = map[string]string{"k": strings.Repeat("v", 501)} }},
		{"card metadata of 51 keys", "invalid_request", "$.payment_method.metadata", func(b map[string]any) { pm(b)["metadata"] = manyKeys }},
		{"brand of 65", "invalid_card", "$.payment_method.display_brand", func(b map[string]any) { pm(b)["display_brand"] = strings.Repeat("b", 65) }},
		{"wallet of 65", "invalid_card", "$.payment_method.display_wallet_type", func(b map[string]any) { pm(b)["display_wallet_type"] = strings.Repeat("w", 65) }},
		{"holder name of 257", "invalid_card", "$.payment_method.name", func(b map[string]any) { pm(b)["name"] = strings.Repeat("n", 257) }},
		{"checkout_session_id of 257", "invalid_allowance", "$.allowance.checkout_session_id", func(b map[string]any) { al(b)["checkout_session_id"] = "cs_" + strings.Repeat("x", 254) }},
		{"21 risk signals", "invalid_request", "$.risk_signals", func(b map[string]any) {
			b["risk_signals"] = slices.Repeat([]map[string]any{{"type": "card_testing", "score": 1, "action": "authorized"}}, 21)
		}},
	} {
		b := safetyDelegateBody("cs_bounded")
		tc.mod(b)
		e.mustDelegateRefusal(e.do(http.MethodPost, delegatePath, b), http.StatusBadRequest, tc.code, tc.param)
	}
	if n := dbInt(e, `SELECT count(*) FROM vault_tokens`); n != 0 {
		t.Errorf("refused delegations stored %d tokens", n)
	}
	// At the limits, a delegation is accepted.
	b := safetyDelegateBody("cs_bounded")
	full := map[string]string{}
	for i := range 50 {
		full[fmt.Sprintf("%040d", i)] = strings.Repeat("v", 500)
	}
	b["metadata"] = full
	pm(b)["display_brand"] = strings.Repeat("b", 64)
	if r := e.do(http.MethodPost, delegatePath, b); r.status != http.StatusCreated {
		t.Fatalf("delegation at the limits = %d %s", r.status, r.body)
	}
}

func TestVaultTokenLifeIsCapped(t *testing.T) {
	t.Parallel()
	e := mustEnv(t)
	b := safetyDelegateBody("cs_capped")
	b["allowance"].(map[string]any)["expires_at"] = "2099-01-01T00:00:00Z"
	if r := e.do(http.MethodPost, delegatePath, b); r.status != http.StatusCreated {
		t.Fatalf("delegate = %d %s", r.status, r.body)
	}
	// The test server keeps the default cap of 7 days from creation.
	life := dbText(e, `SELECT (expires_at - created_at)::text FROM vault_tokens`)
	if life != "7 days" {
		t.Errorf("a token asking for 2099 may pay for %s, want 7 days", life)
	}
}
