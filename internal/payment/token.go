package payment

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
)

// VaultTokenPrefix starts every token this server's vault issues; any other token is a
// PSP's and goes to the Gateway.
const VaultTokenPrefix = "vt_"

// IsVaultToken reports whether token was issued by this server's vault.
func IsVaultToken(token string) bool { return strings.HasPrefix(token, VaultTokenPrefix) }

// Token is a stored vault token: the allowance and what may be shown of the card. It
// holds neither the card number nor the CVC.
type Token struct {
	ID           string
	Allowance    Allowance
	CardBrand    string
	CardFunding  string
	CardLast4    string
	CardExpMonth int // 0 when not given
	CardExpYear  int
	CardType     string // fpan or network_token
	Fingerprint  string // "" without a fingerprint key
	Virtual      bool
	WalletType   string
	Billing      *BillingAddress
	RiskSignals  []RiskSignal
	ManualReview bool
	Metadata     map[string]string
	Created      time.Time
	UsedAt       *time.Time
	// AuthenticationDirectoryServer is the 3-D Secure directory server of a card that
	// requires authentication before it can pay ("" when it requires none).
	AuthenticationDirectoryServer string
}

// authenticationCards are the test card numbers whose issuer requires 3-D Secure, as
// Stripe's: 4000 0000 0000 3220 (3DS2 required) and 4000 0027 6000 3184 (authenticate
// unless set up). A real PSP learns it from the issuer; the mock vault from this list.
var authenticationCards = map[string]bool{
	"4000000000003220": true,
	"4000002760003184": true,
}

// NewToken turns a validated delegation into the token to store, dropping the card
// number, the CVC and the cryptogram.
func NewToken(d *Delegation, fp Fingerprinter, now time.Time) Token {
	c := d.Card
	brand := strings.ToLower(strings.TrimSpace(c.Brand))
	if brand == "" {
		brand = brandOf(c.Number)
	}
	t := Token{
		ID:           checkout.NewID(VaultTokenPrefix),
		Allowance:    d.Allowance,
		CardBrand:    brand,
		CardFunding:  c.FundingType,
		CardLast4:    c.Number[len(c.Number)-4:],
		CardType:     c.NumberType,
		Fingerprint:  fp.Fingerprint(c.Number),
		Virtual:      c.Virtual,
		WalletType:   c.WalletType,
		Billing:      d.BillingAddress,
		RiskSignals:  d.RiskSignals,
		ManualReview: d.ManualReview(),
		Metadata:     d.Metadata,
		Created:      now.UTC(),
	}
	if authenticationCards[c.Number] {
		// The network's directory server, from the number: display_brand is the
		// agent's label and decides nothing.
		t.AuthenticationDirectoryServer = checkout.DirectoryServer(brandOf(c.Number))
	}
	if c.ExpMonth != "" {
		t.CardExpMonth, t.CardExpYear = atoi(c.ExpMonth), atoi(c.ExpYear)
	}
	return t
}

func atoi(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		n = n*10 + int(s[i]-'0')
	}
	return n
}

// Codes of a token refused at completion, each its own so an agent can tell them apart.
const (
	CodeTokenNotFound       = "payment_token_not_found"
	CodeTokenUsed           = "payment_token_used"
	CodeTokenExpired        = "payment_token_expired"
	CodeTokenSessionBinding = "payment_token_session_mismatch"
	CodeTokenCurrency       = "payment_token_currency_mismatch"
	CodeTokenAllowance      = "payment_token_allowance_exceeded"
	CodePaymentDeclined     = "payment_declined"
	CodeUnsupportedProvider = "unsupported_payment_provider"
)

// tokenField is where every token error points: the completion's payment token.
var tokenField = checkout.At(checkout.FieldPayment).Child(checkout.FieldToken)

// ErrTokenNotFound is returned for a token no vault or gateway knows.
var ErrTokenNotFound = checkout.Errorf(checkout.KindInvalid, CodeTokenNotFound, tokenField, "The payment token is unknown.")

// CheckUse enforces the allowance for paying amount in currency for session at now:
// single use, bound to the session, not expired, same currency, within max_amount.
func (t *Token) CheckUse(sessionID string, amount int64, currency string, now time.Time) error {
	switch {
	case t.UsedAt != nil:
		return checkout.Errorf(checkout.KindInvalid, CodeTokenUsed, tokenField, "The payment token has already been used.")
	case t.Allowance.CheckoutSessionID != sessionID:
		return checkout.Errorf(checkout.KindInvalid, CodeTokenSessionBinding, tokenField, "The payment token is bound to another checkout session.")
	case !now.Before(t.Allowance.ExpiresAt):
		return checkout.Errorf(checkout.KindInvalid, CodeTokenExpired, tokenField, "The payment token's allowance has expired.")
	case t.Allowance.Currency != currency:
		return checkout.Errorf(checkout.KindInvalid, CodeTokenCurrency, tokenField,
			"The payment token allows %s; the session is in %s.", t.Allowance.Currency, currency)
	case amount > t.Allowance.MaxAmount:
		return checkout.Errorf(checkout.KindInvalid, CodeTokenAllowance, tokenField,
			"The session total %d exceeds the token's allowance of %d.", amount, t.Allowance.MaxAmount)
	}
	return nil
}

