package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/db"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
)

// AddFulfillment records a fulfilment of some units of order id (ORD-RFC §4.3). The
// units are checked under the order's row lock: concurrent fulfilments of one line
// never add up to more than is on the order.
func (o *Orders) AddFulfillment(ctx context.Context, id string, f checkout.Fulfillment) (*checkout.Order, error) {
	f.EarliestDelivery, f.LatestDelivery = storedTimeOf(f.EarliestDelivery), storedTimeOf(f.LatestDelivery)
	if f.Digital != nil {
		d := *f.Digital
		d.ExpiresAt = storedTimeOf(d.ExpiresAt)
		f.Digital = &d
	}
	return o.change(ctx, id, func(ord *checkout.Order, now time.Time) error {
		_, err := ord.AddFulfillment(f, now)
		return err
	})
}

// AddFulfillmentEvent appends an event to fulfilment fid of order id.
func (o *Orders) AddFulfillmentEvent(ctx context.Context, id, fid string, ev checkout.FulfillmentEvent) (*checkout.Order, error) {
	ev.OccurredAt = storedTime(ev.OccurredAt)
	return o.change(ctx, id, func(ord *checkout.Order, now time.Time) error {
		_, err := ord.AddFulfillmentEvent(fid, ev, now)
		return err
	})
}

// CancelLines takes units off order id and puts them back in stock.
func (o *Orders) CancelLines(ctx context.Context, id string, c checkout.Cancellation) (*checkout.Order, error) {
	return o.change(ctx, id, func(ord *checkout.Order, now time.Time) error {
		_, err := ord.CancelLines(c, now)
		return err
	})
}

// RefundLines records a refund (of named units, of an amount, or both); refunds never
// exceed what was paid. A refund to the original payment of an order paid with a PSP
// token goes through the gateway (WithGateway).
func (o *Orders) RefundLines(ctx context.Context, id string, req checkout.RefundRequest) (*checkout.Order, error) {
	return o.refund(ctx, id, req)
}

// insertOrderDetails stores what a new order's lines and totals cost, in the completion's
// transaction: what refunds of named units are priced from and what the Order shows.
func insertOrderDetails(ctx context.Context, q *db.Queries, ord *checkout.Order) error {
	if len(ord.Lines) > 0 {
		p := db.InsertOrderLinesParams{
			OrderID:           ord.ID,
			LineItemIds:       make([]string, len(ord.Lines)),
			QuantitiesCurrent: make([]int32, len(ord.Lines)),
			Subtotals:         make([]int64, len(ord.Lines)),
			Taxes:             make([]int64, len(ord.Lines)),
		}
		for i, l := range ord.Lines {
			p.LineItemIds[i], p.QuantitiesCurrent[i], p.Subtotals[i], p.Taxes[i] = l.ID, int32(l.Current), l.Subtotal, l.Tax
		}
		if err := q.InsertOrderLines(ctx, p); err != nil {
			return fmt.Errorf("insert order lines: %w", err)
		}
	}
	if a := ord.Amounts; a != nil {
		if err := q.InsertOrderAmounts(ctx, db.InsertOrderAmountsParams{
			OrderID: ord.ID, Subtotal: a.Subtotal, Discount: a.Discount, Fulfillment: a.Fulfillment, Tax: a.Tax,
		}); err != nil {
			return fmt.Errorf("insert order amounts: %w", err)
		}
	}
	return nil
}

