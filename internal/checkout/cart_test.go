package checkout

import (
	"testing"
	"time"
)

func TestPriceCartKeepsItemMessagesAndNoTax(t *testing.T) {
	cat := Catalog{
		Variants: map[string]Variant{
			"a": {ID: "a", Title: "A", PriceAmount: 1000, Currency: "usd", Available: true, Fulfillment: FulfillmentShipping},
			"b": {ID: "b", Title: "B", PriceAmount: 500, Currency: "usd", Available: false, Fulfillment: FulfillmentShipping},
		},
		Options:    []FulfillmentOption{{ID: "ship", Type: FulfillmentShipping, Title: "Ship", Amount: 700, Currency: "usd"}},
		TaxRateBps: 1000,
	}
	c := &Cart{ID: "cart_1"}
	ch := CartChanges{Items: []ItemRequest{{ID: "a", Quantity: 2}, {ID: "b", Quantity: 1}}, Buyer: &Buyer{Email: "x@example.com"}}
	if err := ch.Validate(); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 4, 17, 12, 0, 0, 0, time.UTC)
	if err := c.Replace(ch, cat, now, time.Hour); err != nil {
		t.Fatal(err)
	}
	if c.Currency != "usd" || !c.ExpiresAt.Equal(now.Add(time.Hour)) || c.Buyer == nil {
		t.Errorf("cart = %+v", c)
	}
	v := PriceCart(c, cat)
	// No fulfillment, no tax: the cart has neither an option nor an address.
	if v.Totals.Total != 2500 || v.Totals.Tax != 0 || v.Totals.Fulfillment != 0 {
		t.Errorf("totals = %+v", v.Totals)
	}
	for _, e := range v.TotalEntries() {
		if e.Type == "tax" || e.Type == "fulfillment" {
			t.Errorf("cart total entry %s", e.Type)
		}
	}
	// Only the unavailable item is reported; the address and option a session lacks are not.
	if len(v.Messages) != 1 || v.Messages[0].Code != CodeOutOfStock || v.Messages[0].Field != At(FieldLines).Index(1) {
		t.Errorf("messages = %+v", v.Messages)
	}

	// A replacement without a buyer removes it; an item kept keeps its line id.
	lineA := c.Lines[0].ID
	if err := c.Replace(CartChanges{Items: []ItemRequest{{ID: "a", Quantity: 1}}}, cat, now.Add(time.Minute), time.Hour); err != nil {
		t.Fatal(err)
	}
	if c.Buyer != nil || len(c.Lines) != 1 || c.Lines[0].ID != lineA || !c.ExpiresAt.Equal(now.Add(time.Minute+time.Hour)) {
		t.Errorf("replaced cart = %+v", c)
	}
	if err := c.Replace(CartChanges{Items: []ItemRequest{{ID: "zzz", Quantity: 1}}}, cat, now, time.Hour); err == nil {
		t.Error("an unknown item was accepted")
	}
}
