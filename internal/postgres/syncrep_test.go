package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/agentic-commerce/agentic-commerce-server/db"
	"github.com/agentic-commerce/agentic-commerce-server/internal/idempotency"
	"github.com/agentic-commerce/agentic-commerce-server/internal/pgserver"
	"github.com/agentic-commerce/agentic-commerce-server/internal/pgtest"
	"github.com/agentic-commerce/agentic-commerce-server/internal/postgres"
)

// A claim whose transaction holds nothing else (taken on its own) commits without
// waiting for the WAL flush; the work's commit waits, and so does the key inserted in
// the work's own transaction (a delegation's), which must not be answered before it is
// durable. A key that the first read found free is held by the work's transaction, so
// no row of it shows while that commit waits, but a duplicate meets the hold. On this
// cluster every commit that waits waits forever: synchronous_commit is on and a
// synchronous standby never connects. A transaction waiting for it has committed
// locally but stays invisible to others (and keeps its locks), so a claim seen from
// another connection did not wait.
func TestOnlyAClaimAloneCommitsWithoutWaitingForTheFlush(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	pool := syncRepPool(t, ctx)
	// stateSeen is the state of key's row as another connection sees it ("": none).
	stateSeen := func(key string) string {
		t.Helper()
		var state string
		if err := pool.QueryRow(ctx, `SELECT coalesce(max(state), '') FROM idempotency_keys WHERE key = $1`, key).Scan(&state); err != nil {
			t.Fatal(err)
		}
		return state
	}

	t.Run("claimed on its own", func(t *testing.T) {
		keys := postgres.NewIdempotency(pool, time.Hour)
		claimCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		out, err := keys.Claim(claimCtx, syncRepKey("alone"), "h")
		if err != nil || out.Kind != idempotency.Claimed || stateSeen("alone") != "in_flight" {
			t.Fatalf("claim: %+v, %v; want it claimed and seen without waiting", out, err)
		}
	})

	t.Run("found free by the first read", func(t *testing.T) {
		read := make(chan struct{})
		waitsForTheStandby(t, ctx, pool, func(ctx context.Context) error {
			return postgres.WithRiddenTx(deferredClaim(t, ctx, "read"), pool, func(q, _ *db.Queries) error {
				_, err := q.ListActiveFulfillmentOptions(ctx)
				close(read)
				return err // the key inserted with the response is the write whose commit waits
			})
		}, func() {
			select {
			case <-read:
			case <-time.After(15 * time.Second):
				t.Fatal("the read the look-up rode did not return")
			}
			if state := stateSeen("read"); state != "" {
				t.Errorf("a row of a key found free is seen (%s) while the work waits: the key must be held, not claimed", state)
			}
			tx, err := pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = tx.Rollback(context.Background()) }()
			k := syncRepKey("read")
			err = db.New(tx).HoldIdempotencyKey(ctx, db.HoldIdempotencyKeyParams{
				Caller: k.Caller, Method: k.Method, Path: k.Path, Key: k.Key, ApiVersion: k.APIVersion, RequestHash: "h",
			})
			if pgErr, ok := errors.AsType[*pgconn.PgError](err); !ok || pgErr.Code != "AC415" {
				t.Errorf("a duplicate's hold while the work waits for the standby: %v, want SQLSTATE AC415", err)
			}
		})
	})

	t.Run("riding the work's commit", func(t *testing.T) {
		waitsForTheStandby(t, ctx, pool, func(ctx context.Context) error {
			return postgres.WithRiddenTx(deferredClaim(t, ctx, "commit"), pool, func(_, _ *db.Queries) error {
				return nil // nothing read: the key's look-up rides the COMMIT of its insert
			})
		}, func() {
			if state := stateSeen("commit"); state != "" {
				t.Errorf("the key that rides the work's commit is seen (%s) before the commit is durable", state)
			}
		})
	})
}

