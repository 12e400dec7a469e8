package postgres_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/agentic-commerce/agentic-commerce-server/internal/idempotency"
	"github.com/agentic-commerce/agentic-commerce-server/internal/pgtest"
	"github.com/agentic-commerce/agentic-commerce-server/internal/postgres"
	"github.com/agentic-commerce/agentic-commerce-server/migrations"
)

// Issue 9: the stored response is in the wire format of the version that produced it,
// so the API version is part of the key. The same key, path and body under another
// version is a separate record: claimed afresh, never replayed, never a conflict.
func TestIdempotencyKeyIsScopedByAPIVersion(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := postgres.NewIdempotency(pgtest.MustPool(t), time.Hour)
	key := func(version string) idempotency.Key {
		return idempotency.Key{Caller: "platform_a", Method: "POST", Path: "/checkout_sessions/cs_1/complete", Key: "K", APIVersion: version}
	}
	claim := func(version, hash string, want idempotency.OutcomeKind) idempotency.Outcome {
		t.Helper()
		out, err := store.Claim(ctx, key(version), hash)
		if err != nil {
			t.Fatalf("claim under %q: %v", version, err)
		}
		if out.Kind != want {
			t.Fatalf("claim under %q = %v, want %v", version, out.Kind, want)
		}
		return out
	}
	complete := func(version string, out idempotency.Outcome, body string) {
		t.Helper()
		if err := store.Complete(ctx, &idempotency.Claim{Key: key(version), ClaimID: out.ClaimID}, 200, []byte(body)); err != nil {
			t.Fatalf("complete under %q: %v", version, err)
		}
	}

	complete("2025-09-29", claim("2025-09-29", "h", idempotency.Claimed), `{"v":"2025-09-29"}`)
	// Another version: neither a replay of the 2025-09-29 body nor a conflict, with the
	// same body or another.
	newer := claim("2026-04-17", "h", idempotency.Claimed)
	claim("2026-04-17", "h", idempotency.InFlight)
	complete("2026-04-17", newer, `{"v":"2026-04-17"}`)
	claim("2099-01-01", "other", idempotency.Claimed)
	// An unversioned route (the /admin API) is a scope of its own.
	unversioned := claim("", "h", idempotency.Claimed)
	if err := store.Release(ctx, &idempotency.Claim{Key: key(""), ClaimID: unversioned.ClaimID}); err != nil {
		t.Fatal(err)
	}

	// Each version replays its own body; releasing the unversioned claim touched no other.
	for version, want := range map[string]string{"2025-09-29": `{"v":"2025-09-29"}`, "2026-04-17": `{"v":"2026-04-17"}`} {
		if out := claim(version, "h", idempotency.Replay); string(out.Body) != want {
			t.Errorf("replay under %s = %s, want %s", version, out.Body, want)
		}
		claim(version, "changed", idempotency.Conflict)
	}
	claim("", "h", idempotency.Claimed)
}

// Migration 00005 goes down and up again: records of other versions are dropped so the
// old primary key holds, 2025-09-29 and /admin records are kept, and on the way up the
// /admin records are unversioned again.
func TestMigration00005DownAndUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.MustPool(t)
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	insert := func(path, key, version string) {
		t.Helper()
		exec(`INSERT INTO idempotency_keys (caller, method, path, key, api_version, request_hash, claim_id, state, claimed_at)
			VALUES ('c', 'POST', $1, $2, $3, 'h', 'clm', 'in_flight', now())`, path, key, version)
	}
	insert("/checkout_sessions", "both", "2025-09-29")
	insert("/checkout_sessions", "both", "2026-04-17")
	insert("/checkout_sessions", "newer", "2026-04-17")
	insert("/admin/orders/ord_1/refunds", "admin", "")
	// Written by an instance of the previous release during a rolling deploy.
	insert("/admin/orders/ord_1/refunds", "twin", "")
	exec(`INSERT INTO idempotency_keys (caller, method, path, key, request_hash, claim_id, state, claimed_at)
		VALUES ('c', 'POST', '/admin/orders/ord_1/refunds', 'twin', 'h', 'clm', 'in_flight', now())`)

	provider := migrationProvider(t, pool)
	if _, err := provider.DownTo(ctx, 4); err != nil {
		t.Fatalf("down to 4: %v", err)
	}
	keys := func(column string) []string {
		t.Helper()
		rows, _ := pool.Query(ctx, `SELECT key || ' ' || `+column+` FROM idempotency_keys ORDER BY 1`)
		out, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if got, want := keys("path"), []string{"admin /admin/orders/ord_1/refunds", "both /checkout_sessions", "twin /admin/orders/ord_1/refunds"}; !slices.Equal(got, want) {
		t.Errorf("rows after down = %q, want %q", got, want)
	}
	var pk string
	if err := pool.QueryRow(ctx, `SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'idempotency_keys_pkey'`).Scan(&pk); err != nil {
		t.Fatal(err)
	}
	if pk != "PRIMARY KEY (caller, method, path, key)" {
		t.Errorf("primary key after down = %s", pk)
	}

	if _, err := provider.Up(ctx); err != nil {
		t.Fatalf("up: %v", err)
	}
	if got, want := keys("api_version"), []string{"admin ", "both 2025-09-29", "twin "}; !slices.Equal(got, want) {
		t.Errorf("rows after up = %q, want %q", got, want)
	}
}

