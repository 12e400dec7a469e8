package checkout

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestAllocateProperties: for random amounts and weights the parts sum to the amount,
// none is negative or above its weight, every part is floor or floor+1 of its exact
// share, and the extra units go to the largest remainders.
func TestAllocateProperties(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(7, 11))
	for n := 0; n < 5000; n++ {
		weights := make([]int64, 1+r.IntN(8))
		var sum int64
		for i := range weights {
			switch r.IntN(4) {
			case 0:
				weights[i] = 0
			case 1:
				weights[i] = r.Int64N(100)
			default:
				weights[i] = r.Int64N(1_000_000_000_000)
			}
			sum += weights[i]
		}
		amount := int64(0)
		if sum > 0 {
			amount = r.Int64N(sum + 1)
		}
		parts := Allocate(amount, weights)
		var got int64
		for i, p := range parts {
			got += p
			if p < 0 || p > weights[i] {
				t.Fatalf("Allocate(%d, %v) = %v: part %d outside [0, %d]", amount, weights, parts, i, weights[i])
			}
		}
		if got != amount {
			t.Fatalf("Allocate(%d, %v) = %v sums to %d", amount, weights, parts, got)
		}
		if sum == 0 {
			continue
		}
		// Largest remainder: every part is its share rounded down, or up by one; a part
		// rounded up never has a smaller remainder than one rounded down.
		minUp, maxDown := int64(-1), int64(-1)
		for i, p := range parts {
			q, rem := mulDiv(amount, weights[i], sum)
			switch p {
			case q:
				maxDown = max(maxDown, rem)
			case q + 1:
				if minUp < 0 || rem < minUp {
					minUp = rem
				}
			default:
				t.Fatalf("Allocate(%d, %v) = %v: part %d is not floor or floor+1 of %d", amount, weights, parts, i, q)
			}
		}
		if minUp >= 0 && maxDown > minUp {
			t.Fatalf("Allocate(%d, %v) = %v: a remainder %d rounded down beats %d rounded up", amount, weights, parts, maxDown, minUp)
		}
	}
}

func TestAllocateExamples(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		amount  int64
		weights []int64
		want    []int64
	}{
		{100, []int64{1, 1, 1}, []int64{34, 33, 33}}, // ties: earlier first
		{500, []int64{199900, 9900}, []int64{476, 24}},
		{7, []int64{0, 0}, []int64{7, 0}},
		{0, []int64{5, 5}, []int64{0, 0}},
		{5, nil, []int64{}},
		// The product overflows int64: 128-bit arithmetic keeps it exact.
		{1_000_000_000_000, []int64{3_000_000_000_000_000, 6_000_000_000_000_000}, []int64{333_333_333_333, 666_666_666_667}},
	} {
		if got := Allocate(tc.amount, tc.weights); !slices.Equal(got, tc.want) {
			t.Errorf("Allocate(%d, %v) = %v, want %v", tc.amount, tc.weights, got, tc.want)
		}
	}
}

var (
	shirt = Variant{ID: "shirt", Title: "Shirt", PriceAmount: 2500, Currency: "usd", Available: true, Fulfillment: FulfillmentShipping}
	pants = Variant{ID: "pants", Title: "Pants", PriceAmount: 6000, Currency: "usd", Available: true, Fulfillment: FulfillmentShipping}
)

func discountCatalog(rate int, ds ...Discount) Catalog {
	c := testCatalog(rate)
	c.Variants["shirt"], c.Variants["pants"] = shirt, pants
	c.Discounts = ds
	return c
}

func discountSession(codes ...string) *Session {
	return &Session{State: StateOpen, Currency: "usd", Buyer: ada, FulfillmentAddress: addr, FulfillmentOptionID: "taxed",
		DiscountsActive: true, DiscountCodes: codes,
		Lines: []Line{{ID: "l1", VariantID: "shirt", Quantity: 2, UnitAmount: 2500}, {ID: "l2", VariantID: "pants", Quantity: 1, UnitAmount: 6000}}}
}

