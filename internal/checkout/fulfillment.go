package checkout

import (
	"net/url"
	"slices"
	"time"
)

// This file is the order after payment as ORD-RFC models it: per line, what was ordered,
// what is still on the order and what has been fulfilled; fulfilments with their event
// history; cancellations of units; and the order status derived from all of that
// (ORD-RFC §4.2, §7.1). Everything is checked under the order's row lock, so two
// concurrent requests can never fulfil, cancel or refund the same unit twice.

// FulfillmentPickup is the third fulfilment type of ORD-RFC §4.3, besides shipping and
// digital: the buyer collects the units.
const FulfillmentPickup FulfillmentType = "pickup"

// FulfillmentStatus is where a fulfilment is.
type FulfillmentStatus string

// The fulfilment statuses of ORD-RFC §4.3.
const (
	FulfillmentPending        FulfillmentStatus = "pending"
	FulfillmentProcessing     FulfillmentStatus = "processing"
	FulfillmentShipped        FulfillmentStatus = "shipped"
	FulfillmentInTransit      FulfillmentStatus = "in_transit"
	FulfillmentOutForDelivery FulfillmentStatus = "out_for_delivery"
	FulfillmentReadyForPickup FulfillmentStatus = "ready_for_pickup"
	FulfillmentDelivered      FulfillmentStatus = "delivered"
	FulfillmentFailed         FulfillmentStatus = "failed"
	FulfillmentCanceled       FulfillmentStatus = "canceled"
)

// fulfillmentStatuses is ORD-RFC §4.3's applicability table: the statuses each type may
// take. Merchants SHOULD use only these; we refuse the others.
var fulfillmentStatuses = map[FulfillmentType][]FulfillmentStatus{
	FulfillmentShipping: {FulfillmentPending, FulfillmentProcessing, FulfillmentShipped, FulfillmentInTransit,
		FulfillmentOutForDelivery, FulfillmentDelivered, FulfillmentFailed, FulfillmentCanceled},
	FulfillmentPickup: {FulfillmentPending, FulfillmentProcessing, FulfillmentReadyForPickup, FulfillmentDelivered,
		FulfillmentFailed, FulfillmentCanceled},
	FulfillmentDigital: {FulfillmentPending, FulfillmentProcessing, FulfillmentDelivered, FulfillmentFailed, FulfillmentCanceled},
}

// ValidFulfillmentType reports whether t is a fulfilment type.
func ValidFulfillmentType(t FulfillmentType) bool {
	_, ok := fulfillmentStatuses[t]
	return ok
}

// Applies reports whether status s applies to fulfilments of type t (ORD-RFC §4.3).
func (t FulfillmentType) Applies(s FulfillmentStatus) bool {
	return slices.Contains(fulfillmentStatuses[t], s)
}

// Fulfilled reports whether units in a fulfilment of status s count as fulfilled:
// handed to the carrier or delivered (picked up, downloaded). Pending, processing and
// ready-for-pickup units have not left; failed and canceled ones did not arrive.
func (s FulfillmentStatus) Fulfilled() bool {
	switch s {
	case FulfillmentShipped, FulfillmentInTransit, FulfillmentOutForDelivery, FulfillmentDelivered:
		return true
	}
	return false
}

// FulfillmentEventType is what happened to a fulfilment (ORD-RFC §4.4).
type FulfillmentEventType string

// eventStatus is the status each event type puts its fulfilment in: the event log is
// the fulfilment's history and its latest event its state.
var eventStatus = map[FulfillmentEventType]FulfillmentStatus{
	"processing":         FulfillmentProcessing,
	"shipped":            FulfillmentShipped,
	"in_transit":         FulfillmentInTransit,
	"out_for_delivery":   FulfillmentOutForDelivery,
	"ready_for_pickup":   FulfillmentReadyForPickup,
	"delivered":          FulfillmentDelivered,
	"failed_attempt":     FulfillmentFailed,
	"returned_to_sender": FulfillmentFailed,
	"undeliverable":      FulfillmentFailed,
	"canceled":           FulfillmentCanceled,
}

// FulfillmentEventTypes are the event types, sorted (for messages).
func FulfillmentEventTypes() []string {
	out := make([]string, 0, len(eventStatus))
	for t := range eventStatus {
		out = append(out, string(t))
	}
	slices.Sort(out)
	return out
}

