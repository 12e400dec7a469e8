package httpapi_test

import (
	"bytes"
	"context"
	"net/http"
	"testing"
)

// Issue 9: idempotency records are scoped by API version. A request without the header
// is served in (and recorded under) the version it resolves to, so it replays what the
// same key sent with that version stored; a record stored under another version is not
// replayed, and the request runs afresh.
func TestIdempotencyIsScopedByAPIVersion(t *testing.T) {
	t.Parallel()
	e := mustEnv(t)
	ctx := context.Background()

	first := e.do(http.MethodPost, "/checkout_sessions", safetyCreateBody, "Idempotency-Key", "v", "API-Version", "2025-09-29")
	e.mustSession(first, http.StatusCreated)
	safetyMustNotReplay(t, first)
	safetyMustReplay(t, e.do(http.MethodPost, "/checkout_sessions", safetyCreateBody, "Idempotency-Key", "v"), first)
	if n := dbInt(e, `SELECT count(*) FROM idempotency_keys WHERE key = 'v' AND api_version = '2025-09-29'`); n != 1 {
		t.Errorf("records of key v under 2025-09-29 = %d, want 1", n)
	}

	// A record of the same key, path and body under another version (2026-04-17 is not
	// served yet, so it is written here): 2025-09-29 neither replays its body nor waits
	// for it, nor calls it a conflict.
	other := []byte(`{"id":"cs_other_version"}`)
	for _, state := range []string{"completed", "in_flight"} {
		key := "other-" + state
		if _, err := e.pool.Exec(ctx, `INSERT INTO idempotency_keys
				(caller, method, path, key, api_version, request_hash, claim_id, state, response_status, response_body, claimed_at, completed_at)
			VALUES ('', 'POST', '/checkout_sessions', $1, '2026-04-17', $2, 'clm_other', $3::text,
				CASE WHEN $3::text = 'completed' THEN 201 END, CASE WHEN $3::text = 'completed' THEN $4::bytea END, now(),
				CASE WHEN $3::text = 'completed' THEN now() END)`,
			key, keyedRequestHash(safetyCreateBody), state, other); err != nil {
			t.Fatal(err)
		}
		for _, version := range []string{"2025-09-29", ""} {
			r := e.do(http.MethodPost, "/checkout_sessions", safetyCreateBody, "Idempotency-Key", key, "API-Version", version)
			if version == "" {
				// The first request under 2025-09-29 ran; this one replays it.
				if r.header.Get("Idempotent-Replayed") != "true" || bytes.Equal(r.body, other) {
					t.Errorf("%s without API-Version: %d %s, want the 2025-09-29 replay", key, r.status, r.body)
				}
				continue
			}
			e.mustSession(r, http.StatusCreated)
			safetyMustNotReplay(t, r)
		}
		if n := dbInt(e, `SELECT count(*) FROM idempotency_keys WHERE key = $1`, key); n != 2 {
			t.Errorf("records of %s = %d, want 2 (one per version)", key, n)
		}
	}
	if n := dbInt(e, `SELECT count(*) FROM checkout_sessions`); n != 3 {
		t.Errorf("checkout_sessions = %d, want 3", n)
	}
}

// An unsupported API-Version is refused before the idempotency middleware: nothing is
// recorded, and the same key then runs under a supported version.
func TestUnsupportedAPIVersionRecordsNoIdempotencyKey(t *testing.T) {
	t.Parallel()
	e := mustEnv(t)
	e.mustError(e.do(http.MethodPost, "/checkout_sessions", safetyCreateBody, "Idempotency-Key", "u", "API-Version", "2099-01-01"),
		http.StatusBadRequest, "unsupported_api_version", "")
	if n := dbInt(e, `SELECT count(*) FROM idempotency_keys`); n != 0 {
		t.Fatalf("idempotency_keys = %d after a refused version, want 0", n)
	}
	r := e.do(http.MethodPost, "/checkout_sessions", safetyCreateBody, "Idempotency-Key", "u", "API-Version", "2025-09-29")
	e.mustSession(r, http.StatusCreated)
	safetyMustNotReplay(t, r)
}
