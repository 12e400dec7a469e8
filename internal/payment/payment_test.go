package payment

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
)

func TestLuhnValid(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		number string
		want   bool
	}{
		{"4242424242424242", true},
		{"4111111111111111", true},
		{"5555555555554444", true},
		{"2223003122003222", true},
		{"378282246310005", true}, // 15 digits: the doubling starts from the right
		{"6011111111111117", true},
		{"79927398713", true}, // the textbook example
		{"4242424242424241", false},
		{"4242424242424243", false},
		{"79927398710", false},
		{"1234567812345678", false},
		{"378282246310006", false},
	} {
		if got := luhnValid(tc.number); got != tc.want {
			t.Errorf("luhnValid(%s) = %v, want %v", tc.number, got, tc.want)
		}
	}
}

func TestBrandOf(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ number, want string }{
		{"4242424242424242", "visa"},
		{"4000056655665556", "visa"},
		{"5105105105105100", "mastercard"},
		{"5555555555554444", "mastercard"},
		{"2221000000000009", "mastercard"},
		{"2223003122003222", "mastercard"},
		{"2720999999999996", "mastercard"},
		{"2220990000000000", "unknown"}, // just below the 2-series range
		{"2721000000000000", "unknown"}, // just above it
		{"5000000000000000", "unknown"}, // 50 is not mastercard
		{"5600000000000000", "unknown"}, // nor 56
		{"340000000000009", "amex"},
		{"378282246310005", "amex"},
		{"6011111111111117", "discover"},
		{"6500000000000002", "discover"},
		{"6445644564456445", "discover"},
		{"6012000000000000", "unknown"},
		{"3530111333300000", "jcb"},
		{"36227206271667", "diners"},
		{"30569309025904", "diners"},
		{"9999999999999995", "unknown"},
		{"1234567890123", "unknown"},
	} {
		if got := brandOf(tc.number); got != tc.want {
			t.Errorf("brandOf(%s) = %s, want %s", tc.number, got, tc.want)
		}
	}
}

