package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/agentic-commerce/agentic-commerce-server/db"
	"github.com/agentic-commerce/agentic-commerce-server/internal/catalog"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/idempotency"
	"github.com/agentic-commerce/agentic-commerce-server/internal/payment"
	"github.com/agentic-commerce/agentic-commerce-server/internal/pgtest"
	"github.com/agentic-commerce/agentic-commerce-server/internal/postgres"
)

// A delegation sends its token, the record of its response and the COMMIT in one
// round trip, so the record cannot be checked before committing: when the claim was
// taken over meanwhile (the request was presumed dead), the record fails in the
// database (raise_idempotency_claim_lost) and the token is not stored. When the claim
// holds, the token and the record commit together.
func TestPipelinedRecordOfALostClaimStoresNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.MustPool(t)
	keys := postgres.NewIdempotency(pool, time.Hour)
	vault := postgres.NewVault(pool, payment.NewFingerprinter([]byte("pipeline-test-fingerprint-key-0123456789")))
	delegate := func(key string, takeOver bool) error {
		t.Helper()
		k := idempotency.Key{Caller: "platform_a", Method: "POST", Path: "/agentic_commerce/delegate_payment", Key: key, APIVersion: "2026-04-17"}
		out, err := keys.Claim(ctx, k, "h")
		if err != nil || out.Kind != idempotency.Claimed {
			t.Fatalf("claim: %+v, %v", out, err)
		}
		if takeOver {
			if _, err := pool.Exec(ctx, `UPDATE idempotency_keys SET claim_id = 'clm_other' WHERE key = $1`, key); err != nil {
				t.Fatal(err)
			}
		}
		claim := &idempotency.Claim{Key: k, ClaimID: out.ClaimID}
		idempotency.SetEncoder(claim, func(tok payment.Token) (int, []byte, error) { return 201, []byte(`{"id":"` + tok.ID + `"}`), nil })
		_, err = vault.Delegate(idempotency.NewContext(ctx, claim), "platform_a", &payment.Delegation{
			Card: payment.Card{
				Type: "card", NumberType: "fpan", Number: "4242424242424242", ExpMonth: "12", ExpYear: "2040",
				FundingType: "credit", Last4: "4242", Metadata: map[string]string{},
			},
			Allowance: payment.Allowance{
				Reason: "one_time", MaxAmount: 1000, Currency: "usd", CheckoutSessionID: "cs_1",
				MerchantID: "merchant", ExpiresAt: time.Now().Add(time.Hour),
			},
			Metadata: map[string]string{},
			Rules:    payment.Rules{EmptyRiskSignals: true, MaxIINDigits: 8},
		})
		return err
	}
	count := func(sql string) int {
		t.Helper()
		var n int
		if err := pool.QueryRow(ctx, sql).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	err := delegate("lost", true)
	if e, ok := errors.AsType[*checkout.Error](err); !ok || e.Kind != checkout.KindConflict {
		t.Fatalf("a delegation whose claim was taken over: %v, want the in-flight conflict", err)
	}
	if n := count(`SELECT count(*) FROM vault_tokens`); n != 0 {
		t.Errorf("%d tokens stored for a lost claim, want 0", n)
	}
	if n := count(`SELECT count(*) FROM idempotency_keys WHERE key = 'lost' AND state = 'in_flight' AND claim_id = 'clm_other'`); n != 1 {
		t.Errorf("the claim of the other request changed")
	}

	if err := delegate("held", false); err != nil {
		t.Fatal(err)
	}
	if n := count(`SELECT count(*) FROM vault_tokens t JOIN idempotency_keys k
		ON k.key = 'held' AND k.state = 'completed' AND k.response_body = convert_to('{"id":"' || t.id || '"}', 'UTF8')`); n != 1 {
		t.Errorf("%d tokens recorded as the response of their claim, want 1", n)
	}
}

// A pipelined transaction writes all or nothing: a deferred write that fails at the
// COMMIT's round trip undoes the writes sent before it, whether they went out earlier
// or in the same pipeline, and the connection goes back to the pool out of the
// transaction (the same backend answers next, so it was not closed either).
func TestPipelinedTxWritesAllOrNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.MustPool(t)
	var before int32
	if err := pool.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&before); err != nil {
		t.Fatal(err)
	}
	stock := func() *int32 {
		t.Helper()
		var n *int32
		if err := pool.QueryRow(ctx, `SELECT stock_quantity FROM variants WHERE id = 'item_123'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if _, err := postgres.ImportCatalog(ctx, pool, []catalog.Product{{ID: "prod_tee", Title: "Tee", Variants: []catalog.Variant{
		{ID: "item_123", Title: "Tee", PriceAmount: 1500, Currency: "usd", Available: true, AvailabilityStatus: "in_stock", Fulfillment: checkout.FulfillmentShipping},
	}}}); err != nil {
		t.Fatal(err)
	}
	err := postgres.WithPipelinedTx(ctx, pool, func(q, deferred *db.Queries) error {
		// Sent now, with BEGIN.
		if _, err := q.SetVariantStock(ctx, db.SetVariantStockParams{ID: "item_123", StockQuantity: new(int32(5))}); err != nil {
			return err
		}
		// Queued for the COMMIT: a stock change, then a line of a session that does not
		// exist (a foreign key violation).
		if _, err := deferred.SetVariantStock(ctx, db.SetVariantStockParams{ID: "item_123", StockQuantity: new(int32(7))}); err != nil {
			return err
		}
		return deferred.InsertLineItemRows(ctx, db.InsertLineItemRowsParams{
			Ids: []string{"li_1"}, CheckoutSessionID: "cs_missing", Positions: []int32{0}, VariantIds: []string{"item_123"},
			Quantities: []int32{1}, UnitAmounts: []int64{1500},
		})
	})
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); !ok || pgErr.Code != "23503" {
		t.Fatalf("commit = %v, want the foreign key violation", err)
	}
	if n := stock(); n != nil {
		t.Errorf("stock = %d after the failed transaction, want it unchanged (unlimited)", *n)
	}
	var after int32
	if err := pool.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&after); err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("backend %d after the rollback, want %d: the connection was closed", after, before)
	}

	if err := postgres.WithPipelinedTx(ctx, pool, func(q, deferred *db.Queries) error {
		_, err := deferred.SetVariantStock(ctx, db.SetVariantStockParams{ID: "item_123", StockQuantity: new(int32(7))})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if n := stock(); n == nil || *n != 7 {
		t.Errorf("stock = %v after the committed transaction, want 7", n)
	}
}
