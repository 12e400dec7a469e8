package checkout

import (
	"fmt"
	"time"
)

// Catalog is the part of the merchant's configuration that prices one session.
type Catalog struct {
	// Variants holds at least every variant the session's lines name.
	Variants map[string]Variant
	// Options are the active fulfillment options in display order.
	Options []FulfillmentOption
	// TaxRateBps is the rate for the session's fulfillment address in basis points; it is
	// only applied once the address is known.
	TaxRateBps int
	// Discounts are the definitions the session's codes name (whatever their state) and
	// the enabled automatic discounts, with their redemption counts.
	Discounts []Discount
}

// PricedLine is a line with its amounts, all in minor units of the session currency,
// and the catalog title of its variant ("" when it is no longer sold). Discount is what
// item-level discounts take off the line, Subtotal = BaseAmount - Discount;
// OrderDiscount is the line's share of the order-level discounts, taken off before tax:
// Tax is computed on Subtotal - OrderDiscount, and Total = Subtotal - OrderDiscount + Tax.
type PricedLine struct {
	Line
	Title         string
	BaseAmount    int64
	Discount      int64
	Subtotal      int64
	OrderDiscount int64
	Tax           int64
	Total         int64
}

// OfferedOption is a fulfillment option priced for one session.
type OfferedOption struct {
	FulfillmentOption
	Subtotal         int64
	Tax              int64
	Total            int64
	EarliestDelivery *time.Time
	LatestDelivery   *time.Time
}

// Totals are the session-level sums. Total = Subtotal - Discount + Fulfillment + Tax,
// where ItemsDiscount (taken off the lines, already out of Subtotal) and Discount (the
// order-level and fulfillment discounts) are what the applied discounts sum to.
type Totals struct {
	ItemsBaseAmount int64
	ItemsDiscount   int64
	Subtotal        int64
	Discount        int64
	Fulfillment     int64
	// FulfillmentSelected says whether Fulfillment is a real quote or nothing was chosen yet.
	FulfillmentSelected bool
	Tax                 int64
	Total               int64
}

// MessageType is info, warning or error.
type MessageType string

// The message types of ACP. A warning (a rejected discount code) does not keep the
// session from payment; versions without warnings show it as info.
const (
	MessageInfo    MessageType = "info"
	MessageWarning MessageType = "warning"
	MessageError   MessageType = "error"
)

// MessageCode is the ACP MessageError code.
type MessageCode string

// The ACP 2025-09-29 message codes this server emits.
const (
	CodeMissing    MessageCode = "missing"
	CodeInvalid    MessageCode = "invalid"
	CodeOutOfStock MessageCode = "out_of_stock"
	// CodePaymentDeclined reports the last declined payment. It does not block payment:
	// the buyer may try again with another card.
	CodePaymentDeclined MessageCode = "payment_declined"
)

// Message tells the agent what stands between the session and payment (errors) or
// something worth showing the buyer (info). Field names what it is about, if anything;
// each API version renders it as its own JSONPath.
type Message struct {
	Type    MessageType
	Code    MessageCode
	Field   Field
	Content string
}

// Quote is everything derived from a session and the catalog: the status, the priced
// lines, the totals, the options on offer and the messages.
type Quote struct {
	Status    Status
	Lines     []PricedLine
	Totals    Totals
	Options   []OfferedOption
	Messages  []Message
	Discounts DiscountQuote
}

