package payment

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
)

// Card is the credential an agent delegates. Number and CVC are only ever held here,
// in memory, for validation and fingerprinting: ToToken drops them.
type Card struct {
	Type            string
	NumberType      string // fpan or network_token
	Number          string
	ExpMonth        string
	ExpYear         string
	Name            string
	CVC             string
	Cryptogram      string
	ECIValue        string
	ChecksPerformed []string
	IIN             string
	FundingType     string // credit, debit, prepaid
	WalletType      string
	Brand           string
	Last4           string
	Metadata        map[string]string
	Virtual         bool
}

// Allowance bounds what a vault token may pay for.
type Allowance struct {
	Reason            string
	MaxAmount         int64
	Currency          string
	CheckoutSessionID string
	MerchantID        string
	ExpiresAt         time.Time
}

// RiskSignal is the agent platform's risk assessment of the delegation.
type RiskSignal struct {
	Type   string `json:"type"`
	Score  int64  `json:"score"`
	Action string `json:"action"`
}

// Delegation is a Delegate Payment request.
type Delegation struct {
	Card           Card
	Allowance      Allowance
	BillingAddress *BillingAddress
	RiskSignals    []RiskSignal
	Metadata       map[string]string
	// Rules are the limits of the API version the delegation came in, where versions
	// differ; the zero value is 2025-09-29's.
	Rules Rules
}

// Rules are the delegation limits that differ between API versions.
type Rules struct {
	// EmptyRiskSignals accepts risk_signals: [] (2026-04-17's schema; 2025-09-29 asks for
	// at least one, checklist I-11).
	EmptyRiskSignals bool
	// MaxIINDigits bounds iin: 0 means 6 (2025-09-29), 2026-04-17 allows 8 (I-02).
	MaxIINDigits int
}

// maxIIN is the longest iin r allows.
func (r Rules) maxIIN() int {
	if r.MaxIINDigits == 0 {
		return 6
	}
	return r.MaxIINDigits
}

// BillingAddress is the card's billing address (the Delegate Payment Address, which has
// length limits the checkout Address lacks).
type BillingAddress struct {
	Name       string `json:"name"`
	LineOne    string `json:"line_one"`
	LineTwo    string `json:"line_two,omitempty"`
	City       string `json:"city"`
	State      string `json:"state"`
	Country    string `json:"country"`
	PostalCode string `json:"postal_code"`
}

// Limits of a delegation.
const (
	// MaxAllowance caps max_amount; it matches the checkout price limits.
	MaxAllowance     = 1_000_000_000_000_000
	maxMerchantIDLen = 256
	// Metadata (the request's and the card's) is bounded like Stripe's: at most 50 keys,
	// keys of at most 40 characters, values of at most 500.
	MaxMetadataKeys     = 50
	MaxMetadataKeyLen   = 40
	MaxMetadataValueLen = 500
	// Other free text of a delegation, in characters; the spec leaves them unbounded.
	maxCardTextLen     = 256 // card holder name, checkout_session_id, cryptogram
	maxCardLabelLen    = 64  // display_brand, display_wallet_type
	maxChecksPerformed = 16
	maxRiskSignals     = 20
)

var currencyPattern = regexp.MustCompile(`^[a-z]{3}$`)

// Error codes of a refused delegation: the precise reason, naming the part of the
// request at fault. A version whose Error has a closed code enum (2025-09-29) sends its
// own code and keeps this one in the message (see docs/payments.md).
const (
	CodeInvalidCard      = "invalid_card"
	CodeInvalidAllowance = "invalid_allowance"
	CodeInvalidRequest   = "invalid_request"
	CodeRiskBlocked      = "risk_blocked"
)

