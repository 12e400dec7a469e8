package checkout

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func ptr[T any](v T) *T { return &v }

var (
	tee    = Variant{ID: "tee", Title: "Tee", PriceAmount: 1500, Currency: "usd", Available: true, Fulfillment: FulfillmentShipping}
	ebook  = Variant{ID: "ebook", Title: "E-book", PriceAmount: 999, Currency: "usd", Available: true, Fulfillment: FulfillmentDigital}
	std    = FulfillmentOption{ID: "std", Type: FulfillmentShipping, Title: "Standard", Amount: 500, Currency: "usd", MinDeliveryDays: ptr(5), MaxDeliveryDays: ptr(7)}
	taxed  = FulfillmentOption{ID: "taxed", Type: FulfillmentShipping, Title: "Taxed", Amount: 1001, Currency: "usd", Taxable: true}
	dig    = FulfillmentOption{ID: "dig", Type: FulfillmentDigital, Title: "Digital", Currency: "usd"}
	eurOpt = FulfillmentOption{ID: "eur", Type: FulfillmentShipping, Title: "EU", Amount: 700, Currency: "eur"}
	addr   = &Address{Name: "A", LineOne: "1", City: "C", State: "CA", Country: "US", PostalCode: "1"}
	ada    = &Buyer{FirstName: "Ada", LastName: "L", Email: "ada@example.com"}
)

func testCatalog(rate int) Catalog {
	return Catalog{
		Variants:   map[string]Variant{"tee": tee, "ebook": ebook},
		Options:    []FulfillmentOption{std, taxed, dig, eurOpt},
		TaxRateBps: rate,
	}
}

func TestApplyRateRoundsHalfUp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		amount int64
		bps    int
		want   int64
	}{
		{3000, 725, 218}, // 217.5 -> 218
		{1500, 725, 109}, // 108.75 -> 109
		{1000, 725, 73},  // 72.5 -> 73
		{1, 4999, 0},     // 0.4999 -> 0
		{1, 5000, 1},     // 0.5 -> 1
		{0, 1000, 0},     // nothing taxed
		{12345, 0, 0},    // no rate
		{12345, 10000, 12345},
	} {
		if got := applyRate(tc.amount, tc.bps); got != tc.want {
			t.Errorf("applyRate(%d, %d) = %d, want %d", tc.amount, tc.bps, got, tc.want)
		}
	}
}

func TestPriceReadyAndTotals(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s := &Session{State: StateOpen, Currency: "usd", Buyer: ada, FulfillmentAddress: addr, FulfillmentOptionID: "taxed",
		Lines: []Line{{ID: "l1", VariantID: "tee", Quantity: 2, UnitAmount: 1500}, {ID: "l2", VariantID: "ebook", Quantity: 1, UnitAmount: 999}}}
	q := Price(s, testCatalog(725), now)

	if q.Status != StatusReadyForPayment || len(q.Messages) != 0 {
		t.Fatalf("status %s, messages %v", q.Status, q.Messages)
	}
	// Lines: 3000 -> tax 218; 999 -> 72.43 -> 72. Option 1001 -> 72.57 -> 73.
	if q.Lines[0].Tax != 218 || q.Lines[1].Tax != 72 {
		t.Errorf("line taxes = %d, %d", q.Lines[0].Tax, q.Lines[1].Tax)
	}
	want := Totals{ItemsBaseAmount: 3999, Subtotal: 3999, Fulfillment: 1001, FulfillmentSelected: true, Tax: 218 + 72 + 73, Total: 3999 + 1001 + 363}
	if q.Totals != want {
		t.Errorf("totals = %+v, want %+v", q.Totals, want)
	}
	// A mixed cart needs shipping: only the usd shipping options are offered.
	var ids []string
	for _, o := range q.Options {
		ids = append(ids, o.ID)
	}
	if !slices.Equal(ids, []string{"std", "taxed"}) {
		t.Errorf("offered = %v", ids)
	}
	if got := *q.Options[0].EarliestDelivery; !got.Equal(now.AddDate(0, 0, 5)) {
		t.Errorf("earliest delivery = %v", got)
	}
}

