package webhook_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/testkit"
	"github.com/agentic-commerce/agentic-commerce-server/internal/webhook"
)

// webhookSnapshotEvent is an event as the outbox keeps it now: a snapshot of the order,
// encoded at send time.
func webhookSnapshotEvent(id int64, created time.Time) webhook.Event {
	o := webhookTestOrder(checkout.Refund{ID: "rf_1", Type: checkout.RefundStoreCredit, Amount: 100, CreatedAt: created})
	return webhook.Event{ID: id, OrderID: o.ID, Type: webhook.OrderUpdate, Order: o, OccurredAt: created, CreatedAt: created}
}

func TestWebhookVersions(t *testing.T) {
	t.Parallel()
	if webhook.DefaultVersion != "2025-09-29" {
		t.Errorf("DefaultVersion = %s, want 2025-09-29 (what deployments sent before WEBHOOK_API_VERSION)", webhook.DefaultVersion)
	}
	if vs := webhook.Versions(); !slices.Equal(vs, []string{"2025-09-29", "2026-04-17"}) {
		t.Errorf("Versions = %v", vs)
	}
	if _, err := webhook.EncoderFor("2099-01-01"); err == nil || !strings.Contains(err.Error(), "2025-09-29") {
		t.Errorf("EncoderFor(unknown) error = %v, want one naming the supported versions", err)
	}
}

// A snapshot is encoded at send time in the worker's version: for 2025-09-29, the
// official WebhookEvent; the same bytes on every attempt.
func TestWebhookWorkerEncodesSnapshotsAtSendTime(t *testing.T) {
	t.Parallel()
	sch := webhookEventSchema(t)
	for _, version := range []string{"", webhook.Version0929} {
		rcv := testkit.NewReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
			if n == 1 {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
		})
		ob := &webhookFakeOutbox{}
		ev := webhookSnapshotEvent(9, time.Now())
		ob.add(ev)
		w := webhook.NewWorker(webhook.Config{URL: rcv.URL, Secret: webhookTestSecret, Timeout: 5 * time.Second,
			Horizon: time.Hour, APIVersion: version}, ob, webhookLogger())
		for range 2 {
			if n, err := w.DeliverDue(context.Background()); n != 1 || err != nil {
				t.Fatalf("version %q: DeliverDue = %d, %v", version, n, err)
			}
			ob.dueAgain()
		}
		if got := ob.get(9); got.status != "delivered" {
			t.Fatalf("version %q: event %+v", version, got)
		}
		want, err := webhook.Payload(webhook.OrderUpdate, ev.Order)
		if err != nil {
			t.Fatal(err)
		}
		hits := rcv.Hits()
		if len(hits) != 2 {
			t.Fatalf("version %q: %d requests, want 2", version, len(hits))
		}
		for i, h := range hits {
			if !bytes.Equal(h.Body, want) {
				t.Errorf("version %q attempt %d: body %s, want %s", version, i+1, h.Body, want)
			}
			if _, ok := testkit.Verify(webhookTestSecret, h.Header.Get("Merchant-Signature"), h.Body); !ok {
				t.Errorf("attempt %d: signature does not verify", i+1)
			}
			inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(h.Body))
			if err != nil {
				t.Fatal(err)
			}
			if err := sch.Validate(inst); err != nil {
				t.Errorf("body does not match WebhookEvent: %v\n%s", err, h.Body)
			}
		}
		webhookCheckShape(t, hits[0].Body, "order_update", "shipped", [][2]any{{"store_credit", int64(100)}})
		if body, err := webhook.Body(webhook.Version0929, ev); err != nil || !bytes.Equal(body, want) {
			t.Errorf("Body = %s, %v; want what the worker sent", body, err)
		}
	}
}

// What cannot be encoded is not sent: the attempt fails and is retried like a refused
// delivery (dead at the horizon). A body stored already encoded still goes out as it is.
func TestWebhookWorkerUnencodableEventsAreRetried(t *testing.T) {
	t.Parallel()
	rcv := testkit.NewReceiver(t, func(int, http.ResponseWriter, *http.Request) {})
	ob := &webhookFakeOutbox{}
	unreadable := webhookSnapshotEvent(1, time.Now())
	unreadable.Order, unreadable.Unreadable = nil, errors.New("order event snapshot version 3 is not known to this release")
	ob.add(unreadable)
	ob.add(webhookSnapshotEvent(2, time.Now()))
	legacy := webhookEvent(3, time.Now())
	legacy.Payload = []byte(`{"type" : "order_create", "data": {"type":"order","checkout_session_id":"cs_123","permalink_url":"https://shop.example/orders/ord_1","status":"created","refunds":[]}}`)
	ob.add(legacy)
	// A version with no encoder (the configuration refuses it; the worker still does
	// not send a wrong body).
	w := webhook.NewWorker(webhook.Config{URL: rcv.URL, Secret: webhookTestSecret, Timeout: 5 * time.Second,
		Horizon: time.Hour, APIVersion: "2099-01-01"}, ob, webhookLogger())
	if n, err := w.DeliverDue(context.Background()); n != 3 || err != nil {
		t.Fatalf("DeliverDue = %d, %v", n, err)
	}
	for id, want := range map[int64]string{1: "snapshot version 3", 2: `"2099-01-01"`} {
		got := ob.get(id)
		if got.status != "pending" || len(got.results) != 1 || got.results[0].NextRetry.IsZero() || !strings.Contains(got.results[0].Error, want) {
			t.Errorf("event %d: %+v, want a retry mentioning %s", id, got, want)
		}
	}
	hits := rcv.Hits()
	if len(hits) != 1 || !bytes.Equal(hits[0].Body, legacy.Payload) {
		t.Fatalf("requests = %d, want only the stored body, byte for byte", len(hits))
	}
	if got := ob.get(3); got.status != "delivered" {
		t.Errorf("legacy event %+v", got)
	}
}
