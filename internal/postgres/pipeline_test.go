package postgres_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

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

// Reads along go out in order with the deferred statements of their round trip, which
// the statement that needs its result sends: two reads and a final query take one round
// trip, each read sees the writes queued before it, and each read's result is the one
// of its own statement. An error of a read (the server's, or one the read returns) is
// that of the round trip: the final query returns it instead of its rows, and the
// transaction writes nothing.
func TestPipelinedReadsAlong(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var trips pgtest.RoundTrips
	pool := tracedTeePool(t, &trips, "item_a", "item_b")
	stocks := func(vs []db.Variant) map[string]int32 {
		m := map[string]int32{}
		for _, v := range vs {
			if v.StockQuantity != nil {
				m[v.ID] = *v.StockQuantity
			}
		}
		return m
	}
	setStock := func(deferred *db.Queries, id string, n int32) error {
		_, err := deferred.SetVariantStock(ctx, db.SetVariantStockParams{ID: id, StockQuantity: new(n)})
		return err
	}

	var a, b, final []db.Variant
	var attempts []db.PaymentAttempt
	n, sent := trips.Measure(func() {
		err := postgres.WithPipelinedReads(ctx, pool, func(q, deferred *db.Queries, readAlong func(func(*db.Queries) error) error) error {
			if err := setStock(deferred, "item_a", 5); err != nil {
				return err
			}
			if err := readAlong(func(q *db.Queries) (err error) {
				a, err = q.ListVariantsByID(ctx, []string{"item_a", "item_b"})
				return err
			}); err != nil {
				return err
			}
			if err := setStock(deferred, "item_b", 6); err != nil {
				return err
			}
			if err := readAlong(func(q *db.Queries) (err error) {
				attempts, err = q.ListPaymentAttempts(ctx, db.ListPaymentAttemptsParams{MaxRows: 10})
				return err
			}); err != nil {
				return err
			}
			if err := readAlong(func(q *db.Queries) (err error) {
				b, err = q.ListVariantsByID(ctx, []string{"item_b"})
				return err
			}); err != nil {
				return err
			}
			var err error
			final, err = q.ListVariantsByID(ctx, []string{"item_a", "item_b"})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	if n != 2 {
		t.Errorf("%d round trips, want 2 (the reads with the final query, then the COMMIT):\n%s", n, strings.Join(sent, "\n"))
	}
	if got, want := stocks(a), map[string]int32{"item_a": 5}; !maps.Equal(got, want) {
		t.Errorf("first read: stocks %v, want %v (the write queued before it, not the one after)", got, want)
	}
	if attempts == nil || len(attempts) != 0 {
		t.Errorf("second read: %v, want no attempts (an empty list)", attempts)
	}
	if got, want := stocks(b), map[string]int32{"item_b": 6}; len(b) != 1 || !maps.Equal(got, want) {
		t.Errorf("third read: %d variants with stocks %v, want item_b alone with %v", len(b), got, want)
	}
	if got, want := stocks(final), map[string]int32{"item_a": 5, "item_b": 6}; len(final) != 2 || !maps.Equal(got, want) {
		t.Errorf("final query: %d variants with stocks %v, want 2 with %v", len(final), got, want)
	}

	errRefused := errors.New("refused by the read")
	for _, tc := range []struct {
		name  string
		read  func(q *db.Queries) error
		isErr func(error) bool
	}{
		{"the server's", func(q *db.Queries) error {
			_, err := q.ListPaymentAttempts(ctx, db.ListPaymentAttemptsParams{MaxRows: -1}) // LIMIT must not be negative
			return err
		}, func(err error) bool {
			pgErr, ok := errors.AsType[*pgconn.PgError](err)
			return ok && pgErr.Code == "2201W"
		}},
		{"the read's own", func(q *db.Queries) error {
			if _, err := q.ListVariantsByID(ctx, []string{"item_a"}); err != nil {
				return err
			}
			return errRefused
		}, func(err error) bool { return errors.Is(err, errRefused) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rows []db.Variant
			var queryErr error
			err := postgres.WithPipelinedReads(ctx, pool, func(q, deferred *db.Queries, readAlong func(func(*db.Queries) error) error) error {
				if err := setStock(deferred, "item_a", 9); err != nil {
					return err
				}
				if err := readAlong(tc.read); err != nil {
					return err
				}
				rows, queryErr = q.ListVariantsByID(ctx, []string{"item_a"})
				return queryErr
			})
			if !tc.isErr(queryErr) || !tc.isErr(err) {
				t.Errorf("final query: %v; transaction: %v; want the read's error", queryErr, err)
			}
			if rows != nil {
				t.Errorf("final query returned %d rows with the read's error", len(rows))
			}
			var stock int32
			if err := pool.QueryRow(ctx, `SELECT stock_quantity FROM variants WHERE id = 'item_a'`).Scan(&stock); err != nil {
				t.Fatal(err)
			}
			if stock != 5 {
				t.Errorf("stock = %d, want 5: the transaction of a failed read wrote", stock)
			}
		})
	}

	if err := postgres.WithPipelinedReads(ctx, pool, func(_, _ *db.Queries, readAlong func(func(*db.Queries) error) error) error {
		return readAlong(func(*db.Queries) error { return nil })
	}); err == nil {
		t.Error("a read along that runs no statement was queued")
	}
}

// A read sent before any write of a transaction that reads outside it goes without
// BEGIN, and the writes, its only round trip, go as the pipeline's implicit transaction,
// without BEGIN and COMMIT; a read sent after a write is queued goes inside, with BEGIN,
// and sees the write.
func TestPipelinedReadOutsideBeginsWithTheWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var trips pgtest.RoundTrips
	pool := tracedTeePool(t, &trips, "item_a")
	stockOf := func(vs []db.Variant) int32 {
		if len(vs) != 1 || vs[0].StockQuantity == nil {
			return -1
		}
		return *vs[0].StockQuantity
	}
	setStock := func(deferred *db.Queries, n int32) error {
		_, err := deferred.SetVariantStock(ctx, db.SetVariantStockParams{ID: "item_a", StockQuantity: new(n)})
		return err
	}

	var before []db.Variant
	n, sent := trips.Measure(func() {
		if err := postgres.WithReadOutside(ctx, pool, func(q, deferred *db.Queries) (err error) {
			if before, err = q.ListVariantsByID(ctx, []string{"item_a"}); err != nil {
				return err
			}
			return setStock(deferred, 4)
		}); err != nil {
			t.Fatal(err)
		}
	})
	if want := []string{"batch [ListVariantsByID :many]", "batch [SetVariantStock :execrows]"}; n != 2 || !slices.Equal(sent, want) {
		t.Errorf("read outside, then the writes: %d round trips\n\t%s\nwant\n\t%s", n, strings.Join(sent, "\n\t"), strings.Join(want, "\n\t"))
	}
	if got := stockOf(before); got != -1 {
		t.Errorf("the read outside saw stock %d, want none set", got)
	}

	var after []db.Variant
	n, sent = trips.Measure(func() {
		if err := postgres.WithReadOutside(ctx, pool, func(q, deferred *db.Queries) (err error) {
			if err := setStock(deferred, 3); err != nil {
				return err
			}
			after, err = q.ListVariantsByID(ctx, []string{"item_a"})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	})
	if want := []string{"batch [begin; SetVariantStock :execrows; ListVariantsByID :many]", "batch [commit]"}; n != 2 || !slices.Equal(sent, want) {
		t.Errorf("a write queued, then a read: %d round trips\n\t%s\nwant\n\t%s", n, strings.Join(sent, "\n\t"), strings.Join(want, "\n\t"))
	}
	if got := stockOf(after); got != 3 {
		t.Errorf("the read after the queued write saw stock %d, want 3", got)
	}
}

// tracedTeePool is a pool traced by trips whose catalog is one product, prod_tee, with a
// variant in stock (stock not counted) for each of ids.
func tracedTeePool(t *testing.T, trips *pgtest.RoundTrips, ids ...string) *pgxpool.Pool {
	t.Helper()
	pool := pgtest.MustPoolTraced(t, trips)
	tee := catalog.Product{ID: "prod_tee", Title: "Tee"}
	for i, id := range ids {
		tee.Variants = append(tee.Variants, catalog.Variant{ID: id, Title: "Tee " + id, PriceAmount: 1500 + 100*int64(i),
			Currency: "usd", Available: true, AvailabilityStatus: "in_stock", Fulfillment: checkout.FulfillmentShipping})
	}
	if _, err := postgres.ImportCatalog(context.Background(), pool, []catalog.Product{tee}); err != nil {
		t.Fatal(err)
	}
	return pool
}

// A deferred claim rides ahead of every read of the first round trip when they go
// outside the transaction (a cart's create: its variants and fulfillment options), as
// the key's look-up, so the look-up, the reads and the writes take two round trips; a
// key already answered stops the work in the first, with nothing written. Reads inside
// the transaction cannot carry it: the claim then goes on its own, before them.
func TestPipelinedClaimRidesAheadOfTheReadsAlong(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var trips pgtest.RoundTrips
	pool := tracedTeePool(t, &trips, "item_a")
	keys := postgres.NewIdempotency(pool, time.Hour)
	claimOf := func(key string) context.Context {
		k := idempotency.Key{Caller: "agent", Method: "POST", Path: "/carts", Key: key, APIVersion: "2026-04-17"}
		claim := idempotency.NewDeferred(k, "h", func(ctx context.Context) (idempotency.Outcome, error) {
			return keys.Claim(ctx, k, "h")
		})
		idempotency.SetEncoder(claim, func(struct{}) (int, []byte, error) { return 201, []byte(`{}`), nil })
		return idempotency.NewContext(ctx, claim)
	}
	var stock int32
	run := func(ctx context.Context, outside bool) error {
		var variants []db.Variant
		reads := []func(q *db.Queries) error{
			func(q *db.Queries) (err error) {
				variants, err = q.ListVariantsByID(ctx, []string{"item_a"})
				return err
			},
			func(q *db.Queries) (err error) {
				_, err = q.ListActiveFulfillmentOptions(ctx)
				return err
			},
		}
		return postgres.WithRiddenReads(ctx, pool, outside, reads, func(deferred *db.Queries) error {
			if len(variants) != 1 {
				return errors.New("the reads did not return the variant")
			}
			stock++
			_, err := deferred.SetVariantStock(ctx, db.SetVariantStockParams{ID: "item_a", StockQuantity: new(stock)})
			return err
		})
	}
	check := func(what string, n int, sent, want []string) {
		t.Helper()
		if n != len(want) || !slices.Equal(sent, want) {
			t.Errorf("%s: %d round trips\n\t%s\nwant\n\t%s", what, n, strings.Join(sent, "\n\t"), strings.Join(want, "\n\t"))
		}
	}
	reads := "ListVariantsByID :many; ListActiveFulfillmentOptions :many"
	// The key found free is held first in the writes' implicit transaction, and
	// inserted with the response last.
	writes := "batch [HoldIdempotencyKey :exec; SetVariantStock :execrows; InsertIdempotentResponse :exec]"

	first := claimOf("outside")
	n, sent := trips.Measure(func() {
		if err := run(first, true); err != nil {
			t.Fatal(err)
		}
	})
	check("reads outside", n, sent, []string{"batch [LookupIdempotencyKey :one; " + reads + "]", writes})

	n, sent = trips.Measure(func() {
		if err := run(claimOf("outside"), true); !errors.Is(err, idempotency.ErrNotClaimed) {
			t.Fatalf("the same key again: %v, want idempotency.ErrNotClaimed", err)
		}
	})
	check("the same key again", n, sent, []string{"batch [LookupIdempotencyKey :one; " + reads + "]"})
	var got *int32
	if err := pool.QueryRow(ctx, `SELECT stock_quantity FROM variants WHERE id = 'item_a'`).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got == nil || *got != 1 {
		t.Errorf("stock after the key's repeat is %v, want 1: the repeat must write nothing", got)
	}

	n, sent = trips.Measure(func() {
		if err := run(claimOf("inside"), false); err != nil {
			t.Fatal(err)
		}
	})
	check("reads inside", n, sent, []string{"ClaimIdempotencyKey :one", "batch [begin; " + reads + "]", "batch [SetVariantStock :execrows; RecordIdempotentResponse :exec; commit]"})
}
