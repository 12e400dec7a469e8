package httpapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gorilla/mux"

	"github.com/agentic-commerce/agentic-commerce-server/internal/acp"
	"github.com/agentic-commerce/agentic-commerce-server/internal/idempotency"
	"github.com/agentic-commerce/agentic-commerce-server/internal/payment"
)

// settleTimeout bounds storing a response after the request's work is done, and
// releaseTimeout releasing the claim of a server error (see settleClaim).
const (
	settleTimeout  = 2 * time.Second
	releaseTimeout = 250 * time.Millisecond
)

// maxIdempotencyKeyLength matches the column's CHECK.
const maxIdempotencyKeyLength = 255

// maxIdempotentPathLength bounds the path recorded with a key. The path is part of the
// primary key of idempotency_keys, and a btree entry cannot exceed about 2.7 kB: a
// longer path made the claim fail with a 500. No resource here has a path anywhere near
// this long (ids are a few dozen characters), so a longer one is simply not found.
const maxIdempotentPathLength = 1024

// withIdempotency makes a POST with an Idempotency-Key run at most once per (caller,
// method, path, API version, key): a repeat with the same body replays the stored
// response (Idempotent-Replayed: true), a different body is a conflict, and a repeat
// while the first is running is answered at once with 409 and Retry-After. Server errors
// are not stored, so a retry runs again. The stored body is in the wire format of its
// version, so the same key under another version is not replayed: it runs afresh.
// For a client that accepts gzip, a response recorded with its side effect is kept as
// it is sent, compressed (gzipPack), and replayed as those bytes.
func (s *Server) withIdempotency() Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			key := r.Header.Get("Idempotency-Key")
			// PUT (a cart replacement) is keyed like POST: the cart OAS requires the key on it.
			keyed := r.Method == http.MethodPost || r.Method == http.MethodPut
			if keyed && key == "" && infoOf(r).version != "" && versionOf(r).RequiresIdempotencyKey() {
				refuse(w, r, acp.InvalidRequest(acp.CodeIdempotencyKeyRequired,
					"Idempotency-Key is required on every "+r.Method+" in API version "+infoOf(r).version+".", ""))
				return
			}
			if !keyed || key == "" || s.idempotency == nil {
				next.ServeHTTP(w, r)
				return
			}
			if err := checkIdempotencyKey(key, "Idempotency-Key"); err != nil {
				refuse(w, r, err)
				return
			}
			if len(r.URL.Path) > maxIdempotentPathLength {
				s.notFound(w, r)
				return
			}
			body, err := s.rawBody(w, r)
			if err != nil {
				// A body too large or unreadable changes nothing; there is nothing to record.
				s.writeError(w, r, err)
				return
			}
			hash, ok := s.requestHash(r, body)
			if !ok {
				// A delegate_payment body that is not JSON fails validation anyway; it is
				// not recorded, since its hash could only be taken over the card number.
				next.ServeHTTP(w, r)
				return
			}
			info := infoOf(r)
			// The version is set by withAPIVersion, which runs before this on the ACP
			// routes (an unsupported version is refused there, before any record); the
			// /admin API has none, and its records have "" (and the default version's
			// conflict status).
			k := idempotency.Key{Caller: info.caller, Method: r.Method, Path: r.URL.Path, Key: key, APIVersion: info.version}
			rec := &bufferedResponse{header: http.Header{}}
			mode := claimFirst
			if tpl, err := mux.CurrentRoute(r).GetPathTemplate(); err == nil {
				mode = s.keyModeFor(r.Method, tpl, info.caller, mux.Vars(r)["id"])
			}
			var pack func([]byte) ([]byte, bool)
			if acceptsGzip(r) {
				pack = gzipPack
			}
			ans, err := s.runOnce(r.Context(), versionOf(r), k, hash, mode, pack, func(ctx context.Context) (int, []byte) {
				next.ServeHTTP(rec, r.WithContext(ctx))
				return rec.statusOrOK(), rec.body.Bytes()
			})
			switch {
			case err != nil:
				s.writeError(w, r, err)
			case ans.replayed:
				// A run whose deferred claim found the key recorded was refused as in
				// flight (acpError's ErrNotClaimed); that refusal is not the answer, so
				// the access log and the metrics must not count it.
				infoOf(r).errCode = ""
				w.Header().Set("Idempotent-Replayed", "true")
				writeRecorded(w, ans.Response)
			default:
				rec.flushTo(w)
			}
		})
	}
}

