package delegatepayment

import (
	"testing"

	"github.com/agentic-commerce/agentic-commerce-server/internal/acp/internal/wiretest"
	"github.com/agentic-commerce/agentic-commerce-server/internal/acpspec"
)

// TestOfficialExamples decodes every official 2026-04-17 delegate payment example into
// its generated type, refusing unknown fields, and checks that the re-encoded body is
// the same JSON and still validates against the official JSON Schema.
func TestOfficialExamples(t *testing.T) {
	t.Parallel()
	apiError := wiretest.Of[Error]("Error")
	schema := acpspec.MustLoad(t, "2026-04-17", "schema.delegate_payment.json")
	wiretest.Examples(t, schema, "2026-04-17/examples.delegate_payment.json", map[string]*wiretest.Type{
		"delegate_payment_request":                        wiretest.Of[DelegatePaymentRequest]("DelegatePaymentRequest"),
		"delegate_payment_success_response":               wiretest.Of[DelegatePaymentResponse]("DelegatePaymentResponse"),
		"delegate_payment_error_invalid_card":             apiError,
		"delegate_payment_error_idempotency_conflict":     apiError,
		"delegate_payment_error_rate_limit":               apiError,
		"delegate_payment_error_idempotency_key_required": apiError,
		"delegate_payment_error_idempotency_in_flight":    apiError,
	}, nil)
}