func TestFingerprinter(t *testing.T) {
	t.Parallel()
	key := []byte("a-key-of-at-least-32-bytes-for-tests")
	fp := NewFingerprinter(key)

	a1, a2, b := fp.Fingerprint("4242424242424242"), fp.Fingerprint("4242424242424242"), fp.Fingerprint("5555555555554444")
	if len(a1) != 64 || strings.Trim(a1, "0123456789abcdef") != "" {
		t.Fatalf("fingerprint %q is not 64 lowercase hex digits", a1)
	}
	if a1 != a2 {
		t.Errorf("the same number gave %s and %s", a1, a2)
	}
	if a1 == b {
		t.Errorf("two numbers gave the same fingerprint %s", a1)
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte("4242424242424242"))
	if want := hex.EncodeToString(m.Sum(nil)); a1 != want {
		t.Errorf("fingerprint = %s, want HMAC-SHA256 %s", a1, want)
	}
	if other := NewFingerprinter([]byte("another-key-of-at-least-32-bytes!!")).Fingerprint("4242424242424242"); other == a1 {
		t.Error("two keys gave the same fingerprint")
	}
	for _, k := range [][]byte{nil, {}} {
		if got := NewFingerprinter(k).Fingerprint("4242424242424242"); got != "" {
			t.Errorf("without a key the fingerprint is %q, want none", got)
		}
	}
	// The key is copied: a caller's buffer changed afterwards changes nothing.
	mutable := bytes.Clone(key)
	copied := NewFingerprinter(mutable)
	clear(mutable)
	if got := copied.Fingerprint("4242424242424242"); got != a1 {
		t.Errorf("after the caller's key was cleared, fingerprint = %s, want %s", got, a1)
	}
	// Its HMACs are reused across goroutines (run with -race): every fingerprint is
	// still the one of its own number.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				if got := fp.Fingerprint("5555555555554444"); got != b {
					t.Errorf("concurrent fingerprint = %s, want %s", got, b)
					return
				}
				if got := fp.Fingerprint("4242424242424242"); got != a1 {
					t.Errorf("concurrent fingerprint = %s, want %s", got, a1)
					return
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkFingerprint is the keyed hash every idempotent request's hash goes through.
func BenchmarkFingerprint(b *testing.B) {
	fp := NewFingerprinter([]byte("a-key-of-at-least-32-bytes-for-tests"))
	b.ReportAllocs()
	for b.Loop() {
		fp.Fingerprint("idempotency-request-hash:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	}
}

// code returns the domain error code of err, "" for nil and "not a domain error" otherwise.
func code(err error) string {
	if err == nil {
		return ""
	}
	if de, ok := checkout.AsError(err); ok {
		return de.Code
	}
	return "not a domain error: " + err.Error()
}

func TestTokenCheckUse(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 6, 15, 12, 0, 0, 0, time.UTC)
	used := now.Add(-time.Minute)
	token := func(mod func(*Token)) *Token {
		tok := &Token{ID: "vt_1", Allowance: Allowance{
			Reason: "one_time", MaxAmount: 2109, Currency: "usd", CheckoutSessionID: "cs_1",
			MerchantID: "m", ExpiresAt: now.Add(time.Hour),
		}}
		if mod != nil {
			mod(tok)
		}
		return tok
	}
	for _, tc := range []struct {
		name     string
		tok      *Token
		session  string
		amount   int64
		currency string
		at       time.Time
		want     string
	}{
		{"fits", token(nil), "cs_1", 2109, "usd", now, ""},
		{"below the allowance", token(nil), "cs_1", 1, "usd", now, ""},
		{"just before expiry", token(nil), "cs_1", 2109, "usd", now.Add(time.Hour - time.Nanosecond), ""},
		{"used", token(func(t *Token) { t.UsedAt = &used }), "cs_1", 2109, "usd", now, CodeTokenUsed},
		{"used wins over another session", token(func(t *Token) { t.UsedAt = &used }), "cs_2", 2109, "usd", now, CodeTokenUsed},
		{"another session", token(nil), "cs_2", 2109, "usd", now, CodeTokenSessionBinding},
		{"at expiry", token(nil), "cs_1", 2109, "usd", now.Add(time.Hour), CodeTokenExpired},
		{"after expiry", token(nil), "cs_1", 2109, "usd", now.Add(2 * time.Hour), CodeTokenExpired},
		{"another currency", token(nil), "cs_1", 2109, "eur", now, CodeTokenCurrency},
		{"over the allowance", token(nil), "cs_1", 2110, "usd", now, CodeTokenAllowance},
	} {
		err := tc.tok.CheckUse(tc.session, tc.amount, tc.currency, tc.at)
		if got := code(err); got != tc.want {
			t.Errorf("%s: code = %q, want %q (%v)", tc.name, got, tc.want, err)
			continue
		}
		if err != nil {
			de, _ := checkout.AsError(err)
			if de.Kind != checkout.KindInvalid || de.Field != tokenField {
				t.Errorf("%s: kind %v field %s, want KindInvalid at %s", tc.name, de.Kind, de.Field, tokenField)
			}
		}
	}
}

// validDelegation is a delegation that passes Validate at any time before 2040.
func validDelegation() *Delegation {
	return &Delegation{
		Card: Card{
			Type: "card", NumberType: "fpan", Number: "4242424242424242", ExpMonth: "12", ExpYear: "2040",
			CVC: "9871", FundingType: "credit", IIN: "424242", Last4: "4242", Metadata: map[string]string{},
		},
		Allowance: Allowance{
			Reason: "one_time", MaxAmount: 2109, Currency: "usd", CheckoutSessionID: "cs_1",
			MerchantID: "merchant", ExpiresAt: time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC),
		},
		RiskSignals: []RiskSignal{{Type: "card_testing", Score: 10, Action: "authorized"}},
		Metadata:    map[string]string{},
	}
}

func TestDelegationValidateExpiryBoundary(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		month, year string
		now         time.Time
		valid       bool
	}{
		// A card is valid through the last day of its expiry month (UTC).
		{"02", "2028", time.Date(2028, 2, 29, 23, 59, 59, 999999999, time.UTC), true},
		{"02", "2028", time.Date(2028, 3, 1, 0, 0, 0, 0, time.UTC), false},
		{"2", "2028", time.Date(2028, 2, 1, 0, 0, 0, 0, time.UTC), true},
		{"12", "2030", time.Date(2030, 12, 31, 23, 59, 59, 0, time.UTC), true},
		{"12", "2030", time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC), false},
		{"01", "2030", time.Date(2029, 12, 31, 0, 0, 0, 0, time.UTC), true},
		// The same instant written in another zone is judged the same way.
		{"02", "2028", time.Date(2028, 2, 29, 19, 0, 0, 0, time.FixedZone("EST", -5*3600)), false},
		{"02", "2028", time.Date(2028, 2, 29, 18, 59, 59, 0, time.FixedZone("EST", -5*3600)), true},
		// At most 50 years ahead.
		{"01", "2076", time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), true},
		{"01", "2077", time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), false},
	} {
		d := validDelegation()
		d.Card.ExpMonth, d.Card.ExpYear = tc.month, tc.year
		d.Allowance.ExpiresAt = tc.now.Add(time.Hour)
		err := d.Validate(tc.now)
		if tc.valid && err != nil {
			t.Errorf("%s/%s at %s: %v, want valid", tc.month, tc.year, tc.now, err)
		}
		if !tc.valid {
			de, ok := checkout.AsError(err)
			if !ok || de.Code != CodeInvalidCard || de.Field != checkout.At(FieldCard).Child(FieldExpYear) {
				t.Errorf("%s/%s at %s: %v, want invalid_card at Card.ExpYear", tc.month, tc.year, tc.now, err)
			}
		}
	}
}