// Charge asks a gateway to take a payment.
type Charge struct {
	Token     string
	Amount    int64
	Currency  string
	SessionID string
	// OrderID is the order the charge pays for, chosen before the charge so that the
	// PSP's record can name it (metadata) and a recovery can write that same order.
	OrderID string
	// IdempotencyKey lets a real PSP refuse to charge one payment attempt twice: the
	// same key asked again answers with the first attempt's outcome, never a second
	// charge. A recovery asks with the key of the attempt it finishes.
	IdempotencyKey string
	// Authentication is the 3-D Secure result to authorize with (nil: none): the
	// cryptogram and ECI go to the issuer with the authorization.
	Authentication *checkout.AuthenticationResult
}

// AuthenticationRequiredError is a gateway's refusal of a charge whose card needs 3-D
// Secure first, with the directory server to authenticate with.
type AuthenticationRequiredError struct {
	DirectoryServer string
}

func (e *AuthenticationRequiredError) Error() string {
	return "the card requires 3-D Secure authentication (" + e.DirectoryServer + ")"
}

// Receipt is a successful charge.
type Receipt struct {
	Reference string // the PSP's charge id
}

// Refund asks a gateway to give back part or all of a charge.
type Refund struct {
	// Reference is the charge's Receipt.Reference.
	Reference string
	Amount    int64
	Currency  string
	OrderID   string
	// IdempotencyKey makes a repeated refund request (a retry, a recovery) refund once.
	IdempotencyKey string
}

// RefundReceipt is a successful refund.
type RefundReceipt struct {
	Reference string // the PSP's refund id
}

// ErrUnavailable wraps a gateway error whose outcome is unknown: a timeout, a refused
// connection, a 5xx from the PSP. The charge may or may not have been taken; only asking
// again with the same idempotency key tells. Gateways wrap such errors with
// fmt.Errorf("...: %w", ErrUnavailable) (or errors.Join).
var ErrUnavailable = errors.New("payment service provider unavailable")

// Gateway charges PSP tokens (anything that is not a vault token) and refunds those
// charges. A real PSP adapter implements it. Errors: a decline is a *checkout.Error
// with code payment_declined (DeclinedError), a card needing 3-D Secure an
// *AuthenticationRequiredError, an unknown token ErrTokenNotFound, and an outcome in
// doubt wraps ErrUnavailable.
type Gateway interface {
	// Name identifies the PSP ("mock", "stripe"): what payments record as their gateway.
	Name() string
	Charge(ctx context.Context, c Charge) (Receipt, error)
	Refund(ctx context.Context, r Refund) (RefundReceipt, error)
}

// MockGateway is a stand-in PSP honouring Stripe's test tokens: tok_visa and the other
// success tokens succeed, tok_chargeDeclined and its variants decline,
// tok_threeDSecure2Required (a Visa) succeeds only with a successful 3-D Secure result
// and otherwise asks for authentication, anything else is unknown. It charges nothing
// and keeps nothing.
type MockGateway struct{}

var mockSuccess = map[string]bool{
	"tok_visa": true, "tok_visa_debit": true, "tok_mastercard": true, "tok_mastercard_debit": true,
	"tok_mastercard_prepaid": true, "tok_amex": true, "tok_discover": true, "tok_diners": true,
	"tok_jcb": true, "tok_unionpay": true,
}

var mockDeclines = map[string]string{
	"tok_chargeDeclined":                  "Your card was declined.",
	"tok_chargeDeclinedInsufficientFunds": "Your card has insufficient funds.",
	"tok_chargeDeclinedFraudulent":        "Your card was declined.",
	"tok_chargeDeclinedIncorrectCvc":      "Your card's security code is incorrect.",
	"tok_chargeDeclinedExpiredCard":       "Your card has expired.",
	"tok_chargeDeclinedProcessingError":   "An error occurred while processing your card. Try again.",
}

// DeclinedError builds the error a gateway returns for a declined charge.
func DeclinedError(message string) *checkout.Error {
	return checkout.Errorf(checkout.KindDeclined, CodePaymentDeclined, tokenField, "%s", message)
}

// mockAuthentication are the test tokens whose card requires 3-D Secure, with their
// directory server.
var mockAuthentication = map[string]string{
	"tok_threeDSecure2Required": checkout.DirectoryVisa,
}

// Name implements Gateway.
func (MockGateway) Name() string { return "mock" }

// Charge implements Gateway. The charge id derives from the idempotency key, as a real
// PSP answers a repeated key with the first charge.
func (MockGateway) Charge(_ context.Context, c Charge) (Receipt, error) {
	if ds, ok := mockAuthentication[c.Token]; ok {
		if c.Authentication == nil || !c.Authentication.Outcome.Succeeded() {
			return Receipt{}, &AuthenticationRequiredError{DirectoryServer: ds}
		}
		return Receipt{Reference: mockReference("ch_", c.IdempotencyKey)}, nil
	}
	if mockSuccess[c.Token] {
		return Receipt{Reference: mockReference("ch_", c.IdempotencyKey)}, nil
	}
	if msg, ok := mockDeclines[c.Token]; ok {
		return Receipt{}, DeclinedError(msg)
	}
	return Receipt{}, ErrTokenNotFound
}

// Refund implements Gateway: every refund of a mock charge succeeds.
func (MockGateway) Refund(_ context.Context, r Refund) (RefundReceipt, error) {
	if r.Amount <= 0 {
		return RefundReceipt{}, fmt.Errorf("refund amount %d is not positive", r.Amount)
	}
	return RefundReceipt{Reference: mockReference("re_", r.IdempotencyKey)}, nil
}

// mockReference is prefix followed by a digest of key, or a fresh id without a key.
func mockReference(prefix, key string) string {
	if key == "" {
		return checkout.NewID(prefix)
	}
	sum := sha256.Sum256([]byte(key))
	return prefix + hex.EncodeToString(sum[:12])
}
