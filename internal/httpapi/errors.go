package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/agentic-commerce/agentic-commerce-server/internal/acp"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/idempotency"
)

// writeError answers err as an ACP Error of the request's version (see acpError), with
// the headers its refusal asks for.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	if de, ok := checkout.AsError(err); ok && de.Kind == checkout.KindNotAllowed {
		w.Header().Set("Allow", http.MethodGet)
	}
	e := s.acpError(r.Context(), versionOf(r), err)
	if retryable(e) {
		w.Header().Set("Retry-After", "1")
	}
	refuse(w, r, e)
}

// acpError is the refusal of err in api, the same for every transport (REST and MCP).
// Refusals and domain errors are shown as they are; anything else is logged with the
// request id and becomes a generic 503 or 500, so no internal detail ever reaches the
// client.
func (s *Server) acpError(ctx context.Context, api API, err error) *acp.Error {
	var ae *acp.Error
	if errors.As(err, &ae) {
		return ae
	}
	if de, ok := checkout.AsError(err); ok && de.Kind != checkout.KindInternal {
		return api.DomainError(de)
	}
	if errors.Is(err, idempotency.ErrNotClaimed) {
		// The work stopped because its deferred claim found the key taken; runOnce
		// answers with what the claim found instead of this.
		return inFlightError()
	}
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		s.logger.LogAttrs(ctx, slog.LevelWarn, "request timed out", slog.String("request_id", requestID(ctx)), slog.Any("error", err))
		return acp.NewError(http.StatusServiceUnavailable, acp.TypeServiceUnavailable,
			codeTimeout, "The request did not finish in time; nothing was committed unless a retry with the same Idempotency-Key says so.", "")
	case ctx.Err() != nil:
		// The client went away or the server is shutting down; the answer is moot.
		s.logger.LogAttrs(ctx, slog.LevelWarn, "request canceled", slog.String("request_id", requestID(ctx)), slog.Any("error", err))
		return acp.NewError(http.StatusServiceUnavailable, acp.TypeServiceUnavailable,
			"request_canceled", "The request was canceled before it finished.", "")
	case s.unavailable != nil && s.unavailable(err):
		s.logger.LogAttrs(ctx, slog.LevelWarn, "database unavailable", slog.String("request_id", requestID(ctx)), slog.Any("error", err))
		return acp.NewError(http.StatusServiceUnavailable, acp.TypeServiceUnavailable,
			codeDatabaseUnavailable, "The database cannot be reached right now; retry shortly with the same Idempotency-Key.", "")
	}
	s.logger.LogAttrs(ctx, slog.LevelError, "internal error", slog.String("request_id", requestID(ctx)), slog.Any("error", err))
	return acp.NewError(http.StatusInternalServerError, acp.TypeProcessingError,
		"internal_error", "The server could not process the request. Retry later with the same Idempotency-Key.", "")
}

// Codes of the refusals a client should retry after a second (Retry-After: 1).
const (
	codeTimeout             = "timeout"
	codeDatabaseUnavailable = "database_unavailable"
)

// retryable reports whether e is worth retrying shortly: REST answers it with
// Retry-After, MCP with the same code in the Error.
func retryable(e *acp.Error) bool {
	switch e.Code {
	case codeTimeout, codeDatabaseUnavailable, acp.CodeIdempotencyInFlight, checkout.CodePaymentPending,
		checkout.CodeCompleteInProgress, checkout.CodeRefundPending, checkout.CodeRefundInProgress:
		return true
	}
	return false
}

// refuse writes e as the response, in the Error shape of the request's version and
// route, and notes its precise code for the access log and metrics. Requests without a
// version (the admin API, refusals before the version is known) get the default
// version's shape.
func refuse(w http.ResponseWriter, r *http.Request, e *acp.Error) {
	infoOf(r).errCode = e.Code
	if r.URL.Path == delegatePaymentPath {
		writeJSON(w, e.Status, versionOf(r).EncodeDelegateError(e))
		return
	}
	writeJSON(w, e.Status, versionOf(r).EncodeError(e))
}
