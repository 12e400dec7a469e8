package v20260417

import (
	"bytes"
	"net/http"

	"github.com/agentic-commerce/agentic-commerce-server/internal/acp"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/payment"
)

// Version is the API-Version header value of this package.
const Version = "2026-04-17"

// API is the 2026-04-17 wire format: its entry in the version table of
// internal/httpapi. It has no state; the zero value is ready.
type API struct{}

// DecodeCreate decodes a CheckoutSessionCreateRequest.
func (API) DecodeCreate(body []byte) (checkout.Changes, error) {
	var req createBody
	if err := acp.DecodeStrict(body, &req); err != nil {
		return checkout.Changes{}, err
	}
	return req.domain()
}

// DecodeUpdate decodes a CheckoutSessionUpdateRequest, telling a null (clear) from an
// absent field (keep).
func (API) DecodeUpdate(body []byte) (checkout.Changes, error) {
	var req updateBody
	if err := acp.DecodeStrict(body, &req); err != nil {
		return checkout.Changes{}, err
	}
	return req.domain(nullKeys(body))
}

// DecodeComplete decodes a CheckoutSessionCompleteRequest. Whether the session offers
// the handler it names is checked by the session store, which knows the session.
func (API) DecodeComplete(body []byte) (checkout.Completion, error) {
	var req completeBody
	if err := acp.DecodeStrict(body, &req); err != nil {
		return checkout.Completion{}, err
	}
	return req.domain()
}

// DecodeCancel decodes the optional CancelSessionRequest into the intent trace to
// record: nil for no body, {} or no intent_trace.
func (API) DecodeCancel(body []byte) (*checkout.IntentTrace, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, nil
	}
	var req cancelBody
	if err := acp.DecodeStrict(body, &req); err != nil {
		return nil, err
	}
	return req.domain()
}

// DecodeDelegate decodes a DelegatePaymentRequest.
func (API) DecodeDelegate(body []byte) (*payment.Delegation, error) { return decodeDelegate(body) }

// EncodeSession renders v as a CheckoutSession, with its order after complete
// (CheckoutSessionWithOrder).
func (API) EncodeSession(v checkout.View, links []acp.Link) any { return encodeSession(v, links) }

// EncodeToken renders a vault token as the delegate_payment response.
func (API) EncodeToken(t payment.Token, idempotencyKey string) any {
	return encodeToken(t, idempotencyKey)
}

// IdempotencyConflictStatus is 422: from 2026-04-17 a key reused with another body is
// unprocessable, no longer a conflict (checklist B4).
func (API) IdempotencyConflictStatus() int { return http.StatusUnprocessableEntity }

// RequiresIdempotencyKey is true: 2026-04-17 refuses a POST without Idempotency-Key
// (checklist B4, C9).
func (API) RequiresIdempotencyKey() bool { return true }
