// Package checkout is the domain of the Agentic Checkout: sessions, their line items,
// pricing, the derived status and the domain errors. It knows nothing of HTTP, JSON wire
// versions or SQL; the httpapi and postgres packages adapt it.
package checkout

import (
	"time"
)

// State is the stored lifecycle of a session. The ACP status shown to agents is derived
// from it together with the catalog (see Quote.Status).
type State string

// The lifecycle states a session can be in.
const (
	StateOpen State = "open"
	// StateCompleteInProgress is a session whose payment is with the payment service
	// provider: its stock is taken and its order is being written (or the PSP's answer
	// is awaited). It cannot be updated, canceled or expired until the completion ends.
	StateCompleteInProgress State = "complete_in_progress"
	StateCompleted          State = "completed"
	StateCanceled           State = "canceled"
)

// Status is the ACP checkout status reported to agents.
type Status string

// The ACP statuses this server reports.
const (
	StatusNotReadyForPayment Status = "not_ready_for_payment"
	StatusReadyForPayment    Status = "ready_for_payment"
	StatusCompleted          Status = "completed"
	StatusCanceled           Status = "canceled"
	// StatusExpired is a session canceled because it outlived its TTL. Versions without
	// the status (2025-09-29) show it as canceled.
	StatusExpired Status = "expired"
	// StatusAuthenticationRequired is an open session whose cart is ready and whose
	// payment needs 3-D Secure first (Session.Authentication). Versions without the
	// status (2025-09-29) show it as not_ready_for_payment.
	StatusAuthenticationRequired Status = "authentication_required"
	// StatusCompleteInProgress is a session whose completion is waiting for the payment
	// service provider (StateCompleteInProgress). Each version names it its own way.
	StatusCompleteInProgress Status = "complete_in_progress"
)

// CancelReason says why a session was canceled.
type CancelReason string

// The reasons a session is canceled.
const (
	CanceledByAgent CancelReason = "agent"
	CanceledExpired CancelReason = "expired"
)

// Limits on what a session may hold; a request beyond them is refused as invalid.
const (
	MaxQuantity  = 10_000
	MaxLineItems = 100
)

// Length limits of the text a session stores, in characters. They are generous for
// real data (the longest personal names and street lines in use, RFC 5321's 320 for an
// email address) and keep one session from holding megabytes: a 1,000,000-character
// first_name used to be accepted and stored.
const (
	MaxNameLength       = 256 // buyer first and last name, address name
	MaxEmailLength      = 320
	MaxPhoneLength      = 64
	MaxAddressLine      = 256 // line_one, line_two, city, state
	MaxPostalCodeLength = 32
	MaxIDLength         = 256 // item ids, fulfillment option ids, payment tokens
)

// FulfillmentType says how a variant or an option reaches the buyer.
type FulfillmentType string

// The fulfillment types ACP 2025-09-29 knows.
const (
	FulfillmentShipping FulfillmentType = "shipping"
	FulfillmentDigital  FulfillmentType = "digital"
)

// Buyer is the person paying. Only the email address is always known: 2025-09-29
// requires the names too, 2026-04-17 only the email (and may give a full name instead).
type Buyer struct {
	FirstName   string `json:"first_name"`
	LastName    string `json:"last_name"`
	FullName    string `json:"full_name,omitempty"`
	Email       string `json:"email"`
	PhoneNumber string `json:"phone_number,omitempty"`
}

// Address is a postal address. Country is ISO 3166-1 alpha-2; State is the region used
// for tax (e.g. "CA").
type Address struct {
	Name       string `json:"name"`
	Company    string `json:"company,omitempty"`
	LineOne    string `json:"line_one"`
	LineTwo    string `json:"line_two,omitempty"`
	City       string `json:"city"`
	State      string `json:"state"`
	Country    string `json:"country"`
	PostalCode string `json:"postal_code"`
}

// FulfillmentContact is who receives the order, when the agent names them apart from
// the address (2026-04-17's fulfillment_details); every part is optional.
type FulfillmentContact struct {
	Name        string `json:"name,omitempty"`
	PhoneNumber string `json:"phone_number,omitempty"`
	Email       string `json:"email,omitempty"`
}

// IsZero reports whether c names no one.
func (c FulfillmentContact) IsZero() bool { return c == FulfillmentContact{} }

// Session is the stored state of a checkout session: what the buyer asked for, not what
// it costs. Prices, totals, options and status come from Price.
type Session struct {
	ID string
	// Owner is the identity of the agent platform that created the session ("" on a
	// server without API keys); no other may see or change it.
	Owner              string
	State              State
	Currency           string
	Buyer              *Buyer
	FulfillmentAddress *Address
	// FulfillmentContact is the recipient named apart from the address (nil: none).
	FulfillmentContact  *FulfillmentContact
	FulfillmentOptionID string
	Lines               []Line
	// Locale (BCP 47) and Timezone (IANA) are the buyer's, as the agent gave them ("":
	// not given); Metadata is the agent's own data, kept and shown back to it.
	Locale   string
	Timezone string
	Metadata map[string]any
	// AgentInterventions are the interventions (3ds, ...) the agent said it supports
	// when it created the session; the session offers their intersection with the
	// merchant's (Interventions).
	AgentInterventions []string
	// DiscountsActive says the agent declared the discount extension on create: only
	// then are DiscountCodes taken and the applied and rejected discounts shown.
	// DiscountCodes are the codes as the agent last sent them (in its order and case).
	DiscountsActive bool
	DiscountCodes   []string
	// PaymentError is why the last payment attempt was declined ("" when none).
	PaymentError string
	// Authentication is the 3-D Secure the session's payment needs (nil: none). The
	// store derives it from the credentials given for the session (a delegated card that
	// requires authentication, or a PSP's answer at an earlier completion); at
	// completion the completion's own credential decides.
	Authentication *Authentication
	// CancelReason says who canceled the session ("" unless canceled), CancelTrace why
	// the agent did (nil: not said). The trace is the merchant's, never shown to agents.
	CancelReason CancelReason
	CancelTrace  *IntentTrace
	// OrderNotes are the buyer's notes for the order (delivery instructions, a gift
	// message; "" for none), passed on to the order at completion.
	OrderNotes string
	CreatedAt  time.Time
	UpdatedAt  time.Time
	ExpiresAt  time.Time
}

