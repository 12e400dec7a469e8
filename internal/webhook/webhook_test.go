package webhook_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/testkit"
	"github.com/agentic-commerce/agentic-commerce-server/internal/webhook"
)

var webhookTestSecret = []byte("whsec_test_0123456789abcdef0123456789abcdef")

func webhookTestOrder(refunds ...checkout.Refund) *checkout.Order {
	return &checkout.Order{
		ID: "ord_1", CheckoutSessionID: "cs_123", PermalinkURL: "https://shop.example/orders/ord_1",
		Status: checkout.OrderShipped, Amount: 2500, Currency: "usd", Refunds: refunds,
	}
}

// webhookEventSchema is WebhookEvent of the official 2025-09-29 webhook OpenAPI
// document (vendored in internal/acpspec).
func webhookEventSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	return testkit.WebhookEventSchema(t, webhook.Version0929)
}

func webhookKeys(m map[string]any) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// webhookCheckShape checks body against the WebhookEvent shape exactly: no key more or
// less, amounts integers, refunds an array.
func webhookCheckShape(t *testing.T, body []byte, eventType, status string, refunds [][2]any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var ev map[string]any
	if err := dec.Decode(&ev); err != nil {
		t.Fatalf("payload is not a JSON object: %v\n%s", err, body)
	}
	if got := webhookKeys(ev); !slices.Equal(got, []string{"data", "type"}) {
		t.Errorf("event keys = %v, want [data type]", got)
	}
	if ev["type"] != eventType {
		t.Errorf("type = %v, want %s", ev["type"], eventType)
	}
	data, ok := ev["data"].(map[string]any)
	if !ok {
		t.Fatalf("data = %#v", ev["data"])
	}
	if got := webhookKeys(data); !slices.Equal(got, []string{"checkout_session_id", "permalink_url", "refunds", "status", "type"}) {
		t.Errorf("data keys = %v", got)
	}
	if data["type"] != "order" || data["checkout_session_id"] != "cs_123" ||
		data["permalink_url"] != "https://shop.example/orders/ord_1" || data["status"] != status {
		t.Errorf("data = %v", data)
	}
	rs, ok := data["refunds"].([]any)
	if !ok {
		t.Fatalf("refunds = %#v, want an array (never null)", data["refunds"])
	}
	if len(rs) != len(refunds) {
		t.Fatalf("refunds = %v, want %v", rs, refunds)
	}
	for i, raw := range rs {
		r, ok := raw.(map[string]any)
		if !ok {
			t.Fatalf("refund %d = %#v", i, raw)
		}
		if got := webhookKeys(r); !slices.Equal(got, []string{"amount", "type"}) {
			t.Errorf("refund %d keys = %v", i, got)
		}
		n, ok := r["amount"].(json.Number)
		if !ok {
			t.Fatalf("refund %d amount = %#v, want a JSON number", i, r["amount"])
		}
		amount, err := n.Int64()
		if err != nil || strings.ContainsAny(n.String(), ".eE") {
			t.Errorf("refund %d amount = %s, want an integer", i, n)
		}
		if r["type"] != refunds[i][0] || amount != refunds[i][1] {
			t.Errorf("refund %d = %v, want %v", i, r, refunds[i])
		}
	}
}

