package httpapi

import (
	"net/http"
	"slices"
)

// discoveryPath is where agents look for the discovery document (RFC 8615, DSC-RFC §4.1).
const discoveryPath = "/.well-known/acp.json"

// discoveryCacheControl is the caching DSC-RFC §4.1 asks for: public, at least an hour.
const discoveryCacheControl = "public, max-age=3600"

// discoveryDocument is the 2026-04-17 DiscoveryResponse: what an agent may know before it
// has a key. It names nothing merchant-specific (DSC-RFC §7).
type discoveryDocument struct {
	Protocol     discoveryProtocol     `json:"protocol"`
	APIBaseURL   string                `json:"api_base_url"`
	Transports   []string              `json:"transports"`
	Capabilities discoveryCapabilities `json:"capabilities"`
}

type discoveryProtocol struct {
	Name              string   `json:"name"`
	Version           string   `json:"version"`
	SupportedVersions []string `json:"supported_versions"`
}

type discoveryCapabilities struct {
	Services []string `json:"services"`
}

// newDiscovery renders the discovery document once: it lists the version table (oldest
// first, as the document asks, unlike the Error's supported_versions) and the services
// served on every instance (carts when the server has them), and changes only with a
// new build or PUBLIC_BASE_URL.
func newDiscovery(baseURL string, carts bool) []byte {
	services := []string{"checkout", "delegate_payment"}
	if carts {
		services = append(services, "carts")
	}
	oldestFirst := slices.Clone(supportedVersions)
	slices.Reverse(oldestFirst)
	body, err := encodeJSON(discoveryDocument{
		Protocol: discoveryProtocol{
			Name: "acp", Version: oldestFirst[len(oldestFirst)-1], SupportedVersions: oldestFirst,
		},
		APIBaseURL: baseURL,
		// Both bindings of the checkout API are served: REST and MCP at /mcp.
		Transports: []string{"rest", "mcp"},
		// Orders are told to agents inside sessions and webhooks, not by an API of theirs
		// here (docs/decisions.md).
		Capabilities: discoveryCapabilities{Services: services},
	})
	if err != nil {
		panic(err) // strings and slices of strings always encode
	}
	return body
}

// discovery serves the discovery document: no authentication (it is read before an agent
// has a key), limited like every route but /health.
func discovery(doc []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", discoveryCacheControl)
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(doc)
	}
}
