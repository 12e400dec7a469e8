package postgres

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
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
	// snapshotV3 adds what ORD-RFC orders carry: each line's current quantity and price
	// breakdown, the fulfilments with their events, the cancellations, the refunds' lines
	// and reasons, and the order's amounts. A release that only knows version 2 refuses
	// such rows (unknown fields), so they wait for it to be upgraded.
	snapshotV3 = 3
	// snapshotV4 adds the buyer's order notes (2026-04-17 echoes them in the order's
	// confirmation). A release that only knows version 3 refuses such rows.
	snapshotV4 = 4
	// snapshotVersion is what encodeSnapshot writes.
	snapshotVersion = snapshotV4
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
	// Fulfillments, Cancellations and Amounts are written from version 3 on (the first
	// two always, as arrays; Amounts when the order has them).
	Fulfillments  *[]fulfillmentSnapshot  `json:"fulfillments,omitempty"`
	Cancellations *[]cancellationSnapshot `json:"cancellations,omitempty"`
	Amounts       *amountsSnapshot        `json:"amounts,omitempty"`
	// Notes are written from version 4 on, when the order has them.
	Notes string `json:"notes,omitempty"`
}

type amountsSnapshot struct {
	Subtotal    int64 `json:"subtotal"`
	Discount    int64 `json:"discount"`
	Fulfillment int64 `json:"fulfillment"`
	Tax         int64 `json:"tax"`
}

type lineSnapshot struct {
	ID         string `json:"id"`
	ItemID     string `json:"item_id"`
	Title      string `json:"title"`
	Quantity   int    `json:"quantity"`
	UnitAmount int64  `json:"unit_amount"`
	// From version 3: what is still on the order, and the line's cost when known.
	Current  *int   `json:"current,omitempty"`
	Subtotal *int64 `json:"subtotal,omitempty"`
	Tax      *int64 `json:"tax,omitempty"`
}

type refundSnapshot struct {
	ID          string            `json:"id"`
	Type        string            `json:"type"`
	Amount      int64             `json:"amount"`
	Lines       []lineQtySnapshot `json:"lines,omitempty"`
	Description string            `json:"description,omitempty"`
	Reason      string            `json:"reason,omitempty"`
	CreatedAt   time.Time         `json:"created_at"`
}

type lineQtySnapshot struct {
	LineID   string `json:"line_id"`
	Quantity int    `json:"quantity"`
}

type fulfillmentSnapshot struct {
	ID               string            `json:"id"`
	Type             string            `json:"type"`
	Status           string            `json:"status"`
	Lines            []lineQtySnapshot `json:"lines"`
	Carrier          string            `json:"carrier,omitempty"`
	TrackingNumber   string            `json:"tracking_number,omitempty"`
	TrackingURL      string            `json:"tracking_url,omitempty"`
	Destination      *checkout.Address `json:"destination,omitempty"`
	EarliestDelivery *time.Time        `json:"earliest_delivery,omitempty"`
	LatestDelivery   *time.Time        `json:"latest_delivery,omitempty"`
	AccessURL        string            `json:"access_url,omitempty"`
	LicenseKey       string            `json:"license_key,omitempty"`
	AccessExpiresAt  *time.Time        `json:"access_expires_at,omitempty"`
	Digital          bool              `json:"digital_delivery,omitempty"`
	Description      string            `json:"description,omitempty"`
	Events           []eventSnap       `json:"events"`
	CreatedAt        time.Time         `json:"created_at"`
	UpdatedAt        time.Time         `json:"updated_at"`
}

type eventSnap struct {
	ID          string    `json:"id"`
	Type        string    `json:"type"`
	OccurredAt  time.Time `json:"occurred_at"`
	Description string    `json:"description,omitempty"`
	Location    string    `json:"location,omitempty"`
}

type cancellationSnapshot struct {
	ID          string            `json:"id"`
	Lines       []lineQtySnapshot `json:"lines"`
	Description string            `json:"description,omitempty"`
	Reason      string            `json:"reason,omitempty"`
	CreatedAt   time.Time         `json:"created_at"`
}

func lineQtysOut(ls []checkout.LineQuantity) []lineQtySnapshot {
	out := make([]lineQtySnapshot, len(ls))
	for i, l := range ls {
		out[i] = lineQtySnapshot{LineID: l.LineID, Quantity: l.Quantity}
	}
	return out
}

func lineQtysIn(ls []lineQtySnapshot) []checkout.LineQuantity {
	var out []checkout.LineQuantity
	for _, l := range ls {
		out = append(out, checkout.LineQuantity{LineID: l.LineID, Quantity: l.Quantity})
	}
	return out
}