func TestWebhookPayloadMatchesTheSchema(t *testing.T) {
	t.Parallel()
	sch := webhookEventSchema(t)
	validate := func(body []byte) {
		t.Helper()
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if err := sch.Validate(inst); err != nil {
			t.Errorf("payload does not validate against WebhookEvent: %v\n%s", err, body)
		}
	}

	// The schema is not vacuous: a key more, or an amount as a string, is refused.
	for _, bad := range []string{
		`{"type":"order_create","data":{"type":"order","checkout_session_id":"cs","permalink_url":"https://x.example/o","status":"created","refunds":[],"id":"ord"}}`,
		`{"type":"order_update","data":{"type":"order","checkout_session_id":"cs","permalink_url":"https://x.example/o","status":"created","refunds":[{"type":"store_credit","amount":"1.00"}]}}`,
		`{"type":"order_update","data":{"type":"order","checkout_session_id":"cs","permalink_url":"https://x.example/o","status":"created","refunds":null}}`,
	} {
		inst, _ := jsonschema.UnmarshalJSON(strings.NewReader(bad))
		if sch.Validate(inst) == nil {
			t.Fatalf("WebhookEvent schema accepts %s", bad)
		}
	}

	// No refunds, nil or empty: refunds is [] (the schema requires the array).
	for _, o := range []*checkout.Order{webhookTestOrder(), webhookTestOrder([]checkout.Refund{}...)} {
		o.Status = checkout.OrderCreated
		body, err := webhook.Payload(webhook.OrderCreate, o)
		if err != nil {
			t.Fatal(err)
		}
		webhookCheckShape(t, body, "order_create", "created", nil)
		if !bytes.Contains(body, []byte(`"refunds":[]`)) {
			t.Errorf("empty refunds not encoded as []: %s", body)
		}
		validate(body)
	}

	// With refunds, every status, both event types.
	now := time.Now()
	o := webhookTestOrder(
		checkout.Refund{ID: "rf_1", Type: checkout.RefundStoreCredit, Amount: 100, CreatedAt: now},
		checkout.Refund{ID: "rf_2", Type: checkout.RefundOriginalPayment, Amount: 2399, CreatedAt: now},
	)
	for _, st := range []checkout.OrderStatus{checkout.OrderCreated, checkout.OrderManualReview, checkout.OrderConfirmed,
		checkout.OrderShipped, checkout.OrderFulfilled, checkout.OrderCanceled} {
		for _, typ := range []string{webhook.OrderCreate, webhook.OrderUpdate} {
			o.Status = st
			body, err := webhook.Payload(typ, o)
			if err != nil {
				t.Fatal(err)
			}
			webhookCheckShape(t, body, typ, string(st), [][2]any{{"store_credit", int64(100)}, {"original_payment", int64(2399)}})
			validate(body)
			// Nothing of the order beyond the schema leaks (ids, amount, currency).
			for _, leak := range []string{"rf_1", "2500", "usd", "created_at", `"id"`, `"amount":2500`} {
				if bytes.Contains(body, []byte(leak)) {
					t.Errorf("payload holds %q: %s", leak, body)
				}
			}
		}
	}
}

func TestWebhookSignature(t *testing.T) {
	t.Parallel()
	at := time.Unix(1759147200, 987654321) // sub-second part is dropped
	body := []byte(`{"type":"order_create","data":{}}`)
	sig := webhook.Signature(webhookTestSecret, at, body)
	if !regexp.MustCompile(`^t=1759147200,v1=[0-9a-f]{64}$`).MatchString(sig) {
		t.Fatalf("signature = %q, want t=<unix>,v1=<64 hex>", sig)
	}
	ts, ok := testkit.Verify(webhookTestSecret, sig, body)
	if !ok || ts.Unix() != at.Unix() {
		t.Errorf("receiver cannot verify %q (t=%v)", sig, ts)
	}
	// Known answer, computed independently of the package.
	m := hmac.New(sha256.New, webhookTestSecret)
	m.Write([]byte("1759147200." + string(body)))
	if want := "t=1759147200,v1=" + hex.EncodeToString(m.Sum(nil)); sig != want {
		t.Errorf("signature = %s, want %s", sig, want)
	}
	// Any change of body, time or secret breaks it.
	if _, ok := testkit.Verify(webhookTestSecret, sig, append(body, ' ')); ok {
		t.Error("signature verifies a changed body")
	}
	if _, ok := testkit.Verify([]byte("another-secret-0123456789abcdef0123"), sig, body); ok {
		t.Error("signature verifies under another secret")
	}
	later := webhook.Signature(webhookTestSecret, at.Add(time.Second), body)
	if later == sig {
		t.Error("signature does not depend on the time")
	}
	forged := strings.Replace(sig, "t=1759147200", "t=1759147201", 1)
	if _, ok := testkit.Verify(webhookTestSecret, forged, body); ok {
		t.Error("a replayed signature with a new t verifies")
	}
}

