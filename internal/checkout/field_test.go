package checkout

import "testing"

func TestFieldDerivingLeavesTheParentAlone(t *testing.T) {
	t.Parallel()
	items := At(FieldItems)
	second := items.Index(1)
	id, qty := second.Child(FieldID), second.Child(FieldQuantity)
	for _, tc := range []struct {
		f    Field
		want string
	}{
		{Field{}, ""}, {items, "Items"}, {second, "Items[1]"}, {id, "Items[1].ID"}, {qty, "Items[1].Quantity"},
		{At(FieldPayment).Child(FieldBillingAddress).Child(FieldCity), "Payment.BillingAddress.City"},
	} {
		if got := tc.f.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
	if id != At(FieldItems).Index(1).Child(FieldID) || id == qty {
		t.Error("fields built the same way differ, or different ones are equal")
	}
	if !(Field{}).IsZero() || items.IsZero() {
		t.Error("IsZero is wrong")
	}
}

func TestFieldDeeperThanMaxPanics(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Error("a fourth level did not panic")
		}
	}()
	At(FieldPayment).Child(FieldBillingAddress).Child(FieldCity).Child(FieldID)
}
