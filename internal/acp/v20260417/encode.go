package v20260417

import (
	"github.com/agentic-commerce/agentic-commerce-server/internal/acp"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
)

// The 2026-04-17 CheckoutSession, rendered from a checkout.View with the generated
// types. Only fields this version knows are set; what the agent sent and must not see
// again (its capabilities, intent traces, affiliate attribution) is never in a View.

// Handler descriptions every handler of this server shares: all take tokenized cards
// (dev.acp.tokenized.card), whose specification and schemas are the ones the official
// examples name.
const (
	handlerSpec       = "https://acp.dev/handlers/tokenized.card"
	handlerConfig     = "https://acp.dev/handlers/tokenized.card/config.json"
	handlerInstrument = "https://acp.dev/handlers/tokenized.card/instrument.json"
)

// encodeSession renders v as a 2026-04-17 CheckoutSession, with its order after
// complete (CheckoutSessionWithOrder, whose fields are CheckoutSession's and order).
func encodeSession(v checkout.View, links []acp.Link) CheckoutSession {
	s, q := v.Session, v.Quote
	out := CheckoutSession{
		Id:       s.ID,
		Protocol: &ProtocolVersion{Version: Version},
		Capabilities: Capabilities{
			Payment: &Payment{Handlers: encodeHandlers(v.Handlers)},
			Interventions: &InterventionCapabilities{
				Supported:   ptr(interventions(s.Interventions())),
				Required:    ptr(requiredInterventions(v)),
				Enforcement: ptr(Conditional),
			},
			Extensions: encodeExtensions(q.Discounts),
		},
		Discounts:          encodeDiscounts(q.Discounts),
		Status:             sessionStatus(q.Status),
		Currency:           s.Currency,
		Buyer:              encodeBuyer(s.Buyer),
		FulfillmentDetails: encodeDetails(s.FulfillmentAddress, s.FulfillmentContact),
		LineItems:          make([]LineItem, len(q.Lines)),
		FulfillmentOptions: make([]CheckoutSessionBase_FulfillmentOptions_Item, 0, len(q.Options)),
		Messages:           make([]CheckoutSessionBase_Messages_Item, len(q.Messages)),
		Links:              encodeLinks(links),
		Totals:             encodeTotals(q.Totals.Entries()),
		CreatedAt:          timePtr(s.CreatedAt),
		UpdatedAt:          timePtr(s.UpdatedAt),
		ExpiresAt:          timePtr(s.ExpiresAt),
		Locale:             nonEmpty(s.Locale),
		Timezone:           nonEmpty(s.Timezone),
	}
	if s.Metadata != nil {
		out.Metadata = &s.Metadata
	}
	if q.Status == checkout.StatusAuthenticationRequired && s.Authentication != nil {
		out.AuthenticationMetadata = encodeAuthentication(s.Authentication)
	}
	itemIDs := make([]string, len(q.Lines))
	for i, l := range q.Lines {
		itemIDs[i] = l.VariantID
		out.LineItems[i] = encodeLine(l)
	}
	for _, o := range q.Options {
		item, ok := encodeOption(o)
		if !ok {
			continue
		}
		out.FulfillmentOptions = append(out.FulfillmentOptions, item)
		// A selected id that no longer fits the cart is not echoed: a message says so.
		if o.ID == s.FulfillmentOptionID {
			out.SelectedFulfillmentOptions = &[]SelectedFulfillmentOption{{
				Type: SelectedFulfillmentOptionType(o.Type), OptionId: o.ID, ItemIds: itemIDs,
			}}
		}
	}
	for i, m := range q.Messages {
		out.Messages[i] = encodeMessage(m)
	}
	if v.Order != nil {
		o := EncodeOrder(v.Order)
		out.Order = &o
	}
	out.MarketingConsentOptions = encodeConsentOptions(v.ConsentOptions)
	return out
}

// encodeLine renders a priced line of a session or a cart.
func encodeLine(l checkout.PricedLine) LineItem {
	return LineItem{
		Id: l.ID, Item: Item{Id: l.VariantID}, Quantity: l.Quantity,
		Name: nonEmpty(l.Title), UnitAmount: ptr(int(l.UnitAmount)),
		Totals: lineTotals(l),
	}
}

// encodeConsentOptions renders the offered marketing channels, or nil (no field) when
// none is offered. is_subscribed is always given, so that an agent never has to
// assume the default.
func encodeConsentOptions(opts []checkout.OfferedConsent) *[]MarketingConsentOption {
	if len(opts) == 0 {
		return nil
	}
	out := make([]MarketingConsentOption, len(opts))
	for i, o := range opts {
		out[i] = MarketingConsentOption{
			Channel: o.Channel, DisplayText: o.DisplayText, PrivacyPolicyUrl: o.PrivacyPolicyURL, IsSubscribed: ptr(o.Subscribed),
		}
	}
	return &out
}