// checkIdempotencyKey refuses a key the idempotency records cannot hold; name is how
// the transport calls it (the Idempotency-Key header, MCP's meta.idempotency_key).
func checkIdempotencyKey(key, name string) *acp.Error {
	if len(key) > maxIdempotencyKeyLength || !utf8.ValidString(key) || strings.ContainsFunc(key, unicode.IsControl) {
		return acp.InvalidRequest("invalid_idempotency_key", name+" must be at most 255 bytes of printable UTF-8.", "")
	}
	return nil
}

// runOnce is the idempotency rule of every transport (REST's withIdempotency and MCP's
// tools alike): run executes at most once per key k and request hash. A repeat with the
// same hash gets the stored response (replayed), another hash is a conflict (the status
// is api's: 409, 422 from 2026-04-17), and a repeat while the first is running is
// refused at once as in flight. run gets the context carrying the claim, so the storage
// layer can record the response in the transaction of the side effect; its response is
// recorded (or, a server error, released) before runOnce returns, so a client never
// sees a response the server did not record.
//
// pack is how the caller sends a body to this client (idempotency.Claim.Pack), or nil
// when it sends bodies as encoded: a response recorded compressed for another client
// is then replayed decompressed.
//
// mode is how the key is taken (keyModeOf). Unless it is claimFirst, the claim is
// deferred: run starts before the key is claimed, the storage layer settles the claim
// (in its first round trip, or, the key found free by lookUpFirst, by holding the key
// in its transaction and inserting it there) and stops before writing anything when
// the key is not the request's, and runOnce then answers with what the claim found,
// not with run's response. A run that never reached the storage layer's writes (a
// request refused on its body) is claimed here, after it ran and before its answer is
// recorded, as any other.
func (s *Server) runOnce(ctx context.Context, api API, k idempotency.Key, hash string, mode keyMode,
	pack func(body []byte) ([]byte, bool), run func(ctx context.Context) (status int, body []byte)) (keyedAnswer, error) {
	if mode == lookUpFirst {
		out, free, err := s.idempotency.LookUp(ctx, k, hash)
		switch {
		case err != nil:
			return keyedAnswer{}, err
		case !free && out.Kind != idempotency.InFlight:
			return claimAnswer(api, out, pack == nil)
		case !free:
			mode = claimFirst // a claim in flight, maybe a dead request's: the claim settles it
		}
	}
	var claim *idempotency.Claim
	var status int
	var body []byte
	if mode != claimFirst {
		claim = idempotency.NewDeferred(k, hash, func(ctx context.Context) (idempotency.Outcome, error) {
			return s.idempotency.Claim(ctx, k, hash)
		})
		claim.Pack = pack
		if mode == lookUpFirst {
			claim.MarkFree()
		}
		status, body = run(idempotency.NewContext(ctx, claim))
		if err := claim.Take(ctx); err != nil && !errors.Is(err, idempotency.ErrNotClaimed) {
			return keyedAnswer{}, err
		}
		if out, refused := claim.Refused(); refused {
			return claimAnswer(api, out, pack == nil)
		}
	} else {
		out, err := s.idempotency.Claim(ctx, k, hash)
		if err != nil {
			return keyedAnswer{}, err
		}
		if out.Kind != idempotency.Claimed {
			return claimAnswer(api, out, pack == nil)
		}
		claim = &idempotency.Claim{Key: k, ClaimID: out.ClaimID, Pack: pack}
		status, body = run(idempotency.NewContext(ctx, claim))
	}
	s.settleClaim(ctx, claim, status, body)
	return keyedAnswer{Response: idempotency.Response{Status: status, Body: body}}, nil
}

// keyedAnswer is runOnce's answer: the status and body its run returned or, replayed,
// the response the key recorded.
type keyedAnswer struct {
	idempotency.Response
	replayed bool
}

