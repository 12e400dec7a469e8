package httpapi

import (
	"net/http"
	"slices"

	"github.com/klauspost/compress/gzhttp"
	"github.com/klauspost/compress/gzip"
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

// compressionMinSize is the smallest body worth compressing. An ACP error is 80–250
// bytes, of which gzip saves at most 75, and the discovery document is ~770: either
// fits in one TCP segment with its headers as it is, so compressing it costs CPU and
// saves no packet. A session (~1.45 KB here, up to 4.4 KB in the specification's
// examples) takes two segments as it is and one gzipped, to under half. 1 KiB sits
// between the two (docs/PERFORMANCE.md, "Compression").
const compressionMinSize = 1024

// compressionLevel is klauspost's BestSpeed. On a 2 KB session it costs about half the
// CPU of the compress/gzip writer it replaced, whose every Reset also cleared ~0.8 MB of
// tables, for a body 54 bytes larger (818 against 764). Levels 2–5 (gzhttp's default is
// 5) cost 5–10% more CPU to save at most 49 of those bytes, level 6 a third more; the
// session fits in one TCP segment at any of them, so the cheapest wins
// (docs/PERFORMANCE.md, "Compression").
const compressionLevel = gzip.BestSpeed

// compressedContentTypes are the textual bodies the server writes: JSON (sessions,
// carts, errors, MCP answers), the order pages and the Prometheus exposition. Everything
// else passes through, notably MCP's text/event-stream, whose events must reach the
// client as they are flushed rather than wait in a compressor.
var compressedContentTypes = []string{"application/json", "text/html", "text/plain"}

// Compression is the server's response compression (withCompression), for the bench's
// floor server (cmd/acpload), which must compress what it answers as the server does.
func Compression() Middleware { return withCompression() }

// withCompression gzips the responses that pay for it, for clients that accept gzip:
// sessions are repetitive JSON and shrink to 40%. A response with a Content-Encoding of
// its own, one under compressionMinSize, one without a body (204, 304) and one of
// another content type is sent as it is, and so is every answer to HEAD. Every response
// carries Vary: Accept-Encoding.
//
// gzhttp takes a pooled compressor only once a body has reached compressionMinSize,
// after the handler's database work, and gives it back when the response ends, so the
// compressors in use follow the responses being written, not the requests in flight.
func withCompression() Middleware {
	wrap, err := gzhttp.NewWrapper(
		gzhttp.MinSize(compressionMinSize),
		gzhttp.CompressionLevel(compressionLevel),
		gzhttp.ContentTypes(compressedContentTypes),
		// Agents ask for gzip; zstd's encoder holds a window of its own per response,
		// and would need measuring against the memory budget before it is offered.
		gzhttp.EnableZstd(false),
		// Request bodies are read as sent: signatures are over those bytes, and
		// MaxBodyBytes bounds them.
		gzhttp.AllowCompressedRequests(false),
	)
	if err != nil {
		panic("httpapi: gzhttp configuration: " + err.Error()) // constants above: a programming error
	}
	return func(next http.Handler) http.Handler { return wrap(next) }
}