// syncRepPool is a pool on a migrated database of a cluster of t's own whose
// synchronous commits wait for a standby that never comes.
func syncRepPool(t *testing.T, ctx context.Context) *pgxpool.Pool {
	t.Helper()
	c := pgtest.StartCluster(t, ctx, "synchronous_commit = on\n")
	admin, err := pgx.Connect(ctx, c.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(ctx, `CREATE DATABASE acp`); err != nil {
		t.Fatal(err)
	}
	url, err := pgserver.DatabaseURL(c.URL, "acp")
	if err != nil {
		t.Fatal(err)
	}
	if err := postgres.MigrateUp(ctx, url); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{`ALTER SYSTEM SET synchronous_standby_names = 'absent_standby'`, `SELECT pg_reload_conf()`} {
		if _, err := admin.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	pool, err := postgres.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	// The trap is set once a commit waits. A backend takes the new setting at its next
	// command, but whether its commit then waits is a flag in shared memory that the
	// checkpointer sets when it reloads, which can come later: under load, a commit
	// made after SHOW gave the new name did not wait. So commit until one waits.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		waited, err := comesToWait(ctx, pool, func(ctx context.Context) error {
			_, err := pool.Exec(ctx, `CREATE TEMPORARY TABLE trap_check (x integer) ON COMMIT DROP`)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if waited {
			return pool
		}
		if time.Now().After(deadline) {
			t.Fatal("no commit waits for the standby 30 s after the reload")
		}
	}
}

// waitsForTheStandby runs op and fails t unless op comes to wait for the synchronous
// standby; while it waits, each of meanwhile runs. op is then cancelled.
func waitsForTheStandby(t *testing.T, ctx context.Context, pool *pgxpool.Pool, op func(context.Context) error, meanwhile ...func()) {
	t.Helper()
	waited, err := comesToWait(ctx, pool, op, meanwhile...)
	if err != nil {
		t.Fatal(err)
	}
	if !waited {
		t.Fatal("the operation returned without waiting for the standby")
	}
}

// comesToWait runs op and reports whether it comes to wait for the synchronous standby
// (a backend of pool's database that was not waiting before op starts waits on
// SyncRep: a cancelled wait whose client left can go on), or returns first; while it
// waits, each of meanwhile runs. op is then cancelled.
func comesToWait(ctx context.Context, pool *pgxpool.Pool, op func(context.Context) error, meanwhile ...func()) (bool, error) {
	const waitingSQL = `SELECT coalesce(array_agg(pid), '{}') FROM pg_stat_activity
		WHERE datname = current_database() AND wait_event = 'SyncRep'`
	var before []int32
	if err := pool.QueryRow(ctx, waitingSQL).Scan(&before); err != nil {
		return false, err
	}
	opCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- op(opCtx) }()
	defer func() {
		cancel()
		<-done // its outcome once cancelled does not matter: its commit waited
	}()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		select {
		case err := <-done:
			done <- nil
			if err != nil {
				return false, fmt.Errorf("the operation failed without waiting for the standby: %w", err)
			}
			return false, nil
		default:
		}
		var waiting []int32
		if err := pool.QueryRow(ctx, waitingSQL).Scan(&waiting); err != nil {
			return false, err
		}
		if slices.ContainsFunc(waiting, func(pid int32) bool { return !slices.Contains(before, pid) }) {
			break
		}
		if time.Now().After(deadline) {
			return false, errors.New("the operation neither returned nor came to wait for the standby in 30 s")
		}
	}
	for _, f := range meanwhile {
		f()
	}
	return true, nil
}

// deferredClaim is ctx carrying a deferred claim of key, as the HTTP layer gives a
// request, which must ride the work's first round trip.
func deferredClaim(t *testing.T, ctx context.Context, key string) context.Context {
	claim := idempotency.NewDeferred(syncRepKey(key), "h", func(context.Context) (idempotency.Outcome, error) {
		t.Error("the deferred claim was taken on its own; it must ride the work")
		return idempotency.Outcome{}, errors.New("not expected")
	})
	idempotency.SetEncoder(claim, func(struct{}) (int, []byte, error) { return 200, []byte(`{}`), nil })
	return idempotency.NewContext(ctx, claim)
}

func syncRepKey(key string) idempotency.Key {
	return idempotency.Key{Caller: "agent", Method: "POST", Path: "/checkout_sessions", Key: key, APIVersion: "2026-04-17"}
}
