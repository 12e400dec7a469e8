package v20250929

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/acp"
	"github.com/agentic-commerce/agentic-commerce-server/internal/acp/wire"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
)

// The 2025-09-29 checkout wire format: request bodies decoded into checkout.Changes and
// checkout.Completion, and checkout.View encoded as a CheckoutSession (with its order
// after complete). Another API version is a package of its own beside this one; the
// domain model stays the same.

type buyer struct {
	FirstName   string `json:"first_name"`
	LastName    string `json:"last_name"`
	Email       string `json:"email"`
	PhoneNumber string `json:"phone_number,omitempty"`
}

type address struct {
	Name       string `json:"name"`
	LineOne    string `json:"line_one"`
	LineTwo    string `json:"line_two,omitempty"`
	City       string `json:"city"`
	State      string `json:"state"`
	Country    string `json:"country"`
	PostalCode string `json:"postal_code"`
}

// domain converts a wire buyer. The names are required by this version's schema (a
// later version asks only for the email), so they are checked here.
func (b *buyer) domain() (*checkout.Buyer, error) {
	if b == nil {
		return nil, nil
	}
	switch {
	case strings.TrimSpace(b.FirstName) == "":
		return nil, acp.InvalidRequest("invalid", "first_name must not be empty.", "$.buyer.first_name")
	case strings.TrimSpace(b.LastName) == "":
		return nil, acp.InvalidRequest("invalid", "last_name must not be empty.", "$.buyer.last_name")
	}
	return &checkout.Buyer{FirstName: b.FirstName, LastName: b.LastName, Email: b.Email, PhoneNumber: b.PhoneNumber}, nil
}

func (a *address) domain() *checkout.Address {
	if a == nil {
		return nil
	}
	return &checkout.Address{
		Name: a.Name, LineOne: a.LineOne, LineTwo: a.LineTwo, City: a.City, State: a.State,
		Country: a.Country, PostalCode: a.PostalCode,
	}
}

// wireBuyer shows a buyer in this version's shape. A buyer given by a later version may
// have only an email address, or a full name: the names this version requires are then
// empty strings, or the full name split at its last space.
func wireBuyer(b *checkout.Buyer) *buyer {
	if b == nil {
		return nil
	}
	first, last := b.FirstName, b.LastName
	if first == "" && last == "" && b.FullName != "" {
		first, last = b.FullName, ""
		if i := strings.LastIndexByte(b.FullName, ' '); i > 0 {
			first, last = b.FullName[:i], b.FullName[i+1:]
		}
	}
	return &buyer{FirstName: first, LastName: last, Email: b.Email, PhoneNumber: b.PhoneNumber}
}

// wireAddress shows an address in this version's shape, which has no company.
func wireAddress(a *checkout.Address) *address {
	if a == nil {
		return nil
	}
	return &address{
		Name: a.Name, LineOne: a.LineOne, LineTwo: a.LineTwo, City: a.City, State: a.State,
		Country: a.Country, PostalCode: a.PostalCode,
	}
}

type item struct {
	ID *string `json:"id"`
	// Quantity is kept raw so that "2" (a string) and 2.5 get a precise error
	// instead of being coerced.
	Quantity json.RawMessage `json:"quantity"`
}

type createRequest struct {
	Items              *[]item  `json:"items"`
	Buyer              *buyer   `json:"buyer"`
	FulfillmentAddress *address `json:"fulfillment_address"`
}

type updateRequest struct {
	Items               *[]item  `json:"items"`
	Buyer               *buyer   `json:"buyer"`
	FulfillmentAddress  *address `json:"fulfillment_address"`
	FulfillmentOptionID *string  `json:"fulfillment_option_id"`
}

func (c *createRequest) domain() (checkout.Changes, error) {
	items, err := decodeItems(c.Items)
	if err != nil {
		return checkout.Changes{}, err
	}
	b, err := c.Buyer.domain()
	return checkout.Changes{Items: items, Buyer: b, FulfillmentAddress: c.FulfillmentAddress.domain()}, err
}

func (u *updateRequest) domain() (checkout.Changes, error) {
	items, err := decodeItems(u.Items)
	if err != nil {
		return checkout.Changes{}, err
	}
	b, err := u.Buyer.domain()
	return checkout.Changes{
		Items: items, Buyer: b, FulfillmentAddress: u.FulfillmentAddress.domain(),
		FulfillmentOptionID: u.FulfillmentOptionID,
	}, err
}

