package postgres

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
)

// A snapshot reads back as the order it was made of (times in UTC, to the microsecond
// PostgreSQL keeps), and making it again gives the same bytes.
func TestSnapshotRoundTrip(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 4, 17, 10, 30, 0, 123456789, time.FixedZone("CEST", 2*3600))
	lines := []checkout.OrderLine{
		{ID: "li_1", ItemID: "item_123", Title: "Tee", Quantity: 2, Current: 2, UnitAmount: 1000},
		{ID: "li_2", ItemID: "item_456", Title: "Hoodie", Quantity: 1, Current: 1, UnitAmount: 500},
	}
	for i, refunds := range [][]checkout.Refund{nil, {
		{ID: "rf_1", Type: checkout.RefundStoreCredit, Amount: 100, CreatedAt: at},
		{ID: "rf_2", Type: checkout.RefundOriginalPayment, Amount: 2399, CreatedAt: at.Add(time.Minute)},
	}} {
		ord := &checkout.Order{ID: "ord_1", CheckoutSessionID: "cs_1", PermalinkURL: "https://shop.example/orders/ord_1",
			Status: checkout.OrderShipped, Amount: 2500, Currency: "usd", Refunds: refunds, CreatedAt: at, UpdatedAt: at}
		if i == 1 {
			ord.Lines, ord.Notes = lines, "Leave at the back door"
		}
		raw, err := encodeSnapshot("order_update", ord, at)
		if err != nil {
			t.Fatal(err)
		}
		typ, got, occurred, err := decodeSnapshot(raw)
		if err != nil {
			t.Fatal(err)
		}
		utc := at.UTC().Truncate(time.Microsecond)
		if typ != "order_update" || !occurred.Equal(utc) || occurred.Location() != time.UTC {
			t.Errorf("type %s, occurred %v", typ, occurred)
		}
		want := *ord
		want.CreatedAt, want.UpdatedAt, want.Refunds = utc, utc, nil
		for _, r := range refunds {
			r.CreatedAt = r.CreatedAt.UTC().Truncate(time.Microsecond)
			want.Refunds = append(want.Refunds, r)
		}
		if !reflect.DeepEqual(*got, want) {
			t.Errorf("decoded %+v\nwant    %+v", *got, want)
		}
		again, err := encodeSnapshot(typ, got, occurred)
		if err != nil || !bytes.Equal(again, raw) {
			t.Errorf("re-encoded %s, want %s", again, raw)
		}
		// Version 4, with the lines always present (an order read without lines gives
		// an empty array, not a version 1 row) and their current quantities.
		wantLines := `"lines":[]`
		if ord.Lines != nil {
			wantLines = `"lines":[{"id":"li_1","item_id":"item_123","title":"Tee","quantity":2,"unit_amount":1000,"current":2},`
		}
		if !bytes.HasPrefix(raw, []byte(`{"snapshot_version":4,`)) || !bytes.Contains(raw, []byte(wantLines)) ||
			!bytes.Contains(raw, []byte(`"fulfillments":[],"cancellations":[]`)) ||
			bytes.Contains(raw, []byte(`"notes"`)) != (ord.Notes != "") {
			t.Errorf("snapshot %s, want version 4 with %s and notes %q", raw, wantLines, ord.Notes)
		}
	}
	for _, bad := range []string{
		`{"snapshot_version":5}`, `{"snapshot_version":1,"extra":true}`, `[]`,
		// Notes belong to version 4.
		`{"snapshot_version":3,"type":"order_update","occurred_at":"2026-04-17T08:30:00Z","order":{"id":"ord_1","checkout_session_id":"cs_1","permalink_url":"https://shop.example/o","status":"created","amount":1,"currency":"usd","created_at":"2026-04-17T08:30:00Z","updated_at":"2026-04-17T08:30:00Z","refunds":[],"lines":[],"fulfillments":[],"cancellations":[],"notes":"x"}}`,
		// Lines belong to version 2 only, and version 2 always has them.
		`{"snapshot_version":1,"type":"order_update","occurred_at":"2026-04-17T08:30:00Z","order":{"id":"ord_1","checkout_session_id":"cs_1","permalink_url":"https://shop.example/o","status":"created","amount":1,"currency":"usd","created_at":"2026-04-17T08:30:00Z","updated_at":"2026-04-17T08:30:00Z","refunds":[],"lines":[]}}`,
		`{"snapshot_version":2,"type":"order_update","occurred_at":"2026-04-17T08:30:00Z","order":{"id":"ord_1","checkout_session_id":"cs_1","permalink_url":"https://shop.example/o","status":"created","amount":1,"currency":"usd","created_at":"2026-04-17T08:30:00Z","updated_at":"2026-04-17T08:30:00Z","refunds":[]}}`,
		`{"snapshot_version":2,"type":"order_update","occurred_at":"2026-04-17T08:30:00Z","order":{"id":"ord_1","checkout_session_id":"cs_1","permalink_url":"https://shop.example/o","status":"created","amount":1,"currency":"usd","created_at":"2026-04-17T08:30:00Z","updated_at":"2026-04-17T08:30:00Z","refunds":[],"lines":[{"id":"li_1","sku":"x"}]}}`,
	} {
		if _, _, _, err := decodeSnapshot([]byte(bad)); err == nil {
			t.Errorf("decodeSnapshot(%s) succeeded", bad)
		}
	}
}

// A version 1 row (written by the release before lines were kept) still reads: the
// order without lines.
func TestSnapshotVersion1StillReads(t *testing.T) {
	t.Parallel()
	v1 := `{"snapshot_version":1,"type":"order_update","occurred_at":"2026-04-17T08:30:00.123456Z","order":{"id":"ord_1","checkout_session_id":"cs_1","permalink_url":"https://shop.example/orders/ord_1","status":"shipped","amount":2500,"currency":"usd","created_at":"2026-04-17T08:00:00Z","updated_at":"2026-04-17T08:30:00.123456Z","refunds":[{"id":"rf_1","type":"store_credit","amount":100,"created_at":"2026-04-17T08:30:00.123456Z"}]}}`
	typ, ord, at, err := decodeSnapshot([]byte(v1))
	if err != nil {
		t.Fatal(err)
	}
	upd := time.Date(2026, 4, 17, 8, 30, 0, 123456000, time.UTC)
	want := &checkout.Order{ID: "ord_1", CheckoutSessionID: "cs_1", PermalinkURL: "https://shop.example/orders/ord_1",
		Status: checkout.OrderShipped, Amount: 2500, Currency: "usd",
		Refunds:   []checkout.Refund{{ID: "rf_1", Type: checkout.RefundStoreCredit, Amount: 100, CreatedAt: upd}},
		CreatedAt: time.Date(2026, 4, 17, 8, 0, 0, 0, time.UTC), UpdatedAt: upd}
	if typ != "order_update" || !at.Equal(upd) || !reflect.DeepEqual(ord, want) {
		t.Errorf("decoded %s %v %+v\nwant %+v", typ, at, ord, want)
	}
}