func TestPriceMessagesExplainWhatIsMissing(t *testing.T) {
	t.Parallel()
	low := tee
	low.ID, low.Stock = "low", ptr(1)
	gone := tee
	gone.ID, gone.Available = "gone", false
	cat := testCatalog(0)
	cat.Variants["low"], cat.Variants["gone"] = low, gone

	for _, tc := range []struct {
		name string
		s    Session
		want []string
	}{
		{"empty", Session{Lines: []Line{{VariantID: "tee", Quantity: 1}}},
			[]string{"missing@FulfillmentAddress", "missing@FulfillmentOption"}},
		{"digital needs no address", Session{Buyer: ada, Lines: []Line{{VariantID: "ebook", Quantity: 1}}},
			[]string{"missing@FulfillmentOption"}},
		{"option that no longer fits", Session{Buyer: ada, FulfillmentOptionID: "std", Lines: []Line{{VariantID: "ebook", Quantity: 1}}},
			[]string{"invalid@FulfillmentOption"}},
		{"stock and availability", Session{Buyer: ada, FulfillmentAddress: addr, FulfillmentOptionID: "std",
			Lines: []Line{{VariantID: "low", Quantity: 2}, {VariantID: "gone", Quantity: 1}, {VariantID: "low", Quantity: 1}}},
			[]string{"out_of_stock@Lines[0]", "out_of_stock@Lines[1]"}},
		{"deleted variant", Session{Buyer: ada, FulfillmentAddress: addr, FulfillmentOptionID: "std", Lines: []Line{{VariantID: "ghost", Quantity: 1}}},
			[]string{"invalid@Lines[0]"}},
		{"no option in this currency", Session{Currency: "gbp", Buyer: ada, FulfillmentAddress: addr, Lines: []Line{{VariantID: "tee", Quantity: 1}}},
			[]string{"invalid@FulfillmentOption"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.s
			s.State = StateOpen
			if s.Currency == "" {
				s.Currency = "usd"
			}
			q := Price(&s, cat, time.Now())
			var got []string
			for _, m := range q.Messages {
				got = append(got, string(m.Code)+"@"+m.Field.String())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("messages = %v, want %v", got, tc.want)
			}
			if q.Status != StatusNotReadyForPayment {
				t.Errorf("status = %s", q.Status)
			}
		})
	}
}

// TestReadyWithoutBuyerButCompleteNeedsOne: as in the official 2025-09-29 example, a
// session that lacks only the buyer is ready for payment, without any message; the
// buyer may come with the complete request, and completing without one is refused.
func TestReadyWithoutBuyerButCompleteNeedsOne(t *testing.T) {
	t.Parallel()
	s := &Session{State: StateOpen, Currency: "usd", FulfillmentAddress: addr, FulfillmentOptionID: "std",
		Lines: []Line{{ID: "l1", VariantID: "tee", Quantity: 1, UnitAmount: 1500}}}
	q := Price(s, testCatalog(0), time.Now())
	if q.Status != StatusReadyForPayment || len(q.Messages) != 0 {
		t.Fatalf("status %s, messages %v", q.Status, q.Messages)
	}
	err := s.CheckCompletable(q)
	if e, ok := AsError(err); !ok || e.Kind != KindInvalid || e.Code != "missing" || e.Field != At(FieldBuyer) {
		t.Fatalf("complete without a buyer: %v", err)
	}
	s.Buyer = ada
	if err := s.CheckCompletable(q); err != nil {
		t.Fatalf("complete with a buyer: %v", err)
	}
}

func TestPriceFinalStates(t *testing.T) {
	t.Parallel()
	for state, want := range map[State]Status{StateCompleted: StatusCompleted, StateCanceled: StatusCanceled} {
		s := &Session{State: state, Currency: "usd", Lines: []Line{{VariantID: "tee", Quantity: 1, UnitAmount: 1500}}}
		q := Price(s, testCatalog(0), time.Now())
		if q.Status != want {
			t.Errorf("%s: status %s", state, q.Status)
		}
		for _, m := range q.Messages {
			if m.Type == MessageError {
				t.Errorf("%s: error message on a final session: %+v", state, m)
			}
		}
	}
}

// TestPriceInvariants checks the arithmetic the spec implies on random carts:
// subtotal = base − discount, total = subtotal + tax, and the session total is the sum
// of line totals and the chosen option.
func TestPriceInvariants(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	cat := testCatalog(0)
	for i := range 2000 {
		cat.TaxRateBps = rng.IntN(10001)
		s := &Session{State: StateOpen, Currency: "usd", Buyer: ada, FulfillmentAddress: addr}
		for j := range 1 + rng.IntN(MaxLineItems) {
			s.Lines = append(s.Lines, Line{ID: "l", VariantID: "tee", Quantity: 1 + rng.IntN(MaxQuantity), UnitAmount: rng.Int64N(100_000_000_000)})
			_ = j
		}
		s.FulfillmentOptionID = []string{"", "std", "taxed"}[rng.IntN(3)]
		q := Price(s, cat, time.Time{})
		var sum, tax int64
		for _, l := range q.Lines {
			if l.Subtotal != l.BaseAmount-l.Discount || l.Total != l.Subtotal+l.Tax || l.Tax < 0 {
				t.Fatalf("cart %d: line %+v breaks the line arithmetic", i, l)
			}
			sum += l.Total
			tax += l.Tax
		}
		var opt int64
		for _, o := range q.Options {
			if o.ID == s.FulfillmentOptionID {
				opt = o.Total
				tax += o.Tax
			}
		}
		if q.Totals.Total != sum+opt || q.Totals.Tax != tax || q.Totals.Total != q.Totals.Subtotal+q.Totals.Fulfillment+q.Totals.Tax {
			t.Fatalf("cart %d: totals %+v, lines %d, option %d", i, q.Totals, sum, opt)
		}
	}
}