// checkDiscountInvariants holds for every quote: the allocations of each applied
// discount sum to its amount, items_discount is the lines' discounts, and the total is
// what the lines and the fulfillment cost come to.
func checkDiscountInvariants(t *testing.T, q Quote) {
	t.Helper()
	var items, order, lines int64
	for _, a := range q.Discounts.Applied {
		var sum int64
		for _, al := range a.Allocations {
			if al.Amount <= 0 {
				t.Errorf("%s: allocation %+v", a.Discount.ID, al)
			}
			sum += al.Amount
		}
		if sum != a.Amount {
			t.Errorf("%s: allocations sum to %d, amount %d", a.Discount.ID, sum, a.Amount)
		}
		if a.PerItem() {
			items += a.Amount
		} else {
			order += a.Amount
		}
	}
	var lineDiscounts, lineOrder int64
	for _, l := range q.Lines {
		lineDiscounts += l.Discount
		lineOrder += l.OrderDiscount
		lines += l.Total
		if l.Subtotal != l.BaseAmount-l.Discount || l.Total != l.Subtotal-l.OrderDiscount+l.Tax || l.Total < 0 {
			t.Errorf("line %+v does not add up", l)
		}
	}
	if q.Totals.ItemsDiscount != items || lineDiscounts != items {
		t.Errorf("items_discount = %d, lines %d, applied %d", q.Totals.ItemsDiscount, lineDiscounts, items)
	}
	if q.Totals.Discount != order {
		t.Errorf("discount = %d, applied order-level %d", q.Totals.Discount, order)
	}
	if q.Totals.Total != q.Totals.Subtotal-q.Totals.Discount+q.Totals.Fulfillment+q.Totals.Tax {
		t.Errorf("totals %+v do not add up", q.Totals)
	}
}

func TestPriceAppliesDiscountsBeforeTax(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	summer := Discount{ID: "summer", Code: "SUMMER20", Title: "Summer", PercentBps: 2000, Scope: ScopeItems, Stackable: true, Priority: 1}
	loyalty := Discount{ID: "loyalty", Code: "LOYALTY5", Title: "Loyalty", AmountOff: 500, Currency: "usd", Scope: ScopeOrder, Stackable: true, Priority: 2}
	ship := Discount{ID: "ship", Title: "Free shipping", PercentBps: 10000, Scope: ScopeFulfillment, MinSubtotal: 5000, Stackable: true, Priority: 3}
	q := Price(discountSession("summer20", "LOYALTY5"), discountCatalog(1000, summer, loyalty, ship), now)
	checkDiscountInvariants(t, q)
	if len(q.Discounts.Applied) != 3 || len(q.Discounts.Rejected) != 0 {
		t.Fatalf("discounts = %+v", q.Discounts)
	}
	// Shirts 5000 and pants 6000: 20% each is 1000 and 1200; $5 off the 8800 left is
	// spread over the 4000 and 4800 left by largest remainder (227.27 -> 227, 272.73 ->
	// 273); shipping 1001 is free.
	if a := q.Discounts.Applied[0]; a.Amount != 2200 || !slices.Equal(a.Allocations, []Allocation{{0, 1000}, {1, 1200}}) || a.Code != "summer20" {
		t.Errorf("summer = %+v", a)
	}
	if a := q.Discounts.Applied[1]; a.Amount != 500 || !slices.Equal(a.Allocations, []Allocation{{0, 227}, {1, 273}}) {
		t.Errorf("loyalty = %+v", a)
	}
	if a := q.Discounts.Applied[2]; a.Amount != 1001 || !slices.Equal(a.Allocations, []Allocation{{-1, 1001}}) || a.Priority != 3 {
		t.Errorf("shipping = %+v", a)
	}
	// Tax 10% on what is paid: (4000-227) + (4800-273) = 8300 -> 377 + 453; shipping 0.
	want := Totals{ItemsBaseAmount: 11000, ItemsDiscount: 2200, Subtotal: 8800, Discount: 1501, Fulfillment: 1001,
		FulfillmentSelected: true, Tax: 830, Total: 8800 - 500 + 830}
	if q.Totals != want {
		t.Errorf("totals = %+v\nwant     %+v", q.Totals, want)
	}
	if q.Status != StatusReadyForPayment {
		t.Errorf("status = %s", q.Status)
	}
}