// The fields of a delegation its errors name, beside the address parts and
// checkout.FieldBillingAddress it shares with checkout. Like checkout's, they are domain
// names; each API version renders them as its own JSONPaths.
const (
	// FieldCard is the delegated card.
	FieldCard checkout.FieldName = "Card"
	// FieldCardType is the kind of payment method (card).
	FieldCardType checkout.FieldName = "CardType"
	// FieldNumberType says whether the number is an FPAN or a network token.
	FieldNumberType checkout.FieldName = "NumberType"
	// FieldNumber is the card number.
	FieldNumber checkout.FieldName = "Number"
	// FieldFundingType is the card's funding type (credit, debit, prepaid).
	FieldFundingType checkout.FieldName = "FundingType"
	// FieldExpMonth is the card's expiry month.
	FieldExpMonth checkout.FieldName = "ExpMonth"
	// FieldExpYear is the card's expiry year.
	FieldExpYear checkout.FieldName = "ExpYear"
	// FieldCVC is the card's security code.
	FieldCVC checkout.FieldName = "CVC"
	// FieldECI is the card's electronic commerce indicator.
	FieldECI checkout.FieldName = "ECI"
	// FieldChecksPerformed is the list of checks the agent platform performed.
	FieldChecksPerformed checkout.FieldName = "ChecksPerformed"
	// FieldIIN is the card's issuer identification number.
	FieldIIN checkout.FieldName = "IIN"
	// FieldLast4 is the last four digits shown for the card.
	FieldLast4 checkout.FieldName = "Last4"
	// FieldCryptogram is the network token's cryptogram.
	FieldCryptogram checkout.FieldName = "Cryptogram"
	// FieldBrand is the brand shown for the card.
	FieldBrand checkout.FieldName = "Brand"
	// FieldWalletType is the wallet shown for the card.
	FieldWalletType checkout.FieldName = "WalletType"
	// FieldMetadata is a metadata object (the delegation's or the card's).
	FieldMetadata checkout.FieldName = "Metadata"
	// FieldAllowance is what the token may pay for.
	FieldAllowance checkout.FieldName = "Allowance"
	// FieldReason is why the allowance is given (one_time).
	FieldReason checkout.FieldName = "Reason"
	// FieldMaxAmount is the most the token may pay.
	FieldMaxAmount checkout.FieldName = "MaxAmount"
	// FieldCurrency is the currency the token may pay in.
	FieldCurrency checkout.FieldName = "Currency"
	// FieldCheckoutSessionID is the checkout session the token is bound to.
	FieldCheckoutSessionID checkout.FieldName = "CheckoutSessionID"
	// FieldMerchantID is the merchant the token is bound to.
	FieldMerchantID checkout.FieldName = "MerchantID"
	// FieldExpiresAt is when the allowance ends.
	FieldExpiresAt checkout.FieldName = "ExpiresAt"
	// FieldRiskSignals is the agent platform's risk assessment.
	FieldRiskSignals checkout.FieldName = "RiskSignals"
	// FieldRiskType is the kind of a risk signal.
	FieldRiskType checkout.FieldName = "RiskType"
	// FieldRiskAction is what a risk signal recommends.
	FieldRiskAction checkout.FieldName = "RiskAction"
)

func invalid(code string, at checkout.Field, format string, args ...any) error {
	return checkout.Errorf(checkout.KindInvalid, code, at, format, args...)
}

// Validate checks the delegation at time now. Messages never repeat the card number or
// the CVC.
func (d *Delegation) Validate(now time.Time) error {
	if err := d.Card.validate(now, d.Rules.maxIIN()); err != nil {
		return err
	}
	if err := validMetadata(checkout.At(FieldCard).Child(FieldMetadata), d.Card.Metadata); err != nil {
		return err
	}
	if err := d.Allowance.validate(now); err != nil {
		return err
	}
	if d.BillingAddress != nil {
		if err := d.BillingAddress.validate(checkout.At(checkout.FieldBillingAddress)); err != nil {
			return err
		}
	}
	signals := checkout.At(FieldRiskSignals)
	if len(d.RiskSignals) == 0 && !d.Rules.EmptyRiskSignals {
		return invalid(CodeInvalidRequest, signals, "risk_signals must hold at least one signal.")
	}
	if len(d.RiskSignals) > maxRiskSignals {
		return invalid(CodeInvalidRequest, signals, "risk_signals holds at most %d signals.", maxRiskSignals)
	}
	if err := validMetadata(checkout.At(FieldMetadata), d.Metadata); err != nil {
		return err
	}
	for i, rs := range d.RiskSignals {
		if rs.Type != "card_testing" {
			return invalid(CodeInvalidRequest, signals.Index(i).Child(FieldRiskType), "Risk signal type must be card_testing.")
		}
		if !slices.Contains([]string{"blocked", "manual_review", "authorized"}, rs.Action) {
			return invalid(CodeInvalidRequest, signals.Index(i).Child(FieldRiskAction), "Risk signal action must be blocked, manual_review or authorized.")
		}
	}
	for i, rs := range d.RiskSignals {
		if rs.Action == "blocked" {
			return invalid(CodeRiskBlocked, signals.Index(i).Child(FieldRiskAction),
				"The agent platform's risk assessment blocks this payment; no token was issued.")
		}
	}
	return nil
}

