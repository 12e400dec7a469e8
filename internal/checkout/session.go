package checkout

import (
	"fmt"
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
// catalog look-up. Params are JSONPaths into the 2025-09-29 request body.
func (ch *Changes) Validate(creating bool) error {
	if creating && ch.Items == nil {
		return Errorf(KindInvalid, "missing", "$.items", "items is required.")
	}
	if ch.Items != nil {
		if len(ch.Items) == 0 {
			return Errorf(KindInvalid, "invalid", "$.items", "items must hold at least one item.")
		}
		if len(ch.Items) > MaxLineItems {
			return Errorf(KindInvalid, "invalid", "$.items", "items may hold at most %d items.", MaxLineItems)
		}
		seen := make(map[string]bool, len(ch.Items))
		for i, it := range ch.Items {
			if strings.TrimSpace(it.ID) == "" {
				return Errorf(KindInvalid, "invalid", fmt.Sprintf("$.items[%d].id", i), "Item id must not be empty.")
			}
			if err := maxLength(fmt.Sprintf("$.items[%d].id", i), it.ID, MaxIDLength); err != nil {
				return err
			}
			if it.Quantity < 1 || it.Quantity > MaxQuantity {
				return Errorf(KindInvalid, "invalid", fmt.Sprintf("$.items[%d].quantity", i),
					"Quantity must be a whole number from 1 to %d.", MaxQuantity)
			}
			if seen[it.ID] {
				return Errorf(KindInvalid, "invalid", fmt.Sprintf("$.items[%d].id", i),
					"Item %s appears more than once; send it once with the total quantity.", it.ID)
			}
			seen[it.ID] = true
		}
	}
	if ch.Buyer != nil {
		if err := ch.Buyer.validate("$.buyer"); err != nil {
			return err
		}
	}
	if ch.FulfillmentAddress != nil {
		if err := ch.FulfillmentAddress.normalize("$.fulfillment_address"); err != nil {
			return err
		}
	}
	if ch.FulfillmentOptionID != nil && *ch.FulfillmentOptionID == "" {
		return Errorf(KindInvalid, "invalid", "$.fulfillment_option_id", "fulfillment_option_id must not be empty.")
	}
	if ch.FulfillmentOptionID != nil {
		return maxLength("$.fulfillment_option_id", *ch.FulfillmentOptionID, MaxIDLength)
	}
	return nil
}

// maxLength refuses a value longer than limit characters, naming the field.
func maxLength(param, value string, limit int) error {
	if utf8.RuneCountInString(value) > limit {
		name := param[strings.LastIndexByte(param, '.')+1:]
		return Errorf(KindInvalid, "invalid", param, "%s is at most %d characters.", name, limit)
	}
	return nil
}

func (b *Buyer) validate(path string) error {
	b.FirstName = strings.TrimSpace(b.FirstName)
	b.LastName = strings.TrimSpace(b.LastName)
	b.Email = strings.TrimSpace(b.Email)
	switch {
	case b.FirstName == "":
		return Errorf(KindInvalid, "invalid", path+".first_name", "first_name must not be empty.")
	case b.LastName == "":
		return Errorf(KindInvalid, "invalid", path+".last_name", "last_name must not be empty.")
	}
	for _, f := range []struct {
		name, value string
		limit       int
	}{
		{"first_name", b.FirstName, MaxNameLength}, {"last_name", b.LastName, MaxNameLength},
		{"email", b.Email, MaxEmailLength}, {"phone_number", b.PhoneNumber, MaxPhoneLength},
	} {
		if err := maxLength(path+"."+f.name, f.value, f.limit); err != nil {
			return err
		}
	}
	if addr, err := mail.ParseAddress(b.Email); err != nil || addr.Address != b.Email {
		return Errorf(KindInvalid, "invalid", path+".email", "email must be a valid email address.")
	}
	return nil
}

// normalize trims the address, upper-cases the country and checks the required fields.
func (a *Address) normalize(path string) error {
	fields := []struct {
		name  string
		value *string
	}{
		{"name", &a.Name}, {"line_one", &a.LineOne}, {"city", &a.City},
		{"state", &a.State}, {"country", &a.Country}, {"postal_code", &a.PostalCode},
	}
	for _, f := range fields {
		*f.value = strings.TrimSpace(*f.value)
		if *f.value == "" {
			return Errorf(KindInvalid, "invalid", path+"."+f.name, "%s must not be empty.", f.name)
		}
	}
	a.LineTwo = strings.TrimSpace(a.LineTwo)
	for _, f := range []struct {
		name, value string
		limit       int
	}{
		{"name", a.Name, MaxNameLength}, {"line_one", a.LineOne, MaxAddressLine}, {"line_two", a.LineTwo, MaxAddressLine},
		{"city", a.City, MaxAddressLine}, {"state", a.State, MaxAddressLine}, {"postal_code", a.PostalCode, MaxPostalCodeLength},
	} {
		if err := maxLength(path+"."+f.name, f.value, f.limit); err != nil {
			return err
		}
	}
	a.Country = strings.ToUpper(a.Country)
	if len(a.Country) != 2 || a.Country[0] < 'A' || a.Country[0] > 'Z' || a.Country[1] < 'A' || a.Country[1] > 'Z' {
		return Errorf(KindInvalid, "invalid", path+".country", "country must be an ISO 3166-1 alpha-2 code such as US.")
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
				return Errorf(KindInvalid, "invalid_item_id", fmt.Sprintf("$.items[%d].id", i), "Unknown item id %q.", it.ID)
			}
			if currency == "" {
				currency = v.Currency
			} else if v.Currency != currency {
				return Errorf(KindInvalid, "currency_mismatch", fmt.Sprintf("$.items[%d].id", i),
					"Item %s is priced in %s, the other items in %s; one session has one currency.", it.ID, v.Currency, currency)
			}
			id, ok := existing[it.ID]
			if !ok {
				id = NewID("li_")
			}
			lines[i] = Line{ID: id, VariantID: it.ID, Quantity: it.Quantity, UnitAmount: v.PriceAmount}
		}
		s.Lines = lines
		s.Currency = currency
	}
	if ch.Buyer != nil {
		b := *ch.Buyer
		s.Buyer = &b
	}
	if ch.FulfillmentAddress != nil {
		a := *ch.FulfillmentAddress
		s.FulfillmentAddress = &a
	}
	if ch.FulfillmentOptionID != nil {
		if !IsOffered(s, c, *ch.FulfillmentOptionID) {
			return Errorf(KindInvalid, "invalid_fulfillment_option", "$.fulfillment_option_id",
				"Fulfillment option %q is not offered for this session.", *ch.FulfillmentOptionID)
		}
		s.FulfillmentOptionID = *ch.FulfillmentOptionID
	}
	// A changed session is a new attempt: the last decline no longer applies.
	s.PaymentError = ""
	s.touch(now, ttl)
	return nil
}

