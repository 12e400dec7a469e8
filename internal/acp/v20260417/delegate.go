package v20260417

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/acp"
	dp "github.com/agentic-commerce/agentic-commerce-server/internal/acp/v20260417/delegatepayment"
	"github.com/agentic-commerce/agentic-commerce-server/internal/acp/wire"
	"github.com/agentic-commerce/agentic-commerce-server/internal/payment"
)

// The 2026-04-17 Delegate Payment wire format, decoded with the generated types of
// package delegatepayment. Those hold required fields as plain values, so an absent
// one would read as empty: delegateRequired names the required fields and
// requirePresent refuses a body lacking one (or holding null there) before the
// decode, with the field's path. Its value rules are payment.Delegation's, with the
// limits 2026-04-17 changed (payment.Rules) and its display_last4 pattern.

// delegateRequired are the required fields of a DelegatePaymentRequest, as dotted
// paths; "[]" stands for every element of an array.
var delegateRequired = []string{
	"payment_method", "allowance", "risk_signals", "metadata",
	"payment_method.type", "payment_method.card_number_type", "payment_method.number",
	"payment_method.display_card_funding_type", "payment_method.metadata",
	"allowance.reason", "allowance.max_amount", "allowance.currency",
	"allowance.checkout_session_id", "allowance.merchant_id", "allowance.expires_at",
	"risk_signals[].type", "risk_signals[].score", "risk_signals[].action",
}

// requirePresent refuses the first of paths that body lacks or sets to null. A body
// that is not a JSON object is left to acp.DecodeStrict, which says what is wrong.
func requirePresent(body []byte, paths []string) error {
	var root any
	if json.Unmarshal(body, &root) != nil {
		return nil
	}
	if _, ok := root.(map[string]any); !ok {
		return nil
	}
	for _, p := range paths {
		if missing := missingAt(root, "$", strings.Split(p, ".")); missing != "" {
			return acp.InvalidRequest("missing", strings.TrimPrefix(missing, "$.")+" is required.", missing)
		}
	}
	return nil
}

// missingAt walks keys down from v (at path) and returns the path of the first absent
// or null value, or "" when every one is there. A parent of the wrong type is not
// reported: the decode refuses it with a clearer error.
func missingAt(v any, path string, keys []string) string {
	if len(keys) == 0 {
		return ""
	}
	key, each := strings.CutSuffix(keys[0], "[]")
	obj, ok := v.(map[string]any)
	if !ok {
		return ""
	}
	child, present := obj[key]
	path += "." + key
	if !present || child == nil {
		return path
	}
	if !each {
		return missingAt(child, path, keys[1:])
	}
	arr, _ := child.([]any)
	for i, el := range arr {
		if m := missingAt(el, fmt.Sprintf("%s[%d]", path, i), keys[1:]); m != "" {
			return m
		}
	}
	return ""
}

// last4Pattern is display_last4 in 2026-04-17: exactly four digits.
var last4Pattern = regexp.MustCompile(`^[0-9]{4}$`)

func decodeDelegate(body []byte) (*payment.Delegation, error) {
	if err := requirePresent(body, delegateRequired); err != nil {
		return nil, err
	}
	// expires_at is checked before the decode: time.Time's own error would only say the
	// body is not valid JSON.
	var probe struct {
		Allowance struct {
			ExpiresAt json.RawMessage `json:"expires_at"`
		} `json:"allowance"`
	}
	if json.Unmarshal(body, &probe) == nil && probe.Allowance.ExpiresAt != nil {
		var s string
		if json.Unmarshal(probe.Allowance.ExpiresAt, &s) != nil || !validTime(s) {
			return nil, acp.NewError(http.StatusBadRequest, acp.TypeInvalidRequest, payment.CodeInvalidAllowance,
				"allowance.expires_at must be an RFC 3339 date-time.", "$.allowance.expires_at")
		}
	}
	var req dp.DelegatePaymentRequest
	if err := acp.DecodeStrict(body, &req); err != nil {
		return nil, err
	}
	c, a := req.PaymentMethod, req.Allowance
	if c.DisplayLast4 != nil && !last4Pattern.MatchString(*c.DisplayLast4) {
		return nil, acp.InvalidRequest(payment.CodeInvalidCard, "display_last4 must be exactly four digits.", "$.payment_method.display_last4")
	}
	d := &payment.Delegation{
		Card: payment.Card{
			Type: string(c.Type), NumberType: string(c.CardNumberType), Number: c.Number,
			ExpMonth: deref(c.ExpMonth), ExpYear: deref(c.ExpYear), Name: deref(c.Name), CVC: deref(c.Cvc),
			Cryptogram: deref(c.Cryptogram), ECIValue: deref(c.EciValue), IIN: deref(c.Iin),
			FundingType: string(c.DisplayCardFundingType), WalletType: deref(c.DisplayWalletType),
			Brand: deref(c.DisplayBrand), Last4: deref(c.DisplayLast4), Metadata: c.Metadata,
			Virtual: c.Virtual != nil && *c.Virtual,
		},
		Allowance: payment.Allowance{
			Reason: string(a.Reason), MaxAmount: int64(a.MaxAmount), Currency: a.Currency,
			CheckoutSessionID: a.CheckoutSessionId, MerchantID: a.MerchantId, ExpiresAt: a.ExpiresAt,
		},
		Metadata: req.Metadata,
		Rules:    payment.Rules{EmptyRiskSignals: true, MaxIINDigits: 8},
	}
	if c.ChecksPerformed != nil {
		for _, chk := range *c.ChecksPerformed {
			d.Card.ChecksPerformed = append(d.Card.ChecksPerformed, string(chk))
		}
	}
	if b := req.BillingAddress; b != nil {
		d.BillingAddress = &payment.BillingAddress{
			Name: b.Name, LineOne: b.LineOne, LineTwo: deref(b.LineTwo), City: b.City,
			State: b.State, Country: b.Country, PostalCode: b.PostalCode,
		}
	}
	for _, rs := range req.RiskSignals {
		d.RiskSignals = append(d.RiskSignals, payment.RiskSignal{Type: string(rs.Type), Score: int64(rs.Score), Action: string(rs.Action)})
	}
	return d, nil
}

func validTime(s string) bool {
	_, err := time.Parse(time.RFC3339Nano, s)
	return err == nil
}

// encodeToken answers with the token id and the request metadata merged with the
// correlation data the spec asks to echo (checklist I-32), as 2025-09-29 does.
func encodeToken(t payment.Token, idempotencyKey string) dp.DelegatePaymentResponse {
	return dp.DelegatePaymentResponse{Id: t.ID, Created: t.Created.UTC(), Metadata: wire.TokenMetadata(t, idempotencyKey)}
}
