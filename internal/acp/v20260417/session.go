package v20260417

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/agentic-commerce/agentic-commerce-server/internal/acp"
	"github.com/agentic-commerce/agentic-commerce-server/internal/acp/wire"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
)

// The 2026-04-17 checkout requests, decoded into checkout.Changes and
// checkout.Completion. The request structs are written by hand where the generated
// ones cannot tell an absent required field from an empty one (they are plain strings),
// or where the generated type decodes a union itself and so lets unknown keys through
// (PaymentData, AffiliateAttribution, Capabilities.extensions); the nested objects with
// no such problem are the generated types. Every body is decoded by acp.DecodeStrict.
//
// Several fields are accepted, shape-checked and not acted on yet: fulfillment_groups,
// quote_id, and on complete risk_signals; they change nothing, which each field
// allows. order_notes, affiliate_attribution (create: first touch, complete: last
// touch) and marketing_consents go to the domain, which keeps them. discounts and
// coupons are the discount extension (discount.go). authentication_result is decoded
// by hand (authenticationResult): the generated outcome_details cannot tell an absent
// field from an empty one.

// buyer is the 2026-04-17 Buyer: only the email address is required. The account,
// company, loyalty and tax-exemption details are accepted and not kept.
type buyer struct {
	Email                *string                    `json:"email"`
	FirstName            *string                    `json:"first_name"`
	LastName             *string                    `json:"last_name"`
	FullName             *string                    `json:"full_name"`
	PhoneNumber          *string                    `json:"phone_number"`
	CustomerID           *string                    `json:"customer_id"`
	AccountType          *BuyerAccountType          `json:"account_type"`
	AuthenticationStatus *BuyerAuthenticationStatus `json:"authentication_status"`
	Company              *CompanyInfo               `json:"company"`
	Loyalty              *LoyaltyInfo               `json:"loyalty"`
	TaxExemption         *TaxExemption              `json:"tax_exemption"`
}

func (b *buyer) domain(at string) (*checkout.Buyer, error) {
	if b == nil {
		return nil, nil
	}
	if b.Email == nil {
		return nil, acp.InvalidRequest("missing", "buyer.email is required.", at+".email")
	}
	if b.AccountType != nil && !b.AccountType.Valid() {
		return nil, acp.InvalidRequest("invalid", "buyer.account_type must be guest, registered or business.", at+".account_type")
	}
	if b.AuthenticationStatus != nil && !b.AuthenticationStatus.Valid() {
		return nil, acp.InvalidRequest("invalid", "buyer.authentication_status must be authenticated, guest or requires_signin.", at+".authentication_status")
	}
	return &checkout.Buyer{
		FirstName: deref(b.FirstName), LastName: deref(b.LastName), FullName: deref(b.FullName),
		Email: *b.Email, PhoneNumber: deref(b.PhoneNumber),
	}, nil
}

// domainAddress converts a wire address; the domain checks its required parts (an
// absent one is empty, and refused there with its path).
func domainAddress(a *Address) *checkout.Address {
	if a == nil {
		return nil
	}
	return &checkout.Address{
		Name: a.Name, Company: deref(a.Company), LineOne: a.LineOne, LineTwo: deref(a.LineTwo),
		City: a.City, State: a.State, Country: a.Country, PostalCode: a.PostalCode,
	}
}

// item is a request line item. Quantity is our extension (checklist I-09: no
// 2026-04-17 request field carries one), kept raw so that "2" and 2.5 get a precise
// error; name and unit_amount are the agent's view and never price anything (the
// catalog does).
type item struct {
	ID         *string         `json:"id"`
	Name       *string         `json:"name"`
	UnitAmount *int64          `json:"unit_amount"`
	Quantity   json.RawMessage `json:"quantity"`
}

// decodeItems converts request line items; quantity defaults to 1.
func decodeItems(in *[]item) ([]checkout.ItemRequest, error) {
	if in == nil {
		return nil, nil
	}
	out := make([]checkout.ItemRequest, len(*in))
	for i, it := range *in {
		if it.ID == nil {
			return nil, acp.InvalidRequest("missing", "Line item id is required.", fmt.Sprintf("$.line_items[%d].id", i))
		}
		q := 1
		if it.Quantity != nil {
			var err error
			if q, err = wire.Quantity(it.Quantity, fmt.Sprintf("$.line_items[%d].quantity", i)); err != nil {
				return nil, err
			}
		}
		out[i] = checkout.ItemRequest{ID: *it.ID, Quantity: q}
	}
	return out, nil
}

