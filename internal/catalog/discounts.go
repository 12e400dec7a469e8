package catalog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
)

// DiscountDoc is a discount as the merchant writes it: in a file for
// `agentic-commerce-server discounts import FILE`, in the body of POST /admin/discounts,
// and as both show it back (with the read-only fields filled). Exactly one of
// percent_bps and amount_off is given; currency is required with amount_off.
type DiscountDoc struct {
	ID    string `json:"id,omitempty"`
	Code  string `json:"code,omitempty"`
	Title string `json:"title"`
	// PercentBps is a percentage in basis points (2000 = 20%).
	PercentBps int    `json:"percent_bps,omitempty"`
	AmountOff  int64  `json:"amount_off,omitempty"`
	Currency   string `json:"currency,omitempty"`
	// Scope is order (the default), items or fulfillment.
	Scope         string     `json:"scope,omitempty"`
	ItemIDs       []string   `json:"item_ids,omitempty"`
	MinSubtotal   int64      `json:"min_subtotal,omitempty"`
	StartsAt      *time.Time `json:"starts_at,omitempty"`
	EndsAt        *time.Time `json:"ends_at,omitempty"`
	UsageLimit    *int       `json:"usage_limit,omitempty"`
	PerBuyerLimit *int       `json:"per_buyer_limit,omitempty"`
	// Stackable defaults to true: the discount combines with other stackable ones.
	Stackable *bool `json:"stackable,omitempty"`
	Priority  int   `json:"priority,omitempty"`

	// Read-only: shown back, refused in input.
	Automatic     bool       `json:"automatic"`
	Disabled      bool       `json:"disabled"`
	TimesRedeemed int        `json:"times_redeemed"`
	CreatedAt     *time.Time `json:"created_at,omitempty"`
}

// Discount converts the document into the domain's definition (not yet validated).
func (d DiscountDoc) Discount() checkout.Discount {
	stackable := d.Stackable == nil || *d.Stackable
	return checkout.Discount{
		ID: d.ID, Code: d.Code, Title: d.Title, PercentBps: d.PercentBps, AmountOff: d.AmountOff,
		Currency: d.Currency, Scope: checkout.DiscountScope(d.Scope), ItemIDs: d.ItemIDs,
		MinSubtotal: d.MinSubtotal, StartsAt: d.StartsAt, EndsAt: d.EndsAt, UsageLimit: d.UsageLimit,
		PerBuyerLimit: d.PerBuyerLimit, Stackable: stackable, Priority: d.Priority,
	}
}

// NewDiscountDoc shows a stored discount.
func NewDiscountDoc(d checkout.Discount) DiscountDoc {
	stackable := d.Stackable
	created := d.CreatedAt
	return DiscountDoc{
		ID: d.ID, Code: d.Code, Title: d.Title, PercentBps: d.PercentBps, AmountOff: d.AmountOff,
		Currency: d.Currency, Scope: string(d.Scope), ItemIDs: d.ItemIDs, MinSubtotal: d.MinSubtotal,
		StartsAt: d.StartsAt, EndsAt: d.EndsAt, UsageLimit: d.UsageLimit, PerBuyerLimit: d.PerBuyerLimit,
		Stackable: &stackable, Priority: d.Priority,
		Automatic: d.Automatic(), Disabled: d.Disabled, TimesRedeemed: d.Redeemed, CreatedAt: &created,
	}
}

// readOnly reports whether the document sets a field only the server fills.
func (d DiscountDoc) readOnly() bool {
	return d.Automatic || d.Disabled || d.TimesRedeemed != 0 || d.CreatedAt != nil
}

// DecodeDiscount reads one discount document strictly: unknown and read-only fields
// are refused.
func DecodeDiscount(body []byte) (checkout.Discount, error) {
	var doc DiscountDoc
	if err := strictJSON(body, &doc); err != nil {
		return checkout.Discount{}, err
	}
	if doc.readOnly() {
		return checkout.Discount{}, fmt.Errorf("automatic, disabled, times_redeemed and created_at are set by the server")
	}
	return doc.Discount(), nil
}

// ParseDiscounts reads a discounts file: a JSON array of discount documents, or an
// object {"discounts": [...]}. Validation is the domain's (checkout.Discount.Validate).
func ParseDiscounts(r io.Reader) ([]checkout.Discount, error) {
	body, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	body = bytes.TrimSpace(body)
	var raw []json.RawMessage
	if len(body) > 0 && body[0] == '{' {
		var wrapper struct {
			Discounts []json.RawMessage `json:"discounts"`
		}
		if err := strictJSON(body, &wrapper); err != nil {
			return nil, err
		}
		raw = wrapper.Discounts
	} else if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("a discounts file is a JSON array of discounts or {\"discounts\": [...]}: %w", err)
	}
	out := make([]checkout.Discount, len(raw))
	for i, r := range raw {
		if out[i], err = DecodeDiscount(r); err != nil {
			return nil, fmt.Errorf("discount %d: %w", i, err)
		}
	}
	return out, nil
}

func strictJSON(body []byte, dst any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("unexpected data after the JSON value")
	}
	return nil
}
