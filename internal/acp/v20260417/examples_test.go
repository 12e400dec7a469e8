package v20260417

import (
	"bytes"
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/agentic-commerce/agentic-commerce-server/internal/acpspec"
)

// wireType decodes an example into one generated type and re-encodes it.
type wireType struct {
	def       string // the JSON Schema definition the body must validate against
	roundTrip func(t *testing.T, raw []byte) []byte
}

func typed[T any](def string) wireType {
	return wireType{def: def, roundTrip: func(t *testing.T, raw []byte) []byte {
		t.Helper()
		var v T
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("decode into %T: %v\nbody: %s", v, err, raw)
		}
		out, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("encode %T: %v", v, err)
		}
		return out
	}}
}

var (
	createRequest   = typed[CheckoutSessionCreateRequest]("CheckoutSessionCreateRequest")
	updateRequest   = typed[CheckoutSessionUpdateRequest]("CheckoutSessionUpdateRequest")
	completeRequest = typed[CheckoutSessionCompleteRequest]("CheckoutSessionCompleteRequest")
	cancelRequest   = typed[CancelSessionRequest]("CancelSessionRequest")
	session         = typed[CheckoutSession]("CheckoutSession")
	sessionOrder    = typed[CheckoutSessionWithOrder]("CheckoutSessionWithOrder")
	authResult      = typed[AuthenticationResult]("AuthenticationResult")
	apiError        = typed[Error]("Error")
)

// checkoutExamples maps every top-level example of the 2026-04-17 checkout example
// files to its wire type. The value is nil for the examples of other APIs (with why).
var checkoutExamples = map[string]map[string]*wireType{
	"examples.agentic_checkout.json": {
		"create_checkout_session_request":                               &createRequest,
		"create_checkout_session_request_with_first_touch_attribution":  &createRequest,
		"create_checkout_session_response":                              &session,
		"update_checkout_session_request":                               &updateRequest,
		"update_checkout_session_response":                              &session,
		"complete_checkout_session_request":                             &completeRequest,
		"complete_checkout_session_request_seller_backed":               &completeRequest,
		"complete_checkout_session_request_with_last_touch_attribution": &completeRequest,
		"complete_checkout_session_response":                            &sessionOrder,
		"get_checkout_session_response":                                 &session,
		"cancel_checkout_session_request":                               &cancelRequest,
		"cancel_checkout_session_request_timing_deferred":               &cancelRequest,
		"cancel_checkout_session_response":                              &session,
		"checkout_session_authentication_required":                      &session,
		"complete_session_with_authentication_result_request":           &completeRequest,
		"complete_session_with_denied_authentication_request":           &completeRequest,
		"authentication_result_example":                                 &authResult,
		"authentication_result_denied_example":                          &authResult,
		"authentication_result_frictionless_example":                    &authResult,
		"checkout_session_with_out_of_stock":                            &session,
		"checkout_session_with_payment_declined":                        &session,
		"error_400_requires_3ds":                                        &apiError,
		"error_400_invalid_item":                                        &apiError,
		"error_400_idempotency_key_required":                            &apiError,
		"error_422_idempotency_conflict":                                &apiError,
		"error_409_idempotency_in_flight":                               &apiError,
		// The order webhook is another API (openapi.agentic_checkout_webhook.yaml), and
		// its examples lack the required Order id (checklist I-27).
		"webhook_order_create_event": nil,
		"webhook_order_update_event": nil,
		// Discovery (/.well-known/acp.json) is in the JSON Schema only, not in the
		// checkout OpenAPI these types come from.
		"discovery_response_full":    nil,
		"discovery_response_minimal": nil,
	},
	"examples.multi_item_checkout.json": {
		"create_multi_item_checkout_request":  &createRequest,
		"create_multi_item_checkout_response": &session,
	},
}

// invalidExamples are official examples that fail the official JSON Schema themselves
// (checklist I-39), so no wire type can be expected to round-trip them.
var invalidExamples = map[string]string{
	"authentication_result_denied_example": "outcome_details lacks the required three_ds_cryptogram and electronic_commerce_indicator",
	"create_multi_item_checkout_request":   "lacks the required capabilities",
	"create_multi_item_checkout_response":  "lacks the required capabilities, has protocol.capabilities and line-item totals of type base_amount",
}

// TestOfficialExamples decodes every official 2026-04-17 checkout request and response
// example into its generated type, refusing unknown fields, and checks that the
// re-encoded body is the same JSON and still validates against the official JSON Schema.
func TestOfficialExamples(t *testing.T) {
	t.Parallel()
	schema := acpspec.MustLoad(t, "2026-04-17", "schema.agentic_checkout.json")
	for file, want := range checkoutExamples {
		var all map[string]json.RawMessage
		if err := json.Unmarshal(acpspec.ReadFile(t, "2026-04-17/"+file), &all); err != nil {
			t.Fatalf("parse %s: %v", file, err)
		}
		for name := range all {
			if _, ok := want[name]; !ok {
				t.Errorf("%s: example %q is new; map it to its wire type", file, name)
			}
		}
		for _, name := range slices.Sorted(maps.Keys(want)) {
			wt := want[name]
			raw, ok := all[name]
			if !ok {
				t.Errorf("%s: example %q is gone", file, name)
				continue
			}
			if wt == nil {
				continue
			}
			t.Run(strings.TrimSuffix(file, ".json")+"/"+name, func(t *testing.T) {
				err := schema.Validate(wt.def, raw)
				if why, ok := invalidExamples[name]; ok {
					if err == nil {
						t.Fatalf("the example now validates (it was invalid: %s); take it off invalidExamples", why)
					}
					return
				}
				if err != nil {
					t.Fatalf("the official example does not validate: %v", err)
				}
				out := wt.roundTrip(t, raw)
				if !sameJSON(t, raw, out) {
					t.Errorf("re-encoded body differs from the example\nexample: %s\nencoded: %s", compact(t, raw), out)
				}
				if err := schema.Validate(wt.def, out); err != nil {
					t.Error(err)
				}
			})
		}
	}
}

func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(va, vb)
}

func compact(t *testing.T, raw []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