// capabilities is what the agent declares on create. Unknown intervention values are
// ignored (CN-RFC: forward compatibility); payment is the agent's view of handlers and
// is ignored, the session offers the merchant's.
type capabilities struct {
	Payment       *Payment                  `json:"payment"`
	Interventions *InterventionCapabilities `json:"interventions"`
	// Extensions are identifiers in a request; [] is accepted (checklist I-14). Only
	// the discount extension is known; others are ignored (EXT-RFC).
	Extensions *[]string `json:"extensions"`
}

// interventions lists the agent's supported interventions this server knows, in the
// agent's order; never nil, so that an agent that supports none is told apart from a
// session created in 2025-09-29.
func (c *capabilities) interventions() []string {
	out := []string{}
	if c == nil || c.Interventions == nil || c.Interventions.Supported == nil {
		return out
	}
	for _, s := range *c.Interventions.Supported {
		if s.Valid() {
			out = append(out, string(s))
		}
	}
	return out
}

// fulfillmentDetails converts fulfillment_details into the address and the contact.
func fulfillmentDetails(fd *FulfillmentDetails) (*checkout.Address, *checkout.FulfillmentContact) {
	if fd == nil {
		return nil, nil
	}
	return domainAddress(fd.Address), &checkout.FulfillmentContact{
		Name: deref(fd.Name), PhoneNumber: deref(fd.PhoneNumber), Email: deref(fd.Email),
	}
}

// affiliateAttribution is checked for the shape AA-RFC asks (provider, and a token or a
// publisher id; flat metadata) and kept as the domain's Attribution, never echoed.
type affiliateAttribution struct {
	Provider    *string                         `json:"provider"`
	Token       *string                         `json:"token"`
	PublisherID *string                         `json:"publisher_id"`
	CampaignID  *string                         `json:"campaign_id"`
	CreativeID  *string                         `json:"creative_id"`
	SubID       *string                         `json:"sub_id"`
	Source      *AffiliateAttributionSource     `json:"source"`
	IssuedAt    *string                         `json:"issued_at"`
	ExpiresAt   *string                         `json:"expires_at"`
	Touchpoint  *AffiliateAttributionTouchpoint `json:"touchpoint"`
	Metadata    map[string]any                  `json:"metadata"`
}

func (a *affiliateAttribution) check(at string) error {
	if a == nil {
		return nil
	}
	if a.Provider == nil {
		return acp.InvalidRequest("missing", "affiliate_attribution.provider is required.", at+".provider")
	}
	if a.Token == nil && a.PublisherID == nil {
		return acp.InvalidRequest("missing", "affiliate_attribution needs a token or a publisher_id.", at+".token")
	}
	if a.Touchpoint != nil && !a.Touchpoint.Valid() {
		return acp.InvalidRequest("invalid", "affiliate_attribution.touchpoint must be first or last.", at+".touchpoint")
	}
	if a.Source != nil && !a.Source.Type.Valid() {
		return acp.InvalidRequest("invalid", "affiliate_attribution.source.type must be url, platform or unknown.", at+".source.type")
	}
	return flatMetadata(a.Metadata, at+".metadata")
}

// domain checks a (nil: none) at path at and converts it.
func (a *affiliateAttribution) domain(at string) (*checkout.Attribution, error) {
	if err := a.check(at); err != nil || a == nil {
		return nil, err
	}
	out := &checkout.Attribution{
		Provider: *a.Provider, Token: deref(a.Token), PublisherID: deref(a.PublisherID),
		CampaignID: deref(a.CampaignID), CreativeID: deref(a.CreativeID), SubID: deref(a.SubID),
		IssuedAt: deref(a.IssuedAt), ExpiresAt: deref(a.ExpiresAt), Metadata: a.Metadata,
	}
	if a.Touchpoint != nil {
		out.Claimed = checkout.Touchpoint(*a.Touchpoint)
	}
	if a.Source != nil {
		out.SourceType, out.SourceURL = string(a.Source.Type), deref(a.Source.Url)
	}
	return out, nil
}