func TestDelegationValidateAllowanceExpiryAndRisk(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		mod  func(*Delegation)
		code string
		at   checkout.Field
	}{
		{"valid", func(*Delegation) {}, "", checkout.Field{}},
		{"allowance expires now", func(d *Delegation) { d.Allowance.ExpiresAt = now }, CodeInvalidAllowance, checkout.At(FieldAllowance).Child(FieldExpiresAt)},
		{"allowance expires a nanosecond later", func(d *Delegation) { d.Allowance.ExpiresAt = now.Add(time.Nanosecond) }, "", checkout.Field{}},
		{"no risk signal", func(d *Delegation) { d.RiskSignals = nil }, CodeInvalidRequest, checkout.At(FieldRiskSignals)},
		{"second signal blocks", func(d *Delegation) {
			d.RiskSignals = append(d.RiskSignals, RiskSignal{Type: "card_testing", Score: 99, Action: "blocked"})
		}, CodeRiskBlocked, checkout.At(FieldRiskSignals).Index(1).Child(FieldRiskAction)},
		{"an invalid signal is reported before a block", func(d *Delegation) {
			d.RiskSignals = []RiskSignal{{Type: "card_testing", Action: "blocked"}, {Type: "velocity", Action: "authorized"}}
		}, CodeInvalidRequest, checkout.At(FieldRiskSignals).Index(1).Child(FieldRiskType)},
		{"max amount above the cap", func(d *Delegation) { d.Allowance.MaxAmount = MaxAllowance + 1 }, CodeInvalidAllowance, checkout.At(FieldAllowance).Child(FieldMaxAmount)},
		{"max amount at the cap", func(d *Delegation) { d.Allowance.MaxAmount = MaxAllowance }, "", checkout.Field{}},
		{"blank session id", func(d *Delegation) { d.Allowance.CheckoutSessionID = " " }, CodeInvalidAllowance, checkout.At(FieldAllowance).Child(FieldCheckoutSessionID)},
		{"merchant id of 256", func(d *Delegation) { d.Allowance.MerchantID = strings.Repeat("m", 256) }, "", checkout.Field{}},
		{"billing address without city", func(d *Delegation) {
			d.BillingAddress = &BillingAddress{Name: "A", LineOne: "1 St", State: "CA", Country: "US", PostalCode: "1"}
		}, CodeInvalidRequest, checkout.At(checkout.FieldBillingAddress).Child(checkout.FieldCity)},
		{"billing country of three letters", func(d *Delegation) {
			d.BillingAddress = &BillingAddress{Name: "A", LineOne: "1 St", City: "C", State: "CA", Country: "USA", PostalCode: "1"}
		}, CodeInvalidRequest, checkout.At(checkout.FieldBillingAddress).Child(checkout.FieldCountry)},
		{"cvc is optional", func(d *Delegation) { d.Card.CVC = "" }, "", checkout.Field{}},
		{"expiry is optional", func(d *Delegation) { d.Card.ExpMonth, d.Card.ExpYear = "", "" }, "", checkout.Field{}},
		{"network token", func(d *Delegation) { d.Card.NumberType = "network_token" }, "", checkout.Field{}},
		{"eci too long", func(d *Delegation) { d.Card.ECIValue = "123" }, CodeInvalidCard, checkout.At(FieldCard).Child(FieldECI)},
		{"unknown check", func(d *Delegation) { d.Card.ChecksPerformed = []string{"avs", "sms"} }, CodeInvalidCard, checkout.At(FieldCard).Child(FieldChecksPerformed).Index(1)},
		{"iin of 7 digits", func(d *Delegation) { d.Card.IIN = "4242424" }, CodeInvalidCard, checkout.At(FieldCard).Child(FieldIIN)},
	} {
		d := validDelegation()
		tc.mod(d)
		err := d.Validate(now)
		if got := code(err); got != tc.code {
			t.Errorf("%s: code = %q, want %q (%v)", tc.name, got, tc.code, err)
			continue
		}
		if de, ok := checkout.AsError(err); ok && de.Field != tc.at {
			t.Errorf("%s: field = %s, want %s", tc.name, de.Field, tc.at)
		}
	}
}

