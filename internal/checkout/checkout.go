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
	StateOpen      State = "open"
	StateCompleted State = "completed"
	StateCanceled  State = "canceled"
)

// Status is the ACP checkout status reported to agents.
type Status string

// The ACP statuses this server reports.
const (
	StatusNotReadyForPayment Status = "not_ready_for_payment"
	StatusReadyForPayment    Status = "ready_for_payment"
	StatusCompleted          Status = "completed"
	StatusCanceled           Status = "canceled"
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

// Buyer is the person paying.
type Buyer struct {
	FirstName   string `json:"first_name"`
	LastName    string `json:"last_name"`
	Email       string `json:"email"`
	PhoneNumber string `json:"phone_number,omitempty"`
}

// Address is a postal address. Country is ISO 3166-1 alpha-2; State is the region used
// for tax (e.g. "CA").
type Address struct {
	Name       string `json:"name"`
	LineOne    string `json:"line_one"`
	LineTwo    string `json:"line_two,omitempty"`
	City       string `json:"city"`
	State      string `json:"state"`
	Country    string `json:"country"`
	PostalCode string `json:"postal_code"`
}

// Session is the stored state of a checkout session: what the buyer asked for, not what
// it costs. Prices, totals, options and status come from Price.
type Session struct {
	ID string
	// Owner is the identity of the agent platform that created the session ("" on a
	// server without API keys); no other may see or change it.
	Owner               string
	State               State
	Currency            string
	Buyer               *Buyer
	FulfillmentAddress  *Address
	FulfillmentOptionID string
	Lines               []Line
	// PaymentError is why the last payment attempt was declined ("" when none).
	PaymentError string
	// CancelReason says who canceled the session ("" unless canceled).
	CancelReason CancelReason
	CreatedAt    time.Time
	UpdatedAt    time.Time
	ExpiresAt    time.Time
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

// Changes is what a create or update asks to change; a nil field is left as it is.
type Changes struct {
	Items               []ItemRequest
	Buyer               *Buyer
	FulfillmentAddress  *Address
	FulfillmentOptionID *string
}

// View is a session with its quote: everything a response shows. Order is set on the
// response of a completion.
type View struct {
	Session *Session
	Quote   Quote
	Order   *Order
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
	CreatedAt         time.Time
	UpdatedAt         time.Time
}

// Completion is a request to pay for a session.
type Completion struct {
	Token          string
	Provider       string
	BillingAddress *Address
	Buyer          *Buyer
}
