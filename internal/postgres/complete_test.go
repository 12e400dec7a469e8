package postgres_test

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/payment"
	"github.com/agentic-commerce/agentic-commerce-server/internal/postgres"
	"github.com/jackc/pgx/v5/pgxpool"
)

// A vault-token completion reads and locks in one round trip and writes in the next,
// with the stock taken last (completeWithVaultToken); its answer must be the one the
// completion gave when it sent and checked each statement on its own, and so must a PSP
// token's, whose first phase is pipelined the same way (beginAttempt). Three twin
// sessions are completed at the same instant, one each way, for completions that bring
// what a completion can bring (a new buyer, notes, marketing decisions, an attribution,
// a billing address) and sessions with a usage-limited code, an automatic discount and
// a code Go upper-cases to ASCII (ſ, the long s) that SQL may fold otherwise (the
// pipelined completion cannot be sure it locked that code's discount, and runs as
// before). What the twins cannot share is replaced before comparing (twinsApart).
func TestPipelinedCompletionAnswersAsBefore(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t)
	ctx := context.Background()
	now := time.Now().Truncate(time.Microsecond)
	store := storeWithConsents(e).WithClock(func() time.Time { return now })
	limit := 10
	for _, d := range []checkout.Discount{
		{ID: "sale10", Code: "SALE10", Title: "10% off", PercentBps: 1000, UsageLimit: &limit, Stackable: true},
		{ID: "auto1", Title: "$1 off everything", AmountOff: 100, Currency: "usd", Stackable: true},
	} {
		if _, err := postgres.NewDiscounts(e.pool).Create(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	vault := postgres.NewVault(e.pool, payment.NewFingerprinter([]byte("complete-test-fingerprint-key-0123456789")))
	address := &checkout.Address{Name: "Ada", LineOne: "1 Road", City: "San Francisco", State: "CA", Country: "US", PostalCode: "94131"}
	notes := "Leave it with the neighbour"
	for _, tc := range []struct {
		name       string
		codes      []string
		completion checkout.Completion
	}{
		{name: "plain"},
		{name: "usage-limited code", codes: []string{" sale10 "}},
		{name: "long s", codes: []string{"ſale10"}},
		{name: "everything a completion brings", codes: []string{"SALE10", "NOPE"}, completion: checkout.Completion{
			Buyer:          &checkout.Buyer{FirstName: "Grace", LastName: "Hopper", Email: "Grace@Example.com", PhoneNumber: "15557654321"},
			OrderNotes:     &notes,
			Consents:       []checkout.MarketingConsent{{Channel: checkout.ChannelEmail, OptedIn: true}, {Channel: checkout.ChannelSMS, OptedIn: false}},
			Attribution:    &checkout.Attribution{Provider: "affiliate.example", PublisherID: "pub_1"},
			BillingAddress: address,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ways := []struct {
				name     string
				complete func(context.Context, string, string, checkout.Completion) (checkout.View, error)
				psp      bool
			}{
				{"pipelined", store.CompleteSession, false},
				{"statement by statement", store.CompleteStatementByStatement, false},
				{"with a PSP token, in phases", store.CompleteSession, true},
			}
			answers := make([]string, len(ways))
			for i, way := range ways {
				v, err := store.CreateSession(ctx, "", checkout.Changes{
					Items:              []checkout.ItemRequest{{ID: "item_456", Quantity: 1}, {ID: "item_123", Quantity: 2}},
					Buyer:              &checkout.Buyer{FirstName: "Ada", LastName: "Lovelace", Email: "ada@example.com", PhoneNumber: "15551234567"},
					FulfillmentAddress: address, FulfillmentOptionID: new("standard_shipping"),
					DiscountExtension: tc.codes != nil, DiscountCodes: &tc.codes,
				})
				if err != nil {
					t.Fatalf("create session: %v", err)
				}
				id := v.Session.ID
				c := tc.completion
				c.Token, c.Provider = "tok_visa", "stripe"
				if !way.psp {
					c.Token = delegateVisa(t, vault, id, now.Add(time.Hour)).ID
				}
				completed, err := way.complete(ctx, "", id, c)
				if err != nil {
					t.Fatalf("complete: %v", err)
				}
				if completed.Session.State != checkout.StateCompleted || completed.Order == nil {
					t.Fatalf("complete: state %s, order %v", completed.Session.State, completed.Order)
				}
				answers[i] = twinsApart.ReplaceAllString(mustJSON(t, completed), "${1}${2}…")
			}
			for i, way := range ways {
				if answers[i] != answers[1] {
					t.Errorf("the completion %s answers\n%s\nwhere the completion statement by statement answers\n%s", way.name, answers[i], answers[1])
				}
			}
		})
	}
}

// twinsApart is what two twin sessions' answers do not share: their ids and their
// orders', and the counts of the discounts they redeem (the second twin counts the
// first's redemption).
var twinsApart = regexp.MustCompile(`\b(cs_|li_|ord_)[0-9a-f]{32}\b|("(?:Buyer)?Redeemed":)[0-9]+`)

// testConsentOptions are the marketing consents a test's store offers: by email and by
// text.
var testConsentOptions = []checkout.ConsentOption{
	{Channel: checkout.ChannelEmail, DisplayText: "News by email", PrivacyPolicyURL: "https://shop.example/privacy"},
	{Channel: checkout.ChannelSMS, DisplayText: "Deals by text", PrivacyPolicyURL: "https://shop.example/privacy"},
}

// storeWithConsents is the store of e offering testConsentOptions.
func storeWithConsents(e *outboxEnv) *postgres.Store {
	return postgres.NewStore(e.pool, postgres.StoreConfig{
		TTL: time.Hour, Gateway: e.gateway, PublicBaseURL: "https://shop.example", OrderEvents: true,
		ConsentOptions: testConsentOptions,
	})
}

// delegateVisa stores in v a vault token of a Visa card for session id, able to pay
// $1,000 until expiresAt.
func delegateVisa(t *testing.T, v *postgres.Vault, id string, expiresAt time.Time) payment.Token {
	t.Helper()
	return delegateCard(t, v, id, "4242424242424242", expiresAt)
}

// delegateCard is delegateVisa with the card number number.
func delegateCard(t *testing.T, v *postgres.Vault, id, number string, expiresAt time.Time) payment.Token {
	t.Helper()
	token, err := v.Delegate(context.Background(), "", &payment.Delegation{
		Card: payment.Card{
			Type: "card", NumberType: "fpan", Number: number, ExpMonth: "12", ExpYear: "2040",
			FundingType: "credit", Last4: number[len(number)-4:], Metadata: map[string]string{},
		},
		Allowance: payment.Allowance{
			Reason: "one_time", MaxAmount: 100000, Currency: "usd", CheckoutSessionID: id,
			MerchantID: "merchant", ExpiresAt: expiresAt,
		},
		Metadata: map[string]string{},
		Rules:    payment.Rules{EmptyRiskSignals: true, MaxIINDigits: 8},
	})
	if err != nil {
		t.Fatalf("delegate: %v", err)
	}
	return token
}

// takeStockWays are the two ways a completion takes stock: take_stock before the
// pipelined completion's COMMIT, or checked as it returns in a transaction.
var takeStockWays = []struct {
	name string
	take func(context.Context, *pgxpool.Pool, []checkout.Line) error
}{
	{"pipelined", postgres.TakeStockBeforeCommit},
	{"in_a_transaction", postgres.TakeStockInTransaction},
}

// A completion takes the stock of its lines in variant id order in one statement
// (take_stock) that raises at the first short one, before the pipelined completion's
// COMMIT or checked as it returns in a transaction; the refusal must name that line by
// its index in the session, and nothing of the stock taken before it may stay.
func TestTakeStockNamesTheLineThatSoldOut(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t)
	ctx := context.Background()
	for _, way := range takeStockWays {
		t.Run(way.name, func(t *testing.T) {
			if _, err := e.pool.Exec(ctx, `UPDATE variants SET stock_quantity = CASE id WHEN 'item_123' THEN 10 ELSE 5 END
				WHERE id IN ('item_123', 'item_456')`); err != nil {
				t.Fatal(err)
			}
			// item_123 sorts first and has enough; item_456, the session's line 0, is short.
			lines := []checkout.Line{{ID: "li_0", VariantID: "item_456", Quantity: 6}, {ID: "li_1", VariantID: "item_123", Quantity: 1}}
			want := checkout.Errorf(checkout.KindConflict, "out_of_stock", checkout.At(checkout.FieldLines).Index(0),
				"Item item_456 sold out before the payment went through; nothing was charged.")
			if err := way.take(ctx, e.pool, lines); err == nil || err.Error() != want.Error() {
				t.Errorf("take stock = %v, want %v", err, want)
			}
			var tee, hoodie int
			if err := e.pool.QueryRow(ctx, `SELECT
				(SELECT stock_quantity FROM variants WHERE id = 'item_123'), (SELECT stock_quantity FROM variants WHERE id = 'item_456')`,
			).Scan(&tee, &hoodie); err != nil {
				t.Fatal(err)
			}
			if tee != 10 || hoodie != 5 {
				t.Errorf("stock after the refusal: item_123 %d, item_456 %d; want 10 and 5", tee, hoodie)
			}
			lines[0].Quantity = 5
			if err := way.take(ctx, e.pool, lines); err != nil {
				t.Errorf("take stock within the stock: %v", err)
			}
		})
	}
}