// decodeItems converts wire items, refusing fractional quantities: the released
// 2025-09-29 schema and RFC say integer >= 1 (checklist I-01).
func decodeItems(in *[]item) ([]checkout.ItemRequest, error) {
	if in == nil {
		return nil, nil
	}
	out := make([]checkout.ItemRequest, len(*in))
	for i, it := range *in {
		if it.ID == nil {
			return nil, acp.InvalidRequest("missing", "Item id is required.", fmt.Sprintf("$.items[%d].id", i))
		}
		if it.Quantity == nil || string(it.Quantity) == "null" {
			return nil, acp.InvalidRequest("missing", "Item quantity is required.", fmt.Sprintf("$.items[%d].quantity", i))
		}
		q, err := wire.Quantity(it.Quantity, fmt.Sprintf("$.items[%d].quantity", i))
		if err != nil {
			return nil, err
		}
		out[i] = checkout.ItemRequest{ID: *it.ID, Quantity: q}
	}
	return out, nil
}

type session struct {
	ID                  string          `json:"id"`
	Buyer               *buyer          `json:"buyer,omitempty"`
	PaymentProvider     paymentProvider `json:"payment_provider"`
	Status              checkout.Status `json:"status"`
	Currency            string          `json:"currency"`
	LineItems           []lineItem      `json:"line_items"`
	FulfillmentAddress  *address        `json:"fulfillment_address,omitempty"`
	FulfillmentOptionID string          `json:"fulfillment_option_id,omitempty"`
	Totals              []total         `json:"totals"`
	FulfillmentOptions  []option        `json:"fulfillment_options"`
	Messages            []message       `json:"messages"`
	Links               []acp.Link      `json:"links"`
	// Order is only sent with the response of complete (CheckoutSessionWithOrder).
	Order *order `json:"order,omitempty"`
}

type order struct {
	ID                string `json:"id"`
	CheckoutSessionID string `json:"checkout_session_id"`
	PermalinkURL      string `json:"permalink_url"`
}

type paymentData struct {
	Token          *string  `json:"token"`
	Provider       *string  `json:"provider"`
	BillingAddress *address `json:"billing_address"`
}

type completeRequest struct {
	Buyer       *buyer       `json:"buyer"`
	PaymentData *paymentData `json:"payment_data"`
}

func (c *completeRequest) domain() (checkout.Completion, error) {
	if c.PaymentData == nil {
		return checkout.Completion{}, acp.InvalidRequest("missing", "payment_data is required.", "$.payment_data")
	}
	pd := c.PaymentData
	if pd.Token == nil {
		return checkout.Completion{}, acp.InvalidRequest("missing", "payment_data.token is required.", "$.payment_data.token")
	}
	if pd.Provider == nil {
		return checkout.Completion{}, acp.InvalidRequest("missing", "payment_data.provider is required.", "$.payment_data.provider")
	}
	b, err := c.Buyer.domain()
	return checkout.Completion{
		Token: *pd.Token, Provider: *pd.Provider,
		BillingAddress: pd.BillingAddress.domain(), Buyer: b,
	}, err
}

type paymentProvider struct {
	Provider                string   `json:"provider"`
	SupportedPaymentMethods []string `json:"supported_payment_methods"`
}

type lineItem struct {
	ID         string      `json:"id"`
	Item       lineItemRef `json:"item"`
	BaseAmount int64       `json:"base_amount"`
	Discount   int64       `json:"discount"`
	Subtotal   int64       `json:"subtotal"`
	Tax        int64       `json:"tax"`
	Total      int64       `json:"total"`
}

type lineItemRef struct {
	ID       string `json:"id"`
	Quantity int    `json:"quantity"`
}

type total struct {
	Type        string `json:"type"`
	DisplayText string `json:"display_text"`
	Amount      int64  `json:"amount"`
}

type option struct {
	Type                 checkout.FulfillmentType `json:"type"`
	ID                   string                   `json:"id"`
	Title                string                   `json:"title"`
	Subtitle             string                   `json:"subtitle,omitempty"`
	Carrier              string                   `json:"carrier,omitempty"`
	EarliestDeliveryTime *time.Time               `json:"earliest_delivery_time,omitempty"`
	LatestDeliveryTime   *time.Time               `json:"latest_delivery_time,omitempty"`
	Subtotal             int64                    `json:"subtotal"`
	Tax                  int64                    `json:"tax"`
	Total                int64                    `json:"total"`
}

type message struct {
	Type        checkout.MessageType `json:"type"`
	Code        checkout.MessageCode `json:"code,omitempty"`
	Param       string               `json:"param,omitempty"`
	ContentType string               `json:"content_type"`
	Content     string               `json:"content"`
}

// linkTypes are the Link types of 2025-09-29; links of other types are not shown.
var linkTypes = []string{"terms_of_use", "privacy_policy", "seller_shop_policies"}

