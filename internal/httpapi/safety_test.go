package httpapi_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/httpapi"
	"github.com/agentic-commerce/agentic-commerce-server/internal/payment"
	"github.com/agentic-commerce/agentic-commerce-server/internal/postgres"
	"github.com/agentic-commerce/agentic-commerce-server/internal/testkit"
)

// ---------------------------------------------------------------------------------
// Helpers (prefixed "safety" so they cannot collide with other test files).

const (
	safetyKeyA  = "key-a-0123456789abcdef"
	safetyKeyA2 = "key-a2-0123456789abcdef"
	safetyKeyB  = "key-b-0123456789abcdef"
)

var (
	safetySecretOne = []byte("secret-one-0123456789abcdef0123456789")
	safetySecretTwo = []byte("secret-two-0123456789abcdef0123456789")
)

// safetyWithKeys configures two platforms, platform_a with two keys (a rotation).
func safetyWithKeys(c *httpapi.Config) {
	c.APIKeys = []httpapi.APIKey{
		{Name: "platform_a", Key: safetyKeyA},
		{Name: "platform_a", Key: safetyKeyA2},
		{Name: "platform_b", Key: safetyKeyB},
	}
}

func safetyWithSecrets(c *httpapi.Config) {
	c.SigningSecrets = [][]byte{safetySecretOne, safetySecretTwo}
}

// safetyAuth returns the Authorization header pair for key.
func safetyAuth(key string) []string { return []string{"Authorization", "Bearer " + key} }

// safetyCreateBody is a create request as raw JSON, so tests control its exact bytes.
const safetyCreateBody = `{"items":[{"id":"item_123","quantity":2}],"fulfillment_address":{"name":"John Doe","line_one":"1234 Chat Road","city":"San Francisco","state":"CA","country":"US","postal_code":"94131"}}`

const safetyCompleteBody = `{"payment_data":{"token":"tok_visa","provider":"stripe"}}`

// safetyKeyRow is the stored state of one idempotency key. body is the stored
// response as JSON: a response kept compressed (gzipped) is decompressed.
type safetyKeyRow struct {
	caller, state, claimID string
	status                 *int32
	body                   []byte
	gzipped                bool
}

// completed reports whether the key has its response, kept as JSON or compressed.
func (r safetyKeyRow) completed() bool { return r.state == "completed" || r.state == "completed_gzip" }

