package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/catalog"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/httpapi"
	"github.com/agentic-commerce/agentic-commerce-server/internal/postgres"
)

// The discount extension over HTTP: the official 2026-04-17 examples reproduced, both
// versions' views of one discounted session, and the admin API.

// discountEnv is an env of version whose catalog, only fulfillment option (costing
// shipping) and discounts are the given ones; sessions ship to Oregon (no tax).
func discountEnv(t *testing.T, version string, shipping int64, variants []catalog.Variant, discounts ...checkout.Discount) *testEnv {
	t.Helper()
	e := mustEnvVersion(t, version, time.Minute, withAdmin)
	ctx := context.Background()
	if len(variants) > 0 {
		if _, err := postgres.ImportCatalog(ctx, e.pool, []catalog.Product{{ID: "prod_example", Title: "Example", Variants: variants}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.pool.Exec(ctx, `UPDATE fulfillment_options SET active = false`); err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(ctx, `INSERT INTO fulfillment_options (id, type, title, amount, currency) VALUES ('shipping_standard', 'shipping', 'Standard Shipping', $1, 'usd')`, shipping); err != nil {
		t.Fatal(err)
	}
	if _, err := postgres.NewDiscounts(e.pool).Import(ctx, discounts); err != nil {
		t.Fatal(err)
	}
	return e
}

const adminKey = "admin-key-0123456789abcdef"

func withAdmin(c *httpapi.Config) { c.AdminAPIKeys = []string{adminKey} }

func variant(id, title string, price int64) catalog.Variant {
	return catalog.Variant{ID: id, Title: title, PriceAmount: price, Currency: "usd", Available: true, AvailabilityStatus: "in_stock", Fulfillment: checkout.FulfillmentShipping}
}

var oregon = map[string]any{"name": "John Doe", "line_one": "1 Main St", "city": "Portland", "state": "OR", "country": "US", "postal_code": "97201"}

// example is one official discount-extension example: its request and response.
type example struct {
	Request  map[string]any `json:"request"`
	Response map[string]any `json:"response"`
}

func loadExample(t *testing.T, name string) example {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "acpspec", "spec", "2026-04-17", "discount-extension", name))
	if err != nil {
		t.Fatal(err)
	}
	var ex example
	if err := json.Unmarshal(raw, &ex); err != nil {
		t.Fatal(err)
	}
	return ex
}

// createExample sends the example's request as a 2026-04-17 create, adding what the
// examples leave out: the discount extension in capabilities (the examples' responses
// show it active) and an address in a state without sales tax.
func createExample(e *testEnv, ex example) map[string]any {
	e.t.Helper()
	body := map[string]any{}
	for k, v := range ex.Request {
		body[k] = v
	}
	body["capabilities"] = map[string]any{"extensions": []any{"discount"}}
	body["fulfillment_details"] = map[string]any{"address": oregon}
	return e.mustCreate(body)
}

// totalsList reads a list of totals as type -> amounts (a type may repeat).
func totalsList(list any) map[string][]float64 {
	out := map[string][]float64{}
	for _, raw := range list.([]any) {
		t := raw.(map[string]any)
		out[t["type"].(string)] = append(out[t["type"].(string)], t["amount"].(float64))
	}
	return out
}

func sumOf(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x
	}
	return s
}

