package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/agentic-commerce/agentic-commerce-server/internal/acp"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
)

// writeError answers err as an ACP Error of the request's version. Refusals and domain
// errors are shown as they are; anything else is logged with the request id and
// answered with a generic 500, so no internal detail ever reaches the client.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *acp.Error
	if errors.As(err, &ae) {
		refuse(w, r, ae)
		return
	}
	if de, ok := checkout.AsError(err); ok && de.Kind != checkout.KindInternal {
		if de.Kind == checkout.KindNotAllowed {
			w.Header().Set("Allow", http.MethodGet)
		}
		refuse(w, r, versionOf(r).DomainError(de))
		return
	}
	switch {
	case errors.Is(r.Context().Err(), context.DeadlineExceeded):
		s.logger.LogAttrs(r.Context(), slog.LevelWarn, "request timed out", slog.String("request_id", requestID(r.Context())), slog.Any("error", err))
		w.Header().Set("Retry-After", "1")
		refuse(w, r, acp.NewError(http.StatusServiceUnavailable, acp.TypeServiceUnavailable,
			"timeout", "The request did not finish in time; nothing was committed unless a retry with the same Idempotency-Key says so.", ""))
		return
	case r.Context().Err() != nil:
		// The client went away or the server is shutting down; the answer is moot.
		s.logger.LogAttrs(r.Context(), slog.LevelWarn, "request canceled", slog.String("request_id", requestID(r.Context())), slog.Any("error", err))
		refuse(w, r, acp.NewError(http.StatusServiceUnavailable, acp.TypeServiceUnavailable,
			"request_canceled", "The request was canceled before it finished.", ""))
		return
	case s.unavailable != nil && s.unavailable(err):
		s.logger.LogAttrs(r.Context(), slog.LevelWarn, "database unavailable", slog.String("request_id", requestID(r.Context())), slog.Any("error", err))
		w.Header().Set("Retry-After", "1")
		refuse(w, r, acp.NewError(http.StatusServiceUnavailable, acp.TypeServiceUnavailable,
			"database_unavailable", "The database cannot be reached right now; retry shortly with the same Idempotency-Key.", ""))
		return
	}
	s.logger.LogAttrs(r.Context(), slog.LevelError, "internal error", slog.String("request_id", requestID(r.Context())), slog.Any("error", err))
	refuse(w, r, acp.NewError(http.StatusInternalServerError, acp.TypeProcessingError,
		"internal_error", "The server could not process the request. Retry later with the same Idempotency-Key.", ""))
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
