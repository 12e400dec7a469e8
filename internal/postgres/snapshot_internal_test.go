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
	for _, refunds := range [][]checkout.Refund{nil, {
		{ID: "rf_1", Type: checkout.RefundStoreCredit, Amount: 100, CreatedAt: at},
		{ID: "rf_2", Type: checkout.RefundOriginalPayment, Amount: 2399, CreatedAt: at.Add(time.Minute)},
	}} {
		ord := &checkout.Order{ID: "ord_1", CheckoutSessionID: "cs_1", PermalinkURL: "https://shop.example/orders/ord_1",
			Status: checkout.OrderShipped, Amount: 2500, Currency: "usd", Refunds: refunds, CreatedAt: at, UpdatedAt: at}
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
	}
	for _, bad := range []string{`{"snapshot_version":2}`, `{"snapshot_version":1,"extra":true}`, `[]`} {
		if _, _, _, err := decodeSnapshot([]byte(bad)); err == nil {
			t.Errorf("decodeSnapshot(%s) succeeded", bad)
		}
	}
}
