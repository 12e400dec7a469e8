package httpapi

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/agentic-commerce/agentic-commerce-server/internal/acp"
	"github.com/agentic-commerce/agentic-commerce-server/internal/acp/v20250929"
	"github.com/agentic-commerce/agentic-commerce-server/internal/acp/v20260417"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/payment"
)

// API is one ACP API version at the edge: everything the handlers need that a version
// spells its own way. Routing, authentication, signatures, idempotency and the services
// are the same for every version; a new version is a package in internal/acp that
// implements API, and one line in versions.
type API interface {
	// DecodeCreate, DecodeUpdate, DecodeComplete and DecodeDelegate turn a request body
	// into domain values, refusing it with an *acp.Error (or a domain error).
	DecodeCreate(body []byte) (checkout.Changes, error)
	DecodeUpdate(body []byte) (checkout.Changes, error)
	DecodeComplete(body []byte) (checkout.Completion, error)
	DecodeDelegate(body []byte) (*payment.Delegation, error)
	// DecodeCancel decodes the optional body of cancel (nil: none was sent) into the
	// intent trace to record (nil: none).
	DecodeCancel(body []byte) (*checkout.IntentTrace, error)
	// EncodeSession renders a session (with its order after complete) as a response body.
	EncodeSession(v checkout.View, links []acp.Link) any
	// EncodeToken renders a vault token as the delegate_payment response body.
	EncodeToken(t payment.Token, idempotencyKey string) any
	// DomainError renders a domain error as a refusal: the version's status and type for
	// its kind, and its field as the version's JSONPath.
	DomainError(de *checkout.Error) *acp.Error
	// EncodeError is the version's Error body of a refusal on the checkout routes (and
	// everywhere else), EncodeDelegateError on delegate_payment, whose Error may differ.
	EncodeError(e *acp.Error) any
	EncodeDelegateError(e *acp.Error) any
	// IdempotencyConflictStatus is the status of a key reused with another body.
	IdempotencyConflictStatus() int
	// RequiresIdempotencyKey says whether every POST must carry an Idempotency-Key.
	RequiresIdempotencyKey() bool
}

// Link is a legal or policy link shown with every session.
type Link = acp.Link

// versions is the version table: the API-Version header value → its wire format.
var versions = map[string]API{
	v20250929.Version: v20250929.API{},
	v20260417.Version: v20260417.API{},
}

// supportedVersions lists the API-Version values of the table, newest first (the order
// the Error schema asks for; the values are dates, so they sort as strings).
var supportedVersions = func() []string {
	vs := make([]string, 0, len(versions))
	for v := range versions {
		vs = append(vs, v)
	}
	slices.Sort(vs)
	slices.Reverse(vs)
	return vs
}()

// defaultVersion serves requests without API-Version: the oldest supported version,
// since early clients and the walk-throughs omit the header (docs/decisions.md).
var defaultVersion = supportedVersions[len(supportedVersions)-1]

// versionOf is the wire format of the request: its API-Version's, or the default
// version's where there is none (the admin API, errors before withAPIVersion).
func versionOf(r *http.Request) API {
	if api, ok := versions[infoOf(r).version]; ok {
		return api
	}
	return versions[defaultVersion]
}

// withAPIVersion validates API-Version and picks the request's entry of the version
// table. Unless required, a missing header is served as the default version.
func withAPIVersion(required bool) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			v := strings.TrimSpace(r.Header.Get("API-Version"))
			switch {
			case v == "" && required:
				refuseVersion(w, r, acp.InvalidRequest("missing_api_version", "The API-Version header is required.", ""))
				return
			case v == "":
				v = defaultVersion
			case versions[v] == nil:
				refuseVersion(w, r, acp.InvalidRequest("unsupported_api_version", fmt.Sprintf("API-Version %q is not supported.", v), ""))
				return
			}
			infoOf(r).version = v
			next.ServeHTTP(w, r)
		})
	}
}

// refuseVersion answers a missing or unsupported API-Version with the supported
// versions: in the body where the version's Error has a field for them, and always in
// the API-Supported-Versions header (newest first, comma-separated).
func refuseVersion(w http.ResponseWriter, r *http.Request, e *acp.Error) {
	e.SupportedVersions = supportedVersions
	w.Header().Set("API-Supported-Versions", strings.Join(supportedVersions, ", "))
	refuse(w, r, e)
}
