package postgres_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/postgres"
	"github.com/agentic-commerce/agentic-commerce-server/internal/testkit"
	"github.com/agentic-commerce/agentic-commerce-server/internal/webhook"
)

func outboxWorkerIn(outbox webhook.Outbox, url, version string) *webhook.Worker {
	return webhook.NewWorker(webhook.Config{
		URL: url, Secret: outboxSecret, Timeout: 5 * time.Second, Horizon: time.Hour, Workers: 1,
		Poll: 20 * time.Millisecond, APIVersion: version,
	}, outbox, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// refundedOrder is a new order with a store-credit refund of 100 (two events).
func (e *outboxEnv) refundedOrder() *checkout.Order {
	e.t.Helper()
	ord := e.mustOrder()
	if _, err := e.orders.Refund(context.Background(), ord.ID, checkout.RefundStoreCredit, 100); err != nil {
		e.t.Fatal(err)
	}
	return ord
}

// The outbox keeps a versionless snapshot of the order; the body is encoded when it is
// sent, from the order as it was at the change (not as it is at send time).
func TestOutboxStoresASnapshotEncodedAtSendTime(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t)
	ctx := context.Background()
	ord := e.refundedOrder()
	evs := e.events(ord.ID)
	if len(evs) != 2 {
		t.Fatalf("events = %d", len(evs))
	}
	for _, ev := range evs {
		if ev.Format != "snapshot-v1" {
			t.Errorf("event %d payload_format = %q, want snapshot-v1", ev.ID, ev.Format)
		}
	}
	var snap struct {
		SnapshotVersion int       `json:"snapshot_version"`
		Type            string    `json:"type"`
		OccurredAt      time.Time `json:"occurred_at"`
		Order           struct {
			ID, Currency, Status string
			Amount               int64
			Refunds              []struct {
				ID     string
				Amount int64
			}
			Lines []struct {
				ID, Title  string
				ItemID     string `json:"item_id"`
				Quantity   int
				UnitAmount int64 `json:"unit_amount"`
			}
		}
	}
	if err := json.Unmarshal(evs[1].Stored, &snap); err != nil {
		t.Fatalf("snapshot: %v\n%s", err, evs[1].Stored)
	}
	if snap.SnapshotVersion != 4 || snap.Type != "order_update" || !snap.OccurredAt.Equal(evs[1].CreatedAt) ||
		snap.Order.ID != ord.ID || snap.Order.Currency != "usd" || snap.Order.Amount != ord.Amount ||
		len(snap.Order.Refunds) != 1 || snap.Order.Refunds[0].Amount != 100 || snap.Order.Refunds[0].ID == "" {
		t.Errorf("snapshot = %+v\n%s", snap, evs[1].Stored)
	}
	// Version 2 keeps the order's lines (the refund's event is written by Orders.Refund).
	if l := snap.Order.Lines; len(l) != 1 || !strings.HasPrefix(l[0].ID, "li_") || l[0].ItemID != "item_123" ||
		l[0].Title != "Tee" || l[0].Quantity != 1 || l[0].UnitAmount != 1500 {
		t.Errorf("snapshot lines = %+v\n%s", l, evs[1].Stored)
	}
	if bytes.Contains(evs[1].Stored, []byte(`"data"`)) {
		t.Errorf("the outbox holds a wire body, not a snapshot: %s", evs[1].Stored)
	}

	// The order moves on before anything is sent: each event still tells its own state.
	if _, err := e.orders.SetStatus(ctx, ord.ID, checkout.OrderCanceled); err != nil {
		t.Fatal(err)
	}
	rcv := newOutboxReceiver(t, func(string, int) int { return http.StatusOK })
	if n, err := outboxWorkerIn(e.outbox, rcv.URL, "2025-09-29").DeliverDue(ctx); n != 3 || err != nil {
		t.Fatalf("DeliverDue = %d, %v", n, err)
	}
	hits := rcv.successes()
	if len(hits) != 3 {
		t.Fatalf("delivered %d", len(hits))
	}
	want := []struct {
		typ, status string
		refunds     int
	}{{"order_create", "created", 0}, {"order_update", "created", 1}, {"order_update", "canceled", 1}}
	for i, w := range want {
		p := outboxDecode(t, hits[i].Body)
		if p.Type != w.typ || p.Data.Status != w.status || len(p.Data.Refunds) != w.refunds || p.Data.CheckoutSessionID != ord.CheckoutSessionID {
			t.Errorf("body %d = %s, want %+v", i, hits[i].Body, w)
		}
		if !hits[i].SigOK {
			t.Errorf("body %d: bad signature", i)
		}
	}
	if !bytes.Equal(hits[1].Body, evs[1].Payload) {
		t.Errorf("sent %s, want %s", hits[1].Body, evs[1].Payload)
	}
}

// Rows written before snapshots (payload_format defaults to acp-2025-09-29) hold the
// body itself: it is delivered byte for byte, whatever the configured version.
func TestOutboxLegacyRowsAreDeliveredByteForByte(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t)
	ctx := context.Background()
	ord := e.mustOrder()
	e.exec(`UPDATE order_events SET status = 'delivered', delivered_at = now()`)
	legacy := `{"type":"order_update", "data" : {"type":"order","checkout_session_id":"` + ord.CheckoutSessionID +
		`","permalink_url":"https://shop.example/orders/` + ord.ID + `","status":"shipped","refunds":[ {"type":"store_credit","amount":100} ]}}`
	// As the release before the migration wrote it: no payload_format.
	e.exec(`INSERT INTO order_events (order_id, type, payload) VALUES ($1, 'order_update', $2)`, ord.ID, legacy)
	evs := e.events(ord.ID)
	if last := evs[len(evs)-1]; last.Format != "acp-2025-09-29" || string(last.Stored) != legacy {
		t.Fatalf("legacy row = %+v", last)
	}
	rcv := newOutboxReceiver(t, func(_ string, previous int) int {
		if previous == 0 {
			return http.StatusBadGateway
		}
		return http.StatusOK
	})
	w := outboxWorkerIn(e.outbox, rcv.URL, "2025-09-29")
	if n, err := w.DeliverDue(ctx); n != 1 || err != nil {
		t.Fatalf("DeliverDue = %d, %v", n, err)
	}
	e.makeDue()
	if n, err := w.DeliverDue(ctx); n != 1 || err != nil {
		t.Fatalf("retry: DeliverDue = %d, %v", n, err)
	}
	hits := rcv.all()
	if len(hits) != 2 {
		t.Fatalf("requests = %d, want 2", len(hits))
	}
	for i, h := range hits {
		if string(h.Body) != legacy || !h.SigOK {
			t.Errorf("attempt %d sent %s (signature ok %v), want the stored body byte for byte", i+1, h.Body, h.SigOK)
		}
	}
}

