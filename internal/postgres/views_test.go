package postgres_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/payment"
	"github.com/agentic-commerce/agentic-commerce-server/internal/postgres"
)

// GetSession reads a session and everything its view needs in one statement
// (GetSessionView); the view must be the one the per-part queries give, for sessions
// that need every part: discount codes in any case and one no discount has, automatic
// and redeemed discounts, a buyer whose email differs from its stored consent in case,
// a vault token, a region in lower case, a completed session, and a code with a letter
// Go upper-cases to ASCII (ſ, the long s) that SQL may fold otherwise.
func TestGetSessionViewIsTheViewOfItsParts(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t)
	ctx := context.Background()
	store := storeWithConsents(e)
	discounts := postgres.NewDiscounts(e.pool)
	limit := 10
	for _, d := range []checkout.Discount{
		{ID: "sale10", Code: "SALE10", Title: "10% off", PercentBps: 1000, UsageLimit: &limit, Stackable: true},
		{ID: "auto1", Title: "$1 off everything", AmountOff: 100, Currency: "usd", Stackable: true,
			StartsAt: new(time.Now().Add(-time.Hour).Truncate(time.Microsecond))},
	} {
		if _, err := discounts.Create(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	create := func(codes []string, state string) string {
		t.Helper()
		v, err := store.CreateSession(ctx, "", checkout.Changes{
			Items:              []checkout.ItemRequest{{ID: "item_123", Quantity: 2}, {ID: "item_456", Quantity: 1}},
			Buyer:              &checkout.Buyer{FirstName: "Ada", LastName: "Lovelace", Email: "Ada@Example.com", PhoneNumber: "15551234567"},
			FulfillmentContact: &checkout.FulfillmentContact{Email: "other@example.com"},
			FulfillmentAddress: &checkout.Address{Name: "Ada", LineOne: "1 Road", City: "San Francisco", State: state,
				Country: "US", PostalCode: "94131"},
			DiscountExtension: codes != nil, DiscountCodes: &codes,
		})
		if err != nil {
			t.Fatalf("create session: %v", err)
		}
		return v.Session.ID
	}
	plain := create(nil, "CA")
	coded := create([]string{" sale10 ", "NOPE"}, "ca")
	longS := create([]string{"ſale10"}, "CA")
	paid := create([]string{"SALE10"}, "CA")

	v := postgres.NewVault(e.pool, payment.NewFingerprinter([]byte("views-test-fingerprint-key-0123456789")))
	delegateVisa(t, v, coded, time.Now().Add(time.Hour))
	if _, err := store.CompleteSession(ctx, "", paid, checkout.Completion{Token: "tok_visa", Provider: "stripe"}); err != nil {
		t.Fatalf("complete: %v", err)
	}
	if _, err := e.pool.Exec(ctx, `INSERT INTO marketing_consents (channel, contact, opted_in, checkout_session_id, order_id, updated_at)
		SELECT 'email', 'ada@example.com', true, checkout_session_id, id, now() FROM orders WHERE checkout_session_id = $1`, paid); err != nil {
		t.Fatal(err)
	}

	now := time.Now()
	store.WithClock(func() time.Time { return now })
	for name, id := range map[string]string{"plain": plain, "coded": coded, "long s": longS, "completed": paid} {
		want, err := store.GetSessionByParts(ctx, "", id)
		if err != nil {
			t.Fatalf("%s: by parts: %v", name, err)
		}
		got, err := store.GetSession(ctx, "", id)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		wantJSON, gotJSON := mustJSON(t, want), mustJSON(t, got)
		if gotJSON != wantJSON {
			t.Errorf("%s: the view of GetSessionView differs from the view of its parts\n got: %s\nwant: %s", name, gotJSON, wantJSON)
		}
	}
	if _, err := store.GetSession(ctx, "", "cs_missing"); err != checkout.ErrNotFound {
		t.Errorf("a missing session: %v, want checkout.ErrNotFound", err)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A create and an update read their catalog ahead of applying the changes (GetCatalogFor,
// or the view an update locks): the discounts, tax rate and consents are read for the
// session as the changes are expected to leave it. Whatever the changes, the view they
// return must be the one the per-part queries give for the stored result.
func TestChangesQuoteTheViewOfTheirParts(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t)
	ctx := context.Background()
	now := time.Now().Truncate(time.Microsecond)
	store := postgres.NewStore(e.pool, postgres.StoreConfig{
		TTL: time.Hour, Gateway: e.gateway, PublicBaseURL: "https://shop.example",
		ConsentOptions: []checkout.ConsentOption{
			{Channel: checkout.ChannelEmail, DisplayText: "News by email", PrivacyPolicyURL: "https://shop.example/privacy"},
		},
	}).WithClock(func() time.Time { return now })
	if _, err := postgres.NewDiscounts(e.pool).Create(ctx, checkout.Discount{
		ID: "sale10", Code: "SALE10", Title: "10% off", PercentBps: 1000, Stackable: true,
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := postgres.NewDiscounts(e.pool).Create(ctx, checkout.Discount{
		ID: "auto1", Title: "$1 off", AmountOff: 100, Currency: "usd", Stackable: true,
	}); err != nil {
		t.Fatal(err)
	}
	sale := []string{"sale10"}
	longS := []string{"ſale10", "nope"}
	none := []string{}
	ny := &checkout.Address{Name: "Ada", LineOne: "1 Road", City: "New York", State: "ny", Country: "US", PostalCode: "10001"}
	ca := &checkout.Address{Name: "Ada", LineOne: "1 Road", City: "San Francisco", State: "CA", Country: "US", PostalCode: "94131"}
	created, err := store.CreateSession(ctx, "", checkout.Changes{
		Items: []checkout.ItemRequest{{ID: "item_123", Quantity: 1}}, FulfillmentAddress: ca,
		Buyer:             &checkout.Buyer{FirstName: "Ada", LastName: "Lovelace", Email: "Ada@Example.com"},
		DiscountExtension: true, DiscountCodes: &sale,
	})
	if err != nil {
		t.Fatal(err)
	}
	id := created.Session.ID
	check := func(name string, got checkout.View) {
		t.Helper()
		want, err := store.GetSessionByParts(ctx, "", id)
		if err != nil {
			t.Fatalf("%s: by parts: %v", name, err)
		}
		// The session returned is the one in memory, which differs from the one read back
		// in ways that are not the quote's (nil and empty lists); the quote and the
		// consents are what the catalog read ahead makes.
		quoted := func(v checkout.View) string {
			return mustJSON(t, []any{v.Quote, v.ConsentOptions, v.Handlers})
		}
		if g, w := quoted(got), quoted(want); g != w {
			t.Errorf("%s: the quote returned differs from the quote of its parts\n got: %s\nwant: %s", name, g, w)
		}
	}
	check("create", created)
	for _, u := range []struct {
		name string
		ch   checkout.Changes
	}{
		{"another address", checkout.Changes{FulfillmentAddress: ny}},
		{"another buyer", checkout.Changes{Buyer: &checkout.Buyer{FirstName: "Grace", LastName: "Hopper", Email: "grace@example.com"}}},
		{"codes Go and SQL may fold apart", checkout.Changes{DiscountExtension: true, DiscountCodes: &longS}},
		{"no codes", checkout.Changes{DiscountExtension: true, DiscountCodes: &none}},
		{"a new item", checkout.Changes{Items: []checkout.ItemRequest{{ID: "item_123", Quantity: 1}, {ID: "item_456", Quantity: 2}}}},
		{"a contact", checkout.Changes{FulfillmentContact: &checkout.FulfillmentContact{Email: "ops@example.com"}}},
		{"an option", checkout.Changes{FulfillmentOptionID: new("standard_shipping")}},
		{"no buyer", checkout.Changes{Clear: checkout.Clear{Buyer: true}}},
		{"no address", checkout.Changes{Clear: checkout.Clear{FulfillmentDetails: true}}},
	} {
		got, err := store.UpdateSession(ctx, "", id, u.ch)
		if err != nil {
			t.Fatalf("%s: %v", u.name, err)
		}
		check(u.name, got)
	}
}
