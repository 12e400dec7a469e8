package postgres

import (
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/webhook"
)

// OutboxEvent is the webhook.Event the outbox hands a worker for an order_events row.
func OutboxEvent(id int64, orderID, eventType, format string, payload []byte, attempts int, createdAt time.Time) webhook.Event {
	return outboxEvent(id, orderID, eventType, format, payload, attempts, createdAt)
}