// sameAmounts compares the amounts of applied discounts, allocations included, and the
// codes of rejected ones, of got against the example's want.
func sameAmounts(t *testing.T, got, want map[string]any) {
	t.Helper()
	ga, _ := got["applied"].([]any)
	wa, _ := want["applied"].([]any)
	if len(ga) != len(wa) {
		t.Fatalf("applied = %v, want %v", ga, wa)
	}
	for i := range wa {
		g, w := ga[i].(map[string]any), wa[i].(map[string]any)
		for _, k := range []string{"code", "amount", "automatic", "method", "priority"} {
			if w[k] != nil && g[k] != w[k] {
				t.Errorf("applied[%d].%s = %v, want %v", i, k, g[k], w[k])
			}
		}
		if w["allocations"] != nil {
			gj, _ := json.Marshal(g["allocations"])
			wj, _ := json.Marshal(w["allocations"])
			if string(gj) != string(wj) {
				t.Errorf("applied[%d].allocations = %s, want %s", i, gj, wj)
			}
		}
		var sum float64
		for _, a := range asList(g["allocations"]) {
			sum += a.(map[string]any)["amount"].(float64)
		}
		if g["allocations"] != nil && sum != g["amount"] {
			t.Errorf("applied[%d]: allocations sum to %v, amount %v", i, sum, g["amount"])
		}
	}
	gr, _ := json.Marshal(asList(got["rejected"]))
	var wr []map[string]any
	for _, r := range asList(want["rejected"]) {
		wr = append(wr, map[string]any{"code": r.(map[string]any)["code"], "reason": r.(map[string]any)["reason"]})
	}
	var grl []map[string]any
	_ = json.Unmarshal(gr, &grl)
	for i := range grl {
		delete(grl[i], "message")
	}
	gj, _ := json.Marshal(grl)
	wj, _ := json.Marshal(wr)
	if string(gj) != string(wj) {
		t.Errorf("rejected = %s, want %s", gj, wj)
	}
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// lineItemsDiscountInvariant checks DISC-RFC §8.2: totals[items_discount] is the sum
// of the lines' items_discount.
func lineItemsDiscountInvariant(t *testing.T, s map[string]any) {
	t.Helper()
	var lines float64
	for _, l := range s["line_items"].([]any) {
		lines += sumOf(totalsList(l.(map[string]any)["totals"])["items_discount"])
	}
	if got := sumOf(totalsList(s["totals"])["items_discount"]); got != lines {
		t.Errorf("totals items_discount %v, lines %v", got, lines)
	}
}

// The official examples of 2026-04-17/discount-extension: the catalog, shipping and
// discounts each describes give the amounts, allocations and totals it shows.
func TestDiscountExamples0417(t *testing.T) {
	t.Parallel()
	save10 := checkout.Discount{ID: "coupon_save10", Code: "SAVE10", Title: "$10 Off Your Order", AmountOff: 1000, Currency: "usd", Stackable: true}
	summer := checkout.Discount{ID: "coupon_summer", Code: "SUMMER20", Title: "Summer Sale 20% Off", PercentBps: 2000, Scope: checkout.ScopeItems, Stackable: true, Priority: 1}
	expiredAt := time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		file      string
		shipping  int64
		variants  []catalog.Variant
		discounts []checkout.Discount
		// totals are the session totals to compare (all but tax, which no example
		// derives from a rate: checked as total - tax, see below).
		totals []string
	}{
		{"order-level-discount.json", 599, []catalog.Variant{variant("item_123", "Wireless Headphones", 5000)},
			[]checkout.Discount{save10}, []string{"subtotal", "discount", "fulfillment", "total"}},
		{"percentage-discount-with-allocations.json", 0,
			[]catalog.Variant{variant("item_shirt", "Cotton T-Shirt", 2500), variant("item_pants", "Slim Fit Jeans", 6000)},
			[]checkout.Discount{summer}, []string{"items_base_amount", "items_discount", "subtotal", "fulfillment", "total"}},
		{"rejected-discount-code.json", 499, []catalog.Variant{variant("item_123", "Wireless Charger", 3999)},
			[]checkout.Discount{save10, {ID: "coupon_expired50", Code: "EXPIRED50", Title: "50% off", PercentBps: 5000, EndsAt: &expiredAt, Stackable: true}},
			[]string{"subtotal", "discount", "fulfillment", "total"}},
		{"stacked-discounts.json", 1999,
			[]catalog.Variant{variant("item_laptop", "MacBook Pro 14\"", 199900), variant("item_mouse", "Magic Mouse", 9900)},
			[]checkout.Discount{summer, {ID: "coupon_loyalty5", Code: "LOYALTY5", Title: "$5 Loyalty Reward", AmountOff: 500, Currency: "usd", Stackable: true, Priority: 2}},
			[]string{"items_base_amount", "fulfillment"}},
		{"automatic-discount.json", 599, []catalog.Variant{variant("item_123", "Organic Coffee Beans (1lb)", 1899)},
			[]checkout.Discount{{ID: "coupon_freeship50", Title: "Free shipping on orders over $50", AmountOff: 599, Currency: "usd",
				Scope: checkout.ScopeFulfillment, MinSubtotal: 5000, Stackable: true}},
			[]string{"subtotal", "discount", "total"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			ex := loadExample(t, tc.file)
			e := discountEnv(t, v0417, tc.shipping, tc.variants, tc.discounts...)
			s := createExample(e, ex)
			if s["status"] != "ready_for_payment" {
				t.Errorf("status = %v; messages %v", s["status"], s["messages"])
			}
			want := ex.Response
			sameAmounts(t, s["discounts"].(map[string]any), want["discounts"].(map[string]any))
			if gc, wc := asList(s["discounts"].(map[string]any)["codes"]), asList(want["discounts"].(map[string]any)["codes"]); len(gc) != len(wc) {
				t.Errorf("codes = %v, want %v", gc, wc)
			}
			got, wantTotals := totalsList(s["totals"]), totalsList(want["totals"])
			for _, k := range tc.totals {
				if sumOf(got[k]) != sumOf(wantTotals[k]) {
					t.Errorf("totals[%s] = %v, want %v", k, got[k], wantTotals[k])
				}
			}
			// What the buyer pays before tax is the example's.
			if g, w := sumOf(got["total"])-sumOf(got["tax"]), sumOf(wantTotals["total"])-sumOf(wantTotals["tax"]); g != w {
				t.Errorf("total - tax = %v, want %v", g, w)
			}
			lineItemsDiscountInvariant(t, s)
			// Line items_discount as in the examples that show it on the lines
			// (stacked-discounts shows LOYALTY5 on the lines too, which its own totals
			// and "across" method contradict: only SUMMER20's part is compared).
			for i, wl := range asList(want["line_items"]) {
				wi := totalsList(wl.(map[string]any)["totals"])["items_discount"]
				gi := totalsList(s["line_items"].([]any)[i].(map[string]any)["totals"])["items_discount"]
				if tc.file == "stacked-discounts.json" {
					wi = []float64{[]float64{39980, 1980}[i]}
				}
				if len(wi) > 0 && sumOf(gi) != sumOf(wi) {
					t.Errorf("line %d items_discount = %v, want %v", i, gi, wi)
				}
			}
			var warnings []map[string]any
			for _, m := range asList(s["messages"]) {
				if m.(map[string]any)["type"] == "warning" {
					warnings = append(warnings, m.(map[string]any))
				}
			}
			var wantWarnings []any
			for _, m := range asList(want["messages"]) {
				if m.(map[string]any)["type"] == "warning" {
					wantWarnings = append(wantWarnings, m)
				}
			}
			if len(warnings) != len(wantWarnings) {
				t.Fatalf("warnings = %v, want %v", warnings, wantWarnings)
			}
			for i, w := range wantWarnings {
				for _, k := range []string{"code", "param", "resolution", "content_type"} {
					if warnings[i][k] != w.(map[string]any)[k] {
						t.Errorf("warning %s = %v, want %v", k, warnings[i][k], w.(map[string]any)[k])
					}
				}
			}
			ext := s["capabilities"].(map[string]any)["extensions"].([]any)
			if len(ext) != 1 || ext[0].(map[string]any)["name"] != "discount" {
				t.Errorf("extensions = %v", ext)
			}
		})
	}
}