// Unlimited stock is not taken (migration 00018): a completion of a best seller whose
// stock is not counted may neither lock nor rewrite its variant's row, or every
// completion of it queues on that row. Both ways of taking stock (take_stock before the
// pipelined completion's COMMIT, or checked as it returns in a transaction) must go through
// while another transaction holds the row locked, leave it untouched (same xmin), still
// take counted stock, and refuse a variant that does not exist.
func TestTakeStockLeavesUnlimitedRowsUnlocked(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t)
	ctx := context.Background()
	for _, way := range takeStockWays {
		t.Run(way.name, func(t *testing.T) {
			if _, err := e.pool.Exec(ctx, `UPDATE variants SET stock_quantity = CASE id WHEN 'item_456' THEN 5 END
				WHERE id IN ('item_123', 'item_456')`); err != nil {
				t.Fatal(err)
			}
			holder, err := e.pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer holder.Rollback(ctx)
			var before string
			if err := holder.QueryRow(ctx, `SELECT xmin::text FROM variants WHERE id = 'item_123' FOR UPDATE`).Scan(&before); err != nil {
				t.Fatal(err)
			}

			wait, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			lines := []checkout.Line{{ID: "li_0", VariantID: "item_123", Quantity: 3}, {ID: "li_1", VariantID: "item_456", Quantity: 2}}
			if err := way.take(wait, e.pool, lines); err != nil {
				t.Fatalf("take stock with the unlimited row locked elsewhere: %v", err)
			}
			var after string
			var unlimited *int32
			var counted int
			if err := e.pool.QueryRow(ctx, `SELECT
				(SELECT xmin::text FROM variants WHERE id = 'item_123'), (SELECT stock_quantity FROM variants WHERE id = 'item_123'),
				(SELECT stock_quantity FROM variants WHERE id = 'item_456')`).Scan(&after, &unlimited, &counted); err != nil {
				t.Fatal(err)
			}
			if after != before || unlimited != nil {
				t.Errorf("unlimited variant after the completion: xmin %s (was %s), stock %v; want it untouched", after, before, unlimited)
			}
			if counted != 3 {
				t.Errorf("counted stock after taking 2 of 5 = %d, want 3", counted)
			}

			missing := []checkout.Line{{ID: "li_0", VariantID: "item_gone", Quantity: 1}}
			want := checkout.Errorf(checkout.KindConflict, "out_of_stock", checkout.At(checkout.FieldLines).Index(0),
				"Item item_gone sold out before the payment went through; nothing was charged.")
			if err := way.take(ctx, e.pool, missing); err == nil || err.Error() != want.Error() {
				t.Errorf("take stock of a variant that does not exist = %v, want %v", err, want)
			}
		})
	}
}