// A row this release cannot read is not sent: it is retried (a later release, or a
// fix, may read it) and holds its order's later events back, like a refused delivery.
func TestOutboxUnreadableSnapshotIsRetriedNotSent(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t)
	ctx := context.Background()
	ord := e.mustOrder()
	e.exec(`UPDATE order_events SET payload = '{"snapshot_version":4,"type":"order_create"}'`)
	rcv := newOutboxReceiver(t, func(string, int) int { return http.StatusOK })
	if n, err := outboxWorkerIn(e.outbox, rcv.URL, "2025-09-29").DeliverDue(ctx); n != 1 || err != nil {
		t.Fatalf("DeliverDue = %d, %v", n, err)
	}
	if len(rcv.all()) != 0 {
		t.Errorf("an unreadable event was sent: %s", rcv.all()[0].Body)
	}
	var status, lastError string
	var attempts int
	if err := e.pool.QueryRow(ctx, `SELECT status, attempts, last_error FROM order_events WHERE order_id = $1`, ord.ID).
		Scan(&status, &attempts, &lastError); err != nil {
		t.Fatal(err)
	}
	if status != "pending" || attempts != 1 || !strings.Contains(lastError, "snapshot version 4") {
		t.Errorf("row: %s, %d attempts, %q", status, attempts, lastError)
	}
}

