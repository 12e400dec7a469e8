package v20250929

// Fuzz targets for the 2025-09-29 request decoders: every body an agent can send goes
// through API.DecodeCreate (…Update, …Complete, …Delegate: acp.DecodeStrict and the wire
// type's domain()) and the domain Validate. Whatever the bytes,
// that pipeline must not panic, must refuse with a client error (never a 5xx), must
// only let through values that satisfy the domain invariants, and must never echo a
// card number or CVC in an error message.
//
// Seeds: the official 2025-09-29 examples (vendored in internal/acpspec), inline valid requests, and tricky inputs (NUL
// escapes, huge numbers, deep nesting, duplicate keys, invalid UTF-8). Run one with
//
//	go test -run '^$' -fuzz '^FuzzCreateRequest$' -fuzztime 30s ./internal/acp/v20250929
//
// or all of them with `make test-fuzz`. Without -fuzz, the seeds run as ordinary tests.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/agentic-commerce/agentic-commerce-server/internal/acp"
	"github.com/agentic-commerce/agentic-commerce-server/internal/acpspec"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/idempotency"
	"github.com/agentic-commerce/agentic-commerce-server/internal/payment"
)

// ---- seeds ----

// specExamples returns the named examples of one 2025-09-29 example file as request
// bodies.
func specExamples(tb testing.TB, file string, names ...string) [][]byte {
	tb.Helper()
	raw := acpspec.ReadFile(tb, "2025-09-29/"+file)
	var all map[string]json.RawMessage
	if err := json.Unmarshal(raw, &all); err != nil {
		tb.Fatalf("parse %s: %v", file, err)
	}
	var out [][]byte
	for _, n := range names {
		ex, ok := all[n]
		if !ok {
			tb.Fatalf("%s has no example %q", file, n)
		}
		out = append(out, []byte(ex))
	}
	return out
}

