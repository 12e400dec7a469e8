package httpapi

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
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

// CallerIdentity names a bare key (one given without a name) by a digest of it, so
// logs and the database never hold the key itself.
func CallerIdentity(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "key_" + hex.EncodeToString(sum[:8])
}

// keyring compares presented keys against the configured ones in constant time: every
// key is checked, and digests of equal length are compared.
type keyring struct {
	names   []string
	digests [][32]byte
}

func newKeyring(keys []APIKey) keyring {
	var kr keyring
	for _, k := range keys {
		name := k.Name
		if name == "" {
			name = CallerIdentity(k.Key)
		}
		kr.names = append(kr.names, name)
		kr.digests = append(kr.digests, sha256.Sum256([]byte(k.Key)))
	}
	return kr
}

func (kr keyring) lookup(presented string) (string, bool) {
	d := sha256.Sum256([]byte(presented))
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

func unauthorized(code, message string) *apiError {
	return newError(http.StatusUnauthorized, typeInvalidRequest, code, message, "")
}

// withIdentify finds out who is calling. It never refuses: the rate limiter needs to know
// the caller first, and withRequireAuth answers 401 afterwards.
func (s *Server) withIdentify() Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			info := infoOf(r)
			if len(s.keys.digests) == 0 {
				next.ServeHTTP(w, r)
				return
			}
			h := r.Header.Get("Authorization")
			scheme, token, ok := strings.Cut(h, " ")
			switch {
			case h == "":
				info.authErr = unauthorized("missing_authorization", "An Authorization: Bearer <API key> header is required.")
			case !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "":
				info.authErr = unauthorized("malformed_authorization", "The Authorization header must be \"Bearer <API key>\".")
			default:
				if name, found := s.keys.lookup(strings.TrimSpace(token)); found {
					info.caller = name
				} else {
					info.authErr = unauthorized("invalid_api_key", "The API key is not valid.")
				}
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

// rateLimiter keeps one token bucket per caller (API key identity, else client
// address). Buckets idle for a while are dropped so memory stays bounded.
type rateLimiter struct {
	limit rate.Limit
	burst int

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	limiter *rate.Limiter
	seen    time.Time
}

const bucketIdle = 10 * time.Minute

func newRateLimiter(rps float64, burst int) *rateLimiter {
	if rps <= 0 {
		return nil
	}
	return &rateLimiter{limit: rate.Limit(rps), burst: max(burst, 1), buckets: map[string]*bucket{}}
}

// reserve takes a token for caller, or returns how long to wait for one.
func (rl *rateLimiter) reserve(caller string, now time.Time) (time.Duration, bool) {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if now.Sub(rl.swept) > bucketIdle {
		for k, b := range rl.buckets {
			if now.Sub(b.seen) > bucketIdle {
				delete(rl.buckets, k)
			}
		}
		rl.swept = now
	}
	b, ok := rl.buckets[caller]
	if !ok {
		b = &bucket{limiter: rate.NewLimiter(rl.limit, rl.burst)}
		rl.buckets[caller] = b
	}
	b.seen = now
	res := b.limiter.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d, false
	}
	return 0, true
}

// withRateLimit answers 429 with Retry-After once a caller exceeds its rate.
func (s *Server) withRateLimit() Middleware {
	return func(next http.Handler) http.Handler {
		if s.limiter == nil {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			caller := infoOf(r).caller
			if caller == "" {
				caller = "addr:" + clientAddr(r)
			}
			if wait, ok := s.limiter.reserve(caller, time.Now()); !ok {
				w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
				refuse(w, r, newError(http.StatusTooManyRequests, typeInvalidRequest,
					"too_many_requests", "Too many requests; retry after the time in Retry-After.", ""))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// clientAddr is the peer address. Forwarded headers are not trusted: behind a proxy,
// authenticate callers with API keys so that limits follow the key.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
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
	sig, ts := r.Header.Get("Signature"), r.Header.Get("Timestamp")
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
	got, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(sig, "="))
	if err != nil {
		return unauthorized("malformed_signature", "Signature must be base64url.")
	}
	body, err := s.rawBody(w, r)
	if err != nil {
		return err
	}
	for _, secret := range s.cfg.SigningSecrets {
		if hmac.Equal(got, Sign(secret, ts, body)) {
			return s.rememberSignature(r.Context(), got, at)
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
			return nil, newError(http.StatusRequestEntityTooLarge, typeInvalidRequest, "request_too_large",
				fmt.Sprintf("The request body is larger than %d bytes.", limit), "")
		}
		return nil, invalidRequest("unreadable_body", "The request body could not be read.", "")
	}
	return buf.Bytes(), nil
}
