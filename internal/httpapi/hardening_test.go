package httpapi_test

import (
	"net/http"
	"testing"
	"time"
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
	if n := safetyCount(e, `SELECT count(*) FROM checkout_sessions`); n != 1 {
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