// Price derives the quote of s from the catalog. It is pure: the same session, catalog
// and now always give the same quote. now is the moment discounts' start and end are
// judged at; delivery windows are quoted from the session's last change (now only for
// a session that has never been stored).
//
// Discounts come off before tax (evaluateDiscounts). Tax is computed per line on what
// the buyer pays for it (subtotal less its share of order-level discounts), rounded
// half up to the minor unit: tax = (amount * rate_bps + 5000) / 10000. A taxable
// fulfillment option is taxed the same way on its cost less its discount. No tax is
// charged until the fulfillment address is known.
func Price(s *Session, c Catalog, now time.Time) Quote {
	var q Quote
	taxRate := 0
	if s.FulfillmentAddress != nil {
		taxRate = c.TaxRateBps
	}

	needsShipping := false
	q.Lines = make([]PricedLine, len(s.Lines))
	for i, l := range s.Lines {
		v, known := c.Variants[l.VariantID]
		if !known || v.Fulfillment != FulfillmentDigital {
			needsShipping = true
		}
		base := l.UnitAmount * int64(l.Quantity)
		q.Lines[i] = PricedLine{Line: l, Title: v.Title, BaseAmount: base}

		line := At(FieldLines).Index(i)
		switch {
		case !known:
			q.Messages = append(q.Messages, Message{Type: MessageError, Code: CodeInvalid, Field: line,
				Content: fmt.Sprintf("Item %s is no longer sold.", l.VariantID)})
		case !v.Available:
			q.Messages = append(q.Messages, Message{Type: MessageError, Code: CodeOutOfStock, Field: line,
				Content: fmt.Sprintf("%s is not available.", v.Title)})
		case v.Stock != nil && *v.Stock < l.Quantity:
			q.Messages = append(q.Messages, Message{Type: MessageError, Code: CodeOutOfStock, Field: line,
				Content: stockMessage(v.Title, *v.Stock)})
		}
	}

	wanted := FulfillmentDigital
	if needsShipping {
		wanted = FulfillmentShipping
	}
	// Delivery windows are quoted from the session's last change, so every read of an
	// unchanged session (and every replay, on any instance) shows the same quote.
	quotedAt := s.UpdatedAt
	if quotedAt.IsZero() {
		quotedAt = now
	}
	for _, o := range c.Options {
		if o.Type != wanted || o.Currency != s.Currency {
			continue
		}
		q.Options = append(q.Options, offer(o, taxRate, quotedAt))
	}

	// A missing buyer does not keep the session from ready_for_payment: the complete
	// request may carry the buyer (as in the official 2025-09-29 example), and
	// CheckCompletable refuses a completion that leaves the session without one.
	if needsShipping && s.FulfillmentAddress == nil {
		q.Messages = append(q.Messages, Message{Type: MessageError, Code: CodeMissing, Field: At(FieldFulfillmentAddress),
			Content: "A shipping address is required."})
	}
	selected, selectedOK := findOffered(q.Options, s.FulfillmentOptionID)
	var fulfillmentOff int64
	q.Discounts, fulfillmentOff = evaluateDiscounts(s, c, now, q.Lines, selected.Subtotal, selectedOK)
	for i := range q.Lines {
		pl := &q.Lines[i]
		pl.Subtotal = pl.BaseAmount - pl.Discount
		pl.Tax = applyRate(pl.Subtotal-pl.OrderDiscount, taxRate)
		pl.Total = pl.Subtotal - pl.OrderDiscount + pl.Tax
		q.Totals.ItemsBaseAmount += pl.BaseAmount
		q.Totals.ItemsDiscount += pl.Discount
		q.Totals.Subtotal += pl.Subtotal
		q.Totals.Discount += pl.OrderDiscount
		q.Totals.Tax += pl.Tax
		q.Totals.Total += pl.Total
	}
	switch {
	case selectedOK:
		q.Totals.Fulfillment = selected.Subtotal
		q.Totals.FulfillmentSelected = true
		q.Totals.Discount += fulfillmentOff
		tax := int64(0)
		if selected.Taxable {
			tax = applyRate(selected.Subtotal-fulfillmentOff, taxRate)
		}
		q.Totals.Tax += tax
		q.Totals.Total += selected.Subtotal - fulfillmentOff + tax
	case len(q.Options) == 0:
		q.Messages = append(q.Messages, Message{Type: MessageError, Code: CodeInvalid, Field: At(FieldFulfillmentOption),
			Content: "No fulfillment option can deliver this cart."})
	case s.FulfillmentOptionID == "":
		q.Messages = append(q.Messages, Message{Type: MessageError, Code: CodeMissing, Field: At(FieldFulfillmentOption),
			Content: "Choose a fulfillment option."})
	default:
		q.Messages = append(q.Messages, Message{Type: MessageError, Code: CodeInvalid, Field: At(FieldFulfillmentOption),
			Content: "The chosen fulfillment option cannot deliver this cart; choose another."})
	}

	if s.PaymentError != "" {
		q.Messages = append(q.Messages, Message{Type: MessageError, Code: CodePaymentDeclined, Field: At(FieldPayment),
			Content: s.PaymentError})
	}
	// A rejected code is a warning (DISC-RFC §7): the buyer expects a discount they
	// will not get, but the session can still be paid.
	for _, r := range q.Discounts.Rejected {
		q.Messages = append(q.Messages, Message{Type: MessageWarning, Code: MessageCode(r.Reason),
			Field: At(FieldDiscountCodes).Index(r.Index), Content: r.Message})
	}

	q.Status = deriveStatus(s, q.Messages)
	if q.Status == StatusReadyForPayment && s.Authentication != nil {
		var m *Message
		if q.Status, m = s.authenticationStatus(s.Authentication); m != nil {
			q.Messages = append(q.Messages, *m)
		}
	}
	if s.State != StateOpen {
		// What a finished session lacks no longer matters to anyone.
		q.Messages = nil
	}
	switch {
	case s.State == StateCanceled && s.CancelReason == CanceledExpired:
		q.Messages = append(q.Messages, Message{Type: MessageInfo,
			Content: "Checkout session expired: it was not completed in time. Start a new checkout."})
	case s.State == StateCanceled:
		q.Messages = append(q.Messages, Message{Type: MessageInfo, Content: "Checkout session has been canceled."})
	}
	return q
}