// claimAnswer is runOnce's answer when the key is not the request's (out): the stored
// response to replay (decompressed when plain), or the refusal of a conflict or of a
// request still in flight.
func claimAnswer(api API, out idempotency.Outcome, plain bool) (keyedAnswer, error) {
	switch out.Kind {
	case idempotency.Replay:
		r := out.Response
		if plain {
			var err error
			if r, err = plainResponse(r); err != nil {
				return keyedAnswer{}, err
			}
		}
		return keyedAnswer{Response: r, replayed: true}, nil
	case idempotency.Conflict:
		return keyedAnswer{}, acp.NewError(api.IdempotencyConflictStatus(), acp.TypeInvalidRequest, acp.CodeIdempotencyConflict,
			"This Idempotency-Key was used with a different request body.", "")
	default:
		return keyedAnswer{}, inFlightError()
	}
}

// inFlightError refuses a request whose key's first request is still running.
func inFlightError() *acp.Error {
	return acp.NewError(http.StatusConflict, acp.TypeInvalidRequest, acp.CodeIdempotencyInFlight,
		"A request with this Idempotency-Key is still being processed; retry shortly.", "")
}

// keyMode is how runOnce takes a request's idempotency key.
type keyMode int

const (
	// claimFirst claims the key, committed on its own, before the operation runs.
	claimFirst keyMode = iota
	// rideFirstRead defers the claim to the storage layer, which looks the key up in
	// its first round trip, a read (or its only one, the COMMIT of a delegation or of
	// a completion from a kept view).
	rideFirstRead
	// lookUpFirst looks the key up on its own before the operation runs: a replay is
	// answered in that one statement, and a free key is settled by the storage layer.
	lookUpFirst
)

// keyModeOf is the keyMode of the operation at the route template tpl
// (docs/PERFORMANCE.md, "Round trips"): creating, updating and canceling a session and
// creating a cart, whose first round trip is a read, and delegating a payment, whose
// only round trip is its COMMIT, ride their first round trip. A completion looks its
// key up first: agents retry completions most, and a replay riding its read would pay
// for the session's whole view, and with the look-up ahead of the operation a replay
// does not run the operation at all. A vault token's completion then holds the free key
// in its transaction, and a PSP token's inserts its claim in its first phase's, so that
// the key stays claimed while the PSP answers. A cart's replacement and cancel look
// their key up first too: their first round trip locks the cart, in the transaction,
// which a look-up riding it outside the transaction cannot. So do the admin API's
// writes, whose first round trip locks the order or the discount: each holds a free key
// in its transaction, and a refund through a PSP inserts its claim with its first
// phase, as a PSP completion does, so that the key stays claimed while the PSP
// answers. A route named here must write only through those transactions (the storage
// layer's runPipelinedTx and withClaimingTx); any other claims first.
func keyModeOf(method, tpl string) keyMode {
	switch {
	case method == http.MethodPost && (tpl == "/checkout_sessions" || tpl == "/checkout_sessions/{id}" ||
		tpl == "/checkout_sessions/{id}/cancel" || tpl == "/carts" || tpl == delegatePaymentPath):
		return rideFirstRead
	case method == http.MethodPost && (tpl == completePath || tpl == "/carts/{id}/cancel"),
		method == http.MethodPut && tpl == "/carts/{id}",
		method == http.MethodPost && slices.Contains(adminWrites, tpl):
		return lookUpFirst
	}
	return claimFirst
}

// completePath is the route template of a session's completion.
const completePath = "/checkout_sessions/{id}/complete"

// viewKeeper is a checkout.SessionService that keeps sessions' views between requests
// (postgres.Store with a session cache), so that a session's completion may start from
// the view kept of it, in one round trip with its idempotency key
// (docs/PERFORMANCE.md, "Round trips").
type viewKeeper interface {
	// KeepsSessionView reports whether the next completion of owner's session id is
	// likely to start from a kept view.
	KeepsSessionView(owner, id string) bool
}

