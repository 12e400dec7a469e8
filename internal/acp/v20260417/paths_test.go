package v20260417

import (
	"slices"
	"testing"

	"github.com/agentic-commerce/agentic-commerce-server/internal/acp/internal/wiretest"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/payment"
)

// TestPathOf pins how 2026-04-17 spells the fields the domain names.
func TestPathOf(t *testing.T) {
	t.Parallel()
	at := checkout.At
	for _, tc := range []struct {
		f    checkout.Field
		want string
	}{
		{checkout.Field{}, ""},
		{at(checkout.FieldItems), "$.line_items"},
		{at(checkout.FieldItems).Index(1).Child(checkout.FieldID), "$.line_items[1].id"},
		{at(checkout.FieldItems).Index(0).Child(checkout.FieldQuantity), "$.line_items[0].quantity"},
		{at(checkout.FieldLines).Index(2), "$.line_items[2]"},
		{at(checkout.FieldBuyer).Child(checkout.FieldFullName), "$.buyer.full_name"},
		{at(checkout.FieldBuyer).Child(checkout.FieldEmail), "$.buyer.email"},
		{at(checkout.FieldFulfillmentAddress), "$.fulfillment_details.address"},
		{at(checkout.FieldFulfillmentAddress).Child(checkout.FieldCity), "$.fulfillment_details.address.city"},
		{at(checkout.FieldFulfillmentAddress).Child(checkout.FieldFullName), "$.fulfillment_details.address.name"},
		{at(checkout.FieldFulfillmentAddress).Child(checkout.FieldCompany), "$.fulfillment_details.address.company"},
		{at(checkout.FieldFulfillmentContact).Child(checkout.FieldFullName), "$.fulfillment_details.name"},
		{at(checkout.FieldFulfillmentContact).Child(checkout.FieldEmail), "$.fulfillment_details.email"},
		{at(checkout.FieldFulfillmentOption), "$.selected_fulfillment_options"},
		{at(checkout.FieldPayment).Child(checkout.FieldToken), "$.payment_data.instrument.credential.token"},
		{at(checkout.FieldPayment).Child(checkout.FieldHandler), "$.payment_data.handler_id"},
		{at(checkout.FieldPayment).Child(checkout.FieldBillingAddress).Child(checkout.FieldLineTwo), "$.payment_data.billing_address.line_two"},
		{at(checkout.FieldCurrency), "$.currency"},
		{at(checkout.FieldLocale), "$.locale"},
		{at(checkout.FieldTimezone), "$.timezone"},
		{at(checkout.FieldAuthentication).Child(checkout.FieldOutcome), "$.authentication_result.outcome"},
		{at(payment.FieldCard).Child(payment.FieldLast4), "$.payment_method.display_last4"},
		{at(payment.FieldAllowance).Child(payment.FieldCurrency), "$.allowance.currency"},
		{at(payment.FieldRiskSignals).Index(3).Child(payment.FieldRiskAction), "$.risk_signals[3].action"},
		{at(checkout.FieldBillingAddress).Child(checkout.FieldCountry), "$.billing_address.country"},
		{at("NoSuchField"), ""},
	} {
		if got := pathOf(tc.f); got != tc.want {
			t.Errorf("pathOf(%s) = %q, want %q", tc.f, got, tc.want)
		}
	}
}

// TestWireNamesKnowEveryName fails when the domain names a field this version cannot
// render: its errors would lose their param. The domain's names are read from its
// source (wiretest.FieldNames), not from a list here that could forget one.
func TestWireNamesKnowEveryName(t *testing.T) {
	t.Parallel()
	names := wiretest.FieldNames(t)
	for _, name := range names {
		if _, ok := wireNames[name]; !ok {
			t.Errorf("2026-04-17 has no name for %s", name)
		}
	}
	for name := range wireNames {
		if !slices.Contains(names, name) {
			t.Errorf("wireNames names %s, which the domain no longer declares", name)
		}
	}
}