// IsOffered reports whether the option id can deliver the session as it stands.
func IsOffered(s *Session, c Catalog, optionID string) bool {
	_, ok := findOffered(Price(s, c, time.Time{}).Options, optionID)
	return ok
}

func deriveStatus(s *Session, msgs []Message) Status {
	switch {
	case s.State == StateCompleted:
		return StatusCompleted
	case s.State == StateCompleteInProgress:
		return StatusCompleteInProgress
	case s.State == StateCanceled && s.CancelReason == CanceledExpired:
		return StatusExpired
	case s.State == StateCanceled:
		return StatusCanceled
	}
	for _, m := range msgs {
		if m.Type == MessageError && m.Code != CodePaymentDeclined {
			return StatusNotReadyForPayment
		}
	}
	return StatusReadyForPayment
}

func offer(o FulfillmentOption, taxRate int, now time.Time) OfferedOption {
	off := OfferedOption{FulfillmentOption: o, Subtotal: o.Amount}
	if o.Taxable {
		off.Tax = applyRate(o.Amount, taxRate)
	}
	off.Total = off.Subtotal + off.Tax
	day := now.UTC().Truncate(time.Second)
	if o.MinDeliveryDays != nil {
		t := day.AddDate(0, 0, *o.MinDeliveryDays)
		off.EarliestDelivery = &t
	}
	if o.MaxDeliveryDays != nil {
		t := day.AddDate(0, 0, *o.MaxDeliveryDays)
		off.LatestDelivery = &t
	}
	return off
}

func findOffered(opts []OfferedOption, id string) (OfferedOption, bool) {
	if id == "" {
		return OfferedOption{}, false
	}
	for _, o := range opts {
		if o.ID == id {
			return o, true
		}
	}
	return OfferedOption{}, false
}

// applyRate returns amount * bps / 10000 rounded half up. Amounts are never negative.
// The amount is split at 10000 so that the product cannot overflow int64 for any line
// the limits allow (price <= 1e11, quantity <= 1e4).
func applyRate(amount int64, bps int) int64 {
	q, r := amount/10000, amount%10000
	return q*int64(bps) + (r*int64(bps)+5000)/10000
}

func stockMessage(title string, left int) string {
	if left == 0 {
		return fmt.Sprintf("%s is out of stock.", title)
	}
	return fmt.Sprintf("Only %d of %s left in stock.", left, title)
}