// Line is one item of a session: a catalog variant, a quantity, and the unit price quoted
// when it was added.
type Line struct {
	ID         string
	VariantID  string
	Quantity   int
	UnitAmount int64
}

// Variant is the catalog entry an agent buys (checkout item id = variant id).
type Variant struct {
	ID                 string
	Title              string
	PriceAmount        int64
	Currency           string
	Available          bool
	AvailabilityStatus string
	Fulfillment        FulfillmentType
	// Stock is nil when the merchant does not track stock (unlimited).
	Stock *int
}

// FulfillmentOption is a way to deliver, as the merchant configured it.
type FulfillmentOption struct {
	ID       string
	Type     FulfillmentType
	Title    string
	Subtitle string
	Carrier  string
	Amount   int64
	Currency string
	// MinDeliveryDays and MaxDeliveryDays give the delivery window from the moment of quoting.
	MinDeliveryDays *int
	MaxDeliveryDays *int
	Taxable         bool
}

// ItemRequest is one requested item, as an agent sends it.
type ItemRequest struct {
	ID       string
	Quantity int
}

// Changes is what a create or update asks to change; a nil field is left as it is,
// and Clear names the values to remove.
type Changes struct {
	Items               []ItemRequest
	Buyer               *Buyer
	FulfillmentAddress  *Address
	FulfillmentContact  *FulfillmentContact
	FulfillmentOptionID *string
	// Currency, when not empty, is the currency the agent expects; the items' own
	// currency must match it.
	Currency string
	// Locale, Timezone and Metadata replace the session's when not nil.
	Locale   *string
	Timezone *string
	Metadata map[string]any
	// AgentInterventions are the interventions the agent supports (create only).
	AgentInterventions []string
	// DiscountExtension says the agent declared the discount extension (create only).
	DiscountExtension bool
	// DiscountCodes replace the session's codes when not nil ([] clears them).
	DiscountCodes *[]string
	// OrderNotes replaces the session's notes when not nil.
	OrderNotes *string
	// Attribution is the affiliate attribution given at creation (first touch; nil:
	// none). It is stored apart from the session and never shown.
	Attribution *Attribution
	Clear       Clear
}

// Clear names what an update removes from a session (2026-04-17's explicit null: null
// clears, an absent field keeps). A field both cleared and set is refused.
type Clear struct {
	Buyer bool
	// FulfillmentDetails removes the address and the contact.
	FulfillmentDetails bool
	// FulfillmentOption removes the choice; the default option is then pre-selected
	// again, as for a new session.
	FulfillmentOption bool
	// OrderNotes removes the buyer's notes.
	OrderNotes bool
}

// View is a session with its quote: everything a response shows. Order is set on the
// response of a completion. Handlers are the payment handlers the session offers.
type View struct {
	Session  *Session
	Quote    Quote
	Order    *Order
	Handlers []PaymentHandler
	// ConsentOptions are the marketing channels the merchant offers, each with the
	// stored decision of the session's contact (none when the merchant offers none).
	ConsentOptions []OfferedConsent
}

// Order is what a completed session produced.
type Order struct {
	ID                string
	CheckoutSessionID string
	PermalinkURL      string
	Status            OrderStatus
	Amount            int64
	Currency          string
	Refunds           []Refund
	// Lines are what was bought, as the session held it at completion (empty when an
	// order was read without them, e.g. in a listing).
	Lines []OrderLine
	// Fulfillments, Cancellations and Amounts are the order after payment (ORD-RFC;
	// fulfillment.go). Amounts is nil for orders completed before it was kept.
	Fulfillments  []Fulfillment
	Cancellations []Cancellation
	Amounts       *OrderAmounts
	// Notes are the buyer's notes the session held at completion ("" for none).
	Notes     string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Completion is a request to pay for a session. HandlerID names the payment handler
// the agent chose (2026-04-17); without one, Provider names the provider (2025-09-29).
type Completion struct {
	HandlerID      string
	Token          string
	Provider       string
	BillingAddress *Address
	Buyer          *Buyer
	// Authentication is the 3-D Secure result the agent reports (nil: none).
	// CarriesAuthentication says whether the API version can carry one at all.
	Authentication        *AuthenticationResult
	CarriesAuthentication bool
	// Consents are the buyer's marketing decisions (nil: the agent reported none, which
	// keeps every stored decision as it is).
	Consents []MarketingConsent
	// Attribution is the affiliate attribution given at completion (last touch; nil:
	// none).
	Attribution *Attribution
	// OrderNotes replaces the session's notes when not nil.
	OrderNotes *string
}

// IntentTrace is why the agent's buyer left a session, given with a cancel. It is
// recorded for the merchant and never shown back to the agent.
type IntentTrace struct {
	ReasonCode string         `json:"reason_code"`
	Summary    string         `json:"trace_summary,omitempty"`
	Metadata   map[string]any `json:"metadata,omitempty"`
}