// marketingConsent is one decision of marketing_consents; both fields are required,
// and an absent opted_in must not read as an opt-out.
type marketingConsent struct {
	Channel *string `json:"channel"`
	OptedIn *bool   `json:"opted_in"`
}

// consents converts marketing_consents (absent: nil, which keeps every stored
// decision; [] reports none either).
func consents(in *[]marketingConsent) ([]checkout.MarketingConsent, error) {
	if in == nil {
		return nil, nil
	}
	out := make([]checkout.MarketingConsent, len(*in))
	for i, c := range *in {
		p := fmt.Sprintf("$.marketing_consents[%d]", i)
		if err := acp.RequireFields(
			acp.Required{Path: p + ".channel", Present: c.Channel != nil},
			acp.Required{Path: p + ".opted_in", Present: c.OptedIn != nil},
		); err != nil {
			return nil, err
		}
		out[i] = checkout.MarketingConsent{Channel: *c.Channel, OptedIn: *c.OptedIn}
	}
	return out, nil
}

// flatMetadata refuses a metadata object whose values are not strings, numbers or
// booleans (intent traces and affiliate attribution allow no nesting).
func flatMetadata(md map[string]any, at string) error {
	for k, v := range md {
		switch v.(type) {
		case string, float64, bool:
		default:
			return acp.InvalidRequest("invalid", fmt.Sprintf("metadata value %q must be a string, number or boolean.", k), at)
		}
	}
	return nil
}

// cartFields are the fields create and update share besides the cart: the discount
// codes, order_notes, kept by the domain (which bounds it, as the JSON Schema does:
// checklist I-08), and what this server does not act on (see the top of this file).
type cartFields struct {
	OrderNotes        *string             `json:"order_notes"`
	Discounts         *DiscountsRequest   `json:"discounts"`
	Coupons           *[]string           `json:"coupons"`
	FulfillmentGroups *[]FulfillmentGroup `json:"fulfillment_groups"`
}

type createBody struct {
	LineItems            *[]item               `json:"line_items"`
	Currency             *string               `json:"currency"`
	Capabilities         *capabilities         `json:"capabilities"`
	Buyer                *buyer                `json:"buyer"`
	FulfillmentDetails   *FulfillmentDetails   `json:"fulfillment_details"`
	Locale               *string               `json:"locale"`
	Timezone             *string               `json:"timezone"`
	Metadata             map[string]any        `json:"metadata"`
	QuoteID              *string               `json:"quote_id"`
	AffiliateAttribution *affiliateAttribution `json:"affiliate_attribution"`
	cartFields
}

func (c *createBody) domain() (checkout.Changes, error) {
	// capabilities is required by the schema, but the official multi-item example
	// omits it; an agent that declares nothing supports no intervention
	// (docs/decisions.md).
	if err := acp.RequireFields(
		acp.Required{Path: "$.line_items", Present: c.LineItems != nil},
		acp.Required{Path: "$.currency", Present: c.Currency != nil},
	); err != nil {
		return checkout.Changes{}, err
	}
	attribution, err := c.AffiliateAttribution.domain("$.affiliate_attribution")
	if err != nil {
		return checkout.Changes{}, err
	}
	items, err := decodeItems(c.LineItems)
	if err != nil {
		return checkout.Changes{}, err
	}
	b, err := c.Buyer.domain("$.buyer")
	if err != nil {
		return checkout.Changes{}, err
	}
	addr, contact := fulfillmentDetails(c.FulfillmentDetails)
	return checkout.Changes{
		Items: items, Currency: *c.Currency, Buyer: b,
		FulfillmentAddress: addr, FulfillmentContact: contact,
		Locale: c.Locale, Timezone: c.Timezone, Metadata: c.Metadata,
		AgentInterventions: c.Capabilities.interventions(),
		DiscountExtension:  c.Capabilities.declares(discountExtension),
		DiscountCodes:      c.codes(),
		OrderNotes:         c.OrderNotes, Attribution: attribution,
	}, nil
}

// selection is one selected_fulfillment_options entry, all of whose fields are
// required.
type selection struct {
	Type     *SelectedFulfillmentOptionType `json:"type"`
	OptionID *string                        `json:"option_id"`
	ItemIDs  *[]string                      `json:"item_ids"`
}

