package httpapi

import (
	"compress/gzip"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// corsAllowHeaders are the request headers an ACP client sends (an MCP client adds
// MCP-Protocol-Version to every call after initialize).
const corsAllowHeaders = "Authorization, Content-Type, API-Version, Idempotency-Key, Request-Id, MCP-Protocol-Version, " +
	"Signature, Timestamp, Accept-Language, User-Agent"

// corsExposeHeaders are the response headers a browser client may read.
const corsExposeHeaders = "Request-Id, Idempotency-Key, Idempotent-Replayed, Retry-After, API-Supported-Versions"

// withCORS lets the configured browser origins call the API and answers their
// preflight requests. With no origins configured it adds nothing.
func withCORS(origins []string) Middleware {
	return func(next http.Handler) http.Handler {
		if len(origins) == 0 {
			return next
		}
		any := slices.Contains(origins, "*")
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			origin := r.Header.Get("Origin")
			if origin == "" || (!any && !slices.Contains(origins, origin)) {
				next.ServeHTTP(w, r)
				return
			}
			h := w.Header()
			h.Add("Vary", "Origin")
			if any {
				h.Set("Access-Control-Allow-Origin", "*")
			} else {
				h.Set("Access-Control-Allow-Origin", origin)
			}
			h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
			if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
				h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
				h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
				h.Set("Access-Control-Max-Age", "600")
				w.WriteHeader(http.StatusNoContent)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

var gzipWriters = sync.Pool{New: func() any { return gzip.NewWriter(io.Discard) }}

// withCompression gzips responses for clients that accept it. Sessions are repetitive
// JSON and shrink several times over.
func withCompression() Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Add("Vary", "Accept-Encoding")
			if !acceptsGzip(r.Header.Get("Accept-Encoding")) || r.Method == http.MethodHead {
				next.ServeHTTP(w, r)
				return
			}
			gz := gzipWriters.Get().(*gzip.Writer)
			gz.Reset(w)
			gw := &gzipResponse{ResponseWriter: w, gz: gz}
			defer func() {
				if gw.started {
					_ = gz.Close()
				}
				gzipWriters.Put(gz)
			}()
			next.ServeHTTP(gw, r)
		})
	}
}

// acceptsGzip reads Accept-Encoding: gzip is accepted unless its quality is 0.
func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
			continue
		}
		for _, p := range strings.Split(params, ";") {
			if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(k, "q") {
				if q, err := strconv.ParseFloat(v, 64); err == nil && q == 0 {
					return false
				}
			}
		}
		return true
	}
	return false
}

// gzipResponse compresses the body once a status is written.
type gzipResponse struct {
	http.ResponseWriter
	gz          *gzip.Writer
	started     bool
	passthrough bool
}

func (g *gzipResponse) WriteHeader(code int) {
	if !g.started && !g.passthrough {
		if g.Header().Get("Content-Encoding") != "" {
			// The handler encoded the body itself.
			g.passthrough = true
		} else {
			g.started = true
			g.Header().Del("Content-Length")
			g.Header().Set("Content-Encoding", "gzip")
		}
	}
	g.ResponseWriter.WriteHeader(code)
}

func (g *gzipResponse) Write(p []byte) (int, error) {
	if !g.started && !g.passthrough {
		g.WriteHeader(http.StatusOK)
	}
	if g.passthrough {
		return g.ResponseWriter.Write(p)
	}
	return g.gz.Write(p)
}

func (g *gzipResponse) Unwrap() http.ResponseWriter { return g.ResponseWriter }
