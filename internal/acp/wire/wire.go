// Package wire holds what the ACP version packages (internal/acp/v20250929, ...) share
// and that speaks of domain values, so that each version keeps only what it spells its
// own way: the JSONPath rendering of a domain field, the delegate_payment field names,
// the domain-error table, the quantity rule of request items and the correlation data
// of a vault token. Package acp stays free of the domain; this package sits between.
//
// Import graph: acp/<version> → acp/wire → acp, checkout, payment.
package wire

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/agentic-commerce/agentic-commerce-server/internal/acp"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/payment"
)

// Path renders f as an RFC 9535 JSONPath ("$.line_items[1].id"), naming each segment
// by name, which is given the segment's parent ("" for the first) and says false for a
// name it does not know. It returns "" for the zero Field and for a field with an
// unknown name: no param is better than a wrong one.
func Path(f checkout.Field, name func(parent, n checkout.FieldName) (string, bool)) string {
	if f.IsZero() {
		return ""
	}
	var b strings.Builder
	b.WriteByte('$')
	var parent checkout.FieldName
	for _, s := range f.Segments() {
		key, ok := name(parent, s.Name)
		if !ok {
			return ""
		}
		b.WriteString("." + key)
		if s.Indexed {
			b.WriteString("[" + strconv.Itoa(s.Index) + "]")
		}
		parent = s.Name
	}
	return b.String()
}

// DelegateNames are the JSON keys of the delegate_payment fields, which every version
// so far spells alike.
var DelegateNames = map[checkout.FieldName]string{
	payment.FieldCard:              "payment_method",
	payment.FieldCardType:          "type",
	payment.FieldNumberType:        "card_number_type",
	payment.FieldNumber:            "number",
	payment.FieldFundingType:       "display_card_funding_type",
	payment.FieldExpMonth:          "exp_month",
	payment.FieldExpYear:           "exp_year",
	payment.FieldCVC:               "cvc",
	payment.FieldECI:               "eci_value",
	payment.FieldChecksPerformed:   "checks_performed",
	payment.FieldIIN:               "iin",
	payment.FieldLast4:             "display_last4",
	payment.FieldCryptogram:        "cryptogram",
	payment.FieldBrand:             "display_brand",
	payment.FieldWalletType:        "display_wallet_type",
	payment.FieldMetadata:          "metadata",
	payment.FieldAllowance:         "allowance",
	payment.FieldReason:            "reason",
	payment.FieldMaxAmount:         "max_amount",
	payment.FieldCurrency:          "currency",
	payment.FieldCheckoutSessionID: "checkout_session_id",
	payment.FieldMerchantID:        "merchant_id",
	payment.FieldExpiresAt:         "expires_at",
	payment.FieldRiskSignals:       "risk_signals",
	payment.FieldRiskType:          "type",
	payment.FieldRiskAction:        "action",
}

// DiscountNames are the JSON keys of a discount definition in the admin API, which is
// not versioned: every version's table renders them alike.
var DiscountNames = map[checkout.FieldName]string{
	checkout.FieldDiscountCode:       "code",
	checkout.FieldDiscountTitle:      "title",
	checkout.FieldDiscountValue:      "percent_bps",
	checkout.FieldDiscountScope:      "scope",
	checkout.FieldDiscountItems:      "item_ids",
	checkout.FieldDiscountMinimum:    "min_subtotal",
	checkout.FieldDiscountEnd:        "ends_at",
	checkout.FieldDiscountUsageLimit: "usage_limit",
	checkout.FieldDiscountBuyerLimit: "per_buyer_limit",
	checkout.FieldDiscountPriority:   "priority",
	checkout.FieldCurrency:           "currency",
}

// Names merges tables of field names into one; a later table wins.
func Names(tables ...map[checkout.FieldName]string) map[checkout.FieldName]string {
	out := map[checkout.FieldName]string{}
	for _, t := range tables {
		for k, v := range t {
			out[k] = v
		}
	}
	return out
}

// kindStatus is the table from domain error kinds to HTTP statuses and ACP types,
// the same in every version so far.
var kindStatus = map[checkout.Kind]struct {
	status  int
	errType string
}{
	checkout.KindInvalid:     {http.StatusBadRequest, acp.TypeInvalidRequest},
	checkout.KindNotFound:    {http.StatusNotFound, acp.TypeInvalidRequest},
	checkout.KindNotAllowed:  {http.StatusMethodNotAllowed, acp.TypeInvalidRequest},
	checkout.KindUnavailable: {http.StatusServiceUnavailable, acp.TypeServiceUnavailable},
	checkout.KindInternal:    {http.StatusInternalServerError, acp.TypeProcessingError},
	checkout.KindConflict:    {http.StatusConflict, acp.TypeInvalidRequest},
	checkout.KindDeclined:    {http.StatusBadRequest, acp.TypeProcessingError},
}

// DomainError renders a domain error as a refusal: its kind gives the status and type,
// param is its field as the version's JSONPath. The caller keeps KindInternal errors
// to itself (a generic 500); this renders them too, so the table is total.
func DomainError(de *checkout.Error, param string) *acp.Error {
	m, ok := kindStatus[de.Kind]
	if !ok {
		m = kindStatus[checkout.KindInternal]
	}
	return acp.NewError(m.status, m.errType, de.Code, de.Message, param)
}

// Quantity reads an item quantity kept raw, so that "2" (a string) and 2.5 are refused
// with a precise error instead of being coerced: a whole number from 1 to
// checkout.MaxQuantity (checklist I-01). param is where it is.
func Quantity(raw []byte, param string) (int, error) {
	q, err := strconv.ParseInt(string(raw), 10, 32)
	if err != nil || q < 1 || q > checkout.MaxQuantity {
		return 0, acp.InvalidRequest("invalid",
			fmt.Sprintf("Quantity must be a whole number from 1 to %d.", checkout.MaxQuantity), param)
	}
	return int(q), nil
}

// TokenMetadata is the metadata of a delegate_payment response: the request's merged
// with the correlation data the spec asks to echo, merchant_id and the
// idempotency_key when there is one (checklist I-32).
func TokenMetadata(t payment.Token, idempotencyKey string) map[string]string {
	md := make(map[string]string, len(t.Metadata)+2)
	for k, v := range t.Metadata {
		md[k] = v
	}
	md["merchant_id"] = t.Allowance.MerchantID
	if idempotencyKey != "" {
		md["idempotency_key"] = idempotencyKey
	}
	return md
}