func TestValidateMessagesNeverRepeatTheCard(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, mod := range []func(*Delegation){
		func(d *Delegation) { d.Card.Number = "4242424242424241" },
		func(d *Delegation) { d.Card.Number = "4242424242424242x" },
		func(d *Delegation) { d.Card.CVC = "98712" },
		func(d *Delegation) { d.Card.IIN = "555555" },
		func(d *Delegation) { d.Card.Last4 = "4243" },
		func(d *Delegation) { d.Card.ExpYear = "2020" },
	} {
		d := validDelegation()
		mod(d)
		err := d.Validate(now)
		if err == nil {
			t.Fatalf("%+v validated", d.Card)
		}
		for _, secret := range []string{"4242424242424242", "4242424242424241", "9871", "98712"} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q repeats %s", err, secret)
			}
		}
	}
}

func TestNewTokenKeepsNoCardSecrets(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	d := validDelegation()
	d.Card.Cryptogram = "AAABBBCCCDDDEEEFFF0123456789="
	d.RiskSignals = append(d.RiskSignals, RiskSignal{Type: "card_testing", Score: 50, Action: "manual_review"})
	fp := NewFingerprinter([]byte("a-key-of-at-least-32-bytes-for-tests"))
	tok := NewToken(d, fp, now)

	if !strings.HasPrefix(tok.ID, "vt_") || len(tok.ID) != len("vt_")+32 {
		t.Errorf("id = %q", tok.ID)
	}
	if tok.CardBrand != "visa" || tok.CardLast4 != "4242" || tok.CardExpMonth != 12 || tok.CardExpYear != 2040 ||
		tok.CardFunding != "credit" || tok.CardType != "fpan" || !tok.ManualReview || tok.UsedAt != nil {
		t.Errorf("token = %+v", tok)
	}
	if tok.Fingerprint != fp.Fingerprint("4242424242424242") {
		t.Errorf("fingerprint = %q", tok.Fingerprint)
	}
	dump := fmt.Sprintf("%+v %#v", tok, tok)
	for _, secret := range []string{"4242424242424242", "9871", d.Card.Cryptogram} {
		if strings.Contains(dump, secret) {
			t.Errorf("the token holds %q: %s", secret, dump)
		}
	}

	// display_brand wins over the IIN and is lower-cased; without expiry no month/year.
	d = validDelegation()
	d.Card.Brand, d.Card.ExpMonth, d.Card.ExpYear = " Visa ", "", ""
	if tok := NewToken(d, Fingerprinter{}, now); tok.CardBrand != "visa" || tok.CardExpMonth != 0 || tok.CardExpYear != 0 || tok.Fingerprint != "" {
		t.Errorf("token = %+v", tok)
	}
}