// saveOrderChanges writes what a domain change added to ord since before: new
// fulfilments, events and fulfilment statuses, cancellations (with the lines' current
// quantities and the stock they free), refunds, and the status. The domain only ever
// appends, so the difference is found by id.
func saveOrderChanges(ctx context.Context, q *db.Queries, before, ord *checkout.Order, now time.Time) error {
	old := map[string]*checkout.Fulfillment{}
	for i := range before.Fulfillments {
		old[before.Fulfillments[i].ID] = &before.Fulfillments[i]
	}
	for i := range ord.Fulfillments {
		f := &ord.Fulfillments[i]
		prev, known := old[f.ID]
		if !known {
			if err := insertFulfillment(ctx, q, ord.ID, f); err != nil {
				return err
			}
		}
		for _, ev := range f.Events {
			if known && slices.ContainsFunc(prev.Events, func(p checkout.FulfillmentEvent) bool { return p.ID == ev.ID }) {
				continue
			}
			if err := q.InsertFulfillmentEvent(ctx, db.InsertFulfillmentEventParams{
				ID: ev.ID, FulfillmentID: f.ID, Type: string(ev.Type), OccurredAt: ev.OccurredAt,
				Description: nonEmpty(ev.Description), Location: nonEmpty(ev.Location),
			}); err != nil {
				return fmt.Errorf("insert fulfillment event: %w", err)
			}
		}
		if known && prev.Status != f.Status {
			if err := q.SetFulfillmentStatus(ctx, db.SetFulfillmentStatusParams{ID: f.ID, Status: string(f.Status), Now: now}); err != nil {
				return fmt.Errorf("set fulfillment status: %w", err)
			}
		}
	}
	for _, c := range ord.Cancellations[len(before.Cancellations):] {
		ids, positions, quantities := lineColumns(c.Lines)
		if err := q.InsertCancellation(ctx, db.InsertCancellationParams{
			ID: c.ID, OrderID: ord.ID, LineItemIds: ids, Positions: positions, Quantities: quantities,
			Description: nonEmpty(c.Description), Reason: nonEmpty(c.Reason), CreatedAt: c.CreatedAt,
		}); err != nil {
			return fmt.Errorf("insert cancellation: %w", err)
		}
	}
	if err := saveLineQuantities(ctx, q, before, ord); err != nil {
		return err
	}
	for _, r := range ord.Refunds[len(before.Refunds):] {
		if err := q.InsertRefund(ctx, db.InsertRefundParams{
			ID: r.ID, OrderID: ord.ID, Type: string(r.Type), Amount: r.Amount,
			Description: nonEmpty(r.Description), Reason: nonEmpty(r.Reason), CreatedAt: r.CreatedAt,
		}); err != nil {
			return fmt.Errorf("insert refund: %w", err)
		}
		if len(r.Lines) > 0 {
			ids, positions, quantities := lineColumns(r.Lines)
			if err := q.InsertRefundLines(ctx, db.InsertRefundLinesParams{
				RefundID: r.ID, LineItemIds: ids, Positions: positions, Quantities: quantities,
			}); err != nil {
				return fmt.Errorf("insert refund lines: %w", err)
			}
		}
	}
	if err := q.SetOrderStatus(ctx, db.SetOrderStatusParams{ID: ord.ID, Status: string(ord.Status), Now: ord.UpdatedAt}); err != nil {
		return fmt.Errorf("set order status: %w", err)
	}
	return nil
}

// saveLineQuantities stores the lines whose current quantity dropped and puts the units
// back in stock: one statement for the quantities and one for the stock, whatever the
// number of lines (putBackStock locks the variants in id order, as completions take
// stock, so that a cancellation and a checkout of the same items cannot deadlock).
func saveLineQuantities(ctx context.Context, q *db.Queries, before, ord *checkout.Order) error {
	current := db.SetOrderLinesCurrentParams{OrderID: ord.ID}
	var back []stockBack
	for i, l := range ord.Lines {
		d := before.Lines[i].Current - l.Current
		if d == 0 {
			continue
		}
		current.LineItemIds = append(current.LineItemIds, l.ID)
		current.QuantitiesCurrent = append(current.QuantitiesCurrent, int32(l.Current))
		if d > 0 {
			back = append(back, stockBack{variantID: l.ItemID, units: d})
		}
	}
	if len(current.LineItemIds) == 0 {
		return nil
	}
	if err := q.SetOrderLinesCurrent(ctx, current); err != nil {
		return fmt.Errorf("set line quantities: %w", err)
	}
	return putBackStock(ctx, q, back)
}

// stockBack is units of a variant to put back in stock.
type stockBack struct {
	variantID string
	units     int
}

// putBackStock puts back, in one statement (PutBackStock), the units of back, in variant
// id order: the order in which completions lock variant rows.
func putBackStock(ctx context.Context, q *db.Queries, back []stockBack) error {
	if len(back) == 0 {
		return nil
	}
	back = slices.Clone(back)
	slices.SortStableFunc(back, func(a, b stockBack) int { return cmp.Compare(a.variantID, b.variantID) })
	p := db.PutBackStockParams{VariantIds: make([]string, len(back)), Quantities: make([]int32, len(back))}
	for i, b := range back {
		p.VariantIds[i], p.Quantities[i] = b.variantID, int32(b.units)
	}
	if err := q.PutBackStock(ctx, p); err != nil {
		return fmt.Errorf("put stock back: %w", err)
	}
	return nil
}

