package checkout

import (
	"reflect"
	"testing"
	"time"
)

var ordersAllStatuses = []OrderStatus{
	OrderCreated, OrderManualReview, OrderConfirmed, OrderShipped, OrderFulfilled, OrderCanceled,
}

// ordersAllowed is the lifecycle written out independently of orderTransitions.
var ordersAllowed = map[[2]OrderStatus]bool{
	{OrderCreated, OrderConfirmed}:      true,
	{OrderCreated, OrderManualReview}:   true,
	{OrderCreated, OrderCanceled}:       true,
	{OrderManualReview, OrderConfirmed}: true,
	{OrderManualReview, OrderCanceled}:  true,
	{OrderConfirmed, OrderShipped}:      true,
	{OrderConfirmed, OrderCanceled}:     true,
	{OrderShipped, OrderFulfilled}:      true,
}

func ordersWantError(t *testing.T, err error, kind Kind, code string, at Field) {
	t.Helper()
	de, ok := AsError(err)
	if !ok {
		t.Fatalf("error = %v, want a *checkout.Error %s", err, code)
	}
	if de.Kind != kind || de.Code != code || de.Field != at {
		t.Errorf("error = kind %d code %q field %s, want kind %d code %q field %s", de.Kind, de.Code, de.Field, kind, code, at)
	}
	if de.Message == "" {
		t.Error("error without a message")
	}
}

func TestOrdersStatusMachineEveryPair(t *testing.T) {
	t.Parallel()
	created := time.Date(2025, 9, 29, 12, 0, 0, 0, time.UTC)
	now := created.Add(time.Hour)
	allowedCount := 0
	for _, from := range ordersAllStatuses {
		for _, to := range ordersAllStatuses {
			o := &Order{ID: "ord_1", Status: from, UpdatedAt: created}
			err := o.MoveTo(to, now)
			if ordersAllowed[[2]OrderStatus{from, to}] {
				allowedCount++
				if err != nil {
					t.Errorf("%s -> %s refused: %v", from, to, err)
					continue
				}
				if o.Status != to || !o.UpdatedAt.Equal(now) {
					t.Errorf("%s -> %s: order is %s updated %v", from, to, o.Status, o.UpdatedAt)
				}
				continue
			}
			if err == nil {
				t.Errorf("%s -> %s allowed, want invalid_transition", from, to)
				continue
			}
			ordersWantError(t, err, KindConflict, "invalid_transition", At(FieldOrderStatus))
			if o.Status != from || !o.UpdatedAt.Equal(created) {
				t.Errorf("refused %s -> %s changed the order: %s %v", from, to, o.Status, o.UpdatedAt)
			}
		}
	}
	if allowedCount != 8 {
		t.Errorf("allowed transitions checked = %d, want 8", allowedCount)
	}
}

func TestOrdersFinalStatusesAreFinal(t *testing.T) {
	t.Parallel()
	for _, final := range []OrderStatus{OrderFulfilled, OrderCanceled} {
		for _, to := range ordersAllStatuses {
			o := &Order{Status: final}
			if err := o.MoveTo(to, time.Now()); err == nil {
				t.Errorf("%s -> %s allowed; %s is final", final, to, final)
			}
		}
	}
	// A status cannot be "moved" to itself either (no event for nothing).
	for _, s := range ordersAllStatuses {
		o := &Order{Status: s}
		if err := o.MoveTo(s, time.Now()); err == nil {
			t.Errorf("%s -> %s allowed", s, s)
		}
	}
}

func TestOrdersUnknownStatus(t *testing.T) {
	t.Parallel()
	for _, s := range []OrderStatus{"", "shipping", "CONFIRMED", "Confirmed", "delivered", "refunded", "confirmed "} {
		if ValidOrderStatus(s) {
			t.Errorf("ValidOrderStatus(%q) = true", s)
		}
		o := &Order{Status: OrderCreated}
		err := o.MoveTo(s, time.Now())
		if err == nil {
			t.Errorf("MoveTo(%q) allowed", s)
			continue
		}
		ordersWantError(t, err, KindInvalid, "invalid", At(FieldOrderStatus))
		if o.Status != OrderCreated {
			t.Errorf("MoveTo(%q) changed the status to %s", s, o.Status)
		}
	}
	for _, s := range ordersAllStatuses {
		if !ValidOrderStatus(s) {
			t.Errorf("ValidOrderStatus(%q) = false", s)
		}
	}
}

