package postgres_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/agentic-commerce/agentic-commerce-server/internal/postgres"
)

// domainTables are the tables migrations 00023, 00025 and 00026 moved CHECK constraints
// of from the table to the columns' domains: those every flow writes, and the payment
// attempts a PSP completion writes.
var domainTables = []string{
	"checkout_sessions", "idempotency_keys", "vault_tokens", "orders", "line_items", "order_lines", "order_amounts",
	"payment_attempts",
}

// domainRule is one rule migration 00023, 00025 or 00026 moved: a write that breaks it,
// the domain that refuses it since, and the table constraint that refused it before.
type domainRule struct {
	table, set, where string
	value             any
	domain, before    string
}

// domainRules lists every rule 00023, 00025 and 00026 moved, each broken once. The row
// keys are filled in by the test ($2: a session's, an order's, a vault token's, an
// idempotency key's or a payment attempt's).
func domainRules() []domainRule {
	long := func(n int) string { return strings.Repeat("x", n) }
	byID, byKey, byOrder, bySession := "id = $2", "key = $2", "order_id = $2", "checkout_session_id = $2"
	return []domainRule{
		{"checkout_sessions", "currency", byID, "USD", "currency_code", "checkout_sessions_currency_check"},
		{"checkout_sessions", "authentication_directory_server", byID, "discover", "directory_server", "checkout_sessions_authentication_directory_server_check"},
		{"checkout_sessions", "cancel_reason", byID, "merchant", "session_cancel_reason", "checkout_sessions_cancel_reason_check"},
		{"checkout_sessions", "locale", byID, long(65), "locale_tag", "checkout_sessions_locale_check"},
		{"checkout_sessions", "timezone", byID, long(65), "time_zone_name", "checkout_sessions_timezone_check"},
		{"idempotency_keys", "key", byKey, "", "idempotency_key", "idempotency_keys_key_check"},
		// Without a response, so that idempotency_keys_check (state and response agree) holds.
		{"idempotency_keys", "response_status = NULL, response_body = NULL, completed_at = NULL, state", byKey, "done",
			"idempotency_key_state", "idempotency_keys_state_check"},
		{"idempotency_keys", "response_status", byKey, 500, "recorded_status", "idempotency_keys_response_status_check"},
		{"vault_tokens", "currency", byID, "us", "currency_code", "vault_tokens_currency_check"},
		{"vault_tokens", "authentication_directory_server", byID, "discover", "directory_server", "vault_tokens_authentication_directory_server_check"},
		{"vault_tokens", "card_exp_month", byID, 13, "card_exp_month", "vault_tokens_card_exp_month_check"},
		{"vault_tokens", "card_exp_year", byID, 1999, "card_exp_year", "vault_tokens_card_exp_year_check"},
		{"vault_tokens", "card_funding_type", byID, "charge", "card_funding_type", "vault_tokens_card_funding_type_check"},
		{"vault_tokens", "card_last4", byID, "42", "card_last4", "vault_tokens_card_last4_check"},
		{"vault_tokens", "card_number_type", byID, "dpan", "card_number_type", "vault_tokens_card_number_type_check"},
		{"vault_tokens", "merchant_id", byID, "", "merchant_identifier", "vault_tokens_merchant_id_check"},
		{"vault_tokens", "max_amount", byID, 0, "allowance_amount", "vault_tokens_max_amount_check"},
		{"orders", "currency", byID, "usdd", "currency_code", "orders_currency_check"},
		{"orders", "amount", byID, -1, "minor_units", "orders_amount_check"},
		{"orders", "payment_method", byID, "cash", "order_payment_method", "orders_payment_method_check"},
		{"orders", "status", byID, "lost", "order_status", "orders_status_check"},
		{"orders", "authentication_transaction_id", byID, long(257), "authentication_transaction_id", "orders_authentication_transaction_id_check"},
		{"orders", "authentication_version", byID, long(17), "authentication_version", "orders_authentication_version_check"},
		// The two rules over an order's 3-D Secure result name both of its columns, so each
		// is broken with the other column set, and refused by its own rule alone.
		{"orders", "authentication_eci = '05', authentication_outcome", byID, "denied", "authentication_outcome", "orders_authentication_outcome_check"},
		{"orders", "authentication_outcome = 'authenticated', authentication_eci", byID, "03", "eci_indicator", "orders_authentication_eci_check"},
		{"line_items", "position", bySession, -1, "line_position", "line_items_position_check"},
		{"line_items", "quantity", bySession, 10001, "line_quantity", "line_items_quantity_check"},
		{"line_items", "unit_amount", bySession, -1, "minor_units", "line_items_unit_amount_check"},
		{"order_lines", "quantity_current", byOrder, -1, "quantity_left", "order_lines_quantity_current_check"},
		{"order_lines", "subtotal", byOrder, -1, "minor_units", "order_lines_subtotal_check"},
		{"order_lines", "tax", byOrder, -1, "minor_units", "order_lines_tax_check"},
		{"order_amounts", "subtotal", byOrder, -1, "minor_units", "order_amounts_subtotal_check"},
		{"order_amounts", "discount", byOrder, -1, "minor_units", "order_amounts_discount_check"},
		{"order_amounts", "fulfillment", byOrder, -1, "minor_units", "order_amounts_fulfillment_check"},
		{"order_amounts", "tax", byOrder, -1, "minor_units", "order_amounts_tax_check"},
		{"payment_attempts", "number", byID, 0, "positive_count", "payment_attempts_number_check"},
		{"payment_attempts", "tries", byID, 0, "positive_count", "payment_attempts_tries_check"},
		{"payment_attempts", "order_id", byID, "", "nonempty_text", "payment_attempts_order_id_check"},
		{"payment_attempts", "gateway", byID, "", "nonempty_text", "payment_attempts_gateway_check"},
		{"payment_attempts", "idempotency_key", byID, "", "nonempty_text", "payment_attempts_idempotency_key_check"},
		{"payment_attempts", "token", byID, "", "nonempty_text", "payment_attempts_token_check"},
		{"payment_attempts", "amount", byID, -1, "minor_units", "payment_attempts_amount_check"},
		{"payment_attempts", "currency", byID, "EUR", "currency_code", "payment_attempts_currency_check"},
		// Migration 00026's: the jsonb columns' rules and the ids'.
		{"checkout_sessions", "buyer", byID, `{"first_name": "Ada", "last_name": "Lovelace"}`, "buyer_details", "checkout_sessions_buyer_check"},
		{"checkout_sessions", "fulfillment_address", byID, `{"name": "Ada", "city": "London"}`, "postal_address", "checkout_sessions_fulfillment_address_check"},
		{"checkout_sessions", "fulfillment_contact", byID, `["ada@example.com"]`, "jsonb_object", "checkout_sessions_fulfillment_contact_check"},
		{"checkout_sessions", "metadata", byID, `"note"`, "jsonb_object", "checkout_sessions_metadata_check"},
		// A trace only on a canceled session (checkout_sessions_trace_when_canceled), with
		// its cancel reason (checkout_sessions_cancel_reason_state).
		{"checkout_sessions", "state = 'canceled', cancel_reason = 'agent', cancel_intent_trace", byID, `{"summary": "no reason code"}`,
			"intent_trace", "checkout_sessions_cancel_intent_trace_check"},
		{"checkout_sessions", "id", byID, "", "nonempty_text", "checkout_sessions_id_check"},
		{"vault_tokens", "billing_address", byID, `[]`, "jsonb_object", "vault_tokens_billing_address_check"},
		{"vault_tokens", "metadata", byID, `1`, "jsonb_object", "vault_tokens_metadata_check"},
		{"vault_tokens", "risk_signals", byID, `{}`, "jsonb_array", "vault_tokens_risk_signals_check"},
		{"vault_tokens", "id", byID, "tok_1", "vault_token_identifier", "vault_tokens_id_check"},
		{"orders", "billing_address", byID, `"1 Road"`, "jsonb_object", "orders_billing_address_check"},
		{"orders", "id", byID, "", "nonempty_text", "orders_id_check"},
		{"line_items", "id", bySession, "", "nonempty_text", "line_items_id_check"},
		{"payment_attempts", "id", byID, "", "nonempty_text", "payment_attempts_id_check"},
		{"payment_attempts", "plan", byID, `[]`, "jsonb_object", "payment_attempts_plan_check"},
	}
}