// lineTotals are a line's totals. The items_discount entry (what item-level discounts
// take off the line, DISC-RFC §8.2) is always there, as in the official examples, so
// that an agent finds the same entries on every line; the line's share of order-level
// discounts shows as discount, between subtotal and tax, when there is one.
func lineTotals(l checkout.PricedLine) []Total {
	out := []Total{
		{Type: TotalTypeItemsBaseAmount, DisplayText: "Base amount", Amount: int(l.BaseAmount)},
		{Type: TotalTypeItemsDiscount, DisplayText: "Discount", Amount: int(l.Discount)},
		{Type: TotalTypeSubtotal, DisplayText: "Subtotal", Amount: int(l.Subtotal)},
	}
	if l.OrderDiscount != 0 {
		out = append(out, Total{Type: TotalTypeDiscount, DisplayText: "Order discount", Amount: int(l.OrderDiscount)})
	}
	return append(out,
		Total{Type: TotalTypeTax, DisplayText: "Tax", Amount: int(l.Tax)},
		Total{Type: TotalTypeTotal, DisplayText: "Total", Amount: int(l.Total)})
}

// requiredInterventions are the interventions the session's payment needs: 3ds while
// its card needs authentication. Enforcement stays conditional: the merchant asks for
// 3-D Secure when the card (its issuer, or the PSP) does, not for every payment.
func requiredInterventions(v checkout.View) []InterventionCapabilitiesRequired {
	if v.Session.State == checkout.StateOpen && v.Session.Authentication != nil {
		return []InterventionCapabilitiesRequired{InterventionCapabilitiesRequiredN3ds}
	}
	return []InterventionCapabilitiesRequired{}
}

// encodeAuthentication renders what an agent needs to run 3-D Secure for the session.
func encodeAuthentication(a *checkout.Authentication) *AuthenticationMetadata {
	m := &AuthenticationMetadata{DirectoryServer: AuthenticationMetadataDirectoryServer(a.DirectoryServer)}
	m.AcquirerDetails.AcquirerBin = a.Acquirer.BIN
	m.AcquirerDetails.AcquirerCountry = a.Acquirer.Country
	m.AcquirerDetails.AcquirerMerchantId = a.Acquirer.MerchantID
	m.AcquirerDetails.MerchantName = a.Acquirer.MerchantName
	m.AcquirerDetails.RequestorId = nonEmpty(a.Acquirer.RequestorID)
	if a.PreferChallenge {
		fp := alloc(&m.FlowPreference)
		fp.Type = Challenge
		alloc(&fp.Challenge).Type = ptr(Preferred)
	}
	return m
}

func encodeHandlers(hs []checkout.PaymentHandler) []PaymentHandler {
	out := make([]PaymentHandler, len(hs))
	for i, h := range hs {
		out[i] = PaymentHandler{
			Id: h.ID, Name: h.Name, DisplayName: nonEmpty(h.DisplayName),
			// The handler specification version this server implements: the API's own.
			Version: Version, Spec: handlerSpec, ConfigSchema: handlerConfig,
			InstrumentSchemas:       []string{handlerInstrument},
			RequiresDelegatePayment: h.RequiresDelegatePayment,
			// Card data only reaches this server's vault through delegate_payment, never
			// a merchant route (PH-RFC recommends false).
			RequiresPciCompliance: false,
			Psp:                   h.PSP,
			Config:                map[string]any{"merchant_id": h.MerchantID, "psp": h.PSP},
		}
	}
	return out
}

// interventions converts the session's intersection of interventions.
func interventions(in []string) []InterventionCapabilitiesSupported {
	out := make([]InterventionCapabilitiesSupported, len(in))
	for i, s := range in {
		out[i] = InterventionCapabilitiesSupported(s)
	}
	return out
}

func encodeBuyer(b *checkout.Buyer) *Buyer {
	if b == nil {
		return nil
	}
	return &Buyer{
		Email: b.Email, FirstName: nonEmpty(b.FirstName), LastName: nonEmpty(b.LastName),
		FullName: nonEmpty(b.FullName), PhoneNumber: nonEmpty(b.PhoneNumber),
	}
}

func encodeAddress(a *checkout.Address) *Address {
	if a == nil {
		return nil
	}
	return &Address{
		Name: a.Name, Company: nonEmpty(a.Company), LineOne: a.LineOne, LineTwo: nonEmpty(a.LineTwo),
		City: a.City, State: a.State, Country: a.Country, PostalCode: a.PostalCode,
	}
}

func encodeDetails(a *checkout.Address, c *checkout.FulfillmentContact) *FulfillmentDetails {
	if a == nil && c == nil {
		return nil
	}
	fd := &FulfillmentDetails{Address: encodeAddress(a)}
	if c != nil {
		fd.Name, fd.PhoneNumber, fd.Email = nonEmpty(c.Name), nonEmpty(c.PhoneNumber), nonEmpty(c.Email)
	}
	return fd
}

// encodeLinks keeps the links whose type 2026-04-17 knows (its generated LinkType
// enum). A 2025-09-29 type it dropped (seller_shop_policies) is left out rather than
// relabelled: a shop-policies page is not necessarily a return or shipping policy
// (docs/decisions.md).
func encodeLinks(links []acp.Link) []Link {
	out := []Link{}
	for _, l := range links {
		if t := LinkType(l.Type); t.Valid() {
			out = append(out, Link{Type: t, Url: l.URL})
		}
	}
	return out
}

