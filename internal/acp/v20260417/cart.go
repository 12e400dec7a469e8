package v20260417

import (
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/acp"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
)

// The 2026-04-17 cart API (openapi.cart.yaml, schema.cart.json). Its bodies are written
// by hand rather than generated: a Cart is the checkout bundle's LineItem, Buyer, Total
// and message types (generated in checkout.gen.go) under four fields of its own, and
// the cart bundle reaches them through a $ref that does not resolve as written
// (checklist I-37). Generating it would give a second copy of every checkout type in
// another package; the requests reuse the session's item and buyer decoders, so a cart
// item is refused exactly where a session item is (docs/decisions.md).

// Cart is the 2026-04-17 Cart response.
type Cart struct {
	Id        string                              `json:"id"`
	LineItems []LineItem                          `json:"line_items"`
	Buyer     *Buyer                              `json:"buyer,omitempty"`
	Currency  string                              `json:"currency"`
	Totals    []Total                             `json:"totals"`
	Messages  []CheckoutSessionBase_Messages_Item `json:"messages,omitempty"`
	ExpiresAt *time.Time                          `json:"expires_at,omitempty"`
}

// cartBody is a CartCreateRequest or, without locale, a CartUpdateRequest.
type cartBody struct {
	LineItems *[]item `json:"line_items"`
	Buyer     *buyer  `json:"buyer"`
	Locale    *string `json:"locale"`
}

type cartUpdateBody struct {
	LineItems *[]item `json:"line_items"`
	Buyer     *buyer  `json:"buyer"`
}

// DecodeCartCreate decodes a CartCreateRequest.
func (API) DecodeCartCreate(body []byte) (checkout.CartChanges, error) {
	var req cartBody
	if err := acp.DecodeStrict(body, &req); err != nil {
		return checkout.CartChanges{}, err
	}
	return decodeCart(req)
}

// DecodeCartUpdate decodes a CartUpdateRequest: the whole cart, replacing the stored one
// (a buyer left out is removed).
func (API) DecodeCartUpdate(body []byte) (checkout.CartChanges, error) {
	var req cartUpdateBody
	if err := acp.DecodeStrict(body, &req); err != nil {
		return checkout.CartChanges{}, err
	}
	return decodeCart(cartBody{LineItems: req.LineItems, Buyer: req.Buyer})
}

func decodeCart(req cartBody) (checkout.CartChanges, error) {
	if err := acp.RequireFields(acp.Required{Path: "$.line_items", Present: req.LineItems != nil}); err != nil {
		return checkout.CartChanges{}, err
	}
	items, err := decodeItems(req.LineItems)
	if err != nil {
		return checkout.CartChanges{}, err
	}
	b, err := req.Buyer.domain("$.buyer")
	if err != nil {
		return checkout.CartChanges{}, err
	}
	return checkout.CartChanges{Items: items, Buyer: b, Locale: req.Locale}, nil
}

// EncodeCart renders v as a 2026-04-17 Cart. A problem with an item (out of stock, no
// longer sold) is a MessageError with its code, as in a session: the RFC's example shows
// it as a warning, whose codes do not include out_of_stock, so that example does not
// validate against the cart schema (docs/decisions.md).
func (API) EncodeCart(v checkout.CartView) any {
	c := v.Cart
	out := Cart{
		Id: c.ID, Currency: c.Currency, Buyer: encodeBuyer(c.Buyer),
		LineItems: make([]LineItem, len(v.Lines)),
		Totals:    encodeTotals(v.TotalEntries()),
		ExpiresAt: timePtr(c.ExpiresAt),
	}
	for i, l := range v.Lines {
		out.LineItems[i] = encodeLine(l)
	}
	for _, m := range v.Messages {
		out.Messages = append(out.Messages, encodeMessage(m))
	}
	return out
}
