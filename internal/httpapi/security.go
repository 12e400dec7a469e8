package httpapi

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/agentic-commerce/agentic-commerce-server/internal/acp"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// APIKey is one bearer credential. Name is the caller identity that sessions, tokens
// and idempotency keys are scoped to; several keys may share a name, so a platform can
// rotate its key without losing its sessions.
type APIKey struct {
	Name string
	Key  string
}

// CallerIdentity names a bare key (one given without a name): "key_" and 128 bits of an
// HMAC of the key under secret (CARD_FINGERPRINT_KEY). Logs and the database (session
// and token owners, idempotency scopes) never hold the key, and, keyed, the identity
// cannot be tested against guessed keys by whoever reads them. It is stable while the
// key and the secret are: give keys names to keep ownership across rotations.
func CallerIdentity(secret []byte, key string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("acp caller identity\x00"))
	m.Write([]byte(key))
	return "key_" + hex.EncodeToString(m.Sum(nil)[:16])
}

// keyring compares presented keys against the configured ones in constant time: every
// key is checked, and digests of equal length are compared.
type keyring struct {
	names   []string
	digests [][32]byte
}

// newKeyring holds keys; a key without a name is named CallerIdentity(secret, key).
func newKeyring(keys []APIKey, secret []byte) keyring {
	var kr keyring
	for _, k := range keys {
		name := k.Name
		if name == "" {
			name = CallerIdentity(secret, k.Key)
		}
		kr.names = append(kr.names, name)
		kr.digests = append(kr.digests, sha256.Sum256([]byte(k.Key)))
	}
	return kr
}

// newNamedKeyring is a keyring of keys that all stand for one caller.
func newNamedKeyring(name string, keys []string) keyring {
	named := make([]APIKey, len(keys))
	for i, k := range keys {
		named[i] = APIKey{Name: name, Key: k}
	}
	return newKeyring(named, nil)
}

func (kr keyring) lookup(presented string) (string, bool) {
	return kr.lookupDigest(sha256.Sum256([]byte(presented)))
}

// lookupDigest is lookup of a presented key's SHA-256, so that one digest of a (possibly
// 64 KB) header serves every keyring.
func (kr keyring) lookupDigest(d [32]byte) (string, bool) {
	found := -1
	for i := range kr.digests {
		if subtle.ConstantTimeCompare(d[:], kr.digests[i][:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return "", false
	}
	return kr.names[found], true
}

func unauthorized(code, message string) *acp.Error {
	return acp.NewError(http.StatusUnauthorized, acp.TypeInvalidRequest, code, message, "")
}

// withIdentify finds out who is calling, before routing, so that every route (unmatched
// ones included) is limited per caller. It never refuses: withRequireAuth answers 401 on
// the ACP routes, withAdminAuth and withMetricsAuth on theirs. A valid admin or metrics
// key counts as its own caller for the limiter only; it opens nothing here.
func (s *Server) withIdentify() Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			info := infoOf(r)
			h := r.Header.Get("Authorization")
			scheme, token, ok := strings.Cut(h, " ")
			token = strings.TrimSpace(token)
			bearer := ok && strings.EqualFold(scheme, "Bearer") && token != ""
			var digest [32]byte
			if bearer {
				digest = sha256.Sum256([]byte(token))
			}
			if len(s.keys.digests) > 0 {
				switch {
				case h == "":
					info.authErr = unauthorized("missing_authorization", "An Authorization: Bearer <API key> header is required.")
				case !bearer:
					info.authErr = unauthorized("malformed_authorization", "The Authorization header must be \"Bearer <API key>\".")
				default:
					if name, found := s.keys.lookupDigest(digest); found {
						info.caller = name
						info.limitKey = "caller:" + name
					} else {
						info.authErr = unauthorized("invalid_api_key", "The API key is not valid.")
					}
				}
			}
			if info.limitKey == "" && bearer {
				if _, found := s.adminKeys.lookupDigest(digest); found {
					info.limitKey = "admin"
				} else if _, found := s.metricsKeys.lookupDigest(digest); found {
					info.limitKey = "metrics"
				}
			}
			next.ServeHTTP(w, r)
		})
	}
}

// withMetricsAuth asks for one of the metrics keys, when any is configured. The metrics
// say how much the shop sells and how its database is doing: not for everyone.
func (s *Server) withMetricsAuth() Middleware {
	if len(s.metricsKeys.digests) == 0 {
		return func(next http.Handler) http.Handler { return next }
	}
	return withBearerKey(s.metricsKeys, "acp-metrics", "metrics", "")
}

