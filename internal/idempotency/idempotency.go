// Package idempotency carries a claimed Idempotency-Key from the HTTP layer to the
// storage layer, so that the response of a request can be recorded in the same
// transaction as its side effect: a crash can then never leave a committed order
// without its stored response, or the reverse.
package idempotency

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Key scopes an Idempotency-Key to a caller, a method, a path and an API version.
type Key struct {
	Caller string
	Method string
	Path   string
	Key    string
	// APIVersion is the version the request was served in (the stored response is in
	// its wire format), or "" on a route that has no API version (the /admin API). The
	// same key under another version is a separate record: a fresh execution.
	APIVersion string
}

// Claim is a key this request holds (in flight). Encode renders the result of the
// request as the response the client will get, and Pack the form it is sent in; the
// storage layer records what Render makes of both inside its transaction, and calls
// Committed after the commit.
//
// A claim made by NewDeferred is not taken yet: the storage layer takes it in the first
// round trip of the request's work (Hash is what it claims the key with) and tells the
// claim what it found (Resolve), or takes it on its own first (Take). A request that
// never reaches the storage layer's writes leaves it pending, and the transport takes
// it before answering.
type Claim struct {
	Key     Key
	ClaimID string
	// Encode turns a result (a checkout.View, a payment.Token, ...) into the response;
	// SetEncoder sets it for results of one type.
	Encode func(result any) (status int, body []byte, err error)
	// Pack, when set, is how the transport sends an encoded body: compressed (gzipped)
	// for a client that accepts gzip, when that pays. The record keeps the body as
	// sent, so a replay to such a client sends the stored bytes as they are rather
	// than compressing the same body again. nil: bodies are sent as encoded.
	Pack func(body []byte) (packed []byte, gzipped bool)
	// Hash is the request's hash, which a deferred claim is taken with.
	Hash string

	// take claims the key on its own (a deferred claim's; nil: the claim was taken
	// before the request ran).
	take func(ctx context.Context) (Outcome, error)

	mu       sync.Mutex
	response Response
	recorded bool
	// resolved says a deferred claim was taken; outcome is what that found.
	resolved bool
	outcome  Outcome
	// free says a deferred claim's key was looked up and found free (MarkFree).
	free bool
}

// ErrNotClaimed is the error of work that stopped because its deferred claim found the
// key taken (a replay, a conflict or a request in flight): the transport answers with
// what the claim found (Refused), not with this error.
var ErrNotClaimed = errors.New("idempotency: the key is not this request's")

// NewDeferred returns the claim of key k for a request that hashes to hash, to be taken
// by the storage layer in its first round trip; take claims it on its own.
func NewDeferred(k Key, hash string, take func(ctx context.Context) (Outcome, error)) *Claim {
	return &Claim{Key: k, Hash: hash, take: take}
}

// Pending reports whether c is a deferred claim not taken yet.
func (c *Claim) Pending() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.take != nil && !c.resolved
}

// MarkFree notes that the key of a deferred claim was looked up (by the storage layer in
// its first round trip, or by the transport before the operation) and found free: the
// work's transaction may hold the key and insert it with its response, where a claim
// would have been committed before the work. The claim stays pending until that
// transaction commits (Resolve); when it does not, Take claims the key on its own, as
// for any pending claim.
func (c *Claim) MarkFree() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.free = true
}

// Free reports whether c is pending and its key was found free (MarkFree).
func (c *Claim) Free() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.free && c.take != nil && !c.resolved
}

// Resolve records what taking the deferred claim found. A key that is not the
// request's (any outcome but Claimed) returns ErrNotClaimed: the work must stop.
func (c *Claim) Resolve(out Outcome) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.resolved, c.outcome = true, out
	if out.Kind != Claimed {
		return ErrNotClaimed
	}
	c.ClaimID = out.ClaimID
	return nil
}

// Take takes a pending claim on its own (nothing to do for one taken already); like
// Resolve, it returns ErrNotClaimed when the key is not the request's.
func (c *Claim) Take(ctx context.Context) error {
	if !c.Pending() {
		if _, refused := c.Refused(); refused {
			return ErrNotClaimed
		}
		return nil
	}
	out, err := c.take(ctx)
	if err != nil {
		return err
	}
	return c.Resolve(out)
}