// LineQuantity is some units of one order line (ORD-RFC's LineItemReference).
type LineQuantity struct {
	LineID   string
	Quantity int
}

// DigitalDelivery is how the buyer reaches digital goods.
type DigitalDelivery struct {
	AccessURL  string
	LicenseKey string
	ExpiresAt  *time.Time
}

func (d *DigitalDelivery) accessURL() string {
	if d == nil {
		return ""
	}
	return d.AccessURL
}

// Fulfillment is one delivery of some units of an order.
type Fulfillment struct {
	ID     string
	Type   FulfillmentType
	Status FulfillmentStatus
	Lines  []LineQuantity
	// Carrier, TrackingNumber and TrackingURL are a shipment's.
	Carrier        string
	TrackingNumber string
	TrackingURL    string
	Destination    *Address
	// EarliestDelivery and LatestDelivery are both set or both nil.
	EarliestDelivery *time.Time
	LatestDelivery   *time.Time
	Digital          *DigitalDelivery
	Description      string
	// Events are the history, oldest first (by OccurredAt, then as recorded).
	Events    []FulfillmentEvent
	CreatedAt time.Time
	UpdatedAt time.Time
}

// FulfillmentEvent is one point in a fulfilment's history.
type FulfillmentEvent struct {
	ID          string
	Type        FulfillmentEventType
	OccurredAt  time.Time
	Description string
	Location    string
}

// Cancellation takes units off an order: the lines' current quantity drops by them.
type Cancellation struct {
	ID          string
	Lines       []LineQuantity
	Description string
	Reason      string
	CreatedAt   time.Time
}

// OrderAmounts is how the order's Amount was made up at completion.
type OrderAmounts struct {
	Subtotal    int64
	Discount    int64
	Fulfillment int64
	Tax         int64
}

// LineStatus is an order line's status, derived from its quantities (ORD-RFC §4.2).
type LineStatus string

// The line statuses.
const (
	LineProcessing LineStatus = "processing"
	LinePartial    LineStatus = "partial"
	LineFulfilled  LineStatus = "fulfilled"
	LineRemoved    LineStatus = "removed"
)

// LineStatusOf derives a line's status from its current and fulfilled quantities.
func LineStatusOf(current, fulfilled int) LineStatus {
	switch {
	case current == 0:
		return LineRemoved
	case fulfilled >= current:
		return LineFulfilled
	case fulfilled > 0:
		return LinePartial
	}
	return LineProcessing
}

// line returns the order line id, or nil.
func (o *Order) line(id string) *OrderLine {
	for i := range o.Lines {
		if o.Lines[i].ID == id {
			return &o.Lines[i]
		}
	}
	return nil
}

// Fulfillment returns the order's fulfilment id, or nil.
func (o *Order) Fulfillment(id string) *Fulfillment {
	for i := range o.Fulfillments {
		if o.Fulfillments[i].ID == id {
			return &o.Fulfillments[i]
		}
	}
	return nil
}

// FulfilledUnits is how many units of line lineID have been fulfilled.
func (o *Order) FulfilledUnits(lineID string) int {
	return o.unitsIn(lineID, func(f *Fulfillment) bool { return f.Status.Fulfilled() })
}

// allocated is how many units of line lineID are in fulfilments that still count
// (every one not canceled): they cannot be fulfilled again nor canceled.
func (o *Order) allocated(lineID string) int {
	return o.unitsIn(lineID, func(f *Fulfillment) bool { return f.Status != FulfillmentCanceled })
}

func (o *Order) unitsIn(lineID string, counts func(*Fulfillment) bool) int {
	n := 0
	for i := range o.Fulfillments {
		if f := &o.Fulfillments[i]; counts(f) {
			for _, l := range f.Lines {
				if l.LineID == lineID {
					n += l.Quantity
				}
			}
		}
	}
	return n
}