// lineColumns are the columns of lines, one element per line: their ids, positions
// (their indexes) and quantities, as the statements that insert them in one go take them.
func lineColumns(lines []checkout.LineQuantity) (ids []string, positions, quantities []int32) {
	ids, positions, quantities = make([]string, len(lines)), make([]int32, len(lines)), make([]int32, len(lines))
	for i, l := range lines {
		ids[i], positions[i], quantities[i] = l.LineID, int32(i), int32(l.Quantity)
	}
	return ids, positions, quantities
}

func insertFulfillment(ctx context.Context, q *db.Queries, orderID string, f *checkout.Fulfillment) error {
	p := db.InsertFulfillmentParams{
		ID: f.ID, OrderID: orderID, Type: string(f.Type), Status: string(f.Status),
		Carrier: nonEmpty(f.Carrier), TrackingNumber: nonEmpty(f.TrackingNumber), TrackingUrl: nonEmpty(f.TrackingURL),
		Description: nonEmpty(f.Description), DeliveryEarliest: f.EarliestDelivery, DeliveryLatest: f.LatestDelivery,
		Now: f.CreatedAt,
	}
	if f.Destination != nil {
		var err error
		if p.Destination, err = json.Marshal(f.Destination); err != nil {
			return fmt.Errorf("encode destination: %w", err)
		}
	}
	if d := f.Digital; d != nil {
		p.AccessUrl, p.LicenseKey, p.AccessExpiresAt = nonEmpty(d.AccessURL), nonEmpty(d.LicenseKey), d.ExpiresAt
	}
	if err := q.InsertFulfillment(ctx, p); err != nil {
		return fmt.Errorf("insert fulfillment: %w", err)
	}
	if len(f.Lines) > 0 {
		ids, positions, quantities := lineColumns(f.Lines)
		if err := q.InsertFulfillmentLines(ctx, db.InsertFulfillmentLinesParams{
			FulfillmentID: f.ID, LineItemIds: ids, Positions: positions, Quantities: quantities,
		}); err != nil {
			return fmt.Errorf("insert fulfillment lines: %w", err)
		}
	}
	return nil
}

// orderDetails are the rows an order's details are read from: its refunds, lines,
// fulfilments with their lines and events, cancellations, refund lines and amounts.
type orderDetails struct {
	refunds       []db.Refund
	lines         []db.ListOrderLineStatesRow
	fulfillments  []db.Fulfillment
	flines        []db.FulfillmentLine
	events        []db.ListFulfillmentEventsRow
	cancellations []db.OrderCancellation
	refundLines   []db.RefundLine
	// amounts is nil for an order from before migration 00010.
	amounts *db.OrderAmount
}

// orderRead is one statement reading an order: it runs one method of q and keeps the
// result, returning only an error that must stop the reading (a read along,
// pipelinedTx.readAlong, may be called twice, the first time with Queries that only
// capture its statement).
type orderRead = func(q *db.Queries) error

// reads are the statements that read order id's details into d, one each, in the
// order they are sent; none depends on another's result, so that a pipelinedTx sends
// them in one round trip (readAll).
func (d *orderDetails) reads(ctx context.Context, id string) []orderRead {
	return []orderRead{
		func(q *db.Queries) (err error) {
			d.refunds, err = q.ListRefunds(ctx, []string{id})
			return wrapErr(err, "load refunds")
		},
		func(q *db.Queries) (err error) {
			d.lines, err = q.ListOrderLineStates(ctx, id)
			return wrapErr(err, "load order lines")
		},
		func(q *db.Queries) (err error) {
			d.fulfillments, err = q.ListFulfillments(ctx, id)
			return wrapErr(err, "load fulfillments")
		},
		func(q *db.Queries) (err error) {
			d.flines, err = q.ListFulfillmentLines(ctx, id)
			return wrapErr(err, "load fulfillment lines")
		},
		func(q *db.Queries) (err error) {
			d.events, err = q.ListFulfillmentEvents(ctx, id)
			return wrapErr(err, "load fulfillment events")
		},
		func(q *db.Queries) (err error) {
			d.cancellations, err = q.ListCancellations(ctx, id)
			return wrapErr(err, "load cancellations")
		},
		func(q *db.Queries) (err error) {
			d.refundLines, err = q.ListRefundLines(ctx, id)
			return wrapErr(err, "load refund lines")
		},
		func(q *db.Queries) error {
			d.amounts = nil
			a, err := q.GetOrderAmounts(ctx, id)
			switch {
			case err == nil:
				d.amounts = &a
			case !isNoRows(err):
				return fmt.Errorf("load order amounts: %w", err)
			}
			return nil
		},
	}
}

