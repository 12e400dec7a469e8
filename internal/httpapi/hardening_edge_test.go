package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/httpapi"
)

// Regression tests of issue 15 (security hardening), part A: bounded metrics and echoes,
// one limiter in front of every route, the metrics key and the response headers.

// hardeningSeries returns the acp_http_requests_total series of e's /metrics.
func hardeningSeries(e *testEnv, headers ...string) []string {
	e.t.Helper()
	r := e.do(http.MethodGet, "/metrics", nil, headers...)
	if r.status != http.StatusOK {
		e.t.Fatalf("/metrics = %d %s", r.status, r.body)
	}
	var series []string
	sc := bufio.NewScanner(bytes.NewReader(r.body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "acp_http_requests_total{") {
			series = append(series, sc.Text())
		}
	}
	return series
}

// hardeningMethod is a client-invented HTTP method of about 4 KB, unique per i.
func hardeningMethod(i int) string {
	return fmt.Sprintf("M%05d%s", i, strings.Repeat("X", 4096))
}

func TestInventedMethodsDoNotGrowMetricsOrEchoes(t *testing.T) {
	t.Parallel()
	e := mustEnv(t)
	// Before the fix, every request below made a new series (20,000 made 20,004 in the
	// bench) and /metrics grew without bound.
	const n = 300
	for i := range n {
		path := "/nope"
		if i%2 == 1 {
			path = "/checkout_sessions" // a route that exists: 405 rather than 404
		}
		r := e.do(hardeningMethod(i), path, nil)
		if r.status != http.StatusNotFound && r.status != http.StatusMethodNotAllowed {
			t.Fatalf("%s with an invented method = %d %s", path, r.status, r.body)
		}
	}
	series := hardeningSeries(e)
	// unmatched+other+404, unmatched+other+405: nothing else has been requested yet.
	if len(series) > 2 {
		t.Errorf("%d request series after %d invented methods, want 2:\n%s", len(series), n, strings.Join(series, "\n")[:min(2000, len(strings.Join(series, "\n")))])
	}
	for _, s := range series {
		if !strings.Contains(s, `method="other"`) || !strings.Contains(s, `route="unmatched"`) {
			t.Errorf("series %.200s: want method other, route unmatched", s)
		}
	}

	// Neither the 404 nor the 405 body, nor the log, carries the 4 KB method.
	long := hardeningMethod(n)
	r := e.do(long, "/nope", nil)
	m := e.mustError(r, http.StatusNotFound, "not_found", "")
	if msg := m["message"].(string); strings.Contains(msg, long[:100]) || len(msg) > 400 {
		t.Errorf("404 message echoes the method: %.300s", msg)
	}
	r = e.do(long, "/checkout_sessions", nil)
	m = e.mustError(r, http.StatusMethodNotAllowed, "method_not_allowed", "")
	if msg := m["message"].(string); strings.Contains(msg, long[:100]) || len(msg) > 400 {
		t.Errorf("405 message echoes the method: %.300s", msg)
	}
	if strings.Contains(e.logs.String(), long[:100]) {
		t.Errorf("the log carries the invented method")
	}

	// A long path is not echoed in full either.
	longPath := "/" + strings.Repeat("p", 8000)
	m = e.mustError(e.do(http.MethodGet, longPath, nil), http.StatusNotFound, "not_found", "")
	if msg := m["message"].(string); len(msg) > 400 {
		t.Errorf("404 message is %d bytes for an 8000-byte path", len(msg))
	}
	if strings.Contains(e.logs.String(), longPath[:1000]) {
		t.Errorf("the log carries the whole path")
	}
}

func TestEveryResponseForbidsSniffing(t *testing.T) {
	t.Parallel()
	e := mustEnv(t, safetyWithKeys)
	for _, c := range []struct{ method, path string }{
		{http.MethodGet, "/health"},
		{http.MethodGet, "/ready"},
		{http.MethodGet, "/metrics"},
		{http.MethodGet, "/nope"},
		{http.MethodGet, "/orders/ord_nope"},
		{http.MethodPost, "/checkout_sessions"},        // 401
		{http.MethodDelete, "/checkout_sessions/cs_x"}, // 401 before the route is checked
	} {
		r := e.do(c.method, c.path, nil)
		if got := r.header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s %s (%d): X-Content-Type-Options = %q", c.method, c.path, r.status, got)
		}
	}
	r := e.do(http.MethodGet, "/checkout_sessions/cs_none", nil, safetyAuth(safetyKeyA)...)
	if got := r.header.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("authenticated 404: X-Content-Type-Options = %q", got)
	}
}

const (
	hardeningAdminKey   = "admin-key-0123456789abcdef"
	hardeningMetricsKey = "metrics-key-0123456789abcdef"
)

// hardeningSlowLimit allows 3 requests at once and one more every 10 s, so no refill
// blurs a test on a slow machine.
func hardeningSlowLimit(c *httpapi.Config) { c.RateLimit = 0.1; c.RateBurst = 3 }