// safetyKeyRows returns the idempotency_keys rows holding key.
func safetyKeyRows(e *testEnv, key string) []safetyKeyRow {
	e.t.Helper()
	rows, err := e.pool.Query(context.Background(),
		`SELECT caller, state, claim_id, response_status, response_body FROM idempotency_keys WHERE key = $1 ORDER BY caller, path`, key)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []safetyKeyRow
	for rows.Next() {
		var r safetyKeyRow
		if err := rows.Scan(&r.caller, &r.state, &r.claimID, &r.status, &r.body); err != nil {
			e.t.Fatal(err)
		}
		if r.gzipped = r.state == "completed_gzip"; r.gzipped {
			r.body = safetyGunzip(e.t, r.body)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// safetyReadySession creates a session that is ready for payment, with headers (e.g.
// Authorization) on every request.
func safetyReadySession(e *testEnv, headers ...string) string {
	e.t.Helper()
	s := e.mustSession(e.do(http.MethodPost, "/checkout_sessions",
		map[string]any{"items": items("item_123", 1), "buyer": buyer, "fulfillment_address": address}, headers...), http.StatusCreated)
	id := s["id"].(string)
	s = e.mustSession(e.do(http.MethodPost, "/checkout_sessions/"+id,
		map[string]any{"fulfillment_option_id": "standard_shipping"}, headers...), http.StatusOK)
	if s["status"] != "ready_for_payment" {
		e.t.Fatalf("session %s is %v: %v", id, s["status"], messages(s))
	}
	return id
}

// safetyDelegateBody is a valid delegate_payment request bound to sessionID.
func safetyDelegateBody(sessionID string) map[string]any {
	return map[string]any{
		"payment_method": map[string]any{
			"type": "card", "card_number_type": "fpan", "number": "4242424242424242",
			"display_card_funding_type": "credit", "metadata": map[string]string{},
		},
		"allowance": map[string]any{
			"reason": "one_time", "max_amount": 100000, "currency": "usd",
			"checkout_session_id": sessionID, "merchant_id": "merchant_123",
			"expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
		},
		"risk_signals": []map[string]any{{"type": "card_testing", "score": 10, "action": "authorized"}},
		"metadata":     map[string]string{"source": "safety_test"},
	}
}

// safetyLockSession holds the row of session id locked, as a request working on it
// would, until release (or the end of the test): requests on the session wait for it.
func safetyLockSession(e *testEnv, id string) (release func()) {
	e.t.Helper()
	return safetyLockRow(e, "checkout_sessions", id)
}

// safetyLockRow is safetyLockSession for the row id of table (a constant of the test).
func safetyLockRow(e *testEnv, table, id string) (release func()) {
	e.t.Helper()
	return safetyLock(e, `SELECT id FROM `+table+` WHERE id = $1 FOR UPDATE`, id)
}

// safetyLock runs sql with args in a transaction left open, holding the locks sql
// takes, until release (or the end of the test).
func safetyLock(e *testEnv, sql string, args ...any) (release func()) {
	e.t.Helper()
	ctx := context.Background()
	conn, err := e.pool.Acquire(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		conn.Release()
		e.t.Fatal(err)
	}
	var once sync.Once
	end := func() error {
		var err error
		once.Do(func() { err = tx.Rollback(ctx); conn.Release() })
		return err
	}
	e.t.Cleanup(func() { _ = end() })
	if _, err := tx.Exec(ctx, sql, args...); err != nil {
		e.t.Fatal(err)
	}
	return func() {
		e.t.Helper()
		if err := end(); err != nil {
			e.t.Fatal(err)
		}
	}
}

// safetySign returns the base64url Signature of body at ts.
func safetySign(secret []byte, ts, body string) string {
	return base64.RawURLEncoding.EncodeToString(httpapi.Sign(secret, ts, []byte(body)))
}

// safetyTS is an RFC 3339 timestamp d away from now.
func safetyTS(d time.Duration) string { return time.Now().Add(d).UTC().Format(time.RFC3339Nano) }

// safetySignedDo sends body (no body when "") signed with secret at ts.
func safetySignedDo(e *testEnv, secret []byte, ts, method, path, body string, headers ...string) response {
	e.t.Helper()
	var b any
	if body != "" {
		b = body
	}
	h := append([]string{"Signature", safetySign(secret, ts, body), "Timestamp", ts}, headers...)
	return e.do(method, path, b, h...)
}

// safetySend is e.do for goroutines and special clients: it returns transport errors
// instead of failing the test.
func safetySend(client *http.Client, method, url, body string, headers ...string) (response, error) {
	var b any
	if body != "" {
		b = body
	}
	r, err := (&testkit.Client{HTTP: client}).Do(method, url, b, headers...)
	if err != nil {
		return response{}, err
	}
	return response{status: r.Status, header: r.Header, body: r.Body}, nil
}

// safetyWaitFor polls cond until it holds or fails the test after 10 s.
func safetyWaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// safetyAwait is what done delivers: the answer of a first request (what) that waited on
// a lock the test has just released, which must come within seconds.
func safetyAwait[T any](t *testing.T, done <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-done:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not finish after the lock was released", what)
		var zero T
		return zero
	}
}

func safetyMustReplay(t *testing.T, r response, first response) {
	t.Helper()
	if r.status != first.status {
		t.Fatalf("replay status = %d, want %d; body: %s", r.status, first.status, r.body)
	}
	if got := r.header.Get("Idempotent-Replayed"); got != "true" {
		t.Errorf("Idempotent-Replayed = %q, want true", got)
	}
	if !bytes.Equal(r.body, first.body) {
		t.Errorf("replayed body differs:\nfirst:  %s\nreplay: %s", first.body, r.body)
	}
}

func safetyMustNotReplay(t *testing.T, r response) {
	t.Helper()
	if got := r.header.Get("Idempotent-Replayed"); got != "" {
		t.Errorf("Idempotent-Replayed = %q on a response that was not replayed; body: %s", got, r.body)
	}
}

// ---------------------------------------------------------------------------------
// Idempotency.

func TestIdempotencyReplaysCreateBytewise(t *testing.T) {
	t.Parallel()
	e := mustEnv(t)
	first := e.do(http.MethodPost, "/checkout_sessions", safetyCreateBody, "Idempotency-Key", "k1")
	e.mustSession(first, http.StatusCreated)
	safetyMustNotReplay(t, first)
	if got := first.header.Get("Idempotency-Key"); got != "k1" {
		t.Errorf("Idempotency-Key echo = %q", got)
	}

	second := e.do(http.MethodPost, "/checkout_sessions", safetyCreateBody, "Idempotency-Key", "k1")
	e.mustSession(second, http.StatusCreated)
	safetyMustReplay(t, second, first)
	if got := second.header.Get("Content-Type"); got != "application/json" {
		t.Errorf("replay Content-Type = %q", got)
	}
	if n := dbInt(e, `SELECT count(*) FROM checkout_sessions`); n != 1 {
		t.Fatalf("checkout_sessions = %d after a replay, want 1", n)
	}

	// The same request with other key order and spacing is the same request.
	reordered := "{\n  \"fulfillment_address\" : {\"postal_code\":\"94131\",\"country\":\"US\",\"state\":\"CA\",\"city\":\"San Francisco\",\"line_one\":\"1234 Chat Road\",\"name\":\"John Doe\"},\n" +
		"  \"items\": [ { \"quantity\": 2, \"id\": \"item_123\" } ]\n}\n"
	third := e.do(http.MethodPost, "/checkout_sessions", reordered, "Idempotency-Key", "k1")
	safetyMustReplay(t, third, first)

	// null is not absence: that is another body, so a conflict.
	withNull := strings.TrimSuffix(safetyCreateBody, "}") + `,"buyer":null}`
	e.mustError(e.do(http.MethodPost, "/checkout_sessions", withNull, "Idempotency-Key", "k1"),
		http.StatusConflict, "idempotency_conflict", "")
	if n := dbInt(e, `SELECT count(*) FROM checkout_sessions`); n != 1 {
		t.Errorf("checkout_sessions = %d, want 1", n)
	}
	// The same null body under a fresh key is a fine request of its own.
	e.mustSession(e.do(http.MethodPost, "/checkout_sessions", withNull, "Idempotency-Key", "k2"), http.StatusCreated)
	if n := dbInt(e, `SELECT count(*) FROM idempotency_keys WHERE state <> 'in_flight'`); n != 2 {
		t.Errorf("completed keys = %d, want 2", n)
	}
}

// A replay is not a refusal: the create's claim rides its first read, where the run
// that found the key recorded stops as refused, and that refusal must not reach the
// access log (nor the refusals metric, counted from the same code).
func TestIdempotencyReplayIsNotLoggedAsARefusal(t *testing.T) {
	t.Parallel()
	e := mustEnv(t)
	first := e.do(http.MethodPost, "/checkout_sessions", safetyCreateBody, "Idempotency-Key", "logged")
	safetyMustReplay(t, e.do(http.MethodPost, "/checkout_sessions", safetyCreateBody, "Idempotency-Key", "logged"), first)
	var replayLines int
	for line := range strings.Lines(e.logs.String()) {
		var entry map[string]any
		if json.Unmarshal([]byte(line), &entry) != nil || entry["msg"] != "request" || entry["route"] != "/checkout_sessions" {
			continue
		}
		replayLines++
		if code, ok := entry["error_code"]; ok {
			t.Errorf("access log of a create answered %v: error_code %v", entry["status"], code)
		}
	}
	if replayLines != 2 {
		t.Errorf("%d access log lines of the creates, want 2", replayLines)
	}
}

func TestIdempotencyReplaysCompleteDelegateAndRefusals(t *testing.T) {
	t.Parallel()
	e := mustEnv(t)
	id := safetyReadySession(e)

	path := "/checkout_sessions/" + id + "/complete"
	first := e.do(http.MethodPost, path, safetyCompleteBody, "Idempotency-Key", "pay-1")
	m := e.mustCompleted(first)
	order, _ := m["order"].(map[string]any)
	if m["status"] != "completed" || order == nil || order["checkout_session_id"] != id {
		t.Fatalf("complete answered %s", first.body)
	}
	second := e.do(http.MethodPost, path, safetyCompleteBody, "Idempotency-Key", "pay-1")
	safetyMustReplay(t, second, first)
	if n := dbInt(e, `SELECT count(*) FROM orders WHERE checkout_session_id = $1`, id); n != 1 {
		t.Errorf("orders = %d, want 1", n)
	}
	// A retry without the key is not a replay: the session is completed already.
	r := e.do(http.MethodPost, path, safetyCompleteBody)
	if r.status < 400 || r.status >= 500 {
		t.Errorf("complete again without a key = %d %s", r.status, r.body)
	}
	if n := dbInt(e, `SELECT count(*) FROM orders`); n != 1 {
		t.Errorf("orders = %d, want 1", n)
	}

	// Delegate payment: the same vt_ id, one token row.
	id2 := safetyReadySession(e)
	del := safetyDelegateBody(id2)
	d1 := e.do(http.MethodPost, "/agentic_commerce/delegate_payment", del, "Idempotency-Key", "del-1")
	if d1.status != http.StatusCreated {
		t.Fatalf("delegate = %d %s", d1.status, d1.body)
	}
	vt, _ := d1.json(t)["id"].(string)
	if !strings.HasPrefix(vt, "vt_") {
		t.Fatalf("token id = %q", vt)
	}
	d2 := e.do(http.MethodPost, "/agentic_commerce/delegate_payment", del, "Idempotency-Key", "del-1")
	safetyMustReplay(t, d2, d1)
	if got := d2.json(t)["id"]; got != vt {
		t.Errorf("replayed token id = %v, want %s", got, vt)
	}
	if md, _ := d2.json(t)["metadata"].(map[string]any); md["idempotency_key"] != "del-1" {
		t.Errorf("metadata = %v", md)
	}
	if n := dbInt(e, `SELECT count(*) FROM vault_tokens`); n != 1 {
		t.Errorf("vault_tokens = %d, want 1", n)
	}

	// A refusal is stored and replayed as it was.
	bad := `{"items":[{"id":"nope","quantity":1}]}`
	b1 := e.do(http.MethodPost, "/checkout_sessions", bad, "Idempotency-Key", "bad-1")
	e.mustError(b1, http.StatusBadRequest, "invalid_item_id", "$.items[0].id")
	safetyMustNotReplay(t, b1)
	b2 := e.do(http.MethodPost, "/checkout_sessions", bad, "Idempotency-Key", "bad-1")
	e.mustError(b2, http.StatusBadRequest, "invalid_item_id", "$.items[0].id")
	safetyMustReplay(t, b2, b1)
	rows := safetyKeyRows(e, "bad-1")
	if len(rows) != 1 || !rows[0].completed() || rows[0].status == nil || *rows[0].status != 400 {
		t.Errorf("bad-1 rows = %+v", rows)
	}
}

func TestIdempotencyConflictCreatesNothing(t *testing.T) {
	t.Parallel()
	e := mustEnv(t)
	first := e.do(http.MethodPost, "/checkout_sessions", safetyCreateBody, "Idempotency-Key", "k")
	e.mustSession(first, http.StatusCreated)

	other := `{"items":[{"id":"item_456","quantity":1}]}`
	r := e.do(http.MethodPost, "/checkout_sessions", other, "Idempotency-Key", "k")
	m := e.mustError(r, http.StatusConflict, "idempotency_conflict", "")
	if m["type"] != "invalid_request" {
		t.Errorf("type = %v", m["type"])
	}
	safetyMustNotReplay(t, r)
	if n := dbInt(e, `SELECT count(*) FROM checkout_sessions`); n != 1 {
		t.Errorf("checkout_sessions = %d, want 1", n)
	}
	if n := dbInt(e, `SELECT count(*) FROM line_items WHERE variant_id = 'item_456'`); n != 0 {
		t.Errorf("the conflicting body was applied: %d item_456 lines", n)
	}
	// The stored response is untouched: the original body still replays.
	safetyMustReplay(t, e.do(http.MethodPost, "/checkout_sessions", safetyCreateBody, "Idempotency-Key", "k"), first)

	// An update conflict leaves the session as it was.
	id := first.json(t)["id"].(string)
	u1 := e.do(http.MethodPost, "/checkout_sessions/"+id, `{"fulfillment_option_id":"standard_shipping"}`, "Idempotency-Key", "u")
	e.mustSession(u1, http.StatusOK)
	e.mustError(e.do(http.MethodPost, "/checkout_sessions/"+id, `{"fulfillment_option_id":"express_shipping"}`, "Idempotency-Key", "u"),
		http.StatusConflict, "idempotency_conflict", "")
	g := e.mustSession(e.do(http.MethodGet, "/checkout_sessions/"+id, nil), http.StatusOK)
	if g["fulfillment_option_id"] != "standard_shipping" {
		t.Errorf("fulfillment_option_id = %v after a refused conflicting update", g["fulfillment_option_id"])
	}
}

// Regression (found on 740cfa0, fixed in c6d1c95 by idempotency.Decode): a body with a
// stray '}' or ']' after the JSON value hashed like the valid value, so under a used key
// it was answered with the stored 201 instead of being refused.
func TestIdempotencyMalformedBodyIsNotAReplay(t *testing.T) {
	t.Parallel()
	e := mustEnv(t)
	e.mustSession(e.do(http.MethodPost, "/checkout_sessions", safetyCreateBody, "Idempotency-Key", "k"), http.StatusCreated)

	// Without a key the server refuses this body.
	e.mustError(e.do(http.MethodPost, "/checkout_sessions", safetyCreateBody+"}"), http.StatusBadRequest, "invalid_json", "")
	// Under the used key it is a different body: a conflict, not the stored 201.
	r := e.do(http.MethodPost, "/checkout_sessions", safetyCreateBody+"}", "Idempotency-Key", "k")
	if r.status == http.StatusCreated {
		t.Errorf("a malformed body (valid JSON + \"}\") was answered with the replayed 201 (Idempotent-Replayed=%q)",
			r.header.Get("Idempotent-Replayed"))
	} else {
		e.mustError(r, http.StatusConflict, "idempotency_conflict", "")
	}
}

func TestIdempotencyKeysAreScopedToPathAndCaller(t *testing.T) {
	t.Parallel()
	t.Run("path", func(t *testing.T) {
		t.Parallel()
		e := mustEnv(t)
		s1 := e.mustCreate(map[string]any{"items": items("item_123", 1)})["id"].(string)
		s2 := e.mustCreate(map[string]any{"items": items("item_456", 1)})["id"].(string)
		r1 := e.do(http.MethodPost, "/checkout_sessions/"+s1, `{"buyer":{"first_name":"A","last_name":"B","email":"a@example.com"}}`, "Idempotency-Key", "same")
		r2 := e.do(http.MethodPost, "/checkout_sessions/"+s2, `{"fulfillment_address":{"name":"John Doe","line_one":"1234 Chat Road","city":"San Francisco","state":"CA","country":"US","postal_code":"94131"}}`, "Idempotency-Key", "same")
		if e.mustSession(r1, http.StatusOK)["id"] != s1 || e.mustSession(r2, http.StatusOK)["id"] != s2 {
			t.Fatalf("ids = %s / %s", r1.body, r2.body)
		}
		safetyMustNotReplay(t, r1)
		safetyMustNotReplay(t, r2)
		// And on create, too.
		c := e.do(http.MethodPost, "/checkout_sessions", safetyCreateBody, "Idempotency-Key", "same")
		e.mustSession(c, http.StatusCreated)
		safetyMustNotReplay(t, c)
		if n := dbInt(e, `SELECT count(*) FROM idempotency_keys WHERE key = 'same'`); n != 3 {
			t.Errorf("rows for key 'same' = %d, want 3 (one per path)", n)
		}
	})
	t.Run("caller", func(t *testing.T) {
		t.Parallel()
		e := mustEnv(t, safetyWithKeys)
		a := e.do(http.MethodPost, "/checkout_sessions", safetyCreateBody, append(safetyAuth(safetyKeyA), "Idempotency-Key", "shared")...)
		b := e.do(http.MethodPost, "/checkout_sessions", `{"items":[{"id":"item_456","quantity":1}]}`, append(safetyAuth(safetyKeyB), "Idempotency-Key", "shared")...)
		sa := e.mustSession(a, http.StatusCreated)
		sb := e.mustSession(b, http.StatusCreated)
		safetyMustNotReplay(t, b)
		if sa["id"] == sb["id"] {
			t.Fatalf("both callers got session %v", sa["id"])
		}
		// Even the same body is not a replay across callers.
		b2 := e.do(http.MethodPost, "/checkout_sessions", safetyCreateBody, append(safetyAuth(safetyKeyB), "Idempotency-Key", "shared2")...)
		a2 := e.do(http.MethodPost, "/checkout_sessions", safetyCreateBody, append(safetyAuth(safetyKeyA), "Idempotency-Key", "shared2")...)
		e.mustSession(b2, http.StatusCreated)
		e.mustSession(a2, http.StatusCreated)
		safetyMustNotReplay(t, a2)
		if n := dbInt(e, `SELECT count(*) FROM checkout_sessions`); n != 4 {
			t.Errorf("checkout_sessions = %d, want 4", n)
		}
		rows := safetyKeyRows(e, "shared")
		if len(rows) != 2 || rows[0].caller != "platform_a" || rows[1].caller != "platform_b" {
			t.Errorf("rows = %+v", rows)
		}
		// platform_a's rotated key is the same caller: it replays platform_a's answer.
		safetyMustReplay(t, e.do(http.MethodPost, "/checkout_sessions", safetyCreateBody,
			append(safetyAuth(safetyKeyA2), "Idempotency-Key", "shared")...), a)
	})
}

func TestIdempotencyInFlightIsAnsweredAtOnce(t *testing.T) {
	t.Parallel()
	e := mustEnv(t)
	id := e.mustCreate(map[string]any{"items": items("item_123", 1)})["id"].(string)

	release := safetyLockSession(e, id)

	path := e.server.URL + "/checkout_sessions/" + id
	body := `{"fulfillment_option_id":"standard_shipping","fulfillment_address":{"name":"John Doe","line_one":"1234 Chat Road","city":"San Francisco","state":"CA","country":"US","postal_code":"94131"}}`
	type result struct {
		r   response
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := safetySend(e.server.Client(), http.MethodPost, path, body, "Idempotency-Key", "K")
		done <- result{r, err}
	}()
	// An update finds its key free in its first round trip and holds it, first in its
	// transaction, with two advisory locks (the key's, and the key's with its body).
	safetyWaitFor(t, "the hold of K", func() bool { return safetyHeldKeyLocks(e) == 2 })
	select {
	case res := <-done:
		t.Fatalf("the first request finished while the session row was locked: %d %s %v", res.r.status, res.r.body, res.err)
	default:
	}

	safetyMustRefuseDuplicates(e, http.MethodPost, "/checkout_sessions/"+id, body, `{"fulfillment_option_id":"express_shipping"}`)

	release()
	res := safetyAwait(t, done, "the first request")
	if res.err != nil {
		t.Fatal(res.err)
	}
	s := e.mustSession(res.r, http.StatusOK)
	if s["status"] != "ready_for_payment" || s["fulfillment_option_id"] != "standard_shipping" {
		t.Errorf("first update = %s", res.r.body)
	}
	safetyMustNotReplay(t, res.r)
	safetyMustReplay(t, e.do(http.MethodPost, "/checkout_sessions/"+id, body, "Idempotency-Key", "K"), res.r)
	rows := safetyKeyRows(e, "K")
	if len(rows) != 1 || !rows[0].completed() || *rows[0].status != 200 || !bytes.Equal(rows[0].body, res.r.body) {
		t.Errorf("K rows = %+v", rows)
	}
}

func TestIdempotencyRecoversADeadClaimOnly(t *testing.T) {
	t.Parallel()
	e := mustEnvWith(t, time.Second)
	ctx := context.Background()
	body := `{"items":[{"id":"item_123","quantity":1}]}`
	insert := func(key, claimedAt string) {
		t.Helper()
		if _, err := e.pool.Exec(ctx, `INSERT INTO idempotency_keys (caller, method, path, key, request_hash, claim_id, state, claimed_at)
			VALUES ('', 'POST', '/checkout_sessions', $1, $2, 'clm_dead', 'in_flight', `+claimedAt+`)`,
			key, keyedRequestHash(body)); err != nil {
			t.Fatal(err)
		}
	}

	insert("dead", "now() - interval '1 hour'")
	r := e.do(http.MethodPost, "/checkout_sessions", body, "Idempotency-Key", "dead")
	e.mustSession(r, http.StatusCreated)
	safetyMustNotReplay(t, r)
	rows := safetyKeyRows(e, "dead")
	if len(rows) != 1 || !rows[0].completed() || *rows[0].status != 201 || rows[0].claimID == "clm_dead" {
		t.Errorf("recovered row = %+v", rows)
	}
	safetyMustReplay(t, e.do(http.MethodPost, "/checkout_sessions", body, "Idempotency-Key", "dead"), r)

	insert("alive", "now()")
	e.mustError(e.do(http.MethodPost, "/checkout_sessions", body, "Idempotency-Key", "alive"),
		http.StatusConflict, "idempotency_in_flight", "")
	if n := dbInt(e, `SELECT count(*) FROM checkout_sessions`); n != 1 {
		t.Errorf("checkout_sessions = %d, want 1", n)
	}
	rows = safetyKeyRows(e, "alive")
	if len(rows) != 1 || rows[0].state != "in_flight" || rows[0].claimID != "clm_dead" {
		t.Errorf("fresh claim was taken over: %+v", rows)
	}
}

// A request presumed dead whose claim was taken over must not complete the key (nor
// commit its work) when it wakes up: the claim_id compare fences it. A completion paid
// through a PSP commits its key's claim with its first phase, so that the key stays
// claimed while the PSP answers, outside any transaction (every other checkout write
// holds its key in the work's transaction, which ends with the request however it
// ends, and has no claim to recover). Here the first request's PSP call is held until
// the session is locked, so its last phase waits on the lock past
// IDEMPOTENCY_RECOVER_AFTER, and a retry takes its claim over.
func TestIdempotencyRecoveredClaimFencesTheOldRequest(t *testing.T) {
	t.Parallel()
	e := mustEnvWith(t, time.Second)
	charging, locked := make(chan struct{}), make(chan struct{})
	var firstCharge sync.Once
	e.gateway = &payment.CountingGateway{Gateway: &payment.ScriptedGateway{InCharge: func(payment.Charge) {
		firstCharge.Do(func() {
			close(charging)
			<-locked
		})
	}}}
	e.server = e.startServer(time.Second)
	ctx := context.Background()
	id, _ := mustReadySession(e)

	url := e.server.URL + "/checkout_sessions/" + id + "/complete"
	encoded, err := json.Marshal(e.completeBody("tok_visa"))
	if err != nil {
		t.Fatal(err)
	}
	body := string(encoded)
	type result struct {
		r   response
		err error
	}
	done := make(chan result, 2)
	send := func() {
		r, err := safetySend(e.server.Client(), http.MethodPost, url, body, "Idempotency-Key", "K")
		done <- result{r, err}
	}
	claimID := func() string {
		var c string
		_ = e.pool.QueryRow(ctx, `SELECT claim_id FROM idempotency_keys WHERE key = 'K' AND state = 'in_flight'`).Scan(&c)
		return c
	}
	go send()
	select {
	case <-charging:
	case <-time.After(10 * time.Second):
		t.Fatal("the first request did not reach the PSP")
	}
	// The first phase committed the claim with the payment attempt.
	firstClaim := claimID()
	if firstClaim == "" {
		t.Fatal("no claim of K in flight while the PSP answers")
	}
	release := safetyLockSession(e, id)
	close(locked)
	// Past recoverAfter the first request is presumed dead; a retry takes the key over.
	time.Sleep(1100 * time.Millisecond)
	go send()
	safetyWaitFor(t, "the recovered claim", func() bool { return claimID() != firstClaim })
	release()

	var ok, lost []response
	for range 2 {
		select {
		case res := <-done:
			if res.err != nil {
				t.Fatal(res.err)
			}
			if res.r.status == http.StatusOK {
				ok = append(ok, res.r)
			} else {
				lost = append(lost, res.r)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("requests did not finish")
		}
	}
	if len(ok) != 1 || len(lost) != 1 {
		t.Fatalf("%d answered 200 and %d did not; want one each", len(ok), len(lost))
	}
	// The old request is fenced whichever takes the session's lock first: first, its
	// record fails and its last phase rolls back (409, the key taken over); second, the
	// retry resumed the attempt and completed the session, which the old request finds
	// completed before it records anything.
	switch lost[0].status {
	case http.StatusConflict:
		e.mustError(lost[0], http.StatusConflict, "idempotency_in_flight", "")
	default:
		e.mustError(lost[0], http.StatusMethodNotAllowed, "checkout_session_completed", "")
	}
	e.mustCompleted(ok[0])
	rows := safetyKeyRows(e, "K")
	if len(rows) != 1 || !rows[0].completed() || *rows[0].status != 200 || !bytes.Equal(rows[0].body, ok[0].body) {
		t.Errorf("K rows = %+v", rows)
	}
	if n := dbInt(e, `SELECT count(*) FROM orders WHERE checkout_session_id = $1`, id); n != 1 {
		t.Errorf("orders = %d, want 1", n)
	}
	// Both requests asked the PSP (the retry resumed the attempt), under the one
	// attempt's PSP idempotency key, which a PSP answers with its first charge.
	if n := dbInt(e, `SELECT count(*) FROM payment_attempts WHERE checkout_session_id = $1`, id); n != 1 {
		t.Errorf("payment attempts = %d, want 1", n)
	}
	safetyMustReplay(t, e.do(http.MethodPost, "/checkout_sessions/"+id+"/complete", body, "Idempotency-Key", "K"), ok[0])
}

// A completion's key is looked up before it runs, and a key found free is held first
// in the completion's transaction (a vault token's, or a PSP token's first phase): a
// duplicate arriving while that transaction waits on the session's row lock is
// answered at once, 409 for the same body and the key's conflict for another, and only
// the first completes the session.
func TestIdempotencyCompletionInFlightIsAnsweredAtOnce(t *testing.T) {
	t.Parallel()
	for _, paid := range []string{"vault token", "PSP"} {
		t.Run(paid, func(t *testing.T) {
			t.Parallel()
			e := mustEnv(t)
			id, total := mustReadySession(e)
			tok := "tok_visa"
			if paid == "vault token" {
				tok = delegate(e, id, total, "usd", visaNumber, "9871")
			}
			release := safetyLockSession(e, id)

			url := e.server.URL + "/checkout_sessions/" + id + "/complete"
			encode := func(v any) string {
				b, err := json.Marshal(v)
				if err != nil {
					t.Fatal(err)
				}
				return string(b)
			}
			body := encode(e.completeBody(tok))
			done := make(chan response, 1)
			go func() {
				r, err := safetySend(e.server.Client(), http.MethodPost, url, body, "Idempotency-Key", "K")
				if err != nil {
					t.Error(err)
				}
				done <- r
			}()
			safetyWaitFor(t, "the hold of K", func() bool { return safetyHeldKeyLocks(e) == 2 })

			other := e.completeBody(tok)
			other["buyer"] = map[string]any{"first_name": "Grace", "last_name": "Hopper", "email": "grace@example.com"}
			safetyMustRefuseDuplicates(e, http.MethodPost, "/checkout_sessions/"+id+"/complete", body, encode(other))

			release()
			first := safetyAwait(t, done, "the completion")
			e.mustCompleted(first)
			safetyMustNotReplay(t, first)
			safetyMustReplay(t, e.do(http.MethodPost, "/checkout_sessions/"+id+"/complete", body, "Idempotency-Key", "K"), first)
			rows := safetyKeyRows(e, "K")
			if len(rows) != 1 || !rows[0].completed() || *rows[0].status != 200 {
				t.Errorf("K rows = %+v", rows)
			}
			if n := dbInt(e, `SELECT count(*) FROM orders WHERE checkout_session_id = $1`, id); n != 1 {
				t.Errorf("orders = %d, want 1", n)
			}
		})
	}
}

// The admin API's writes look their key up before they run, as the completion does, and
// hold a key found free first in their transaction, which waits here on the order's or
// the discount's row lock (a discount's create: on its code's index entry): a duplicate
// is answered at once, 409 for the same body and the key's conflict for another, and
// only the first applies. A refund through the PSP holds the key the same way in its
// first phase, which inserts the key's claim.
func TestAdminWritesInFlightAreAnsweredAtOnce(t *testing.T) {
	t.Parallel()
	e := ordersEnv(t)
	id, _, _ := ordersMustOrder(e, "tok_visa")
	// Another order for the refund through the PSP, and one to fulfil and cancel: the
	// key is the path's.
	paid, _, _ := ordersMustOrder(e, "tok_visa")
	shipped, lines := fulfilOrder(e, 725, "standard_shipping", "item_123", 3)
	units := func(n int) string { return `{"id":"` + lines[0] + `","quantity":` + strconv.Itoa(n) + `}` }
	auth := []string{"Authorization", "Bearer " + ordersAdminKey}
	// And one already shipped, for a fulfilment's event.
	tracked, trackedLines := fulfilOrder(e, 725, "standard_shipping", "item_123", 1)
	fulfilment := lastFulfillmentID(fulfilAdmin(e, "/admin/orders/"+tracked+"/fulfillments",
		map[string]any{"type": "shipping", "line_items": []map[string]any{{"id": trackedLines[0], "quantity": 1}}}, http.StatusCreated))
	r := e.do(http.MethodPost, "/admin/discounts", map[string]any{"code": "INFLIGHT", "title": "In flight", "percent_bps": 100}, auth...)
	if r.status != http.StatusCreated {
		t.Fatalf("create discount: %d %s", r.status, r.body)
	}
	discount := r.json(t)["id"].(string)
	lockOrder := func(id string) func() func() { return func() func() { return safetyLockRow(e, "orders", id) } }
	for _, op := range []struct {
		path, body, other string
		lock              func() (release func())
		// applied counts what the first request wrote, which the duplicates must not add to.
		applied string
	}{
		{"/admin/orders/" + id + "/status", `{"status":"confirmed"}`, `{"status":"canceled"}`, lockOrder(id),
			`SELECT count(*) FROM order_events WHERE order_id = '` + id + `' AND payload::text LIKE '%confirmed%'`},
		{"/admin/orders/" + id + "/refunds", `{"type":"store_credit","amount":100}`, `{"type":"store_credit","amount":200}`, lockOrder(id),
			`SELECT count(*) FROM refunds WHERE order_id = '` + id + `' AND type = 'store_credit'`},
		{"/admin/orders/" + paid + "/refunds", `{"type":"original_payment","amount":100}`, `{"type":"original_payment","amount":200}`, lockOrder(paid),
			`SELECT count(*) FROM refunds WHERE order_id = '` + paid + `' AND type = 'original_payment' AND status = 'succeeded' AND psp_reference IS NOT NULL`},
		{"/admin/orders/" + shipped + "/fulfillments", `{"type":"shipping","line_items":[` + units(1) + `]}`,
			`{"type":"shipping","line_items":[` + units(2) + `]}`, lockOrder(shipped),
			`SELECT count(*) FROM fulfillments WHERE order_id = '` + shipped + `'`},
		{"/admin/orders/" + shipped + "/cancellations", `{"line_items":[` + units(1) + `]}`, `{"line_items":[` + units(2) + `]}`,
			lockOrder(shipped), `SELECT count(*) FROM order_cancellations WHERE order_id = '` + shipped + `'`},
		{"/admin/orders/" + tracked + "/fulfillments/" + fulfilment + "/events", `{"type":"in_transit"}`, `{"type":"delivered"}`,
			lockOrder(tracked), `SELECT count(*) FROM fulfillment_events WHERE fulfillment_id = '` + fulfilment + `' AND type = 'in_transit'`},
		{"/admin/discounts", `{"code":"HELD","title":"Held","percent_bps":200}`, `{"code":"HELD","title":"Held","percent_bps":300}`,
			func() func() {
				// The code's index entry, inserted and not committed: the create's insert waits on it.
				return safetyLock(e, `INSERT INTO discounts (id, code, title, percent_bps) VALUES ('disc_blocker', 'HELD', 'Blocker', 1)`)
			}, `SELECT count(*) FROM discounts WHERE code = 'HELD'`},
		{"/admin/discounts/" + discount + "/disable", "", "{}", func() func() { return safetyLockRow(e, "discounts", discount) },
			`SELECT count(*) FROM discounts WHERE id = '` + discount + `' AND disabled_at IS NOT NULL`},
	} {
		release := op.lock()
		done := make(chan response, 1)
		go func() {
			r, err := safetySend(e.server.Client(), http.MethodPost, e.server.URL+op.path, op.body, append([]string{"Idempotency-Key", "K"}, auth...)...)
			if err != nil {
				t.Error(err)
			}
			done <- r
		}()
		safetyWaitFor(t, "the hold of K on "+op.path, func() bool { return safetyHeldKeyLocks(e) == 2 })
		safetyMustRefuseDuplicates(e, http.MethodPost, op.path, op.body, op.other, auth...)
		release()
		first := safetyAwait(t, done, op.path)
		if first.status != http.StatusOK && first.status != http.StatusCreated {
			t.Fatalf("%s: %d %s", op.path, first.status, first.body)
		}
		safetyMustNotReplay(t, first)
		safetyMustReplay(t, e.do(http.MethodPost, op.path, op.body, append([]string{"Idempotency-Key", "K"}, auth...)...), first)
		if n := dbInt(e, op.applied); n != 1 {
			t.Errorf("%s applied %d times, want once", op.path, n)
		}
	}
}

// safetyMustRefuseDuplicates sends body, then other, as method to path (of e's server,
// in e's version, with headers, name and value pairs, as well) with Idempotency-Key K
// while a first request with body holds K: the same body is answered at once with 409
// idempotency_in_flight and Retry-After: 1, the other body with the key's conflict
// (409, 422 from 2026-04-17).
func safetyMustRefuseDuplicates(e *testEnv, method, path, body, other string, headers ...string) {
	e.t.Helper()
	// A client timeout turns a request that waits on the lock into a failure, not a hang.
	quick := e.client()
	quick.HTTP = &http.Client{Transport: e.server.Client().Transport, Timeout: 5 * time.Second}
	send := func(body string) (response, error) {
		r, err := quick.Do(method, path, body, append([]string{"Idempotency-Key", "K"}, headers...)...)
		if err != nil {
			return response{}, err
		}
		return response{status: r.Status, header: r.Header, body: r.Body}, nil
	}
	start := time.Now()
	second, err := send(body)
	took := time.Since(start)
	if err != nil {
		e.t.Fatalf("second request with K: %v (after %v); it must be answered at once", err, took)
	}
	m := e.mustError(second, http.StatusConflict, "idempotency_in_flight", "")
	if m["type"] != "invalid_request" {
		e.t.Errorf("type = %v", m["type"])
	}
	if ra := second.header.Get("Retry-After"); ra != "1" {
		e.t.Errorf("Retry-After = %q, want 1", ra)
	}
	// The lock is held until this function returns, so a request that waited on it
	// would meet the client's timeout above. This bound catches a bounded wait (a
	// lock_timeout of a second or more), with room for a loaded machine under -race
	// through PgBouncer, where an immediate answer once took 109 ms.
	if took > time.Second {
		e.t.Errorf("in-flight answer took %v; it must not wait for the lock", took)
	}
	// A different body is still a conflict, also while in flight.
	third, err := send(other)
	if err != nil {
		e.t.Fatal(err)
	}
	conflict := http.StatusConflict
	if e.is0417() {
		conflict = http.StatusUnprocessableEntity
	}
	e.mustError(third, conflict, "idempotency_conflict", "")
}

// safetyHeldKeyLocks counts the advisory locks granted in e's database: a request that
// holds a free idempotency key holds two (HoldIdempotencyKey).
func safetyHeldKeyLocks(e *testEnv) int {
	e.t.Helper()
	return dbInt(e, `SELECT count(*) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`)
}

func TestIdempotencyServerErrorsAreNotStored(t *testing.T) {
	t.Parallel()
	e := mustEnv(t)
	ctx := context.Background()
	if _, err := e.pool.Exec(ctx, `ALTER TABLE line_items RENAME TO line_items_gone`); err != nil {
		t.Fatal(err)
	}
	r := e.do(http.MethodPost, "/checkout_sessions", safetyCreateBody, "Idempotency-Key", "K")
	m := e.mustError(r, http.StatusInternalServerError, "internal_error", "")
	if m["type"] != "processing_error" {
		t.Errorf("type = %v, want processing_error", m["type"])
	}
	if strings.Contains(string(r.body), "line_items") {
		t.Errorf("the 500 leaks internals: %s", r.body)
	}
	if rows := safetyKeyRows(e, "K"); len(rows) != 0 {
		t.Errorf("the 500 left a key row: %+v", rows)
	}
	if _, err := e.pool.Exec(ctx, `ALTER TABLE line_items_gone RENAME TO line_items`); err != nil {
		t.Fatal(err)
	}

	r = e.do(http.MethodPost, "/checkout_sessions", safetyCreateBody, "Idempotency-Key", "K")
	e.mustSession(r, http.StatusCreated)
	safetyMustNotReplay(t, r)
	rows := safetyKeyRows(e, "K")
	if len(rows) != 1 || !rows[0].completed() || rows[0].status == nil || *rows[0].status != 201 {
		t.Errorf("K rows = %+v", rows)
	}
	if n := dbInt(e, `SELECT count(*) FROM checkout_sessions`); n != 1 {
		t.Errorf("checkout_sessions = %d, want 1", n)
	}
}

func TestIdempotencyDeleteBeforeDropsOldKeysOnly(t *testing.T) {
	t.Parallel()
	e := mustEnv(t)
	ctx := context.Background()
	for _, k := range []string{"old", "new"} {
		e.mustSession(e.do(http.MethodPost, "/checkout_sessions", safetyCreateBody, "Idempotency-Key", k), http.StatusCreated)
	}
	if _, err := e.pool.Exec(ctx, `UPDATE idempotency_keys SET created_at = now() - interval '48 hours' WHERE key = 'old'`); err != nil {
		t.Fatal(err)
	}
	n, err := postgres.NewIdempotency(e.pool, time.Minute).DeleteBefore(ctx, time.Now().Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("DeleteBefore removed %d keys, want 1", n)
	}
	if got := dbInt(e, `SELECT count(*) FROM idempotency_keys WHERE key = 'old'`); got != 0 {
		t.Errorf("old key kept")
	}
	if got := dbInt(e, `SELECT count(*) FROM idempotency_keys WHERE key = 'new'`); got != 1 {
		t.Errorf("new key deleted")
	}
	// The deleted key is free again: the request runs anew.
	r := e.do(http.MethodPost, "/checkout_sessions", safetyCreateBody, "Idempotency-Key", "old")
	e.mustSession(r, http.StatusCreated)
	safetyMustNotReplay(t, r)
	if got := dbInt(e, `SELECT count(*) FROM checkout_sessions`); got != 3 {
		t.Errorf("checkout_sessions = %d, want 3", got)
	}
}

func TestIdempotencyKeyValidation(t *testing.T) {
	t.Parallel()
	e := mustEnv(t)
	long := strings.Repeat("k", 256)
	e.mustError(e.do(http.MethodPost, "/checkout_sessions", safetyCreateBody, "Idempotency-Key", long),
		http.StatusBadRequest, "invalid_idempotency_key", "")
	e.mustSession(e.do(http.MethodPost, "/checkout_sessions", safetyCreateBody, "Idempotency-Key", long[:255]), http.StatusCreated)
	if n := dbInt(e, `SELECT count(*) FROM checkout_sessions`); n != 1 {
		t.Errorf("checkout_sessions = %d, want 1", n)
	}
}

// Regression (found on 740cfa0, fixed in c6d1c95): a key PostgreSQL cannot store as
// text (bytes that are not UTF-8, which HTTP allows as obs-text) failed the claim's
// INSERT and was answered 500 "retry later with the same Idempotency-Key", which can
// never succeed. It is the client's error: 400 invalid_idempotency_key.
func TestIdempotencyKeyThatIsNotUTF8IsAClientError(t *testing.T) {
	t.Parallel()
	e := mustEnv(t)
	r := e.do(http.MethodPost, "/checkout_sessions", safetyCreateBody, "Idempotency-Key", "key-\xff\xfe")
	if r.status >= 500 {
		t.Errorf("a non-UTF-8 Idempotency-Key got %d %s; want 400 invalid_idempotency_key", r.status, r.body)
	} else {
		e.mustError(r, http.StatusBadRequest, "invalid_idempotency_key", "")
	}
}

// Regression (found on 740cfa0, fixed in c6d1c95 by withSanePath): a session id
// PostgreSQL cannot hold as text (a NUL or bytes that are not UTF-8, sent
// percent-encoded) failed the query, or the claim of its path, and was answered 500
// "retry later", with or without an Idempotency-Key. No such session exists: 404.
func TestMalformedSessionIDIsNotFound(t *testing.T) {
	t.Parallel()
	e := mustEnv(t)
	for _, tc := range []struct {
		method, path string
		body         any
		headers      []string
	}{
		{http.MethodGet, "/checkout_sessions/%00", nil, nil},
		{http.MethodGet, "/checkout_sessions/cs_%FF", nil, nil},
		{http.MethodPost, "/checkout_sessions/cs_%FF", `{"buyer":null}`, nil},
		{http.MethodPost, "/checkout_sessions/cs_%FF/cancel", nil, nil},
		{http.MethodPost, "/checkout_sessions/cs_%00", `{"fulfillment_option_id":"standard_shipping"}`, []string{"Idempotency-Key", "k"}},
	} {
		r := e.do(tc.method, tc.path, tc.body, tc.headers...)
		if r.status != http.StatusNotFound {
			t.Errorf("%s %s (headers %v) = %d %s; want 404 not_found", tc.method, tc.path, tc.headers, r.status, r.body)
			continue
		}
		e.mustError(r, http.StatusNotFound, "not_found", "")
	}
}

// Same Idempotency-Key, another card: a different body, so 409, never the token of the
// first card. The card number and CVC are not hashed in the clear (PCI DSS 3.5); they
// are hashed as keyed fingerprints.
//
// Regression (found on c6d1c95, fixed in f2caff1): without CARD_FINGERPRINT_KEY number,
// cvc and cryptogram were deleted from the hashed body, so a retry with another card
// under the same key was "the same request" and replayed the first card's vt_ token.
func TestDelegatePaymentKeyWithAnotherCardIsAConflict(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opts []func(*httpapi.Config)
	}{
		{"with fingerprint key", nil},
		{"without fingerprint key", []func(*httpapi.Config){func(c *httpapi.Config) { c.CardFingerprintKey = nil }}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := mustEnv(t, tc.opts...)
			id := safetyReadySession(e)
			visa := safetyDelegateBody(id)
			first := e.do(http.MethodPost, "/agentic_commerce/delegate_payment", visa, "Idempotency-Key", "dp")
			if first.status != http.StatusCreated {
				t.Fatalf("delegate = %d %s", first.status, first.body)
			}
			// The identical request replays.
			safetyMustReplay(t, e.do(http.MethodPost, "/agentic_commerce/delegate_payment", visa, "Idempotency-Key", "dp"), first)

			for _, change := range []struct{ field, value string }{
				{"number", "5555555555554444"}, // another card (Mastercard test number)
				{"cvc", "123"},
			} {
				other := safetyDelegateBody(id)
				other["allowance"] = visa["allowance"]
				other["payment_method"].(map[string]any)[change.field] = change.value
				r := e.do(http.MethodPost, "/agentic_commerce/delegate_payment", other, "Idempotency-Key", "dp")
				if r.status != http.StatusConflict {
					t.Errorf("same key, %s changed: %d (Idempotent-Replayed=%q) %s; want 409 idempotency_conflict",
						change.field, r.status, r.header.Get("Idempotent-Replayed"), r.body)
					continue
				}
				e.mustError(r, http.StatusConflict, "idempotency_conflict", "")
			}
			if n := dbInt(e, `SELECT count(*) FROM vault_tokens`); n != 1 {
				t.Errorf("vault_tokens = %d, want 1", n)
			}
		})
	}
}

// safetyInstance is a second server instance on e's database (as behind a load
// balancer, or the same instance after a restart), configured like mustEnv plus opts.
func safetyInstance(e *testEnv, opts ...func(*httpapi.Config)) *testEnv {
	e.t.Helper()
	other := *e
	other.server = e.startServer(time.Minute, opts...)
	return &other
}

// Idempotency keys live in PostgreSQL so that a retry is answered by any instance and
// after a restart: the identical delegate_payment replays there too, given the shared
// CARD_FINGERPRINT_KEY that keys the hash of the card fields.
//
// Without a key, each process keys its hashes with its own random key (every request
// hash is keyed since issue 15: an unkeyed hash of a body confirms guesses of what it
// holds), so the identical retry on another instance (or after a restart) is 409
// idempotency_conflict, on every route: safe (never another card's token, never a
// second token or session) but not a replay. Found as a
// production bug on f2caff1, where the key was optional; serve now refuses to start
// without CARD_FINGERPRINT_KEY, and the keyless server is only for tests and embedding.
func TestDelegatePaymentReplaysOnAnotherInstance(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		opts       []func(*httpapi.Config)
		wantReplay bool
	}{
		{"with fingerprint key", nil, true},
		{"without fingerprint key", []func(*httpapi.Config){func(c *httpapi.Config) { c.CardFingerprintKey = nil }}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := mustEnv(t, tc.opts...)
			e2 := safetyInstance(e, tc.opts...)
			id := safetyReadySession(e)
			body := safetyDelegateBody(id)
			first := e.do(http.MethodPost, "/agentic_commerce/delegate_payment", body, "Idempotency-Key", "dp")
			if first.status != http.StatusCreated {
				t.Fatalf("delegate = %d %s", first.status, first.body)
			}
			// Checkout endpoints behave the same: their hash is keyed too.
			c1 := e.do(http.MethodPost, "/checkout_sessions", safetyCreateBody, "Idempotency-Key", "cs")
			e.mustSession(c1, http.StatusCreated)
			if c2 := e2.do(http.MethodPost, "/checkout_sessions", safetyCreateBody, "Idempotency-Key", "cs"); tc.wantReplay {
				safetyMustReplay(t, c2, c1)
			} else {
				e.mustError(c2, http.StatusConflict, "idempotency_conflict", "")
			}

			r := e2.do(http.MethodPost, "/agentic_commerce/delegate_payment", body, "Idempotency-Key", "dp")
			switch {
			case tc.wantReplay && r.status != http.StatusCreated:
				t.Errorf("the identical delegate_payment on another instance = %d %s; want the replayed 201", r.status, r.body)
			case tc.wantReplay:
				safetyMustReplay(t, r, first)
			default:
				e.mustError(r, http.StatusConflict, "idempotency_conflict", "")
			}
			// The original instance still replays.
			safetyMustReplay(t, e.do(http.MethodPost, "/agentic_commerce/delegate_payment", body, "Idempotency-Key", "dp"), first)
			if n := dbInt(e, `SELECT count(*) FROM vault_tokens`); n != 1 {
				t.Errorf("vault_tokens = %d, want 1", n)
			}
		})
	}
}

