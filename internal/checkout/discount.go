package checkout

import (
	"fmt"
	"math/bits"
	"slices"
	"strings"
	"time"
)

// DiscountScope says what a discount takes money off.
type DiscountScope string

// The scopes of a discount.
const (
	// ScopeOrder takes money off the merchandise of the whole order ("$5 off your
	// order"); it is shown as an order-level discount, and spread over the lines only
	// so that tax is computed on what the buyer pays.
	ScopeOrder DiscountScope = "order"
	// ScopeItems takes money off each eligible line ("20% off shirts"): a percentage of
	// each line, or a fixed amount off each unit. It is shown on the lines.
	ScopeItems DiscountScope = "items"
	// ScopeFulfillment takes money off the selected fulfillment option ("free shipping
	// over $50").
	ScopeFulfillment DiscountScope = "fulfillment"
)

// DiscountReason is why a requested code was not applied: the discount extension's
// discount_code_* codes, which every version that can show them uses as they are.
type DiscountReason string

// The reasons a code is rejected.
const (
	ReasonExpired           DiscountReason = "discount_code_expired"
	ReasonInvalid           DiscountReason = "discount_code_invalid"
	ReasonAlreadyApplied    DiscountReason = "discount_code_already_applied"
	ReasonCombination       DiscountReason = "discount_code_combination_disallowed"
	ReasonMinimumNotMet     DiscountReason = "discount_code_minimum_not_met"
	ReasonUsageLimitReached DiscountReason = "discount_code_usage_limit_reached"
	ReasonUserIneligible    DiscountReason = "discount_code_user_ineligible"
	ReasonUserNotLoggedIn   DiscountReason = "discount_code_user_not_logged_in"
)

// Limits of discount definitions and of the codes one session holds.
const (
	// MaxDiscountCodes bounds the codes one session holds.
	MaxDiscountCodes = 20
	// MaxDiscountCodeLength bounds a code, in bytes.
	MaxDiscountCodeLength = 64
	// DefaultDiscountPriority is the priority of a discount created without one.
	DefaultDiscountPriority = 100
	maxDiscountTitle        = 200
	maxDiscountItems        = 1000
	maxDiscountAmount       = 1_000_000_000_000
	maxDiscountPriority     = 1_000_000
	maxDiscountUsage        = 1_000_000_000
	codeAlphabet            = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
)

// Discount is a merchant's discount: a code the buyer enters, or an automatic one
// (Code empty) that applies to every session it fits. Exactly one of PercentBps and
// AmountOff is set.
type Discount struct {
	ID    string
	Code  string
	Title string
	// PercentBps is the percentage in basis points (2000 = 20%).
	PercentBps int
	// AmountOff is a fixed amount in minor units of Currency: off the order, off each
	// eligible unit (scope items) or off the fulfillment cost.
	AmountOff int64
	// Currency limits the discount to sessions in that currency ("" only for a
	// percentage: any currency).
	Currency string
	Scope    DiscountScope
	// ItemIDs are the variants a discount of scope items applies to (empty: all).
	ItemIDs []string
	// MinSubtotal is the merchandise subtotal (before discounts) the session must
	// reach.
	MinSubtotal int64
	// StartsAt and EndsAt bound when the discount applies (nil: unbounded).
	StartsAt *time.Time
	EndsAt   *time.Time
	// UsageLimit caps completed orders using the discount, PerBuyerLimit those of one
	// buyer email address (nil: no cap).
	UsageLimit    *int
	PerBuyerLimit *int
	// Stackable discounts combine with each other; one that is not (exclusive) is
	// never combined with another discount.
	Stackable bool
	// Priority orders the discounts of one session: lower first, each computed on what
	// the earlier ones left (DISC-RFC §5.2).
	Priority int
	Disabled bool
	// Redeemed counts the completed orders that used the discount so far, and
	// BuyerRedeemed those of the session's buyer (loaded with the session). Loaded to
	// price a session, they are counted only as far as pricing compares them: Redeemed
	// up to UsageLimit and 0 without one, BuyerRedeemed 0 without PerBuyerLimit or a
	// buyer's email, so reading a session does not grow slower with every order. The
	// merchant's listings count every order.
	Redeemed      int
	BuyerRedeemed int
	// UsedBySession says the session being priced was completed with this discount.
	UsedBySession bool
	CreatedAt     time.Time
}

