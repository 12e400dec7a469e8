package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gorilla/mux"

	"github.com/agentic-commerce/agentic-commerce-server/internal/acp"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
)

// Middleware wraps a handler.
type Middleware func(http.Handler) http.Handler

// chain applies middlewares so that the first one listed is the outermost.
func chain(h http.Handler, mws ...Middleware) http.Handler {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}

type ctxKey int

const ctxRequestInfo ctxKey = 0

// requestInfo is filled in as a request travels inward, and read by the access log on
// the way out.
type requestInfo struct {
	id    string
	route string
	// caller is the authenticated identity ("" on an open server); authErr says why
	// authentication failed, answered by withRequireAuth.
	caller  string
	authErr *acp.Error
	// limitKey is the rate limiter's bucket of an authenticated caller ("": the client
	// address's).
	limitKey string
	// The body, read once by rawBody.
	body     []byte
	bodyErr  error
	bodyRead bool
	version  string
	// errCode is the ACP error code of a refused request, for the log and metrics.
	errCode string
	// deadline is when REQUEST_TIMEOUT ends the request (zero: never), for the MCP
	// tools, whose context the SDK detaches from the request's (mcp.go).
	deadline time.Time
}

// infoOf returns the request's info; requests that did not pass withRequestHeaders
// (none in production) get an empty one.
func infoOf(r *http.Request) *requestInfo {
	if info, ok := r.Context().Value(ctxRequestInfo).(*requestInfo); ok {
		return info
	}
	return &requestInfo{}
}

func requestID(ctx context.Context) string {
	if info, ok := ctx.Value(ctxRequestInfo).(*requestInfo); ok {
		return info.id
	}
	return ""
}

// maxRequestIDLength bounds the echoed Request-Id so a client cannot bloat logs.
const maxRequestIDLength = 200

// withRequestHeaders echoes Request-Id (generating one when absent) and Idempotency-Key
// on every response, errors included (checklist A1), and tells browsers not to guess
// content types: a JSON error that echoes client input must never be sniffed as HTML.
func withRequestHeaders() Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Content-Type-Options", "nosniff")
			id := r.Header.Get("Request-Id")
			if id == "" || len(id) > maxRequestIDLength {
				id = checkout.NewID("req_")
			}
			w.Header().Set("Request-Id", id)
			if key := r.Header.Get("Idempotency-Key"); key != "" && len(key) <= maxIdempotencyKeyLength {
				w.Header().Set("Idempotency-Key", key)
			}
			info := &requestInfo{id: id}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxRequestInfo, info)))
		})
	}
}

// statusRecorder remembers the status and size of a response for the access log.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += n
	return n, err
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// withAccessLog writes one structured line per request and counts it in the metrics.
// Bodies are never logged: they carry personal data and, on the payment endpoints,
// card data.
func (s *Server) withAccessLog() Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			rec := &statusRecorder{ResponseWriter: w}
			next.ServeHTTP(rec, r)
			elapsed := time.Since(start)
			info := infoOf(r)
			route := "unmatched"
			if info.route != "" {
				route = info.route
			}
			if rec.status == 0 {
				rec.status = http.StatusOK
			}
			s.metrics.ObserveRequest(route, r.Method, rec.status, elapsed)
			attrs := []slog.Attr{
				slog.String("request_id", info.id),
				slog.String("method", clip(r.Method, maxEchoedMethod)),
				slog.String("route", route),
				slog.String("path", clip(r.URL.Path, maxEchoedPath)),
				slog.Int("status", rec.status),
				slog.Int("bytes", rec.bytes),
				slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
			}
			if info.errCode != "" {
				s.metrics.Refusal(info.errCode)
				attrs = append(attrs, slog.String("error_code", info.errCode))
			}
			if info.caller != "" {
				attrs = append(attrs, slog.String("caller", info.caller))
			}
			level := slog.LevelInfo
			if rec.status >= 500 {
				level = slog.LevelError
			}
			// The record is built here rather than by LogAttrs, which asks the runtime for
			// its caller's program counter on every call (0.7% of the server's samples in a
			// profile of the bench's flow) for a source line the access log never shows.
			if h := s.logger.Handler(); h.Enabled(r.Context(), level) {
				record := slog.NewRecord(time.Now(), level, "request", 0)
				record.AddAttrs(attrs...)
				_ = h.Handle(r.Context(), record)
			}
		})
	}
}

// Bounds of the method and path written into logs and error messages: both are whatever
// the client sent (a method can be 60 KB), and echoing them unbounded lets anyone bloat
// the logs.
const (
	maxEchoedMethod = 16
	maxEchoedPath   = 256
)

// clip returns s cut to at most n bytes (on a rune boundary, marked with "…").
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strings.ToValidUTF8(s[:cut], "") + "…"
}

// withRecovery turns a panic into a logged 500 ACP error instead of a dropped connection.
func (s *Server) withRecovery() Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				if v := recover(); v != nil {
					if v == http.ErrAbortHandler {
						panic(v)
					}
					s.writeError(w, r, fmt.Errorf("panic: %v\n%s", v, debug.Stack()))
				}
			}()
			next.ServeHTTP(w, r)
		})
	}
}

// recordRoute stores the matched route template for the access log. It runs as router
// middleware, i.e. only once a route has matched.
func recordRoute(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if info, ok := r.Context().Value(ctxRequestInfo).(*requestInfo); ok {
			if tpl, err := mux.CurrentRoute(r).GetPathTemplate(); err == nil {
				info.route = tpl
			}
		}
		next.ServeHTTP(w, r)
	})
}

// withSanePath answers 404 for paths that cannot name anything here (invalid UTF-8 or
// NUL), before they reach a router or a database that would choke on them.
func (s *Server) withSanePath() Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !utf8.ValidString(r.URL.Path) || strings.ContainsRune(r.URL.Path, 0) {
				s.notFound(w, r)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// withTimeout bounds each request's context, so a slow or cut database link turns into a
// clean 503 instead of a request hanging until the write timeout.
func withTimeout(d time.Duration) Middleware {
	return func(next http.Handler) http.Handler {
		if d <= 0 {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithTimeout(r.Context(), d)
			defer cancel()
			infoOf(r).deadline, _ = ctx.Deadline()
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}