// One discounted session as both versions show it: 2025-09-29 has no codes but the
// same money in its line discount and its totals.
func TestDiscountInBothVersions(t *testing.T) {
	t.Parallel()
	e := discountEnv(t, v0417, 500, nil,
		checkout.Discount{ID: "tee10", Code: "TEE10", Title: "10% off tees", PercentBps: 1000, Scope: checkout.ScopeItems, ItemIDs: []string{"item_123"}, Stackable: true, Priority: 1},
		checkout.Discount{ID: "auto3", Title: "$3 off everything", AmountOff: 300, Currency: "usd", Stackable: true})
	s := e.mustCreate(map[string]any{
		"line_items": items("item_123", 2, "item_456", 1), "currency": "usd",
		"capabilities":        map[string]any{"extensions": []any{"discount"}},
		"fulfillment_details": map[string]any{"address": address},
		"discounts":           map[string]any{"codes": []any{"tee10"}},
		"coupons":             []any{"IGNORED"},
	})
	id := s["id"].(string)
	// TEE10 first (priority 1): tees 3000 - 300 = 2700, hoodie 3000; then the automatic
	// $3 (priority 100) spread 2700:3000 -> 142, 158; CA tax
	// 7.25% on 2558 and 2842: 185 + 206; shipping 500 untaxed.
	tot := totals(t, s)
	if tot["items_base_amount"] != 6000 || tot["items_discount"] != 300 || tot["subtotal"] != 5700 || tot["discount"] != 300 ||
		tot["tax"] != 391 || tot["total"] != 5700-300+500+391 {
		t.Errorf("2026-04-17 totals = %v", tot)
	}
	lineItemsDiscountInvariant(t, s)
	d := s["discounts"].(map[string]any)
	if codes := asList(d["codes"]); len(codes) != 1 || codes[0] != "tee10" {
		t.Errorf("codes = %v: discounts.codes wins over coupons", codes)
	}

	old := e.as("2025-09-29")
	s29 := old.mustSession(old.do(http.MethodGet, "/checkout_sessions/"+id, nil), http.StatusOK)
	if s29["discounts"] != nil {
		t.Errorf("2025-09-29 shows discounts: %v", s29["discounts"])
	}
	var lineDiscounts float64
	for _, l := range s29["line_items"].([]any) {
		a := old.lineAmounts(l.(map[string]any))
		lineDiscounts += a[1]
		if a[2] != a[0]-a[1] || a[4] != a[2]+a[3] {
			t.Errorf("2025-09-29 line %v does not add up", a)
		}
	}
	if tot29 := totals(t, s29); tot29["items_discount"] != 300 || tot29["discount"] != 300 || tot29["total"] != tot["total"] || lineDiscounts != 600 {
		t.Errorf("2025-09-29 totals = %v, line discounts %v", tot29, lineDiscounts)
	}

	// Codes are replaced, case-insensitively; [] clears them; coupons is the alias.
	up := e.mustSession(e.do(http.MethodPost, "/checkout_sessions/"+id, map[string]any{"coupons": []any{"TEE10", "Tee10"}}), http.StatusOK)
	ud := up["discounts"].(map[string]any)
	if len(asList(ud["applied"])) != 2 || len(asList(ud["rejected"])) != 1 ||
		asList(ud["rejected"])[0].(map[string]any)["reason"] != "discount_code_already_applied" {
		t.Errorf("after coupons: %v", ud)
	}
	up = e.mustSession(e.do(http.MethodPost, "/checkout_sessions/"+id, map[string]any{"discounts": map[string]any{"codes": []any{}}}), http.StatusOK)
	ud = up["discounts"].(map[string]any)
	if len(asList(ud["codes"])) != 0 || len(asList(ud["applied"])) != 1 || asList(ud["applied"])[0].(map[string]any)["automatic"] != true {
		t.Errorf("after clearing: %v", ud)
	}

	// An agent that does not declare the extension: its codes are not taken, and only
	// the automatic discount shows, in the totals.
	plain := e.mustCreate(map[string]any{
		"line_items": items("item_123", 1), "currency": "usd",
		"discounts": map[string]any{"codes": []any{"TEE10"}},
	})
	if plain["discounts"] != nil || plain["capabilities"].(map[string]any)["extensions"] != nil || totals(t, plain)["discount"] != 300 {
		t.Errorf("without the extension: discounts %v, totals %v", plain["discounts"], plain["totals"])
	}
	// 2025-09-29 sessions get automatic discounts too.
	created := old.mustCreate(map[string]any{"items": items("item_123", 1)})
	if totals(t, created)["discount"] != 300 {
		t.Errorf("2025-09-29 totals = %v", created["totals"])
	}
	// Too many codes is a 400 naming the field.
	many := make([]any, checkout.MaxDiscountCodes+1)
	for i := range many {
		many[i] = "C"
	}
	e.mustError(e.do(http.MethodPost, "/checkout_sessions/"+id, map[string]any{"discounts": map[string]any{"codes": many}}),
		http.StatusBadRequest, "invalid", "$.discounts.codes")
}

