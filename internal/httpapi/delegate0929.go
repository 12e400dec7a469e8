package httpapi

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/payment"
)

// The 2025-09-29 Delegate Payment wire format. Required fields are pointers so that an
// absent field is told apart from a zero value and named in the error.

type card0929 struct {
	Type                   *string           `json:"type"`
	CardNumberType         *string           `json:"card_number_type"`
	Number                 *string           `json:"number"`
	ExpMonth               string            `json:"exp_month"`
	ExpYear                string            `json:"exp_year"`
	Name                   string            `json:"name"`
	CVC                    string            `json:"cvc"`
	Cryptogram             string            `json:"cryptogram"`
	ECIValue               string            `json:"eci_value"`
	ChecksPerformed        []string          `json:"checks_performed"`
	IIN                    string            `json:"iin"`
	DisplayCardFundingType *string           `json:"display_card_funding_type"`
	DisplayWalletType      string            `json:"display_wallet_type"`
	DisplayBrand           string            `json:"display_brand"`
	DisplayLast4           string            `json:"display_last4"`
	Metadata               map[string]string `json:"metadata"`
	Virtual                bool              `json:"virtual"`
}

type allowance0929 struct {
	Reason            *string `json:"reason"`
	MaxAmount         *int64  `json:"max_amount"`
	Currency          *string `json:"currency"`
	CheckoutSessionID *string `json:"checkout_session_id"`
	MerchantID        *string `json:"merchant_id"`
	ExpiresAt         *string `json:"expires_at"`
}

type riskSignal0929 struct {
	Type   *string `json:"type"`
	Score  *int64  `json:"score"`
	Action *string `json:"action"`
}

type delegateRequest0929 struct {
	PaymentMethod  *card0929               `json:"payment_method"`
	Allowance      *allowance0929          `json:"allowance"`
	BillingAddress *payment.BillingAddress `json:"billing_address"`
	RiskSignals    *[]riskSignal0929       `json:"risk_signals"`
	Metadata       *map[string]string      `json:"metadata"`
}

type delegateResponse0929 struct {
	ID       string            `json:"id"`
	Created  time.Time         `json:"created"`
	Metadata map[string]string `json:"metadata"`
}

// field is a required field of a request and whether the request has it.
type field struct {
	path    string
	present bool
}

// requireFields reports the first absent required field as a 400 naming it.
func requireFields(fields ...field) error {
	for _, f := range fields {
		if !f.present {
			return invalidRequest("missing", strings.TrimPrefix(f.path, "$.")+" is required.", f.path)
		}
	}
	return nil
}

func (r *delegateRequest0929) domain() (*payment.Delegation, error) {
	if err := requireFields(
		field{"$.payment_method", r.PaymentMethod != nil}, field{"$.allowance", r.Allowance != nil},
		field{"$.risk_signals", r.RiskSignals != nil}, field{"$.metadata", r.Metadata != nil},
	); err != nil {
		return nil, err
	}
	c, a := r.PaymentMethod, r.Allowance
	if err := requireFields(
		field{"$.payment_method.type", c.Type != nil},
		field{"$.payment_method.card_number_type", c.CardNumberType != nil},
		field{"$.payment_method.number", c.Number != nil},
		field{"$.payment_method.display_card_funding_type", c.DisplayCardFundingType != nil},
		field{"$.payment_method.metadata", c.Metadata != nil},
		field{"$.allowance.reason", a.Reason != nil},
		field{"$.allowance.max_amount", a.MaxAmount != nil},
		field{"$.allowance.currency", a.Currency != nil},
		field{"$.allowance.checkout_session_id", a.CheckoutSessionID != nil},
		field{"$.allowance.merchant_id", a.MerchantID != nil},
		field{"$.allowance.expires_at", a.ExpiresAt != nil},
	); err != nil {
		return nil, err
	}
	expires, err := time.Parse(time.RFC3339Nano, *a.ExpiresAt)
	if err != nil {
		return nil, newError(http.StatusBadRequest, typeInvalidRequest, payment.CodeInvalidAllowance,
			"allowance.expires_at must be an RFC 3339 date-time.", "$.allowance.expires_at")
	}
	d := &payment.Delegation{
		Card: payment.Card{
			Type: *c.Type, NumberType: *c.CardNumberType, Number: *c.Number,
			ExpMonth: c.ExpMonth, ExpYear: c.ExpYear, Name: c.Name, CVC: c.CVC, Cryptogram: c.Cryptogram,
			ECIValue: c.ECIValue, ChecksPerformed: c.ChecksPerformed, IIN: c.IIN,
			FundingType: *c.DisplayCardFundingType, WalletType: c.DisplayWalletType, Brand: c.DisplayBrand,
			Last4: c.DisplayLast4, Metadata: c.Metadata, Virtual: c.Virtual,
		},
		Allowance: payment.Allowance{
			Reason: *a.Reason, MaxAmount: *a.MaxAmount, Currency: *a.Currency,
			CheckoutSessionID: *a.CheckoutSessionID, MerchantID: *a.MerchantID, ExpiresAt: expires,
		},
		BillingAddress: r.BillingAddress,
		Metadata:       *r.Metadata,
	}
	for i, rs := range *r.RiskSignals {
		p := fmt.Sprintf("$.risk_signals[%d]", i)
		if err := requireFields(field{p + ".type", rs.Type != nil}, field{p + ".score", rs.Score != nil}, field{p + ".action", rs.Action != nil}); err != nil {
			return nil, err
		}
		d.RiskSignals = append(d.RiskSignals, payment.RiskSignal{Type: *rs.Type, Score: *rs.Score, Action: *rs.Action})
	}
	return d, nil
}

// encodeDelegateResponse0929 answers with the token id and the request metadata merged
// with the correlation data the spec asks to echo (merchant_id, idempotency_key).
func encodeDelegateResponse0929(t payment.Token, idempotencyKey string) delegateResponse0929 {
	md := make(map[string]string, len(t.Metadata)+2)
	for k, v := range t.Metadata {
		md[k] = v
	}
	md["merchant_id"] = t.Allowance.MerchantID
	if idempotencyKey != "" {
		md["idempotency_key"] = idempotencyKey
	}
	return delegateResponse0929{ID: t.ID, Created: t.Created, Metadata: md}
}
