package v20250929

import (
	"net/http"

	"github.com/agentic-commerce/agentic-commerce-server/internal/acp"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
)

// errorBody is the flat 2025-09-29 Error. supported_versions is not in its schema: it is
// the 2026-04-17 field, sent with version errors as a documented extension.
type errorBody struct {
	Type              string   `json:"type"`
	Code              string   `json:"code"`
	Message           string   `json:"message"`
	Param             string   `json:"param,omitempty"`
	SupportedVersions []string `json:"supported_versions,omitempty"`
}

// EncodeError renders a refusal as a 2025-09-29 Error body.
func (API) EncodeError(e *acp.Error) any {
	return errorBody{Type: e.Type, Code: e.Code, Message: e.Message, Param: e.Param, SupportedVersions: e.SupportedVersions}
}

// kindStatus is the one table from domain error kinds to HTTP statuses and ACP types.
var kindStatus = map[checkout.Kind]struct {
	status  int
	errType string
}{
	checkout.KindInvalid:     {http.StatusBadRequest, acp.TypeInvalidRequest},
	checkout.KindNotFound:    {http.StatusNotFound, acp.TypeInvalidRequest},
	checkout.KindNotAllowed:  {http.StatusMethodNotAllowed, acp.TypeInvalidRequest},
	checkout.KindUnavailable: {http.StatusServiceUnavailable, acp.TypeServiceUnavailable},
	checkout.KindInternal:    {http.StatusInternalServerError, acp.TypeProcessingError},
	checkout.KindConflict:    {http.StatusConflict, acp.TypeInvalidRequest},
	checkout.KindDeclined:    {http.StatusBadRequest, acp.TypeProcessingError},
}

// DomainError renders a domain error: its kind gives the status and type, its field the
// 2025-09-29 JSONPath in param. The caller keeps KindInternal errors to itself (a
// generic 500); this renders them too, so the table is total.
func (API) DomainError(de *checkout.Error) *acp.Error {
	m, ok := kindStatus[de.Kind]
	if !ok {
		m = kindStatus[checkout.KindInternal]
	}
	return acp.NewError(m.status, m.errType, de.Code, de.Message, pathOf(de.Field))
}