// A completion refused for a used-up code is a 409 naming the code, in both the
// wire format and the session left open.
func TestDiscountCompletionRefusedWhenUsedUp(t *testing.T) {
	t.Parallel()
	one := 1
	e := discountEnv(t, v0417, 500, nil,
		checkout.Discount{ID: "once", Code: "ONCE", Title: "Once", AmountOff: 100, Currency: "usd", UsageLimit: &one, Stackable: true})
	var ids []string
	for range 2 {
		s := e.mustCreate(map[string]any{
			"line_items": items("item_123", 1), "currency": "usd",
			"capabilities":        map[string]any{"extensions": []any{"discount"}},
			"buyer":               map[string]any{"email": "ada@example.com"},
			"fulfillment_details": map[string]any{"address": address},
			"discounts":           map[string]any{"codes": []any{"once"}},
		})
		ids = append(ids, s["id"].(string))
	}
	complete := map[string]any{"payment_data": map[string]any{"handler_id": "card_psp_test",
		"instrument": map[string]any{"type": "card", "credential": map[string]any{"type": "spt", "token": "tok_visa"}}}}
	done := e.mustSession(e.do(http.MethodPost, "/checkout_sessions/"+ids[0]+"/complete", complete), http.StatusOK)
	if done["status"] != "completed" || len(asList(done["discounts"].(map[string]any)["applied"])) != 1 {
		t.Fatalf("first completion: %v", done)
	}
	// The order's totals add up: subtotal 1500 - discount 100 + shipping 500 + CA tax on
	// 1400 (102) = 2002; its line cost 1400 before tax, what a refund gives back.
	ot := totalsOf(done["order"].(map[string]any)["totals"])
	if ot["subtotal"] != 1500 || ot["discount"] != 100 || ot["fulfillment"] != 500 || ot["tax"] != 102 || ot["total"] != 2002 {
		t.Errorf("order totals = %v", ot)
	}
	if l := done["order"].(map[string]any)["line_items"].([]any)[0].(map[string]any); l["subtotal"] != 1400.0 {
		t.Errorf("order line = %v", l)
	}
	e.mustError(e.do(http.MethodPost, "/checkout_sessions/"+ids[1]+"/complete", complete), http.StatusConflict,
		"discount_code_usage_limit_reached", "$.discounts.codes[0]")
	s := e.mustSession(e.do(http.MethodGet, "/checkout_sessions/"+ids[1], nil), http.StatusOK)
	if s["status"] != "ready_for_payment" || asList(s["discounts"].(map[string]any)["rejected"])[0].(map[string]any)["reason"] != "discount_code_usage_limit_reached" {
		t.Errorf("refused session: %v", s["discounts"])
	}
}