func TestApplyAndCancel(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := &Session{State: StateOpen}
	cat := testCatalog(0)
	if err := s.Apply(Changes{Items: []ItemRequest{{ID: "tee", Quantity: 2}}}, cat, now, time.Hour); err != nil {
		t.Fatal(err)
	}
	if s.Currency != "usd" || s.Lines[0].UnitAmount != 1500 || !s.ExpiresAt.Equal(now.Add(time.Hour)) {
		t.Errorf("session = %+v", s)
	}
	err := s.Apply(Changes{Items: []ItemRequest{{ID: "nope", Quantity: 1}}}, cat, now, time.Hour)
	if e, ok := AsError(err); !ok || e.Kind != KindInvalid || e.Field != At(FieldItems).Index(0).Child(FieldID) {
		t.Errorf("unknown item: %v", err)
	}
	err = s.Apply(Changes{FulfillmentOptionID: ptr("dig")}, cat, now, time.Hour)
	if e, ok := AsError(err); !ok || e.Code != "invalid_fulfillment_option" {
		t.Errorf("digital option for a tee: %v", err)
	}
	if err := s.Cancel(CanceledByAgent, nil, now); err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{s.Cancel(CanceledByAgent, nil, now), s.Apply(Changes{Buyer: ada}, cat, now, time.Hour)} {
		if e, ok := AsError(err); !ok || e.Kind != KindNotAllowed || e.Code != "checkout_session_canceled" {
			t.Errorf("action on a canceled session: %v", err)
		}
	}
}

func TestApplyPreselectsTheFirstOptionThatFits(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cat := testCatalog(0)
	apply := func(s *Session, ch Changes) {
		t.Helper()
		if err := s.Apply(ch, cat, now, time.Hour); err != nil {
			t.Fatal(err)
		}
	}

	s := &Session{State: StateOpen}
	apply(s, Changes{Items: []ItemRequest{{ID: "tee", Quantity: 1}}, FulfillmentAddress: addr})
	if s.FulfillmentOptionID != "std" {
		t.Errorf("created with a tee: selected %q, want the first shipping option std", s.FulfillmentOptionID)
	}
	if q := Price(s, cat, now); q.Status != StatusReadyForPayment || len(q.Messages) != 0 {
		t.Errorf("ready without a buyer: status %s, messages %v", q.Status, q.Messages)
	}

	// The agent's explicit choice wins, and survives changes it still fits.
	apply(s, Changes{FulfillmentOptionID: ptr("taxed")})
	apply(s, Changes{Items: []ItemRequest{{ID: "tee", Quantity: 3}}, Buyer: ada})
	if s.FulfillmentOptionID != "taxed" {
		t.Errorf("after a change the choice still fits: selected %q, want taxed", s.FulfillmentOptionID)
	}

	// The cart became digital: the shipping choice no longer fits, the first digital
	// option is selected instead.
	apply(s, Changes{Items: []ItemRequest{{ID: "ebook", Quantity: 1}}})
	if s.FulfillmentOptionID != "dig" {
		t.Errorf("digital cart: selected %q, want dig", s.FulfillmentOptionID)
	}

	// An explicit choice in the same request as the items is checked against the new cart.
	apply(s, Changes{Items: []ItemRequest{{ID: "tee", Quantity: 1}}, FulfillmentOptionID: ptr("taxed")})
	if s.FulfillmentOptionID != "taxed" {
		t.Errorf("explicit choice with new items: selected %q, want taxed", s.FulfillmentOptionID)
	}

	// Nothing fits: nothing is selected, and the quote says why.
	noOpts := cat
	noOpts.Options = []FulfillmentOption{dig}
	if err := s.Apply(Changes{Buyer: ada}, noOpts, now, time.Hour); err != nil {
		t.Fatal(err)
	}
	if s.FulfillmentOptionID != "" {
		t.Errorf("no option fits: selected %q", s.FulfillmentOptionID)
	}
}