func encodeTotals(entries []checkout.TotalEntry) []Total {
	out := make([]Total, len(entries))
	for i, e := range entries {
		out[i] = Total{Type: TotalType(e.Type), DisplayText: e.DisplayText, Amount: int(e.Amount)}
	}
	return out
}

// encodeOption renders an offered option as FulfillmentOptionShipping or ...Digital,
// with its cost as subtotal, tax and total; false for a type this version cannot show.
func encodeOption(o checkout.OfferedOption) (CheckoutSessionBase_FulfillmentOptions_Item, bool) {
	var item CheckoutSessionBase_FulfillmentOptions_Item
	totals := []Total{
		{Type: TotalTypeSubtotal, DisplayText: "Subtotal", Amount: int(o.Subtotal)},
		{Type: TotalTypeTax, DisplayText: "Tax", Amount: int(o.Tax)},
		{Type: TotalTypeTotal, DisplayText: "Total", Amount: int(o.Total)},
	}
	var err error
	switch o.Type {
	case checkout.FulfillmentShipping:
		err = item.FromFulfillmentOptionShipping(FulfillmentOptionShipping{
			Type: FulfillmentOptionShippingTypeShipping, Id: o.ID, Title: o.Title, Description: nonEmpty(o.Subtitle),
			Carrier: nonEmpty(o.Carrier), EarliestDeliveryTime: o.EarliestDelivery, LatestDeliveryTime: o.LatestDelivery,
			Totals: totals,
		})
	case checkout.FulfillmentDigital:
		err = item.FromFulfillmentOptionDigital(FulfillmentOptionDigital{
			Type: FulfillmentOptionDigitalTypeDigital, Id: o.ID, Title: o.Title, Description: nonEmpty(o.Subtitle),
			Totals: totals,
		})
	default:
		return item, false
	}
	return item, err == nil
}

// messageKinds is how each domain message code shows in 2026-04-17: its severity and
// who resolves it. A missing or invalid value is the buyer's to give; an item out of
// stock asks the buyer to review the cart; a declined payment the agent can retry
// with another card.
var messageKinds = map[checkout.MessageCode]struct {
	severity   MessageErrorSeverity
	resolution MessageErrorResolution
}{
	checkout.CodeMissing:         {MessageErrorSeverityHigh, MessageErrorResolutionRequiresBuyerInput},
	checkout.CodeInvalid:         {MessageErrorSeverityHigh, MessageErrorResolutionRequiresBuyerInput},
	checkout.CodeOutOfStock:      {MessageErrorSeverityHigh, MessageErrorResolutionRequiresBuyerReview},
	checkout.CodePaymentDeclined: {MessageErrorSeverityMedium, MessageErrorResolutionRecoverable},
	// The buyer must choose another card: this agent cannot run 3-D Secure.
	checkout.CodeInterventionRequired: {MessageErrorSeverityHigh, MessageErrorResolutionRequiresBuyerInput},
}

func encodeMessage(m checkout.Message) CheckoutSessionBase_Messages_Item {
	var item CheckoutSessionBase_Messages_Item
	param := nonEmpty(pathOf(m.Field))
	if m.Type == checkout.MessageInfo {
		_ = item.FromMessageInfo(MessageInfo{
			Type: MessageInfoTypeInfo, Severity: ptr(MessageInfoSeverityInfo), Param: param,
			ContentType: MessageInfoContentTypePlain, Content: m.Content,
		})
		return item
	}
	if m.Type == checkout.MessageWarning {
		// A rejected discount code: the session can still be paid, without the discount.
		_ = item.FromMessageWarning(MessageWarning{
			Type: Warning, Code: MessageWarningCode(m.Code), Resolution: ptr(MessageWarningResolutionRecoverable),
			Param: param, ContentType: MessageWarningContentTypePlain, Content: m.Content,
		})
		return item
	}
	k, ok := messageKinds[m.Code]
	if !ok {
		k.severity, k.resolution = MessageErrorSeverityHigh, MessageErrorResolutionRequiresBuyerInput
	}
	_ = item.FromMessageError(MessageError{
		Type: MessageErrorTypeError, Code: MessageErrorCode(m.Code), Severity: ptr(k.severity), Resolution: ptr(k.resolution),
		Param: param, ContentType: MessageErrorContentTypePlain, Content: m.Content,
	})
	return item
}

func ptr[T any](v T) *T { return &v }

// alloc sets *p to a new zero value and returns it: the generated authentication
// metadata nests anonymous structs, whose types cannot be named here.
func alloc[T any](p **T) *T {
	*p = new(T)
	return *p
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// sessionStatus names a domain status in this version, whose enum has a name of its own
// for a completion waiting on the payment service provider (the version's in_progress
// is the older name, which 2025-09-29 uses).
func sessionStatus(s checkout.Status) CheckoutSessionBaseStatus {
	if s == checkout.StatusCompleteInProgress {
		return CheckoutSessionBaseStatusCompleteInProgress
	}
	return CheckoutSessionBaseStatus(s)
}