// ---------------------------------------------------------------------------------
// Authentication.

func TestAuthenticationRefusesWhatIsNotAKnownKey(t *testing.T) {
	t.Parallel()
	e := mustEnv(t, safetyWithKeys)
	body := map[string]any{"items": items("item_123", 1)}

	r := e.do(http.MethodPost, "/checkout_sessions", body)
	m := e.mustError(r, http.StatusUnauthorized, "missing_authorization", "")
	if m["type"] != "invalid_request" {
		t.Errorf("type = %v", m["type"])
	}
	if got := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
		t.Errorf("WWW-Authenticate = %q", got)
	}
	if r.header.Get("Request-Id") == "" {
		t.Errorf("401 without Request-Id")
	}
	for _, h := range []string{"Basic xxx", "Bearer ", "Bearer", "Token " + safetyKeyA, safetyKeyA} {
		r := e.do(http.MethodPost, "/checkout_sessions", body, "Authorization", h)
		e.mustError(r, http.StatusUnauthorized, "malformed_authorization", "")
		if r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%q: no WWW-Authenticate", h)
		}
	}
	for _, k := range []string{"key-c-0123456789abcdef", safetyKeyA + "x", safetyKeyA[:len(safetyKeyA)-1], strings.ToUpper(safetyKeyA)} {
		e.mustError(e.do(http.MethodPost, "/checkout_sessions", body, safetyAuth(k)...), http.StatusUnauthorized, "invalid_api_key", "")
	}
	// Every endpoint is behind the key, GET included.
	e.mustError(e.do(http.MethodGet, "/checkout_sessions/cs_x", nil), http.StatusUnauthorized, "missing_authorization", "")
	e.mustDelegateRefusal(e.do(http.MethodPost, "/agentic_commerce/delegate_payment", safetyDelegateBody("cs_x")), http.StatusUnauthorized, "missing_authorization", "")
	if n := dbInt(e, `SELECT count(*) FROM checkout_sessions`); n != 0 {
		t.Fatalf("refused requests created %d sessions", n)
	}

	e.mustSession(e.do(http.MethodPost, "/checkout_sessions", body, safetyAuth(safetyKeyA)...), http.StatusCreated)
	// The scheme is case-insensitive (RFC 9110).
	e.mustSession(e.do(http.MethodPost, "/checkout_sessions", body, "Authorization", "bearer "+safetyKeyB), http.StatusCreated)
	if n := dbInt(e, `SELECT count(*) FROM checkout_sessions WHERE owner IN ('platform_a', 'platform_b')`); n != 2 {
		t.Errorf("owned sessions = %d, want 2", n)
	}

	for _, p := range []string{"/health", "/ready"} {
		if r := e.do(http.MethodGet, p, nil); r.status != http.StatusOK {
			t.Errorf("GET %s without a key = %d %s", p, r.status, r.body)
		}
	}
	// Keys never reach the logs.
	if strings.Contains(e.logs.String(), safetyKeyA) || strings.Contains(e.logs.String(), safetyKeyB) {
		t.Errorf("an API key is in the logs")
	}
}

