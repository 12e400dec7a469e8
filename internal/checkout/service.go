package checkout

import (
	"context"
	"time"
)

// SessionService runs checkout sessions for the transports (the REST API of every ACP
// version, and the MCP tools): each call is one unit of work on the stored session.
// owner is the caller's identity; a session of another owner is not found.
type SessionService interface {
	CreateSession(ctx context.Context, owner string, ch Changes) (View, error)
	GetSession(ctx context.Context, owner, id string) (View, error)
	UpdateSession(ctx context.Context, owner, id string, ch Changes) (View, error)
	// CancelSession cancels; trace (nil: none) is recorded with the cancellation, once.
	CancelSession(ctx context.Context, owner, id string, trace *IntentTrace) (View, error)
	CompleteSession(ctx context.Context, owner, id string, c Completion) (View, error)
}

// OrderService serves the merchant's orders: reading and listing them, moving their
// status, refunding them, and the buyer's order page.
type OrderService interface {
	Get(ctx context.Context, id string) (*Order, error)
	List(ctx context.Context, status string, beforeCreated *time.Time, beforeID string, limit int) ([]*Order, error)
	SetStatus(ctx context.Context, id string, status OrderStatus) (*Order, error)
	Refund(ctx context.Context, id string, t RefundType, amount int64) (*Order, error)
	// RefundLines records a refund of named units and/or an amount (ORD-RFC adjustments).
	RefundLines(ctx context.Context, id string, req RefundRequest) (*Order, error)
	// AddFulfillment, AddFulfillmentEvent and CancelLines change the units of an order
	// (fulfillment.go); each sends the full order in an order_update event.
	AddFulfillment(ctx context.Context, id string, f Fulfillment) (*Order, error)
	AddFulfillmentEvent(ctx context.Context, id, fulfillmentID string, ev FulfillmentEvent) (*Order, error)
	CancelLines(ctx context.Context, id string, c Cancellation) (*Order, error)
	Page(ctx context.Context, id string) (*OrderPage, error)
}

// DiscountService manages the merchant's discounts (the admin API).
type DiscountService interface {
	Create(ctx context.Context, d Discount) (Discount, error)
	List(ctx context.Context) ([]Discount, error)
	Get(ctx context.Context, id string) (Discount, error)
	Disable(ctx context.Context, id string) (Discount, error)
}