// Automatic reports whether d applies without a code.
func (d *Discount) Automatic() bool { return d.Code == "" }

// Validate normalises and checks a discount definition before it is stored; errors
// name the discount's fields (the admin API renders them as its JSON keys).
func (d *Discount) Validate() error {
	d.ID = strings.TrimSpace(d.ID)
	d.Code = NormalizeCode(d.Code)
	d.Title = strings.TrimSpace(d.Title)
	d.Currency = strings.ToLower(strings.TrimSpace(d.Currency))
	if d.ID != "" && !validCode(strings.ToUpper(d.ID)) {
		return Errorf(KindInvalid, "invalid", At(FieldID), "id holds only letters, digits, - and _ (at most %d).", MaxDiscountCodeLength)
	}
	if d.Code != "" && !validCode(d.Code) {
		return Errorf(KindInvalid, "invalid", At(FieldDiscountCode),
			"A code holds only letters, digits, - and _ (at most %d).", MaxDiscountCodeLength)
	}
	if d.Title == "" {
		return Errorf(KindInvalid, "missing", At(FieldDiscountTitle), "title is required.")
	}
	if err := maxLength(At(FieldDiscountTitle), "title", d.Title, maxDiscountTitle); err != nil {
		return err
	}
	if (d.PercentBps == 0) == (d.AmountOff == 0) || d.PercentBps < 0 || d.PercentBps > 10_000 ||
		d.AmountOff < 0 || d.AmountOff > maxDiscountAmount {
		return Errorf(KindInvalid, "invalid", At(FieldDiscountValue),
			"Give exactly one of percent_bps (1 to 10000) and amount_off (1 to %d).", int64(maxDiscountAmount))
	}
	if d.AmountOff > 0 && d.Currency == "" {
		return Errorf(KindInvalid, "missing", At(FieldCurrency), "currency is required with amount_off.")
	}
	if d.Currency != "" && !isCurrencyCode(d.Currency) {
		return Errorf(KindInvalid, "invalid", At(FieldCurrency), "currency must be an ISO 4217 code such as usd.")
	}
	switch d.Scope {
	case "":
		d.Scope = ScopeOrder
	case ScopeOrder, ScopeItems, ScopeFulfillment:
	default:
		return Errorf(KindInvalid, "invalid", At(FieldDiscountScope), "scope must be order, items or fulfillment.")
	}
	if len(d.ItemIDs) > 0 && d.Scope != ScopeItems {
		return Errorf(KindInvalid, "invalid", At(FieldDiscountItems), "item_ids only apply to a discount of scope items.")
	}
	if len(d.ItemIDs) > maxDiscountItems {
		return Errorf(KindInvalid, "invalid", At(FieldDiscountItems), "item_ids holds at most %d ids.", maxDiscountItems)
	}
	for i, id := range d.ItemIDs {
		if strings.TrimSpace(id) == "" || len(id) > MaxIDLength {
			return Errorf(KindInvalid, "invalid", At(FieldDiscountItems).Index(i), "An item id is 1 to %d characters.", MaxIDLength)
		}
	}
	if d.MinSubtotal < 0 || d.MinSubtotal > maxDiscountAmount {
		return Errorf(KindInvalid, "invalid", At(FieldDiscountMinimum), "min_subtotal must be from 0 to %d.", int64(maxDiscountAmount))
	}
	if d.StartsAt != nil && d.EndsAt != nil && !d.EndsAt.After(*d.StartsAt) {
		return Errorf(KindInvalid, "invalid", At(FieldDiscountEnd), "ends_at must be after starts_at.")
	}
	for _, l := range []struct {
		name  FieldName
		label string
		v     *int
	}{{FieldDiscountUsageLimit, "usage_limit", d.UsageLimit}, {FieldDiscountBuyerLimit, "per_buyer_limit", d.PerBuyerLimit}} {
		if l.v != nil && (*l.v < 1 || *l.v > maxDiscountUsage) {
			return Errorf(KindInvalid, "invalid", At(l.name), "%s must be from 1 to %d.", l.label, maxDiscountUsage)
		}
	}
	if d.Priority == 0 {
		d.Priority = DefaultDiscountPriority
	}
	if d.Priority < 1 || d.Priority > maxDiscountPriority {
		return Errorf(KindInvalid, "invalid", At(FieldDiscountPriority), "priority must be from 1 to %d.", maxDiscountPriority)
	}
	return nil
}