func TestAPIKeysIsolateCallers(t *testing.T) {
	t.Parallel()
	e := mustEnv(t, safetyWithKeys)
	a, a2, b := safetyAuth(safetyKeyA), safetyAuth(safetyKeyA2), safetyAuth(safetyKeyB)
	sa := safetyReadySession(e, a...)
	base := "/checkout_sessions/" + sa

	e.mustError(e.do(http.MethodGet, base, nil, b...), http.StatusNotFound, "not_found", "")
	e.mustError(e.do(http.MethodPost, base, map[string]any{"buyer": buyer}, b...), http.StatusNotFound, "not_found", "")
	e.mustError(e.do(http.MethodPost, base+"/cancel", nil, b...), http.StatusNotFound, "not_found", "")
	e.mustError(e.do(http.MethodPost, base+"/complete", safetyCompleteBody, b...), http.StatusNotFound, "not_found", "")
	if n := dbInt(e, `SELECT count(*) FROM orders`); n != 0 {
		t.Fatalf("platform_b completed platform_a's session: %d orders", n)
	}
	// platform_a's rotated key sees the session, unchanged.
	g := e.mustSession(e.do(http.MethodGet, base, nil, a2...), http.StatusOK)
	if g["status"] != "ready_for_payment" {
		t.Errorf("status = %v after platform_b's attempts", g["status"])
	}

	// A token delegated by platform_a, bound to platform_b's session, is not platform_b's.
	sb := safetyReadySession(e, b...)
	d := e.do(http.MethodPost, "/agentic_commerce/delegate_payment", safetyDelegateBody(sb), a...)
	if d.status != http.StatusCreated {
		t.Fatalf("delegate = %d %s", d.status, d.body)
	}
	vt := d.json(t)["id"].(string)
	pay := fmt.Sprintf(`{"payment_data":{"token":%q,"provider":"stripe"}}`, vt)
	e.mustError(e.do(http.MethodPost, "/checkout_sessions/"+sb+"/complete", pay, b...), http.StatusBadRequest, "payment_token_not_found", "$.payment_data.token")
	if n := dbInt(e, `SELECT count(*) FROM vault_tokens WHERE id = $1 AND used_at IS NULL`, vt); n != 1 {
		t.Errorf("platform_a's token was consumed")
	}
	// platform_b's own token for the same session works: the refusal was about the owner.
	d = e.do(http.MethodPost, "/agentic_commerce/delegate_payment", safetyDelegateBody(sb), b...)
	if d.status != http.StatusCreated {
		t.Fatalf("delegate = %d %s", d.status, d.body)
	}
	pay = fmt.Sprintf(`{"payment_data":{"token":%q,"provider":"stripe"}}`, d.json(t)["id"])
	e.mustCompleted(e.do(http.MethodPost, "/checkout_sessions/"+sb+"/complete", pay, b...))
	// And platform_a, with either key, completes its own session.
	e.mustCompleted(e.do(http.MethodPost, base+"/complete", safetyCompleteBody, a2...))
	if n := dbInt(e, `SELECT count(*) FROM orders`); n != 2 {
		t.Errorf("orders = %d, want 2", n)
	}
}