type updateBody struct {
	LineItems                  *[]item             `json:"line_items"`
	Buyer                      *buyer              `json:"buyer"`
	FulfillmentDetails         *FulfillmentDetails `json:"fulfillment_details"`
	SelectedFulfillmentOptions *[]selection        `json:"selected_fulfillment_options"`
	cartFields
}

// domain converts an update; nulls are the top-level keys the body sets to null, which
// clear (null clears, absent keeps: checklist C1).
func (u *updateBody) domain(nulls map[string]bool) (checkout.Changes, error) {
	if nulls["line_items"] {
		return checkout.Changes{}, acp.InvalidRequest("invalid", "line_items cannot be cleared; send the items the session should hold.", "$.line_items")
	}
	items, err := decodeItems(u.LineItems)
	if err != nil {
		return checkout.Changes{}, err
	}
	b, err := u.Buyer.domain("$.buyer")
	if err != nil {
		return checkout.Changes{}, err
	}
	option, err := selectedOption(u.SelectedFulfillmentOptions)
	if err != nil {
		return checkout.Changes{}, err
	}
	ch := checkout.Changes{
		Items: items, Buyer: b, FulfillmentOptionID: option, DiscountCodes: u.codes(), OrderNotes: u.OrderNotes,
		Clear: checkout.Clear{
			Buyer:              nulls["buyer"],
			FulfillmentDetails: nulls["fulfillment_details"],
			FulfillmentOption:  nulls["selected_fulfillment_options"],
			OrderNotes:         nulls["order_notes"],
		},
	}
	if u.FulfillmentDetails != nil {
		ch.FulfillmentAddress, ch.FulfillmentContact = fulfillmentDetails(u.FulfillmentDetails)
		// fulfillment_details is replaced as a whole, as the session shows it: one sent
		// without an address removes the address the session had.
		ch.Clear.FulfillmentDetails = ch.FulfillmentAddress == nil
	}
	if u.SelectedFulfillmentOptions != nil && len(*u.SelectedFulfillmentOptions) == 0 {
		ch.Clear.FulfillmentOption = true
	}
	return ch, nil
}

// selectedOption reads the one fulfillment option a session has for its whole cart out
// of selected_fulfillment_options: several entries must name the same option. Only the
// shape is checked here: whether the option is offered, and its type, is the domain's
// (it knows the session); item_ids are not matched against the session's items, since
// one option always covers the whole cart.
func selectedOption(sel *[]selection) (*string, error) {
	if sel == nil || len(*sel) == 0 {
		return nil, nil
	}
	var id *string
	for i, s := range *sel {
		p := fmt.Sprintf("$.selected_fulfillment_options[%d]", i)
		if err := acp.RequireFields(
			acp.Required{Path: p + ".type", Present: s.Type != nil},
			acp.Required{Path: p + ".option_id", Present: s.OptionID != nil},
			acp.Required{Path: p + ".item_ids", Present: s.ItemIDs != nil},
		); err != nil {
			return nil, err
		}
		if !s.Type.Valid() {
			return nil, acp.InvalidRequest("invalid", "type must be shipping, digital, pickup or local_delivery.", p+".type")
		}
		if id != nil && *s.OptionID != *id {
			return nil, acp.InvalidRequest("unsupported",
				"A checkout session has one fulfillment option for all its items; select the same option_id for every item.",
				p+".option_id")
		}
		id = s.OptionID
	}
	return id, nil
}

// nullKeys lists the top-level keys of a JSON object body whose value is null.
func nullKeys(body []byte) map[string]bool {
	var raw map[string]json.RawMessage
	if json.Unmarshal(body, &raw) != nil {
		return nil
	}
	out := map[string]bool{}
	for k, v := range raw {
		if bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
			out[k] = true
		}
	}
	return out
}

type credential struct {
	Type  *string `json:"type"`
	Token *string `json:"token"`
}

type instrument struct {
	Type       *string     `json:"type"`
	Credential *credential `json:"credential"`
}

// paymentData is either form of the 2026-04-17 PaymentData: a handler with its
// instrument, or a purchase order, which this server does not take.
type paymentData struct {
	HandlerID      *string     `json:"handler_id"`
	Instrument     *instrument `json:"instrument"`
	BillingAddress *Address    `json:"billing_address"`

	PurchaseOrderNumber *string `json:"purchase_order_number"`
	PaymentTerms        *string `json:"payment_terms"`
	DueDate             *string `json:"due_date"`
	ApprovalRequired    *bool   `json:"approval_required"`
}