// validCode reports whether an upper-cased code holds only the code alphabet.
func validCode(c string) bool {
	if c == "" || len(c) > MaxDiscountCodeLength {
		return false
	}
	for _, r := range c {
		if !strings.ContainsRune(codeAlphabet, r) {
			return false
		}
	}
	return true
}

// NormalizeCode is the form codes are matched in: case-insensitive (DISC-RFC §6.1).
func NormalizeCode(code string) string { return strings.ToUpper(strings.TrimSpace(code)) }

// validateCodes checks the codes a create or update requests. A code outside the code
// alphabet cannot name a discount, but it is the agent's to send: it is kept and
// rejected as invalid in the quote, like an unknown code. Only what would make the
// session unreasonably large is refused.
func validateCodes(codes []string) error {
	if len(codes) > MaxDiscountCodes {
		return Errorf(KindInvalid, "invalid", At(FieldDiscountCodes),
			"At most %d discount codes can be applied to one checkout session.", MaxDiscountCodes)
	}
	for i, c := range codes {
		if len(c) > MaxDiscountCodeLength {
			return Errorf(KindInvalid, "invalid", At(FieldDiscountCodes).Index(i),
				"A discount code is at most %d characters.", MaxDiscountCodeLength)
		}
	}
	return nil
}

// Allocation is the part of an applied discount that went to one target: a line
// (Line >= 0) or the fulfillment cost (Line == -1).
type Allocation struct {
	Line   int
	Amount int64
}

// Target names the allocation's target for a version to render.
func (a Allocation) Target() Field {
	if a.Line < 0 {
		return At(FieldFulfillmentCost)
	}
	return At(FieldLines).Index(a.Line)
}

// AppliedDiscount is a discount that took money off a session.
type AppliedDiscount struct {
	Discount Discount
	// Code is the code as the agent sent it ("" for an automatic discount).
	Code   string
	Amount int64
	// Allocations say where Amount went; they always sum to Amount. An order-level
	// discount is spread over the lines (largest remainder) only for tax; versions show
	// it as one order-level amount.
	Allocations []Allocation
	// Priority is the 1-based position in which the discount was computed.
	Priority int
}

// PerItem reports whether the discount is shown on the lines (items_discount).
func (a AppliedDiscount) PerItem() bool { return a.Discount.Scope == ScopeItems }

// RejectedCode is a requested code that takes nothing off, and why.
type RejectedCode struct {
	// Index is the code's position in the session's codes.
	Index   int
	Code    string
	Reason  DiscountReason
	Message string
}

// DiscountQuote is what the session's discounts came to.
type DiscountQuote struct {
	// Active says the agent uses the discount extension: it sees codes, applied and
	// rejected discounts (automatic discounts show in the totals either way).
	Active   bool
	Codes    []string
	Applied  []AppliedDiscount
	Rejected []RejectedCode
}

// discountCandidate is a discount considered for a session: an automatic one, or the
// definition a requested code names (nil Discount: no such code).
type discountCandidate struct {
	d     *Discount
	code  string
	index int // position in the session's codes; -1 for automatic
}

