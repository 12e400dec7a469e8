package acpspec

import (
	"io/fs"
	"strings"
	"testing"
)

// TestVendoredSpec checks that the files the suite reads are embedded and that both
// checkout bundles compile, so a bad refresh of spec/ fails here first.
func TestVendoredSpec(t *testing.T) {
	t.Parallel()
	for _, name := range []string{
		"LICENSE", "NOTICE", "SOURCE",
		"2025-09-29/examples.agentic_checkout.json",
		"2025-09-29/examples.delegate_payment.json",
		"2025-09-29/openapi/openapi.agentic_checkout_webhook.yaml",
		"2026-04-17/json-schema/schema.feed.json",
		"2026-04-17/openapi/openapi.agentic_checkout_webhook.yaml",
		"2026-04-17/openrpc/openrpc.agentic_checkout.json",
		"2026-04-17/orders/simple-order.json",
	} {
		if len(ReadFile(t, name)) == 0 {
			t.Errorf("%s is empty", name)
		}
	}
	if src := string(ReadFile(t, "SOURCE")); !strings.Contains(src, "commit ") {
		t.Errorf("SOURCE does not name the upstream commit: %q", src)
	}
	if _, err := fs.ReadFile(FS(), "2025-09-29/no-such-file.json"); err == nil {
		t.Error("reading a file that is not vendored succeeded")
	}
	for _, c := range []struct{ version, file, def string }{
		{"2025-09-29", "schema.agentic_checkout.json", "CheckoutSession"},
		{"2025-09-29", "schema.delegate_payment.json", "DelegatePaymentRequest"},
		{"2026-04-17", "schema.agentic_checkout.json", "CheckoutSession"},
	} {
		v := MustLoad(t, c.version, c.file)
		if err := v.Validate(c.def, []byte(`{}`)); err == nil || strings.Contains(err.Error(), "compile") {
			t.Errorf("%s %s#%s: want a validation error for {}, got %v", c.version, c.file, c.def, err)
		}
	}
}

// TestCartBundleCompilesWithTheCheckoutBundle: the cart bundle's $refs into the checkout
// bundle resolve once it is registered where they point (checklist I-37), and the cart
// schema then holds: the RFC's example cart (whose totals lack display_text) fails, a
// complete one passes.
func TestCartBundleCompilesWithTheCheckoutBundle(t *testing.T) {
	v := MustLoad(t, "2026-04-17", "schema.cart.json", "schema.agentic_checkout.json")
	good := `{"id":"cart_1","currency":"usd","line_items":[{"id":"li_1","item":{"id":"item_123"},"quantity":2,
		"totals":[{"type":"subtotal","display_text":"Subtotal","amount":24000}]}],
		"totals":[{"type":"total","display_text":"Total","amount":24000}]}`
	if err := v.Validate("Cart", []byte(good)); err != nil {
		t.Fatal(err)
	}
	bad := `{"id":"cart_1","currency":"usd","line_items":[],"totals":[{"type":"total","amount":24000}]}`
	if err := v.Validate("Cart", []byte(bad)); err == nil {
		t.Error("a Total without display_text validates")
	}
}
