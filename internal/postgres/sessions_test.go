package postgres_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/payment"
	"github.com/agentic-commerce/agentic-commerce-server/internal/postgres"
)

// What a 2026-04-17 agent tells about a session (contact, locale, time zone, metadata,
// interventions) is stored and read back by every later request, on any instance.
func TestSessionDetailsAreStored(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t)
	ctx := context.Background()
	locale, tz := "en-US", "America/Los_Angeles"
	created, err := e.store.CreateSession(ctx, "", checkout.Changes{
		Items:              []checkout.ItemRequest{{ID: "item_123", Quantity: 1}},
		Currency:           "USD",
		Buyer:              &checkout.Buyer{Email: "ada@example.com", FullName: "Ada Lovelace"},
		FulfillmentContact: &checkout.FulfillmentContact{Name: " Ada ", PhoneNumber: "15551234567"},
		FulfillmentAddress: &checkout.Address{Name: "Ada", Company: "Analytical Engines", LineOne: "1 Road",
			City: "San Francisco", State: "CA", Country: "us", PostalCode: "94131"},
		Locale: &locale, Timezone: &tz, Metadata: map[string]any{"campaign": "fall", "n": 2.0},
		AgentInterventions: []string{"3ds", "address_verification", "telepathy"},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.store.GetSession(ctx, "", created.Session.ID)
	if err != nil {
		t.Fatal(err)
	}
	s := got.Session
	if s.Buyer == nil || s.Buyer.FullName != "Ada Lovelace" || s.Buyer.FirstName != "" {
		t.Errorf("buyer = %+v", s.Buyer)
	}
	if s.FulfillmentContact == nil || *s.FulfillmentContact != (checkout.FulfillmentContact{Name: "Ada", PhoneNumber: "15551234567"}) {
		t.Errorf("contact = %+v", s.FulfillmentContact)
	}
	if s.FulfillmentAddress == nil || s.FulfillmentAddress.Company != "Analytical Engines" || s.FulfillmentAddress.Country != "US" {
		t.Errorf("address = %+v", s.FulfillmentAddress)
	}
	if s.Locale != locale || s.Timezone != tz || fmt.Sprint(s.Metadata) != "map[campaign:fall n:2]" {
		t.Errorf("locale, timezone, metadata = %q, %q, %v", s.Locale, s.Timezone, s.Metadata)
	}
	if want := []string{"3ds", "address_verification", "telepathy"}; !reflect.DeepEqual(s.AgentInterventions, want) {
		t.Errorf("interventions = %v, want %v", s.AgentInterventions, want)
	}
	if len(got.Handlers) != 2 || got.Handlers[0].ID != checkout.HandlerVaultCard {
		t.Errorf("handlers of an open session = %+v", got.Handlers)
	}
}

// A create whose currency is not the items' is refused, and nothing is stored.
func TestCreateRefusesAnotherCurrency(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t)
	_, err := e.store.CreateSession(context.Background(), "", checkout.Changes{
		Items: []checkout.ItemRequest{{ID: "item_123", Quantity: 1}}, Currency: "eur",
	})
	de, ok := checkout.AsError(err)
	if !ok || de.Code != "currency_mismatch" || de.Field != checkout.At(checkout.FieldCurrency) {
		t.Fatalf("err = %v, want currency_mismatch at Currency", err)
	}
	var n int
	if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM checkout_sessions`).Scan(&n); err != nil || n != 0 {
		t.Errorf("sessions stored = %d, %v", n, err)
	}
}

// Clear removes what it names and keeps the rest; a cleared option is chosen again by
// default, as for a new session.
func TestUpdateClears(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t)
	ctx := context.Background()
	id := e.readySession()
	express := "express_shipping"
	if _, err := e.store.UpdateSession(ctx, "", id, checkout.Changes{
		FulfillmentOptionID: &express,
		FulfillmentContact:  &checkout.FulfillmentContact{Email: "ada@example.com"},
	}); err != nil {
		t.Fatal(err)
	}
	v, err := e.store.UpdateSession(ctx, "", id, checkout.Changes{Clear: checkout.Clear{Buyer: true, FulfillmentOption: true}})
	if err != nil {
		t.Fatal(err)
	}
	if v.Session.Buyer != nil || v.Session.FulfillmentOptionID != "standard_shipping" || v.Session.FulfillmentAddress == nil || v.Session.FulfillmentContact == nil {
		t.Errorf("after clearing buyer and option: %+v", v.Session)
	}
	v, err = e.store.UpdateSession(ctx, "", id, checkout.Changes{Clear: checkout.Clear{FulfillmentDetails: true}})
	if err != nil {
		t.Fatal(err)
	}
	if v.Session.FulfillmentAddress != nil || v.Session.FulfillmentContact != nil || v.Quote.Status != checkout.StatusNotReadyForPayment {
		t.Errorf("after clearing the details: %+v, status %s", v.Session, v.Quote.Status)
	}
	if got, err := e.store.GetSession(ctx, "", id); err != nil || got.Session.FulfillmentAddress != nil || got.Session.Buyer != nil {
		t.Errorf("stored: %+v, %v", got.Session, err)
	}
}

// The intent trace of a cancel is kept with the session (for the merchant), and a
// session that is not canceled has none.
func TestCancelKeepsTheIntentTrace(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t)
	ctx := context.Background()
	id := e.readySession()
	trace := &checkout.IntentTrace{ReasonCode: "shipping_cost", Summary: "Too dear", Metadata: map[string]any{"target": 0.0}}
	v, err := e.store.CancelSession(ctx, "", id, trace)
	if err != nil {
		t.Fatal(err)
	}
	if v.Quote.Status != checkout.StatusCanceled || len(v.Handlers) != 0 {
		t.Errorf("status %s, handlers %v", v.Quote.Status, v.Handlers)
	}
	var stored string
	if err := e.pool.QueryRow(ctx, `SELECT cancel_intent_trace::text FROM checkout_sessions WHERE id = $1`, id).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != `{"metadata": {"target": 0}, "reason_code": "shipping_cost", "trace_summary": "Too dear"}` {
		t.Errorf("stored trace = %s", stored)
	}
	other := e.readySession()
	_, err = e.pool.Exec(ctx, `UPDATE checkout_sessions SET cancel_intent_trace = '{"reason_code":"other"}' WHERE id = $1`, other)
	if err == nil {
		t.Error("an open session took an intent trace")
	}
}

// A completion names a handler the session offers and a token that handler takes;
// the order it makes lists what was bought.
func TestCompleteChecksTheHandlerAndListsTheLines(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t)
	ctx := context.Background()
	id := e.readySession("item_123", 2, "item_456", 1)
	for _, tc := range []struct {
		c    checkout.Completion
		code string
	}{
		{checkout.Completion{HandlerID: "seller_pm_123", Token: "tok_visa"}, "invalid_payment_handler"},
		{checkout.Completion{HandlerID: checkout.HandlerVaultCard, Token: "tok_visa"}, "invalid_payment_token"},
		{checkout.Completion{HandlerID: checkout.HandlerPSPTestCard, Token: "vt_123"}, "invalid_payment_token"},
	} {
		_, err := e.store.CompleteSession(ctx, "", id, tc.c)
		if de, ok := checkout.AsError(err); !ok || de.Code != tc.code || de.Kind != checkout.KindInvalid {
			t.Errorf("%+v: err = %v, want %s", tc.c, err, tc.code)
		}
	}
	if e.gateway.Charges() != 0 {
		t.Fatalf("charges after refusals = %d", e.gateway.Charges())
	}
	v, err := e.store.CompleteSession(ctx, "", id, checkout.Completion{HandlerID: checkout.HandlerPSPTestCard, Token: "tok_visa"})
	if err != nil {
		t.Fatal(err)
	}
	want := []checkout.OrderLine{
		{ID: v.Session.Lines[0].ID, ItemID: "item_123", Title: "Tee", Quantity: 2, Current: 2, UnitAmount: 1500, Subtotal: 3000, Tax: 218, Priced: true},
		{ID: v.Session.Lines[1].ID, ItemID: "item_456", Title: "Hoodie", Quantity: 1, Current: 1, UnitAmount: 3000, Subtotal: 3000, Tax: 218, Priced: true},
	}
	if !reflect.DeepEqual(v.Order.Lines, want) {
		t.Errorf("order lines = %+v, want %+v", v.Order.Lines, want)
	}
	if len(v.Handlers) != 0 {
		t.Errorf("a completed session offers handlers: %v", v.Handlers)
	}
}

// A 2026-04-17 delegation may carry no risk signals (checklist I-11): the token is
// stored with [] and pays like any other. It used to fail the column's array check with
// a 500.
func TestVaultTokenWithoutRiskSignalsPays(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t)
	ctx := context.Background()
	sid := e.readySession()
	v := postgres.NewVault(e.pool, payment.NewFingerprinter([]byte("sessions-test-fingerprint-key-0123456789")))
	tok, err := v.Delegate(ctx, "", &payment.Delegation{
		Card: payment.Card{
			Type: "card", NumberType: "fpan", Number: "4242424242424242", ExpMonth: "12", ExpYear: "2040",
			FundingType: "credit", Last4: "4242", Metadata: map[string]string{},
		},
		Allowance: payment.Allowance{
			Reason: "one_time", MaxAmount: 100000, Currency: "usd", CheckoutSessionID: sid,
			MerchantID: "merchant", ExpiresAt: time.Now().Add(time.Hour),
		},
		Metadata: map[string]string{},
		Rules:    payment.Rules{EmptyRiskSignals: true, MaxIINDigits: 8},
	})
	if err != nil {
		t.Fatalf("delegate without risk signals: %v", err)
	}
	var stored string
	if err := e.pool.QueryRow(ctx, `SELECT risk_signals::text FROM vault_tokens WHERE id = $1`, tok.ID).Scan(&stored); err != nil || stored != "[]" {
		t.Errorf("stored risk signals = %q, %v", stored, err)
	}
	if _, err := e.store.CompleteSession(ctx, "", sid, checkout.Completion{HandlerID: checkout.HandlerVaultCard, Token: tok.ID}); err != nil {
		t.Fatalf("complete with the token: %v", err)
	}
}
