package checkout

// TotalEntry is one entry of a session's totals as ACP lists them: its type
// (items_base_amount, subtotal, ...), the label shown to the buyer and the amount in
// minor units.
type TotalEntry struct {
	Type        string
	DisplayText string
	Amount      int64
}

// Entries lists t the way every ACP version so far shows session totals, in order:
// items_base_amount, items_discount when there is a discount on the lines, subtotal,
// discount when there is an order-level discount (DISC-RFC §8), fulfillment once
// an option is selected (an unselected option costs nothing yet, and showing 0 would
// read as free shipping), tax and total. Each version renders the entries in its own
// Total shape.
func (t Totals) Entries() []TotalEntry {
	out := []TotalEntry{{"items_base_amount", "Item(s) total", t.ItemsBaseAmount}}
	if t.ItemsDiscount != 0 {
		out = append(out, TotalEntry{"items_discount", "Discount", t.ItemsDiscount})
	}
	out = append(out, TotalEntry{"subtotal", "Subtotal", t.Subtotal})
	if t.Discount != 0 {
		out = append(out, TotalEntry{"discount", "Discount", t.Discount})
	}
	if t.FulfillmentSelected {
		out = append(out, TotalEntry{"fulfillment", "Fulfillment", t.Fulfillment})
	}
	return append(out, TotalEntry{"tax", "Tax", t.Tax}, TotalEntry{"total", "Total", t.Total})
}