// The merchant's discount API: create, list, get, disable; refusals are 4xx.
func TestAdminDiscounts(t *testing.T) {
	t.Parallel()
	e := discountEnv(t, "", 500, nil)
	auth := []string{"Authorization", "Bearer " + adminKey}
	r := e.do(http.MethodPost, "/admin/discounts", map[string]any{
		"code": "spring", "title": "Spring 15%", "percent_bps": 1500, "usage_limit": 10, "stackable": false,
	}, auth...)
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	d := r.json(t)
	id := d["id"].(string)
	if d["code"] != "SPRING" || d["automatic"] != false || d["stackable"] != false || d["priority"].(float64) != 100 || !strings.HasPrefix(id, "disc_") {
		t.Errorf("created = %v", d)
	}
	e.mustError(e.do(http.MethodPost, "/admin/discounts", map[string]any{"code": "SPRING", "title": "again", "percent_bps": 1}, auth...),
		http.StatusConflict, "conflict", "$.code")
	e.mustError(e.do(http.MethodPost, "/admin/discounts", map[string]any{"title": "both", "percent_bps": 1, "amount_off": 1, "currency": "usd"}, auth...),
		http.StatusBadRequest, "invalid", "$.percent_bps")
	e.mustError(e.do(http.MethodPost, "/admin/discounts", map[string]any{"title": "t", "percent_bps": 1, "times_redeemed": 5}, auth...),
		http.StatusBadRequest, "invalid", "")
	e.mustError(e.do(http.MethodPost, "/admin/discounts", `{"title": "t", "percent_bps": 1, "bogus": 1}`, auth...),
		http.StatusBadRequest, "invalid", "")
	if r := e.do(http.MethodGet, "/admin/discounts", nil); r.status != http.StatusUnauthorized {
		t.Errorf("without the admin key: %d", r.status)
	}
	list := e.do(http.MethodGet, "/admin/discounts", nil, auth...)
	if list.status != http.StatusOK || len(list.json(t)["discounts"].([]any)) != 1 {
		t.Errorf("list: %d %s", list.status, list.body)
	}
	r = e.do(http.MethodPost, "/admin/discounts/"+id+"/disable", nil, auth...)
	if r.status != http.StatusOK || r.json(t)["disabled"] != true {
		t.Errorf("disable: %d %s", r.status, r.body)
	}
	e.mustError(e.do(http.MethodPost, "/admin/discounts/disc_nope/disable", nil, auth...), http.StatusNotFound, "not_found", "")
	if r := e.do(http.MethodGet, "/admin/discounts/"+id, nil, auth...); r.status != http.StatusOK || r.json(t)["disabled"] != true {
		t.Errorf("get: %d %s", r.status, r.body)
	}
	// A disabled code is rejected as invalid.
	s := e.as(v0417)
	sess := s.mustCreate(map[string]any{"line_items": items("item_123", 1), "currency": "usd",
		"capabilities": map[string]any{"extensions": []any{"discount"}}, "discounts": map[string]any{"codes": []any{"Spring"}}})
	if rej := asList(sess["discounts"].(map[string]any)["rejected"]); len(rej) != 1 || rej[0].(map[string]any)["reason"] != "discount_code_invalid" {
		t.Errorf("disabled code: %v", sess["discounts"])
	}
}