func TestWebhookBackoff(t *testing.T) {
	t.Parallel()
	prevMax := time.Duration(0)
	for attempts := 0; attempts <= 40; attempts++ {
		d := time.Hour
		if attempts < 12 {
			d = min(time.Second<<attempts, time.Hour)
		}
		if attempts > 0 && d < prevMax {
			t.Errorf("attempt %d: ceiling %v shrank from %v", attempts, d, prevMax)
		}
		prevMax = d
		lo, hi := d, time.Duration(0)
		for range 300 {
			b := webhook.Backoff(attempts)
			if b < d/2 || b > d {
				t.Fatalf("Backoff(%d) = %v, want within [%v, %v]", attempts, b, d/2, d)
			}
			lo, hi = min(lo, b), max(hi, b)
		}
		// Jitter: the samples spread over the window rather than sitting on one value.
		if hi-lo < d/10 {
			t.Errorf("Backoff(%d): samples span only %v..%v", attempts, lo, hi)
		}
	}
	if b := webhook.Backoff(0); b < 500*time.Millisecond || b > time.Second {
		t.Errorf("first retry after %v, want 0.5-1s", b)
	}
	for _, a := range []int{12, 13, 20, 62, 63, 64, 1000, 1 << 30} {
		if b := webhook.Backoff(a); b < 30*time.Minute || b > time.Hour {
			t.Errorf("Backoff(%d) = %v, want capped at 1h", a, b)
		}
	}
}

// webhookFakeEvent is one row of the in-memory outbox.
type webhookFakeEvent struct {
	ev      webhook.Event
	status  string // pending, delivered, dead
	next    time.Time
	results []webhook.Result
}

// webhookFakeOutbox implements webhook.Outbox in memory: the next due pending event, in
// id order, locked while it is sent.
type webhookFakeOutbox struct {
	mu     sync.Mutex
	events []*webhookFakeEvent
	busy   map[int64]bool
}

func (o *webhookFakeOutbox) add(ev webhook.Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.events = append(o.events, &webhookFakeEvent{ev: ev, status: "pending"})
}

// dueAgain makes every pending event due now, as if its backoff had passed.
func (o *webhookFakeOutbox) dueAgain() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, e := range o.events {
		e.next = time.Time{}
	}
}

// allDone reports whether no event is pending any more.
func (o *webhookFakeOutbox) allDone() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, e := range o.events {
		if e.status == "pending" {
			return false
		}
	}
	return true
}

func (o *webhookFakeOutbox) get(id int64) webhookFakeEvent {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, e := range o.events {
		if e.ev.ID == id {
			return *e
		}
	}
	panic("no event " + strconv.FormatInt(id, 10))
}

func (o *webhookFakeOutbox) Deliver(ctx context.Context, send func(webhook.Event) webhook.Result) (bool, error) {
	o.mu.Lock()
	if o.busy == nil {
		o.busy = map[int64]bool{}
	}
	var pick *webhookFakeEvent
	now := time.Now()
	for _, e := range o.events {
		if e.status == "pending" && !o.busy[e.ev.ID] && !e.next.After(now) {
			pick = e
			break
		}
	}
	if pick == nil {
		o.mu.Unlock()
		return false, ctx.Err()
	}
	o.busy[pick.ev.ID] = true
	ev := pick.ev
	o.mu.Unlock()

	res := send(ev)

	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.busy, ev.ID)
	pick.results = append(pick.results, res)
	pick.ev.Attempts++
	switch {
	case res.Delivered:
		pick.status = "delivered"
	case res.Dead:
		pick.status = "dead"
	default:
		pick.next = res.NextRetry
	}
	return true, nil
}

func webhookLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func webhookEvent(id int64, created time.Time) webhook.Event {
	o := webhookTestOrder()
	o.Status = checkout.OrderCreated
	payload, _ := webhook.Payload(webhook.OrderCreate, o)
	return webhook.Event{ID: id, OrderID: "ord_1", Type: webhook.OrderCreate, Payload: payload, CreatedAt: created}
}

func webhookCheckRequest(t *testing.T, h testkit.Hit, ev webhook.Event, sentAfter time.Time) {
	t.Helper()
	if ct := h.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if id := h.Header.Get("Request-Id"); id != "evt_"+strconv.FormatInt(ev.ID, 10) || id != ev.RequestID() {
		t.Errorf("Request-Id = %q, want evt_%d", id, ev.ID)
	}
	ts, err := time.Parse(time.RFC3339, h.Header.Get("Timestamp"))
	if err != nil {
		t.Errorf("Timestamp %q is not RFC 3339: %v", h.Header.Get("Timestamp"), err)
	} else if ts.Before(sentAfter.Add(-time.Second)) || ts.After(time.Now().Add(time.Second)) {
		t.Errorf("Timestamp = %v, want about now", ts)
	}
	if !bytes.Equal(h.Body, ev.Payload) {
		t.Errorf("body = %s, want the stored payload %s", h.Body, ev.Payload)
	}
	sigT, ok := testkit.Verify(webhookTestSecret, h.Header.Get("Merchant-Signature"), h.Body)
	if !ok {
		t.Errorf("Merchant-Signature %q does not verify", h.Header.Get("Merchant-Signature"))
	}
	if err == nil && sigT.Unix() != ts.Unix() {
		t.Errorf("signature t = %d, Timestamp = %v: they must be the same instant", sigT.Unix(), ts)
	}
}