// Migrations 00023, 00025 and 00026 move the one-column CHECK constraints of the tables
// a checkout writes into domains (docs/performance-history.md, "Twelfth round" and "Thirteenth
// round"). Down and up again over a database with a session, an order paid through the
// PSP, a vault token and an idempotency key, they must rewrite no table and rebuild no
// index (they run under ACCESS EXCLUSIVE locks: a rewrite would hold every completion
// back for as long as it takes), leave every constraint validated once 00024 and 00027
// have run, and keep refusing each bad value: from a table constraint at version 22,
// from its domain at the latest version, with SQLSTATE 23514 both times.
func TestChecksAsDomainsRewriteNothing(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t)
	ctx := context.Background()
	ord := e.mustOrder()
	sid := e.readySession()
	tok := e.vaultToken(sid)
	const key = "domains-test-key"
	e.exec(`INSERT INTO idempotency_keys (caller, method, path, key, api_version, request_hash, claim_id, state,
		response_status, response_body, claimed_at, completed_at)
		VALUES ('caller', 'POST', '/checkout_sessions', $1, '2026-04-17', 'hash', 'claim', 'completed', 201, '{}', now(), now())`, key)
	// The order was paid through the PSP (mustOrder's tok_visa): its payment attempt.
	attempt := e.texts(`SELECT id FROM payment_attempts WHERE order_id = $1`, ord.ID)
	if len(attempt) != 1 {
		t.Fatalf("payment attempts of order %s: %v", ord.ID, attempt)
	}
	keyOf := map[string]string{
		"checkout_sessions": sid, "line_items": sid, "idempotency_keys": key, "vault_tokens": tok,
		"orders": ord.ID, "order_lines": ord.ID, "order_amounts": ord.ID, "payment_attempts": attempt[0],
	}

	m := e.migrator()
	rules := domainRules()
	refused := func(version int64, r domainRule) {
		t.Helper()
		_, err := e.pool.Exec(ctx, "UPDATE "+r.table+" SET "+r.set+" = $1 WHERE "+r.where, r.value, keyOf[r.table])
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "23514" {
			t.Errorf("version %d: %s.%s = %v: %v, want a check violation", version, r.table, r.set, r.value, err)
			return
		}
		want, wantType := r.before, ""
		if version >= 23 {
			want, wantType = r.domain+"_check", r.domain
		}
		if pgErr.ConstraintName != want || pgErr.DataTypeName != wantType {
			t.Errorf("version %d: %s.%s = %v refused by constraint %q of type %q, want %q of type %q",
				version, r.table, r.set, r.value, pgErr.ConstraintName, pgErr.DataTypeName, want, wantType)
		}
	}

	latest := m.LatestVersion()
	atLatest := fileNodes(t, e.pool)
	for _, r := range rules {
		refused(latest, r)
	}
	// Down to 22 through any later migration, then up again through all of them.
	e.downTo22(m)
	if got := fileNodes(t, e.pool); !maps.Equal(got, atLatest) {
		t.Errorf("down to 22 rewrote: %s", fileNodeChanges(atLatest, got))
	}
	for _, r := range rules {
		refused(22, r)
	}
	if _, err := m.Up(ctx); err != nil {
		t.Fatal(err)
	}
	if got := fileNodes(t, e.pool); !maps.Equal(got, atLatest) {
		t.Errorf("up from 22 rewrote: %s", fileNodeChanges(atLatest, got))
	}
	for _, r := range rules {
		refused(latest, r)
	}
	invalid := e.texts(`SELECT conrelid::regclass::text || '.' || conname FROM pg_constraint
		WHERE conrelid <> 0 AND NOT convalidated ORDER BY 1`)
	if len(invalid) > 0 {
		t.Errorf("table constraints left NOT VALID: %v", invalid)
	}
}

