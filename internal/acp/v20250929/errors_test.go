package v20250929

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/agentic-commerce/agentic-commerce-server/internal/acp"
	"github.com/agentic-commerce/agentic-commerce-server/internal/acpspec"
)

// TestEncodeDelegateErrorStaysInTheEnums pins the mapping of refusals onto the closed
// type and code enums of the 2025-09-29 delegate_payment Error, the refusals no HTTP
// test provokes easily (a request in flight, server faults) included.
func TestEncodeDelegateErrorStaysInTheEnums(t *testing.T) {
	t.Parallel()
	delegate := acpspec.MustLoad(t, Version, "schema.delegate_payment.json")
	checkout := acpspec.MustLoad(t, Version, "schema.agentic_checkout.json")
	for _, tc := range []struct {
		in                  *acp.Error
		errType, code, text string
	}{
		{acp.InvalidRequest("invalid_allowance", "allowance.currency is bad.", "$.allowance.currency"),
			"invalid_request", "invalid_card", "allowance.currency is bad. (reason: invalid_allowance)"},
		{acp.InvalidRequest("invalid_card", "The card has expired.", "$.payment_method.exp_year"),
			"invalid_request", "invalid_card", "The card has expired."},
		{acp.NewError(http.StatusTooManyRequests, acp.TypeInvalidRequest, acp.CodeTooManyRequests, "Slow down.", ""),
			"rate_limit_exceeded", "too_many_requests", "Slow down."},
		{acp.NewError(http.StatusConflict, acp.TypeInvalidRequest, acp.CodeIdempotencyConflict, "Other body.", ""),
			"invalid_request", "idempotency_conflict", "Other body."},
		{acp.NewError(http.StatusConflict, acp.TypeInvalidRequest, acp.CodeIdempotencyInFlight, "Still running.", ""),
			"invalid_request", "duplicate_request", "Still running. (reason: idempotency_in_flight)"},
		{acp.NewError(http.StatusServiceUnavailable, acp.TypeServiceUnavailable, "database_unavailable", "Down.", ""),
			"service_unavailable", "invalid_card", "Down. (reason: database_unavailable)"},
		{acp.NewError(http.StatusInternalServerError, acp.TypeProcessingError, "internal_error", "Oops.", ""),
			"processing_error", "invalid_card", "Oops. (reason: internal_error)"},
		{&acp.Error{Status: http.StatusBadRequest, Type: acp.TypeInvalidRequest, Code: "unsupported_api_version",
			Message: "Nope.", SupportedVersions: []string{"2026-04-17", Version}},
			"invalid_request", "invalid_card", "Nope. Supported versions: 2026-04-17, 2025-09-29. (reason: unsupported_api_version)"},
	} {
		raw, err := json.Marshal(API{}.EncodeDelegateError(tc.in))
		if err != nil {
			t.Fatal(err)
		}
		delegate.MustValidate(t, "Error", raw)
		var got errorBody
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Fatal(err)
		}
		if got.Type != tc.errType || got.Code != tc.code || got.Message != tc.text || got.Param != tc.in.Param {
			t.Errorf("%s: got %s", tc.in.Code, raw)
		}
		// The checkout Error of the same refusal keeps its code and validates too.
		raw, _ = json.Marshal(API{}.EncodeError(tc.in))
		checkout.MustValidate(t, "Error", raw)
	}
}