// checkLines checks a list of line quantities against the order: known lines, each
// once, positive quantities, at most room(line) units each.
func (o *Order) checkLines(lines []LineQuantity, required bool, what string, room func(*OrderLine) int) error {
	at := At(FieldOrderLines)
	if required && len(lines) == 0 {
		return Errorf(KindInvalid, "missing", at, "Name the line items (id and quantity) %s.", what)
	}
	seen := map[string]bool{}
	for i, lq := range lines {
		l := o.line(lq.LineID)
		switch {
		case l == nil:
			return Errorf(KindInvalid, "invalid", at.Index(i).Child(FieldID), "Line item %q is not on this order.", lq.LineID)
		case seen[lq.LineID]:
			return Errorf(KindInvalid, "invalid", at.Index(i).Child(FieldID), "Line item %q is named twice.", lq.LineID)
		case lq.Quantity < 1:
			return Errorf(KindInvalid, "invalid", at.Index(i).Child(FieldQuantity), "Quantity must be at least 1.")
		}
		seen[lq.LineID] = true
		if left := room(l); lq.Quantity > left {
			return Errorf(KindConflict, "quantity_exceeded", at.Index(i).Child(FieldQuantity),
				"Only %d unit(s) of line item %s can be %s; %d asked.", max(left, 0), lq.LineID, what, lq.Quantity)
		}
	}
	return nil
}

// checkOpen refuses changes to the units of an order under review or canceled.
func (o *Order) checkOpen(what string) error {
	if o.Status == OrderManualReview || o.Status == OrderCanceled {
		return Errorf(KindConflict, "invalid_transition", At(FieldOrderStatus), "An order that is %s cannot be %s.", o.Status, what)
	}
	return nil
}

// AddFulfillment records f (its ID, times and, without one, pending status are set
// here). Its units must still be on the order and in no other fulfilment that counts.
func (o *Order) AddFulfillment(f Fulfillment, now time.Time) (*Fulfillment, error) {
	if err := o.checkOpen("fulfilled"); err != nil {
		return nil, err
	}
	if !ValidFulfillmentType(f.Type) {
		return nil, Errorf(KindInvalid, "invalid", At(FieldFulfillmentType), "Fulfillment type must be shipping, pickup or digital.")
	}
	if f.Status == "" {
		f.Status = FulfillmentPending
	}
	if !f.Type.Applies(f.Status) {
		return nil, Errorf(KindInvalid, "invalid", At(FieldFulfillmentStatus), "Status %q does not apply to %s fulfillments.", f.Status, f.Type)
	}
	if f.Status == FulfillmentCanceled {
		return nil, Errorf(KindInvalid, "invalid", At(FieldFulfillmentStatus), "A fulfillment cannot start canceled.")
	}
	if err := o.checkLines(f.Lines, true, "fulfilled", func(l *OrderLine) int { return l.Current - o.allocated(l.ID) }); err != nil {
		return nil, err
	}
	for _, u := range []string{f.TrackingURL, f.Digital.accessURL()} {
		if p, err := url.Parse(u); u != "" && (err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "") {
			return nil, Errorf(KindInvalid, "invalid", Field{}, "%q is not an absolute http(s) URL.", u)
		}
	}
	f.ID, f.CreatedAt, f.UpdatedAt, f.Events = NewID("ful_"), now, now, nil
	o.Fulfillments = append(o.Fulfillments, f)
	o.derive(now)
	return &o.Fulfillments[len(o.Fulfillments)-1], nil
}

// AddFulfillmentEvent appends ev to fulfilment fid. The fulfilment takes the status of
// its latest event (by occurred_at; an event told late does not undo a later one).
// A canceled fulfilment takes no more events, and units that have left cannot be
// canceled (a return is a refund or a cancellation of the line, not of the shipment).
func (o *Order) AddFulfillmentEvent(fid string, ev FulfillmentEvent, now time.Time) (*Fulfillment, error) {
	f := o.Fulfillment(fid)
	if f == nil {
		return nil, Errorf(KindNotFound, "not_found", Field{}, "Fulfillment not found.")
	}
	to, ok := eventStatus[ev.Type]
	switch {
	case !ok:
		return nil, Errorf(KindInvalid, "invalid", At(FieldEventType), "Unknown event type %q (one of %v).", ev.Type, FulfillmentEventTypes())
	case !f.Type.Applies(to):
		return nil, Errorf(KindInvalid, "invalid", At(FieldEventType), "Event %q does not apply to %s fulfillments.", ev.Type, f.Type)
	case ev.OccurredAt.IsZero():
		return nil, Errorf(KindInvalid, "missing", At(FieldOccurredAt), "occurred_at is required.")
	case ev.OccurredAt.After(now.Add(time.Minute)):
		return nil, Errorf(KindInvalid, "invalid", At(FieldOccurredAt), "occurred_at is in the future.")
	case f.Status == FulfillmentCanceled:
		return nil, Errorf(KindConflict, "invalid_transition", At(FieldEventType), "Fulfillment %s is canceled.", fid)
	case o.Status == OrderCanceled:
		return nil, Errorf(KindConflict, "invalid_transition", At(FieldEventType), "The order is canceled.")
	}
	ev.ID = NewID("evt_")
	latest := len(f.Events) == 0 || !ev.OccurredAt.Before(f.Events[len(f.Events)-1].OccurredAt)
	if latest && to == FulfillmentCanceled && f.Status.Fulfilled() {
		return nil, Errorf(KindConflict, "invalid_transition", At(FieldEventType),
			"Fulfillment %s is %s: its units have left and cannot be canceled.", fid, f.Status)
	}
	// Keep the history sorted by time, a late event after those of the same instant.
	i := len(f.Events)
	for i > 0 && ev.OccurredAt.Before(f.Events[i-1].OccurredAt) {
		i--
	}
	f.Events = slices.Insert(f.Events, i, ev)
	if latest {
		f.Status = to
	}
	f.UpdatedAt = now
	o.UpdatedAt = now
	o.derive(now)
	return f, nil
}

