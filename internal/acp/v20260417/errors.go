package v20260417

import (
	"net/http"

	"github.com/agentic-commerce/agentic-commerce-server/internal/acp"
	"github.com/agentic-commerce/agentic-commerce-server/internal/acp/v20260417/delegatepayment"
	"github.com/agentic-commerce/agentic-commerce-server/internal/acp/wire"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
)

// EncodeError renders a refusal as a 2026-04-17 checkout Error. Its type is one of
// invalid_request, processing_error and service_unavailable: a rate limit, which has
// no type of its own here, is invalid_request (its code, too_many_requests, and the 429
// say the rest). supported_versions is only sent on version errors.
func (API) EncodeError(e *acp.Error) any {
	t := ErrorType(e.Type)
	if !t.Valid() {
		t = ErrorTypeInvalidRequest
	}
	return Error{Type: t, Code: e.Code, Message: e.Message, Param: nonEmpty(e.Param), SupportedVersions: versions(e)}
}

// delegateCodes are the refusal codes the 2026-04-17 delegate_payment Error has a
// code for; every other refusal is invalid_card, the precise reason kept in the
// message (checklist I-12: stay inside the enums).
var delegateCodes = map[string]delegatepayment.ErrorCode{
	acp.CodeInvalidCard:            delegatepayment.InvalidCard,
	acp.CodeTooManyRequests:        delegatepayment.TooManyRequests,
	acp.CodeIdempotencyConflict:    delegatepayment.IdempotencyConflict,
	acp.CodeIdempotencyInFlight:    delegatepayment.IdempotencyInFlight,
	acp.CodeIdempotencyKeyRequired: delegatepayment.IdempotencyKeyRequired,
}

// EncodeDelegateError renders a refusal as a 2026-04-17 delegate_payment Error, whose
// type and code are closed enums: a rate limit is rate_limit_exceeded and
// too_many_requests, the idempotency refusals have their own codes, and every other
// refusal is invalid_card with "(reason: <code>)" in the message.
func (API) EncodeDelegateError(e *acp.Error) any {
	errType := delegatepayment.ErrorType(e.Type)
	code, ok := delegateCodes[e.Code]
	if e.Status == http.StatusTooManyRequests {
		errType, code, ok = delegatepayment.RateLimitExceeded, delegatepayment.TooManyRequests, true
	}
	if !errType.Valid() {
		errType = delegatepayment.InvalidRequest
	}
	msg := e.Message
	if !ok {
		code = delegatepayment.InvalidCard
		msg += " (reason: " + e.Code + ")"
	}
	return delegatepayment.Error{Type: errType, Code: code, Message: msg, Param: nonEmpty(e.Param), SupportedVersions: versions(e)}
}

// versions is the supported_versions of a version error, nil (absent) otherwise.
func versions(e *acp.Error) *[]string {
	if len(e.SupportedVersions) == 0 {
		return nil
	}
	return &e.SupportedVersions
}

// DomainError renders a domain error: its kind gives the status and type (the table
// every version shares: 2026-04-17 changes none of them), its field the 2026-04-17
// JSONPath in param.
func (API) DomainError(de *checkout.Error) *acp.Error { return wire.DomainError(de, pathOf(de.Field)) }