// ---------------------------------------------------------------------------------
// Signatures.

func TestSignaturesAreVerified(t *testing.T) {
	t.Parallel()
	e := mustEnv(t, safetyWithSecrets)
	body := `{"items":[{"id":"item_123","quantity":1}]}`
	post := func(sig, ts, b string) response {
		t.Helper()
		h := []string{}
		if sig != "" {
			h = append(h, "Signature", sig)
		}
		if ts != "" {
			h = append(h, "Timestamp", ts)
		}
		return e.do(http.MethodPost, "/checkout_sessions", b, h...)
	}

	// Both secrets of a rotation are accepted.
	s := e.mustSession(safetySignedDo(e, safetySecretOne, safetyTS(0), http.MethodPost, "/checkout_sessions", body), http.StatusCreated)
	e.mustSession(safetySignedDo(e, safetySecretTwo, safetyTS(0), http.MethodPost, "/checkout_sessions", body), http.StatusCreated)
	// A GET is signed over its empty body.
	e.mustSession(safetySignedDo(e, safetySecretOne, safetyTS(0), http.MethodGet, "/checkout_sessions/"+s["id"].(string), ""), http.StatusOK)
	// Seconds precision and a numeric offset are RFC 3339 too.
	ts := time.Now().In(time.FixedZone("", 2*3600)).Format(time.RFC3339)
	e.mustSession(safetySignedDo(e, safetySecretOne, ts, http.MethodPost, "/checkout_sessions", body), http.StatusCreated)
	// Just inside the window.
	e.mustSession(safetySignedDo(e, safetySecretOne, safetyTS(-290*time.Second), http.MethodPost, "/checkout_sessions", body), http.StatusCreated)
	e.mustSession(safetySignedDo(e, safetySecretOne, safetyTS(290*time.Second), http.MethodPost, "/checkout_sessions", body), http.StatusCreated)
	// Padded base64url is accepted.
	now := safetyTS(0)
	padded := base64.URLEncoding.EncodeToString(httpapi.Sign(safetySecretOne, now, []byte(body)))
	if !strings.HasSuffix(padded, "=") {
		t.Fatalf("padded signature %q has no padding", padded)
	}
	e.mustSession(post(padded, now, body), http.StatusCreated)
	created := dbInt(e, `SELECT count(*) FROM checkout_sessions`)
	if created != 6 {
		t.Fatalf("checkout_sessions = %d, want 6", created)
	}

	now = safetyTS(0)
	good := safetySign(safetySecretOne, now, body)
	raw, _ := base64.RawURLEncoding.DecodeString(good)
	raw[len(raw)/2] ^= 0x01
	flipped := base64.RawURLEncoding.EncodeToString(raw)
	nonRFC := time.Now().UTC().Format(http.TimeFormat)
	unix := strconv.FormatInt(time.Now().Unix(), 10)
	// future has half a minute of margin: it is taken before the loop, and on a loaded
	// machine the loop can take longer than a second to reach it.
	stale, future := safetyTS(-301*time.Second), safetyTS(330*time.Second)

	for _, tc := range []struct {
		name, sig, ts, body, code string
	}{
		{"flipped bit", flipped, now, body, "invalid_signature"},
		{"body changed after signing", good, now, `{"items":[{"id":"item_123","quantity":9}]}`, "invalid_signature"},
		{"body with a space more", good, now, body + " ", "invalid_signature"},
		{"timestamp changed after signing", good, safetyTS(time.Second), body, "invalid_signature"},
		{"wrong secret", safetySign([]byte("secret-three-0123456789abcdef0123456"), now, body), now, body, "invalid_signature"},
		{"truncated", good[:20], now, body, "invalid_signature"},
		{"hex instead of base64url", fmt.Sprintf("%x", httpapi.Sign(safetySecretOne, now, []byte(body))), now, body, "invalid_signature"},
		{"missing signature", "", now, body, "missing_signature"},
		{"missing timestamp", good, "", body, "missing_timestamp"},
		{"HTTP date", safetySign(safetySecretOne, nonRFC, body), nonRFC, body, "invalid_timestamp"},
		{"unix seconds", safetySign(safetySecretOne, unix, body), unix, body, "invalid_timestamp"},
		{"stale", safetySign(safetySecretOne, stale, body), stale, body, "timestamp_out_of_window"},
		{"future", safetySign(safetySecretOne, future, body), future, body, "timestamp_out_of_window"},
		{"not base64url", "!!!not*base64!!!", now, body, "malformed_signature"},
		{"standard base64 alphabet", "ab+/cd+/", now, body, "malformed_signature"},
	} {
		r := post(tc.sig, tc.ts, tc.body)
		if r.status != http.StatusUnauthorized {
			t.Errorf("%s: status = %d, want 401; body: %s", tc.name, r.status, r.body)
			continue
		}
		if m := r.json(t); m["code"] != tc.code || m["type"] != "invalid_request" {
			t.Errorf("%s: error = %s, want code %s", tc.name, r.body, tc.code)
		}
		e.mustError(r, http.StatusUnauthorized, tc.code, "")
	}
	if n := dbInt(e, `SELECT count(*) FROM checkout_sessions`); n != created {
		t.Errorf("refused requests created sessions: %d, want %d", n, created)
	}
	// The probes are not signed.
	if r := e.do(http.MethodGet, "/health", nil); r.status != http.StatusOK {
		t.Errorf("/health = %d", r.status)
	}
	// A signed keyed request replays only when signed as well.
	now = safetyTS(0)
	first := safetySignedDo(e, safetySecretOne, now, http.MethodPost, "/checkout_sessions", body, "Idempotency-Key", "sig-k")
	e.mustSession(first, http.StatusCreated)
	e.mustError(e.do(http.MethodPost, "/checkout_sessions", body, "Idempotency-Key", "sig-k"), http.StatusUnauthorized, "missing_signature", "")
	safetyMustReplay(t, safetySignedDo(e, safetySecretTwo, safetyTS(0), http.MethodPost, "/checkout_sessions", body, "Idempotency-Key", "sig-k"), first)
}

