package v20250929

import (
	"fmt"
	"net/http"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/acp"
	"github.com/agentic-commerce/agentic-commerce-server/internal/acp/wire"
	"github.com/agentic-commerce/agentic-commerce-server/internal/payment"
)

// The 2025-09-29 Delegate Payment wire format. Required fields are pointers so that an
// absent field is told apart from a zero value and named in the error.

type card struct {
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

type allowance struct {
	Reason            *string `json:"reason"`
	MaxAmount         *int64  `json:"max_amount"`
	Currency          *string `json:"currency"`
	CheckoutSessionID *string `json:"checkout_session_id"`
	MerchantID        *string `json:"merchant_id"`
	ExpiresAt         *string `json:"expires_at"`
}

type riskSignal struct {
	Type   *string `json:"type"`
	Score  *int64  `json:"score"`
	Action *string `json:"action"`
}

type delegateRequest struct {
	PaymentMethod  *card                   `json:"payment_method"`
	Allowance      *allowance              `json:"allowance"`
	BillingAddress *payment.BillingAddress `json:"billing_address"`
	RiskSignals    *[]riskSignal           `json:"risk_signals"`
	Metadata       *map[string]string      `json:"metadata"`
}

type delegateResponse struct {
	ID       string            `json:"id"`
	Created  time.Time         `json:"created"`
	Metadata map[string]string `json:"metadata"`
}

func (r *delegateRequest) domain() (*payment.Delegation, error) {
	if err := acp.RequireFields(
		acp.Required{Path: "$.payment_method", Present: r.PaymentMethod != nil}, acp.Required{Path: "$.allowance", Present: r.Allowance != nil},
		acp.Required{Path: "$.risk_signals", Present: r.RiskSignals != nil}, acp.Required{Path: "$.metadata", Present: r.Metadata != nil},
	); err != nil {
		return nil, err
	}
	c, a := r.PaymentMethod, r.Allowance
	if err := acp.RequireFields(
		acp.Required{Path: "$.payment_method.type", Present: c.Type != nil},
		acp.Required{Path: "$.payment_method.card_number_type", Present: c.CardNumberType != nil},
		acp.Required{Path: "$.payment_method.number", Present: c.Number != nil},
		acp.Required{Path: "$.payment_method.display_card_funding_type", Present: c.DisplayCardFundingType != nil},
		acp.Required{Path: "$.payment_method.metadata", Present: c.Metadata != nil},
		acp.Required{Path: "$.allowance.reason", Present: a.Reason != nil},
		acp.Required{Path: "$.allowance.max_amount", Present: a.MaxAmount != nil},
		acp.Required{Path: "$.allowance.currency", Present: a.Currency != nil},
		acp.Required{Path: "$.allowance.checkout_session_id", Present: a.CheckoutSessionID != nil},
		acp.Required{Path: "$.allowance.merchant_id", Present: a.MerchantID != nil},
		acp.Required{Path: "$.allowance.expires_at", Present: a.ExpiresAt != nil},
	); err != nil {
		return nil, err
	}
	expires, err := time.Parse(time.RFC3339Nano, *a.ExpiresAt)
	if err != nil {
		return nil, acp.NewError(http.StatusBadRequest, acp.TypeInvalidRequest, payment.CodeInvalidAllowance,
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
		if err := acp.RequireFields(acp.Required{Path: p + ".type", Present: rs.Type != nil}, acp.Required{Path: p + ".score", Present: rs.Score != nil}, acp.Required{Path: p + ".action", Present: rs.Action != nil}); err != nil {
			return nil, err
		}
		d.RiskSignals = append(d.RiskSignals, payment.RiskSignal{Type: *rs.Type, Score: *rs.Score, Action: *rs.Action})
	}
	return d, nil
}

// encodeToken answers with the token id and the request metadata merged with the
// correlation data the spec asks to echo (merchant_id, idempotency_key).
func encodeToken(t payment.Token, idempotencyKey string) delegateResponse {
	return delegateResponse{ID: t.ID, Created: t.Created, Metadata: wire.TokenMetadata(t, idempotencyKey)}
}
