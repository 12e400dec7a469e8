package v20260417

import (
	"testing"

	"github.com/agentic-commerce/agentic-commerce-server/internal/acp/internal/wiretest"
	"github.com/agentic-commerce/agentic-commerce-server/internal/acpspec"
)

var (
	createRequest   = wiretest.Of[CheckoutSessionCreateRequest]("CheckoutSessionCreateRequest")
	updateRequest   = wiretest.Of[CheckoutSessionUpdateRequest]("CheckoutSessionUpdateRequest")
	completeRequest = wiretest.Of[CheckoutSessionCompleteRequest]("CheckoutSessionCompleteRequest")
	cancelRequest   = wiretest.Of[CancelSessionRequest]("CancelSessionRequest")
	session         = wiretest.Of[CheckoutSession]("CheckoutSession")
	sessionOrder    = wiretest.Of[CheckoutSessionWithOrder]("CheckoutSessionWithOrder")
	authResult      = wiretest.Of[AuthenticationResult]("AuthenticationResult")
	apiError        = wiretest.Of[Error]("Error")
)

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
	wiretest.Examples(t, schema, "2026-04-17/examples.agentic_checkout.json", map[string]*wiretest.Type{
		"create_checkout_session_request":                               createRequest,
		"create_checkout_session_request_with_first_touch_attribution":  createRequest,
		"create_checkout_session_response":                              session,
		"update_checkout_session_request":                               updateRequest,
		"update_checkout_session_response":                              session,
		"complete_checkout_session_request":                             completeRequest,
		"complete_checkout_session_request_seller_backed":               completeRequest,
		"complete_checkout_session_request_with_last_touch_attribution": completeRequest,
		"complete_checkout_session_response":                            sessionOrder,
		"get_checkout_session_response":                                 session,
		"cancel_checkout_session_request":                               cancelRequest,
		"cancel_checkout_session_request_timing_deferred":               cancelRequest,
		"cancel_checkout_session_response":                              session,
		"checkout_session_authentication_required":                      session,
		"complete_session_with_authentication_result_request":           completeRequest,
		"complete_session_with_denied_authentication_request":           completeRequest,
		"authentication_result_example":                                 authResult,
		"authentication_result_denied_example":                          authResult,
		"authentication_result_frictionless_example":                    authResult,
		"checkout_session_with_out_of_stock":                            session,
		"checkout_session_with_payment_declined":                        session,
		"error_400_requires_3ds":                                        apiError,
		"error_400_invalid_item":                                        apiError,
		"error_400_idempotency_key_required":                            apiError,
		"error_422_idempotency_conflict":                                apiError,
		"error_409_idempotency_in_flight":                               apiError,
		// The order webhook is another API (openapi.agentic_checkout_webhook.yaml), and
		// its examples lack the required Order id (checklist I-27).
		"webhook_order_create_event": nil,
		"webhook_order_update_event": nil,
		// Discovery (/.well-known/acp.json) is in the JSON Schema only, not in the
		// checkout OpenAPI these types come from.
		"discovery_response_full":    nil,
		"discovery_response_minimal": nil,
	}, invalidExamples)
	wiretest.Examples(t, schema, "2026-04-17/examples.multi_item_checkout.json", map[string]*wiretest.Type{
		"create_multi_item_checkout_request":  createRequest,
		"create_multi_item_checkout_response": session,
	}, invalidExamples)
}