// ManualReview reports whether a risk signal asks for a manual review.
func (d *Delegation) ManualReview() bool {
	return slices.ContainsFunc(d.RiskSignals, func(rs RiskSignal) bool { return rs.Action == "manual_review" })
}

// validMetadata bounds a metadata object: it is stored (as jsonb) and echoed.
func validMetadata(p checkout.Field, md map[string]string) error {
	if len(md) > MaxMetadataKeys {
		return invalid(CodeInvalidRequest, p, "metadata holds at most %d keys.", MaxMetadataKeys)
	}
	for k, v := range md {
		if utf8.RuneCountInString(k) > MaxMetadataKeyLen {
			return invalid(CodeInvalidRequest, p, "metadata keys are at most %d characters.", MaxMetadataKeyLen)
		}
		if utf8.RuneCountInString(v) > MaxMetadataValueLen {
			return invalid(CodeInvalidRequest, p, "metadata values are at most %d characters.", MaxMetadataValueLen)
		}
	}
	return nil
}

// textField is a free-text field of a request: its field, its label in messages (still
// the 2025-09-29 name; see docs/decisions.md), its value and its limit in characters.
type textField struct {
	name         checkout.FieldName
	label, value string
	limit        int
}

// tooLong refuses the first field over its limit, naming it under p.
func tooLong(code string, p checkout.Field, fields ...textField) error {
	for _, f := range fields {
		if utf8.RuneCountInString(f.value) > f.limit {
			return invalid(code, p.Child(f.name), "%s is at most %d characters.", f.label, f.limit)
		}
	}
	return nil
}

func (c *Card) validate(now time.Time, maxIIN int) error {
	p := checkout.At(FieldCard)
	if err := tooLong(CodeInvalidCard, p, textField{checkout.FieldFullName, "name", c.Name, maxCardTextLen},
		textField{FieldCryptogram, "cryptogram", c.Cryptogram, maxCardTextLen},
		textField{FieldBrand, "display_brand", c.Brand, maxCardLabelLen}, textField{FieldWalletType, "display_wallet_type", c.WalletType, maxCardLabelLen}); err != nil {
		return err
	}
	if len(c.ChecksPerformed) > maxChecksPerformed {
		return invalid(CodeInvalidCard, p.Child(FieldChecksPerformed), "checks_performed holds at most %d entries.", maxChecksPerformed)
	}
	if c.Type != "card" {
		return invalid(CodeInvalidCard, p.Child(FieldCardType), "payment_method.type must be card.")
	}
	if c.NumberType != "fpan" && c.NumberType != "network_token" {
		return invalid(CodeInvalidCard, p.Child(FieldNumberType), "card_number_type must be fpan or network_token.")
	}
	if !allDigits(c.Number) || len(c.Number) < 12 || len(c.Number) > 19 {
		return invalid(CodeInvalidCard, p.Child(FieldNumber), "The card number must be 12 to 19 digits.")
	}
	if !luhnValid(c.Number) {
		return invalid(CodeInvalidCard, p.Child(FieldNumber), "The card number fails the Luhn check.")
	}
	if !slices.Contains([]string{"credit", "debit", "prepaid"}, c.FundingType) {
		return invalid(CodeInvalidCard, p.Child(FieldFundingType), "display_card_funding_type must be credit, debit or prepaid.")
	}
	if (c.ExpMonth == "") != (c.ExpYear == "") {
		at := p.Child(FieldExpMonth)
		if c.ExpYear == "" {
			at = p.Child(FieldExpYear)
		}
		return invalid(CodeInvalidCard, at, "exp_month and exp_year go together.")
	}
	if c.ExpMonth != "" {
		month, err := strconv.Atoi(c.ExpMonth)
		if err != nil || !allDigits(c.ExpMonth) || len(c.ExpMonth) > 2 || month < 1 || month > 12 {
			return invalid(CodeInvalidCard, p.Child(FieldExpMonth), "exp_month must be 01 to 12.")
		}
		year, err := strconv.Atoi(c.ExpYear)
		if err != nil || !allDigits(c.ExpYear) || len(c.ExpYear) != 4 {
			return invalid(CodeInvalidCard, p.Child(FieldExpYear), "exp_year must be four digits.")
		}
		// A card is valid through the last day of its expiry month.
		if !now.Before(time.Date(year, time.Month(month)+1, 1, 0, 0, 0, 0, time.UTC)) {
			return invalid(CodeInvalidCard, p.Child(FieldExpYear), "The card has expired.")
		}
		if year > now.Year()+50 {
			return invalid(CodeInvalidCard, p.Child(FieldExpYear), "exp_year is too far in the future.")
		}
	}
	if c.CVC != "" && (!allDigits(c.CVC) || len(c.CVC) < 3 || len(c.CVC) > 4) {
		return invalid(CodeInvalidCard, p.Child(FieldCVC), "cvc must be 3 or 4 digits.")
	}
	if c.ECIValue != "" && len(c.ECIValue) > 2 {
		return invalid(CodeInvalidCard, p.Child(FieldECI), "eci_value is at most 2 characters.")
	}
	for i, chk := range c.ChecksPerformed {
		if !slices.Contains([]string{"avs", "cvv", "ani", "auth0"}, chk) {
			return invalid(CodeInvalidCard, p.Child(FieldChecksPerformed).Index(i), "checks_performed holds avs, cvv, ani or auth0.")
		}
	}
	if c.IIN != "" && (!allDigits(c.IIN) || len(c.IIN) > maxIIN || !strings.HasPrefix(c.Number, c.IIN)) {
		return invalid(CodeInvalidCard, p.Child(FieldIIN), "iin must be up to %d digits that begin the card number.", maxIIN)
	}
	if c.Last4 != "" && c.Last4 != c.Number[len(c.Number)-4:] {
		return invalid(CodeInvalidCard, p.Child(FieldLast4), "display_last4 does not match the card number.")
	}
	return nil
}

