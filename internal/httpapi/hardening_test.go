package httpapi_test

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
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
