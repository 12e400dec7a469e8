package postgres_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/idempotency"
	"github.com/agentic-commerce/agentic-commerce-server/internal/payment"
	"github.com/agentic-commerce/agentic-commerce-server/internal/pgtest"
	"github.com/agentic-commerce/agentic-commerce-server/internal/postgres"
)

// withDeferredKey is ctx carrying a deferred claim of key (as the HTTP layer gives a
// create or an update), whose encoder calls between before encoding: it runs after the
// work's first round trip and before the one that commits.
func (e *outboxEnv) withDeferredKey(ctx context.Context, key string, between func()) (context.Context, *idempotency.Claim) {
	k := idempotency.Key{Caller: "agent", Method: "POST", Path: "/checkout_sessions/x", Key: key}
	claim := idempotency.NewDeferred(k, "hash-"+key, func(context.Context) (idempotency.Outcome, error) {
		e.t.Error("the deferred claim was taken on its own; it must ride the first round trip")
		return idempotency.Outcome{}, errors.New("not expected")
	})
	idempotency.SetEncoder(claim, func(v checkout.View) (int, []byte, error) {
		between()
		return 200, []byte(`{"id":"` + v.Session.ID + `"}`), nil
	})
	return idempotency.NewContext(ctx, claim), claim
}

// openSession is the id of a new open session of one item_123.
func (e *outboxEnv) openSession() string {
	e.t.Helper()
	created, err := e.store.CreateSession(context.Background(), "", checkout.Changes{
		Items: []checkout.ItemRequest{{ID: "item_123", Quantity: 1}}, Currency: "USD",
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return created.Session.ID
}

// An update reads its session before its transaction, with its idempotency claim, and
// locks it only if nothing changed it since (LockUnchangedSession). A change committed
// in between, or one that holds the row while the update waits for it, makes the update
// run again on the session as changed: nothing the other transaction wrote is lost.
func TestUpdateReadAheadKeepsAConcurrentChange(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// change changes the session's buyer behind the update's back; it returns
		// once the change is committed or, held, once it is certain to commit. It
		// runs inside the update (its encoder), so it reports with Error, not Fatal.
		change func(e *outboxEnv, id string) (wait func())
	}{
		{"committed between the read and the lock", func(e *outboxEnv, id string) func() {
			if _, err := e.pool.Exec(context.Background(),
				`UPDATE checkout_sessions SET buyer = '{"email":"grace@example.com","first_name":"Grace","last_name":"Hopper"}' WHERE id = $1`, id); err != nil {
				e.t.Error(err)
			}
			return func() {}
		}},
		{"holding the row while the update waits for its lock", func(e *outboxEnv, id string) func() {
			ctx := context.Background()
			tx, err := e.pool.Begin(ctx)
			if err != nil {
				e.t.Error(err)
				return func() {}
			}
			if _, err := tx.Exec(ctx,
				`UPDATE checkout_sessions SET buyer = '{"email":"grace@example.com","first_name":"Grace","last_name":"Hopper"}' WHERE id = $1`, id); err != nil {
				e.t.Error(err)
			}
			done := inBackground(func() error {
				// Commit once the update waits for the row, not before it asks.
				q, err := pgtest.AwaitLockWait(ctx, e.pool, lockWaitTimeout)
				if err != nil {
					// Let go of the row: an update still waiting for it would
					// otherwise never return, and the test would hang, not fail.
					_ = tx.Rollback(ctx)
					return err
				}
				if !strings.Contains(q, "LockUnchangedSession") {
					e.t.Errorf("the update waits in %q, want LockUnchangedSession", q)
				}
				return tx.Commit(ctx)
			})
			return func() {
				if err := <-done; err != nil {
					e.t.Fatal(err)
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newOutboxEnv(t)
			ctx := context.Background()
			created, err := e.store.CreateSession(ctx, "", checkout.Changes{
				Items: []checkout.ItemRequest{{ID: "item_123", Quantity: 1}}, Currency: "USD",
				Buyer: &checkout.Buyer{Email: "ada@example.com", FirstName: "Ada", LastName: "Lovelace"},
			})
			if err != nil {
				t.Fatal(err)
			}
			id := created.Session.ID
			changed, encoded := false, 0
			var wait func()
			ctx, claim := e.withDeferredKey(ctx, "k", func() {
				encoded++
				if !changed {
					changed = true
					wait = tc.change(e, id)
				}
			})
			// Metadata alone: the update needs no catalog read, so its second round trip
			// is the one that commits, after the encoder.
			view, err := e.store.UpdateSession(ctx, "", id, checkout.Changes{Metadata: map[string]any{"note": "gift"}})
			if wait != nil {
				wait()
			}
			if err != nil {
				t.Fatal(err)
			}
			if encoded != 2 {
				t.Errorf("the update's response was encoded %d times, want 2: the update must run again", encoded)
			}
			if b := view.Session.Buyer; b == nil || b.FirstName != "Grace" {
				t.Errorf("the update answered buyer %+v: the concurrent change is lost", b)
			}
			stored, err := e.store.GetSession(context.Background(), "", id)
			if err != nil {
				t.Fatal(err)
			}
			if b := stored.Session.Buyer; b == nil || b.FirstName != "Grace" {
				t.Errorf("stored buyer %+v: the concurrent change is lost", b)
			}
			if m := stored.Session.Metadata; m["note"] != "gift" {
				t.Errorf("stored metadata %v: the update is lost", m)
			}
			if _, ok := claim.Recorded(); !ok || claim.ClaimID == "" {
				t.Errorf("the claim rode the first round trip but its response was not recorded")
			}
			if n := e.text(`SELECT state FROM idempotency_keys WHERE key = 'k'`); n != "completed" {
				t.Errorf("idempotency key state = %s, want completed", n)
			}
		})
	}
}

// A cancel reads its session as an update does, before its transaction, and locks it
// only if nothing changed it since. A completion committed in between must win: the
// cancel runs again on the session under its lock and is refused, and the paid session
// stays completed (a cancel that wrote what it read would cancel a paid order's session).
func TestCancelReadAheadYieldsToACompletion(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t)
	ctx := context.Background()
	id := e.openSession()
	encoded := 0
	ctx, _ = e.withDeferredKey(ctx, "cancel", func() {
		encoded++
		e.exec(`UPDATE checkout_sessions SET state = 'completed' WHERE id = $1`, id)
	})
	_, err := e.store.CancelSession(ctx, "", id, nil)
	mustCode(t, err, "checkout_session_completed")
	if encoded != 1 {
		t.Errorf("the cancel's response was encoded %d times, want once: the run again is refused before", encoded)
	}
	if st := e.text(`SELECT state FROM checkout_sessions WHERE id = $1`, id); st != "completed" {
		t.Errorf("session state = %s after a cancel raced a completion, want completed", st)
	}
}

// A create and an update whose deferred claim finds the key used before stop before
// writing anything: the claim says what it found, and the request's work is not done
// again.
func TestDeferredClaimOfAUsedKeyWritesNothing(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t)
	ctx := context.Background()
	create := func(key string) (checkout.View, *idempotency.Claim, error) {
		ctx, claim := e.withDeferredKey(ctx, key, func() {})
		v, err := e.store.CreateSession(ctx, "", checkout.Changes{Items: []checkout.ItemRequest{{ID: "item_123", Quantity: 1}}, Currency: "USD"})
		return v, claim, err
	}
	if _, _, err := create("used"); err != nil {
		t.Fatal(err)
	}
	_, claim, err := create("used")
	if !errors.Is(err, idempotency.ErrNotClaimed) {
		t.Fatalf("a create with a used key: %v, want ErrNotClaimed", err)
	}
	if out, refused := claim.Refused(); !refused || out.Kind != idempotency.Replay || out.Status != 200 {
		t.Errorf("the claim found %+v, %v; want the replay of the first response", out, refused)
	}
	if n := e.text(`SELECT count(*)::text FROM checkout_sessions`); n != "1" {
		t.Errorf("%s sessions stored, want 1", n)
	}
}

// An update or a completion whose look-up found its key free, and whose key another
// request recorded before the work's transaction inserted it (a duplicate whose look-up
// came first and whose transaction committed first), rolls back at the key's insert:
// nothing of it applies, and the request answers with what the key holds. The other
// request's answer is a replay here; the conflict, when its body differed. The first
// phase of a PSP completion or of a refund through the PSP, which inserts the key's
// claim, rolls back the same way, before the PSP is asked.
func TestFreeKeyRecordedMeanwhileRollsTheWorkBack(t *testing.T) {
	t.Parallel()
	psp := &payment.ScriptedGateway{}
	e := outboxEnvWith(t, pgtest.MustPool(t), true, psp)
	ctx := context.Background()
	id := e.openSession()
	ops := []struct {
		name string
		// run runs the operation with ctx's claim; applied says whether any of it stayed.
		run     func(ctx context.Context, key string) error
		applied func(key string) bool
		// recordedFirst: the other request records the key before run (after the
		// transport's look-up, which run stands for), not while the response is encoded.
		recordedFirst bool
	}{
		{"update", func(ctx context.Context, key string) error {
			_, err := e.store.UpdateSession(ctx, "", id, checkout.Changes{Metadata: map[string]any{"note": key}})
			return err
		}, func(key string) bool {
			return e.text(`SELECT coalesce(metadata->>'note', '') FROM checkout_sessions WHERE id = $1`, id) != ""
		}, false},
		{"complete", func(ctx context.Context, key string) error {
			// The transport looks a completion's key up before the completion runs.
			idempotency.FromContext(ctx).MarkFree()
			sid := e.readySession()
			tok := e.vaultToken(sid)
			_, err := e.store.CompleteSession(ctx, "", sid, checkout.Completion{Token: tok, Provider: "stripe"})
			return err
		}, func(key string) bool {
			return e.text(`SELECT (count(*) + (SELECT count(*) FROM vault_tokens WHERE used_at IS NOT NULL))::text FROM orders`) != "0"
		}, false},
		{"complete_psp", func(ctx context.Context, key string) error {
			idempotency.FromContext(ctx).MarkFree()
			sid := e.readySession()
			_, err := e.store.CompleteSession(ctx, "", sid, checkout.Completion{Token: "tok_visa", Provider: "stripe"})
			return err
		}, func(key string) bool {
			return e.text(`SELECT (count(*) + (SELECT count(*) FROM payment_attempts))::text FROM orders`) != "0" ||
				e.gateway.Attempts() != 0
		}, true},
		{"refund_psp", func(ctx context.Context, key string) error {
			idempotency.FromContext(ctx).MarkFree()
			order := e.mustOrder() // the last op: its order and charge count for none before
			_, err := e.orders.RefundLines(ctx, order.ID, checkout.RefundRequest{Type: checkout.RefundOriginalPayment, Amount: 100})
			return err
		}, func(key string) bool {
			return e.text(`SELECT count(*)::text FROM refunds`) != "0" || psp.Refunded() != 0
		}, true},
	}
	for _, op := range ops {
		for _, tc := range []struct {
			body, otherHash string
			want            idempotency.OutcomeKind
		}{
			{"same-body", "hash-same-body", idempotency.Replay},
			{"other-body", "hash-of-another-body", idempotency.Conflict},
		} {
			key := op.name + "-" + tc.body
			k := idempotency.Key{Caller: "agent", Method: "POST", Path: "/checkout_sessions/x", Key: key}
			keys := postgres.NewIdempotency(e.pool, time.Hour)
			claim := idempotency.NewDeferred(k, "hash-"+tc.body, func(ctx context.Context) (idempotency.Outcome, error) {
				return keys.Claim(ctx, k, "hash-"+tc.body)
			})
			recordOther := func() {
				if _, err := e.pool.Exec(context.Background(), `INSERT INTO idempotency_keys (caller, method, path, key,
					api_version, request_hash, claim_id, state, claimed_at, response_status, response_body, completed_at)
					VALUES ($1, $2, $3, $4, '', $5, 'clm_other', 'completed', now(), 200, '{"other":true}', now())`,
					k.Caller, k.Method, k.Path, k.Key, tc.otherHash); err != nil {
					t.Error(err)
				}
			}
			idempotency.SetEncoder(claim, func(v checkout.View) (int, []byte, error) {
				if !op.recordedFirst {
					recordOther() // between the look-up and the transaction's insert of the key
				}
				return 200, []byte(`{"id":"` + v.Session.ID + `"}`), nil
			})
			if op.recordedFirst {
				recordOther()
			}
			if err := op.run(idempotency.NewContext(ctx, claim), key); !errors.Is(err, idempotency.ErrNotClaimed) {
				t.Fatalf("%s: %v, want ErrNotClaimed", key, err)
			}
			if out, refused := claim.Refused(); !refused || out.Kind != tc.want {
				t.Errorf("%s: the claim found %+v, %v; want %v", key, out, refused, tc.want)
			}
			if op.applied(key) {
				t.Errorf("%s: the work applied: its transaction must roll back", key)
			}
			if n := e.text(`SELECT count(*)::text FROM idempotency_keys WHERE key = $1`, key); n != "1" {
				t.Errorf("%s: %s rows of the key, want the other request's", key, n)
			}
		}
	}
}

// A vault-token completion reads its session and token ahead of its locks. A change to the session committed before it locks the row makes
// it run again under its locks: the order is that of the session as changed, and the
// response is recorded once.
func TestCompleteReadAheadRunsAgainOnAChangedSession(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t)
	sid := e.readySession()
	tok := e.vaultToken(sid)
	changed, encoded := false, 0
	k := idempotency.Key{Caller: "agent", Method: "POST", Path: "/checkout_sessions/" + sid + "/complete", Key: "complete"}
	out, err := postgres.NewIdempotency(e.pool, time.Hour).Claim(context.Background(), k, "hash")
	if err != nil || out.Kind != idempotency.Claimed {
		t.Fatalf("claim: %+v, %v", out, err)
	}
	claim := &idempotency.Claim{Key: k, ClaimID: out.ClaimID}
	ctx := idempotency.NewContext(context.Background(), claim)
	idempotency.SetEncoder(claim, func(v checkout.View) (int, []byte, error) {
		encoded++
		if !changed {
			changed = true
			if _, err := e.pool.Exec(context.Background(),
				`UPDATE checkout_sessions SET buyer = '{"email":"grace@example.com","first_name":"Grace","last_name":"Hopper"}' WHERE id = $1`, sid); err != nil {
				t.Error(err)
			}
		}
		return 200, []byte(`{"id":"` + v.Session.ID + `"}`), nil
	})
	view, err := e.store.CompleteSession(ctx, "", sid, checkout.Completion{Token: tok, Provider: "stripe"})
	if err != nil {
		t.Fatal(err)
	}
	if encoded != 2 {
		t.Errorf("the completion's response was encoded %d times, want 2: it must run again under its locks", encoded)
	}
	if view.Order == nil || view.Session.Buyer == nil || view.Session.Buyer.FirstName != "Grace" {
		t.Errorf("completion answered order %v, buyer %+v: want an order for the changed session", view.Order, view.Session.Buyer)
	}
	if n := e.text(`SELECT count(*)::text FROM orders WHERE checkout_session_id = $1`, sid); n != "1" {
		t.Errorf("%s orders, want 1", n)
	}
	if n := e.text(`SELECT buyer->>'first_name' FROM checkout_sessions WHERE id = $1`, sid); n != "Grace" {
		t.Errorf("stored buyer %s: the concurrent change is lost", n)
	}
	if _, ok := claim.Recorded(); !ok {
		t.Error("the completion's response was not recorded with its key")
	}
}
