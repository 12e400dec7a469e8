package v20260417

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/agentic-commerce/agentic-commerce-server/internal/acp"
	"github.com/agentic-commerce/agentic-commerce-server/internal/acpspec"
)

// FuzzDecode feeds arbitrary bodies to every decoder of this version: each must either
// decode or refuse with a 4xx acp.Error, never panic. The seeds are the official
// request examples.
func FuzzDecode(f *testing.F) {
	for _, file := range []string{"examples.agentic_checkout.json", "examples.multi_item_checkout.json", "examples.delegate_payment.json"} {
		var all map[string]json.RawMessage
		if err := json.Unmarshal(acpspec.ReadFile(f, "2026-04-17/"+file), &all); err != nil {
			f.Fatal(err)
		}
		for _, raw := range all {
			f.Add([]byte(raw))
		}
	}
	f.Add([]byte(`{"line_items":null,"buyer":null}`))
	f.Add([]byte(`{"selected_fulfillment_options":[{"type":"shipping","option_id":"a","item_ids":[]},{}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		check := func(what string, err error) {
			if err == nil {
				return
			}
			var e *acp.Error
			if !errors.As(err, &e) || e.Status < 400 || e.Status > 499 || e.Code == "" || e.Message == "" {
				t.Fatalf("%s of %q: %v", what, body, err)
			}
		}
		_, err := API{}.DecodeCreate(body)
		check("create", err)
		_, err = API{}.DecodeUpdate(body)
		check("update", err)
		_, err = API{}.DecodeComplete(body)
		check("complete", err)
		_, err = API{}.DecodeCancel(body)
		check("cancel", err)
		_, err = API{}.DecodeDelegate(body)
		check("delegate", err)
	})
}