func hardeningWithAdminAndMetricsKeys(c *httpapi.Config) {
	c.AdminAPIKeys = []string{hardeningAdminKey}
	c.MetricsAPIKeys = []string{hardeningMetricsKey}
}

// hardeningCount429 sends n requests built by req and counts the 429s, each of which must
// be an ACP error with Retry-After.
func hardeningCount429(e *testEnv, n int, req func(i int) (method, path string, headers []string)) int {
	e.t.Helper()
	limited := 0
	for i := range n {
		method, path, headers := req(i)
		r := e.do(method, path, nil, headers...)
		if r.status != http.StatusTooManyRequests {
			continue
		}
		limited++
		e.mustError(r, http.StatusTooManyRequests, "too_many_requests", "")
		if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 1 {
			e.t.Errorf("%s %s: Retry-After = %q", method, path, r.header.Get("Retry-After"))
		}
	}
	return limited
}

func TestLimiterHoldsEveryRoute(t *testing.T) {
	t.Parallel()
	opts := []func(*httpapi.Config){safetyWithKeys, hardeningWithAdminAndMetricsKeys, hardeningSlowLimit}
	e := mustEnv(t, opts...)
	// Before the fix, none of these was limited: the limiter sat on the ACP routes only,
	// so wrong admin keys were all answered 401 and /orders/<random> reached the database.
	for _, c := range []struct {
		name string
		req  func(i int) (string, string, []string)
	}{
		{"wrong admin keys", func(i int) (string, string, []string) {
			return http.MethodGet, "/admin/orders", safetyAuth(fmt.Sprintf("wrong-admin-key-%06d", i))
		}},
		{"wrong agent keys", func(i int) (string, string, []string) {
			return http.MethodGet, "/checkout_sessions/cs_x", safetyAuth(fmt.Sprintf("wrong-agent-key-%06d", i))
		}},
		{"order pages", func(i int) (string, string, []string) {
			return http.MethodGet, fmt.Sprintf("/orders/ord_%d", i), nil
		}},
		{"unmatched routes", func(i int) (string, string, []string) {
			return http.MethodGet, fmt.Sprintf("/nope/%d", i), nil
		}},
		{"invented methods", func(i int) (string, string, []string) {
			return fmt.Sprintf("M%d", i), "/checkout_sessions", nil
		}},
		{"ready", func(int) (string, string, []string) { return http.MethodGet, "/ready", nil }},
		{"metrics without its key", func(int) (string, string, []string) { return http.MethodGet, "/metrics", nil }},
	} {
		// A fresh instance each, so every route starts with a full bucket.
		inst := e.on(e.startServer(time.Minute, opts...))
		if n := hardeningCount429(inst, 10, c.req); n < 5 {
			t.Errorf("%s: %d of 10 requests limited at a burst of 3, want at least 5", c.name, n)
		}
		// The probe a load balancer needs is never refused.
		if r := inst.do(http.MethodGet, "/health", nil); r.status != http.StatusOK {
			t.Errorf("%s: /health while limited = %d", c.name, r.status)
		}
		// The flood was held per address: an authenticated caller still gets through.
		r := inst.do(http.MethodGet, "/checkout_sessions/cs_none", nil, safetyAuth(safetyKeyB)...)
		inst.mustError(r, http.StatusNotFound, "not_found", "")
		r = inst.do(http.MethodGet, "/admin/orders", nil, safetyAuth(hardeningAdminKey)...)
		if r.status != http.StatusOK {
			t.Errorf("%s: admin with its key while the address is limited = %d %s", c.name, r.status, r.body)
		}
	}
}