// ---------------------------------------------------------------------------------
// Limits and transport.

// safetyExhaust sends requests until the first 429 and returns how many got through
// before it and the 429. At rate tokens/s with a bucket of burst, exactly burst pass when
// the requests are quick; a slow machine may see the bucket refill meanwhile, which is
// allowed for, but never more than the refill.
func safetyExhaust(e *testEnv, burst int, rate float64, headers ...string) (int, response) {
	e.t.Helper()
	start := time.Now()
	for n := 0; n < 100; n++ {
		r := e.do(http.MethodGet, "/checkout_sessions/cs_none", nil, headers...)
		if r.status == http.StatusTooManyRequests {
			elapsed := time.Since(start)
			refill := int(elapsed.Seconds() * rate)
			switch {
			case n < burst:
				e.t.Fatalf("429 after %d requests; the bucket holds %d", n, burst)
			case n > burst+refill:
				e.t.Fatalf("%d requests passed in %v; at most %d + %d refilled", n, elapsed, burst, refill)
			case refill == 0 && n != burst:
				e.t.Fatalf("request %d got 429; want request %d", n+1, burst+1)
			}
			return n, r
		}
		e.mustError(r, http.StatusNotFound, "not_found", "")
	}
	e.t.Fatal("no 429 after 100 requests")
	return 0, response{}
}