// Migration 00023 takes ACCESS EXCLUSIVE locks, and every request that comes after one
// waits behind it. Behind a transaction that does not end, it must give up at its
// lock_timeout, whole (the schema stays at 22, the columns of their old types), so that
// the requests go on; once the transaction ends, it applies.
func TestChecksAsDomainsGiveWayToALongTransaction(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t)
	ctx := context.Background()
	m := e.migrator()
	latest := m.LatestVersion()
	e.downTo22(m)
	reader, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = reader.Rollback(ctx) }()
	if _, err := reader.Exec(ctx, `SELECT 1 FROM orders LIMIT 1`); err != nil {
		t.Fatal(err)
	}

	// Without its lock_timeout the migration would wait for the reader for ever: the
	// context ends that wait with another error.
	bounded, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	_, err = m.Up(bounded)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "55P03" {
		t.Fatalf("up behind an open transaction: %v, want lock_timeout's lock_not_available (55P03)", err)
	}
	if v, err := postgres.SchemaVersion(ctx, e.pool); err != nil || v != 22 {
		t.Errorf("schema version after the failed migration = %d, %v; want 22", v, err)
	}
	if types := e.texts(`SELECT format_type(atttypid, atttypmod) FROM pg_attribute
		WHERE attrelid = 'checkout_sessions'::regclass AND attname = 'currency'`); len(types) != 1 || types[0] != "text" {
		t.Errorf("checkout_sessions.currency is %v after the failed migration, want text", types)
	}

	if err := reader.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Up(ctx); err != nil {
		t.Fatalf("up once the transaction ended: %v", err)
	}
	if v, err := postgres.SchemaVersion(ctx, e.pool); err != nil || v != latest {
		t.Errorf("schema version = %d, %v; want %d", v, err, latest)
	}
}