func TestLimiterMemoryIsBoundedUnderAnAddressFlood(t *testing.T) {
	t.Parallel()
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	e := mustEnv(t, hardeningSlowLimit, hardeningWithAdminAndMetricsKeys, func(c *httpapi.Config) { c.TrustedProxies = loopback })
	const bound = 50
	api(e.server).SetMaxAddressBuckets(bound)
	// Every request from a new address, with a new path and a new method: the worst a
	// flood through a trusted proxy can do.
	const n = 400
	limited := hardeningCount429(e, n, func(i int) (string, string, []string) {
		return fmt.Sprintf("M%d", i), fmt.Sprintf("/nope/%d", i),
			[]string{"X-Forwarded-For", fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)}
	})
	if got := api(e.server).AddressBuckets(); got > bound || got == 0 {
		t.Errorf("limiter holds %d address buckets after %d addresses, want 1..%d", got, n, bound)
	}
	// Past the bound, new addresses share one bucket: the flood is still held.
	if limited < n-bound-10 {
		t.Errorf("%d of %d requests from new addresses limited past a bound of %d buckets", limited, n, bound)
	}
	// The scraper has its own key, hence its own bucket: the flood does not starve it.
	if series := hardeningSeries(e, safetyAuth(hardeningMetricsKey)...); len(series) > 4 {
		t.Errorf("%d request series after the flood", len(series))
	}

	// The addresses of one IPv6 /64 are one client.
	v6 := e.on(e.startServer(time.Minute, hardeningSlowLimit, func(c *httpapi.Config) { c.TrustedProxies = loopback }))
	if n := hardeningCount429(v6, 6, func(i int) (string, string, []string) {
		return http.MethodGet, "/nope", []string{"X-Forwarded-For", fmt.Sprintf("2001:db8:1:2::%x", i+1)}
	}); n != 3 {
		t.Errorf("6 requests from one /64: %d limited, want 3", n)
	}
	// Another /64 has its own bucket.
	if r := v6.do(http.MethodGet, "/nope", nil, "X-Forwarded-For", "2001:db8:1:3::1"); r.status != http.StatusNotFound {
		t.Errorf("another /64 = %d", r.status)
	}

	// Without trusted proxies X-Forwarded-For is the client's own word and ignored.
	direct := e.on(e.startServer(time.Minute, hardeningSlowLimit))
	if n := hardeningCount429(direct, 6, func(i int) (string, string, []string) {
		return http.MethodGet, "/nope", []string{"X-Forwarded-For", fmt.Sprintf("10.0.0.%d", i+1)}
	}); n != 3 {
		t.Errorf("6 requests with forged X-Forwarded-For: %d limited, want 3", n)
	}
	if got := api(direct.server).AddressBuckets(); got != 1 {
		t.Errorf("untrusted X-Forwarded-For made %d buckets, want 1", got)
	}
	// A trusted proxy's own entries are skipped; what the client wrote left of them is not
	// believed past the first untrusted address.
	chain := e.on(e.startServer(time.Minute, hardeningSlowLimit, func(c *httpapi.Config) { c.TrustedProxies = loopback }))
	if n := hardeningCount429(chain, 6, func(i int) (string, string, []string) {
		return http.MethodGet, "/nope", []string{"X-Forwarded-For", fmt.Sprintf("10.9.9.%d, 192.0.2.7, 127.0.0.5", i+1)}
	}); n != 3 {
		t.Errorf("6 requests from 192.0.2.7 behind two proxies: %d limited, want 3", n)
	}
}

func TestMetricsNeedTheirKey(t *testing.T) {
	t.Parallel()
	e := mustEnv(t, safetyWithKeys, hardeningWithAdminAndMetricsKeys)
	e.mustError(e.do(http.MethodGet, "/metrics", nil), http.StatusUnauthorized, "missing_authorization", "")
	for _, key := range []string{"wrong-metrics-key-0123456789", safetyKeyA, hardeningAdminKey} {
		r := e.do(http.MethodGet, "/metrics", nil, safetyAuth(key)...)
		e.mustError(r, http.StatusUnauthorized, "invalid_api_key", "")
		if r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("401 without WWW-Authenticate")
		}
	}
	r := e.do(http.MethodGet, "/metrics", nil, safetyAuth(hardeningMetricsKey)...)
	if r.status != http.StatusOK || !bytes.Contains(r.body, []byte("acp_http_requests_total")) {
		t.Errorf("/metrics with its key = %d %.200s", r.status, r.body)
	}
	// The metrics key opens nothing else.
	e.mustError(e.do(http.MethodGet, "/admin/orders", nil, safetyAuth(hardeningMetricsKey)...), http.StatusUnauthorized, "invalid_api_key", "")
	e.mustError(e.do(http.MethodGet, "/checkout_sessions/cs_x", nil, safetyAuth(hardeningMetricsKey)...), http.StatusUnauthorized, "invalid_api_key", "")
}

func TestBareKeyIdentityIsKeyedAndLong(t *testing.T) {
	t.Parallel()
	const bare = "bare-key-0123456789abcdef"
	e := mustEnv(t, func(c *httpapi.Config) { c.APIKeys = []httpapi.APIKey{{Key: bare}} })
	s := e.mustSession(e.do(http.MethodPost, "/checkout_sessions", map[string]any{"items": items("item_123", 1)}, safetyAuth(bare)...), http.StatusCreated)
	var owner string
	if err := e.pool.QueryRow(context.Background(), `SELECT owner FROM checkout_sessions WHERE id = $1`, s["id"]).Scan(&owner); err != nil {
		t.Fatal(err)
	}
	want := httpapi.CallerIdentity([]byte(testFingerprintKey), bare)
	if owner != want {
		t.Errorf("owner = %q, want %q", owner, want)
	}
	// Before the fix: "key_" and 64 bits of an unkeyed SHA-256, which anyone holding the
	// database could test guessed keys against.
	unkeyed := sha256.Sum256([]byte(bare))
	if strings.Contains(owner, hex.EncodeToString(unkeyed[:8])) {
		t.Errorf("owner %q is the unkeyed digest of the key", owner)
	}
	if len(owner) != len("key_")+32 {
		t.Errorf("owner %q: want key_ and 128 bits in hex", owner)
	}
	if other := httpapi.CallerIdentity([]byte("another-secret-0123456789abcdef0123"), bare); other == owner {
		t.Errorf("the identity does not depend on the secret")
	}
}
