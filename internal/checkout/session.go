package checkout

import (
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// NewID returns prefix followed by 32 random hex digits (122 bits of randomness), so
// that ids cannot be guessed.
func NewID(prefix string) string {
	return prefix + strings.ReplaceAll(uuid.NewString(), "-", "")
}

// Validate checks the shape of a create (creating=true) or update request, before any
// catalog look-up. Errors name domain fields; each API version renders them as paths
// into its own request body.
func (ch *Changes) Validate(creating bool) error {
	items := At(FieldItems)
	if creating && ch.Items == nil {
		return Errorf(KindInvalid, "missing", items, "items is required.")
	}
	if ch.Items != nil {
		if len(ch.Items) == 0 {
			return Errorf(KindInvalid, "invalid", items, "items must hold at least one item.")
		}
		if len(ch.Items) > MaxLineItems {
			return Errorf(KindInvalid, "invalid", items, "items may hold at most %d items.", MaxLineItems)
		}
		seen := make(map[string]bool, len(ch.Items))
		for i, it := range ch.Items {
			id := items.Index(i).Child(FieldID)
			if strings.TrimSpace(it.ID) == "" {
				return Errorf(KindInvalid, "invalid", id, "Item id must not be empty.")
			}
			if err := maxLength(id, "id", it.ID, MaxIDLength); err != nil {
				return err
			}
			if it.Quantity < 1 || it.Quantity > MaxQuantity {
				return Errorf(KindInvalid, "invalid", items.Index(i).Child(FieldQuantity),
					"Quantity must be a whole number from 1 to %d.", MaxQuantity)
			}
			if seen[it.ID] {
				return Errorf(KindInvalid, "invalid", id,
					"Item %s appears more than once; send it once with the total quantity.", it.ID)
			}
			seen[it.ID] = true
		}
	}
	if ch.Buyer != nil {
		if err := ch.Buyer.validate(At(FieldBuyer)); err != nil {
			return err
		}
	}
	if ch.FulfillmentAddress != nil {
		if err := ch.FulfillmentAddress.normalize(At(FieldFulfillmentAddress)); err != nil {
			return err
		}
	}
	if ch.FulfillmentContact != nil {
		if err := ch.FulfillmentContact.validate(At(FieldFulfillmentContact)); err != nil {
			return err
		}
	}
	if ch.Currency != "" {
		ch.Currency = strings.ToLower(strings.TrimSpace(ch.Currency))
		if !isCurrencyCode(ch.Currency) {
			return Errorf(KindInvalid, "invalid", At(FieldCurrency), "currency must be an ISO 4217 code such as usd.")
		}
	}
	for _, p := range []struct {
		name  FieldName
		label string
		value *string
	}{{FieldLocale, "locale", ch.Locale}, {FieldTimezone, "timezone", ch.Timezone}} {
		if p.value != nil {
			if err := maxLength(At(p.name), p.label, *p.value, MaxTagLength); err != nil {
				return err
			}
		}
	}
	if err := checkOrderNotes(ch.OrderNotes); err != nil {
		return err
	}
	if err := ch.Attribution.check(); err != nil {
		return err
	}
	if ch.DiscountCodes != nil {
		if err := validateCodes(*ch.DiscountCodes); err != nil {
			return err
		}
	}
	option := At(FieldFulfillmentOption)
	if ch.FulfillmentOptionID != nil && *ch.FulfillmentOptionID == "" {
		return Errorf(KindInvalid, "invalid", option, "fulfillment_option_id must not be empty.")
	}
	if ch.FulfillmentOptionID != nil {
		return maxLength(option, "fulfillment_option_id", *ch.FulfillmentOptionID, MaxIDLength)
	}
	return nil
}

// MaxTagLength bounds a locale or time zone name (BCP 47 tags and IANA names are far
// shorter).
const MaxTagLength = 64

// isCurrencyCode reports whether c looks like a lower-case ISO 4217 code.
func isCurrencyCode(c string) bool {
	if len(c) != 3 {
		return false
	}
	for _, r := range c {
		if r < 'a' || r > 'z' {
			return false
		}
	}
	return true
}

// maxLength refuses a value longer than limit characters, naming the field at and, in
// the message, its label (the messages still use the 2025-09-29 names; see
// docs/decisions.md).
func maxLength(at Field, label, value string, limit int) error {
	if utf8.RuneCountInString(value) > limit {
		return Errorf(KindInvalid, "invalid", at, "%s is at most %d characters.", label, limit)
	}
	return nil
}

// textPart is a part of a buyer or address: its field, its label in messages, its value
// and its length limit in characters.
type textPart struct {
	name  FieldName
	label string
	value *string
	limit int
}

func (b *Buyer) validate(at Field) error {
	b.FirstName = strings.TrimSpace(b.FirstName)
	b.LastName = strings.TrimSpace(b.LastName)
	b.FullName = strings.TrimSpace(b.FullName)
	b.Email = strings.TrimSpace(b.Email)
	for _, p := range []textPart{
		{FieldFirstName, "first_name", &b.FirstName, MaxNameLength}, {FieldLastName, "last_name", &b.LastName, MaxNameLength},
		{FieldFullName, "full_name", &b.FullName, MaxNameLength},
		{FieldEmail, "email", &b.Email, MaxEmailLength}, {FieldPhone, "phone_number", &b.PhoneNumber, MaxPhoneLength},
	} {
		if err := maxLength(at.Child(p.name), p.label, *p.value, p.limit); err != nil {
			return err
		}
	}
	return validEmail(at.Child(FieldEmail), b.Email)
}

// validEmail refuses what is not one plain email address.
func validEmail(at Field, email string) error {
	if addr, err := mail.ParseAddress(email); err != nil || addr.Address != email {
		return Errorf(KindInvalid, "invalid", at, "email must be a valid email address.")
	}
	return nil
}

// validate trims the contact and checks its lengths and email address.
func (c *FulfillmentContact) validate(at Field) error {
	c.Name = strings.TrimSpace(c.Name)
	c.PhoneNumber = strings.TrimSpace(c.PhoneNumber)
	c.Email = strings.TrimSpace(c.Email)
	for _, p := range []textPart{
		{FieldFullName, "name", &c.Name, MaxNameLength}, {FieldPhone, "phone_number", &c.PhoneNumber, MaxPhoneLength},
		{FieldEmail, "email", &c.Email, MaxEmailLength},
	} {
		if err := maxLength(at.Child(p.name), p.label, *p.value, p.limit); err != nil {
			return err
		}
	}
	if c.Email == "" {
		return nil
	}
	return validEmail(at.Child(FieldEmail), c.Email)
}

// normalize trims the address, upper-cases the country and checks the required fields.
func (a *Address) normalize(at Field) error {
	name := textPart{FieldFullName, "name", &a.Name, MaxNameLength}
	lineOne := textPart{FieldLineOne, "line_one", &a.LineOne, MaxAddressLine}
	city := textPart{FieldCity, "city", &a.City, MaxAddressLine}
	state := textPart{FieldState, "state", &a.State, MaxAddressLine}
	country := textPart{FieldCountry, "country", &a.Country, 0}
	postalCode := textPart{FieldPostalCode, "postal_code", &a.PostalCode, MaxPostalCodeLength}
	for _, p := range []textPart{name, lineOne, city, state, country, postalCode} {
		*p.value = strings.TrimSpace(*p.value)
		if *p.value == "" {
			return Errorf(KindInvalid, "invalid", at.Child(p.name), "%s must not be empty.", p.label)
		}
	}
	a.LineTwo = strings.TrimSpace(a.LineTwo)
	a.Company = strings.TrimSpace(a.Company)
	lineTwo := textPart{FieldLineTwo, "line_two", &a.LineTwo, MaxAddressLine}
	company := textPart{FieldCompany, "company", &a.Company, MaxNameLength}
	for _, p := range []textPart{name, company, lineOne, lineTwo, city, state, postalCode} {
		if err := maxLength(at.Child(p.name), p.label, *p.value, p.limit); err != nil {
			return err
		}
	}
	a.Country = strings.ToUpper(a.Country)
	if len(a.Country) != 2 || a.Country[0] < 'A' || a.Country[0] > 'Z' || a.Country[1] < 'A' || a.Country[1] > 'Z' {
		return Errorf(KindInvalid, "invalid", at.Child(FieldCountry), "country must be an ISO 3166-1 alpha-2 code such as US.")
	}
	return nil
}

// TaxRegion is the (country, region) pair that selects the tax rate of an address.
func (a *Address) TaxRegion() (country, region string) {
	return a.Country, strings.ToUpper(a.State)
}

// Apply applies validated changes to an open session. c.Variants must hold every item
// id in ch.Items. Items replace the whole list; a variant already in the session keeps
// its line id. Unit prices are quoted from the catalog at this moment.
func (s *Session) Apply(ch Changes, c Catalog, now time.Time, ttl time.Duration) error {
	if err := s.ensureOpen("update"); err != nil {
		return err
	}
	if ch.Items != nil {
		existing := make(map[string]string, len(s.Lines))
		for _, l := range s.Lines {
			existing[l.VariantID] = l.ID
		}
		lines := make([]Line, len(ch.Items))
		currency := ""
		for i, it := range ch.Items {
			v, ok := c.Variants[it.ID]
			if !ok {
				return Errorf(KindInvalid, "invalid_item_id", At(FieldItems).Index(i).Child(FieldID), "Unknown item id %q.", it.ID)
			}
			if currency == "" {
				currency = v.Currency
			} else if v.Currency != currency {
				return Errorf(KindInvalid, "currency_mismatch", At(FieldItems).Index(i).Child(FieldID),
					"Item %s is priced in %s, the other items in %s; one session has one currency.", it.ID, v.Currency, currency)
			}
			id, ok := existing[it.ID]
			if !ok {
				id = NewID("li_")
			}
			lines[i] = Line{ID: id, VariantID: it.ID, Quantity: it.Quantity, UnitAmount: v.PriceAmount}
		}
		if ch.Currency != "" && currency != ch.Currency {
			return Errorf(KindInvalid, "currency_mismatch", At(FieldCurrency),
				"The items are priced in %s, not %s.", currency, ch.Currency)
		}
		s.Lines = lines
		s.Currency = currency
	}
	if ch.Clear.Buyer {
		s.Buyer = nil
	}
	if ch.Clear.FulfillmentDetails {
		s.FulfillmentAddress, s.FulfillmentContact = nil, nil
	}
	if ch.Clear.FulfillmentOption {
		s.FulfillmentOptionID = ""
	}
	if ch.Clear.OrderNotes {
		s.OrderNotes = ""
	}
	if ch.OrderNotes != nil {
		s.OrderNotes = *ch.OrderNotes
	}
	if ch.Buyer != nil {
		b := *ch.Buyer
		s.Buyer = &b
	}
	if ch.FulfillmentAddress != nil {
		a := *ch.FulfillmentAddress
		s.FulfillmentAddress = &a
	}
	if ch.FulfillmentContact != nil {
		s.FulfillmentContact = nil
		if c := *ch.FulfillmentContact; !c.IsZero() {
			s.FulfillmentContact = &c
		}
	}
	if ch.Locale != nil {
		s.Locale = *ch.Locale
	}
	if ch.Timezone != nil {
		s.Timezone = *ch.Timezone
	}
	if ch.Metadata != nil {
		s.Metadata = ch.Metadata
	}
	if ch.AgentInterventions != nil {
		s.AgentInterventions = ch.AgentInterventions
	}
	if ch.DiscountExtension {
		s.DiscountsActive = true
	}
	// Codes from an agent that did not declare the extension are not taken: it could
	// not read what became of them (docs/decisions.md).
	if ch.DiscountCodes != nil && s.DiscountsActive {
		s.DiscountCodes = make([]string, len(*ch.DiscountCodes))
		for i, c := range *ch.DiscountCodes {
			s.DiscountCodes[i] = strings.TrimSpace(c)
		}
	}
	if ch.FulfillmentOptionID != nil {
		if !IsOffered(s, c, *ch.FulfillmentOptionID) {
			return Errorf(KindInvalid, "invalid_fulfillment_option", At(FieldFulfillmentOption),
				"Fulfillment option %q is not offered for this session.", *ch.FulfillmentOptionID)
		}
		s.FulfillmentOptionID = *ch.FulfillmentOptionID
	}
	s.preselectFulfillment(c)
	// A changed session is a new attempt: the last decline no longer applies.
	s.PaymentError = ""
	s.touch(now, ttl)
	return nil
}

// preselectFulfillment keeps the selected fulfillment option while it can deliver the
// session, and otherwise selects the first option that can (in the order the session
// lists them), or none when no option can. The official 2025-09-29 examples and the
// agents built on them expect an option selected from the start; the agent may choose
// another with fulfillment_option_id (see docs/decisions.md).
func (s *Session) preselectFulfillment(c Catalog) {
	opts := Price(s, c, time.Time{}).Options
	if _, ok := findOffered(opts, s.FulfillmentOptionID); ok {
		return
	}
	s.FulfillmentOptionID = ""
	if len(opts) > 0 {
		s.FulfillmentOptionID = opts[0].ID
	}
}

// Validate checks the shape of a completion request.
func (c *Completion) Validate() error {
	payment := At(FieldPayment)
	if strings.TrimSpace(c.Token) == "" {
		return Errorf(KindInvalid, "missing", payment.Child(FieldToken), "payment_data.token is required.")
	}
	if err := maxLength(payment.Child(FieldToken), "token", c.Token, MaxIDLength); err != nil {
		return err
	}
	if c.HandlerID == "" && c.Provider != "stripe" {
		return Errorf(KindInvalid, "unsupported_payment_provider", payment.Child(FieldProvider), "payment_data.provider must be stripe.")
	}
	if c.BillingAddress != nil {
		if err := c.BillingAddress.normalize(payment.Child(FieldBillingAddress)); err != nil {
			return err
		}
	}
	if c.Buyer != nil {
		if err := c.Buyer.validate(At(FieldBuyer)); err != nil {
			return err
		}
	}
	if err := checkOrderNotes(c.OrderNotes); err != nil {
		return err
	}
	if err := checkConsents(c.Consents); err != nil {
		return err
	}
	return c.Attribution.check()
}

// CheckCompletable refuses to take payment unless the session is open, its quote is
// ready for payment and it has a buyer (the complete request may have brought it).
func (s *Session) CheckCompletable(q Quote) error {
	if err := s.ensureOpen("complete"); err != nil {
		return err
	}
	if q.Status != StatusReadyForPayment {
		msg := "The checkout session is not ready for payment."
		for _, m := range q.Messages {
			if m.Type == MessageError && m.Code != CodePaymentDeclined {
				msg += " " + m.Content
				break
			}
		}
		return Errorf(KindConflict, "not_ready_for_payment", Field{}, "%s", msg)
	}
	if s.Buyer == nil {
		// A session is ready for payment without a buyer (as in the official examples);
		// the buyer comes with the complete request at the latest.
		return Errorf(KindInvalid, "missing", At(FieldBuyer),
			"buyer is required: send the buyer's details (first name, last name, email) with the complete request.")
	}
	return nil
}

// Complete marks an open session completed.
func (s *Session) Complete(now time.Time) {
	s.State = StateCompleted
	s.PaymentError = ""
	s.UpdatedAt = now
}

// Cancel moves an open session to canceled, for reason, keeping the agent's trace of
// why (nil: none).
func (s *Session) Cancel(reason CancelReason, trace *IntentTrace, now time.Time) error {
	if err := s.ensureOpen("cancel"); err != nil {
		return err
	}
	s.State = StateCanceled
	s.CancelReason = reason
	s.CancelTrace = trace
	s.UpdatedAt = now
	return nil
}

// Expired reports whether an open session outlived its TTL at now.
func (s *Session) Expired(now time.Time) bool {
	return s.State == StateOpen && !s.ExpiresAt.IsZero() && !now.Before(s.ExpiresAt)
}

func (s *Session) touch(now time.Time, ttl time.Duration) {
	if s.CreatedAt.IsZero() {
		s.CreatedAt = now
	}
	s.UpdatedAt = now
	s.ExpiresAt = now.Add(ttl)
}

// ensureOpen refuses actions on a completed or canceled session with KindNotAllowed.
func (s *Session) ensureOpen(action string) error {
	switch s.State {
	case StateCompleted:
		return Errorf(KindNotAllowed, "checkout_session_completed", Field{}, "Cannot %s: the checkout session is already completed.", action)
	case StateCompleteInProgress:
		return ErrCompleteInProgress(action)
	case StateCanceled:
		if s.CancelReason == CanceledExpired {
			return Errorf(KindNotAllowed, "checkout_session_expired", Field{}, "Cannot %s: the checkout session expired.", action)
		}
		return Errorf(KindNotAllowed, "checkout_session_canceled", Field{}, "Cannot %s: the checkout session is canceled.", action)
	}
	return nil
}

// CodeCompleteInProgress refuses a change of a session whose payment is with the
// payment service provider.
const CodeCompleteInProgress = "checkout_session_complete_in_progress"

// ErrCompleteInProgress refuses action on a session whose completion is waiting for the
// payment service provider: a conflict that ends by itself, so retrying later may work.
func ErrCompleteInProgress(action string) *Error {
	return Errorf(KindConflict, CodeCompleteInProgress, Field{},
		"Cannot %s: the checkout session's payment is being processed; retry once it is completed or back to ready_for_payment.", action)
}

// CodePaymentPending refuses, for now, a completion whose charge the payment service
// provider has not confirmed nor refused (a timeout, an outage).
const CodePaymentPending = "payment_pending"

// ErrPaymentPending is the answer to a completion whose charge is in doubt: the
// session stays complete_in_progress, and a retry with the same Idempotency-Key asks
// the payment service provider again with the same key, never charging twice.
var ErrPaymentPending = Errorf(KindUnavailable, CodePaymentPending, Field{},
	"The payment service provider has not confirmed the charge yet. Nothing more will be charged: "+
		"retry with the same Idempotency-Key to finish the checkout.")

// VariantIDs lists the variant ids a session with these changes applied can refer to:
// the current lines and the requested items.
func VariantIDs(s *Session, ch Changes) []string {
	ids := make([]string, 0, len(s.Lines)+len(ch.Items))
	for _, l := range s.Lines {
		ids = append(ids, l.VariantID)
	}
	for _, it := range ch.Items {
		ids = append(ids, it.ID)
	}
	return ids
}