// encodeSnapshot records an event of eventType for ord, happening at at. Times are kept
// as PostgreSQL keeps the order's own (storedTime).
func encodeSnapshot(eventType string, ord *checkout.Order, at time.Time) ([]byte, error) {
	lines := make([]lineSnapshot, len(ord.Lines))
	s := eventSnapshot{SnapshotVersion: snapshotVersion, Type: eventType, OccurredAt: storedTime(at), Order: orderSnapshot{
		ID: ord.ID, CheckoutSessionID: ord.CheckoutSessionID, PermalinkURL: ord.PermalinkURL,
		Status: string(ord.Status), Amount: ord.Amount, Currency: ord.Currency,
		CreatedAt: storedTime(ord.CreatedAt), UpdatedAt: storedTime(ord.UpdatedAt), Refunds: make([]refundSnapshot, len(ord.Refunds)),
		Lines: &lines, Notes: ord.Notes,
	}}
	for i, r := range ord.Refunds {
		s.Order.Refunds[i] = refundSnapshot{ID: r.ID, Type: string(r.Type), Amount: r.Amount, Lines: lineQtysOut(r.Lines),
			Description: r.Description, Reason: r.Reason, CreatedAt: storedTime(r.CreatedAt)}
	}
	for i, l := range ord.Lines {
		lines[i] = lineSnapshot{ID: l.ID, ItemID: l.ItemID, Title: l.Title, Quantity: l.Quantity, UnitAmount: l.UnitAmount, Current: &l.Current}
		if l.Priced {
			lines[i].Subtotal, lines[i].Tax = &l.Subtotal, &l.Tax
		}
	}
	fs := make([]fulfillmentSnapshot, len(ord.Fulfillments))
	for i, f := range ord.Fulfillments {
		fs[i] = fulfillmentSnapshot{
			ID: f.ID, Type: string(f.Type), Status: string(f.Status), Lines: lineQtysOut(f.Lines),
			Carrier: f.Carrier, TrackingNumber: f.TrackingNumber, TrackingURL: f.TrackingURL, Destination: f.Destination,
			EarliestDelivery: storedTimeOf(f.EarliestDelivery), LatestDelivery: storedTimeOf(f.LatestDelivery), Description: f.Description,
			Events: make([]eventSnap, len(f.Events)), CreatedAt: storedTime(f.CreatedAt), UpdatedAt: storedTime(f.UpdatedAt),
		}
		if d := f.Digital; d != nil {
			fs[i].Digital, fs[i].AccessURL, fs[i].LicenseKey, fs[i].AccessExpiresAt = true, d.AccessURL, d.LicenseKey, storedTimeOf(d.ExpiresAt)
		}
		for j, e := range f.Events {
			fs[i].Events[j] = eventSnap{ID: e.ID, Type: string(e.Type), OccurredAt: storedTime(e.OccurredAt), Description: e.Description, Location: e.Location}
		}
	}
	cs := make([]cancellationSnapshot, len(ord.Cancellations))
	for i, c := range ord.Cancellations {
		cs[i] = cancellationSnapshot{ID: c.ID, Lines: lineQtysOut(c.Lines), Description: c.Description, Reason: c.Reason, CreatedAt: storedTime(c.CreatedAt)}
	}
	s.Order.Fulfillments, s.Order.Cancellations = &fs, &cs
	if a := ord.Amounts; a != nil {
		s.Order.Amounts = &amountsSnapshot{Subtotal: a.Subtotal, Discount: a.Discount, Fulfillment: a.Fulfillment, Tax: a.Tax}
	}
	return json.Marshal(s)
}

