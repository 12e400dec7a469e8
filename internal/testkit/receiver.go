package testkit

import (
	"bytes"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"
)

// Hit is one request a Receiver got.
type Hit struct {
	Header http.Header
	Body   []byte
	At     time.Time // when it arrived
	// Status is what the receiver answered; 0 while the request is still being answered.
	Status int
}

// RequestID is the Request-Id header of the request.
func (h Hit) RequestID() string { return h.Header.Get("Request-Id") }

// Verify reports whether the Merchant-Signature of the request is valid for secret.
func (h Hit) Verify(secret []byte) bool {
	_, ok := Verify(secret, h.Header.Get("Merchant-Signature"), h.Body)
	return ok
}

// Receiver is a webhook endpoint: an httptest server that records every request (headers
// and body) and answers with respond.
type Receiver struct {
	*httptest.Server
	mu   sync.Mutex
	hits []Hit
}

// NewReceiver starts a receiver, closed when the test ends. respond answers the n-th
// request (n counting from 1); it may read the body again. Its answer is sent when it
// returns. A nil respond answers 200.
func NewReceiver(tb testing.TB, respond func(n int, w http.ResponseWriter, r *http.Request)) *Receiver {
	tb.Helper()
	rcv := &Receiver{}
	rcv.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		rcv.mu.Lock()
		i := len(rcv.hits)
		rcv.hits = append(rcv.hits, Hit{Header: r.Header.Clone(), Body: body, At: time.Now()})
		rcv.mu.Unlock()
		// respond answers into a recorder, so the status is recorded before the
		// sender sees the answer.
		rec := httptest.NewRecorder()
		if respond != nil {
			respond(i+1, rec, r)
		}
		rcv.mu.Lock()
		rcv.hits[i].Status = rec.Code
		rcv.mu.Unlock()
		maps.Copy(w.Header(), rec.Header())
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	tb.Cleanup(rcv.Close)
	return rcv
}

// Hits returns the requests received so far, in arrival order.
func (r *Receiver) Hits() []Hit {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.hits)
}

// WaitFor waits until the receiver has got at least n requests and returns them, failing
// the test when they have not arrived within the given time.
func (r *Receiver) WaitFor(tb testing.TB, n int, within time.Duration) []Hit {
	tb.Helper()
	deadline := time.Now().Add(within)
	for {
		hits := r.Hits()
		if len(hits) >= n {
			return hits
		}
		if time.Now().After(deadline) {
			tb.Fatalf("receiver got %d requests in %v, want %d", len(hits), within, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
