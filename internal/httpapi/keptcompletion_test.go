package httpapi_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/httpapi"
	"github.com/agentic-commerce/agentic-commerce-server/internal/postgres"
)

// keptCompletionRide is how the one round trip of a completion from a kept view begins
// when its key rides it: the key held, then looked up (docs/PERFORMANCE.md, "Round
// trips").
const keptCompletionRide = "batch [HoldIdempotencyKey :exec; LookupIdempotencyKey :one; LockUnchangedSession :exec;"

// forEachVersionKept is forEachVersion with envs whose instances keep sessions' views,
// whatever TEST_SESSION_CACHE_SIZE says, its subtests in parallel.
func forEachVersionKept(t *testing.T, f func(t *testing.T, e *testEnv)) {
	t.Helper()
	for _, v := range httpapi.SupportedVersions {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			e := mustEnvVersion(t, v, time.Minute)
			e.storeOpts = []func(*postgres.StoreConfig){func(c *postgres.StoreConfig) { c.SessionCache = postgres.NewSessionCache(100) }}
			e.server = e.startServer(time.Minute)
			f(t, e)
		})
	}
}

// readyKept makes a session ready for payment on e's instance, which then keeps its
// view, and a vault token for it, which the instance keeps too.
func readyKept(e *testEnv) (id, token string) {
	e.t.Helper()
	id = e.mustSession(e.do(http.MethodPost, "/checkout_sessions",
		e.createBody(fields{items: items("item_123", 1), address: address}), "Idempotency-Key", newKey()), http.StatusCreated)["id"].(string)
	s := e.mustSession(e.do(http.MethodPost, "/checkout_sessions/"+id,
		e.updateBody(fields{buyer: buyer, option: "standard_shipping"}), "Idempotency-Key", newKey()), http.StatusOK)
	return id, delegate(e, id, totals(e.t, s)["total"], "usd", visaNumber, "9871")
}

// measureKept sends a completion of session id with key and body on e, and returns the
// response with the round trips it made and what the first one sent.
func measureKept(e *testEnv, id, key string, body any) (r response, trips int, first string) {
	e.t.Helper()
	trips, sent := e.roundTrips.Measure(func() {
		r = e.do(http.MethodPost, "/checkout_sessions/"+id+"/complete", body, "Idempotency-Key", key)
	})
	if len(sent) > 0 {
		first = sent[0]
	}
	return r, trips, first
}

// refuseOnAnotherInstance has another instance on e's database refuse the completion of
// session id with body under key (its item out of stock), then restocks the item: the
// key holds a refusal that e's instance, which keeps the session's view, has not seen.
func refuseOnAnotherInstance(e *testEnv, id, key string, body any) response {
	e.t.Helper()
	other := e.on(e.startServer(time.Minute))
	setStock(e, "item_123", 0)
	refused := other.do(http.MethodPost, "/checkout_sessions/"+id+"/complete", body, "Idempotency-Key", key)
	if refused.status < 400 || refused.status >= 500 {
		e.t.Fatalf("completion with no stock: status %d, want a refusal; body: %s", refused.status, refused.body)
	}
	setStock(e, "item_123", 100)
	return refused
}

// A completion from a kept view is one round trip with its key's look-up. A key found
// recorded there (here a refusal that another instance recorded under it) gets what the
// key holds: the stored refusal for the same body, the conflict for another. The
// completion that rode with the look-up rolls back: the token stays unused, and a
// completion under a new key succeeds with it, in one round trip.
func TestKeptCompletionRidesItsKey(t *testing.T) {
	t.Parallel()
	forEachVersionKept(t, func(t *testing.T, e *testEnv) {
		id, tok := readyKept(e)
		body := e.completeBody(tok)
		refused := refuseOnAnotherInstance(e, id, "K", body)

		replay, trips, first := measureKept(e, id, "K", body)
		safetyMustReplay(t, replay, refused)
		if trips != 1 || !strings.HasPrefix(first, keptCompletionRide) {
			t.Errorf("the replay made %d round trips, the first %q; want 1, beginning %q", trips, first, keptCompletionRide)
		}

		another := e.completeBody(tok)
		another["buyer"] = map[string]any{"first_name": "Grace", "last_name": "Hopper", "email": "grace@example.com"}
		conflict, trips, first := measureKept(e, id, "K", another)
		status := http.StatusConflict // the key's conflict: 409, 422 from 2026-04-17
		if e.is0417() {
			status = http.StatusUnprocessableEntity
		}
		e.mustError(conflict, status, "idempotency_conflict", "")
		if trips != 1 || !strings.HasPrefix(first, keptCompletionRide) {
			t.Errorf("the conflict made %d round trips, the first %q; want 1, beginning %q", trips, first, keptCompletionRide)
		}

		if n := dbInt(e, `SELECT count(*) FROM orders WHERE checkout_session_id = $1`, id); n != 0 {
			t.Fatalf("orders = %d after the key's refusals, want 0", n)
		}
		if n := dbInt(e, `SELECT count(*) FROM vault_tokens WHERE id = $1 AND used_at IS NULL`, tok); n != 1 {
			t.Fatalf("the token was used by a completion that rolled back")
		}
		done, trips, first := measureKept(e, id, newKey(), body)
		e.mustCompleted(done)
		if trips != 1 || !strings.HasPrefix(first, keptCompletionRide) {
			t.Errorf("the completion made %d round trips, the first %q; want 1, beginning %q", trips, first, keptCompletionRide)
		}
	})
}

