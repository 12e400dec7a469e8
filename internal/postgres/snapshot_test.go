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
	if snap.SnapshotVersion != 2 || snap.Type != "order_update" || !snap.OccurredAt.Equal(evs[1].CreatedAt) ||
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
	e.exec(`UPDATE order_events SET payload = '{"snapshot_version":3,"type":"order_create"}'`)
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
	if status != "pending" || attempts != 1 || !strings.Contains(lastError, "snapshot version 3") {
		t.Errorf("row: %s, %d attempts, %q", status, attempts, lastError)
	}
}

// Migration 00006 down turns pending snapshots back into the 2025-09-29 bodies the
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
	m, err := postgres.NewMigrator(e.pool, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if v := m.LatestVersion(); v != 6 {
		t.Fatalf("latest migration %d; this test downs 00006", v)
	}
	if err := m.Down(ctx); err != nil {
		t.Fatal(err)
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
