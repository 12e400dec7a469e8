// Package httpapi is the HTTP adapter: the router, the ACP handlers, middleware, and the
// version table (versions.go) that gives each request the wire format of its API-Version
// (internal/acp/<version>).
package httpapi

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"

	"github.com/agentic-commerce/agentic-commerce-server/internal/acp"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/idempotency"
	"github.com/agentic-commerce/agentic-commerce-server/internal/metrics"
	"github.com/agentic-commerce/agentic-commerce-server/internal/payment"
)

// Deps are the server's collaborators.
type Deps struct {
	Sessions checkout.SessionService
	// Carts serves the cart API of the versions that have one (nil: no carts, and the
	// discovery document does not name them).
	Carts       checkout.CartService
	Vault       payment.VaultService
	Idempotency idempotency.Store
	// Replays remembers accepted request signatures in storage shared by every instance,
	// so a signed request is served once (nil: replays are not detected).
	Replays SignatureReplays
	// Orders serves the merchant's order API and the order pages (nil: neither).
	Orders checkout.OrderService
	// Consents serves the merchant's stored marketing decisions on the admin API (nil:
	// not served).
	Consents checkout.ConsentReader
	// Discounts serves the merchant's discount API under /admin/discounts (nil: none).
	Discounts checkout.DiscountService
	// Metrics, when not nil, is served on /metrics and fed by every request.
	Metrics *metrics.Metrics
	// Unavailable classifies storage errors that mean "the database cannot be reached"
	// (answered 503 and retried by clients) apart from bugs (500).
	Unavailable func(error) bool
	// Ready reports whether the instance can serve traffic (database reachable, schema
	// current); /ready answers 503 while it returns an error.
	Ready  func(context.Context) error
	Logger *slog.Logger
}

// Config holds what the HTTP layer needs beyond its dependencies.
type Config struct {
	// MaxBodyBytes bounds every request body; larger bodies get 413.
	MaxBodyBytes int64
	// Links are shown on every session (terms of use, privacy policy, ...).
	Links []Link
	// APIKeys turns on Bearer authentication of every ACP endpoint when not empty.
	APIKeys []APIKey
	// SigningSecrets turns on request signature checks when not empty; several
	// secrets are accepted at once during a rotation.
	SigningSecrets [][]byte
	// RateLimit is the sustained requests per second per caller (0: no limit) and
	// RateBurst the bucket size. Authenticated callers have a bucket per identity, all
	// other requests one per client address.
	RateLimit float64
	RateBurst int
	// TrustedProxies are the peers whose X-Forwarded-For names the client address (none:
	// the header is ignored, the peer is the client).
	TrustedProxies []netip.Prefix
	// MetricsAPIKeys, when not empty, are the bearer keys /metrics requires (several
	// during a rotation); empty, /metrics is open.
	MetricsAPIKeys []string
	// CORSAllowedOrigins are the browser origins allowed to call ("*" for any).
	CORSAllowedOrigins []string
	// RequireAPIVersion refuses requests without an API-Version header.
	RequireAPIVersion bool
	// AdminAPIKeys open the merchant's order API under /admin (empty: it is off).
	AdminAPIKeys []string
	// CardFingerprintKey keys what the idempotency record keeps of card data and the
	// identities of API keys given without a name.
	CardFingerprintKey []byte
	// RequestTimeout bounds the work of one request (0: no bound).
	RequestTimeout time.Duration
	// PublicBaseURL is the server's public URL, the api_base_url of the discovery
	// document (empty: /.well-known/acp.json is not served).
	PublicBaseURL string
}

// Server serves the ACP endpoints and the health probes.
type Server struct {
	cfg         Config
	sessions    checkout.SessionService
	carts       checkout.CartService
	vault       payment.VaultService
	idempotency idempotency.Store
	replays     SignatureReplays
	ready       func(context.Context) error
	logger      *slog.Logger
	orders      checkout.OrderService
	consents    checkout.ConsentReader
	discounts   checkout.DiscountService
	metrics     *metrics.Metrics
	keys        keyring
	adminKeys   keyring
	metricsKeys keyring
	// callerLimiter holds the buckets of authenticated callers (as many as configured
	// identities), addrLimiter those of client addresses (bounded).
	callerLimiter *rateLimiter
	addrLimiter   *rateLimiter
	fingerprint   payment.Fingerprinter
	unavailable   func(error) bool
	draining      atomic.Bool
	handler       http.Handler
	// routers are the server's routers, the root and the admin API's, for Routes.
	routers []*mux.Router
}

// delegatePaymentPath is the delegate_payment route, whose refusals have an Error of
// their own.
const delegatePaymentPath = "/agentic_commerce/delegate_payment"

