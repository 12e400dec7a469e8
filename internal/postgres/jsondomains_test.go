package postgres_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/testkit"
)

// Migration 00026 made ten jsonb columns domains, and the others may become ones. pgx
// knows no domain: a parameter of one is sent as text, and a []byte (sqlc's Go type for
// json and jsonb) as bytea's text, `\x7b…`, which a jsonb domain refuses. So every
// statement casts the parameters it writes to a json or jsonb column (`::jsonb`): the
// release before 00026 did, so that it ran beside 00026's during a rollout
// (docs/performance-history.md, "Thirteenth round"), and the release before a next such
// migration must too.
//
// Here every json and jsonb column becomes a domain of the test's own, without rules
// (the types are what matters). Then every statement of db must prepare (a parameter
// bound both to a domain column and to text elsewhere would fail, 42P08) with no
// parameter typed as a json domain, and a checkout must run through: a PSP completion,
// a vault token's with every jsonb value a completion brings, and a cancel with its
// trace.
func TestStatementsSurviveJSONDomains(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t)
	ctx := context.Background()

	rows, _ := e.pool.Query(ctx, `SELECT table_name, column_name, data_type FROM information_schema.columns
		WHERE table_schema = 'public' AND data_type IN ('json', 'jsonb') ORDER BY 1, 2`)
	columns, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct{ Table, Column, Type string }])
	if err != nil {
		t.Fatal(err)
	}
	if len(columns) == 0 {
		t.Fatal("no json or jsonb column: the test would hold nothing")
	}
	for _, c := range columns {
		domain := pgx.Identifier{"next_" + c.Table + "_" + c.Column}.Sanitize()
		e.exec(fmt.Sprintf(`CREATE DOMAIN %s AS %s`, domain, c.Type))
		e.exec(fmt.Sprintf(`ALTER TABLE %s ALTER COLUMN %s TYPE %s`,
			pgx.Identifier{c.Table}.Sanitize(), pgx.Identifier{c.Column}.Sanitize(), domain))
	}
	rows, _ = e.pool.Query(ctx, `SELECT oid::bigint, typname::text FROM pg_type
		WHERE typtype = 'd' AND typbasetype IN ('json'::regtype, 'jsonb'::regtype)`)
	jsonDomains, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct {
		OID  int64
		Name string
	}])
	if err != nil {
		t.Fatal(err)
	}
	jsonDomainOf := map[uint32]string{}
	for _, d := range jsonDomains {
		jsonDomainOf[uint32(d.OID)] = d.Name
	}

	conn, err := e.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	queries := testkit.Queries(t)
	for _, name := range slices.Sorted(maps.Keys(queries)) {
		sd, err := conn.Conn().Prepare(ctx, "", queries[name])
		if err != nil {
			t.Errorf("%s does not prepare once those columns are domains: %v", name, err)
			continue
		}
		for i, oid := range sd.ParamOIDs {
			if d, ok := jsonDomainOf[oid]; ok {
				t.Errorf("%s binds $%d to the domain %s: pgx would send a []byte as bytea's text, which PostgreSQL refuses; cast it (::jsonb)",
					name, i+1, d)
			}
		}
	}

	// A checkout through each way of paying, on the domains: a PSP completion (which
	// writes payment_attempts' jsonb columns; mustOrder fails the test on an error), then
	// a vault token's.
	e.mustOrder()
	sid := e.readySession()
	tok := e.vaultToken(sid)
	address := &checkout.Address{Name: "Ada", LineOne: "1 Road", City: "San Francisco", State: "CA", Country: "US", PostalCode: "94131"}
	v, err := e.store.CompleteSession(ctx, "", sid, checkout.Completion{
		Token: tok, Provider: "stripe", BillingAddress: address,
		Buyer:       &checkout.Buyer{FirstName: "Grace", LastName: "Hopper", Email: "grace@example.com"},
		Attribution: &checkout.Attribution{Provider: "affiliate.example", PublisherID: "pub_1"},
	})
	if err != nil {
		t.Fatalf("complete with a vault token: %v", err)
	}
	if v.Order == nil {
		t.Fatal("complete with a vault token: no order")
	}
	got, err := e.store.GetSession(ctx, "", sid)
	if err != nil {
		t.Fatal(err)
	}
	if got.Session.Buyer == nil || got.Session.Buyer.Email != "grace@example.com" ||
		got.Session.FulfillmentAddress == nil || got.Session.FulfillmentAddress.PostalCode != "94131" {
		t.Errorf("session read back: buyer %+v, address %+v", got.Session.Buyer, got.Session.FulfillmentAddress)
	}
	open := e.readySession()
	canceled, err := e.store.CancelSession(ctx, "", open, &checkout.IntentTrace{ReasonCode: "price_sensitivity", Summary: "too dear"})
	if err != nil {
		t.Fatalf("cancel with a trace: %v", err)
	}
	if canceled.Session.State != checkout.StateCanceled {
		t.Errorf("canceled session is %q", canceled.Session.State)
	}
}