func TestMockGateway(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tok := range []string{"tok_visa", "tok_visa_debit", "tok_mastercard", "tok_mastercard_debit", "tok_mastercard_prepaid",
		"tok_amex", "tok_discover", "tok_diners", "tok_jcb", "tok_unionpay"} {
		r, err := MockGateway{}.Charge(ctx, Charge{Token: tok, Amount: 100, Currency: "usd", SessionID: "cs_1", IdempotencyKey: "cs_1"})
		if err != nil || !strings.HasPrefix(r.Reference, "ch_") {
			t.Errorf("%s: %+v, %v; want a ch_ reference", tok, r, err)
		}
	}
	for _, tok := range []string{"tok_chargeDeclined", "tok_chargeDeclinedInsufficientFunds", "tok_chargeDeclinedFraudulent",
		"tok_chargeDeclinedIncorrectCvc", "tok_chargeDeclinedExpiredCard", "tok_chargeDeclinedProcessingError"} {
		r, err := MockGateway{}.Charge(ctx, Charge{Token: tok, Amount: 100, Currency: "usd"})
		de, ok := checkout.AsError(err)
		if !ok || de.Kind != checkout.KindDeclined || de.Code != CodePaymentDeclined || de.Message == "" || r.Reference != "" {
			t.Errorf("%s: %+v, %v; want a decline", tok, r, err)
		}
	}
	for _, tok := range []string{"tok_unknown", "tok_VISA", "", "vt_123", "pm_card_visa"} {
		_, err := MockGateway{}.Charge(ctx, Charge{Token: tok})
		if de, ok := checkout.AsError(err); !ok || de.Kind != checkout.KindInvalid || de.Code != CodeTokenNotFound {
			t.Errorf("%q: %v; want payment_token_not_found", tok, err)
		}
	}
	if !IsVaultToken("vt_abc") || IsVaultToken("tok_visa") || IsVaultToken("VT_abc") {
		t.Error("IsVaultToken misjudges the vt_ prefix")
	}
}

func TestCountingGatewayCountsSuccessfulChargesPerSession(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var g CountingGateway
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			sid := "cs_" + strconv.Itoa(i%2)
			if _, err := g.Charge(ctx, Charge{Token: "tok_visa", Amount: 100, Currency: "usd", SessionID: sid}); err != nil {
				t.Errorf("charge %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if _, err := g.Charge(ctx, Charge{Token: "tok_chargeDeclined", SessionID: "cs_0"}); err == nil {
		t.Error("the wrapped mock did not decline tok_chargeDeclined")
	}
	if _, err := g.Charge(ctx, Charge{Token: "tok_unknown", SessionID: "cs_9"}); err == nil {
		t.Error("the wrapped mock accepted an unknown token")
	}
	if g.Charges() != 40 || g.ChargesFor("cs_0") != 20 || g.ChargesFor("cs_1") != 20 || g.ChargesFor("cs_9") != 0 || g.Attempts() != 42 {
		t.Errorf("charges = %d (cs_0 %d, cs_1 %d, cs_9 %d), attempts = %d; want 40 (20, 20, 0), 42",
			g.Charges(), g.ChargesFor("cs_0"), g.ChargesFor("cs_1"), g.ChargesFor("cs_9"), g.Attempts())
	}
}

func TestThreeDSTestCards(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for number, want := range map[string]string{
		"4000000000003220": checkout.DirectoryVisa, "4000002760003184": checkout.DirectoryVisa, "4242424242424242": "",
	} {
		d := validDelegation()
		d.Card.Number, d.Card.IIN, d.Card.Last4 = number, number[:6], number[12:]
		// The agent's display_brand decides nothing: the number's network does.
		d.Card.Brand = "Mastercard"
		if err := d.Validate(now); err != nil {
			t.Fatalf("%s: %v", number, err)
		}
		if got := NewToken(d, Fingerprinter{}, now).AuthenticationDirectoryServer; got != want {
			t.Errorf("%s: directory server %q, want %q", number, got, want)
		}
	}
}

func TestMockGatewayThreeDS(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	charge := Charge{Token: "tok_threeDSecure2Required", Amount: 100, Currency: "usd", SessionID: "cs_1"}
	for _, a := range []*checkout.AuthenticationResult{nil, {Outcome: checkout.OutcomeDenied}} {
		charge.Authentication = a
		_, err := MockGateway{}.Charge(ctx, charge)
		if ar, ok := errors.AsType[*AuthenticationRequiredError](err); !ok || ar.DirectoryServer != checkout.DirectoryVisa {
			t.Errorf("%+v: %v, want authentication required (visa)", a, err)
		}
	}
	charge.Authentication = &checkout.AuthenticationResult{Outcome: checkout.OutcomeAuthenticated, Cryptogram: "c", ECI: "05"}
	if r, err := (MockGateway{}).Charge(ctx, charge); err != nil || !strings.HasPrefix(r.Reference, "ch_") {
		t.Errorf("authenticated: %+v, %v", r, err)
	}
	// A card without 3-D Secure takes a result it did not need.
	charge.Token = "tok_visa"
	if _, err := (MockGateway{}).Charge(ctx, charge); err != nil {
		t.Errorf("tok_visa with a result: %v", err)
	}
}