// New builds the server.
func New(cfg Config, d Deps) *Server {
	if cfg.Links == nil {
		cfg.Links = []Link{}
	}
	s := &Server{
		cfg: cfg, sessions: d.Sessions, carts: d.Carts, vault: d.Vault, idempotency: d.Idempotency, ready: d.Ready, logger: d.Logger,
		orders: d.Orders, consents: d.Consents, discounts: d.Discounts, metrics: d.Metrics, fingerprint: idempotencyFingerprinter(cfg.CardFingerprintKey),
		unavailable:   d.Unavailable,
		keys:          newKeyring(cfg.APIKeys, cfg.CardFingerprintKey),
		adminKeys:     newNamedKeyring("admin", cfg.AdminAPIKeys),
		metricsKeys:   newNamedKeyring("metrics", cfg.MetricsAPIKeys),
		callerLimiter: newRateLimiter(cfg.RateLimit, cfg.RateBurst, math.MaxInt),
		addrLimiter:   newRateLimiter(cfg.RateLimit, cfg.RateBurst, maxAddressBuckets),
		replays:       d.Replays,
	}

	root := mux.NewRouter()
	s.routers = append(s.routers, root)
	root.Use(recordRoute)
	root.NotFoundHandler = http.HandlerFunc(s.notFound)
	root.MethodNotAllowedHandler = http.HandlerFunc(s.methodNotAllowed(root))
	root.HandleFunc("/health", s.health).Methods(http.MethodGet, http.MethodHead)
	root.HandleFunc("/ready", s.readiness).Methods(http.MethodGet, http.MethodHead)
	if cfg.PublicBaseURL != "" {
		root.HandleFunc(discoveryPath, discovery(newDiscovery(strings.TrimRight(cfg.PublicBaseURL, "/"), d.Carts != nil))).Methods(http.MethodGet)
	}
	if d.Metrics != nil {
		root.Handle("/metrics", s.withMetricsAuth()(d.Metrics.Handler())).Methods(http.MethodGet)
	}
	if d.Orders != nil {
		root.HandleFunc("/orders/{id}", s.orderPage).Methods(http.MethodGet, http.MethodHead)
		if len(cfg.AdminAPIKeys) > 0 {
			// Authentication wraps the whole /admin tree, so even its 404s need a key
			// and reveal nothing about which routes exist.
			admin := mux.NewRouter()
			s.routers = append(s.routers, admin)
			s.adminRoutes(admin.PathPrefix("/admin").Subrouter())
			admin.NotFoundHandler = http.HandlerFunc(s.notFound)
			root.PathPrefix("/admin").Handler(s.withAdminAuth()(admin))
		}
	}

	// The MCP binding: authenticated like the ACP routes (on the connection, the binding
	// says), its version and idempotency key read from each call's meta (mcp.go). It
	// is inside the same outer chain, so rate limits, the timeout, logs and metrics are
	// those of REST.
	root.Handle(mcpPath, withRequireAuth()(s.newMCPHandler())).Methods(http.MethodPost)

	acp := root.NewRoute().Subrouter()
	// Fixed order: may they (who is calling and how often was settled before routing),
	// which version, is the body theirs (signature), has it run before (idempotency).
	for _, mw := range []Middleware{
		withRequireAuth(),
		withAPIVersion(cfg.RequireAPIVersion),
		s.withSignature(),
		s.withIdempotency(),
	} {
		acp.Use(mux.MiddlewareFunc(mw))
	}
	acp.NotFoundHandler = root.NotFoundHandler
	acp.MethodNotAllowedHandler = root.MethodNotAllowedHandler
	acp.HandleFunc("/checkout_sessions", s.createSession).Methods(http.MethodPost)
	acp.HandleFunc("/checkout_sessions/{id}", s.getSession).Methods(http.MethodGet)
	acp.HandleFunc("/checkout_sessions/{id}", s.updateSession).Methods(http.MethodPost)
	acp.HandleFunc("/checkout_sessions/{id}/cancel", s.cancelSession).Methods(http.MethodPost)
	acp.HandleFunc("/checkout_sessions/{id}/complete", s.completeSession).Methods(http.MethodPost)
	acp.HandleFunc(delegatePaymentPath, s.delegatePayment).Methods(http.MethodPost)
	if d.Carts != nil {
		s.cartRoutes(acp)
	}

	// Fixed order, outermost first: every response, a panic's included, carries the
	// request headers and is logged; CORS preflights are answered before routing; who is
	// calling and how often is settled before routing, so no route escapes the limiter
	// and a 429 carries the CORS headers a browser needs to read it.
	s.handler = chain(root,
		withRequestHeaders(),
		s.withAccessLog(),
		s.withRecovery(),
		s.withSanePath(),
		withTimeout(cfg.RequestTimeout),
		withCORS(cfg.CORSAllowedOrigins),
		s.withIdentify(),
		s.withRateLimit(),
		withCompression(),
	)
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// The REST handlers: read the body, run the transport-independent operation
// (operations.go), answer in the request's version.

func (s *Server) createSession(w http.ResponseWriter, r *http.Request) {
	s.restOperation(w, r, bodyRequired, http.StatusCreated, s.createOp)
}

func (s *Server) getSession(w http.ResponseWriter, r *http.Request) {
	view, err := s.getOp(r.Context(), versionOf(r), infoOf(r).caller, mux.Vars(r)["id"], nil)
	s.respond(w, r, http.StatusOK, view, err)
}

func (s *Server) updateSession(w http.ResponseWriter, r *http.Request) {
	s.restOperation(w, r, bodyRequired, http.StatusOK, s.updateOp)
}

func (s *Server) cancelSession(w http.ResponseWriter, r *http.Request) {
	s.restOperation(w, r, bodyOptional, http.StatusOK, s.cancelOp)
}

func (s *Server) completeSession(w http.ResponseWriter, r *http.Request) {
	s.restOperation(w, r, bodyRequired, http.StatusOK, s.completeOp)
}

// restOperation serves a POST on a session: the body under rule, then op, answered
// with status.
func (s *Server) restOperation(w http.ResponseWriter, r *http.Request, rule bodyRule, status int, op operation) {
	body, err := s.readBody(w, r, rule)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	view, err := op(r.Context(), versionOf(r), infoOf(r).caller, mux.Vars(r)["id"], body)
	s.respond(w, r, status, view, err)
}

func (s *Server) delegatePayment(w http.ResponseWriter, r *http.Request) {
	api := versionOf(r)
	d, err := decodeBody(s, w, r, bodyRequired, api.DecodeDelegate)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	key := r.Header.Get("Idempotency-Key")
	setEncoder(r.Context(), func(token payment.Token) (int, []byte, error) {
		body, err := encodeJSON(api.EncodeToken(token, key))
		return http.StatusCreated, body, err
	})
	token, err := s.vault.Delegate(r.Context(), infoOf(r).caller, d)
	s.count(err, metrics.TokenIssued)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	recordedOrEncode(w, r, http.StatusCreated, api.EncodeToken(token, key))
}

// count records a checkout outcome when the request succeeded.
func (s *Server) count(err error, outcome string) {
	if err == nil {
		s.metrics.Outcome(outcome)
	}
}

// respond writes view in the request's API version, or err as an ACP Error.
func (s *Server) respond(w http.ResponseWriter, r *http.Request, status int, view checkout.View, err error) {
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	recordedOrEncode(w, r, status, s.encodeView(r, view))
}

// encodeView renders a session in the wire format of the request's API version.
func (s *Server) encodeView(r *http.Request, v checkout.View) any {
	return versionOf(r).EncodeSession(v, s.cfg.Links)
}

func (s *Server) health(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// Drain makes /ready answer 503 from now on, so load balancers stop sending traffic
// before the server shuts down.
func (s *Server) Drain() { s.draining.Store(true) }

func (s *Server) readiness(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		writeJSON(w, http.StatusServiceUnavailable, versionOf(r).EncodeError(acp.NewError(http.StatusServiceUnavailable, acp.TypeServiceUnavailable,
			"shutting_down", "The server is shutting down.", "")))
		return
	}
	if err := s.ready(r.Context()); err != nil {
		s.logger.LogAttrs(r.Context(), slog.LevelWarn, "not ready", slog.Any("error", err))
		writeJSON(w, http.StatusServiceUnavailable, versionOf(r).EncodeError(acp.NewError(http.StatusServiceUnavailable, acp.TypeServiceUnavailable,
			"not_ready", "The server is not ready to serve traffic.", "")))
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	refuse(w, r, acp.NewError(http.StatusNotFound, acp.TypeInvalidRequest, "not_found",
		"No endpoint at "+clip(r.Method, maxEchoedMethod)+" "+clip(r.URL.Path, maxEchoedPath)+".", ""))
}

// methodNotAllowed answers 405 with the Allow header RFC 9110 requires: the methods of
// every route whose path matches.
func (s *Server) methodNotAllowed(router *mux.Router) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var allowed []string
		_ = router.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
			pattern, err := route.GetPathRegexp()
			if err != nil {
				return nil // a subrouter holder has no path of its own
			}
			if ok, _ := regexp.MatchString(pattern, r.URL.Path); !ok {
				return nil
			}
			methods, _ := route.GetMethods()
			for _, m := range methods {
				if !slices.Contains(allowed, m) {
					allowed = append(allowed, m)
				}
			}
			return nil
		})
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		refuse(w, r, acp.NewError(http.StatusMethodNotAllowed, acp.TypeInvalidRequest, "method_not_allowed",
			clip(r.Method, maxEchoedMethod)+" is not allowed on "+clip(r.URL.Path, maxEchoedPath)+".", ""))
	}
}

// writeJSON writes v with status. Encoding errors cannot be reported to the client once
// the status is out, and the types written here always encode.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = jsonEncoder(w).Encode(v)
}

// jsonEncoder is the one JSON encoder of responses, so that a recorded response and a
// fresh one are the same bytes.
func jsonEncoder(w io.Writer) *json.Encoder { return json.NewEncoder(w) }