// Migration 00006 down (after the later ones) turns pending snapshots back into the 2025-09-29 bodies the
// previous release sends as they are; up again keeps them as legacy rows.
func TestOutboxSnapshotMigrationDown(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t)
	ctx := context.Background()
	ord := e.refundedOrder()
	if _, err := e.orders.Refund(ctx, ord.ID, checkout.RefundOriginalPayment, 200); err != nil {
		t.Fatal(err)
	}
	before := e.events(ord.ID)
	m := e.migrator()
	// Down through every later migration to 00006 itself.
	for v := m.LatestVersion(); v >= 6; v-- {
		if err := m.Down(ctx); err != nil {
			t.Fatalf("down from %d: %v", v, err)
		}
	}
	var payloads []string
	rows, err := e.pool.Query(ctx, `SELECT payload::text FROM order_events WHERE order_id = $1 ORDER BY id`, ord.ID)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			t.Fatal(err)
		}
		payloads = append(payloads, p)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(payloads) != len(before) {
		t.Fatalf("rows after down = %d, want %d", len(payloads), len(before))
	}
	for i, p := range payloads {
		var got, want any
		if err := json.Unmarshal([]byte(p), &got); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(before[i].Payload, &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("row %d after down = %s, want %s", i, p, before[i].Payload)
		}
		outboxDecode(t, []byte(p))
	}
	if _, err := m.Up(ctx); err != nil {
		t.Fatal(err)
	}
	for _, ev := range e.events(ord.ID) {
		if ev.Format != "acp-2025-09-29" {
			t.Errorf("after up again: event %d is %s", ev.ID, ev.Format)
		}
	}
}

// outbox0417 is the part of a 2026-04-17 body these tests read.
type outbox0417 struct {
	Type string
	Data struct {
		ID, Status string
		LineItems  []struct {
			ID, Title, Status string
			ProductID         string `json:"product_id"`
			Quantity          struct{ Ordered, Current, Fulfilled int }
			UnitPrice         int64 `json:"unit_price"`
		} `json:"line_items"`
		Adjustments []struct {
			ID, Type string
			Amount   int64
		}
		Totals []struct {
			Type   string
			Amount int64
		}
	}
}

// End to end in 2026-04-17: the order's events, written by CompleteSession, SetStatus
// and Refund, go out through the outbox as the full Order, signed, valid against the
// 2026-04-17 WebhookEvent, the updates with the order's lines; each row encodes to the
// same bytes every time.
func TestOutbox0417SendsTheFullOrder(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t)
	ctx := context.Background()
	sch := testkit.Schemas(t, webhook.Version0417)
	ord := e.mustOrder("item_123", 2, "item_456", 1)
	if _, err := e.orders.SetStatus(ctx, ord.ID, checkout.OrderConfirmed); err != nil {
		t.Fatal(err)
	}
	if _, err := e.orders.Refund(ctx, ord.ID, checkout.RefundOriginalPayment, 300); err != nil {
		t.Fatal(err)
	}
	if _, err := e.orders.SetStatus(ctx, ord.ID, checkout.OrderShipped); err != nil {
		t.Fatal(err)
	}
	evs := e.events(ord.ID)
	if len(evs) != 4 {
		t.Fatalf("events = %d, want create + 3 updates", len(evs))
	}
	var want [][]byte
	for _, r := range evs {
		ev := postgres.OutboxEvent(r.ID, r.OrderID, r.Type, r.Format, r.Stored, r.Attempts, r.CreatedAt)
		first, err := webhook.Body(webhook.Version0417, ev)
		if err != nil {
			t.Fatal(err)
		}
		second, err := webhook.Body(webhook.Version0417, postgres.OutboxEvent(r.ID, r.OrderID, r.Type, r.Format, r.Stored, r.Attempts, r.CreatedAt))
		if err != nil || !bytes.Equal(first, second) {
			t.Errorf("event %d encodes to %s, then %s", r.ID, first, second)
		}
		want = append(want, first)
	}

	rcv := newOutboxReceiver(t, func(string, int) int { return http.StatusOK })
	if n, err := outboxWorkerIn(e.outbox, rcv.URL, webhook.Version0417).DeliverDue(ctx); n != 4 || err != nil {
		t.Fatalf("DeliverDue = %d, %v", n, err)
	}
	hits := rcv.successes()
	if len(hits) != 4 {
		t.Fatalf("delivered %d of 4", len(hits))
	}
	steps := []struct {
		typ, status, lineStatus string
		fulfilled               bool
		refunded                int64
	}{
		{"order_create", "created", "processing", false, 0},
		{"order_update", "confirmed", "processing", false, 0},
		{"order_update", "confirmed", "processing", false, 300},
		{"order_update", "shipped", "fulfilled", true, 300},
	}
	for i, w := range steps {
		h := hits[i]
		if !h.SigOK {
			t.Errorf("body %d: bad signature", i)
		}
		if !bytes.Equal(h.Body, want[i]) {
			t.Errorf("body %d = %s, want %s", i, h.Body, want[i])
		}
		sch.WebhookEvent(h.Body)
		var b outbox0417
		if err := json.Unmarshal(h.Body, &b); err != nil {
			t.Fatal(err)
		}
		if b.Type != w.typ || b.Data.ID != ord.ID || b.Data.Status != w.status {
			t.Errorf("body %d = %s, want %+v", i, h.Body, w)
		}
		// The totals are the order's breakdown at completion, the total charged, and
		// what was refunded (never netted from the total).
		total := map[string]int64{}
		for _, x := range b.Data.Totals {
			total[x.Type] = x.Amount
		}
		if total["total"] != ord.Amount || total["subtotal"]+total["fulfillment"]+total["tax"] != ord.Amount {
			t.Errorf("body %d: totals %s", i, h.Body)
		}
		if w.refunded == 0 {
			if _, ok := total["amount_refunded"]; len(b.Data.Adjustments) != 0 || ok {
				t.Errorf("body %d: adjustments/totals %s", i, h.Body)
			}
		} else if a := b.Data.Adjustments; len(a) != 1 || a[0].Type != "refund" || a[0].Amount != w.refunded ||
			total["amount_refunded"] != w.refunded {
			t.Errorf("body %d: adjustments/totals %s, want a refund of %d", i, h.Body, w.refunded)
		}
		lines := b.Data.LineItems
		if len(lines) != 2 {
			t.Fatalf("body %d: line_items %s", i, h.Body)
		}
		for j, l := range []struct {
			item, title string
			qty         int
			unit        int64
		}{{"item_123", "Tee", 2, 1500}, {"item_456", "Hoodie", 1, 3000}} {
			got := lines[j]
			fulfilled := 0
			if w.fulfilled {
				fulfilled = l.qty
			}
			if !strings.HasPrefix(got.ID, "li_") || got.ProductID != l.item || got.Title != l.title || got.UnitPrice != l.unit ||
				got.Quantity.Ordered != l.qty || got.Quantity.Current != l.qty || got.Quantity.Fulfilled != fulfilled || got.Status != w.lineStatus {
				t.Errorf("body %d line %d = %+v, want %+v", i, j, got, l)
			}
		}
	}
}