// fuzzDeep nests n arrays inside field of an object.
func fuzzDeep(field string, n int) []byte {
	return []byte(`{"` + field + `":` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}`)
}

// fuzzTrickySeeds are inputs every decoder must survive, whatever the wire type.
func fuzzTrickySeeds() [][]byte {
	return [][]byte{
		nil,
		[]byte(``),
		[]byte(`null`),
		[]byte(`{}`),
		[]byte(`[]`),
		[]byte(`"x"`),
		[]byte(`{} {}`),
		[]byte(`{}]`),
		[]byte(`{"a":`),
		[]byte("{\"x\":\"\x00\"}"),
		[]byte(`{"x":"\u0000"}`),
		[]byte(`{"x":"\\u0000"}`),
		[]byte(`{"x":"\\\u0000"}`),
		[]byte(`{"\u0000":1}`),
		[]byte("{\"x\":\"\xff\xfe\xc0\x80\"}"),
		[]byte("\xef\xbb\xbf{}"),
		[]byte(`{"x":"\ud800"}`),
		[]byte(`{"x":1e999999}`),
		[]byte(`{"x":-99999999999999999999999999999999999999}`),
		fuzzDeep("x", 20),
		fuzzDeep("x", 11000),
	}
}

func fuzzAddSeeds(f *testing.F, seeds ...[]byte) {
	for _, s := range seeds {
		f.Add(s)
	}
}

// ---- properties shared by every target ----

// checkRefusal fails unless err is a client error the API answers with a 4xx: an
// *acp.Error with a 4xx status, or a *checkout.Error whose kind maps to a 4xx.
func checkRefusal(t *testing.T, body []byte, err error) {
	t.Helper()
	var ae *acp.Error
	if errors.As(err, &ae) {
		if ae.Status < 400 || ae.Status > 499 {
			t.Fatalf("acp.Error with status %d for %q: %v", ae.Status, body, err)
		}
		checkErrorText(t, body, ae.Type, ae.Code, ae.Message, ae.Param)
		return
	}
	de, ok := checkout.AsError(err)
	if !ok {
		t.Fatalf("error %T is neither *acp.Error nor *checkout.Error (a 500) for %q: %v", err, body, err)
	}
	// An unknown kind renders as a 500, so the status check catches it too.
	r := API{}.DomainError(de)
	if de.Kind == checkout.KindInternal || r.Status < 400 || r.Status > 499 {
		t.Fatalf("domain error of kind %d (status %d) for %q: %v", de.Kind, r.Status, body, err)
	}
	checkErrorText(t, body, r.Type, de.Code, de.Message, pathOf(de.Field))
}

func checkErrorText(t *testing.T, body []byte, typ, code, msg, param string) {
	t.Helper()
	if typ == "" || code == "" || msg == "" {
		t.Fatalf("error without type, code or message for %q: %q %q %q", body, typ, code, msg)
	}
	if !utf8.ValidString(msg) || !utf8.ValidString(param) {
		t.Fatalf("error text is not UTF-8 for %q: %q %q", body, msg, param)
	}
	if param != "" && !strings.HasPrefix(param, "$") {
		t.Fatalf("param %q is not a JSONPath for %q", param, body)
	}
}

// fuzzErrText is what a client sees of err.
func fuzzErrText(err error) string {
	var ae *acp.Error
	if errors.As(err, &ae) {
		return ae.Code + "|" + ae.Message + "|" + ae.Param
	}
	if de, ok := checkout.AsError(err); ok {
		return de.Code + "|" + de.Message + "|" + pathOf(de.Field)
	}
	return err.Error()
}

// checkNUL checks acp.HasNUL against a tokenizer: on valid JSON it must say exactly whether
// a string token (key or value, duplicates included) decodes to one holding NUL, which
// PostgreSQL cannot store.
func checkNUL(t *testing.T, body []byte) {
	t.Helper()
	if !json.Valid(body) {
		return
	}
	want := false
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		if s, ok := tok.(string); ok && strings.ContainsRune(s, 0) {
			want = true
			break
		}
	}
	if got := acp.HasNUL(body); got != want {
		t.Fatalf("acp.HasNUL(%q) = %v, but a string of the body holds NUL: %v", body, got, want)
	}
}

// ---- domain invariants ----

func checkItems(t *testing.T, items []checkout.ItemRequest) {
	t.Helper()
	if len(items) < 1 || len(items) > checkout.MaxLineItems {
		t.Fatalf("accepted %d items", len(items))
	}
	seen := map[string]bool{}
	for i, it := range items {
		if strings.TrimSpace(it.ID) == "" {
			t.Fatalf("accepted item %d with an empty id", i)
		}
		if it.Quantity < 1 || it.Quantity > checkout.MaxQuantity {
			t.Fatalf("accepted item %d with quantity %d", i, it.Quantity)
		}
		if seen[it.ID] {
			t.Fatalf("accepted item id %q twice", it.ID)
		}
		seen[it.ID] = true
	}
}

func checkBuyer(t *testing.T, b *checkout.Buyer) {
	t.Helper()
	if b == nil {
		return
	}
	if strings.TrimSpace(b.FirstName) == "" || strings.TrimSpace(b.LastName) == "" {
		t.Fatalf("accepted buyer without a name: %+v", b)
	}
	if a, err := mail.ParseAddress(b.Email); err != nil || a.Address != b.Email {
		t.Fatalf("accepted buyer email %q", b.Email)
	}
	if utf8.RuneCountInString(b.FirstName) > checkout.MaxNameLength || utf8.RuneCountInString(b.LastName) > checkout.MaxNameLength ||
		utf8.RuneCountInString(b.Email) > checkout.MaxEmailLength || utf8.RuneCountInString(b.PhoneNumber) > checkout.MaxPhoneLength {
		t.Fatalf("accepted an over-long buyer field: %+v", b)
	}
}

var fuzzCountry = regexp.MustCompile(`^[A-Z]{2}$`)

func checkAddress(t *testing.T, a *checkout.Address) {
	t.Helper()
	if a == nil {
		return
	}
	for name, v := range map[string]string{"name": a.Name, "line_one": a.LineOne, "city": a.City, "state": a.State, "postal_code": a.PostalCode} {
		if strings.TrimSpace(v) == "" || v != strings.TrimSpace(v) {
			t.Fatalf("accepted address %s %q", name, v)
		}
	}
	for name, v := range map[string]string{"name": a.Name, "line_one": a.LineOne, "line_two": a.LineTwo, "city": a.City, "state": a.State} {
		if utf8.RuneCountInString(v) > checkout.MaxAddressLine {
			t.Fatalf("accepted an address %s of %d characters", name, utf8.RuneCountInString(v))
		}
	}
	if utf8.RuneCountInString(a.PostalCode) > checkout.MaxPostalCodeLength {
		t.Fatalf("accepted a postal_code of %d characters", utf8.RuneCountInString(a.PostalCode))
	}
	if !fuzzCountry.MatchString(a.Country) {
		t.Fatalf("accepted address country %q", a.Country)
	}
}

func checkChanges(t *testing.T, ch checkout.Changes, creating bool) {
	t.Helper()
	if creating && ch.Items == nil {
		t.Fatal("create accepted without items")
	}
	if ch.Items != nil {
		checkItems(t, ch.Items)
	}
	checkBuyer(t, ch.Buyer)
	checkAddress(t, ch.FulfillmentAddress)
	if ch.FulfillmentOptionID != nil && *ch.FulfillmentOptionID == "" {
		t.Fatal("accepted an empty fulfillment_option_id")
	}
}

// ---- create / update / complete ----

func validCreateSeeds() [][]byte {
	return [][]byte{
		[]byte(`{"items":[{"id":"item_123","quantity":1}]}`),
		[]byte(`{"items":[{"id":"item_123","quantity":2},{"id":"item_456","quantity":10000}],
			"buyer":{"first_name":"Ada","last_name":"Lovelace","email":"ada@example.com","phone_number":"+15551234567"},
			"fulfillment_address":{"name":"Ada","line_one":"1 Road","line_two":"","city":"SF","state":"CA","country":"us","postal_code":"94131"}}`),
		[]byte(`{"items":[{"id":"a","quantity":0}]}`),
		[]byte(`{"items":[{"id":"a","quantity":10001}]}`),
		[]byte(`{"items":[{"id":"a","quantity":-1}]}`),
		[]byte(`{"items":[{"id":"a","quantity":"2"}]}`),
		[]byte(`{"items":[{"id":"a","quantity":2.0}]}`),
		[]byte(`{"items":[{"id":"a","quantity":1e3}]}`),
		[]byte(`{"items":[{"id":"a","quantity":99999999999999999999999}]}`),
		[]byte(`{"items":[{"id":"a","quantity":null}]}`),
		[]byte(`{"items":[{"id":null,"quantity":1}]}`),
		[]byte(`{"items":[{"id":" ","quantity":1}]}`),
		[]byte(`{"items":[{"id":"a","quantity":1},{"id":"a","quantity":1}]}`),
		[]byte(`{"items":[{"id":"a","quantity":1}],"items":[]}`),
		[]byte(`{"items":[{"id":"a","quantity":1}],"ITEMS":null}`),
		[]byte(`{"items":[{"id":"a\u0000","quantity":1}]}`),
		[]byte("{\"items\":[{\"id\":\"\xff\",\"quantity\":1}]}"),
		[]byte(`{"items":[],"buyer":{"first_name":"A","last_name":"B","email":"A <a@b.c>"}}`),
		[]byte(`{"items":[{"id":"a","quantity":1}],"fulfillment_address":{"name":"n","line_one":"l","city":"c","state":"s","country":"uſ","postal_code":"p"}}`),
		[]byte(`{"items":[{"id":"a","quantity":1}],"unknown":1}`),
		[]byte(`{"items":[{"id":"a","quantity":1,"extra":true}]}`),
		[]byte(`{"items":` + strings.Repeat(`[`, 3000) + strings.Repeat(`]`, 3000) + `}`),
		[]byte(`{"items":[` + strings.Repeat(`{"id":"x","quantity":1},`, 100) + `{"id":"y","quantity":1}]}`),
	}
}

func runCreate(body []byte) (checkout.Changes, error) {
	ch, err := API{}.DecodeCreate(body)
	if err != nil {
		return ch, err
	}
	return ch, ch.Validate(true)
}

func FuzzCreateRequest(f *testing.F) {
	fuzzAddSeeds(f, specExamples(f, "examples.agentic_checkout.json", "create_checkout_session_request")...)
	fuzzAddSeeds(f, validCreateSeeds()...)
	fuzzAddSeeds(f, fuzzTrickySeeds()...)
	fuzzAddSeeds(f, fuzzDeep("buyer", 200))
	f.Fuzz(func(t *testing.T, body []byte) {
		checkNUL(t, body)
		ch, err := runCreate(body)
		if err != nil {
			checkRefusal(t, body, err)
			if _, again := runCreate(body); again == nil || fuzzErrText(again) != fuzzErrText(err) {
				t.Fatalf("refusal is not deterministic for %q: %v, then %v", body, err, again)
			}
			return
		}
		checkChanges(t, ch, true)
	})
}

func runUpdate(body []byte) (checkout.Changes, error) {
	ch, err := API{}.DecodeUpdate(body)
	if err != nil {
		return ch, err
	}
	return ch, ch.Validate(false)
}

func FuzzUpdateRequest(f *testing.F) {
	fuzzAddSeeds(f, specExamples(f, "examples.agentic_checkout.json", "update_checkout_session_request", "create_checkout_session_request")...)
	fuzzAddSeeds(f, validCreateSeeds()...)
	fuzzAddSeeds(f, fuzzTrickySeeds()...)
	fuzzAddSeeds(f,
		[]byte(`{"fulfillment_option_id":"standard_shipping"}`),
		[]byte(`{"fulfillment_option_id":""}`),
		[]byte(`{"fulfillment_option_id":null}`),
		[]byte(`{"buyer":{"first_name":"Ada","last_name":"L","email":"ada@example.com"}}`),
		[]byte(`{"buyer":{"first_name":" ","last_name":"L","email":"ada@example.com"}}`),
		[]byte(`{"buyer":{"first_name":"Ada","last_name":"L","email":" ada@example.com "}}`),
		[]byte(`{"fulfillment_address":{"name":"n","line_one":"l","city":"c","state":"s","country":"U","postal_code":"p"}}`),
	)
	f.Fuzz(func(t *testing.T, body []byte) {
		checkNUL(t, body)
		ch, err := runUpdate(body)
		if err != nil {
			checkRefusal(t, body, err)
			return
		}
		checkChanges(t, ch, false)
	})
}

func runComplete(body []byte) (checkout.Completion, error) {
	c, err := API{}.DecodeComplete(body)
	if err != nil {
		return c, err
	}
	return c, c.Validate()
}

func FuzzCompleteRequest(f *testing.F) {
	fuzzAddSeeds(f, specExamples(f, "examples.agentic_checkout.json", "complete_checkout_session_request")...)
	fuzzAddSeeds(f, fuzzTrickySeeds()...)
	fuzzAddSeeds(f,
		[]byte(`{"payment_data":{"token":"tok_visa","provider":"stripe"}}`),
		[]byte(`{"payment_data":{"token":"vt_0123456789abcdef","provider":"stripe","billing_address":{"name":"n","line_one":"l","city":"c","state":"CA","country":"US","postal_code":"p"}},
			"buyer":{"first_name":"Ada","last_name":"L","email":"ada@example.com"}}`),
		[]byte(`{"payment_data":{"token":" ","provider":"stripe"}}`),
		[]byte(`{"payment_data":{"token":"tok","provider":"adyen"}}`),
		[]byte(`{"payment_data":{"token":"tok"}}`),
		[]byte(`{"payment_data":{"provider":"stripe"}}`),
		[]byte(`{"payment_data":null}`),
		[]byte(`{"payment_data":{"token":"tok","provider":"stripe"},"payment_data":{"token":"tok2","provider":"stripe"}}`),
		[]byte(`{"payment_data":{"token":"tok","provider":"STRIPE"}}`),
		[]byte(`{"payment_data":{"token":"tok\u0000","provider":"stripe"}}`),
		[]byte(`{"payment_data":{"token":1,"provider":"stripe"}}`),
		fuzzDeep("payment_data", 500),
	)
	f.Fuzz(func(t *testing.T, body []byte) {
		checkNUL(t, body)
		c, err := runComplete(body)
		if err != nil {
			checkRefusal(t, body, err)
			return
		}
		if strings.TrimSpace(c.Token) == "" || c.Provider != "stripe" {
			t.Fatalf("accepted completion %+v", c)
		}
		checkAddress(t, c.BillingAddress)
		checkBuyer(t, c.Buyer)
	})
}

// ---- delegate payment ----

// validDelegation is a delegate_payment body that passes validation for years to come.
const validDelegation = `{
  "payment_method": {"type":"card","card_number_type":"fpan","virtual":false,"number":"4242424242424242",
    "exp_month":"12","exp_year":"2070","name":"Jane Doe","cvc":"223","checks_performed":["avs","cvv"],
    "iin":"424242","display_card_funding_type":"credit","display_wallet_type":"apple_pay",
    "display_brand":"visa","display_last4":"4242","metadata":{"issuing_bank":"temp"}},
  "allowance": {"reason":"one_time","max_amount":2000,"currency":"usd","checkout_session_id":"cs_1",
    "merchant_id":"acme_store","expires_at":"2099-10-09T07:20:50.52Z"},
  "billing_address": {"name":"Ada Lovelace","line_one":"1234 Chat Road","line_two":"","city":"San Francisco",
    "state":"CA","country":"US","postal_code":"94131"},
  "risk_signals": [{"type":"card_testing","score":10,"action":"authorized"}],
  "metadata": {"campaign":"q4"}
}`

// delegationWith returns validDelegation with old replaced by new (once).
func delegationWith(old, new string) []byte {
	if !strings.Contains(validDelegation, old) {
		panic("seed: " + old + " not in validDelegation")
	}
	return []byte(strings.Replace(validDelegation, old, new, 1))
}

func runDelegate(body []byte) (*payment.Delegation, error) {
	d, err := API{}.DecodeDelegate(body)
	if err != nil {
		return d, err
	}
	return d, d.Validate(time.Now())
}

var fuzzCurrency = regexp.MustCompile(`^[a-z]{3}$`)

// fuzzLuhn is an independent Luhn check.
func fuzzLuhn(number string) bool {
	sum := 0
	for i := range len(number) {
		d := int(number[len(number)-1-i] - '0')
		if i%2 == 1 {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}

func checkDelegation(t *testing.T, d *payment.Delegation) {
	t.Helper()
	n := d.Card.Number
	if len(n) < 12 || len(n) > 19 || strings.Trim(n, "0123456789") != "" || !fuzzLuhn(n) {
		t.Fatalf("accepted card number %q", n)
	}
	if d.Card.CVC != "" && (len(d.Card.CVC) < 3 || len(d.Card.CVC) > 4 || strings.Trim(d.Card.CVC, "0123456789") != "") {
		t.Fatalf("accepted cvc %q", d.Card.CVC)
	}
	if d.Card.Last4 != "" && !strings.HasSuffix(n, d.Card.Last4) {
		t.Fatalf("accepted display_last4 %q for %q", d.Card.Last4, n)
	}
	a := d.Allowance
	if a.MaxAmount <= 0 || a.MaxAmount > payment.MaxAllowance {
		t.Fatalf("accepted max_amount %d", a.MaxAmount)
	}
	if !fuzzCurrency.MatchString(a.Currency) {
		t.Fatalf("accepted currency %q", a.Currency)
	}
	if strings.TrimSpace(a.CheckoutSessionID) == "" || strings.TrimSpace(a.MerchantID) == "" || utf8.RuneCountInString(a.MerchantID) > 256 {
		t.Fatalf("accepted allowance ids %q %q", a.CheckoutSessionID, a.MerchantID)
	}
	if !a.ExpiresAt.After(time.Now().Add(-time.Minute)) {
		t.Fatalf("accepted expires_at %s", a.ExpiresAt)
	}
	if len(d.RiskSignals) == 0 {
		t.Fatal("accepted no risk signal")
	}
	for _, rs := range d.RiskSignals {
		if rs.Type != "card_testing" || rs.Action == "blocked" {
			t.Fatalf("accepted risk signal %+v", rs)
		}
	}
	// The token made of it must fit the vault_tokens CHECKs.
	tok := payment.NewToken(d, payment.NewFingerprinter(nil), time.Now())
	if len(tok.CardLast4) != 4 || strings.Trim(tok.CardLast4, "0123456789") != "" {
		t.Fatalf("token last4 %q", tok.CardLast4)
	}
	if tok.CardExpMonth != 0 && (tok.CardExpMonth < 1 || tok.CardExpMonth > 12 || tok.CardExpYear < 2000 || tok.CardExpYear > 2200) {
		t.Fatalf("token expiry %d/%d does not fit the table", tok.CardExpMonth, tok.CardExpYear)
	}
}

// cardSecretsOf reads the card number and CVC of a body whatever else is wrong with it,
// more loosely than the strict decoder (case-insensitive keys, the last duplicate wins),
// so that a spelling the decoder refuses is still looked for in its error.
func cardSecretsOf(body []byte) (number, cvc string) {
	var probe struct {
		PaymentMethod struct {
			Number any `json:"number"`
			CVC    any `json:"cvc"`
		} `json:"payment_method"`
	}
	_ = json.Unmarshal(body, &probe)
	number, _ = probe.PaymentMethod.Number.(string)
	cvc, _ = probe.PaymentMethod.CVC.(string)
	return number, cvc
}

// fuzzShift maps digits and ASCII letters to others of the same class, so a CVC changed
// with it passes or fails validation exactly as before.
func fuzzShift(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= '0' && r <= '9':
			return '0' + (r-'0'+5)%10
		case r >= 'a' && r <= 'z':
			return 'a' + (r-'a'+13)%26
		case r >= 'A' && r <= 'Z':
			return 'A' + (r-'A'+13)%26
		}
		return r
	}, s)
}

// cardLeak describes how the refusal err of body shows its card number or CVC, or
// returns "" when it shows neither.
func cardLeak(body []byte, err error) string {
	msg := fuzzErrText(err)
	number, cvc := cardSecretsOf(body)
	// A card number is a long digit run no fixed message holds; it is only looked for
	// when the body has it nowhere else (a key or another field could be echoed legitimately).
	digits := strings.Count(strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, number), "") - 1
	if digits >= 12 && strings.Contains(msg, number) && bytes.Count(body, []byte(number)) <= 1 {
		return fmt.Sprintf("error shows the card number %q: %s", number, msg)
	}
	// A CVC is short enough to occur in a message by chance ("at byte 223"), so it is
	// changed in the body and the request run again: a message that follows the change
	// shows the CVC.
	if len(cvc) >= 3 && strings.Contains(msg, cvc) {
		quoted := []byte(`"` + cvc + `"`)
		other := fuzzShift(cvc)
		if other == cvc || bytes.Count(body, quoted) != 1 {
			return ""
		}
		_, err2 := runDelegate(bytes.Replace(body, quoted, []byte(`"`+other+`"`), 1))
		if err2 == nil {
			return fmt.Sprintf("changing only the CVC %q made the body valid", cvc)
		}
		if msg2 := fuzzErrText(err2); msg2 != msg && strings.ReplaceAll(msg, cvc, other) == msg2 {
			return fmt.Sprintf("error shows the CVC %q: %s", cvc, msg)
		}
	}
	return ""
}

func FuzzDelegateRequest(f *testing.F) {
	fuzzAddSeeds(f, specExamples(f, "examples.delegate_payment.json", "delegate_payment_request")...)
	fuzzAddSeeds(f, fuzzTrickySeeds()...)
	fuzzAddSeeds(f,
		[]byte(validDelegation),
		delegationWith(`"4242424242424242"`, `"4242424242424241"`),
		delegationWith(`"4242424242424242"`, `"42424242424"`),
		delegationWith(`"4242424242424242"`, `"4242 4242 4242 4242"`),
		delegationWith(`"4242424242424242"`, `4242424242424242`),
		delegationWith(`"4242424242424242"`, `"4242424242424242\u0000"`),
		delegationWith(`"4242424242424242"`, `"\u0034242424242424242"`),
		delegationWith(`"number":"4242424242424242"`, `"NUMBER":"4242424242424242"`),
		delegationWith(`"cvc":"223"`, `"cvc":"22a"`),
		delegationWith(`"cvc":"223"`, `"cvc":223`),
		delegationWith(`"cvc":"223"`, `"cvc":"223","cvc":"12345"`),
		delegationWith(`"max_amount":2000`, `"max_amount":0`),
		delegationWith(`"max_amount":2000`, `"max_amount":-1`),
		delegationWith(`"max_amount":2000`, `"max_amount":1000000000000000001`),
		delegationWith(`"max_amount":2000`, `"max_amount":99999999999999999999999`),
		delegationWith(`"max_amount":2000`, `"max_amount":20.5`),
		delegationWith(`"max_amount":2000`, `"max_amount":"2000"`),
		delegationWith(`"currency":"usd"`, `"currency":"USD"`),
		delegationWith(`"currency":"usd"`, `"currency":"usdx"`),
		delegationWith(`"exp_month":"12"`, `"exp_month":"+1"`),
		delegationWith(`"exp_month":"12"`, `"exp_month":"00"`),
		delegationWith(`"exp_year":"2070"`, `"exp_year":"2020"`),
		delegationWith(`"exp_year":"2070"`, `"exp_year":"9999"`),
		delegationWith(`"iin":"424242"`, `"iin":"555555"`),
		delegationWith(`"display_last4":"4242"`, `"display_last4":"1234"`),
		delegationWith(`"expires_at":"2099-10-09T07:20:50.52Z"`, `"expires_at":"2099-10-09"`),
		delegationWith(`"expires_at":"2099-10-09T07:20:50.52Z"`, `"expires_at":"2000-01-01T00:00:00Z"`),
		delegationWith(`"expires_at":"2099-10-09T07:20:50.52Z"`, `"expires_at":"9999-12-31T23:59:59.999999999+23:59"`),
		delegationWith(`"merchant_id":"acme_store"`, `"merchant_id":"`+strings.Repeat("é", 257)+`"`),
		delegationWith(`"action":"authorized"`, `"action":"blocked"`),
		delegationWith(`"action":"authorized"`, `"action":"manual_review"`),
		delegationWith(`[{"type":"card_testing","score":10,"action":"authorized"}]`, `[]`),
		delegationWith(`[{"type":"card_testing","score":10,"action":"authorized"}]`, `[null]`),
		delegationWith(`"metadata": {"campaign":"q4"}`, `"metadata": null`),
		delegationWith(`"metadata": {"campaign":"q4"}`, `"metadata": {"k":1}`),
		delegationWith(`"country":"US"`, `"country":"USA"`),
		delegationWith(`"campaign":"q4"`, `"4242424242424242":"q4"`),
		delegationWith(`"campaign":"q4"`, `"campaign":"q4","x":`+strings.Repeat("[", 200)+strings.Repeat("]", 200)),
	)
	f.Fuzz(func(t *testing.T, body []byte) {
		checkNUL(t, body)
		d, err := runDelegate(body)
		if err != nil {
			checkRefusal(t, body, err)
			if leak := cardLeak(body, err); leak != "" {
				t.Fatalf("%s (body %q)", leak, body)
			}
			return
		}
		checkDelegation(t, d)
	})
}

// ---- idempotency hash ----

// fuzzReformat writes v with its object keys in reverse order and extra whitespace: the same
// JSON value, different bytes.
func fuzzReformat(buf *bytes.Buffer, v any, depth int) {
	pad := "\n" + strings.Repeat(" ", depth%8)
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		slices.Reverse(keys)
		buf.WriteString("{" + pad)
		for i, k := range keys {
			if i > 0 {
				buf.WriteString(" ," + pad)
			}
			kb, _ := json.Marshal(k)
			buf.Write(kb)
			buf.WriteString(" :\t")
			fuzzReformat(buf, v[k], depth+1)
		}
		buf.WriteString(pad + "}")
	case []any:
		buf.WriteString("[ ")
		for i, e := range v {
			if i > 0 {
				buf.WriteString(",\r\n")
			}
			fuzzReformat(buf, e, depth+1)
		}
		buf.WriteString(" ]")
	case string:
		// ASCII-only escapes: different bytes for any non-ASCII string.
		buf.WriteString(fuzzASCIIJSON(v))
	case json.Number:
		buf.WriteString(v.String())
	case bool, nil:
		b, _ := json.Marshal(v)
		buf.Write(b)
	default:
		panic(fmt.Sprintf("unexpected %T", v))
	}
}

func fuzzASCIIJSON(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r > 0x7e:
			if r > 0xffff {
				r1, r2 := fuzzUTF16Pair(r)
				fmt.Fprintf(&b, `\u%04x\u%04x`, r1, r2)
			} else {
				fmt.Fprintf(&b, `\u%04x`, r)
			}
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func fuzzUTF16Pair(r rune) (rune, rune) {
	r -= 0x10000
	return 0xd800 + (r>>10)&0x3ff, 0xdc00 + r&0x3ff
}

func FuzzIdempotencyHash(f *testing.F) {
	fuzzAddSeeds(f, specExamples(f, "examples.agentic_checkout.json",
		"create_checkout_session_request", "update_checkout_session_request", "complete_checkout_session_request")...)
	fuzzAddSeeds(f, specExamples(f, "examples.delegate_payment.json", "delegate_payment_request")...)
	fuzzAddSeeds(f, fuzzTrickySeeds()...)
	fuzzAddSeeds(f,
		[]byte(validDelegation),
		[]byte(`{"a":1,"b":[1,2,{"c":null}]}`),
		[]byte(`{"b":[1,2,{"c":null}],"a":1}`),
		[]byte(`{"a":1,"a":2}`),
		[]byte(`{"a":1.0,"b":1e2,"c":-0,"d":123456789012345678901234567890}`),
		[]byte(`{"<&>":"\u2028\u2029","é":"😀"}`),
		[]byte(`  {"a":1}  `),
		[]byte(`{"a":1} x`),
		[]byte(`1`),
		[]byte(`true`),
	)
	f.Fuzz(func(t *testing.T, body []byte) {
		h := idempotency.Hash(body)
		if h2 := idempotency.Hash(bytes.Clone(body)); h2 != h {
			t.Fatalf("Hash(%q) is not deterministic: %s, then %s", body, h, h2)
		}
		if _, err := hex.DecodeString(h); err != nil || len(h) != 64 {
			t.Fatalf("Hash(%q) = %q, not a SHA-256 hex digest", body, h)
		}
		v, ok := idempotency.Decode(body)
		if !ok {
			if sum := sha256.Sum256(body); h != hex.EncodeToString(sum[:]) {
				t.Fatalf("Hash of a non-JSON body %q is not the hash of its bytes", body)
			}
			return
		}
		var buf bytes.Buffer
		buf.WriteString(" \n")
		fuzzReformat(&buf, v, 0)
		buf.WriteString("\t\n")
		if h2 := idempotency.Hash(buf.Bytes()); h2 != h {
			t.Fatalf("reformatting changed the hash:\n%q\n%q", body, buf.Bytes())
		}
		if m, isObject := v.(map[string]any); isObject {
			// A semantic change must change the hash: a new member, or null for absent.
			key := "\x01fuzz-extra"
			for _, taken := m[key]; taken; _, taken = m[key] {
				key += "x"
			}
			m[key] = nil
			buf.Reset()
			fuzzReformat(&buf, m, 0)
			if idempotency.Hash(buf.Bytes()) == h {
				t.Fatalf("adding a member did not change the hash of %q", body)
			}
		}
	})
}

// TestFuzzSeedsReachAcceptance keeps the fuzz targets honest: their inline seeds must
// include bodies that pass, or the invariants of accepted values would never be checked.
func TestFuzzSeedsReachAcceptance(t *testing.T) {
	if _, err := runCreate(validCreateSeeds()[1]); err != nil {
		t.Errorf("create seed: %v", err)
	}
	if _, err := runUpdate([]byte(`{"fulfillment_option_id":"standard_shipping"}`)); err != nil {
		t.Errorf("update seed: %v", err)
	}
	if _, err := runComplete([]byte(`{"payment_data":{"token":"tok_visa","provider":"stripe"}}`)); err != nil {
		t.Errorf("complete seed: %v", err)
	}
	if _, err := runDelegate([]byte(validDelegation)); err != nil {
		t.Errorf("delegate seed: %v", err)
	}
	for _, ex := range specExamples(t, "examples.agentic_checkout.json", "complete_checkout_session_request") {
		if _, err := runComplete(ex); err != nil {
			t.Errorf("official complete example refused: %v", err)
		}
	}
}

// TestCardLeakCheck checks the checker FuzzDelegateRequest relies on: it finds the card
// number however the key is spelled, flags an error that echoes it, and does not flag a
// CVC that a message holds by chance.
func TestCardLeakCheck(t *testing.T) {
	for _, body := range [][]byte{
		[]byte(validDelegation),
		delegationWith(`"number":"4242424242424242"`, `"NUMBER":"4242424242424242"`),
		delegationWith(`"4242424242424242"`, `"\u0034242424242424242"`),
	} {
		if number, cvc := cardSecretsOf(body); number != "4242424242424242" || cvc != "223" {
			t.Errorf("cardSecretsOf read %q %q", number, cvc)
		}
		echo := acp.InvalidRequest("invalid_card", "Card 4242424242424242 is refused.", "$.payment_method.number")
		if cardLeak(body, echo) == "" {
			t.Errorf("an error echoing the card number was not flagged")
		}
	}
	byChance := acp.InvalidRequest("invalid_json", "The request body is not valid JSON (at byte 223).", "")
	expired := delegationWith(`"expires_at":"2099-10-09T07:20:50.52Z"`, `"expires_at":"2000-01-01T00:00:00Z"`)
	if leak := cardLeak(expired, byChance); leak != "" {
		t.Errorf("flagged a CVC that occurs by chance: %s", leak)
	}
}