// Validate checks the shape of a completion request.
func (c *Completion) Validate() error {
	if strings.TrimSpace(c.Token) == "" {
		return Errorf(KindInvalid, "missing", "$.payment_data.token", "payment_data.token is required.")
	}
	if err := maxLength("$.payment_data.token", c.Token, MaxIDLength); err != nil {
		return err
	}
	if c.Provider != "stripe" {
		return Errorf(KindInvalid, "unsupported_payment_provider", "$.payment_data.provider", "payment_data.provider must be stripe.")
	}
	if c.BillingAddress != nil {
		if err := c.BillingAddress.normalize("$.payment_data.billing_address"); err != nil {
			return err
		}
	}
	if c.Buyer != nil {
		if err := c.Buyer.validate("$.buyer"); err != nil {
			return err
		}
	}
	return nil
}

// CheckCompletable refuses to take payment unless the session is open and its quote is
// ready for payment.
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
		return Errorf(KindConflict, "not_ready_for_payment", "", "%s", msg)
	}
	return nil
}

// Complete marks an open session completed.
func (s *Session) Complete(now time.Time) {
	s.State = StateCompleted
	s.PaymentError = ""
	s.UpdatedAt = now
}

// Cancel moves an open session to canceled, for reason.
func (s *Session) Cancel(reason CancelReason, now time.Time) error {
	if err := s.ensureOpen("cancel"); err != nil {
		return err
	}
	s.State = StateCanceled
	s.CancelReason = reason
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
		return Errorf(KindNotAllowed, "checkout_session_completed", "", "Cannot %s: the checkout session is already completed.", action)
	case StateCanceled:
		if s.CancelReason == CanceledExpired {
			return Errorf(KindNotAllowed, "checkout_session_expired", "", "Cannot %s: the checkout session expired.", action)
		}
		return Errorf(KindNotAllowed, "checkout_session_canceled", "", "Cannot %s: the checkout session is canceled.", action)
	}
	return nil
}

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