// withBearerKey asks for one of the keys of kr in an Authorization: Bearer header (realm
// names the WWW-Authenticate challenge, what the key in messages) and, when caller is
// not empty, makes it the request's caller identity.
func withBearerKey(kr keyring, realm, what, caller string) Middleware {
	challenge := `Bearer realm="` + realm + `"`
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
			if !ok || !strings.EqualFold(scheme, "Bearer") {
				w.Header().Set("WWW-Authenticate", challenge)
				refuse(w, r, unauthorized("missing_authorization", "An Authorization: Bearer <"+what+" API key> header is required."))
				return
			}
			if _, found := kr.lookup(strings.TrimSpace(token)); !found {
				w.Header().Set("WWW-Authenticate", challenge)
				refuse(w, r, unauthorized("invalid_api_key", "The "+what+" API key is not valid."))
				return
			}
			if caller != "" {
				infoOf(r).caller = caller
			}
			next.ServeHTTP(w, r)
		})
	}
}

// withRequireAuth refuses requests withIdentify could not authenticate.
func withRequireAuth() Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := infoOf(r).authErr; err != nil {
				w.Header().Set("WWW-Authenticate", `Bearer realm="acp"`)
				refuse(w, r, err)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// rateLimiter keeps one token bucket per key. A bucket that has filled up again is
// exactly a new one, so dropping it changes nothing: buckets are swept that way, and the
// map never holds more than maxKeys; past that, new keys share one overflow bucket
// until a sweep makes room. Memory is bounded however many addresses a flood uses.
type rateLimiter struct {
	limit   rate.Limit
	burst   int
	maxKeys int

	mu       sync.Mutex
	buckets  map[string]*rate.Limiter
	overflow *rate.Limiter
	swept    time.Time
}

const (
	// sweepEvery drops full buckets regularly; sweepFullEvery bounds how often a full
	// map is swept, since a sweep visits every bucket.
	sweepEvery     = time.Minute
	sweepFullEvery = time.Second
	// maxAddressBuckets bounds the buckets of client addresses (about 200 bytes each).
	// Only addresses seen within RATE_LIMIT_BURST/RATE_LIMIT_RPS seconds hold one.
	maxAddressBuckets = 32768
)

func newRateLimiter(rps float64, burst, maxKeys int) *rateLimiter {
	if rps <= 0 {
		return nil
	}
	burst = max(burst, 1)
	return &rateLimiter{
		limit: rate.Limit(rps), burst: burst, maxKeys: maxKeys, buckets: map[string]*rate.Limiter{},
		overflow: rate.NewLimiter(rate.Limit(rps), burst),
	}
}

// reserve takes a token for key, or returns how long to wait for one.
func (rl *rateLimiter) reserve(key string, now time.Time) (time.Duration, bool) {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	b, ok := rl.buckets[key]
	if !ok {
		if now.Sub(rl.swept) >= sweepEvery || (len(rl.buckets) >= rl.maxKeys && now.Sub(rl.swept) >= sweepFullEvery) {
			rl.sweep(now)
		}
		if len(rl.buckets) < rl.maxKeys {
			b = rate.NewLimiter(rl.limit, rl.burst)
			rl.buckets[key] = b
		} else {
			b = rl.overflow
		}
	}
	res := b.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d, false
	}
	return 0, true
}

// sweep drops the buckets that are full again.
func (rl *rateLimiter) sweep(now time.Time) {
	for k, b := range rl.buckets {
		if b.TokensAt(now) >= float64(rl.burst) {
			delete(rl.buckets, k)
		}
	}
	rl.swept = now
}

// size is the number of buckets held.
func (rl *rateLimiter) size() int {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	return len(rl.buckets)
}

