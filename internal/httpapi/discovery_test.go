package httpapi

import (
	"encoding/json"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/agentic-commerce/agentic-commerce-server/internal/acpspec"
)

// discoveryServer is a server with API keys, so that an open discovery document is not
// open only because nothing is locked. It needs no storage: the document is built at start.
func discoveryServer(t *testing.T, cfg Config) *httptest.Server {
	t.Helper()
	cfg.APIKeys = []APIKey{{Name: "agent", Key: "sk_agent"}}
	srv := httptest.NewServer(New(cfg, Deps{Logger: slog.New(slog.DiscardHandler)}))
	t.Cleanup(srv.Close)
	return srv
}

func discoveryRequest(t *testing.T, srv *httptest.Server, method string, headers ...string) (*http.Response, []byte) {
	t.Helper()
	return roundTrip(t, srv, method, discoveryPath, headers...)
}

func TestDiscoveryDocumentIsOpenCacheableAndValid(t *testing.T) {
	srv := discoveryServer(t, Config{PublicBaseURL: "https://shop.example/"})
	schema := acpspec.MustLoad(t, "2026-04-17", "schema.agentic_checkout.json")
	// No key, a wrong key, and the right one: the document is read before an agent has a key.
	for _, auth := range []string{"", "Bearer sk_wrong", "Bearer sk_agent"} {
		resp, body := discoveryRequest(t, srv, http.MethodGet, "Authorization", auth)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("Authorization %q: status = %d; body: %s", auth, resp.StatusCode, body)
		}
		if got := resp.Header.Get("Cache-Control"); got != "public, max-age=3600" {
			t.Errorf("Cache-Control = %q", got)
		}
		if got := resp.Header.Get("Content-Type"); got != "application/json" {
			t.Errorf("Content-Type = %q", got)
		}
		schema.MustValidate(t, "DiscoveryResponse", body)

		var doc discoveryDocument
		if err := json.Unmarshal(body, &doc); err != nil {
			t.Fatal(err)
		}
		want := slices.Sorted(maps.Keys(versions))
		if !slices.Equal(doc.Protocol.SupportedVersions, want) {
			t.Errorf("supported_versions = %v, want the version table oldest first %v", doc.Protocol.SupportedVersions, want)
		}
		if doc.Protocol.Version != want[len(want)-1] {
			t.Errorf("version = %q, want the newest, %q", doc.Protocol.Version, want[len(want)-1])
		}
		if doc.APIBaseURL != "https://shop.example" {
			t.Errorf("api_base_url = %q", doc.APIBaseURL)
		}
		if !slices.Equal(doc.Transports, []string{"rest", "mcp"}) {
			t.Errorf("transports = %v", doc.Transports)
		}
		if !slices.Equal(doc.Capabilities.Services, []string{"checkout", "delegate_payment"}) {
			t.Errorf("services = %v", doc.Capabilities.Services)
		}
	}
}

func TestDiscoveryOtherMethodsAre405(t *testing.T) {
	srv := discoveryServer(t, Config{PublicBaseURL: "https://shop.example"})
	for _, m := range []string{http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete} {
		resp, _ := discoveryRequest(t, srv, m)
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != http.MethodGet {
			t.Errorf("%s: status = %d, Allow = %q; want 405, GET", m, resp.StatusCode, resp.Header.Get("Allow"))
		}
	}
}

func TestDiscoveryIsRateLimited(t *testing.T) {
	srv := discoveryServer(t, Config{PublicBaseURL: "https://shop.example", RateLimit: 0.1, RateBurst: 2})
	var statuses []int
	for range 3 {
		resp, _ := discoveryRequest(t, srv, http.MethodGet)
		statuses = append(statuses, resp.StatusCode)
		if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
	}
	if !slices.Equal(statuses, []int{200, 200, 429}) {
		t.Errorf("statuses = %v, want 200 200 429", statuses)
	}
}

func TestDiscoveryNeedsABaseURL(t *testing.T) {
	srv := discoveryServer(t, Config{})
	if resp, body := discoveryRequest(t, srv, http.MethodGet); resp.StatusCode != http.StatusNotFound {
		t.Errorf("status = %d, want 404 without PUBLIC_BASE_URL; body: %s", resp.StatusCode, body)
	}
}

// TestDiscoveryNamesCartsWhenServed: a server with carts advertises them (CART-RFC §6),
// and the document still validates.
func TestDiscoveryNamesCartsWhenServed(t *testing.T) {
	body := newDiscovery("https://shop.example", true)
	acpspec.MustLoad(t, "2026-04-17", "schema.agentic_checkout.json").MustValidate(t, "DiscoveryResponse", body)
	var doc discoveryDocument
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(doc.Capabilities.Services, []string{"checkout", "delegate_payment", "carts"}) {
		t.Errorf("services = %v", doc.Capabilities.Services)
	}
}
