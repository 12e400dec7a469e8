package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
)

// ACP error types (the 2025-09-29 Error.type enum).
const (
	typeInvalidRequest     = "invalid_request"
	typeProcessingError    = "processing_error"
	typeServiceUnavailable = "service_unavailable"
)

// apiError is the flat ACP Error body. SupportedVersions is only sent with version
// errors (the 2026-04-17 shape, used for every version; see docs/decisions.md).
type apiError struct {
	Type              string   `json:"type"`
	Code              string   `json:"code"`
	Message           string   `json:"message"`
	Param             string   `json:"param,omitempty"`
	SupportedVersions []string `json:"supported_versions,omitempty"`

	status int
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

// kindStatus is the one table from domain error kinds to HTTP statuses and ACP types.
var kindStatus = map[checkout.Kind]struct {
	status  int
	errType string
}{
	checkout.KindInvalid:     {http.StatusBadRequest, typeInvalidRequest},
	checkout.KindNotFound:    {http.StatusNotFound, typeInvalidRequest},
	checkout.KindNotAllowed:  {http.StatusMethodNotAllowed, typeInvalidRequest},
	checkout.KindUnavailable: {http.StatusServiceUnavailable, typeServiceUnavailable},
	checkout.KindInternal:    {http.StatusInternalServerError, typeProcessingError},
	checkout.KindConflict:    {http.StatusConflict, typeInvalidRequest},
	checkout.KindDeclined:    {http.StatusBadRequest, typeProcessingError},
}

func newError(status int, errType, code, message, param string) *apiError {
	return &apiError{status: status, Type: errType, Code: code, Message: message, Param: param}
}

func invalidRequest(code, message, param string) *apiError {
	return newError(http.StatusBadRequest, typeInvalidRequest, code, message, param)
}

// writeError answers err as an ACP Error. Domain and API errors are shown as they are;
// anything else is logged with the request id and answered with a generic 500, so no
// internal detail ever reaches the client.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if errors.As(err, &ae) {
		refuse(w, r, ae)
		return
	}
	if de, ok := checkout.AsError(err); ok && de.Kind != checkout.KindInternal {
		m := kindStatus[de.Kind]
		if de.Kind == checkout.KindNotAllowed {
			w.Header().Set("Allow", http.MethodGet)
		}
		// Every route speaks 2025-09-29 so far; a second version will pick its own renderer.
		refuse(w, r, &apiError{status: m.status, Type: m.errType, Code: de.Code, Message: de.Message, Param: param0929(de.Field)})
		return
	}
	switch {
	case errors.Is(r.Context().Err(), context.DeadlineExceeded):
		s.logger.LogAttrs(r.Context(), slog.LevelWarn, "request timed out", slog.String("request_id", requestID(r.Context())), slog.Any("error", err))
		w.Header().Set("Retry-After", "1")
		refuse(w, r, newError(http.StatusServiceUnavailable, typeServiceUnavailable,
			"timeout", "The request did not finish in time; nothing was committed unless a retry with the same Idempotency-Key says so.", ""))
		return
	case r.Context().Err() != nil:
		// The client went away or the server is shutting down; the answer is moot.
		s.logger.LogAttrs(r.Context(), slog.LevelWarn, "request canceled", slog.String("request_id", requestID(r.Context())), slog.Any("error", err))
		refuse(w, r, newError(http.StatusServiceUnavailable, typeServiceUnavailable,
			"request_canceled", "The request was canceled before it finished.", ""))
		return
	case s.unavailable != nil && s.unavailable(err):
		s.logger.LogAttrs(r.Context(), slog.LevelWarn, "database unavailable", slog.String("request_id", requestID(r.Context())), slog.Any("error", err))
		w.Header().Set("Retry-After", "1")
		refuse(w, r, newError(http.StatusServiceUnavailable, typeServiceUnavailable,
			"database_unavailable", "The database cannot be reached right now; retry shortly with the same Idempotency-Key.", ""))
		return
	}
	s.logger.LogAttrs(r.Context(), slog.LevelError, "internal error", slog.String("request_id", requestID(r.Context())), slog.Any("error", err))
	refuse(w, r, newError(http.StatusInternalServerError, typeProcessingError,
		"internal_error", "The server could not process the request. Retry later with the same Idempotency-Key.", ""))
}

// refuse writes e as the response and notes its code for the access log and metrics.
func refuse(w http.ResponseWriter, r *http.Request, e *apiError) {
	infoOf(r).errCode = e.Code
	writeJSON(w, e.status, e)
}
