package v20250929

import (
	"github.com/agentic-commerce/agentic-commerce-server/internal/acp/wire"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
)

// This file is how 2025-09-29 names the fields the domain's errors and messages point
// at. The domain says what is wrong (the id of the second item); this table says where
// that is in a 2025-09-29 body ($.items[1].id). Another API version renders the same
// fields through a table of its own.

// wireNames is the 2025-09-29 JSON key of each domain field name. A name shared by
// several parents (an address's city, a card's or an address's name) has one key here,
// as 2025-09-29 spells it the same under every parent. The order and refund fields are
// the admin API's; it is not versioned and renders them through this table too. The
// delegate_payment names are every version's (wire.DelegateNames).
var wireNames = wire.Names(map[checkout.FieldName]string{
	checkout.FieldItems:              "items",
	checkout.FieldID:                 "id",
	checkout.FieldQuantity:           "quantity",
	checkout.FieldLines:              "line_items",
	checkout.FieldBuyer:              "buyer",
	checkout.FieldFirstName:          "first_name",
	checkout.FieldLastName:           "last_name",
	checkout.FieldEmail:              "email",
	checkout.FieldPhone:              "phone_number",
	checkout.FieldFulfillmentAddress: "fulfillment_address",
	checkout.FieldFulfillmentOption:  "fulfillment_option_id",
	checkout.FieldPayment:            "payment_data",
	checkout.FieldToken:              "token",
	checkout.FieldProvider:           "provider",
	checkout.FieldBillingAddress:     "billing_address",
	checkout.FieldFullName:           "name",
	checkout.FieldLineOne:            "line_one",
	checkout.FieldLineTwo:            "line_two",
	checkout.FieldCity:               "city",
	checkout.FieldState:              "state",
	checkout.FieldCountry:            "country",
	checkout.FieldPostalCode:         "postal_code",
	checkout.FieldOrderStatus:        "status",
	checkout.FieldRefundType:         "type",
	checkout.FieldRefundAmount:       "amount",
	checkout.FieldOrderLines:         "line_items",
	checkout.FieldFulfillmentType:    "type",
	checkout.FieldFulfillmentStatus:  "status",
	checkout.FieldEventType:          "type",
	checkout.FieldOccurredAt:         "occurred_at",
	// checkout.FieldAuthentication and FieldOutcome have no name here: 2025-09-29 has
	// no authentication result, so its requires_3ds refusal names no param.
	// FieldConsents, FieldChannel, FieldOrderNotes and FieldAttribution neither:
	// 2025-09-29 has no marketing consent, order notes or affiliate attribution.
}, wire.DelegateNames, wire.DiscountNames)

// pathOf renders f as an RFC 9535 JSONPath into a 2025-09-29 body, or "" for the
// zero Field. A name missing from the table also gives "": no param is better than a
// wrong one, and TestPathOf lists every name so none goes missing unnoticed.
func pathOf(f checkout.Field) string {
	return wire.Path(f, func(_, n checkout.FieldName) (string, bool) {
		name, ok := wireNames[n]
		return name, ok
	})
}