// status shows a domain status in this version, which has no expired: an expired
// session is canceled (its message says why). Nor has it authentication_required:
// a session whose payment needs 3-D Secure, which this version cannot carry, is not
// ready for payment (a requires_3ds message says why). A completion waiting on the
// payment service provider is this version's in_progress.
func status(s checkout.Status) checkout.Status {
	switch s {
	case checkout.StatusExpired:
		return checkout.StatusCanceled
	case checkout.StatusAuthenticationRequired:
		return checkout.StatusNotReadyForPayment
	case checkout.StatusCompleteInProgress:
		return statusInProgress
	}
	return s
}

// statusInProgress is this version's name for checkout.StatusCompleteInProgress.
const statusInProgress checkout.Status = "in_progress"

// requires3DS is the 2025-09-29 MessageError code of a payment that needs 3-D Secure;
// the version has no intervention_required.
const requires3DS checkout.MessageCode = "requires_3ds"

// cannotAuthenticate is the message of a session whose card needs 3-D Secure, shown in
// this version, which has no authentication flow.
const cannotAuthenticate = "This card requires 3-D Secure authentication, which API version 2025-09-29 cannot carry. " +
	"Pay with a card that does not require it, or continue with API version 2026-04-17."

// encodeSession renders v as a 2025-09-29 CheckoutSession.
func encodeSession(v checkout.View, links []acp.Link) session {
	s, q := v.Session, v.Quote
	out := session{
		ID:                 s.ID,
		Buyer:              wireBuyer(s.Buyer),
		PaymentProvider:    paymentProvider{Provider: "stripe", SupportedPaymentMethods: []string{"card"}},
		Status:             status(q.Status),
		Currency:           s.Currency,
		LineItems:          make([]lineItem, len(q.Lines)),
		FulfillmentAddress: wireAddress(s.FulfillmentAddress),
		FulfillmentOptions: make([]option, len(q.Options)),
		Messages:           make([]message, len(q.Messages)),
		Links:              acp.LinksOfTypes(links, linkTypes...),
	}
	for i, l := range q.Lines {
		// This version's line has one discount: the item-level discounts and the line's
		// share of order-level ones, so that subtotal = base_amount - discount and
		// total = subtotal + tax hold on every line.
		discount := l.Discount + l.OrderDiscount
		out.LineItems[i] = lineItem{
			ID: l.ID, Item: lineItemRef{ID: l.VariantID, Quantity: l.Quantity},
			BaseAmount: l.BaseAmount, Discount: discount, Subtotal: l.BaseAmount - discount, Tax: l.Tax, Total: l.Total,
		}
	}
	for i, o := range q.Options {
		opt := option{
			Type: o.Type, ID: o.ID, Title: o.Title, Subtitle: o.Subtitle,
			Subtotal: o.Subtotal, Tax: o.Tax, Total: o.Total,
		}
		if o.Type == checkout.FulfillmentShipping {
			// Carrier and delivery window exist only on FulfillmentOptionShipping.
			opt.Carrier, opt.EarliestDeliveryTime, opt.LatestDeliveryTime = o.Carrier, o.EarliestDelivery, o.LatestDelivery
		}
		out.FulfillmentOptions[i] = opt
		// The spec requires a selected id to name a listed option, so an id that no
		// longer fits the cart is not echoed (a message says so instead).
		if o.ID == s.FulfillmentOptionID {
			out.FulfillmentOptionID = o.ID
		}
	}
	for i, m := range q.Messages {
		out.Messages[i] = message{Type: m.Type, Code: m.Code, Param: pathOf(m.Field), ContentType: "plain", Content: m.Content}
		if m.Type == checkout.MessageWarning {
			// No warnings in this version (nor codes to point at): a rejected discount
			// code of a session made in a later version is shown as information.
			out.Messages[i] = message{Type: checkout.MessageInfo, ContentType: "plain", Content: m.Content}
		}
		if m.Code == checkout.CodeInterventionRequired {
			out.Messages[i].Code, out.Messages[i].Content = requires3DS, cannotAuthenticate
		}
	}
	if q.Status == checkout.StatusAuthenticationRequired {
		// A session of a 2026-04-17 agent that runs 3-D Secure, read here.
		out.Messages = append(out.Messages, message{Type: checkout.MessageError, Code: requires3DS,
			Param: pathOf(checkout.At(checkout.FieldPayment)), ContentType: "plain", Content: cannotAuthenticate})
	}
	if v.Order != nil {
		out.Order = &order{ID: v.Order.ID, CheckoutSessionID: v.Order.CheckoutSessionID, PermalinkURL: v.Order.PermalinkURL}
	}
	for _, e := range q.Totals.Entries() {
		out.Totals = append(out.Totals, total{e.Type, e.DisplayText, e.Amount})
	}
	return out
}
