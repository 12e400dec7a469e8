package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

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
