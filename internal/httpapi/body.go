package httpapi

import (
	"bytes"
	"mime"
	"net/http"

	"github.com/agentic-commerce/agentic-commerce-server/internal/acp"
)

// bodyRule says whether an endpoint needs a JSON body or may go without one.
type bodyRule int

const (
	bodyRequired bodyRule = iota
	// bodyOptional accepts no body or any JSON value (cancel: newer clients may send
	// {intent_trace}, which servers must accept; checklist A7).
	bodyOptional
)

// readBody returns the request body, read once under the size limit, and checks its
// content type. The raw bytes are what signatures and idempotency hashes cover.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, rule bodyRule) ([]byte, error) {
	body, err := s.rawBody(w, r)
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if rule == bodyOptional {
			return nil, nil
		}
		return nil, acp.InvalidRequest("missing_body", "A JSON request body is required.", "")
	}
	if !isJSONContentType(r.Header.Get("Content-Type")) {
		return nil, acp.NewError(http.StatusUnsupportedMediaType, acp.TypeInvalidRequest, "unsupported_media_type",
			"Content-Type must be application/json.", "")
	}
	return body, nil
}

func isJSONContentType(v string) bool {
	mt, _, err := mime.ParseMediaType(v)
	return err == nil && mt == "application/json"
}

// decodeBody reads the body and decodes it with one of the version's decoders.
func decodeBody[T any](s *Server, w http.ResponseWriter, r *http.Request, rule bodyRule, decode func([]byte) (T, error)) (T, error) {
	body, err := s.readBody(w, r, rule)
	if err != nil {
		var zero T
		return zero, err
	}
	return decode(body)
}