// keyModeFor is keyModeOf for the request of caller at the route template tpl, whose
// {id} is id: a completion whose session's view the storage layer keeps rides its
// key's look-up with its writes, its one round trip (the storage layer holds the key
// first there, so a duplicate in flight is still answered at once), where looking the
// key up first would be a round trip of its own. A replay comes after the completion,
// which leaves no view kept, and is still looked up first: one statement.
func (s *Server) keyModeFor(method, tpl, caller, id string) keyMode {
	mode := keyModeOf(method, tpl)
	if mode == lookUpFirst && tpl == completePath && id != "" {
		if k, ok := s.sessions.(viewKeeper); ok && k.KeepsSessionView(caller, id) {
			return rideFirstRead
		}
	}
	return mode
}

// adminWrites are the route templates of the admin API's writes (adminRoutes,
// discountRoutes). TestAdminWritesInFlightAreAnsweredAtOnce sends each one and waits for
// its key's hold, so a misspelt entry, which would claim first, fails it.
var adminWrites = []string{
	"/admin/orders/{id}/status", "/admin/orders/{id}/refunds", "/admin/orders/{id}/fulfillments",
	"/admin/orders/{id}/fulfillments/{fid}/events", "/admin/orders/{id}/cancellations",
	"/admin/discounts", "/admin/discounts/{id}/disable",
}

// settleClaim stores the response of a claimed request unless its transaction already
// did, or releases the claim after a server error, before the response goes out: the
// client must never see a response the server did not record.
func (s *Server) settleClaim(ctx context.Context, claim *idempotency.Claim, status int, body []byte) {
	if _, ok := claim.Recorded(); ok {
		return
	}
	// The request's own context may be canceled by now; the claim must still be settled,
	// but not at any cost: a claim left behind is recovered after its timeout, while a
	// client kept waiting on a slow database is not. A server error is not recorded, so
	// its release gets a much shorter bound than storing a response: after a timeout the
	// database is likely slow, and the 503 must leave within about REQUEST_TIMEOUT (it
	// once waited another settleTimeout). The release still runs before the response,
	// so that a connection the failure left dead is found and dropped by this request,
	// not by the client's retry.
	release := status >= http.StatusInternalServerError
	timeout := settleTimeout
	if release {
		timeout = releaseTimeout
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	var err error
	if release {
		err = s.idempotency.Release(ctx, claim)
	} else {
		err = s.idempotency.Complete(ctx, claim, status, body)
	}
	if err != nil {
		// The response still goes out; the claim recovers after IDEMPOTENCY_RECOVER_AFTER.
		s.logger.LogAttrs(ctx, slog.LevelError, "settle idempotency key",
			slog.String("request_id", requestID(ctx)), slog.Any("error", err))
	}
}

// bufferedResponse holds a response until the idempotency key is settled, so that the
// client never sees a response the server did not record.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

// statusOrOK is the status written, 200 when the handler wrote none.
func (b *bufferedResponse) statusOrOK() int {
	if b.status == 0 {
		return http.StatusOK
	}
	return b.status
}

func (b *bufferedResponse) flushTo(w http.ResponseWriter) {
	for k, v := range b.header {
		w.Header()[k] = v
	}
	w.WriteHeader(b.statusOrOK())
	_, _ = w.Write(b.body.Bytes())
}

// recordedOrEncode writes the response a committed transaction recorded for this
// request's idempotency key, so that the first answer and every replay are the same
// bytes; without one it encodes v.
func recordedOrEncode(w http.ResponseWriter, r *http.Request, status int, v any) {
	if claim := idempotency.FromContext(r.Context()); claim != nil {
		if recorded, ok := claim.Recorded(); ok {
			writeRecorded(w, recorded)
			return
		}
	}
	writeJSON(w, status, v)
}

// writeRecorded writes a recorded response as it was recorded: a gzipped body goes out
// with its Content-Encoding, which the compression middleware passes through.
func writeRecorded(w http.ResponseWriter, r idempotency.Response) {
	w.Header().Set("Content-Type", "application/json")
	if r.Gzipped {
		w.Header().Set("Content-Encoding", "gzip")
	}
	w.WriteHeader(r.Status)
	_, _ = w.Write(r.Body)
}

// recordedOr is the response a committed transaction recorded for the idempotency key
// of ctx, or else v encoded with status, as JSON: what MCP answers.
func recordedOr(ctx context.Context, status int, v any) (int, []byte, error) {
	if claim := idempotency.FromContext(ctx); claim != nil {
		if recorded, ok := claim.Recorded(); ok {
			recorded, err := plainResponse(recorded)
			return recorded.Status, recorded.Body, err
		}
	}
	body, err := encodeJSON(v)
	return status, body, err
}

// setEncoder tells the storage layer how to render the result of the request of ctx,
// so it can record the response in the transaction of the side effect.
func setEncoder[T any](ctx context.Context, encode func(result T) (int, []byte, error)) {
	if claim := idempotency.FromContext(ctx); claim != nil {
		idempotency.SetEncoder(claim, encode)
	}
}

// encodeJSON renders v exactly as writeJSON sends it.
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	err := jsonEncoder(&buf).Encode(v)
	return buf.Bytes(), err
}