type completeBody struct {
	PaymentData          *paymentData          `json:"payment_data"`
	Buyer                *buyer                `json:"buyer"`
	AuthenticationResult *authenticationResult `json:"authentication_result"`
	RiskSignals          *RiskSignals          `json:"risk_signals"`
	MarketingConsents    *[]marketingConsent   `json:"marketing_consents"`
	AffiliateAttribution *affiliateAttribution `json:"affiliate_attribution"`
	OrderNotes           *string               `json:"order_notes"`
}

func (c *completeBody) domain() (checkout.Completion, error) {
	pd := c.PaymentData
	if pd == nil {
		return checkout.Completion{}, acp.InvalidRequest("missing", "payment_data is required.", "$.payment_data")
	}
	if pd.PurchaseOrderNumber != nil || pd.PaymentTerms != nil || pd.DueDate != nil || pd.ApprovalRequired != nil {
		return checkout.Completion{}, acp.InvalidRequest("unsupported",
			"Purchase orders are not accepted; pay with one of the session's payment handlers.", "$.payment_data.purchase_order_number")
	}
	if err := acp.RequireFields(
		acp.Required{Path: "$.payment_data.handler_id", Present: pd.HandlerID != nil},
		acp.Required{Path: "$.payment_data.instrument", Present: pd.Instrument != nil},
	); err != nil {
		return checkout.Completion{}, err
	}
	in := pd.Instrument
	if err := acp.RequireFields(
		acp.Required{Path: "$.payment_data.instrument.type", Present: in.Type != nil},
		acp.Required{Path: "$.payment_data.instrument.credential", Present: in.Credential != nil},
	); err != nil {
		return checkout.Completion{}, err
	}
	if err := acp.RequireFields(
		acp.Required{Path: "$.payment_data.instrument.credential.type", Present: in.Credential.Type != nil},
		acp.Required{Path: "$.payment_data.instrument.credential.token", Present: in.Credential.Token != nil},
	); err != nil {
		return checkout.Completion{}, err
	}
	auth, err := c.AuthenticationResult.domain("$.authentication_result")
	if err != nil {
		return checkout.Completion{}, err
	}
	attribution, err := c.AffiliateAttribution.domain("$.affiliate_attribution")
	if err != nil {
		return checkout.Completion{}, err
	}
	mc, err := consents(c.MarketingConsents)
	if err != nil {
		return checkout.Completion{}, err
	}
	b, err := c.Buyer.domain("$.buyer")
	return checkout.Completion{
		HandlerID: *pd.HandlerID, Token: *in.Credential.Token,
		BillingAddress: domainAddress(pd.BillingAddress), Buyer: b,
		Authentication: auth, CarriesAuthentication: true,
		Consents: mc, Attribution: attribution, OrderNotes: c.OrderNotes,
	}, err
}

// authenticationResult is the 3-D Secure result of a completion.
type authenticationResult struct {
	Outcome        *AuthenticationResultOutcome `json:"outcome"`
	OutcomeDetails *outcomeDetails              `json:"outcome_details"`
}

type outcomeDetails struct {
	ThreeDSCryptogram           *string `json:"three_ds_cryptogram"`
	ElectronicCommerceIndicator *string `json:"electronic_commerce_indicator"`
	TransactionID               *string `json:"transaction_id"`
	Version                     *string `json:"version"`
}

// Bounds of the outcome details, which the schema leaves open: a cryptogram is 28
// base64 characters, a directory server transaction id a UUID, a version "2.2.0".
const (
	maxCryptogram    = 256
	maxTransactionID = 256
	maxVersion       = 16
)

