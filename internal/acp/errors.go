// Package acp holds what every ACP API version shares at the edge: the error value the
// versions, the HTTP layer and the admin API refuse requests with, and strict JSON
// decoding. It names no version; each version package (internal/acp/v20250929, …)
// renders an Error in its own body shape, and internal/httpapi picks the version.
//
// Import graph: httpapi → acp/<version> → acp; acp imports no other package of ours.
package acp

import "net/http"

// ACP error types (the Error.type enum, the same in every version so far).
// TypeRateLimitExceeded is only in the delegate_payment enum of 2025-09-29.
const (
	TypeInvalidRequest     = "invalid_request"
	TypeProcessingError    = "processing_error"
	TypeServiceUnavailable = "service_unavailable"
	TypeRateLimitExceeded  = "rate_limit_exceeded"
)

// Refusal codes a version may render in its own terms (the 2025-09-29 delegate_payment
// code enum, for one, has a code of its own for each).
const (
	CodeTooManyRequests     = "too_many_requests"
	CodeIdempotencyConflict = "idempotency_conflict"
	CodeIdempotencyInFlight = "idempotency_in_flight"
	// CodeIdempotencyKeyRequired refuses a POST without Idempotency-Key where the
	// version requires one (2026-04-17).
	CodeIdempotencyKeyRequired = "idempotency_key_required"
	// CodeInvalidCard and CodeDuplicateRequest complete the 2025-09-29 delegate_payment
	// code enum.
	CodeInvalidCard      = "invalid_card"
	CodeDuplicateRequest = "duplicate_request"
)

// Error is a refusal: the HTTP status and the fields of an ACP Error. It is not a body:
// each version renders it in its own shape. SupportedVersions is only set on version
// errors; a version whose Error has no supported_versions field (2025-09-29) names them
// in the message instead (see docs/decisions.md).
type Error struct {
	Status            int
	Type              string
	Code              string
	Message           string
	Param             string
	SupportedVersions []string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// NewError returns a refusal with status.
func NewError(status int, errType, code, message, param string) *Error {
	return &Error{Status: status, Type: errType, Code: code, Message: message, Param: param}
}

// InvalidRequest returns a 400 invalid_request refusal.
func InvalidRequest(code, message, param string) *Error {
	return NewError(http.StatusBadRequest, TypeInvalidRequest, code, message, param)
}
