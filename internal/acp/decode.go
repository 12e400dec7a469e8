package acp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
)

// DecodeStrict decodes exactly one JSON object from body into dst: unknown fields (names
// are case-sensitive), duplicate keys, wrong types and trailing data are refused with a
// 400 naming the offending field. dst must be a pointer.
func DecodeStrict(body []byte, dst any) error {
	if trimmed := bytes.TrimSpace(body); len(trimmed) == 0 || trimmed[0] != '{' {
		// encoding/json would take null as an empty object.
		return InvalidRequest("invalid_type", "The request body must be a JSON object.", "")
	}
	if HasNUL(body) {
		return InvalidRequest("invalid_json", "Strings in the request body must not contain the NUL character (\\u0000).", "")
	}
	if err := checkKeys(body, reflect.TypeOf(dst)); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return InvalidRequest("invalid_json", "The request body must hold exactly one JSON object.", "")
	}
	return nil
}

// ValidJSON checks that an optional body is one well-formed JSON value.
func ValidJSON(body []byte) error {
	if body == nil || json.Valid(body) {
		return nil
	}
	return InvalidRequest("invalid_json", "The request body is not valid JSON.", "")
}

func decodeError(err error) error {
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntaxErr):
		return InvalidRequest("invalid_json", fmt.Sprintf("The request body is not valid JSON (at byte %d).", syntaxErr.Offset), "")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return InvalidRequest("invalid_json", "The request body is truncated JSON.", "")
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
		return InvalidRequest("invalid_type", fmt.Sprintf("%s must be of JSON type %s, not %s.", field, jsonType(typeErr.Type.Kind().String()), typeErr.Value), param)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		// checkKeys finds unknown fields first, with their path; this is a backstop.
		// encoding/json names the field but not where it sits, so no param is given
		// rather than a wrong one.
		return InvalidRequest("unknown_field", fmt.Sprintf("Unknown field %q.", name), "")
	}
	return InvalidRequest("invalid_json", "The request body is not valid JSON.", "")
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

// HasNUL reports whether a JSON text holds a \u0000 escape in a string. PostgreSQL text
// cannot store NUL, so it is refused up front instead of failing at the database.
// Backslashes only occur inside strings in valid JSON, so escapes are walked in pairs.
func HasNUL(body []byte) bool {
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

// Required is a required field of a request, by its JSONPath, and whether the request
// has it.
type Required struct {
	Path    string
	Present bool
}

// RequireFields refuses the first absent required field with a 400 naming it.
func RequireFields(fields ...Required) error {
	for _, f := range fields {
		if !f.Present {
			return InvalidRequest("missing", strings.TrimPrefix(f.Path, "$.")+" is required.", f.Path)
		}
	}
	return nil
}
