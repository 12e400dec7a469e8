package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
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
		return nil, invalidRequest("missing_body", "A JSON request body is required.", "")
	}
	if !isJSONContentType(r.Header.Get("Content-Type")) {
		return nil, newError(http.StatusUnsupportedMediaType, typeInvalidRequest, "unsupported_media_type",
			"Content-Type must be application/json.", "")
	}
	return body, nil
}

func isJSONContentType(v string) bool {
	mt, _, err := mime.ParseMediaType(v)
	return err == nil && mt == "application/json"
}

// decodeStrict decodes exactly one JSON object from body into dst: unknown fields,
// wrong types and trailing data are refused with a 400 naming the offending field.
func decodeStrict(body []byte, dst any) error {
	if trimmed := bytes.TrimSpace(body); len(trimmed) == 0 || trimmed[0] != '{' {
		// encoding/json would take null as an empty object.
		return invalidRequest("invalid_type", "The request body must be a JSON object.", "")
	}
	if hasNUL(body) {
		return invalidRequest("invalid_json", "Strings in the request body must not contain the NUL character (\\u0000).", "")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return invalidRequest("invalid_json", "The request body must hold exactly one JSON object.", "")
	}
	return nil
}

// validJSON checks that an optional body is one well-formed JSON value.
func validJSON(body []byte) error {
	if body == nil || json.Valid(body) {
		return nil
	}
	return invalidRequest("invalid_json", "The request body is not valid JSON.", "")
}

func decodeError(err error) error {
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntaxErr):
		return invalidRequest("invalid_json", fmt.Sprintf("The request body is not valid JSON (at byte %d).", syntaxErr.Offset), "")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return invalidRequest("invalid_json", "The request body is truncated JSON.", "")
	case errors.As(err, &typeErr):
		// encoding/json gives the field's path without array indexes, so a param is only
		// given for a top-level field, where the path is exact.
		field, param := typeErr.Field, ""
		if field != "" && !strings.Contains(field, ".") {
			param = "$." + field
		}
		if field == "" {
			field = "the body"
		}
		return invalidRequest("invalid_type", fmt.Sprintf("%s must be of JSON type %s, not %s.", field, jsonType(typeErr.Type.Kind().String()), typeErr.Value), param)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		// encoding/json names the field but not where it sits, so no param is given
		// rather than a wrong one.
		return invalidRequest("unknown_field", fmt.Sprintf("Unknown field %q.", name), "")
	}
	return invalidRequest("invalid_json", "The request body is not valid JSON.", "")
}

// jsonType names a Go kind the way a JSON client thinks of it.
func jsonType(kind string) string {
	switch kind {
	case "string":
		return "string"
	case "struct", "map":
		return "object"
	case "slice", "array":
		return "array"
	case "bool":
		return "boolean"
	}
	return "number"
}

// hasNUL reports whether a JSON text holds a \u0000 escape in a string. PostgreSQL text
// cannot store NUL, so it is refused up front instead of failing at the database.
// Backslashes only occur inside strings in valid JSON, so escapes are walked in pairs.
func hasNUL(body []byte) bool {
	for i := 0; i < len(body); i++ {
		if body[i] == 0 {
			return true
		}
		if body[i] != '\\' || i+1 >= len(body) {
			continue
		}
		if body[i+1] == 'u' && i+5 < len(body) && string(body[i+2:i+6]) == "0000" {
			return true
		}
		i++ // skip the escaped character
	}
	return false
}
