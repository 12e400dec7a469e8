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
	// OrderProcessing is derived, never set: some units are being prepared or are on
	// their way, not all (ORD-RFC §4.1; 2025-09-29 has no such status).
	OrderProcessing OrderStatus = "processing"
	OrderShipped    OrderStatus = "shipped"
	OrderFulfilled  OrderStatus = "fulfilled"
	OrderCanceled   OrderStatus = "canceled"
)

// orderTransitions lists, for each status, the statuses a merchant may move an order
// to: created → confirmed → shipped → fulfilled, with manual_review before
// confirmation and cancellation until the goods have shipped. Shipped and fulfilled
// are kept consistent with the fulfilments (shipping moves every unit into one
// shipment, fulfilled delivers them); processing is only ever derived from fulfilments.
var orderTransitions = map[OrderStatus][]OrderStatus{
	OrderCreated:      {OrderConfirmed, OrderManualReview, OrderCanceled},
	OrderManualReview: {OrderConfirmed, OrderCanceled},
	OrderConfirmed:    {OrderShipped, OrderCanceled},
	OrderProcessing:   nil,
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

// Refund is money given back on an order, in the order's currency, tax included.
type Refund struct {
	ID     string
	Type   RefundType
	Amount int64
	// Lines are the units the refund is for, when the merchant named them.
	Lines       []LineQuantity
	Description string
	Reason      string
	CreatedAt   time.Time
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
	switch to {
	case OrderShipped:
		o.shipRest(now)
	case OrderFulfilled:
		o.deliverAll(now)
	case OrderCanceled:
		o.cancelRest(now)
	}
	o.derive(now)
	return nil
}

// AddRefund records a refund of amount; the refunds of an order never add up to more
// than was paid.
func (o *Order) AddRefund(t RefundType, amount int64, now time.Time) (Refund, error) {
	if amount <= 0 {
		return Refund{}, Errorf(KindInvalid, "invalid", At(FieldRefundAmount), "Refund amount must be a positive integer in minor units.")
	}
	return o.AddRefundRequest(RefundRequest{Type: t, Amount: amount}, now)
}

// Codes of a refund to the original payment that the payment service provider did not
// make (yet).
const (
	// CodeRefundPending: the PSP did not answer; retry with the same Idempotency-Key.
	CodeRefundPending = "refund_pending"
	// CodeRefundInProgress: another refund of the order is waiting for the PSP.
	CodeRefundInProgress = "refund_in_progress"
	// CodeRefundRefused: the PSP refused the refund; nothing was recorded.
	CodeRefundRefused = "refund_refused"
)

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
	ID     string
	ItemID string
	Title  string
	// Quantity is what was ordered; Current what is still on the order (ORD-RFC §3.2).
	Quantity   int
	Current    int
	UnitAmount int64
	// Subtotal and Tax are what the line cost at completion, when Priced (orders from
	// before they were kept are not).
	Subtotal int64
	Tax      int64
	Priced   bool
}