func (a *Allowance) validate(now time.Time) error {
	p := checkout.At(FieldAllowance)
	switch {
	case a.Reason != "one_time":
		return invalid(CodeInvalidAllowance, p.Child(FieldReason), "allowance.reason must be one_time.")
	case a.MaxAmount <= 0 || a.MaxAmount > MaxAllowance:
		return invalid(CodeInvalidAllowance, p.Child(FieldMaxAmount), "allowance.max_amount must be a positive amount in minor units.")
	case !currencyPattern.MatchString(a.Currency):
		return invalid(CodeInvalidAllowance, p.Child(FieldCurrency), "allowance.currency must be a lowercase ISO 4217 code such as usd.")
	case strings.TrimSpace(a.CheckoutSessionID) == "":
		return invalid(CodeInvalidAllowance, p.Child(FieldCheckoutSessionID), "allowance.checkout_session_id is required.")
	case utf8.RuneCountInString(a.CheckoutSessionID) > maxCardTextLen:
		return invalid(CodeInvalidAllowance, p.Child(FieldCheckoutSessionID), "allowance.checkout_session_id is at most %d characters.", maxCardTextLen)
	case strings.TrimSpace(a.MerchantID) == "" || utf8.RuneCountInString(a.MerchantID) > maxMerchantIDLen:
		return invalid(CodeInvalidAllowance, p.Child(FieldMerchantID), "allowance.merchant_id must be 1 to %d characters.", maxMerchantIDLen)
	case a.ExpiresAt.IsZero():
		return invalid(CodeInvalidAllowance, p.Child(FieldExpiresAt), "allowance.expires_at must be an RFC 3339 date-time.")
	case !a.ExpiresAt.After(now):
		return invalid(CodeInvalidAllowance, p.Child(FieldExpiresAt), "allowance.expires_at is in the past.")
	}
	return nil
}

func (b *BillingAddress) validate(p checkout.Field) error {
	fields := []textField{
		{checkout.FieldFullName, "name", b.Name, 256}, {checkout.FieldLineOne, "line_one", b.LineOne, 60},
		{checkout.FieldCity, "city", b.City, 60}, {checkout.FieldState, "state", b.State, 256},
		{checkout.FieldPostalCode, "postal_code", b.PostalCode, 20},
	}
	for _, f := range fields {
		if strings.TrimSpace(f.value) == "" {
			return invalid(CodeInvalidRequest, p.Child(f.name), "%s is required.", f.label)
		}
		if err := tooLong(CodeInvalidRequest, p, f); err != nil {
			return err
		}
	}
	if utf8.RuneCountInString(b.LineTwo) > 60 {
		return invalid(CodeInvalidRequest, p.Child(checkout.FieldLineTwo), "line_two is at most 60 characters.")
	}
	if utf8.RuneCountInString(b.Country) != 2 {
		return invalid(CodeInvalidRequest, p.Child(checkout.FieldCountry), "country must be an ISO 3166-1 alpha-2 code.")
	}
	return nil
}
