package postgres

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/webhook"
)

// What an order_events row's payload holds (its payload_format column).
const (
	// formatACP0929 is a 2025-09-29 body, encoded when the row was written: rows from
	// before snapshots. It is sent byte for byte.
	formatACP0929 = "acp-2025-09-29"
	// formatSnapshotV1 is an eventSnapshot, encoded at send time. The name predates
	// snapshot_version 2; the row's snapshot_version says which one it holds (the
	// column's CHECK allows only these two formats, so the version lives in the JSON).
	formatSnapshotV1 = "snapshot-v1"
)

// The snapshot versions this release reads; it writes snapshotVersion.
const (
	// snapshotV1 is the order without its lines (the release that introduced snapshots).
	snapshotV1 = 1
	// snapshotV2 adds the order's lines, which 2026-04-17 bodies send in full. A release
	// that only knows version 1 refuses such rows (unknown field "lines", then the
	// version): they stay pending and are retried, never sent without their lines.
	snapshotV2 = 2
	// snapshotVersion is what encodeSnapshot writes.
	snapshotVersion = snapshotV2
)

// eventSnapshot is the versionless record of an order event kept in the outbox: the
// domain order as it was when the event happened, not any API version's wire shape.
// Its JSON is the storage format; change it only by adding a snapshot version.
type eventSnapshot struct {
	SnapshotVersion int           `json:"snapshot_version"`
	Type            string        `json:"type"`
	OccurredAt      time.Time     `json:"occurred_at"`
	Order           orderSnapshot `json:"order"`
}

type orderSnapshot struct {
	ID                string           `json:"id"`
	CheckoutSessionID string           `json:"checkout_session_id"`
	PermalinkURL      string           `json:"permalink_url"`
	Status            string           `json:"status"`
	Amount            int64            `json:"amount"`
	Currency          string           `json:"currency"`
	CreatedAt         time.Time        `json:"created_at"`
	UpdatedAt         time.Time        `json:"updated_at"`
	Refunds           []refundSnapshot `json:"refunds"`
	// Lines is written from version 2 on, always (an array, possibly empty); a pointer
	// so that a version 1 row that has the key is told from one that has not.
	Lines *[]lineSnapshot `json:"lines,omitempty"`
}

type lineSnapshot struct {
	ID         string `json:"id"`
	ItemID     string `json:"item_id"`
	Title      string `json:"title"`
	Quantity   int    `json:"quantity"`
	UnitAmount int64  `json:"unit_amount"`
}

type refundSnapshot struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"`
	Amount    int64     `json:"amount"`
	CreatedAt time.Time `json:"created_at"`
}

// encodeSnapshot records an event of eventType for ord, happening at at. Times are kept
// in UTC to the microsecond (what PostgreSQL keeps of the order's own times).
func encodeSnapshot(eventType string, ord *checkout.Order, at time.Time) ([]byte, error) {
	ts := func(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }
	lines := make([]lineSnapshot, len(ord.Lines))
	s := eventSnapshot{SnapshotVersion: snapshotVersion, Type: eventType, OccurredAt: ts(at), Order: orderSnapshot{
		ID: ord.ID, CheckoutSessionID: ord.CheckoutSessionID, PermalinkURL: ord.PermalinkURL,
		Status: string(ord.Status), Amount: ord.Amount, Currency: ord.Currency,
		CreatedAt: ts(ord.CreatedAt), UpdatedAt: ts(ord.UpdatedAt), Refunds: make([]refundSnapshot, len(ord.Refunds)),
		Lines: &lines,
	}}
	for i, r := range ord.Refunds {
		s.Order.Refunds[i] = refundSnapshot{ID: r.ID, Type: string(r.Type), Amount: r.Amount, CreatedAt: ts(r.CreatedAt)}
	}
	for i, l := range ord.Lines {
		lines[i] = lineSnapshot{ID: l.ID, ItemID: l.ItemID, Title: l.Title, Quantity: l.Quantity, UnitAmount: l.UnitAmount}
	}
	return json.Marshal(s)
}

// decodeSnapshot reads back what encodeSnapshot wrote, in this release's version or an
// earlier one: a version 1 snapshot gives an order without lines.
func decodeSnapshot(raw []byte) (eventType string, ord *checkout.Order, at time.Time, err error) {
	var s eventSnapshot
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return "", nil, time.Time{}, fmt.Errorf("read order event snapshot: %w", err)
	}
	o := s.Order
	switch {
	case s.SnapshotVersion != snapshotV1 && s.SnapshotVersion != snapshotV2:
		return "", nil, time.Time{}, fmt.Errorf("order event snapshot version %d is not known to this release", s.SnapshotVersion)
	case s.SnapshotVersion == snapshotV1 && o.Lines != nil:
		return "", nil, time.Time{}, errors.New("order event snapshot version 1 has lines, which only version 2 has")
	case s.SnapshotVersion == snapshotV2 && o.Lines == nil:
		return "", nil, time.Time{}, errors.New("order event snapshot version 2 has no lines")
	}
	ord = &checkout.Order{
		ID: o.ID, CheckoutSessionID: o.CheckoutSessionID, PermalinkURL: o.PermalinkURL,
		Status: checkout.OrderStatus(o.Status), Amount: o.Amount, Currency: o.Currency,
		CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt,
	}
	for _, r := range o.Refunds {
		ord.Refunds = append(ord.Refunds, checkout.Refund{ID: r.ID, Type: checkout.RefundType(r.Type), Amount: r.Amount, CreatedAt: r.CreatedAt})
	}
	if o.Lines != nil {
		for _, l := range *o.Lines {
			ord.Lines = append(ord.Lines, checkout.OrderLine{ID: l.ID, ItemID: l.ItemID, Title: l.Title, Quantity: l.Quantity, UnitAmount: l.UnitAmount})
		}
	}
	return s.Type, ord, s.OccurredAt, nil
}

// outboxEvent is the webhook.Event of a claimed row: a legacy row's stored body, or
// the decoded snapshot (Unreadable when it cannot be decoded).
func outboxEvent(id int64, orderID, eventType, format string, payload []byte, attempts int, createdAt time.Time) webhook.Event {
	e := webhook.Event{ID: id, OrderID: orderID, Type: eventType, Attempts: attempts, CreatedAt: createdAt}
	switch format {
	case formatACP0929:
		e.Payload = payload
	case formatSnapshotV1:
		typ, ord, at, err := decodeSnapshot(payload)
		switch {
		case err != nil:
			e.Unreadable = err
		case typ != eventType:
			e.Unreadable = fmt.Errorf("order event snapshot is of type %q, the row of %q", typ, eventType)
		default:
			e.Order, e.OccurredAt = ord, at
		}
	default:
		e.Unreadable = fmt.Errorf("order event payload format %q is not known to this release", format)
	}
	return e
}
