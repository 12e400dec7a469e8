package postgres

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/agentic-commerce/agentic-commerce-server/db"
)

// The memo must answer what json.Unmarshal answers for the same text, hand every caller
// its own copy (a caller that changes its value, through a pointer field too, changes
// nobody else's), decode a changed text afresh, remember no failure, and stay bounded.
func TestDecodeMemoIsUnmarshalWithoutItsCost(t *testing.T) {
	memo := newDecodeMemo(variantsDecoded.clone)
	text := []byte(`[{"id":"item_flash","product_id":"p","title":"Flash","price_amount":1200,"currency":"usd",` +
		`"available":true,"availability_status":"in_stock","fulfillment_type":"shipping","stock_quantity":7,` +
		`"updated_at":"2026-12-03T07:04:01.790973+00:00"}]`)
	var want []db.Variant
	if err := json.Unmarshal(text, &want); err != nil {
		t.Fatal(err)
	}

	var first, second []db.Variant
	if err := memo.decode(text, &first); err != nil {
		t.Fatal(err)
	}
	if err := memo.decode(append([]byte(nil), text...), &second); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(first, want) || !reflect.DeepEqual(second, want) {
		t.Fatalf("decoded %+v and %+v, want %+v", first, second, want)
	}
	*first[0].StockQuantity, first[0].Title = 0, "changed"
	var third []db.Variant
	if err := memo.decode(text, &third); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(second, want) || !reflect.DeepEqual(third, want) {
		t.Errorf("a caller's change reached the others: %+v, %+v", second, third)
	}

	changed := []byte(strings.Replace(string(text), `"stock_quantity":7`, `"stock_quantity":6`, 1))
	var fresh []db.Variant
	if err := memo.decode(changed, &fresh); err != nil {
		t.Fatal(err)
	}
	if fresh[0].StockQuantity == nil || *fresh[0].StockQuantity != 6 {
		t.Errorf("a changed text decoded to stock %v, want 6", fresh[0].StockQuantity)
	}

	bad := []byte(`[{"id":`)
	for range 2 {
		var v []db.Variant
		if err := memo.decode(bad, &v); err == nil {
			t.Error("an invalid text decoded without an error")
		}
	}
	if _, ok := memo.decoded[string(bad)]; ok {
		t.Error("an invalid text was remembered")
	}

	long := []byte(`[{"id":"` + strings.Repeat("x", decodeMemoMaxText) + `"}]`)
	var v []db.Variant
	if err := memo.decode(long, &v); err != nil || len(v) != 1 {
		t.Fatalf("long text: %v, %d variants", err, len(v))
	}
	if _, ok := memo.decoded[string(long)]; ok {
		t.Error("a text over decodeMemoMaxText was remembered")
	}
	for i := range 3 * decodeMemoEntries {
		if err := memo.decode(fmt.Appendf(nil, `[{"id":"item_%d"}]`, i), &v); err != nil {
			t.Fatal(err)
		}
		if n := len(memo.decoded); n > decodeMemoEntries {
			t.Fatalf("the memo holds %d texts, more than %d", n, decodeMemoEntries)
		}
	}
}

// The options' copy must not share the pointer fields either.
func TestOptionsMemoCopiesPointers(t *testing.T) {
	memo := newDecodeMemo(optionsDecoded.clone)
	text := []byte(`[{"id":"standard","type":"shipping","title":"Standard","subtitle":"","carrier":"USPS","amount":500,` +
		`"currency":"usd","min_delivery_days":3,"max_delivery_days":5,"taxable":true,"active":true,"sort_order":1}]`)
	var a, b []db.FulfillmentOption
	if err := memo.decode(text, &a); err != nil {
		t.Fatal(err)
	}
	*a[0].MinDeliveryDays, *a[0].MaxDeliveryDays = 0, 0
	if err := memo.decode(text, &b); err != nil {
		t.Fatal(err)
	}
	if *b[0].MinDeliveryDays != 3 || *b[0].MaxDeliveryDays != 5 {
		t.Errorf("delivery days %d–%d after another caller's change, want 3–5", *b[0].MinDeliveryDays, *b[0].MaxDeliveryDays)
	}
}

// BenchmarkCatalogDecode compares the memo with json.Unmarshal on the demo catalog's
// fulfillment options, as every view and catalog read decodes them.
func BenchmarkCatalogDecode(b *testing.B) {
	text := []byte(`[{"id":"standard","type":"shipping","title":"Standard Shipping","subtitle":"Arrives in 5-7 business days",` +
		`"carrier":"USPS","amount":500,"currency":"usd","min_delivery_days":5,"max_delivery_days":7,"taxable":true,"active":true,"sort_order":1},` +
		`{"id":"express","type":"shipping","title":"Express Shipping","subtitle":"Arrives in 2 business days","carrier":"UPS",` +
		`"amount":1500,"currency":"usd","min_delivery_days":2,"max_delivery_days":2,"taxable":true,"active":true,"sort_order":2},` +
		`{"id":"digital","type":"digital","title":"Instant download","subtitle":"","carrier":"","amount":0,"currency":"usd",` +
		`"min_delivery_days":null,"max_delivery_days":null,"taxable":false,"active":true,"sort_order":3}]`)
	b.Run("unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var v []db.FulfillmentOption
			if err := json.Unmarshal(text, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("memo", func(b *testing.B) {
		memo := newDecodeMemo(optionsDecoded.clone)
		b.ReportAllocs()
		for b.Loop() {
			var v []db.FulfillmentOption
			if err := memo.decode(text, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
}
