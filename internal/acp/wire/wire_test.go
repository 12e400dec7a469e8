package wire

import (
	"net/http"
	"testing"

	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/payment"
)

func TestPath(t *testing.T) {
	t.Parallel()
	names := func(parent, n checkout.FieldName) (string, bool) {
		if parent == checkout.FieldBuyer && n == checkout.FieldFullName {
			return "full_name", true
		}
		v, ok := Names(map[checkout.FieldName]string{checkout.FieldItems: "items", checkout.FieldID: "id",
			checkout.FieldBuyer: "buyer", checkout.FieldFullName: "name"}, DelegateNames)[n]
		return v, ok
	}
	for _, tc := range []struct {
		f    checkout.Field
		want string
	}{
		{checkout.Field{}, ""},
		{checkout.At(checkout.FieldItems).Index(2).Child(checkout.FieldID), "$.items[2].id"},
		{checkout.At(checkout.FieldBuyer).Child(checkout.FieldFullName), "$.buyer.full_name"},
		{checkout.At(checkout.FieldFullName), "$.name"},
		{checkout.At(payment.FieldRiskSignals).Index(0).Child(payment.FieldRiskAction), "$.risk_signals[0].action"},
		{checkout.At(checkout.FieldItems).Child("Nope"), ""},
	} {
		if got := Path(tc.f, names); got != tc.want {
			t.Errorf("Path(%s) = %q, want %q", tc.f, got, tc.want)
		}
	}
}

func TestQuantityAndDomainError(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]int{"1": 1, "10000": 10000, "0": 0, "-1": 0, "2.5": 0, `"2"`: 0, "10001": 0, "1e2": 0} {
		q, err := Quantity([]byte(raw), "$.q")
		if q != want || (err == nil) != (want != 0) {
			t.Errorf("Quantity(%s) = %d, %v", raw, q, err)
		}
	}
	e := DomainError(&checkout.Error{Kind: checkout.KindNotAllowed, Code: "checkout_session_canceled", Message: "m"}, "$.x")
	if e.Status != http.StatusMethodNotAllowed || e.Param != "$.x" || e.Code != "checkout_session_canceled" {
		t.Errorf("DomainError = %+v", e)
	}
	if e := DomainError(&checkout.Error{Kind: checkout.Kind(99)}, ""); e.Status != http.StatusInternalServerError {
		t.Errorf("unknown kind = %d", e.Status)
	}
}