func TestPriceRejectsCodes(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	past, future := now.Add(-time.Hour), now.Add(time.Hour)
	one := 1
	def := func(id, code string) Discount {
		return Discount{ID: id, Code: code, Title: id, AmountOff: 100, Currency: "usd", Scope: ScopeOrder, Stackable: true, Priority: 100}
	}
	expired, early, used, mine, big, eur, hats, off, excl := def("e", "EXPIRED"), def("s", "SOON"), def("u", "USED"), def("m", "MINE"),
		def("b", "BIG"), def("eur", "EURO"), def("h", "HATS"), def("o", "OFF"), def("x", "EXCL")
	expired.EndsAt, early.StartsAt = &past, &future
	used.UsageLimit, used.Redeemed = &one, 1
	mine.PerBuyerLimit, mine.BuyerRedeemed = &one, 1
	big.MinSubtotal = 20000
	eur.Currency = "eur"
	hats.Scope, hats.ItemIDs = ScopeItems, []string{"hat"}
	off.Disabled = true
	excl.Stackable = false
	ok := def("ok", "OK")
	codes := []string{"ok", "nope", "EXPIRED", "SOON", "USED", "MINE", "BIG", "EURO", "HATS", "OFF", "EXCL", "Ok"}
	q := Price(discountSession(codes...), discountCatalog(0, ok, expired, early, used, mine, big, eur, hats, off, excl), now)
	checkDiscountInvariants(t, q)
	want := map[int]DiscountReason{
		1: ReasonInvalid, 2: ReasonExpired, 3: ReasonInvalid, 4: ReasonUsageLimitReached, 5: ReasonUsageLimitReached,
		6: ReasonMinimumNotMet, 7: ReasonInvalid, 8: ReasonInvalid, 9: ReasonInvalid, 10: ReasonCombination, 11: ReasonAlreadyApplied,
	}
	if len(q.Discounts.Applied) != 1 || q.Discounts.Applied[0].Code != "ok" {
		t.Errorf("applied = %+v", q.Discounts.Applied)
	}
	if len(q.Discounts.Rejected) != len(want) {
		t.Fatalf("rejected = %+v", q.Discounts.Rejected)
	}
	warnings := 0
	for _, m := range q.Messages {
		if m.Type == MessageWarning {
			warnings++
		}
	}
	for i, r := range q.Discounts.Rejected {
		if want[r.Index] != r.Reason || r.Code != codes[r.Index] || (i > 0 && q.Discounts.Rejected[i-1].Index > r.Index) {
			t.Errorf("rejected %+v, want reason %s", r, want[r.Index])
		}
	}
	if warnings != len(want) || q.Status != StatusReadyForPayment {
		t.Errorf("%d warnings, status %s: a rejected code warns and does not block payment", warnings, q.Status)
	}
	// Without the extension, codes are not looked at; automatic discounts still apply.
	s := discountSession("OK")
	s.DiscountsActive = false
	auto := def("auto", "")
	q = Price(s, discountCatalog(0, ok, auto), now)
	if len(q.Discounts.Applied) != 1 || q.Discounts.Applied[0].Discount.ID != "auto" || q.Totals.Discount != 100 {
		t.Errorf("inactive extension: %+v, totals %+v", q.Discounts, q.Totals)
	}
}

// An exclusive discount applied first keeps every later one out; a completed session
// shows exactly the discounts its order used, whatever became of them.
func TestPriceExclusiveAndCompleted(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	excl := Discount{ID: "x", Code: "X", Title: "X", PercentBps: 5000, Scope: ScopeOrder, Priority: 1}
	auto := Discount{ID: "a", Title: "A", PercentBps: 1000, Scope: ScopeOrder, Stackable: true, Priority: 5}
	q := Price(discountSession("X"), discountCatalog(0, excl, auto), now)
	checkDiscountInvariants(t, q)
	if len(q.Discounts.Applied) != 1 || q.Discounts.Applied[0].Amount != 5500 {
		t.Errorf("applied = %+v", q.Discounts.Applied)
	}
	s := discountSession("X")
	s.State = StateCompleted
	excl.Disabled, excl.UsedBySession = true, true
	q = Price(s, discountCatalog(0, excl, auto), now.AddDate(1, 0, 0))
	if len(q.Discounts.Applied) != 1 || q.Discounts.Applied[0].Amount != 5500 || len(q.Discounts.Rejected) != 0 {
		t.Errorf("completed: %+v", q.Discounts)
	}
}

func TestDiscountValidate(t *testing.T) {
	t.Parallel()
	good := Discount{Code: " save10 ", Title: "Save", AmountOff: 1000, Currency: "USD"}
	if err := good.Validate(); err != nil || good.Code != "SAVE10" || good.Currency != "usd" || good.Scope != ScopeOrder || good.Priority != DefaultDiscountPriority {
		t.Fatalf("Validate = %v, %+v", err, good)
	}
	zero := 0
	for name, d := range map[string]Discount{
		"no value":         {Title: "t"},
		"both values":      {Title: "t", PercentBps: 10, AmountOff: 1, Currency: "usd"},
		"percent too big":  {Title: "t", PercentBps: 10001},
		"no currency":      {Title: "t", AmountOff: 1},
		"bad code":         {Title: "t", Code: "NO SPACES", PercentBps: 1},
		"no title":         {PercentBps: 1},
		"bad scope":        {Title: "t", PercentBps: 1, Scope: "shipping"},
		"items, not items": {Title: "t", PercentBps: 1, ItemIDs: []string{"a"}},
		"zero limit":       {Title: "t", PercentBps: 1, UsageLimit: &zero},
		"window":           {Title: "t", PercentBps: 1, StartsAt: ptr(time.Unix(10, 0)), EndsAt: ptr(time.Unix(5, 0))},
	} {
		if err := d.Validate(); err == nil {
			t.Errorf("%s: accepted %+v", name, d)
		} else if e, ok := AsError(err); !ok || e.Kind != KindInvalid || e.Field.IsZero() {
			t.Errorf("%s: error %v", name, err)
		}
	}
}