// evaluateDiscounts decides which discounts apply to the priced lines and option of
// s, computes their amounts in priority order (each on what the earlier ones left) and
// allocates them. lines and fulfillment are changed in place: the lines' Discount and
// OrderDiscount, and the fulfillment discount returned.
func evaluateDiscounts(s *Session, c Catalog, now time.Time, lines []PricedLine, fulfillment int64, fulfillmentSelected bool) (DiscountQuote, int64) {
	dq := DiscountQuote{Active: s.DiscountsActive, Codes: s.DiscountCodes}
	byCode := make(map[string]*Discount, len(c.Discounts))
	var cands []discountCandidate
	for i := range c.Discounts {
		d := &c.Discounts[i]
		if d.Automatic() {
			cands = append(cands, discountCandidate{d: d, index: -1})
		} else {
			byCode[NormalizeCode(d.Code)] = d
		}
	}
	var merchandise int64
	for _, l := range lines {
		merchandise += l.BaseAmount
	}
	email := ""
	if s.Buyer != nil {
		email = s.Buyer.Email
	}
	seen := map[string]bool{}
	reject := func(i int, code string, reason DiscountReason, what string) {
		dq.Rejected = append(dq.Rejected, RejectedCode{Index: i, Code: code, Reason: reason,
			Message: fmt.Sprintf("Code '%s' %s.", code, what)})
	}
	if s.DiscountsActive {
		for i, code := range s.DiscountCodes {
			n := NormalizeCode(code)
			if seen[n] {
				reject(i, code, ReasonAlreadyApplied, "is already applied")
				continue
			}
			seen[n] = true
			cands = append(cands, discountCandidate{d: byCode[n], code: code, index: i})
		}
	}
	// Eligibility first, in priority order (automatic before codes at equal priority,
	// codes in the agent's order), then the amounts.
	eligible := make([]discountCandidate, 0, len(cands))
	for _, cd := range cands {
		reason, what := eligibility(cd.d, s, lines, merchandise, email, now, fulfillmentSelected)
		if reason == "" {
			eligible = append(eligible, cd)
		} else if cd.index >= 0 {
			reject(cd.index, cd.code, reason, what)
		}
	}
	slices.SortStableFunc(eligible, func(a, b discountCandidate) int {
		if a.d.Priority != b.d.Priority {
			return a.d.Priority - b.d.Priority
		}
		return a.index - b.index
	})
	remaining := make([]int64, len(lines))
	for i, l := range lines {
		remaining[i] = l.BaseAmount
	}
	fulfillmentLeft := fulfillment
	exclusive := false
	for _, cd := range eligible {
		d := cd.d
		if exclusive || (!d.Stackable && len(dq.Applied) > 0) {
			if cd.index >= 0 {
				reject(cd.index, cd.code, ReasonCombination, "cannot be combined with the other discounts of this checkout")
			}
			continue
		}
		applied := AppliedDiscount{Discount: *d, Code: cd.code}
		switch d.Scope {
		case ScopeItems:
			for i, l := range lines {
				if !d.appliesTo(l.VariantID) || remaining[i] == 0 {
					continue
				}
				off := applyRate(remaining[i], d.PercentBps)
				if d.AmountOff > 0 {
					off = d.AmountOff * int64(l.Quantity)
				}
				off = min(off, remaining[i])
				if off > 0 {
					applied.Allocations = append(applied.Allocations, Allocation{Line: i, Amount: off})
					applied.Amount += off
				}
			}
		case ScopeOrder:
			var left int64
			for _, r := range remaining {
				left += r
			}
			off := min(d.AmountOff, left)
			if d.PercentBps > 0 {
				off = applyRate(left, d.PercentBps)
			}
			for i, part := range Allocate(off, remaining) {
				if part > 0 {
					applied.Allocations = append(applied.Allocations, Allocation{Line: i, Amount: part})
				}
			}
			applied.Amount = off
		case ScopeFulfillment:
			off := min(d.AmountOff, fulfillmentLeft)
			if d.PercentBps > 0 {
				off = applyRate(fulfillmentLeft, d.PercentBps)
			}
			if off > 0 {
				applied.Allocations = []Allocation{{Line: -1, Amount: off}}
			}
			applied.Amount = off
			fulfillmentLeft -= off
		}
		if applied.Amount == 0 {
			if cd.index >= 0 {
				reject(cd.index, cd.code, ReasonInvalid, "takes nothing off this checkout")
			}
			continue
		}
		for _, a := range applied.Allocations {
			if a.Line < 0 {
				continue
			}
			remaining[a.Line] -= a.Amount
			if d.Scope == ScopeItems {
				lines[a.Line].Discount += a.Amount
			} else {
				lines[a.Line].OrderDiscount += a.Amount
			}
		}
		applied.Priority = len(dq.Applied) + 1
		dq.Applied = append(dq.Applied, applied)
		exclusive = !d.Stackable
	}
	slices.SortStableFunc(dq.Rejected, func(a, b RejectedCode) int { return a.Index - b.Index })
	return dq, fulfillment - fulfillmentLeft
}

