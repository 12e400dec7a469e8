// Package webhook sends order events to the agent platform: the event bodies of each
// ACP version (one Encoder per version, chosen by WEBHOOK_API_VERSION), the
// Merchant-Signature, and a worker that delivers the transactional outbox at least
// once, in order per order, with retries and backoff.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
)

// Signature is the Merchant-Signature header: t=<unix seconds>,v1=<hex HMAC-SHA256 of
// "<t>.<body>" under the webhook secret>.
func Signature(secret []byte, at time.Time, body []byte) string {
	t := strconv.FormatInt(at.Unix(), 10)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(t))
	m.Write([]byte("."))
	m.Write(body)
	return "t=" + t + ",v1=" + hex.EncodeToString(m.Sum(nil))
}

// Event is one outbox row to deliver. Its body is either stored already encoded
// (Payload: rows written before the outbox kept snapshots, in 2025-09-29) or encoded at
// send time, in the worker's API version, from the snapshot (Type, Order, OccurredAt).
type Event struct {
	ID      int64
	OrderID string
	Type    string
	// Payload, when not nil, is the body to send byte for byte.
	Payload []byte
	// Order is the order as it was when the event happened (the snapshot).
	Order *checkout.Order
	// OccurredAt is when the event happened (from the snapshot): the only source of an
	// event time in a body, so that every attempt sends the same bytes.
	OccurredAt time.Time
	// Unreadable, when set, says why the stored event could not be read (say a snapshot
	// format this release does not know); the attempt fails and is retried like a
	// refused delivery, until the horizon.
	Unreadable error
	Attempts   int
	CreatedAt  time.Time
}

// RequestID is the stable Request-Id of an event: the same on every retry, so the
// receiver can drop duplicates.
func (e Event) RequestID() string { return "evt_" + strconv.FormatInt(e.ID, 10) }

// Result is the outcome of one delivery attempt.
type Result struct {
	Delivered bool
	// Dead is set when the event is given up (past the retry horizon).
	Dead      bool
	NextRetry time.Time
	Error     string
}

// Outbox hands out due events one at a time. Deliver locks the next due event, calls
// send, and records its result in the same transaction; it reports false when no
// event is due.
type Outbox interface {
	Deliver(ctx context.Context, send func(Event) Result) (bool, error)
}

// Config configures a Worker.
type Config struct {
	URL     string
	Secret  []byte
	Timeout time.Duration // per attempt
	Horizon time.Duration // give up this long after the event was written
	// Workers is how many events are delivered at once by this process.
	Workers int
	// Poll is how long an idle worker waits before looking again.
	Poll time.Duration
	// APIVersion is the ACP version event bodies are encoded in at send time
	// (WEBHOOK_API_VERSION); empty means DefaultVersion.
	APIVersion string
}

// Worker delivers the outbox. Several workers, in one process or many, share the work
// safely: each event row is locked while it is delivered (SKIP LOCKED).
type Worker struct {
	cfg    Config
	enc    Encoder
	outbox Outbox
	client *http.Client
	logger *slog.Logger
	now    func() time.Time
	// Observe, when set, is told of every attempt (for metrics).
	Observe func(Result)
}

// NewWorker returns a worker delivering outbox to cfg.URL.
func NewWorker(cfg Config, outbox Outbox, logger *slog.Logger) *Worker {
	if cfg.Workers < 1 {
		cfg.Workers = 1
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.APIVersion == "" {
		cfg.APIVersion = DefaultVersion
	}
	enc, err := EncoderFor(cfg.APIVersion)
	if err != nil {
		// The configuration refuses such a version at start-up; should one get here
		// anyway, snapshot events fail (and are retried) rather than go out wrong.
		enc = func(Event) ([]byte, error) { return nil, err }
	}
	return &Worker{
		cfg: cfg, enc: enc, outbox: outbox, logger: logger, now: time.Now,
		client: &http.Client{
			Timeout: cfg.Timeout,
			// A redirect is not a delivery: following it would re-send as a GET without
			// the body and could count a login page's 200 as received.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// Run delivers until ctx ends.
func (w *Worker) Run(ctx context.Context) {
	done := make(chan struct{})
	for range w.cfg.Workers {
		go func() {
			defer func() { done <- struct{}{} }()
			w.loop(ctx)
		}()
	}
	for range w.cfg.Workers {
		<-done
	}
}

func (w *Worker) loop(ctx context.Context) {
	for ctx.Err() == nil {
		delivered, err := w.outbox.Deliver(ctx, func(e Event) Result { return w.attempt(ctx, e) })
		if err != nil && ctx.Err() == nil {
			w.logger.Warn("webhook outbox", slog.Any("error", err))
		}
		if delivered && err == nil {
			continue
		}
		select {
		case <-ctx.Done():
		case <-time.After(w.cfg.Poll):
		}
	}
}

// DeliverDue delivers every event due now and returns how many attempts it made (for
// tests and one-off runs).
func (w *Worker) DeliverDue(ctx context.Context) (int, error) {
	n := 0
	for {
		ok, err := w.outbox.Deliver(ctx, func(e Event) Result { return w.attempt(ctx, e) })
		if err != nil || !ok {
			return n, err
		}
		n++
	}
}

// attempt POSTs one event. Any 2xx is success; anything else is retried with
// exponential backoff and jitter until the horizon, then the event is dead.
func (w *Worker) attempt(ctx context.Context, e Event) Result {
	now := w.now()
	err := w.post(ctx, e, now)
	var res Result
	switch {
	case err == nil:
		res = Result{Delivered: true}
	case now.Sub(e.CreatedAt) >= w.cfg.Horizon:
		res = Result{Dead: true, Error: err.Error()}
		w.logger.Error("webhook event dead: retry horizon reached", slog.String("event", e.RequestID()),
			slog.String("order_id", e.OrderID), slog.Int("attempts", e.Attempts+1), slog.Any("error", err))
	default:
		res = Result{NextRetry: now.Add(Backoff(e.Attempts)), Error: err.Error()}
		w.logger.Warn("webhook delivery failed; will retry", slog.String("event", e.RequestID()),
			slog.Int("attempts", e.Attempts+1), slog.Time("next_retry", res.NextRetry), slog.Any("error", err))
	}
	if w.Observe != nil {
		w.Observe(res)
	}
	return res
}

func (w *Worker) post(ctx context.Context, e Event, now time.Time) error {
	payload, err := body(w.enc, e)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(payload))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Request-Id", e.RequestID())
	req.Header.Set("Timestamp", now.UTC().Format(time.RFC3339))
	req.Header.Set("Merchant-Signature", Signature(w.cfg.Secret, now, payload))
	resp, err := w.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("receiver answered %d", resp.StatusCode)
	}
	return nil
}

// Backoff is the wait before retry number attempts+1: exponential from 1 s, capped at
// one hour, with jitter (between half and all of it) so that retries of many events
// spread out.
func Backoff(attempts int) time.Duration {
	d := time.Hour
	if attempts < 12 {
		d = min(time.Second<<attempts, time.Hour)
	}
	return d/2 + rand.N(d/2+1)
}