// withRateLimit answers 429 with Retry-After once a caller exceeds its rate. It runs
// before routing, so every route is limited: authenticated callers per identity, the
// rest (unauthenticated requests, wrong keys, order pages, probes) per client address.
// Only GET /health is exempt: it touches nothing, and a load balancer's probe must not
// be refused because of traffic from the same address.
func (s *Server) withRateLimit() Middleware {
	return func(next http.Handler) http.Handler {
		if s.callerLimiter == nil {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/health" {
				next.ServeHTTP(w, r)
				return
			}
			var wait time.Duration
			var ok bool
			if key := infoOf(r).limitKey; key != "" {
				wait, ok = s.callerLimiter.reserve(key, time.Now())
			} else {
				wait, ok = s.addrLimiter.reserve(s.clientKey(r), time.Now())
			}
			if !ok {
				w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
				refuse(w, r, acp.NewError(http.StatusTooManyRequests, acp.TypeInvalidRequest,
					acp.CodeTooManyRequests, "Too many requests; retry after the time in Retry-After.", ""))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// clientAddr is the peer address, the client's when no proxy is trusted.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// clientIP is the address of the client: the peer, or, when the peer is a trusted proxy,
// the nearest address in X-Forwarded-For that is not one (read from the right, since
// everything left of the last proxy's entry is whatever the client wrote).
func (s *Server) clientIP(r *http.Request) (netip.Addr, bool) {
	ip, err := netip.ParseAddr(clientAddr(r))
	if err != nil {
		return netip.Addr{}, false
	}
	ip = ip.Unmap()
	if !s.trusted(ip) {
		return ip, true
	}
	hops := r.Header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		entries := strings.Split(hops[i], ",")
		for j := len(entries) - 1; j >= 0; j-- {
			hop, err := netip.ParseAddr(strings.TrimSpace(entries[j]))
			if err != nil {
				return ip, true // garbage: the last proxy is all we know
			}
			ip = hop.Unmap()
			if !s.trusted(ip) {
				return ip, true
			}
		}
	}
	return ip, true
}

func (s *Server) trusted(ip netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// clientKey is the limiter key of an unauthenticated request: the client's IPv4 address,
// or its IPv6 /64, since one host commonly holds a whole /64 and could otherwise take
// a fresh bucket for every request.
func (s *Server) clientKey(r *http.Request) string {
	ip, ok := s.clientIP(r)
	switch {
	case !ok:
		return "addr:" + clientAddr(r)
	case ip.Is4():
		return "addr:" + ip.String()
	}
	p, _ := ip.Prefix(64)
	return "addr:" + p.String()
}

// signatureWindow bounds the clock skew a signed request may have, either way.
const signatureWindow = 300 * time.Second

// withSignature verifies Signature = base64url(HMAC-SHA256(secret, Timestamp + "." +
// raw body)) against every configured secret (several during a rotation), on the raw
// bytes before any parsing, and refuses timestamps outside ±5 minutes.
func (s *Server) withSignature() Middleware {
	return func(next http.Handler) http.Handler {
		if len(s.cfg.SigningSecrets) == 0 {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := s.verifySignature(w, r, time.Now()); err != nil {
				s.writeError(w, r, err)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func (s *Server) verifySignature(w http.ResponseWriter, r *http.Request, now time.Time) error {
	return s.verifySigned(r.Context(), r.Header.Get("Signature"), r.Header.Get("Timestamp"), now,
		func() ([]byte, error) { return s.rawBody(w, r) })
}

// verifySigned checks a signature and its timestamp over the body of a request, for
// every transport: REST's headers and raw body, MCP's meta.signature, meta.timestamp
// and payload. The body is only read once the header fields pass.
func (s *Server) verifySigned(ctx context.Context, sig, ts string, now time.Time, body func() ([]byte, error)) error {
	if sig == "" {
		return unauthorized("missing_signature", "A Signature header is required.")
	}
	if ts == "" {
		return unauthorized("missing_timestamp", "A Timestamp header is required.")
	}
	at, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return unauthorized("invalid_timestamp", "Timestamp must be an RFC 3339 date-time.")
	}
	if skew := now.Sub(at); skew > signatureWindow || skew < -signatureWindow {
		return unauthorized("timestamp_out_of_window", "Timestamp is more than 300 seconds away from the server's clock.")
	}
	raw, err := body()
	if err != nil {
		return err
	}
	return s.checkSignature(ctx, sig, ts, at, raw)
}

// checkSignature accepts sig when it signs ts and body with one of the secrets and was
// not seen before; REST signs the raw body, MCP the raw payload (mcp.go).
func (s *Server) checkSignature(ctx context.Context, sig, ts string, at time.Time, body []byte) error {
	got, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(sig, "="))
	if err != nil {
		return unauthorized("malformed_signature", "Signature must be base64url.")
	}
	for _, secret := range s.cfg.SigningSecrets {
		if hmac.Equal(got, Sign(secret, ts, body)) {
			return s.rememberSignature(ctx, got, at)
		}
	}
	return unauthorized("invalid_signature", "Signature does not match the request.")
}

// Sign computes the request signature an agent platform sends (before base64url).
func Sign(secret []byte, timestamp string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp))
	m.Write([]byte("."))
	m.Write(body)
	return m.Sum(nil)
}

// rawBody reads the request body once, under the size limit, and keeps it for every
// later reader (signature check, idempotency hash, handler).
func (s *Server) rawBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	info := infoOf(r)
	if info.bodyRead {
		return info.body, info.bodyErr
	}
	info.bodyRead = true
	info.body, info.bodyErr = readLimited(w, r, s.cfg.MaxBodyBytes)
	return info.body, info.bodyErr
}

func readLimited(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	var buf bytes.Buffer
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, acp.NewError(http.StatusRequestEntityTooLarge, acp.TypeInvalidRequest, "request_too_large",
				fmt.Sprintf("The request body is larger than %d bytes.", limit), "")
		}
		return nil, acp.InvalidRequest("unreadable_body", "The request body could not be read.", "")
	}
	return buf.Bytes(), nil
}
