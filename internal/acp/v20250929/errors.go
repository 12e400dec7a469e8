package v20250929

import (
	"net/http"
	"strings"

	"github.com/agentic-commerce/agentic-commerce-server/internal/acp"
	"github.com/agentic-commerce/agentic-commerce-server/internal/acp/wire"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
)

// errorBody is the flat 2025-09-29 Error of both checkout and delegate_payment. Its
// schemas allow no other field, supported_versions included.
type errorBody struct {
	Type    string `json:"type"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Param   string `json:"param,omitempty"`
}

// EncodeError renders a refusal as a 2025-09-29 checkout Error body: its code is free,
// its type one of invalid_request, processing_error and service_unavailable.
func (API) EncodeError(e *acp.Error) any {
	return errorBody{Type: e.Type, Code: e.Code, Message: errorMessage(e), Param: e.Param}
}

// EncodeDelegateError renders a refusal as a 2025-09-29 delegate_payment Error body,
// whose type and code are closed enums: a rate limit is rate_limit_exceeded and
// too_many_requests, an idempotency conflict idempotency_conflict, a request still in
// flight duplicate_request, and every other refusal invalid_card, the only code left
// (the type tells a server fault from a bad request). A code the enum has not is kept
// in the message, the field in param.
func (API) EncodeDelegateError(e *acp.Error) any {
	errType, code := e.Type, acp.CodeInvalidCard
	switch {
	case e.Status == http.StatusTooManyRequests:
		errType, code = acp.TypeRateLimitExceeded, acp.CodeTooManyRequests
	case e.Code == acp.CodeIdempotencyConflict:
		code = acp.CodeIdempotencyConflict
	case e.Code == acp.CodeIdempotencyInFlight:
		code = acp.CodeDuplicateRequest
	}
	if errType != acp.TypeProcessingError && errType != acp.TypeServiceUnavailable && errType != acp.TypeRateLimitExceeded {
		errType = acp.TypeInvalidRequest
	}
	msg := errorMessage(e)
	if code != e.Code {
		msg += " (reason: " + e.Code + ")"
	}
	return errorBody{Type: errType, Code: code, Message: msg, Param: e.Param}
}

// errorMessage is e's message, naming the supported versions on a version error, since the
// 2025-09-29 Error has no field for them.
func errorMessage(e *acp.Error) string {
	if len(e.SupportedVersions) == 0 {
		return e.Message
	}
	return e.Message + " Supported versions: " + strings.Join(e.SupportedVersions, ", ") + "."
}

// DomainError renders a domain error: its kind gives the status and type (the table
// every version shares), its field the 2025-09-29 JSONPath in param.
func (API) DomainError(de *checkout.Error) *acp.Error { return wire.DomainError(de, pathOf(de.Field)) }