// CancelLines takes units off the order that are in no fulfilment that counts. An order
// left with no unit is canceled.
func (o *Order) CancelLines(c Cancellation, now time.Time) (*Cancellation, error) {
	if err := o.checkOpen("changed"); err != nil {
		return nil, err
	}
	if err := o.checkLines(c.Lines, true, "canceled", func(l *OrderLine) int { return l.Current - o.allocated(l.ID) }); err != nil {
		return nil, err
	}
	for _, lq := range c.Lines {
		o.line(lq.LineID).Current -= lq.Quantity
	}
	c.ID, c.CreatedAt = NewID("cx_"), now
	o.Cancellations = append(o.Cancellations, c)
	o.UpdatedAt = now
	o.derive(now)
	return &o.Cancellations[len(o.Cancellations)-1], nil
}

// cancelRest takes every unit still on the order off it (the order is being canceled).
func (o *Order) cancelRest(now time.Time) {
	var lines []LineQuantity
	for i := range o.Lines {
		if l := &o.Lines[i]; l.Current > 0 {
			lines = append(lines, LineQuantity{LineID: l.ID, Quantity: l.Current})
			l.Current = 0
		}
	}
	if len(lines) > 0 {
		o.Cancellations = append(o.Cancellations, Cancellation{ID: NewID("cx_"), Lines: lines, Description: "Order canceled", CreatedAt: now})
	}
}

// shipRest puts every unit on the order in no fulfilment into one shipment, handed to
// the carrier now: what moving a confirmed order to shipped means.
func (o *Order) shipRest(now time.Time) {
	f := Fulfillment{ID: NewID("ful_"), Type: FulfillmentShipping, Status: FulfillmentShipped, CreatedAt: now, UpdatedAt: now}
	for i := range o.Lines {
		l := &o.Lines[i]
		if n := l.Current - o.allocated(l.ID); n > 0 {
			f.Lines = append(f.Lines, LineQuantity{LineID: l.ID, Quantity: n})
		}
	}
	if len(f.Lines) > 0 {
		f.Events = []FulfillmentEvent{{ID: NewID("evt_"), Type: "shipped", OccurredAt: now}}
		o.Fulfillments = append(o.Fulfillments, f)
	}
}

// deliverAll marks every fulfilment on its way as delivered: what moving a shipped order
// to fulfilled means.
func (o *Order) deliverAll(now time.Time) {
	for i := range o.Fulfillments {
		if f := &o.Fulfillments[i]; f.Status.Fulfilled() && f.Status != FulfillmentDelivered {
			f.Events = append(f.Events, FulfillmentEvent{ID: NewID("evt_"), Type: "delivered", OccurredAt: now})
			f.Status, f.UpdatedAt = FulfillmentDelivered, now
		}
	}
}

