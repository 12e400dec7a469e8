package v20250929

import (
	"slices"
	"testing"

	"github.com/agentic-commerce/agentic-commerce-server/internal/acp/internal/wiretest"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/payment"
)

// TestPathOf pins how 2025-09-29 spells the fields the domain names: the JSONPaths
// clients have seen in param since the first release must not move.
func TestPathOf(t *testing.T) {
	t.Parallel()
	at := checkout.At
	for _, tc := range []struct {
		f    checkout.Field
		want string
	}{
		{checkout.Field{}, ""},
		{at(checkout.FieldItems), "$.items"},
		{at(checkout.FieldItems).Index(1).Child(checkout.FieldID), "$.items[1].id"},
		{at(checkout.FieldItems).Index(0).Child(checkout.FieldQuantity), "$.items[0].quantity"},
		{at(checkout.FieldLines).Index(2), "$.line_items[2]"},
		{at(checkout.FieldBuyer), "$.buyer"},
		{at(checkout.FieldBuyer).Child(checkout.FieldPhone), "$.buyer.phone_number"},
		{at(checkout.FieldFulfillmentAddress).Child(checkout.FieldFullName), "$.fulfillment_address.name"},
		{at(checkout.FieldFulfillmentAddress).Child(checkout.FieldPostalCode), "$.fulfillment_address.postal_code"},
		{at(checkout.FieldFulfillmentOption), "$.fulfillment_option_id"},
		{at(checkout.FieldPayment), "$.payment_data"},
		{at(checkout.FieldPayment).Child(checkout.FieldToken), "$.payment_data.token"},
		{at(checkout.FieldPayment).Child(checkout.FieldBillingAddress).Child(checkout.FieldLineTwo), "$.payment_data.billing_address.line_two"},
		{at(checkout.FieldOrderStatus), "$.status"},
		{at(checkout.FieldRefundAmount), "$.amount"},
		{at(payment.FieldCard).Child(payment.FieldNumber), "$.payment_method.number"},
		{at(payment.FieldCard).Child(payment.FieldChecksPerformed).Index(1), "$.payment_method.checks_performed[1]"},
		{at(payment.FieldCard).Child(payment.FieldMetadata), "$.payment_method.metadata"},
		{at(payment.FieldAllowance).Child(payment.FieldMaxAmount), "$.allowance.max_amount"},
		{at(payment.FieldRiskSignals).Index(3).Child(payment.FieldRiskAction), "$.risk_signals[3].action"},
		{at(payment.FieldMetadata), "$.metadata"},
		{at(checkout.FieldBillingAddress).Child(checkout.FieldCountry), "$.billing_address.country"},
		// The same name as payment.FieldCurrency (notIn0929).
		{at(checkout.FieldCurrency), "$.currency"},
		// The names 2025-09-29 cannot express have no path.
		{at(checkout.FieldFulfillmentAddress).Child(checkout.FieldCompany), ""},
		{at(checkout.FieldFulfillmentContact).Child(checkout.FieldFullName), ""},
		{at(checkout.FieldPayment).Child(checkout.FieldHandler), ""},
		{at(checkout.FieldLocale), ""},
		// 2025-09-29 has no authentication result: its requires_3ds names no param.
		{at(checkout.FieldAuthentication), ""},
		{at("NoSuchField"), ""},
	} {
		if got := pathOf(tc.f); got != tc.want {
			t.Errorf("pathOf(%s) = %q, want %q", tc.f, got, tc.want)
		}
	}
}

// notIn0929 are the domain's field names that 2025-09-29 has no field for, with why: an
// error at one of them has no param in this version (pathOf gives ""), which only
// 2026-04-17 requests can cause. A name the domain gains must be put either in
// wireNames or here: someone has to decide.
var notIn0929 = map[checkout.FieldName]string{
	checkout.FieldCompany:            "2025-09-29 addresses have no company",
	checkout.FieldFulfillmentContact: "2025-09-29 has no fulfillment_details; the recipient is the address's name",
	checkout.FieldLocale:             "2025-09-29 requests carry no locale",
	checkout.FieldTimezone:           "2025-09-29 requests carry no timezone",
	checkout.FieldHandler:            "2025-09-29 payment_data names a provider, not a payment handler",
	checkout.FieldAuthentication:     "2025-09-29 has no authentication result: its requires_3ds names no param",
	checkout.FieldOutcome:            "2025-09-29 has no authentication result",
	checkout.FieldConsents:           "2025-09-29 has no marketing consent",
	checkout.FieldChannel:            "2025-09-29 has no marketing consent",
	checkout.FieldOrderNotes:         "2025-09-29 has no order notes",
	checkout.FieldAttribution:        "2025-09-29 has no affiliate attribution",
	checkout.FieldDiscountCodes:      "2025-09-29 has no discount codes: its warnings about them show as info without param",
	checkout.FieldFulfillmentCost:    "2025-09-29 shows no discount allocations",
	// checkout.FieldCurrency, the currency a 2026-04-17 create expects, is not here: it
	// is the same name as payment.FieldCurrency, which 2025-09-29 spells currency
	// (allowance.currency, wire.DelegateNames), so it renders as $.currency, the
	// session's currency (TestPathOf).
}

// TestParam0929KnowsEveryName fails when the domain names a field this version neither
// renders nor lists in notIn0929: its errors would lose their param unnoticed. The
// domain's names are read from its source (wiretest.FieldNames), not from a list here
// that could forget one.
func TestParam0929KnowsEveryName(t *testing.T) {
	t.Parallel()
	names := wiretest.FieldNames(t)
	for _, name := range names {
		_, named := wireNames[name]
		why, absent := notIn0929[name]
		switch {
		case named && absent:
			t.Errorf("2025-09-29 names %s %q, yet notIn0929 says it cannot (%s)", name, wireNames[name], why)
		case !named && !absent:
			t.Errorf("2025-09-29 has no name for %s: add it to wireNames, or to notIn0929 with why", name)
		case absent:
			if got := pathOf(checkout.At(name)); got != "" {
				t.Errorf("pathOf(%s) = %q, want no param", name, got)
			}
		}
	}
	for name := range wireNames {
		if !slices.Contains(names, name) {
			t.Errorf("wireNames names %s, which the domain no longer declares", name)
		}
	}
	for name := range notIn0929 {
		if !slices.Contains(names, name) {
			t.Errorf("notIn0929 lists %s, which the domain no longer declares", name)
		}
	}
}