// domain checks the result at path at. The outcomes the payment proceeds on
// (authenticated, attempt_acknowledged, informational) need outcome_details with all
// four fields, as the schema says. A failed outcome needs none, and its details may be
// partial: the official authentication_result_denied_example carries only
// transaction_id and version (docs/decisions.md); what is given is still checked.
func (a *authenticationResult) domain(at string) (*checkout.AuthenticationResult, error) {
	if a == nil {
		return nil, nil
	}
	if a.Outcome == nil {
		return nil, acp.InvalidRequest("missing", "authentication_result.outcome is required.", at+".outcome")
	}
	if !a.Outcome.Valid() {
		return nil, acp.InvalidRequest("invalid", "authentication_result.outcome is not a known outcome.", at+".outcome")
	}
	out := &checkout.AuthenticationResult{Outcome: checkout.AuthenticationOutcome(*a.Outcome)}
	d := a.OutcomeDetails
	if d == nil {
		if out.Outcome.Succeeded() {
			return nil, acp.InvalidRequest("missing",
				fmt.Sprintf("authentication_result.outcome_details is required when the outcome is %s.", out.Outcome), at+".outcome_details")
		}
		return out, nil
	}
	at += ".outcome_details"
	for _, f := range []struct {
		name  string
		value *string
		limit int
		into  *string
	}{
		{"three_ds_cryptogram", d.ThreeDSCryptogram, maxCryptogram, &out.Cryptogram},
		{"electronic_commerce_indicator", d.ElectronicCommerceIndicator, 2, &out.ECI},
		{"transaction_id", d.TransactionID, maxTransactionID, &out.TransactionID},
		{"version", d.Version, maxVersion, &out.Version},
	} {
		if f.value == nil {
			if out.Outcome.Succeeded() {
				return nil, acp.InvalidRequest("missing", fmt.Sprintf("outcome_details.%s is required.", f.name), at+"."+f.name)
			}
			continue
		}
		if *f.value == "" || utf8.RuneCountInString(*f.value) > f.limit {
			return nil, acp.InvalidRequest("invalid", fmt.Sprintf("outcome_details.%s must be 1 to %d characters.", f.name, f.limit), at+"."+f.name)
		}
		*f.into = *f.value
	}
	if out.ECI != "" && !AuthenticationResultOutcomeDetailsElectronicCommerceIndicator(out.ECI).Valid() {
		return nil, acp.InvalidRequest("invalid", "outcome_details.electronic_commerce_indicator must be 01, 02, 05, 06 or 07.",
			at+".electronic_commerce_indicator")
	}
	return out, nil
}

// intentTrace is why the buyer left, sent with a cancel. Its reason codes are an open
// set (IT-RFC §7.2, checklist I-13): an unknown one is recorded as other.
type intentTrace struct {
	ReasonCode   *string        `json:"reason_code"`
	TraceSummary *string        `json:"trace_summary"`
	Metadata     map[string]any `json:"metadata"`
}

type cancelBody struct {
	IntentTrace *intentTrace `json:"intent_trace"`
}

// MaxTraceSummary bounds trace_summary, as the schema does.
const MaxTraceSummary = 500

// Bounds of an intent trace's metadata, which the merchant stores: those of payment
// metadata.
const (
	maxTraceKeys     = 50
	maxTraceKeyLen   = 40
	maxTraceValueLen = 500
)

func (c *cancelBody) domain() (*checkout.IntentTrace, error) {
	it := c.IntentTrace
	if it == nil {
		return nil, nil
	}
	if it.ReasonCode == nil {
		return nil, acp.InvalidRequest("missing", "intent_trace.reason_code is required.", "$.intent_trace.reason_code")
	}
	code := *it.ReasonCode
	if !IntentTraceReasonCode(code).Valid() {
		code = string(Other)
	}
	if it.TraceSummary != nil && utf8.RuneCountInString(*it.TraceSummary) > MaxTraceSummary {
		return nil, acp.InvalidRequest("invalid", fmt.Sprintf("trace_summary is at most %d characters.", MaxTraceSummary), "$.intent_trace.trace_summary")
	}
	md := "$.intent_trace.metadata"
	if err := flatMetadata(it.Metadata, md); err != nil {
		return nil, err
	}
	if len(it.Metadata) > maxTraceKeys {
		return nil, acp.InvalidRequest("invalid", fmt.Sprintf("metadata holds at most %d keys.", maxTraceKeys), md)
	}
	for k, v := range it.Metadata {
		s, _ := v.(string)
		if utf8.RuneCountInString(k) > maxTraceKeyLen || utf8.RuneCountInString(s) > maxTraceValueLen {
			return nil, acp.InvalidRequest("invalid",
				fmt.Sprintf("metadata keys are at most %d characters, string values at most %d.", maxTraceKeyLen, maxTraceValueLen), md)
		}
	}
	return &checkout.IntentTrace{ReasonCode: code, Summary: strings.TrimSpace(deref(it.TraceSummary)), Metadata: it.Metadata}, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