func TestRateLimitAnswers429AndRecovers(t *testing.T) {
	t.Parallel()
	e := mustEnv(t, func(c *httpapi.Config) { c.RateLimit = 5; c.RateBurst = 3 })
	// The 4th quick request is refused (or, on a slow machine, the first beyond the refill).
	_, r := safetyExhaust(e, 3, 5)
	m := e.mustError(r, http.StatusTooManyRequests, "too_many_requests", "")
	if m["type"] != "invalid_request" {
		t.Errorf("type = %v", m["type"])
	}
	ra, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil || ra < 1 {
		t.Fatalf("Retry-After = %q, want an integer >= 1", r.header.Get("Retry-After"))
	}
	if ra > 1 {
		t.Errorf("Retry-After = %d; at 5 requests/s a token is back within a second", ra)
	}
	// Refused requests take no token: hammering does not push the wait further out.
	for range 10 {
		r := e.do(http.MethodGet, "/checkout_sessions/cs_none", nil)
		if r.status == http.StatusNotFound {
			continue // a token came back meanwhile
		}
		e.mustError(r, http.StatusTooManyRequests, "too_many_requests", "")
		if got := r.header.Get("Retry-After"); got != "1" {
			t.Fatalf("Retry-After = %q after repeated refusals; refused requests must not queue up tokens", got)
		}
	}
	// The probes are not limited.
	if r := e.do(http.MethodGet, "/health", nil); r.status != http.StatusOK {
		t.Errorf("/health while limited = %d", r.status)
	}
	time.Sleep(time.Duration(ra) * time.Second)
	e.mustError(e.do(http.MethodGet, "/checkout_sessions/cs_none", nil), http.StatusNotFound, "not_found", "")
}

func TestRateLimitBucketsPerAPIKeyIdentity(t *testing.T) {
	t.Parallel()
	// One token every 10 s: no refill can blur the buckets during the test.
	const rate = 0.1
	e := mustEnv(t, safetyWithKeys, func(c *httpapi.Config) { c.RateLimit = rate; c.RateBurst = 3 })
	a, a2, b := safetyAuth(safetyKeyA), safetyAuth(safetyKeyA2), safetyAuth(safetyKeyB)
	_, r := safetyExhaust(e, 3, rate, a...)
	e.mustError(r, http.StatusTooManyRequests, "too_many_requests", "")
	if ra, _ := strconv.Atoi(r.header.Get("Retry-After")); ra < 5 || ra > 10 {
		t.Errorf("Retry-After = %q at one token per 10 s", r.header.Get("Retry-After"))
	}
	// platform_b has its own, full bucket.
	n, _ := safetyExhaust(e, 3, rate, b...)
	if n != 3 {
		t.Errorf("platform_b got %d requests, want its own 3", n)
	}
	// platform_a's second key is the same platform: the same, empty bucket.
	e.mustError(e.do(http.MethodGet, "/checkout_sessions/cs_none", nil, a2...), http.StatusTooManyRequests, "too_many_requests", "")
	// Unauthenticated requests count against the address, not against a platform.
	e.mustError(e.do(http.MethodGet, "/checkout_sessions/cs_none", nil), http.StatusUnauthorized, "missing_authorization", "")
}

func TestCORSPreflightAndResponses(t *testing.T) {
	t.Parallel()
	const origin = "https://agent.example"
	e := mustEnv(t, func(c *httpapi.Config) { c.CORSAllowedOrigins = []string{origin} })

	r := e.do(http.MethodOptions, "/checkout_sessions", nil,
		"Origin", origin, "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization, idempotency-key, content-type")
	if r.status != http.StatusNoContent {
		t.Fatalf("preflight = %d %s", r.status, r.body)
	}
	if got := r.header.Get("Access-Control-Allow-Origin"); got != origin {
		t.Errorf("Access-Control-Allow-Origin = %q", got)
	}
	allowed := strings.ToLower(r.header.Get("Access-Control-Allow-Headers"))
	for _, h := range []string{"authorization", "idempotency-key", "content-type", "api-version", "signature", "timestamp"} {
		if !slices.Contains(strings.Split(strings.ReplaceAll(allowed, " ", ""), ","), h) {
			t.Errorf("Access-Control-Allow-Headers %q lacks %s", allowed, h)
		}
	}
	if got := r.header.Get("Access-Control-Allow-Methods"); !strings.Contains(got, "POST") || !strings.Contains(got, "GET") {
		t.Errorf("Access-Control-Allow-Methods = %q", got)
	}
	if !slices.Contains(r.header.Values("Vary"), "Origin") {
		t.Errorf("Vary = %v", r.header.Values("Vary"))
	}
	// Preflights of paths with ids too.
	if r := e.do(http.MethodOptions, "/checkout_sessions/cs_1/complete", nil, "Origin", origin, "Access-Control-Request-Method", "POST"); r.status != http.StatusNoContent {
		t.Errorf("preflight of complete = %d", r.status)
	}

	// Another origin gets no CORS headers at all.
	r = e.do(http.MethodOptions, "/checkout_sessions", nil,
		"Origin", "https://evil.example", "Access-Control-Request-Method", "POST")
	for _, h := range []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Headers", "Access-Control-Allow-Methods", "Access-Control-Expose-Headers"} {
		if got := r.header.Get(h); got != "" {
			t.Errorf("foreign origin got %s: %q", h, got)
		}
	}
	if r.status == http.StatusNoContent {
		t.Errorf("foreign preflight answered 204")
	}
	c := e.do(http.MethodPost, "/checkout_sessions", safetyCreateBody, "Origin", "https://evil.example")
	e.mustSession(c, http.StatusCreated)
	if got := c.header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("foreign origin got Access-Control-Allow-Origin %q", got)
	}

	// A normal request from the allowed origin.
	c = e.do(http.MethodPost, "/checkout_sessions", safetyCreateBody, "Origin", origin, "Idempotency-Key", "cors-1")
	e.mustSession(c, http.StatusCreated)
	if got := c.header.Get("Access-Control-Allow-Origin"); got != origin {
		t.Errorf("Access-Control-Allow-Origin = %q", got)
	}
	exposed := strings.Split(strings.ReplaceAll(c.header.Get("Access-Control-Expose-Headers"), " ", ""), ",")
	for _, h := range []string{"Request-Id", "Idempotent-Replayed", "Idempotency-Key", "Retry-After"} {
		if !slices.Contains(exposed, h) {
			t.Errorf("Access-Control-Expose-Headers %v lacks %s", exposed, h)
		}
	}
	// Errors carry CORS headers too, so a browser can read them.
	er := e.do(http.MethodGet, "/checkout_sessions/cs_none", nil, "Origin", origin)
	e.mustError(er, http.StatusNotFound, "not_found", "")
	if got := er.header.Get("Access-Control-Allow-Origin"); got != origin {
		t.Errorf("error response Access-Control-Allow-Origin = %q", got)
	}
}

func TestGzipCompressionIsNegotiated(t *testing.T) {
	t.Parallel()
	e := mustEnv(t)
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	t.Cleanup(client.CloseIdleConnections)
	id := e.mustCreate(map[string]any{"items": items("item_123", 2), "fulfillment_address": address})["id"].(string)
	url := e.server.URL + "/checkout_sessions/" + id

	r, err := safetySend(client, http.MethodGet, url, "", "Accept-Encoding", "gzip")
	if err != nil {
		t.Fatal(err)
	}
	if r.status != http.StatusOK {
		t.Fatalf("status = %d", r.status)
	}
	if got := r.header.Get("Content-Encoding"); got != "gzip" {
		t.Fatalf("Content-Encoding = %q, want gzip", got)
	}
	if !slices.Contains(r.header.Values("Vary"), "Accept-Encoding") {
		t.Errorf("Vary = %v", r.header.Values("Vary"))
	}
	plain := safetyGunzip(t, r.body)
	if len(r.body) >= len(plain) {
		t.Errorf("gzip did not shrink the session: %d >= %d bytes", len(r.body), len(plain))
	}
	s := e.mustSession(response{status: r.status, header: r.header, body: plain}, http.StatusOK)
	if s["id"] != id {
		t.Errorf("id = %v", s["id"])
	}

	// Without Accept-Encoding (or with gzip refused) the body is plain JSON.
	for _, ae := range []string{"", "identity", "gzip;q=0", "br"} {
		h := []string{}
		if ae != "" {
			h = []string{"Accept-Encoding", ae}
		}
		r, err := safetySend(client, http.MethodGet, url, "", h...)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.header.Get("Content-Encoding"); got != "" {
			t.Errorf("Accept-Encoding %q: Content-Encoding = %q", ae, got)
		}
		if !bytes.Equal(r.body, plain) {
			t.Errorf("Accept-Encoding %q: body differs from the gunzipped one", ae)
		}
	}

	// An error is a few hundred bytes, under the compression threshold: it is sent as
	// it is, still varying on Accept-Encoding. Replays are compressed as first answers.
	r, err = safetySend(client, http.MethodGet, e.server.URL+"/checkout_sessions/cs_none", "", "Accept-Encoding", "gzip")
	if err != nil {
		t.Fatal(err)
	}
	if r.header.Get("Content-Encoding") != "" {
		t.Errorf("error Content-Encoding = %q, want none", r.header.Get("Content-Encoding"))
	}
	if !slices.Contains(r.header.Values("Vary"), "Accept-Encoding") {
		t.Errorf("error Vary = %v", r.header.Values("Vary"))
	}
	e.mustError(response{status: r.status, header: r.header, body: r.body}, http.StatusNotFound, "not_found", "")

	first, err := safetySend(client, http.MethodPost, e.server.URL+"/checkout_sessions", safetyCreateBody, "Idempotency-Key", "gz", "Accept-Encoding", "gzip")
	if err != nil {
		t.Fatal(err)
	}
	again, err := safetySend(client, http.MethodPost, e.server.URL+"/checkout_sessions", safetyCreateBody, "Idempotency-Key", "gz", "Accept-Encoding", "gzip")
	if err != nil {
		t.Fatal(err)
	}
	if first.status != http.StatusCreated || again.status != http.StatusCreated || again.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("statuses %d/%d, replayed %q", first.status, again.status, again.header.Get("Idempotent-Replayed"))
	}
	if !bytes.Equal(safetyGunzip(t, first.body), safetyGunzip(t, again.body)) {
		t.Errorf("gunzipped replay differs from the first answer")
	}
}

