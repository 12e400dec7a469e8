package v20260417

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/acpspec"
	"github.com/agentic-commerce/agentic-commerce-server/internal/payment"
)

// delegateExample is the official delegate_payment request with edit applied to its
// decoded JSON.
func delegateExample(t *testing.T, edit func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(example(t, "examples.delegate_payment.json", "delegate_payment_request"), &m); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(m)
	}
	raw, _ := json.Marshal(m)
	return raw
}

func card(m map[string]any) map[string]any { return m["payment_method"].(map[string]any) }

// before the official example's expiry, so that the allowance validates.
var delegateNow = time.Date(2025, 10, 1, 0, 0, 0, 0, time.UTC)

func TestDecodeDelegate(t *testing.T) {
	t.Parallel()
	d, err := API{}.DecodeDelegate(delegateExample(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	if d.Card.Number != "4242424242424242" || d.Card.Last4 != "4242" || d.Allowance.MaxAmount != 2000 || d.Allowance.MerchantID != "acme_store" ||
		len(d.RiskSignals) != 1 || d.Metadata["campaign"] != "q4" || d.BillingAddress.Name != "Ada Lovelace" || len(d.Card.ChecksPerformed) != 2 {
		t.Errorf("delegation = %+v", d)
	}
	if err := d.Validate(delegateNow); err != nil {
		t.Errorf("official example refused: %v", err)
	}

	// risk_signals may be empty in 2026-04-17 (checklist I-11), and iin up to 8 digits.
	d, err = API{}.DecodeDelegate(delegateExample(t, func(m map[string]any) {
		m["risk_signals"] = []any{}
		card(m)["iin"] = "42424242"
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Validate(delegateNow); err != nil {
		t.Errorf("empty risk_signals or an 8-digit iin refused: %v", err)
	}
	d, _ = API{}.DecodeDelegate(delegateExample(t, func(m map[string]any) { card(m)["iin"] = "424242424" }))
	if err := d.Validate(delegateNow); err == nil || !strings.Contains(err.Error(), "8 digits") {
		t.Errorf("a 9-digit iin: %v", err)
	}
	// 2025-09-29's limits are the zero Rules.
	d.Rules = payment.Rules{}
	d.Card.IIN, d.RiskSignals = "4242424", nil
	if err := d.Validate(delegateNow); err == nil {
		t.Error("2025-09-29 rules took a 7-digit iin")
	}

	for _, tc := range []struct {
		name        string
		edit        func(m map[string]any)
		code, param string
	}{
		{"letters in last4", func(m map[string]any) { card(m)["display_last4"] = "42a2" }, "invalid_card", "$.payment_method.display_last4"},
		{"short last4", func(m map[string]any) { card(m)["display_last4"] = "242" }, "invalid_card", "$.payment_method.display_last4"},
		{"no number", func(m map[string]any) { delete(card(m), "number") }, "missing", "$.payment_method.number"},
		{"null number", func(m map[string]any) { card(m)["number"] = nil }, "missing", "$.payment_method.number"},
		{"no risk signals", func(m map[string]any) { delete(m, "risk_signals") }, "missing", "$.risk_signals"},
		{"risk signal without action", func(m map[string]any) { m["risk_signals"] = []any{map[string]any{"type": "card_testing", "score": 1}} }, "missing", "$.risk_signals[0].action"},
		{"no expiry", func(m map[string]any) { delete(m["allowance"].(map[string]any), "expires_at") }, "missing", "$.allowance.expires_at"},
		{"bad expiry", func(m map[string]any) { m["allowance"].(map[string]any)["expires_at"] = "tomorrow" }, "invalid_allowance", "$.allowance.expires_at"},
		{"unknown field", func(m map[string]any) { card(m)["pin"] = "1234" }, "unknown_field", "$.payment_method.pin"},
	} {
		_, err := API{}.DecodeDelegate(delegateExample(t, tc.edit))
		mustRefuse(t, tc.name, err, tc.code, tc.param)
	}
	_, err = API{}.DecodeDelegate([]byte(`[]`))
	mustRefuse(t, "array body", err, "invalid_type", "")
}

func TestEncodeTokenValidates(t *testing.T) {
	t.Parallel()
	schema := acpspec.MustLoad(t, Version, "schema.delegate_payment.json")
	tok := payment.Token{ID: "vt_1", Created: time.Now(), Metadata: map[string]string{"campaign": "q4"},
		Allowance: payment.Allowance{MerchantID: "acme_store"}}
	raw, err := json.Marshal(API{}.EncodeToken(tok, "key-1"))
	if err != nil {
		t.Fatal(err)
	}
	schema.MustValidate(t, "DelegatePaymentResponse", raw)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	md := m["metadata"].(map[string]any)
	if m["id"] != "vt_1" || md["campaign"] != "q4" || md["merchant_id"] != "acme_store" || md["idempotency_key"] != "key-1" {
		t.Errorf("token = %s", raw)
	}
}
