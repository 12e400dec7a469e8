package v20250929

import (
	"testing"

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
		// 2025-09-29 has no authentication result: its requires_3ds names no param.
		{at(checkout.FieldAuthentication), ""},
		{at("NoSuchField"), ""},
	} {
		if got := pathOf(tc.f); got != tc.want {
			t.Errorf("pathOf(%s) = %q, want %q", tc.f, got, tc.want)
		}
	}
}

// TestParam0929KnowsEveryName fails when the domain names a field this version cannot
// render: its errors would lose their param.
func TestParam0929KnowsEveryName(t *testing.T) {
	t.Parallel()
	for _, name := range []checkout.FieldName{
		checkout.FieldItems, checkout.FieldID, checkout.FieldQuantity, checkout.FieldLines,
		checkout.FieldBuyer, checkout.FieldFirstName, checkout.FieldLastName, checkout.FieldEmail, checkout.FieldPhone,
		checkout.FieldFulfillmentAddress, checkout.FieldFulfillmentOption,
		checkout.FieldPayment, checkout.FieldToken, checkout.FieldProvider, checkout.FieldBillingAddress,
		checkout.FieldFullName, checkout.FieldLineOne, checkout.FieldLineTwo, checkout.FieldCity,
		checkout.FieldState, checkout.FieldCountry, checkout.FieldPostalCode,
		checkout.FieldOrderStatus, checkout.FieldRefundType, checkout.FieldRefundAmount,
		payment.FieldCard, payment.FieldCardType, payment.FieldNumberType, payment.FieldNumber,
		payment.FieldFundingType, payment.FieldExpMonth, payment.FieldExpYear, payment.FieldCVC,
		payment.FieldECI, payment.FieldChecksPerformed, payment.FieldIIN, payment.FieldLast4,
		payment.FieldCryptogram, payment.FieldBrand, payment.FieldWalletType, payment.FieldMetadata,
		payment.FieldAllowance, payment.FieldReason, payment.FieldMaxAmount, payment.FieldCurrency,
		payment.FieldCheckoutSessionID, payment.FieldMerchantID, payment.FieldExpiresAt,
		payment.FieldRiskSignals, payment.FieldRiskType, payment.FieldRiskAction,
	} {
		if _, ok := wireNames[name]; !ok {
			t.Errorf("2025-09-29 has no name for %s", name)
		}
	}
}