func TestOrdersFullLifecycles(t *testing.T) {
	t.Parallel()
	paths := [][]OrderStatus{
		{OrderConfirmed, OrderShipped, OrderFulfilled},
		{OrderManualReview, OrderConfirmed, OrderShipped, OrderFulfilled},
		{OrderManualReview, OrderCanceled},
		{OrderConfirmed, OrderCanceled},
		{OrderCanceled},
	}
	for _, path := range paths {
		o := &Order{Status: OrderCreated}
		for _, to := range path {
			if err := o.MoveTo(to, time.Now()); err != nil {
				t.Fatalf("path %v: %v", path, err)
			}
		}
	}
	// Once shipped, an order can no longer be canceled.
	o := &Order{Status: OrderCreated}
	for _, to := range []OrderStatus{OrderConfirmed, OrderShipped} {
		if err := o.MoveTo(to, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.MoveTo(OrderCanceled, time.Now()); err == nil {
		t.Error("a shipped order was canceled")
	}
}

func TestOrdersRefundTypesAndAmounts(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 9, 29, 12, 0, 0, 0, time.UTC)
	for _, typ := range []RefundType{RefundStoreCredit, RefundOriginalPayment} {
		o := &Order{Amount: 1000}
		r, err := o.AddRefund(typ, 100, now)
		if err != nil {
			t.Fatalf("%s refund: %v", typ, err)
		}
		if r.Type != typ || r.Amount != 100 || !r.CreatedAt.Equal(now) || len(r.ID) < 4 || r.ID[:3] != "rf_" {
			t.Errorf("refund = %+v", r)
		}
		if len(o.Refunds) != 1 || !reflect.DeepEqual(o.Refunds[0], r) || o.Refunded() != 100 || !o.UpdatedAt.Equal(now) {
			t.Errorf("order after refund: %+v", o)
		}
	}
	for _, typ := range []RefundType{"", "cash", "STORE_CREDIT", "original-payment", "refund"} {
		o := &Order{Amount: 1000}
		_, err := o.AddRefund(typ, 100, now)
		ordersWantError(t, err, KindInvalid, "invalid", At(FieldRefundType))
		if len(o.Refunds) != 0 {
			t.Errorf("refused type %q recorded a refund", typ)
		}
	}
	for _, amount := range []int64{0, -1, -1000, -1 << 62} {
		o := &Order{Amount: 1000}
		_, err := o.AddRefund(RefundOriginalPayment, amount, now)
		ordersWantError(t, err, KindInvalid, "invalid", At(FieldRefundAmount))
		if len(o.Refunds) != 0 || o.Refunded() != 0 {
			t.Errorf("refused amount %d recorded a refund", amount)
		}
	}
}

func TestOrdersRefundsNeverExceedThePayment(t *testing.T) {
	t.Parallel()
	now := time.Now()

	// Exactly the amount, in one refund: allowed; one more unit: refused.
	o := &Order{Amount: 1000}
	if _, err := o.AddRefund(RefundOriginalPayment, 1000, now); err != nil {
		t.Fatalf("full refund: %v", err)
	}
	_, err := o.AddRefund(RefundStoreCredit, 1, now)
	ordersWantError(t, err, KindConflict, "refund_exceeds_payment", At(FieldRefundAmount))
	if o.Refunded() != 1000 || len(o.Refunds) != 1 {
		t.Errorf("refunded = %d in %d refunds", o.Refunded(), len(o.Refunds))
	}

	// One more than the amount at once: refused.
	o = &Order{Amount: 1000}
	_, err = o.AddRefund(RefundOriginalPayment, 1001, now)
	ordersWantError(t, err, KindConflict, "refund_exceeds_payment", At(FieldRefundAmount))

	// Several refunds of mixed types add up to exactly the amount; the next unit is refused.
	o = &Order{Amount: 1000}
	for _, r := range []struct {
		t RefundType
		a int64
	}{{RefundStoreCredit, 300}, {RefundOriginalPayment, 600}, {RefundStoreCredit, 99}} {
		if _, err := o.AddRefund(r.t, r.a, now); err != nil {
			t.Fatalf("refund %d: %v", r.a, err)
		}
	}
	if o.Refunded() != 999 {
		t.Fatalf("refunded = %d", o.Refunded())
	}
	_, err = o.AddRefund(RefundOriginalPayment, 2, now)
	ordersWantError(t, err, KindConflict, "refund_exceeds_payment", At(FieldRefundAmount))
	if _, err := o.AddRefund(RefundOriginalPayment, 1, now); err != nil {
		t.Fatalf("last unit: %v", err)
	}
	_, err = o.AddRefund(RefundOriginalPayment, 1, now)
	ordersWantError(t, err, KindConflict, "refund_exceeds_payment", At(FieldRefundAmount))
	if o.Refunded() != o.Amount || len(o.Refunds) != 4 {
		t.Errorf("refunded = %d in %d refunds, want %d in 4", o.Refunded(), len(o.Refunds), o.Amount)
	}

	// A huge amount cannot overflow the check.
	o = &Order{Amount: 1000}
	if _, err := o.AddRefund(RefundOriginalPayment, 500, now); err != nil {
		t.Fatal(err)
	}
	_, err = o.AddRefund(RefundOriginalPayment, 1<<63-1, now)
	ordersWantError(t, err, KindConflict, "refund_exceeds_payment", At(FieldRefundAmount))

	// Refund ids are unique.
	o = &Order{Amount: 100}
	seen := map[string]bool{}
	for range 100 {
		r, err := o.AddRefund(RefundStoreCredit, 1, now)
		if err != nil {
			t.Fatal(err)
		}
		if seen[r.ID] {
			t.Fatalf("refund id %s repeated", r.ID)
		}
		seen[r.ID] = true
	}
}

func TestOrdersRefundsAreIndependentOfStatus(t *testing.T) {
	t.Parallel()
	// The lifecycle and refunds are separate: a refund never moves the status.
	for _, s := range ordersAllStatuses {
		o := &Order{Amount: 500, Status: s}
		if _, err := o.AddRefund(RefundOriginalPayment, 500, time.Now()); err != nil {
			t.Errorf("refund of a %s order: %v", s, err)
		}
		if o.Status != s {
			t.Errorf("refund moved %s to %s", s, o.Status)
		}
	}
}
