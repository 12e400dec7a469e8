package webhook

import (
	"encoding/json"

	"github.com/agentic-commerce/agentic-commerce-server/internal/acp/v20260417"
)

// Version0417 is ACP 2026-04-17: the event's data is the full Order (with its lines,
// adjustments and totals), sent whole on every event.
const Version0417 = "2026-04-17"

// event0417 is the 2026-04-17 WebhookEvent. Its data is the version's Order exactly as
// the checkout API renders it (v20260417.EncodeOrder), so an agent reads one order the
// same way in a complete response and in every event: fulfilled shows as completed
// (checklist I-02), the order id is always sent although the official examples lack it
// (I-27), refunds are adjustments and the total is never net of them.
type event0417 struct {
	Type string          `json:"type"`
	Data v20260417.Order `json:"data"`
}

// encode0417 renders the 2026-04-17 WebhookEvent of e: {type, data: the full Order}.
// Everything comes from the snapshot (times included), so every attempt sends the same
// bytes. A snapshot written before lines were kept has none, and its Order then has no
// line_items (an empty array would say nothing was bought).
func encode0417(e Event) ([]byte, error) {
	return json.Marshal(event0417{Type: e.Type, Data: v20260417.EncodeOrder(e.Order)})
}
