package v20260417

import (
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
)

// The discount extension (DISC-RFC): codes in create and update requests, and the
// applied and rejected discounts in the session. It is active for a session whose
// agent listed "discount" in capabilities.extensions on create; automatic discounts
// show in the totals of every session either way (docs/decisions.md).

// discountExtension is the extension's name in capabilities.extensions.
const discountExtension = "discount"

// discountExtends are the schema fields the extension adds (DISC-RFC §3).
var discountExtends = []string{
	"$.CheckoutSessionCreateRequest.discounts",
	"$.CheckoutSessionUpdateRequest.discounts",
	"$.CheckoutSession.discounts",
}

// declares reports whether the agent lists extension name.
func (c *capabilities) declares(name string) bool {
	if c == nil || c.Extensions == nil {
		return false
	}
	for _, e := range *c.Extensions {
		if e == name {
			return true
		}
	}
	return false
}

// codes are the discount codes a create or update asks for: discounts.codes, else the
// deprecated coupons alias (DISC-RFC §10.1: discounts.codes wins when both are sent);
// nil when neither is, which keeps the session's codes.
func (f *cartFields) codes() *[]string {
	if f.Discounts != nil && f.Discounts.Codes != nil {
		return f.Discounts.Codes
	}
	return f.Coupons
}

// encodeExtensions lists the session's active extensions (nil: none).
func encodeExtensions(dq checkout.DiscountQuote) *Capabilities_Extensions {
	if !dq.Active {
		return nil
	}
	var ext Capabilities_Extensions
	_ = ext.FromCapabilitiesExtensions1([]ExtensionDeclaration{{Name: discountExtension, Extends: ptr(discountExtends)}})
	return &ext
}

// encodeDiscounts renders the session's discounts object (nil when the extension is
// not active). An item-level discount shows where it went (method each, allocations
// to the lines); an order-level one is one amount (method across), and a fulfillment
// discount is allocated to $.totals.fulfillment, as the official examples show them.
func encodeDiscounts(dq checkout.DiscountQuote) *DiscountsResponse {
	if !dq.Active {
		return nil
	}
	codes := dq.Codes
	if codes == nil {
		codes = []string{}
	}
	out := &DiscountsResponse{Codes: &codes, Applied: ptr(make([]AppliedDiscount, len(dq.Applied)))}
	for i, a := range dq.Applied {
		d := a.Discount
		ad := AppliedDiscount{
			Id: "di_" + d.ID, Code: nonEmpty(a.Code), Amount: int(a.Amount), Priority: ptr(a.Priority),
			Coupon: Coupon{Id: d.ID, Name: d.Title},
			Start:  d.StartsAt, End: d.EndsAt,
		}
		if d.Automatic() {
			ad.Automatic = ptr(true)
		}
		if d.PercentBps > 0 {
			ad.Coupon.PercentOff = ptr(float64(d.PercentBps) / 100)
		} else {
			ad.Coupon.AmountOff, ad.Coupon.Currency = ptr(int(d.AmountOff)), &d.Currency
		}
		if d.UsageLimit != nil {
			ad.Coupon.MaxRedemptions = ptr(*d.UsageLimit)
		}
		switch d.Scope {
		case checkout.ScopeItems, checkout.ScopeFulfillment:
			method := Each
			if d.Scope == checkout.ScopeFulfillment {
				method = Across
			}
			allocs := make([]DiscountAllocation, len(a.Allocations))
			for j, al := range a.Allocations {
				allocs[j] = DiscountAllocation{Path: pathOf(al.Target()), Amount: int(al.Amount)}
			}
			ad.Method, ad.Allocations = &method, &allocs
		default:
			ad.Method = ptr(Across)
		}
		(*out.Applied)[i] = ad
	}
	if len(dq.Rejected) > 0 {
		rejected := make([]RejectedDiscount, len(dq.Rejected))
		for i, r := range dq.Rejected {
			rejected[i] = RejectedDiscount{Code: r.Code, Reason: DiscountErrorCode(r.Reason), Message: nonEmpty(r.Message)}
		}
		out.Rejected = &rejected
	}
	return out
}