// eligibility says why d does not apply to the session ("" when it does), with the
// words a message about its code ends in.
//
// A completed session shows the discounts it was paid with, whatever became of them
// since (disabled, expired, used up): exactly those its order redeemed.
func eligibility(d *Discount, s *Session, lines []PricedLine, merchandise int64, email string, now time.Time, fulfillmentSelected bool) (DiscountReason, string) {
	if s.State == StateCompleted {
		if d == nil || !d.UsedBySession {
			return ReasonInvalid, "was not applied to this order"
		}
		return "", ""
	}
	switch {
	case d == nil || d.Disabled:
		return ReasonInvalid, "is not a valid discount code"
	case d.Currency != "" && d.Currency != s.Currency:
		return ReasonInvalid, fmt.Sprintf("is not valid for payments in %s", strings.ToUpper(s.Currency))
	case d.StartsAt != nil && now.Before(*d.StartsAt):
		return ReasonInvalid, "is not active yet"
	case d.EndsAt != nil && !now.Before(*d.EndsAt):
		return ReasonExpired, "expired on " + d.EndsAt.UTC().Format("January 2, 2006")
	case d.UsageLimit != nil && d.Redeemed >= *d.UsageLimit:
		return ReasonUsageLimitReached, "has reached its usage limit"
	case d.PerBuyerLimit != nil && email != "" && d.BuyerRedeemed >= *d.PerBuyerLimit:
		return ReasonUsageLimitReached, "has already been used the maximum number of times by this buyer"
	case merchandise < d.MinSubtotal:
		return ReasonMinimumNotMet, fmt.Sprintf("needs a subtotal of at least %d (minor units)", d.MinSubtotal)
	case d.Scope == ScopeFulfillment && !fulfillmentSelected:
		return ReasonInvalid, "applies to the fulfillment cost; choose a fulfillment option first"
	case d.Scope == ScopeItems && !slices.ContainsFunc(lines, func(l PricedLine) bool { return d.appliesTo(l.VariantID) }):
		return ReasonInvalid, "applies to none of the items in this checkout"
	}
	return "", ""
}

func (d *Discount) appliesTo(variantID string) bool {
	return len(d.ItemIDs) == 0 || slices.Contains(d.ItemIDs, variantID)
}

// Allocate splits amount over parts in proportion to weights, in exact minor units by
// the largest remainder method: every part gets floor(amount*w/sum), and the units left
// go one each to the largest remainders (earlier parts first on ties). The parts sum to
// amount exactly, none is negative and none exceeds its weight when amount <= sum.
// With no positive weight everything goes to the first part (nothing when there are
// no parts).
func Allocate(amount int64, weights []int64) []int64 {
	out := make([]int64, len(weights))
	if len(weights) == 0 || amount <= 0 {
		return out
	}
	var sum int64
	for _, w := range weights {
		sum += max(w, 0)
	}
	if sum == 0 {
		out[0] = amount
		return out
	}
	type rem struct {
		i int
		r int64
	}
	rems := make([]rem, len(weights))
	var given int64
	for i, w := range weights {
		w = max(w, 0)
		q, r := mulDiv(amount, w, sum)
		out[i] = q
		given += q
		rems[i] = rem{i, r}
	}
	slices.SortStableFunc(rems, func(a, b rem) int {
		switch {
		case a.r > b.r:
			return -1
		case a.r < b.r:
			return 1
		}
		return a.i - b.i
	})
	for k := int64(0); k < amount-given; k++ {
		out[rems[k].i]++
	}
	return out
}

// mulDiv returns the quotient and remainder of a*b/c for non-negative a and b and
// positive c with b <= c, in 128-bit arithmetic: amount times weight overflows int64
// for large carts. b <= c keeps the quotient <= a, and so within int64.
func mulDiv(a, b, c int64) (q, r int64) {
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	quo, rem := bits.Div64(hi, lo, uint64(c))
	return int64(quo), int64(rem)
}