func TestWebhookWorkerSendsASignedEvent(t *testing.T) {
	t.Parallel()
	rcv := testkit.NewReceiver(t, func(int, http.ResponseWriter, *http.Request) {})
	ob := &webhookFakeOutbox{}
	ev := webhookEvent(42, time.Now())
	ob.add(ev)
	var observed []webhook.Result
	w := webhook.NewWorker(webhook.Config{URL: rcv.URL, Secret: webhookTestSecret, Timeout: 5 * time.Second, Horizon: time.Hour}, ob, webhookLogger())
	w.Observe = func(r webhook.Result) { observed = append(observed, r) }

	start := time.Now()
	n, err := w.DeliverDue(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("DeliverDue = %d, %v; want 1 attempt", n, err)
	}
	hits := rcv.Hits()
	if len(hits) != 1 {
		t.Fatalf("receiver got %d requests", len(hits))
	}
	webhookCheckRequest(t, hits[0], ev, start)
	got := ob.get(42)
	if got.status != "delivered" || len(got.results) != 1 || !got.results[0].Delivered || got.results[0].Error != "" {
		t.Errorf("event after delivery: %+v", got)
	}
	if len(observed) != 1 || !observed[0].Delivered {
		t.Errorf("Observe saw %+v", observed)
	}
	// Nothing left: another pass sends nothing.
	if n, err := w.DeliverDue(context.Background()); n != 0 || err != nil {
		t.Errorf("second DeliverDue = %d, %v", n, err)
	}
}

func TestWebhookWorkerAnyTwoHundredIsDelivered(t *testing.T) {
	t.Parallel()
	for _, code := range []int{200, 201, 202, 204, 299} {
		rcv := testkit.NewReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) })
		ob := &webhookFakeOutbox{}
		ob.add(webhookEvent(1, time.Now()))
		w := webhook.NewWorker(webhook.Config{URL: rcv.URL, Secret: webhookTestSecret, Timeout: 5 * time.Second, Horizon: time.Hour}, ob, webhookLogger())
		if _, err := w.DeliverDue(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := ob.get(1); got.status != "delivered" {
			t.Errorf("HTTP %d: event is %s (%+v)", code, got.status, got.results)
		}
	}
}

func TestWebhookWorkerRetriesFailuresWithTheSameRequestID(t *testing.T) {
	t.Parallel()
	for _, code := range []int{500, 502, 503, 400, 401, 404, 409, 429} {
		rcv := testkit.NewReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
			if n <= 2 {
				w.WriteHeader(code)
			}
		})
		ob := &webhookFakeOutbox{}
		ev := webhookEvent(7, time.Now())
		ob.add(ev)
		w := webhook.NewWorker(webhook.Config{URL: rcv.URL, Secret: webhookTestSecret, Timeout: 5 * time.Second, Horizon: time.Hour}, ob, webhookLogger())

		for attempt := 1; attempt <= 2; attempt++ {
			before := time.Now()
			if n, err := w.DeliverDue(context.Background()); n != 1 || err != nil {
				t.Fatalf("HTTP %d attempt %d: DeliverDue = %d, %v", code, attempt, n, err)
			}
			got := ob.get(7)
			res := got.results[attempt-1]
			if res.Delivered || res.Dead || got.status != "pending" {
				t.Fatalf("HTTP %d attempt %d: result %+v, status %s; want a retry", code, attempt, res, got.status)
			}
			// Backoff(attempts before this one): [0.5s, 1s] then [1s, 2s].
			ceiling := time.Second << (attempt - 1)
			if !res.NextRetry.After(before.Add(ceiling/2-10*time.Millisecond)) || res.NextRetry.After(time.Now().Add(ceiling)) {
				t.Errorf("HTTP %d attempt %d: NextRetry in %v, want %v..%v", code, attempt, res.NextRetry.Sub(before), ceiling/2, ceiling)
			}
			if !strings.Contains(res.Error, strconv.Itoa(code)) {
				t.Errorf("HTTP %d: Error = %q", code, res.Error)
			}
			// Not due yet: nothing is sent before the backoff has passed.
			if n, _ := w.DeliverDue(context.Background()); n != 0 {
				t.Fatalf("HTTP %d: a retry was sent before it was due", code)
			}
			ob.dueAgain()
		}
		if n, err := w.DeliverDue(context.Background()); n != 1 || err != nil {
			t.Fatalf("HTTP %d third attempt: %d, %v", code, n, err)
		}
		if got := ob.get(7); got.status != "delivered" || got.ev.Attempts != 3 {
			t.Errorf("HTTP %d: after 3 attempts the event is %s with %d attempts", code, got.status, got.ev.Attempts)
		}
		hits := rcv.Hits()
		if len(hits) != 3 {
			t.Fatalf("HTTP %d: receiver got %d requests, want 3", code, len(hits))
		}
		for _, h := range hits {
			webhookCheckRequest(t, h, ev, time.Now().Add(-time.Minute))
		}
	}
}

