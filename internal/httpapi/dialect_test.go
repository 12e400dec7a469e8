package httpapi_test

import (
	"crypto/rand"
	"encoding/hex"
	"slices"
	"strings"
	"testing"
)

// The dialect of a test env: how a behaviour test that runs in every version
// (forEachVersion) builds its requests and reads its responses in e's version. Tests
// say what they ask for in version-neutral terms (fields) and read what they check
// through these readers; the differences between the versions live here, not in each
// test.

// v0417 is the API version whose shapes differ from 2025-09-29's in the dialect.
const v0417 = "2026-04-17"

func (e *testEnv) is0417() bool { return e.version == v0417 }

// requiresKey says whether e's version refuses a POST without Idempotency-Key.
func (e *testEnv) requiresKey() bool { return e.is0417() }

func namesHeader(headers []string, name string) bool {
	for i := 0; i < len(headers); i += 2 {
		if strings.EqualFold(headers[i], name) {
			return true
		}
	}
	return false
}

// newKey is a fresh Idempotency-Key.
func newKey() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "key_" + hex.EncodeToString(b)
}

// fields is what a create or update asks for, in no version's shape: items as items()
// builds them ({id, quantity}), an address, a buyer and a fulfillment option to select
// ("": none).
type fields struct {
	items   []map[string]any
	address map[string]any
	buyer   map[string]any
	option  string
}

// createBody is f as a create request of e's version: 2026-04-17 also requires the
// currency and the agent's capabilities (none declared here).
func (e *testEnv) createBody(f fields) map[string]any {
	b := e.updateBody(f)
	if e.is0417() {
		b["currency"] = "usd"
		b["capabilities"] = map[string]any{}
	}
	return b
}

// updateBody is f as an update request of e's version. In 2026-04-17 the items are
// line_items with our quantity extension (checklist I-09), the address is inside
// fulfillment_details, and the option is selected for the items of f.
func (e *testEnv) updateBody(f fields) map[string]any {
	b := map[string]any{}
	if f.buyer != nil {
		b["buyer"] = f.buyer
	}
	if !e.is0417() {
		if f.items != nil {
			b["items"] = f.items
		}
		if f.address != nil {
			b["fulfillment_address"] = f.address
		}
		if f.option != "" {
			b["fulfillment_option_id"] = f.option
		}
		return b
	}
	if f.items != nil {
		b["line_items"] = f.items
	}
	if f.address != nil {
		b["fulfillment_details"] = map[string]any{"address": f.address}
	}
	if f.option != "" {
		typ := "shipping"
		if f.option == "digital" {
			typ = "digital"
		}
		ids := []string{}
		for _, it := range f.items {
			ids = append(ids, it["id"].(string))
		}
		b["selected_fulfillment_options"] = []any{map[string]any{"type": typ, "option_id": f.option, "item_ids": ids}}
	}
	return b
}

// rawCreate is a create request as raw JSON, for tests that control its bytes: items is
// the JSON of the item list, extra more members (",..." or "").
func (e *testEnv) rawCreate(items, extra string) string {
	if e.is0417() {
		return `{"line_items":` + items + `,"currency":"usd","capabilities":{}` + extra + `}`
	}
	return `{"items":` + items + extra + `}`
}

// rawAddress is an update sending address (raw JSON) as e's version's fulfillment address.
func (e *testEnv) rawAddress(address string) string {
	if e.is0417() {
		return `{"fulfillment_details":{"address":` + address + `}}`
	}
	return `{"fulfillment_address":` + address + `}`
}

// rawOption is an update selecting option (for no items in particular).
func (e *testEnv) rawOption(option string) string {
	if e.is0417() {
		return `{"selected_fulfillment_options":[{"type":"shipping","option_id":"` + option + `","item_ids":[]}]}`
	}
	return `{"fulfillment_option_id":"` + option + `"}`
}

// param is the JSONPath p (as 2025-09-29 spells it) in e's version.
func (e *testEnv) param(p string) string {
	if !e.is0417() {
		return p
	}
	for _, r := range [][2]string{
		{"$.items", "$.line_items"},
		{"$.fulfillment_address", "$.fulfillment_details.address"},
		{"$.fulfillment_option_id", "$.selected_fulfillment_options"},
	} {
		if rest, ok := strings.CutPrefix(p, r[0]); ok {
			return r[1] + rest
		}
	}
	return p
}

// selectedOption is the id of the fulfillment option s has selected (nil: none).
func (e *testEnv) selectedOption(s map[string]any) any {
	if !e.is0417() {
		return s["fulfillment_option_id"]
	}
	sel, _ := s["selected_fulfillment_options"].([]any)
	if len(sel) != 1 {
		return nil
	}
	return sel[0].(map[string]any)["option_id"]
}

// address is the fulfillment address s shows (nil: none).
func (e *testEnv) address(s map[string]any) any {
	if !e.is0417() {
		return s["fulfillment_address"]
	}
	fd, _ := s["fulfillment_details"].(map[string]any)
	return fd["address"]
}

// totalsOf reads a list of Totals by type.
func totalsOf(list any) map[string]float64 {
	out := map[string]float64{}
	for _, raw := range list.([]any) {
		t := raw.(map[string]any)
		out[t["type"].(string)] = t["amount"].(float64)
	}
	return out
}

// lineAmounts are a line item's base amount, discount, subtotal, tax and total.
func (e *testEnv) lineAmounts(l map[string]any) [5]float64 {
	if !e.is0417() {
		return [5]float64{l["base_amount"].(float64), l["discount"].(float64), l["subtotal"].(float64), l["tax"].(float64), l["total"].(float64)}
	}
	t := totalsOf(l["totals"])
	// 2025-09-29's one line discount is 2026-04-17's items_discount and discount.
	return [5]float64{t["items_base_amount"], t["items_discount"] + t["discount"], t["subtotal"] - t["discount"], t["tax"], t["total"]}
}

// optionTotal is what a fulfillment option costs in all.
func (e *testEnv) optionTotal(o map[string]any) float64 {
	if !e.is0417() {
		return o["total"].(float64)
	}
	return totalsOf(o["totals"])["total"]
}

// checkPayment checks how s says it can be paid: 2025-09-29's payment provider, or
// 2026-04-17's payment handlers (vault cards and the PSP's test tokens).
func (e *testEnv) checkPayment(t *testing.T, s map[string]any) {
	t.Helper()
	if !e.is0417() {
		pp := s["payment_provider"].(map[string]any)
		if pp["provider"] != "stripe" || len(pp["supported_payment_methods"].([]any)) != 1 || pp["supported_payment_methods"].([]any)[0] != "card" {
			t.Errorf("payment_provider = %v", pp)
		}
		return
	}
	var ids []string
	for _, h := range s["capabilities"].(map[string]any)["payment"].(map[string]any)["handlers"].([]any) {
		ids = append(ids, h.(map[string]any)["id"].(string))
	}
	if want := []string{"card_tokenized", "card_psp_test"}; !slices.Equal(ids, want) {
		t.Errorf("payment handlers = %v, want %v", ids, want)
	}
}