// derive sets the order status from its lines and fulfilments (ORD-RFC §7.1): canceled
// once no unit is left, fulfilled (2026-04-17's completed) once every unit is fulfilled
// and every fulfilment delivered, shipped once every unit has left, processing while
// some are on their way or being prepared, otherwise the status the merchant set. An
// order under review or canceled keeps its status.
func (o *Order) derive(now time.Time) {
	if o.Status == OrderManualReview || o.Status == OrderCanceled || len(o.Lines) == 0 {
		return
	}
	prev := o.Status
	defer func() {
		if o.Status != prev {
			o.UpdatedAt = now
		}
	}()
	left, allFulfilled := 0, true
	for _, l := range o.Lines {
		left += l.Current
		if l.Current > 0 && o.FulfilledUnits(l.ID) < l.Current {
			allFulfilled = false
		}
	}
	active, allDelivered := 0, true
	for _, f := range o.Fulfillments {
		if f.Status != FulfillmentCanceled {
			active++
			allDelivered = allDelivered && f.Status == FulfillmentDelivered
		}
	}
	switch {
	case left == 0:
		o.Status = OrderCanceled
	case active == 0:
		if o.Status != OrderCreated {
			o.Status = OrderConfirmed
		}
	case allFulfilled && allDelivered:
		o.Status = OrderFulfilled
	case allFulfilled:
		o.Status = OrderShipped
	default:
		o.Status = OrderProcessing
	}
}

// RefundRequest is a refund the merchant asks for. Amount 0 asks for the tax-inclusive
// price of Lines (their share of what each line cost at completion).
type RefundRequest struct {
	Type        RefundType
	Amount      int64
	Lines       []LineQuantity
	Description string
	Reason      string
}

// refundedUnits is how many units of line lineID earlier refunds named.
func (o *Order) refundedUnits(lineID string) int {
	n := 0
	for _, r := range o.Refunds {
		for _, l := range r.Lines {
			if l.LineID == lineID {
				n += l.Quantity
			}
		}
	}
	return n
}

// linesAmount is the tax-inclusive price of lines: for each, the share of the line's
// subtotal plus tax for its units, rounded down, the last unit taking the remainder so
// that refunding every unit one by one gives back exactly what the line cost.
func (o *Order) linesAmount(lines []LineQuantity) (int64, error) {
	var sum int64
	for i, lq := range lines {
		l := o.line(lq.LineID)
		if !l.Priced {
			return 0, Errorf(KindInvalid, "missing", At(FieldRefundAmount).Index(i),
				"Line item %s has no recorded price breakdown (an order from before line prices were kept): give the amount.", l.ID)
		}
		paid, done := l.Subtotal+l.Tax, int64(o.refundedUnits(l.ID))
		share := func(units int64) int64 { return paid * units / int64(l.Quantity) }
		sum += share(done+int64(lq.Quantity)) - share(done)
	}
	return sum, nil
}

// AddRefundRequest records a refund, of the lines' tax-inclusive price when no amount is
// given. Refunds never add up to more than was paid, nor name more units of a line than
// were ordered.
func (o *Order) AddRefundRequest(req RefundRequest, now time.Time) (Refund, error) {
	if req.Type != RefundStoreCredit && req.Type != RefundOriginalPayment {
		return Refund{}, Errorf(KindInvalid, "invalid", At(FieldRefundType), "Refund type must be store_credit or original_payment.")
	}
	if req.Amount < 0 || (req.Amount == 0 && len(req.Lines) == 0) {
		return Refund{}, Errorf(KindInvalid, "invalid", At(FieldRefundAmount), "Refund amount must be a positive integer in minor units.")
	}
	if err := o.checkLines(req.Lines, false, "refunded", func(l *OrderLine) int { return l.Quantity - o.refundedUnits(l.ID) }); err != nil {
		return Refund{}, err
	}
	amount := req.Amount
	if amount == 0 {
		var err error
		if amount, err = o.linesAmount(req.Lines); err != nil {
			return Refund{}, err
		}
		if amount == 0 {
			return Refund{}, Errorf(KindInvalid, "invalid", At(FieldRefundAmount), "These units cost nothing: there is nothing to refund.")
		}
	}
	if refunded := o.Refunded(); amount > o.Amount-refunded {
		return Refund{}, Errorf(KindConflict, "refund_exceeds_payment", At(FieldRefundAmount),
			"Refunds would total %d, more than the %d paid.", refunded+amount, o.Amount)
	}
	r := Refund{ID: NewID("rf_"), Type: req.Type, Amount: amount, Lines: req.Lines, Description: req.Description, Reason: req.Reason, CreatedAt: now}
	o.Refunds = append(o.Refunds, r)
	o.UpdatedAt = now
	return r, nil
}