func TestWebhookWorkerTimeoutIsARetry(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	rcv := testkit.NewReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		select { // far past the timeout, unless the client gives up (it must)
		case <-r.Context().Done():
		case <-release:
		case <-time.After(10 * time.Second):
		}
	})
	defer close(release)
	ob := &webhookFakeOutbox{}
	ob.add(webhookEvent(3, time.Now()))
	w := webhook.NewWorker(webhook.Config{URL: rcv.URL, Secret: webhookTestSecret, Timeout: 200 * time.Millisecond, Horizon: time.Hour}, ob, webhookLogger())

	start := time.Now()
	n, err := w.DeliverDue(context.Background())
	took := time.Since(start)
	if n != 1 || err != nil {
		t.Fatalf("DeliverDue = %d, %v", n, err)
	}
	if took > 3*time.Second {
		t.Errorf("an attempt against a hanging receiver took %v with a 200ms timeout", took)
	}
	got := ob.get(3)
	res := got.results[0]
	if res.Delivered || res.Dead || got.status != "pending" || res.Error == "" {
		t.Fatalf("result %+v status %s; want a retry", res, got.status)
	}
	if !res.NextRetry.After(time.Now()) {
		t.Errorf("NextRetry %v is not in the future", res.NextRetry)
	}
}

