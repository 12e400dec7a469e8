// Package v20250929 is ACP API version 2025-09-29 at the edge: it decodes the version's
// request bodies into domain values, encodes sessions, orders, vault tokens and errors
// in its shapes, names domain fields by its JSONPaths and says which statuses are its
// own. API is its entry in the version table of internal/httpapi; a new version is a
// package beside this one with the same methods, and one line in that table.
package v20250929

import (
	"net/http"

	"github.com/agentic-commerce/agentic-commerce-server/internal/acp"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/payment"
)

// Version is the API-Version header value of this package.
const Version = "2025-09-29"

// API is the 2025-09-29 wire format. It has no state; the zero value is ready.
type API struct{}

// DecodeCreate decodes a CheckoutSessionCreateRequest.
func (API) DecodeCreate(body []byte) (checkout.Changes, error) {
	var req createRequest
	if err := acp.DecodeStrict(body, &req); err != nil {
		return checkout.Changes{}, err
	}
	return req.domain()
}

// DecodeUpdate decodes a CheckoutSessionUpdateRequest.
func (API) DecodeUpdate(body []byte) (checkout.Changes, error) {
	var req updateRequest
	if err := acp.DecodeStrict(body, &req); err != nil {
		return checkout.Changes{}, err
	}
	return req.domain()
}

// DecodeComplete decodes a CheckoutSessionCompleteRequest.
func (API) DecodeComplete(body []byte) (checkout.Completion, error) {
	var req completeRequest
	if err := acp.DecodeStrict(body, &req); err != nil {
		return checkout.Completion{}, err
	}
	return req.domain()
}

// DecodeCancel checks the optional body of cancel (nil when there is none): any JSON
// value is accepted, since newer clients may send {intent_trace} (checklist A7); this
// version records no trace.
func (API) DecodeCancel(body []byte) (*checkout.IntentTrace, error) { return nil, acp.ValidJSON(body) }

// RequiresIdempotencyKey is false: 2025-09-29 recommends Idempotency-Key but must
// accept a POST without one.
func (API) RequiresIdempotencyKey() bool { return false }

// DecodeDelegate decodes a delegate_payment request.
func (API) DecodeDelegate(body []byte) (*payment.Delegation, error) {
	var req delegateRequest
	if err := acp.DecodeStrict(body, &req); err != nil {
		return nil, err
	}
	return req.domain()
}

// EncodeSession renders v as a CheckoutSession, or a CheckoutSessionWithOrder when v
// holds the order of a completed session.
func (API) EncodeSession(v checkout.View, links []acp.Link) any { return encodeSession(v, links) }

// EncodeToken renders a vault token as the delegate_payment response.
func (API) EncodeToken(t payment.Token, idempotencyKey string) any {
	return encodeToken(t, idempotencyKey)
}

// IdempotencyConflictStatus is the status of "same key, different body": 409 up to
// 2026-01-30, 422 from 2026-04-17 (checklist PART D).
func (API) IdempotencyConflictStatus() int { return http.StatusConflict }