// migrator is a Migrator on e's database, closed with the test.
func (e *outboxEnv) migrator() *postgres.Migrator {
	e.t.Helper()
	m, err := postgres.NewMigrator(e.pool, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = m.Close() })
	return m
}

// downTo22 rolls e's database back to version 22, before migration 00023, through any
// later migration.
func (e *outboxEnv) downTo22(m *postgres.Migrator) {
	e.t.Helper()
	for v := m.LatestVersion(); v >= 23; v-- {
		if err := m.Down(context.Background()); err != nil {
			e.t.Fatalf("down from %d: %v", v, err)
		}
	}
}

// fileNodes maps each of domainTables, its TOAST table and its indexes to the file that
// holds it: a rewrite or a rebuild gives it a new one.
func fileNodes(t *testing.T, pool *pgxpool.Pool) map[string]uint32 {
	t.Helper()
	type fileNode struct {
		Name string
		Node int64
	}
	rows, _ := pool.Query(context.Background(), `
		SELECT c.relname::text AS name, c.relfilenode::oid::bigint AS node FROM pg_class c
		WHERE c.oid IN (
			SELECT r.oid FROM pg_class r WHERE r.relname = ANY($1::text[])
			UNION ALL SELECT r.reltoastrelid FROM pg_class r WHERE r.relname = ANY($1::text[]) AND r.reltoastrelid <> 0
			UNION ALL SELECT i.indexrelid FROM pg_index i JOIN pg_class r ON r.oid = i.indrelid WHERE r.relname = ANY($1::text[]))`,
		domainTables)
	found, err := pgx.CollectRows(rows, pgx.RowToStructByName[fileNode])
	if err != nil {
		t.Fatal(err)
	}
	nodes := map[string]uint32{}
	for _, f := range found {
		nodes[f.Name] = uint32(f.Node)
	}
	if len(nodes) < 2*len(domainTables) {
		t.Fatalf("found %d relations of %v: %v", len(nodes), domainTables, nodes)
	}
	return nodes
}

// fileNodeChanges names the relations whose file differs between before and after.
func fileNodeChanges(before, after map[string]uint32) string {
	var changed []string
	for name, node := range before {
		if after[name] != node {
			changed = append(changed, name)
		}
	}
	for name := range after {
		if _, ok := before[name]; !ok {
			changed = append(changed, name+" (new)")
		}
	}
	return strings.Join(changed, ", ")
}

// The tables every flow writes keep a CHECK constraint of their own only where a domain
// cannot take it (docs/decisions.md, "Performance round 2"): over several columns, or
// on a column a partial index names. Another one would be rebuilt by PostgreSQL for
// every statement that writes the table, which is what migrations 00023 and 00026 took
// out.
func TestFlowTablesCheckOneColumnThroughDomains(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t)
	kept := e.texts(`
		SELECT c.conrelid::regclass::text || ' keeps ' || c.conname
		FROM pg_constraint c
		JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
		WHERE c.contype = 'c' AND cardinality(c.conkey) = 1 AND c.conrelid::regclass::text = ANY($1::text[])
		  AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.conrelid AND i.indpred IS NOT NULL
		      AND pg_get_expr(i.indpred, i.indrelid) ~ ('\m' || a.attname || '\M'))
		ORDER BY 1`, domainTables)
	for _, k := range kept {
		t.Errorf("%s, a CHECK of one column: make it the column's domain", k)
	}
}

// texts runs a query of one text column and returns its rows.
func (e *outboxEnv) texts(sql string, args ...any) []string {
	e.t.Helper()
	rows, _ := e.pool.Query(context.Background(), sql, args...)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
	return out
}