// Behind a balancer, a replay may reach an instance that keeps an older view of the
// session and the token: its one round trip finds the key recorded by the instance that
// completed, and replays that. A completion from a view another instance's write put out
// of date fails that round trip (the session's version) and runs again under the
// session's lock, holding the key its look-up found free: it answers with the session
// as it is, and records its key once.
func TestKeptCompletionOnAnotherInstance(t *testing.T) {
	t.Parallel()
	forEachVersionKept(t, func(t *testing.T, a *testEnv) {
		b := a.on(a.startServer(time.Minute))

		id, tok := readyKept(b)
		completed := a.do(http.MethodPost, "/checkout_sessions/"+id+"/complete", a.completeBody(tok), "Idempotency-Key", "K")
		a.mustCompleted(completed)
		replay, trips, first := measureKept(b, id, "K", b.completeBody(tok))
		safetyMustReplay(t, replay, completed)
		if trips != 1 || !strings.HasPrefix(first, keptCompletionRide) {
			t.Errorf("the replay made %d round trips, the first %q; want 1, beginning %q", trips, first, keptCompletionRide)
		}
		if n := dbInt(a, `SELECT count(*) FROM orders WHERE checkout_session_id = $1`, id); n != 1 {
			t.Errorf("orders = %d, want 1", n)
		}

		id, tok = readyKept(a)
		grace := map[string]any{"first_name": "Grace", "last_name": "Hopper", "email": "grace@example.com"}
		b.mustSession(b.do(http.MethodPost, "/checkout_sessions/"+id, b.updateBody(fields{buyer: grace}), "Idempotency-Key", newKey()), http.StatusOK)
		done, trips, first := measureKept(a, id, "K2", a.completeBody(tok))
		s := a.mustCompleted(done)
		if got := s["buyer"].(map[string]any)["email"]; got != "grace@example.com" {
			t.Errorf("completed with buyer %v, want the one another instance set", got)
		}
		if trips != 3 || !strings.HasPrefix(first, keptCompletionRide) {
			t.Errorf("the completion made %d round trips, the first %q; want 3 (the kept view's, then two under the lock), beginning %q",
				trips, first, keptCompletionRide)
		}
		rows := safetyKeyRows(a, "K2")
		if len(rows) != 1 || !rows[0].completed() || *rows[0].status != http.StatusOK {
			t.Errorf("K2 rows = %+v", rows)
		}
		safetyMustReplay(t, a.do(http.MethodPost, "/checkout_sessions/"+id+"/complete", a.completeBody(tok), "Idempotency-Key", "K2"), done)
	})
}

// sweepBeforeInsert makes e's database delete a key's row just before the same key is
// inserted again: what the retention sweeper (DeleteIdempotencyKeysBefore) does when it
// deletes a key at its retention age between the look-up and the insert of a request
// whose look-up rides the same round trip as its writes.
func sweepBeforeInsert(e *testEnv) {
	e.t.Helper()
	dbExec(e, `CREATE FUNCTION test_sweep_before_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM idempotency_keys k
    WHERE (k.caller, k.method, k.path, k.key, k.api_version) = (NEW.caller, NEW.method, NEW.path, NEW.key, NEW.api_version);
    RETURN NEW;
END $$`)
	dbExec(e, `CREATE TRIGGER test_sweep_before_insert BEFORE INSERT ON idempotency_keys
    FOR EACH ROW EXECUTE FUNCTION test_sweep_before_insert()`)
}

// A ride's look-up and its key's insert are two statements of one round trip, each
// with its own snapshot. When the sweeper deletes the record the look-up found before
// the insert, the work commits under the key: the request answers with what committed
// (the completion, the new token), not with the record that is gone.
func TestRideAnswersWhatCommittedAfterASweep(t *testing.T) {
	t.Parallel()
	forEachVersionKept(t, func(t *testing.T, e *testEnv) {
		id, tok := readyKept(e)
		body := e.completeBody(tok)
		refuseOnAnotherInstance(e, id, "K", body)

		first := e.do(http.MethodPost, delegatePath, delegateBody(id, 100000, "usd", visaNumber, "9871"), "Idempotency-Key", "D")
		if first.status != http.StatusCreated {
			t.Fatalf("delegate: status %d; body: %s", first.status, first.body)
		}

		sweepBeforeInsert(e)
		done, trips, sent := measureKept(e, id, "K", body)
		e.mustCompleted(done)
		if trips != 1 || !strings.HasPrefix(sent, keptCompletionRide) {
			t.Errorf("the completion made %d round trips, the first %q; want 1, beginning %q", trips, sent, keptCompletionRide)
		}
		if n := dbInt(e, `SELECT count(*) FROM orders WHERE checkout_session_id = $1`, id); n != 1 {
			t.Errorf("orders = %d, want 1", n)
		}
		rows := safetyKeyRows(e, "K")
		if len(rows) != 1 || !rows[0].completed() || int(*rows[0].status) != done.status {
			t.Errorf("K rows = %+v, want the completion's record", rows)
		}

		again := e.do(http.MethodPost, delegatePath, delegateBody(id, 100000, "usd", visaNumber, "9871"), "Idempotency-Key", "D")
		if again.status != http.StatusCreated {
			t.Fatalf("delegate again: status %d; body: %s", again.status, again.body)
		}
		newTok, _ := again.json(t)["id"].(string)
		if newTok == first.json(t)["id"] {
			t.Errorf("the delegation answered the swept record's token %s, not the one it committed", newTok)
		}
		if n := dbInt(e, `SELECT count(*) FROM vault_tokens WHERE id = $1`, newTok); n != 1 {
			t.Errorf("the token answered, %s, was not committed", newTok)
		}
	})
}