// idempotencyFingerprinter keys what idempotency records keep of card data. serve always
// configures a key; a server built without one (tests, embedding) makes a random key for
// this process: a retry that reaches another instance then gets a 409 conflict instead
// of a replay, which is safe, whereas dropping the card fields would replay a token of
// another card.
func idempotencyFingerprinter(key []byte) payment.Fingerprinter {
	if len(key) == 0 {
		key = make([]byte, 32)
		_, _ = rand.Read(key) // crypto/rand.Read never fails on supported platforms
	}
	return payment.NewFingerprinter(key)
}

// Card fields whose values must not reach the idempotency hash in the clear. The fast
// path (idempotency.RedactedSum) and redactCard replace the same fields alike.
var cardSecrets = []string{"number", "cvc", "cryptogram"}

// requestHash hashes the body for the idempotency record. The hash is keyed (an HMAC
// with the card fingerprint key) for every route, so what the database keeps cannot be
// recomputed by whoever reads it: an unkeyed hash of a body lets anyone who can guess
// the body confirm the guess, and for delegate_payment the unknown part is a card
// number (BIN and last 4 are stored, the rest is a few hundred thousand guesses).
// Before that, the card number, CVC and cryptogram of a delegate_payment body are
// replaced by their keyed fingerprints, so not even the keyed hash covers them in the
// clear (PCI DSS 3.5).
func (s *Server) requestHash(r *http.Request, body []byte) (string, bool) {
	if r.URL.Path != delegatePaymentPath {
		return s.bodyHash(body), true
	}
	if h, ok := idempotency.RedactedSum(body, idempotency.Redaction{
		Parent: "payment_method", Fields: cardSecrets,
		Replace: func(secret string) string { return "fp:" + s.fingerprint.Fingerprint(secret) },
	}); ok {
		return s.keyedHash(h), true
	}
	v, ok := idempotency.Decode(body)
	if !ok {
		return "", false
	}
	redactCard(v, s.fingerprint)
	h, err := idempotency.HashValue(v)
	return s.keyedHash(h), err == nil
}

// bodyHash is the request hash of a checkout body (REST) or payload (MCP): the same
// for both, so a retry over the other transport is recognised.
func (s *Server) bodyHash(body []byte) string { return s.keyedHash(idempotency.Hash(body)) }

// keyedHash keys a canonical body hash. The prefix keeps these values apart from the
// card fingerprints made with the same key.
func (s *Server) keyedHash(canonical string) string {
	return "hmac:" + s.fingerprint.Fingerprint("idempotency-request-hash:"+canonical)
}

// redactCard replaces the card secrets of a decoded delegate_payment body by their
// fingerprints. Names are matched ignoring case and every spelling present is replaced:
// the decoder refuses "NUMBER" or "Cvc" (field names are case-sensitive), but the hash is
// taken before decoding and the refusal is recorded under it.
func redactCard(v any, fp payment.Fingerprinter) {
	root, ok := v.(map[string]any)
	if !ok {
		return
	}
	for name, pmRaw := range root {
		pm, ok := pmRaw.(map[string]any)
		if !ok || !strings.EqualFold(name, "payment_method") {
			continue
		}
		for f, raw := range pm {
			if !slices.ContainsFunc(cardSecrets, func(secret string) bool { return strings.EqualFold(f, secret) }) {
				continue
			}
			str, _ := raw.(string)
			pm[f] = "fp:" + fp.Fingerprint(str)
		}
	}
}