// TestIdempotencyKeepsTheResponseAsSent: a keyed response compressed for its client is
// recorded as the bytes sent, replayed as those bytes to a client that accepts gzip and
// decompressed for one that does not; a response sent uncompressed is recorded as JSON
// and compressed on replay as any response.
func TestIdempotencyKeepsTheResponseAsSent(t *testing.T) {
	t.Parallel()
	e := mustEnv(t)
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	t.Cleanup(client.CloseIdleConnections)
	url := e.server.URL + "/checkout_sessions"
	send := func(key string, headers ...string) response {
		t.Helper()
		r, err := safetySend(client, http.MethodPost, url, safetyCreateBody, append([]string{"Idempotency-Key", key}, headers...)...)
		if err != nil {
			t.Fatal(err)
		}
		if r.status != http.StatusCreated {
			t.Fatalf("status = %d: %s", r.status, r.body)
		}
		return r
	}
	stored := func(key string) (state string, body []byte) {
		t.Helper()
		if err := e.pool.QueryRow(context.Background(),
			`SELECT state, response_body FROM idempotency_keys WHERE key = $1`, key).Scan(&state, &body); err != nil {
			t.Fatal(err)
		}
		return state, body
	}
	mustEncoding := func(what string, r response, want string) {
		t.Helper()
		if got := r.header.Get("Content-Encoding"); got != want {
			t.Errorf("%s: Content-Encoding = %q, want %q", what, got, want)
		}
		if !slices.Contains(r.header.Values("Vary"), "Accept-Encoding") {
			t.Errorf("%s: Vary = %v", what, r.header.Values("Vary"))
		}
	}

	first := send("sent-gzip", "Accept-Encoding", "gzip")
	mustEncoding("first answer", first, "gzip")
	safetyMustNotReplay(t, first)
	session := safetyGunzip(t, first.body)
	e.mustSession(response{status: first.status, header: first.header, body: session}, http.StatusCreated)
	if state, body := stored("sent-gzip"); state != "completed_gzip" || !bytes.Equal(body, first.body) {
		t.Fatalf("record: state %s, %d bytes; want completed_gzip and the %d bytes sent", state, len(body), len(first.body))
	}
	again := send("sent-gzip", "Accept-Encoding", "gzip")
	mustEncoding("replay to gzip", again, "gzip")
	safetyMustReplay(t, again, first) // the very bytes sent
	for _, ae := range []string{"", "identity", "gzip;q=0"} {
		plain := send("sent-gzip", "Accept-Encoding", ae)
		mustEncoding("replay with Accept-Encoding "+ae, plain, "")
		safetyMustReplay(t, plain, response{status: first.status, body: session})
	}

	// Sent as JSON, kept as JSON; a replay to a client that accepts gzip is compressed
	// by the middleware, as a fresh answer would be.
	asJSON := send("sent-plain")
	mustEncoding("first answer without gzip", asJSON, "")
	if state, body := stored("sent-plain"); state != "completed" || !bytes.Equal(body, asJSON.body) {
		t.Fatalf("record: state %s, body %s; want completed and the JSON sent", state, body)
	}
	zipped := send("sent-plain", "Accept-Encoding", "gzip")
	mustEncoding("replay of JSON to gzip", zipped, "gzip")
	safetyMustReplay(t, response{status: zipped.status, header: zipped.header, body: safetyGunzip(t, zipped.body)}, asJSON)

	// An error is under the compression threshold: kept as JSON whatever the client takes.
	id := e.mustCreate(map[string]any{"items": items("item_123", 1)})["id"].(string)
	refused, err := safetySend(client, http.MethodPost, url+"/"+id+"/complete", safetyCompleteBody,
		"Idempotency-Key", "refused-gzip", "Accept-Encoding", "gzip")
	if err != nil {
		t.Fatal(err)
	}
	mustEncoding("refusal", refused, "")
	if state, body := stored("refused-gzip"); state != "completed" || !bytes.Equal(body, refused.body) {
		t.Errorf("refusal record: state %s, body %s; want completed and the JSON sent", state, body)
	}

	// A completion is kept as sent too. The sizes are the record's saving, which
	// docs/performance-history.md ("Sixteenth round") quotes from this log.
	ready := safetyReadySession(e)
	done, err := safetySend(client, http.MethodPost, url+"/"+ready+"/complete", safetyCompleteBody,
		"Idempotency-Key", "complete-gzip", "Accept-Encoding", "gzip")
	if err != nil {
		t.Fatal(err)
	}
	mustEncoding("completion", done, "gzip")
	state, body := stored("complete-gzip")
	if state != "completed_gzip" || !bytes.Equal(body, done.body) {
		t.Fatalf("completion record: state %s, %d bytes; want completed_gzip and the %d bytes sent", state, len(body), len(done.body))
	}
	t.Logf("records kept as sent: a session of %d bytes of JSON in %d, a completion of %d in %d",
		len(session), len(first.body), len(safetyGunzip(t, body)), len(body))
}

func safetyGunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not gzip: %v (%q)", err, b)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	return out
}

func TestRequireAPIVersion(t *testing.T) {
	t.Parallel()
	e := mustEnv(t, func(c *httpapi.Config) { c.RequireAPIVersion = true })
	r := e.do(http.MethodPost, "/checkout_sessions", safetyCreateBody)
	m := e.mustError(r, http.StatusBadRequest, "missing_api_version", "")
	if !strings.Contains(m["message"].(string), "Supported versions: 2026-04-17, 2025-09-29.") || r.header.Get("API-Supported-Versions") != "2026-04-17, 2025-09-29" {
		t.Errorf("supported versions not named: %v, API-Supported-Versions %q", m, r.header.Get("API-Supported-Versions"))
	}
	e.mustError(e.do(http.MethodGet, "/checkout_sessions/cs_none", nil, "API-Version", "2024-01-01"), http.StatusBadRequest, "unsupported_api_version", "")
	if n := dbInt(e, `SELECT count(*) FROM checkout_sessions`); n != 0 {
		t.Errorf("refused request created a session")
	}
	e.mustSession(e.do(http.MethodPost, "/checkout_sessions", safetyCreateBody, "API-Version", "2025-09-29"), http.StatusCreated)
	if r := e.do(http.MethodGet, "/health", nil); r.status != http.StatusOK {
		t.Errorf("/health without API-Version = %d", r.status)
	}
}

// A delegation's claim rides its only round trip, in the implicit transaction of its
// token and record (pipelinedTx.commitRidden): concurrent duplicates wait on the claim
// and replay the one that committed, and a single token is stored.
func TestDelegatePaymentConcurrentDuplicatesStoreOneToken(t *testing.T) {
	t.Parallel()
	e := mustEnv(t)
	body := safetyDelegateBody(safetyReadySession(e))
	const n = 8
	responses := make([]response, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			responses[i] = e.do(http.MethodPost, "/agentic_commerce/delegate_payment", body, "Idempotency-Key", "dup")
		})
	}
	wg.Wait()
	var first *response
	replays := 0
	for i := range responses {
		r := &responses[i]
		if r.status != http.StatusCreated {
			t.Fatalf("delegation %d = %d %s", i, r.status, r.body)
		}
		if r.header.Get("Idempotent-Replayed") == "true" {
			replays++
			continue
		}
		if first != nil {
			t.Fatalf("two delegations with one key were not replays:\n%s\n%s", first.body, r.body)
		}
		first = r
	}
	if first == nil || replays != n-1 {
		t.Fatalf("%d replays of %d, first %v", replays, n, first)
	}
	for _, r := range responses {
		if !bytes.Equal(r.body, first.body) {
			t.Errorf("a replay differs:\nfirst:  %s\nreplay: %s", first.body, r.body)
		}
	}
	if got := dbInt(e, `SELECT count(*) FROM vault_tokens`); got != 1 {
		t.Errorf("vault_tokens = %d, want 1", got)
	}
	if rows := safetyKeyRows(e, "dup"); len(rows) != 1 || !rows[0].completed() {
		t.Errorf("dup rows = %+v", rows)
	}
}

// When the token's insert fails after the claim rode with it, the claim rolled back
// with it and is taken before the answer: the server error releases the key, so a
// retry after the fault runs afresh, and stores one token.
func TestDelegatePaymentWriteFailureAfterTheRiddenClaim(t *testing.T) {
	t.Parallel()
	e := mustEnv(t)
	body := safetyDelegateBody(safetyReadySession(e))
	body["allowance"].(map[string]any)["merchant_id"] = "merchant_refused"
	if _, err := e.pool.Exec(context.Background(),
		`ALTER TABLE vault_tokens ADD CONSTRAINT test_refused CHECK (merchant_id <> 'merchant_refused')`); err != nil {
		t.Fatal(err)
	}
	r := e.do(http.MethodPost, "/agentic_commerce/delegate_payment", body, "Idempotency-Key", "fault")
	if r.status != http.StatusInternalServerError {
		t.Fatalf("delegation with a failing insert = %d %s, want 500", r.status, r.body)
	}
	if rows := safetyKeyRows(e, "fault"); len(rows) != 0 {
		t.Errorf("the key of a server error was kept: %+v", rows)
	}
	if got := dbInt(e, `SELECT count(*) FROM vault_tokens`); got != 0 {
		t.Errorf("vault_tokens = %d after the failure, want 0", got)
	}

	if _, err := e.pool.Exec(context.Background(), `ALTER TABLE vault_tokens DROP CONSTRAINT test_refused`); err != nil {
		t.Fatal(err)
	}
	retry := e.do(http.MethodPost, "/agentic_commerce/delegate_payment", body, "Idempotency-Key", "fault")
	if retry.status != http.StatusCreated {
		t.Fatalf("retry = %d %s", retry.status, retry.body)
	}
	safetyMustNotReplay(t, retry)
	safetyMustReplay(t, e.do(http.MethodPost, "/agentic_commerce/delegate_payment", body, "Idempotency-Key", "fault"), retry)
	if got := dbInt(e, `SELECT count(*) FROM vault_tokens`); got != 1 {
		t.Errorf("vault_tokens = %d, want 1", got)
	}
}