// A row written with snapshot_version 1 (before lines were kept) still goes out in
// 2026-04-17: the full Order but for its lines, and valid.
func TestOutbox0417SendsVersion1Rows(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t)
	ctx := context.Background()
	ord := e.mustOrder()
	if _, err := e.orders.Refund(ctx, ord.ID, checkout.RefundStoreCredit, 100); err != nil {
		t.Fatal(err)
	}
	// As the release before lines wrote it: version 1, no "lines" key.
	e.exec(`UPDATE order_events SET payload = jsonb_set(payload::jsonb #- '{order,lines}' #- '{order,fulfillments}' #- '{order,cancellations}' #- '{order,amounts}', '{snapshot_version}', '1')::json`)
	for _, r := range e.events(ord.ID) {
		var snap struct {
			SnapshotVersion int `json:"snapshot_version"`
			Order           map[string]any
		}
		if err := json.Unmarshal(r.Stored, &snap); err != nil || snap.SnapshotVersion != 1 || snap.Order["lines"] != nil {
			t.Fatalf("row %d is not a version 1 snapshot (%v): %s", r.ID, err, r.Stored)
		}
	}
	rcv := newOutboxReceiver(t, func(string, int) int { return http.StatusOK })
	if n, err := outboxWorkerIn(e.outbox, rcv.URL, webhook.Version0417).DeliverDue(ctx); n != 2 || err != nil {
		t.Fatalf("DeliverDue = %d, %v", n, err)
	}
	hits := rcv.successes()
	if len(hits) != 2 {
		t.Fatalf("delivered %d of 2", len(hits))
	}
	sch := testkit.Schemas(t, webhook.Version0417)
	for i, h := range hits {
		sch.WebhookEvent(h.Body)
		var b outbox0417
		if err := json.Unmarshal(h.Body, &b); err != nil {
			t.Fatal(err)
		}
		if !h.SigOK || b.Data.ID != ord.ID || b.Data.LineItems != nil || bytes.Contains(h.Body, []byte("line_items")) {
			t.Errorf("body %d = %s (signature ok %v), want the order without line_items", i, h.Body, h.SigOK)
		}
	}
	var b outbox0417
	if err := json.Unmarshal(hits[1].Body, &b); err != nil {
		t.Fatal(err)
	}
	if a := b.Data.Adjustments; len(a) != 1 || a[0].Type != "credit" || a[0].Amount != 100 {
		t.Errorf("refund event = %s", hits[1].Body)
	}
}