// decodeSnapshot reads back what encodeSnapshot wrote, in this release's version or an
// earlier one: a version 1 snapshot gives an order without lines; versions 1 and 2 get
// the quantities they implied (a canceled order keeps no unit, a shipped or fulfilled
// one had every unit in one shipment, as migration 00010 records for stored orders).
func decodeSnapshot(raw []byte) (eventType string, ord *checkout.Order, at time.Time, err error) {
	var s eventSnapshot
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return "", nil, time.Time{}, fmt.Errorf("read order event snapshot: %w", err)
	}
	o := s.Order
	v3Fields := o.Fulfillments != nil || o.Cancellations != nil || o.Amounts != nil
	switch {
	case !slices.Contains([]int{snapshotV1, snapshotV2, snapshotV3, snapshotV4}, s.SnapshotVersion):
		return "", nil, time.Time{}, fmt.Errorf("order event snapshot version %d is not known to this release", s.SnapshotVersion)
	case s.SnapshotVersion == snapshotV1 && o.Lines != nil:
		return "", nil, time.Time{}, errors.New("order event snapshot version 1 has lines, which only version 2 has")
	case s.SnapshotVersion != snapshotV1 && o.Lines == nil:
		return "", nil, time.Time{}, fmt.Errorf("order event snapshot version %d has no lines", s.SnapshotVersion)
	case s.SnapshotVersion < snapshotV3 && v3Fields:
		return "", nil, time.Time{}, fmt.Errorf("order event snapshot version %d has fulfillments, which only version 3 has", s.SnapshotVersion)
	case s.SnapshotVersion >= snapshotV3 && (o.Fulfillments == nil || o.Cancellations == nil):
		return "", nil, time.Time{}, fmt.Errorf("order event snapshot version %d has no fulfillments", s.SnapshotVersion)
	case s.SnapshotVersion < snapshotV4 && o.Notes != "":
		return "", nil, time.Time{}, fmt.Errorf("order event snapshot version %d has order notes, which only version 4 has", s.SnapshotVersion)
	}
	ord = &checkout.Order{
		ID: o.ID, CheckoutSessionID: o.CheckoutSessionID, PermalinkURL: o.PermalinkURL,
		Status: checkout.OrderStatus(o.Status), Amount: o.Amount, Currency: o.Currency,
		Notes: o.Notes, CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt,
	}
	for _, r := range o.Refunds {
		ord.Refunds = append(ord.Refunds, checkout.Refund{ID: r.ID, Type: checkout.RefundType(r.Type), Amount: r.Amount,
			Lines: lineQtysIn(r.Lines), Description: r.Description, Reason: r.Reason, CreatedAt: r.CreatedAt})
	}
	if o.Lines != nil {
		for _, l := range *o.Lines {
			ol := checkout.OrderLine{ID: l.ID, ItemID: l.ItemID, Title: l.Title, Quantity: l.Quantity, Current: l.Quantity, UnitAmount: l.UnitAmount}
			switch {
			case l.Current != nil:
				ol.Current = *l.Current
			case ord.Status == checkout.OrderCanceled:
				ol.Current = 0
			}
			if l.Subtotal != nil && l.Tax != nil {
				ol.Subtotal, ol.Tax, ol.Priced = *l.Subtotal, *l.Tax, true
			}
			ord.Lines = append(ord.Lines, ol)
		}
	}
	if a := o.Amounts; a != nil {
		ord.Amounts = &checkout.OrderAmounts{Subtotal: a.Subtotal, Discount: a.Discount, Fulfillment: a.Fulfillment, Tax: a.Tax}
	}
	if o.Fulfillments != nil {
		for _, f := range *o.Fulfillments {
			df := checkout.Fulfillment{
				ID: f.ID, Type: checkout.FulfillmentType(f.Type), Status: checkout.FulfillmentStatus(f.Status), Lines: lineQtysIn(f.Lines),
				Carrier: f.Carrier, TrackingNumber: f.TrackingNumber, TrackingURL: f.TrackingURL, Destination: f.Destination,
				EarliestDelivery: f.EarliestDelivery, LatestDelivery: f.LatestDelivery, Description: f.Description,
				CreatedAt: f.CreatedAt, UpdatedAt: f.UpdatedAt,
			}
			if f.Digital {
				df.Digital = &checkout.DigitalDelivery{AccessURL: f.AccessURL, LicenseKey: f.LicenseKey, ExpiresAt: f.AccessExpiresAt}
			}
			for _, e := range f.Events {
				df.Events = append(df.Events, checkout.FulfillmentEvent{ID: e.ID, Type: checkout.FulfillmentEventType(e.Type),
					OccurredAt: e.OccurredAt, Description: e.Description, Location: e.Location})
			}
			ord.Fulfillments = append(ord.Fulfillments, df)
		}
		for _, c := range *o.Cancellations {
			ord.Cancellations = append(ord.Cancellations, checkout.Cancellation{ID: c.ID, Lines: lineQtysIn(c.Lines),
				Description: c.Description, Reason: c.Reason, CreatedAt: c.CreatedAt})
		}
	} else if ord.Status == checkout.OrderShipped || ord.Status == checkout.OrderFulfilled {
		f := checkout.Fulfillment{ID: "ful_" + ord.ID, Type: checkout.FulfillmentShipping, Status: checkout.FulfillmentShipped,
			CreatedAt: ord.UpdatedAt, UpdatedAt: ord.UpdatedAt}
		if ord.Status == checkout.OrderFulfilled {
			f.Status = checkout.FulfillmentDelivered
		}
		for _, l := range ord.Lines {
			f.Lines = append(f.Lines, checkout.LineQuantity{LineID: l.ID, Quantity: l.Quantity})
		}
		if len(f.Lines) > 0 {
			ord.Fulfillments = []checkout.Fulfillment{f}
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
