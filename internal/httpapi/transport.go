package httpapi

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/klauspost/compress/gzhttp"
	"github.com/klauspost/compress/gzhttp/writer/gzkp"
	"github.com/klauspost/compress/gzip"

	"github.com/agentic-commerce/agentic-commerce-server/internal/idempotency"
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

// acceptsGzip reports whether withCompression would gzip a response to r that pays for
// it: r names gzip in its (first) Accept-Encoding header with a weight above 0, and is
// not a HEAD. It reads the header as gzhttp does, which compares its own reading
// (TestAcceptsGzipAgreesWithTheMiddleware); a coding is matched ignoring case, "*"
// does not stand for gzip, and a weight that does not parse counts as 0.
func acceptsGzip(r *http.Request) bool {
	if r.Method == http.MethodHead {
		return false
	}
	for coding := range strings.SplitSeq(r.Header.Get("Accept-Encoding"), ",") {
		name, params, _ := strings.Cut(coding, ";")
		if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
			continue
		}
		weight := 1.0
		for param := range strings.SplitSeq(params, ";") {
			param = strings.TrimSpace(param)
			if len(param) >= 2 && strings.EqualFold(param[:2], "q=") {
				var err error
				if weight, err = strconv.ParseFloat(param[2:], 64); err != nil {
					weight = 0
				}
			}
		}
		return weight > 0
	}
	return false
}

// gzipPack is the idempotency.Claim.Pack of a client that accepts gzip: a body that
// withCompression would compress (compressionMinSize) is compressed as it would be,
// with gzhttp's pooled writers at compressionLevel, so that the record keeps the bytes
// sent. A smaller body is kept as it is.
func gzipPack(body []byte) ([]byte, bool) {
	if len(body) < compressionMinSize {
		return body, false
	}
	var buf bytes.Buffer
	buf.Grow(len(body) / 2) // a session compresses to about 40%
	zw := gzkp.NewWriter(&buf, compressionLevel)
	_, err := zw.Write(body)
	if closeErr := zw.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return body, false // cannot happen: a bytes.Buffer does not fail
	}
	return buf.Bytes(), true
}

// plainResponse is r with its body as JSON: decompressed when it was recorded gzipped,
// for a client that does not accept gzip (or MCP, whose answers carry the JSON).
func plainResponse(r idempotency.Response) (idempotency.Response, error) {
	if !r.Gzipped {
		return r, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(r.Body))
	if err != nil {
		return idempotency.Response{}, fmt.Errorf("read a recorded gzip response: %w", err)
	}
	body, err := io.ReadAll(zr)
	if err != nil {
		return idempotency.Response{}, fmt.Errorf("read a recorded gzip response: %w", err)
	}
	return idempotency.Response{Status: r.Status, Body: body}, nil
}
