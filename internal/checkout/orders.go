package checkout

import (
	"slices"
	"time"
)

// OrderStatus is where an order is in its lifecycle (the ACP 2025-09-29 order statuses).
type OrderStatus string

// The order statuses.
const (
	OrderCreated      OrderStatus = "created"
	OrderManualReview OrderStatus = "manual_review"
	OrderConfirmed    OrderStatus = "confirmed"
	OrderShipped      OrderStatus = "shipped"
	OrderFulfilled    OrderStatus = "fulfilled"
	OrderCanceled     OrderStatus = "canceled"
)

// orderTransitions lists, for each status, the statuses a merchant may move an order
// to: created → confirmed → shipped → fulfilled, with manual_review before
// confirmation and cancellation until the goods have shipped.
var orderTransitions = map[OrderStatus][]OrderStatus{
	OrderCreated:      {OrderConfirmed, OrderManualReview, OrderCanceled},
	OrderManualReview: {OrderConfirmed, OrderCanceled},
	OrderConfirmed:    {OrderShipped, OrderCanceled},
	OrderShipped:      {OrderFulfilled},
	OrderFulfilled:    nil,
	OrderCanceled:     nil,
}

// ValidOrderStatus reports whether s is an order status.
func ValidOrderStatus(s OrderStatus) bool {
	_, ok := orderTransitions[s]
	return ok
}

// RefundType says how a refund reaches the buyer.
type RefundType string

// The refund types of ACP.
const (
	RefundStoreCredit     RefundType = "store_credit"
	RefundOriginalPayment RefundType = "original_payment"
)

// Refund is money given back on an order, in the order's currency.
type Refund struct {
	ID        string
	Type      RefundType
	Amount    int64
	CreatedAt time.Time
}

// MoveTo changes the order's status, refusing transitions the lifecycle does not allow.
func (o *Order) MoveTo(to OrderStatus, now time.Time) error {
	if !ValidOrderStatus(to) {
		return Errorf(KindInvalid, "invalid", At(FieldOrderStatus), "Unknown order status %q.", to)
	}
	if !slices.Contains(orderTransitions[o.Status], to) {
		return Errorf(KindConflict, "invalid_transition", At(FieldOrderStatus), "An order cannot go from %s to %s.", o.Status, to)
	}
	o.Status = to
	o.UpdatedAt = now
	return nil
}

// AddRefund records a refund; the refunds of an order never add up to more than was paid.
func (o *Order) AddRefund(t RefundType, amount int64, now time.Time) (Refund, error) {
	if t != RefundStoreCredit && t != RefundOriginalPayment {
		return Refund{}, Errorf(KindInvalid, "invalid", At(FieldRefundType), "Refund type must be store_credit or original_payment.")
	}
	if amount <= 0 {
		return Refund{}, Errorf(KindInvalid, "invalid", At(FieldRefundAmount), "Refund amount must be a positive integer in minor units.")
	}
	if refunded := o.Refunded(); amount > o.Amount-refunded {
		return Refund{}, Errorf(KindConflict, "refund_exceeds_payment", At(FieldRefundAmount),
			"Refunds would total %d, more than the %d paid.", refunded+amount, o.Amount)
	}
	r := Refund{ID: NewID("rf_"), Type: t, Amount: amount, CreatedAt: now}
	o.Refunds = append(o.Refunds, r)
	o.UpdatedAt = now
	return r, nil
}

// Refunded is the sum of the order's refunds.
func (o *Order) Refunded() int64 {
	var sum int64
	for _, r := range o.Refunds {
		sum += r.Amount
	}
	return sum
}

// OrderPage is what the public order page shows: no secrets, and of the card only the
// brand and last 4.
type OrderPage struct {
	Order *Order
	Lines []OrderLine
	// CardBrand and CardLast4 are empty when the order was paid with a PSP token.
	CardBrand string
	CardLast4 string
}

// OrderLine is one item of an order: the session's line it came from, the catalog
// variant (ItemID) and its title, quantity and unit price at completion.
type OrderLine struct {
	ID         string
	ItemID     string
	Title      string
	Quantity   int
	UnitAmount int64
}
