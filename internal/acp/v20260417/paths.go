package v20260417

import (
	"github.com/agentic-commerce/agentic-commerce-server/internal/acp/wire"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
)

// This file is how 2026-04-17 names the fields the domain's errors and messages point
// at: the domain says what is wrong (the id of the second item), this table where that
// is in a 2026-04-17 body ($.line_items[1].id). A value may span several keys: the
// fulfillment address is $.fulfillment_details.address, a completion's token
// $.payment_data.instrument.credential.token.

// wireNames is the 2026-04-17 JSON key (or dotted keys) of each domain field name;
// the delegate_payment names are every version's (wire.DelegateNames). Names spelled
// differently under different parents are in parentNames.
var wireNames = wire.Names(map[checkout.FieldName]string{
	checkout.FieldItems:              "line_items",
	checkout.FieldID:                 "id",
	checkout.FieldQuantity:           "quantity",
	checkout.FieldLines:              "line_items",
	checkout.FieldBuyer:              "buyer",
	checkout.FieldFirstName:          "first_name",
	checkout.FieldLastName:           "last_name",
	checkout.FieldEmail:              "email",
	checkout.FieldPhone:              "phone_number",
	checkout.FieldFulfillmentAddress: "fulfillment_details.address",
	checkout.FieldFulfillmentContact: "fulfillment_details",
	checkout.FieldFulfillmentOption:  "selected_fulfillment_options",
	checkout.FieldPayment:            "payment_data",
	checkout.FieldHandler:            "handler_id",
	checkout.FieldToken:              "instrument.credential.token",
	// 2026-04-17 has no provider: a completion names its handler instead, and the
	// domain only asks for a provider when there is no handler, which this version's
	// decoder never lets happen. The handler is the nearest truth should it ever.
	checkout.FieldProvider:          "handler_id",
	checkout.FieldBillingAddress:    "billing_address",
	checkout.FieldFullName:          "name",
	checkout.FieldCompany:           "company",
	checkout.FieldLineOne:           "line_one",
	checkout.FieldLineTwo:           "line_two",
	checkout.FieldCity:              "city",
	checkout.FieldState:             "state",
	checkout.FieldCountry:           "country",
	checkout.FieldPostalCode:        "postal_code",
	checkout.FieldCurrency:          "currency",
	checkout.FieldLocale:            "locale",
	checkout.FieldTimezone:          "timezone",
	checkout.FieldOrderStatus:       "status",
	checkout.FieldRefundType:        "type",
	checkout.FieldRefundAmount:      "amount",
	checkout.FieldOrderLines:        "line_items",
	checkout.FieldFulfillmentType:   "type",
	checkout.FieldFulfillmentStatus: "status",
	checkout.FieldEventType:         "type",
	checkout.FieldOccurredAt:        "occurred_at",
	checkout.FieldAuthentication:    "authentication_result",
	checkout.FieldOutcome:           "outcome",
	checkout.FieldConsents:          "marketing_consents",
	checkout.FieldChannel:           "channel",
	checkout.FieldOrderNotes:        "order_notes",
	checkout.FieldAttribution:       "affiliate_attribution",
	checkout.FieldDiscountCodes:     "discounts.codes",
	// The discount extension's path of a shipping allocation (DISC-RFC §5.3).
	checkout.FieldFulfillmentCost: "totals.fulfillment",
}, wire.DelegateNames, wire.DiscountNames)

// parentNames are the keys that depend on the parent: a buyer's full name is full_name
// where an address's or a contact's is name.
var parentNames = map[[2]checkout.FieldName]string{
	{checkout.FieldBuyer, checkout.FieldFullName}: "full_name",
}

// pathOf renders f as an RFC 9535 JSONPath into a 2026-04-17 body, or "" for the zero
// Field. A name missing from the table also gives "": no param is better than a wrong
// one, and TestWireNamesKnowEveryName keeps the table complete.
func pathOf(f checkout.Field) string {
	return wire.Path(f, func(parent, n checkout.FieldName) (string, bool) {
		if name, ok := parentNames[[2]checkout.FieldName{parent, n}]; ok {
			return name, true
		}
		name, ok := wireNames[n]
		return name, ok
	})
}