func TestWebhookWorkerUnreachableReceiverIsARetry(t *testing.T) {
	t.Parallel()
	rcv := httptest.NewServer(http.NotFoundHandler())
	url := rcv.URL
	rcv.Close() // nothing listens there any more
	ob := &webhookFakeOutbox{}
	ob.add(webhookEvent(4, time.Now()))
	w := webhook.NewWorker(webhook.Config{URL: url, Secret: webhookTestSecret, Timeout: time.Second, Horizon: time.Hour}, ob, webhookLogger())
	if _, err := w.DeliverDue(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := ob.get(4)
	if got.status != "pending" || got.results[0].Error == "" || !got.results[0].NextRetry.After(time.Now()) {
		t.Errorf("event %+v", got)
	}
}

func TestWebhookWorkerPastTheHorizonIsDead(t *testing.T) {
	t.Parallel()
	rcv := testkit.NewReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
	ob := &webhookFakeOutbox{}
	ob.add(webhookEvent(1, time.Now().Add(-2*time.Hour))) // written before the horizon
	ob.add(webhookEvent(2, time.Now()))                   // within it
	var observed []webhook.Result
	w := webhook.NewWorker(webhook.Config{URL: rcv.URL, Secret: webhookTestSecret, Timeout: time.Second, Horizon: time.Hour}, ob, webhookLogger())
	w.Observe = func(r webhook.Result) { observed = append(observed, r) }
	if n, err := w.DeliverDue(context.Background()); n != 2 || err != nil {
		t.Fatalf("DeliverDue = %d, %v", n, err)
	}
	old, fresh := ob.get(1), ob.get(2)
	if old.status != "dead" || !old.results[0].Dead || old.results[0].Error == "" || old.results[0].Delivered {
		t.Errorf("event past the horizon: %s %+v; want dead with an error", old.status, old.results)
	}
	if fresh.status != "pending" || fresh.results[0].Dead {
		t.Errorf("event within the horizon: %s %+v; want a retry", fresh.status, fresh.results)
	}
	if len(observed) != 2 {
		t.Errorf("Observe saw %d results", len(observed))
	}

	// Horizon 0: the first failure is final.
	ob = &webhookFakeOutbox{}
	ob.add(webhookEvent(5, time.Now()))
	w = webhook.NewWorker(webhook.Config{URL: rcv.URL, Secret: webhookTestSecret, Timeout: time.Second, Horizon: 0}, ob, webhookLogger())
	if _, err := w.DeliverDue(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := ob.get(5); got.status != "dead" || !got.results[0].Dead {
		t.Errorf("Horizon 0: %s %+v", got.status, got.results)
	}

	// A success past the horizon is still a success.
	ok := testkit.NewReceiver(t, func(int, http.ResponseWriter, *http.Request) {})
	ob = &webhookFakeOutbox{}
	ob.add(webhookEvent(6, time.Now().Add(-48*time.Hour)))
	w = webhook.NewWorker(webhook.Config{URL: ok.URL, Secret: webhookTestSecret, Timeout: time.Second, Horizon: time.Hour}, ob, webhookLogger())
	if _, err := w.DeliverDue(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := ob.get(6); got.status != "delivered" {
		t.Errorf("a late success: %s %+v", got.status, got.results)
	}
}

func TestWebhookWorkerRunDeliversEveryEventOnce(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	seen := map[string]int{}
	rcv := testkit.NewReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.Header.Get("Request-Id")]++
		mu.Unlock()
	})
	ob := &webhookFakeOutbox{}
	const events = 30
	for i := 1; i <= events; i++ {
		ob.add(webhookEvent(int64(i), time.Now()))
	}
	var attempts atomic.Int64
	w := webhook.NewWorker(webhook.Config{URL: rcv.URL, Secret: webhookTestSecret, Timeout: 5 * time.Second, Horizon: time.Hour,
		Workers: 4, Poll: 10 * time.Millisecond}, ob, webhookLogger())
	w.Observe = func(webhook.Result) { attempts.Add(1) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()

	deadline := time.Now().Add(10 * time.Second)
	// Wait for the outbox, not the receiver: a request the receiver has seen may still
	// be in flight, and canceling it then makes it a retry (at least once, by design).
	for !ob.allDone() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != events {
		t.Fatalf("receiver saw %d distinct events, want %d", len(seen), events)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s received %d times", id, n)
		}
	}
	if attempts.Load() != events {
		t.Errorf("Observe saw %d attempts, want %d", attempts.Load(), events)
	}
	for i := 1; i <= events; i++ {
		if got := ob.get(int64(i)); got.status != "delivered" {
			t.Errorf("event %d is %s", i, got.status)
		}
	}
}

// A receiver that redirects has not received the event: following a 301/302/303 turns
// the POST into a GET without the body (net/http's redirect rules), so a 200 at the end
// of the redirect chain must not count as a delivery.
func TestWebhookWorkerRedirectIsNotADelivery(t *testing.T) {
	t.Parallel()
	var posts, gets atomic.Int64
	rcv := testkit.NewReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/hook":
			posts.Add(1)
			http.Redirect(w, r, "/login", http.StatusFound)
		default:
			gets.Add(1)
			_, _ = io.WriteString(w, "<html>log in</html>")
		}
	})
	ob := &webhookFakeOutbox{}
	ob.add(webhookEvent(9, time.Now()))
	w := webhook.NewWorker(webhook.Config{URL: rcv.URL + "/hook", Secret: webhookTestSecret, Timeout: 5 * time.Second, Horizon: time.Hour}, ob, webhookLogger())
	if _, err := w.DeliverDue(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := ob.get(9)
	if got.status == "delivered" {
		t.Errorf("BUG: a 302 to a page that answers GET with 200 counts as delivered (POSTs %d, GETs without the body %d); "+
			"the event is lost. The webhook client must not follow redirects (CheckRedirect returning http.ErrUseLastResponse)",
			posts.Load(), gets.Load())
	}
}