// Migration 00028 lets a record keep its response compressed ('completed_gzip') and
// goes down and up again: the rule over the state and the response holds for both
// completed states, 00029 leaves it validated, and down drops the compressed records,
// which the release before it cannot read, keeping the others.
func TestMigration00028DownAndUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.MustPool(t)
	insert := func(key, state string, withResponse bool) error {
		_, err := pool.Exec(ctx, `INSERT INTO idempotency_keys (caller, method, path, key, api_version, request_hash,
				claim_id, state, claimed_at, response_status, response_body, completed_at)
			SELECT 'c', 'POST', '/checkout_sessions', $1, '2026-04-17', 'h', 'clm', $2::text, now(), s, b, a
			FROM (SELECT CASE WHEN $3 THEN 201 END AS s, CASE WHEN $3 THEN '\x1f8b'::bytea END AS b,
				CASE WHEN $3 THEN now() END AS a) r`, key, state, withResponse)
		return err
	}
	mustInsert := func(key, state string, withResponse bool) {
		t.Helper()
		if err := insert(key, state, withResponse); err != nil {
			t.Fatalf("insert %s %s: %v", key, state, err)
		}
	}
	mustRefuse := func(key, state string, withResponse bool) {
		t.Helper()
		var pgErr *pgconn.PgError
		if err := insert(key, state, withResponse); !errors.As(err, &pgErr) || pgErr.Code != "23514" {
			t.Errorf("insert %s %s (response %v): err %v, want a check violation", key, state, withResponse, err)
		}
	}
	mustInsert("plain", "completed", true)
	mustInsert("zipped", "completed_gzip", true)
	mustInsert("running", "in_flight", false)
	mustRefuse("no-response", "completed_gzip", false)
	mustRefuse("in-flight-with-response", "in_flight", true)
	mustRefuse("unknown", "completed_zstd", true)
	var valid bool
	if err := pool.QueryRow(ctx, `SELECT convalidated FROM pg_constraint WHERE conname = 'idempotency_keys_check'`).Scan(&valid); err != nil || !valid {
		t.Errorf("idempotency_keys_check validated = %v (%v), want true after 00029", valid, err)
	}

	provider := migrationProvider(t, pool)
	if _, err := provider.DownTo(ctx, 27); err != nil {
		t.Fatalf("down to 27: %v", err)
	}
	keys := func() []string {
		t.Helper()
		rows, _ := pool.Query(ctx, `SELECT key || ' ' || state FROM idempotency_keys ORDER BY 1`)
		out, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if got, want := keys(), []string{"plain completed", "running in_flight"}; !slices.Equal(got, want) {
		t.Errorf("rows after down = %q, want %q", got, want)
	}
	mustRefuse("zipped-again", "completed_gzip", true)

	if _, err := provider.Up(ctx); err != nil {
		t.Fatalf("up: %v", err)
	}
	mustInsert("zipped-again", "completed_gzip", true)
	mustRefuse("no-response-again", "completed_gzip", false)
}

// Retention deletes old keys in batches of at most 1,000, each a statement of its own
// transaction, until a batch comes back short: a backlog goes whole without one long
// transaction, and the keys within the TTL stay.
func TestIdempotencyDeleteBeforeEmptiesABacklogInBatches(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	roundTrips := &pgtest.RoundTrips{}
	pool := pgtest.MustPoolTraced(t, roundTrips)
	if _, err := pool.Exec(ctx, `INSERT INTO idempotency_keys (caller, method, path, key, api_version, request_hash,
			claim_id, state, response_status, response_body, claimed_at, completed_at, created_at)
		SELECT 'platform_a', 'POST', '/checkout_sessions', 'K' || g, '2026-04-17', 'hash', 'claim' || g, 'completed',
			201, '{}', now(), now(), now() - CASE WHEN g <= 2500 THEN interval '2 days' ELSE interval '1 hour' END
		FROM generate_series(1, 2600) g`); err != nil {
		t.Fatal(err)
	}
	var deleted int64
	var err error
	n, sent := roundTrips.Measure(func() {
		deleted, err = postgres.NewIdempotency(pool, time.Minute).DeleteBefore(ctx, time.Now().Add(-24*time.Hour))
	})
	if err != nil || deleted != 2500 {
		t.Fatalf("DeleteBefore = %d, %v; want the 2500 old keys", deleted, err)
	}
	if n != 3 {
		t.Errorf("DeleteBefore made %d round trips, want 3 (1000, 1000, 500): %q", n, sent)
	}
	var left int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM idempotency_keys WHERE created_at > now() - interval '2 hours'`).Scan(&left); err != nil || left != 100 {
		t.Errorf("%d recent keys left (%v), want 100", left, err)
	}
}

// migrationProvider is a goose provider of the embedded migrations on pool, for tests
// that move a database down and up again; its connection closes with the test.
func migrationProvider(t *testing.T, pool *pgxpool.Pool) *goose.Provider {
	t.Helper()
	db := stdlib.OpenDBFromPool(pool)
	t.Cleanup(func() { _ = db.Close() })
	provider, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS)
	if err != nil {
		t.Fatal(err)
	}
	return provider
}