// wrapErr is err (nil stays nil) wrapped with what failed.
func wrapErr(err error, what string) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// order is the order of row with the details of d.
func (d *orderDetails) order(row db.Order) (*checkout.Order, error) {
	ord := orderWithRefunds(row, d.refunds)
	ord.Lines = make([]checkout.OrderLine, len(d.lines))
	for i, l := range d.lines {
		ol := checkout.OrderLine{ID: l.ID, ItemID: l.VariantID, Title: l.Title, Quantity: int(l.Quantity),
			Current: int(l.QuantityCurrent), UnitAmount: l.UnitAmount}
		if l.Subtotal != nil && l.Tax != nil {
			ol.Subtotal, ol.Tax, ol.Priced = *l.Subtotal, *l.Tax, true
		}
		ord.Lines[i] = ol
	}
	ord.Fulfillments = make([]checkout.Fulfillment, len(d.fulfillments))
	byID := map[string]*checkout.Fulfillment{}
	for i, r := range d.fulfillments {
		f := checkout.Fulfillment{
			ID: r.ID, Type: checkout.FulfillmentType(r.Type), Status: checkout.FulfillmentStatus(r.Status),
			Carrier: deref(r.Carrier), TrackingNumber: deref(r.TrackingNumber), TrackingURL: deref(r.TrackingUrl),
			Description: deref(r.Description), EarliestDelivery: r.DeliveryEarliest, LatestDelivery: r.DeliveryLatest,
			CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
		}
		if r.Destination != nil {
			f.Destination = &checkout.Address{}
			if err := json.Unmarshal(r.Destination, f.Destination); err != nil {
				return nil, fmt.Errorf("read fulfillment destination: %w", err)
			}
		}
		if r.AccessUrl != nil || r.LicenseKey != nil || r.AccessExpiresAt != nil {
			f.Digital = &checkout.DigitalDelivery{AccessURL: deref(r.AccessUrl), LicenseKey: deref(r.LicenseKey), ExpiresAt: r.AccessExpiresAt}
		}
		ord.Fulfillments[i] = f
		byID[f.ID] = &ord.Fulfillments[i]
	}
	for _, l := range d.flines {
		f := byID[l.FulfillmentID]
		f.Lines = append(f.Lines, checkout.LineQuantity{LineID: l.LineItemID, Quantity: int(l.Quantity)})
	}
	for _, e := range d.events {
		f := byID[e.FulfillmentID]
		f.Events = append(f.Events, checkout.FulfillmentEvent{
			ID: e.ID, Type: checkout.FulfillmentEventType(e.Type), OccurredAt: e.OccurredAt,
			Description: deref(e.Description), Location: deref(e.Location),
		})
	}
	for _, c := range d.cancellations {
		if n := len(ord.Cancellations); n == 0 || ord.Cancellations[n-1].ID != c.ID {
			ord.Cancellations = append(ord.Cancellations, checkout.Cancellation{
				ID: c.ID, Description: deref(c.Description), Reason: deref(c.Reason), CreatedAt: c.CreatedAt,
			})
		}
		last := &ord.Cancellations[len(ord.Cancellations)-1]
		last.Lines = append(last.Lines, checkout.LineQuantity{LineID: c.LineItemID, Quantity: int(c.Quantity)})
	}
	for _, l := range d.refundLines {
		for i := range ord.Refunds {
			if r := &ord.Refunds[i]; r.ID == l.RefundID {
				r.Lines = append(r.Lines, checkout.LineQuantity{LineID: l.LineItemID, Quantity: int(l.Quantity)})
			}
		}
	}
	if a := d.amounts; a != nil {
		ord.Amounts = &checkout.OrderAmounts{Subtotal: a.Subtotal, Discount: a.Discount, Fulfillment: a.Fulfillment, Tax: a.Tax}
	}
	return ord, nil
}

// cloneOrder copies what saveOrderChanges compares: the slices a domain change appends
// to or changes in place.
func cloneOrder(o *checkout.Order) *checkout.Order {
	c := *o
	c.Lines = slices.Clone(o.Lines)
	c.Refunds = slices.Clone(o.Refunds)
	c.Cancellations = slices.Clone(o.Cancellations)
	c.Fulfillments = slices.Clone(o.Fulfillments)
	for i := range c.Fulfillments {
		c.Fulfillments[i].Events = slices.Clone(o.Fulfillments[i].Events)
	}
	return &c
}

// deref is *s, or "" for NULL.
func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