// Refused returns what taking a deferred claim found when the key is not the request's.
func (c *Claim) Refused() (Outcome, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.outcome, c.resolved && c.outcome.Kind != Claimed
}

type ctxKey struct{}

// NewContext returns ctx carrying c.
func NewContext(ctx context.Context, c *Claim) context.Context {
	return context.WithValue(ctx, ctxKey{}, c)
}

// FromContext returns the claim of the request, or nil when it has no Idempotency-Key.
func FromContext(ctx context.Context) *Claim {
	c, _ := ctx.Value(ctxKey{}).(*Claim)
	return c
}

// Render turns the result of the request into the response to record: Encode's, in
// the form Pack gives it.
func (c *Claim) Render(result any) (Response, error) {
	status, body, err := c.Encode(result)
	if err != nil {
		return Response{}, err
	}
	r := Response{Status: status, Body: body}
	if c.Pack != nil {
		r.Body, r.Gzipped = c.Pack(body)
	}
	return r, nil
}

// Committed notes that the response was stored by a committed transaction.
func (c *Claim) Committed(r Response) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.response, c.recorded = r, true
}

// Recorded returns the stored response when the storage layer committed one.
func (c *Claim) Recorded() (Response, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.response, c.recorded
}

// Response is a response as an idempotency record keeps it: its status and body, the
// JSON the request was answered with or, Gzipped, the gzip of that JSON as it was sent.
type Response struct {
	Status  int
	Body    []byte
	Gzipped bool
}

// Hash fingerprints a request body semantically: JSON is re-encoded with sorted object
// keys, so key order and spacing do not matter, while null and an absent field differ.
// A body that is not exactly one JSON value is hashed as it is.
func Hash(body []byte) string {
	if sum, ok := canonicalSum(body, nil); ok {
		return hex.EncodeToString(sum[:])
	}
	if v, ok := Decode(body); ok {
		if h, err := HashValue(v); err == nil {
			return h
		}
	}
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// Decode parses a body that is exactly one JSON value (anything after it, even a stray
// bracket, makes it not one), keeping numbers as written.
func Decode(body []byte) (any, bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, false
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, false
	}
	return v, true
}

// HashValue hashes a decoded JSON value in its canonical encoding (sorted keys).
func HashValue(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// OutcomeKind is what claiming a key found.
type OutcomeKind int

// The outcomes of a claim.
const (
	// Claimed: the key is new (or recovered from a dead request); run the request.
	Claimed OutcomeKind = iota
	// Replay: the key finished before with the same body; answer with Status and Body.
	Replay
	// Conflict: the key was used with a different body.
	Conflict
	// InFlight: the key's first request is still running.
	InFlight
)

// Outcome is the result of claiming a key: with Replay, the stored response.
type Outcome struct {
	Kind    OutcomeKind
	ClaimID string
	Response
}

// Store records Idempotency-Keys for the transports (REST and MCP alike), so a retried
// request is answered with the response of its first run (see postgres.Idempotency).
type Store interface {
	Claim(ctx context.Context, k Key, hash string) (Outcome, error)
	// LookUp finds k's record without claiming the key: free says it has none;
	// otherwise out says what the record answers a request hashing to hash (Replay,
	// Conflict, or InFlight, which only Claim settles).
	LookUp(ctx context.Context, k Key, hash string) (out Outcome, free bool, err error)
	Complete(ctx context.Context, c *Claim, status int, body []byte) error
	Release(ctx context.Context, c *Claim) error
}

// SetEncoder makes encode the renderer of c's result. The claim travels in a context, so
// the result reaches Encode as an any; its type is checked here, once, and a result of
// another type is an error (the transaction rolls back), not a panic.
func SetEncoder[T any](c *Claim, encode func(result T) (status int, body []byte, err error)) {
	c.Encode = func(result any) (int, []byte, error) {
		v, ok := result.(T)
		if !ok {
			return 0, nil, fmt.Errorf("idempotency: a %T result for an encoder of %T", result, v)
		}
		return encode(v)
	}
}
