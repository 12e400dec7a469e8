package postgres_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/agentic-commerce/agentic-commerce-server/internal/catalog"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/payment"
	"github.com/agentic-commerce/agentic-commerce-server/internal/pgtest"
	"github.com/agentic-commerce/agentic-commerce-server/internal/postgres"
	"github.com/agentic-commerce/agentic-commerce-server/internal/testkit"
	"github.com/agentic-commerce/agentic-commerce-server/internal/webhook"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var outboxSecret = []byte("outbox-test-secret-0123456789abcdef0123")

var outboxCatalog = []catalog.Product{
	{ID: "prod_tee", Title: "Tee", Variants: []catalog.Variant{
		{ID: "item_123", Title: "Tee", PriceAmount: 1500, Currency: "usd", Available: true, AvailabilityStatus: "in_stock", Fulfillment: checkout.FulfillmentShipping},
		{ID: "item_456", Title: "Hoodie", PriceAmount: 3000, Currency: "usd", Available: true, AvailabilityStatus: "in_stock", Fulfillment: checkout.FulfillmentShipping},
	}},
}

// outboxEnv is a store, the order API and the outbox on one fresh database. It is the
// package's test kit: the lock tests use it too.
type outboxEnv struct {
	t      *testing.T
	pool   *pgxpool.Pool
	store  *postgres.Store
	orders *postgres.Orders
	outbox *postgres.Outbox
	// gateway is the store's PSP: the mock, counting the charges it lets through.
	gateway *payment.CountingGateway
}

func newOutboxEnv(t *testing.T) *outboxEnv {
	t.Helper()
	return outboxEnvOn(t, pgtest.MustPool(t), true)
}

func outboxEnvOn(t *testing.T, pool *pgxpool.Pool, events bool) *outboxEnv {
	t.Helper()
	return outboxEnvWith(t, pool, events, nil)
}

// outboxEnvWith is outboxEnvOn with psp as the gateway behind the counting one (nil:
// the mock); the order API refunds through it too.
func outboxEnvWith(t *testing.T, pool *pgxpool.Pool, events bool, psp payment.Gateway) *outboxEnv {
	t.Helper()
	if _, err := postgres.ImportCatalog(context.Background(), pool, outboxCatalog); err != nil {
		t.Fatalf("import catalog: %v", err)
	}
	gateway := &payment.CountingGateway{Gateway: psp}
	orders := postgres.NewOrders(pool, events)
	if psp != nil {
		orders = orders.WithGateway(gateway)
	}
	return &outboxEnv{
		t: t, pool: pool,
		store: postgres.NewStore(pool, postgres.StoreConfig{
			TTL: time.Hour, Gateway: gateway, PublicBaseURL: "https://shop.example", OrderEvents: events,
		}),
		orders:  orders,
		outbox:  postgres.NewOutbox(pool, time.Minute),
		gateway: gateway,
	}
}

// readySession creates a ready_for_payment session for the item/quantity pairs.
func (e *outboxEnv) readySession(pairs ...any) string {
	e.t.Helper()
	if len(pairs) == 0 {
		pairs = []any{"item_123", 1}
	}
	var its []checkout.ItemRequest
	for i := 0; i+1 < len(pairs); i += 2 {
		its = append(its, checkout.ItemRequest{ID: pairs[i].(string), Quantity: pairs[i+1].(int)})
	}
	ctx := context.Background()
	v, err := e.store.CreateSession(ctx, "", checkout.Changes{
		Items: its,
		Buyer: &checkout.Buyer{FirstName: "Ada", LastName: "Lovelace", Email: "ada@example.com"},
		FulfillmentAddress: &checkout.Address{Name: "Ada", LineOne: "1 Road", City: "San Francisco", State: "CA",
			Country: "US", PostalCode: "94131"},
	})
	if err != nil {
		e.t.Fatalf("create session: %v", err)
	}
	opt := "standard_shipping"
	if _, err := e.store.UpdateSession(ctx, "", v.Session.ID, checkout.Changes{FulfillmentOptionID: &opt}); err != nil {
		e.t.Fatalf("update session: %v", err)
	}
	return v.Session.ID
}

// mustOrder completes a new session with tok_visa and returns its order.
func (e *outboxEnv) mustOrder(pairs ...any) *checkout.Order {
	e.t.Helper()
	sid := e.readySession(pairs...)
	v, err := e.store.CompleteSession(context.Background(), "", sid, checkout.Completion{Token: "tok_visa", Provider: "stripe"})
	if err != nil {
		e.t.Fatalf("complete %s: %v", sid, err)
	}
	if v.Order == nil {
		e.t.Fatalf("complete %s: no order", sid)
	}
	return v.Order
}

func (e *outboxEnv) exec(sql string, args ...any) {
	e.t.Helper()
	if _, err := e.pool.Exec(context.Background(), sql, args...); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
}

func (e *outboxEnv) count(sql string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// outboxRow is one order_events row.
type outboxRow struct {
	ID      int64
	OrderID string
	Type    string
	// Payload is the body a worker delivers for the row in 2025-09-29 (the default
	// WEBHOOK_API_VERSION); Stored and Format are what the row holds.
	Payload   []byte
	Stored    []byte
	Format    string
	Status    string
	Attempts  int
	LastError *string
	Delivered bool
	CreatedAt time.Time
}

func (e *outboxEnv) events(orderID string) []outboxRow {
	e.t.Helper()
	rows, err := e.pool.Query(context.Background(), `
		SELECT id, order_id, type, payload::text, payload_format, status, attempts, last_error, delivered_at IS NOT NULL, created_at
		FROM order_events WHERE $1 = '' OR order_id = $1 ORDER BY id`, orderID)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []outboxRow
	for rows.Next() {
		var r outboxRow
		var payload string
		if err := rows.Scan(&r.ID, &r.OrderID, &r.Type, &payload, &r.Format, &r.Status, &r.Attempts, &r.LastError, &r.Delivered, &r.CreatedAt); err != nil {
			e.t.Fatal(err)
		}
		r.Stored = []byte(payload)
		body, err := webhook.Body(webhook.Version0929, postgres.OutboxEvent(r.ID, r.OrderID, r.Type, r.Format, r.Stored, r.Attempts, r.CreatedAt))
		if err != nil {
			e.t.Fatalf("event %d: %v", r.ID, err)
		}
		r.Payload = body
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// makeDue makes every pending event due now, as if its backoff had passed.
func (e *outboxEnv) makeDue() {
	e.t.Helper()
	e.exec(`UPDATE order_events SET next_attempt_at = now() - interval '1 millisecond' WHERE status = 'pending'`)
}

// outboxPayload is the decoded WebhookEvent.
type outboxPayload struct {
	Type string
	Data struct {
		Type              string
		CheckoutSessionID string `json:"checkout_session_id"`
		PermalinkURL      string `json:"permalink_url"`
		Status            string
		Refunds           []struct {
			Type   string
			Amount json.Number
		}
	}
}

// outboxDecode checks the payload is exactly the WebhookEvent shape and decodes it.
func outboxDecode(t *testing.T, raw []byte) outboxPayload {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("payload: %v\n%s", err, raw)
	}
	keys := func(m map[string]any) []string {
		var ks []string
		for k := range m {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		return ks
	}
	if got := keys(m); !slices.Equal(got, []string{"data", "type"}) {
		t.Errorf("payload keys %v: %s", got, raw)
	}
	data, _ := m["data"].(map[string]any)
	if got := keys(data); !slices.Equal(got, []string{"checkout_session_id", "permalink_url", "refunds", "status", "type"}) {
		t.Errorf("payload data keys %v: %s", got, raw)
	}
	if _, ok := data["refunds"].([]any); !ok {
		t.Errorf("refunds is not an array: %s", raw)
	}
	var p outboxPayload
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	for _, r := range p.Data.Refunds {
		if _, err := r.Amount.Int64(); err != nil {
			t.Errorf("refund amount %s is not an integer", r.Amount)
		}
	}
	return p
}

// outboxHit is one request the receiver answered.
type outboxHit struct {
	RequestID string
	Status    int // what the receiver answered
	Body      []byte
	SigOK     bool
}

// outboxReceiver records every request; answer decides the status for each one, given
// the Request-Id and how many times it was seen before (0 on the first).
type outboxReceiver struct {
	*testkit.Receiver
	mu     sync.Mutex
	seen   map[string]int
	answer func(id string, previous int) int
	// hold, when set, is called before answering (to keep a request in flight).
	hold func(id string)
}

func newOutboxReceiver(t *testing.T, answer func(id string, previous int) int) *outboxReceiver {
	t.Helper()
	r := &outboxReceiver{seen: map[string]int{}, answer: answer}
	r.Receiver = testkit.NewReceiver(t, func(_ int, w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		id := req.Header.Get("Request-Id")
		sigOK := outboxVerify(req.Header.Get("Merchant-Signature"), body)
		r.mu.Lock()
		prev := r.seen[id]
		r.seen[id]++
		hold := r.hold
		r.mu.Unlock()
		if hold != nil {
			hold(id)
		}
		status := r.answer(id, prev)
		if !sigOK {
			status = http.StatusUnauthorized
		}
		w.WriteHeader(status)
	})
	return r
}

func outboxVerify(header string, body []byte) bool {
	return testkit.VerifyFresh(outboxSecret, header, body, time.Minute)
}

// successes returns the requests answered 2xx, in arrival order.
func (r *outboxReceiver) successes() []outboxHit {
	var out []outboxHit
	for _, h := range r.all() {
		if h.Status >= 200 && h.Status < 300 {
			out = append(out, h)
		}
	}
	return out
}

// all returns every request, in arrival order (Status 0 while being answered).
func (r *outboxReceiver) all() []outboxHit {
	var out []outboxHit
	for _, h := range r.Hits() {
		out = append(out, outboxHit{RequestID: h.RequestID(), Status: h.Status, Body: h.Body, SigOK: outboxVerify(h.Header.Get("Merchant-Signature"), h.Body)})
	}
	return out
}

func outboxWorker(outbox webhook.Outbox, url string, horizon time.Duration) *webhook.Worker {
	return webhook.NewWorker(webhook.Config{
		URL: url, Secret: outboxSecret, Timeout: 5 * time.Second, Horizon: horizon, Workers: 2, Poll: 20 * time.Millisecond,
	}, outbox, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func outboxRequestID(id int64) string { return webhook.Event{ID: id}.RequestID() }

// ---------------------------------------------------------------------------------------

func TestOutboxCompleteWritesOneOrderCreate(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t)
	before := time.Now()
	ord := e.mustOrder()
	evs := e.events("")
	if len(evs) != 1 {
		t.Fatalf("events after one completion: %d, want 1", len(evs))
	}
	ev := evs[0]
	if ev.OrderID != ord.ID || ev.Type != "order_create" || ev.Status != "pending" || ev.Attempts != 0 || ev.LastError != nil || ev.Delivered {
		t.Errorf("event = %+v", ev)
	}
	if ev.CreatedAt.Before(before.Add(-time.Second)) || ev.CreatedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("created_at = %v", ev.CreatedAt)
	}
	p := outboxDecode(t, ev.Payload)
	if p.Type != "order_create" || p.Data.Type != "order" || p.Data.Status != "created" || len(p.Data.Refunds) != 0 ||
		p.Data.CheckoutSessionID != ord.CheckoutSessionID || p.Data.PermalinkURL != "https://shop.example/orders/"+ord.ID {
		t.Errorf("payload = %+v (%s)", p, ev.Payload)
	}
	if n, err := e.outbox.Backlog(context.Background()); err != nil || n != 1 {
		t.Errorf("Backlog = %d, %v; want 1", n, err)
	}

	// A refused completion (the session is already completed) writes nothing.
	if _, err := e.store.CompleteSession(context.Background(), "", ord.CheckoutSessionID, checkout.Completion{Token: "tok_visa", Provider: "stripe"}); err == nil {
		t.Fatal("a second completion succeeded")
	}
	// So does a declined one.
	sid := e.readySession()
	if _, err := e.store.CompleteSession(context.Background(), "", sid, checkout.Completion{Token: "tok_chargeDeclined", Provider: "stripe"}); err == nil {
		t.Fatal("a declined completion succeeded")
	}
	if n := len(e.events("")); n != 1 {
		t.Errorf("events after refused completions: %d, want 1", n)
	}
}

func TestOutboxNoEventsWithoutAReceiver(t *testing.T) {
	t.Parallel()
	e := outboxEnvOn(t, pgtest.MustPool(t), false)
	ord := e.mustOrder()
	if _, err := e.orders.SetStatus(context.Background(), ord.ID, checkout.OrderConfirmed); err != nil {
		t.Fatal(err)
	}
	if _, err := e.orders.Refund(context.Background(), ord.ID, checkout.RefundStoreCredit, 100); err != nil {
		t.Fatal(err)
	}
	if n := e.count(`SELECT count(*) FROM order_events`); n != 0 {
		t.Errorf("events written with OrderEvents off: %d", n)
	}
}

func TestOutboxOrderChangesWriteOrderUpdates(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t)
	ctx := context.Background()
	ord := e.mustOrder()

	got, err := e.orders.SetStatus(ctx, ord.ID, checkout.OrderConfirmed)
	if err != nil || got.Status != checkout.OrderConfirmed {
		t.Fatalf("SetStatus confirmed = %+v, %v", got, err)
	}
	if _, err := e.orders.Refund(ctx, ord.ID, checkout.RefundStoreCredit, 300); err != nil {
		t.Fatal(err)
	}
	if _, err := e.orders.SetStatus(ctx, ord.ID, checkout.OrderShipped); err != nil {
		t.Fatal(err)
	}
	evs := e.events(ord.ID)
	if len(evs) != 4 {
		t.Fatalf("events = %d, want create + 3 updates", len(evs))
	}
	want := []struct {
		typ, status string
		refunds     int
	}{{"order_create", "created", 0}, {"order_update", "confirmed", 0}, {"order_update", "confirmed", 1}, {"order_update", "shipped", 1}}
	for i, w := range want {
		p := outboxDecode(t, evs[i].Payload)
		if evs[i].Type != w.typ || p.Type != w.typ || p.Data.Status != w.status || len(p.Data.Refunds) != w.refunds {
			t.Errorf("event %d = %s %+v, want %+v", i, evs[i].Type, p, w)
		}
	}
	p := outboxDecode(t, evs[3].Payload)
	if r := p.Data.Refunds[0]; r.Type != "store_credit" || r.Amount.String() != "300" {
		t.Errorf("refund in payload = %+v", r)
	}

	// The event is written with the change: same instant as the order's updated_at.
	var updated time.Time
	if err := e.pool.QueryRow(ctx, `SELECT updated_at FROM orders WHERE id = $1`, ord.ID).Scan(&updated); err != nil {
		t.Fatal(err)
	}
	if !evs[3].CreatedAt.Equal(updated) {
		t.Errorf("last event created_at %v != order updated_at %v", evs[3].CreatedAt, updated)
	}

	// Refused changes write no event and change nothing.
	for _, tc := range []struct {
		name string
		do   func() error
		code string
	}{
		{"illegal transition", func() error { _, err := e.orders.SetStatus(ctx, ord.ID, checkout.OrderCreated); return err }, "invalid_transition"},
		{"shipped to canceled", func() error { _, err := e.orders.SetStatus(ctx, ord.ID, checkout.OrderCanceled); return err }, "invalid_transition"},
		{"unknown status", func() error { _, err := e.orders.SetStatus(ctx, ord.ID, "lost"); return err }, "invalid"},
		{"refund above paid", func() error {
			_, err := e.orders.Refund(ctx, ord.ID, checkout.RefundOriginalPayment, ord.Amount-300+1)
			return err
		}, "refund_exceeds_payment"},
		{"refund bad type", func() error { _, err := e.orders.Refund(ctx, ord.ID, "cash", 1); return err }, "invalid"},
		{"refund zero", func() error { _, err := e.orders.Refund(ctx, ord.ID, checkout.RefundStoreCredit, 0); return err }, "invalid"},
		{"unknown order", func() error { _, err := e.orders.SetStatus(ctx, "ord_nope", checkout.OrderConfirmed); return err }, "not_found"},
		{"refund unknown order", func() error { _, err := e.orders.Refund(ctx, "ord_nope", checkout.RefundStoreCredit, 1); return err }, "not_found"},
	} {
		err := tc.do()
		de, ok := checkout.AsError(err)
		if !ok || de.Code != tc.code {
			t.Errorf("%s: error %v, want %s", tc.name, err, tc.code)
		}
		if n := len(e.events("")); n != 4 {
			t.Errorf("%s wrote an event (%d events)", tc.name, n)
		}
	}
	after, err := e.orders.Get(ctx, ord.ID)
	if err != nil || after.Status != checkout.OrderShipped || after.Refunded() != 300 {
		t.Errorf("order after refusals = %+v, %v", after, err)
	}
	if _, err := e.orders.Get(ctx, "ord_nope"); !errors.Is(err, postgres.ErrOrderNotFound) {
		t.Errorf("Get unknown = %v", err)
	}

	// Refunding exactly what is left is allowed.
	if _, err := e.orders.Refund(ctx, ord.ID, checkout.RefundOriginalPayment, ord.Amount-300); err != nil {
		t.Errorf("refund of the rest: %v", err)
	}
	if n := len(e.events(ord.ID)); n != 5 {
		t.Errorf("events = %d, want 5", n)
	}
}

// The event and the change commit together: when the event cannot be written, the
// change is rolled back too.
func TestOutboxEventAndChangeShareOneTransaction(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t)
	ctx := context.Background()
	ord := e.mustOrder()
	e.exec(`UPDATE variants SET stock_quantity = 5 WHERE id = 'item_123'`)
	sid := e.readySession("item_123", 2)
	e.exec(`CREATE FUNCTION outbox_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'outbox unavailable'; END $$`)
	e.exec(`CREATE TRIGGER outbox_refuse BEFORE INSERT ON order_events FOR EACH ROW EXECUTE FUNCTION outbox_refuse()`)

	if _, err := e.orders.SetStatus(ctx, ord.ID, checkout.OrderCanceled); err == nil {
		t.Fatal("SetStatus succeeded although its event could not be written")
	}
	if _, err := e.orders.Refund(ctx, ord.ID, checkout.RefundStoreCredit, 100); err == nil {
		t.Fatal("Refund succeeded although its event could not be written")
	}
	if _, err := e.store.CompleteSession(ctx, "", sid, checkout.Completion{Token: "tok_visa", Provider: "stripe"}); err == nil {
		t.Fatal("CompleteSession succeeded although its event could not be written")
	}
	got, err := e.orders.Get(ctx, ord.ID)
	if err != nil || got.Status != checkout.OrderCreated || len(got.Refunds) != 0 {
		t.Errorf("order after failed changes = %+v, %v", got, err)
	}
	if n := e.count(`SELECT count(*) FROM orders WHERE checkout_session_id = $1`, sid); n != 0 {
		t.Errorf("an order was created without its event")
	}
	// The PSP charged before the order's transaction rolled back: the charge's attempt
	// stays pending, holding its stock, for the recovery job to write the order once the
	// outbox takes events again.
	if n := e.count(`SELECT stock_quantity FROM variants WHERE id = 'item_123'`); n != 3 {
		t.Errorf("stock = %d after the charged completion rolled back, want 3 (held by the attempt)", n)
	}
	if n := e.count(`SELECT count(*) FROM payment_attempts WHERE checkout_session_id = $1 AND status = 'pending'`, sid); n != 1 {
		t.Errorf("pending attempts = %d, want 1", n)
	}
	if n := e.count(`SELECT count(*) FROM checkout_sessions WHERE id = $1 AND state = 'complete_in_progress'`, sid); n != 1 {
		t.Errorf("session is not complete_in_progress after its charged completion rolled back")
	}
}

func TestOutboxDeliverRetriesUntilDelivered(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t)
	ctx := context.Background()
	ord := e.mustOrder()
	rcv := newOutboxReceiver(t, func(_ string, previous int) int {
		if previous < 2 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	w := outboxWorker(e.outbox, rcv.URL, time.Hour)
	ev := e.events(ord.ID)[0]

	for attempt := 1; attempt <= 2; attempt++ {
		before := time.Now()
		if n, err := w.DeliverDue(ctx); n != 1 || err != nil {
			t.Fatalf("attempt %d: DeliverDue = %d, %v", attempt, n, err)
		}
		row := e.events(ord.ID)[0]
		if row.Status != "pending" || row.Attempts != attempt || row.LastError == nil || !strings.Contains(*row.LastError, "500") {
			t.Fatalf("after failed attempt %d: %+v", attempt, row)
		}
		var next time.Time
		if err := e.pool.QueryRow(ctx, `SELECT next_attempt_at FROM order_events WHERE id = $1`, ev.ID).Scan(&next); err != nil {
			t.Fatal(err)
		}
		if !next.After(before) {
			t.Errorf("attempt %d: next_attempt_at %v is not in the future", attempt, next)
		}
		// Not due yet: a pass sends nothing.
		if n, err := w.DeliverDue(ctx); n != 0 || err != nil {
			t.Fatalf("attempt %d: a retry went out before it was due (%d, %v)", attempt, n, err)
		}
		e.makeDue()
	}
	if n, err := w.DeliverDue(ctx); n != 1 || err != nil {
		t.Fatalf("third attempt: %d, %v", n, err)
	}
	row := e.events(ord.ID)[0]
	if row.Status != "delivered" || row.Attempts != 3 || row.LastError != nil || !row.Delivered {
		t.Errorf("after delivery: %+v", row)
	}
	e.makeDue()
	if n, err := w.DeliverDue(ctx); n != 0 || err != nil {
		t.Errorf("a delivered event was sent again (%d, %v)", n, err)
	}
	hits := rcv.all()
	if len(hits) != 3 {
		t.Fatalf("receiver got %d requests, want 3", len(hits))
	}
	for _, h := range hits {
		if h.RequestID != outboxRequestID(ev.ID) || !h.SigOK {
			t.Errorf("request %+v", h)
		}
		if p := outboxDecode(t, h.Body); p.Data.Status != "created" || p.Type != "order_create" {
			t.Errorf("body %s", h.Body)
		}
		// Encoded at send time, yet the same bytes on every attempt.
		if !bytes.Equal(h.Body, ev.Payload) {
			t.Errorf("attempt body %s, want %s on every attempt", h.Body, ev.Payload)
		}
	}
	if s := rcv.successes(); len(s) != 1 {
		t.Errorf("delivered %d times, want once", len(s))
	}
	if n, _ := e.outbox.Backlog(ctx); n != 0 {
		t.Errorf("Backlog = %d after delivery", n)
	}
}

func TestOutboxOneOrdersEventsNeverOvertake(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t)
	ctx := context.Background()
	ord := e.mustOrder()
	if _, err := e.orders.SetStatus(ctx, ord.ID, checkout.OrderConfirmed); err != nil {
		t.Fatal(err)
	}
	other := e.mustOrder()
	evs := e.events(ord.ID)
	first, second := outboxRequestID(evs[0].ID), outboxRequestID(evs[1].ID)
	otherID := outboxRequestID(e.events(other.ID)[0].ID)

	var mu sync.Mutex
	failing := true
	rcv := newOutboxReceiver(t, func(id string, _ int) int {
		mu.Lock()
		defer mu.Unlock()
		if id == first && failing {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	w := outboxWorker(e.outbox, rcv.URL, time.Hour)
	for range 3 {
		if _, err := w.DeliverDue(ctx); err != nil {
			t.Fatal(err)
		}
		e.makeDue()
	}
	for _, h := range rcv.all() {
		if h.RequestID == second {
			t.Fatalf("the second event of an order was sent while the first was failing: %v", rcv.all())
		}
	}
	// Another order is not held up.
	if s := rcv.successes(); len(s) != 1 || s[0].RequestID != otherID {
		t.Errorf("successes = %+v, want only the other order's event", s)
	}
	if rows := e.events(ord.ID); rows[0].Attempts != 3 || rows[1].Attempts != 0 || rows[1].Status != "pending" {
		t.Errorf("rows = %+v", rows)
	}

	mu.Lock()
	failing = false
	mu.Unlock()
	e.makeDue()
	if _, err := w.DeliverDue(ctx); err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, h := range rcv.successes() {
		if h.RequestID == first || h.RequestID == second {
			order = append(order, h.RequestID)
		}
	}
	if !slices.Equal(order, []string{first, second}) {
		t.Errorf("deliveries of the order = %v, want %v", order, []string{first, second})
	}
	for _, r := range e.events("") {
		if r.Status != "delivered" {
			t.Errorf("event %d is %s", r.ID, r.Status)
		}
	}
}

// While a worker holds an order's first event in flight, another worker must not send
// the second one.
func TestOutboxInFlightEventHoldsBackItsSuccessor(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t)
	ctx := context.Background()
	ord := e.mustOrder()
	if _, err := e.orders.SetStatus(ctx, ord.ID, checkout.OrderConfirmed); err != nil {
		t.Fatal(err)
	}
	evs := e.events(ord.ID)
	first, second := outboxRequestID(evs[0].ID), outboxRequestID(evs[1].ID)

	inFlight, release := make(chan struct{}), make(chan struct{})
	rcv := newOutboxReceiver(t, func(string, int) int { return http.StatusOK })
	rcv.hold = func(id string) {
		if id == first {
			close(inFlight)
			<-release
		}
	}
	// Two pools on one database, as two instances would have.
	pool2 := outboxSecondPool(t, e.pool)
	w1 := outboxWorker(e.outbox, rcv.URL, time.Hour)
	w2 := outboxWorker(postgres.NewOutbox(pool2, time.Minute), rcv.URL, time.Hour)

	done := make(chan error, 1)
	go func() { _, err := w1.DeliverDue(ctx); done <- err }()
	select {
	case <-inFlight:
	case <-time.After(10 * time.Second):
		t.Fatal("the first event was never sent")
	}
	n, err := w2.DeliverDue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("second worker made %d attempts while the first event was in flight", n)
	}
	for _, h := range rcv.all() {
		if h.RequestID == second {
			t.Error("the second event overtook the first")
		}
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, h := range rcv.successes() {
		order = append(order, h.RequestID)
	}
	if !slices.Equal(order, []string{first, second}) {
		t.Errorf("deliveries = %v, want %v", order, []string{first, second})
	}
}

// outboxSecondPool opens another pool on the database of pool.
func outboxSecondPool(t *testing.T, pool *pgxpool.Pool) *pgxpool.Pool {
	t.Helper()
	p, err := pgxpool.NewWithConfig(context.Background(), pool.Config().Copy())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// Events committed while no worker runs (a crash after the commit) are delivered by a
// worker that starts later; a crash during a delivery leaves the event pending.
func TestOutboxEventsSurviveACrash(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t)
	ctx := context.Background()
	var orders []*checkout.Order
	for range 3 {
		orders = append(orders, e.mustOrder())
	}
	if _, err := e.orders.SetStatus(ctx, orders[0].ID, checkout.OrderCanceled); err != nil {
		t.Fatal(err)
	}
	if _, err := e.orders.Refund(ctx, orders[1].ID, checkout.RefundOriginalPayment, 100); err != nil {
		t.Fatal(err)
	}
	rows := e.events("")
	if len(rows) != 5 {
		t.Fatalf("events = %d, want 5", len(rows))
	}
	for _, r := range rows {
		if r.Status != "pending" || r.Attempts != 0 {
			t.Errorf("event written without a worker: %+v", r)
		}
	}

	// A "crash" during the first delivery: the event was leased and (maybe) sent, but the
	// process died before recording anything. The lease runs out and the event is due again.
	crashing := postgres.NewOutbox(e.pool, time.Second)
	func() {
		defer func() { _ = recover() }()
		_, _ = crashing.Deliver(ctx, func(webhook.Event) webhook.Result { panic("the process dies mid-send") })
	}()
	if n := e.count(`SELECT count(*) FROM order_events WHERE status = 'pending' AND attempts = 0`); n != 5 {
		t.Errorf("pending untouched events after the crash = %d, want 5", n)
	}
	if n := e.count(`SELECT count(*) FROM order_events WHERE next_attempt_at > now()`); n != 1 {
		t.Errorf("leased events after the crash = %d, want 1", n)
	}

	// A worker started later delivers all of them.
	rcv := newOutboxReceiver(t, func(string, int) int { return http.StatusOK })
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	w := outboxWorker(e.outbox, rcv.URL, time.Hour)
	go func() { w.Run(runCtx); close(done) }()
	outboxWaitAllDelivered(t, e, 10*time.Second)
	stop()
	<-done
	got := map[string]int{}
	for _, h := range rcv.successes() {
		got[h.RequestID]++
	}
	for _, r := range rows {
		if got[outboxRequestID(r.ID)] != 1 {
			t.Errorf("event %d delivered %d times", r.ID, got[outboxRequestID(r.ID)])
		}
	}
}

func outboxWaitAllDelivered(t *testing.T, e *outboxEnv, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		n := e.count(`SELECT count(*) FROM order_events WHERE status <> 'delivered'`)
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events still not delivered after %v: %+v", n, within, e.events(""))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestOutboxTwoWorkersDeliverEachEventOnce(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t)
	ctx := context.Background()
	const orders = 20
	for i := range orders {
		ord := e.mustOrder()
		if i%2 == 0 {
			if _, err := e.orders.SetStatus(ctx, ord.ID, checkout.OrderConfirmed); err != nil {
				t.Fatal(err)
			}
			if _, err := e.orders.SetStatus(ctx, ord.ID, checkout.OrderShipped); err != nil {
				t.Fatal(err)
			}
		}
	}
	rows := e.events("")
	if len(rows) != orders+orders {
		t.Fatalf("events = %d, want %d", len(rows), 2*orders)
	}
	// Every fifth event fails its first attempt, so retries interleave with new events.
	rcv := newOutboxReceiver(t, func(id string, previous int) int {
		if previous == 0 && (strings.HasSuffix(id, "0") || strings.HasSuffix(id, "5")) {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	pool2 := outboxSecondPool(t, e.pool)
	workers := []*webhook.Worker{
		outboxWorker(e.outbox, rcv.URL, time.Hour),
		outboxWorker(postgres.NewOutbox(pool2, time.Minute), rcv.URL, time.Hour),
	}
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() { w.Run(runCtx) })
	}
	outboxWaitAllDelivered(t, e, 15*time.Second)
	stop()
	wg.Wait()

	got := map[string]int{}
	byOrder := map[string][]string{}
	for _, h := range rcv.successes() {
		got[h.RequestID]++
		if !h.SigOK {
			t.Errorf("%s: bad signature", h.RequestID)
		}
	}
	idOrder := map[string]string{}
	for _, r := range rows {
		idOrder[outboxRequestID(r.ID)] = r.OrderID
	}
	for _, h := range rcv.successes() {
		byOrder[idOrder[h.RequestID]] = append(byOrder[idOrder[h.RequestID]], h.RequestID)
	}
	for _, r := range rows {
		if n := got[outboxRequestID(r.ID)]; n != 1 {
			t.Errorf("event %d received %d times, want exactly once", r.ID, n)
		}
	}
	if len(got) != len(rows) {
		t.Errorf("receiver got %d distinct events, want %d", len(got), len(rows))
	}
	// Per order, deliveries arrive in id (= write) order.
	for _, r := range rows {
		var want []string
		for _, x := range rows {
			if x.OrderID == r.OrderID {
				want = append(want, outboxRequestID(x.ID))
			}
		}
		if !slices.Equal(byOrder[r.OrderID], want) {
			t.Errorf("order %s: delivered %v, want %v", r.OrderID, byOrder[r.OrderID], want)
		}
	}
	for _, r := range e.events("") {
		if r.Status != "delivered" || !r.Delivered {
			t.Errorf("row %+v", r)
		}
	}
}

func TestOutboxPastTheHorizonIsDead(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t)
	ctx := context.Background()
	ord := e.mustOrder()
	if _, err := e.orders.SetStatus(ctx, ord.ID, checkout.OrderConfirmed); err != nil {
		t.Fatal(err)
	}
	evs := e.events(ord.ID)
	first := outboxRequestID(evs[0].ID)
	rcv := newOutboxReceiver(t, func(id string, _ int) int {
		if id == first {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	w := outboxWorker(e.outbox, rcv.URL, 0)
	if _, err := w.DeliverDue(ctx); err != nil {
		t.Fatal(err)
	}
	rows := e.events(ord.ID)
	if rows[0].Status != "dead" || rows[0].Attempts != 1 || rows[0].LastError == nil || !strings.Contains(*rows[0].LastError, "500") || rows[0].Delivered {
		t.Errorf("failing event with horizon 0: %+v", rows[0])
	}
	// A dead event does not hold the order's later events back forever, and is not retried.
	if rows[1].Status != "delivered" {
		t.Errorf("the event after a dead one: %+v", rows[1])
	}
	e.exec(`UPDATE order_events SET next_attempt_at = now() - interval '1 hour'`)
	if n, err := w.DeliverDue(ctx); n != 0 || err != nil {
		t.Errorf("a dead event was retried (%d, %v)", n, err)
	}
	if n, _ := e.outbox.Backlog(ctx); n != 0 {
		t.Errorf("Backlog counts dead events: %d", n)
	}
}

func TestOutboxCancelRestocksTrackedStockOnly(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t)
	ctx := context.Background()
	e.exec(`UPDATE variants SET stock_quantity = 3 WHERE id = 'item_123'`)
	e.exec(`UPDATE variants SET stock_quantity = NULL WHERE id = 'item_456'`)
	stock := func(id string) *int {
		var n *int
		if err := e.pool.QueryRow(ctx, `SELECT stock_quantity FROM variants WHERE id = $1`, id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	ord := e.mustOrder("item_123", 2, "item_456", 4)
	if s := stock("item_123"); s == nil || *s != 1 {
		t.Fatalf("stock after buying 2 of 3 = %v, want 1", s)
	}
	if s := stock("item_456"); s != nil {
		t.Fatalf("untracked stock became %d", *s)
	}
	if _, err := e.orders.SetStatus(ctx, ord.ID, checkout.OrderCanceled); err != nil {
		t.Fatal(err)
	}
	if s := stock("item_123"); s == nil || *s != 3 {
		t.Errorf("stock after cancel = %v, want 3", s)
	}
	if s := stock("item_456"); s != nil {
		t.Errorf("untracked stock after cancel = %d, want NULL", *s)
	}
	// Other transitions do not restock; a canceled order cannot be canceled (and restocked) twice.
	ord2 := e.mustOrder("item_123", 1)
	for _, st := range []checkout.OrderStatus{checkout.OrderConfirmed, checkout.OrderShipped, checkout.OrderFulfilled} {
		if _, err := e.orders.SetStatus(ctx, ord2.ID, st); err != nil {
			t.Fatal(err)
		}
	}
	if s := stock("item_123"); s == nil || *s != 2 {
		t.Errorf("stock after a fulfilled order = %v, want 2", s)
	}
	if _, err := e.orders.SetStatus(ctx, ord.ID, checkout.OrderCanceled); err == nil {
		t.Error("a canceled order was canceled again")
	}
	if s := stock("item_123"); s == nil || *s != 2 {
		t.Errorf("stock after a refused second cancel = %v, want 2", s)
	}
}

func TestOutboxSweeperExpiresSessionsAndTokens(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t)
	ctx := context.Background()
	stale, fresh := e.readySession(), e.readySession()
	done := e.mustOrder()
	e.exec(`UPDATE checkout_sessions SET expires_at = now() - interval '1 minute' WHERE id = ANY($1)`, []string{stale, done.CheckoutSessionID})

	sw := postgres.NewSweeper(e.pool)
	n, err := sw.ExpireSessions(ctx)
	if err != nil || n != 1 {
		t.Errorf("ExpireSessions = %d, %v; want 1", n, err)
	}
	state := func(id string) (s string, reason *string) {
		if err := e.pool.QueryRow(ctx, `SELECT state, cancel_reason FROM checkout_sessions WHERE id = $1`, id).Scan(&s, &reason); err != nil {
			t.Fatal(err)
		}
		return s, reason
	}
	if s, r := state(stale); s != "canceled" || r == nil || *r != "expired" {
		t.Errorf("expired session: %s %v", s, r)
	}
	if s, r := state(fresh); s != "open" || r != nil {
		t.Errorf("fresh session: %s %v", s, r)
	}
	if s, _ := state(done.CheckoutSessionID); s != "completed" {
		t.Errorf("completed session past its expiry became %s", s)
	}
	if n, err := sw.ExpireSessions(ctx); n != 0 || err != nil {
		t.Errorf("second sweep = %d, %v", n, err)
	}

	insert := func(id, expires string, orderID *string) {
		t.Helper()
		var usedAt any
		if orderID != nil {
			usedAt = time.Now()
		}
		e.exec(`INSERT INTO vault_tokens (id, checkout_session_id, merchant_id, max_amount, currency, expires_at, used_at, order_id,
			card_brand, card_funding_type, card_last4, card_number_type, risk_signals)
			VALUES ($1, 'cs_x', 'merchant', 100, 'usd', now() + $2::interval, $3, $4, 'visa', 'credit', '4242', 'fpan', '[]')`,
			id, expires, usedAt, orderID)
	}
	insert("vt_old_unused", "-48 hours", nil)
	insert("vt_old_used", "-48 hours", &done.ID)
	insert("vt_recent_unused", "-1 hour", nil)
	insert("vt_live", "1 hour", nil)
	if n, err := sw.DeleteExpiredTokens(ctx, 24*time.Hour, 0); err != nil || n != 1 {
		t.Errorf("DeleteExpiredTokens = %d, %v; want 1", n, err)
	}
	rows, err := e.pool.Query(ctx, `SELECT id FROM vault_tokens ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		left = append(left, id)
	}
	rows.Close()
	if want := []string{"vt_live", "vt_old_used", "vt_recent_unused"}; !slices.Equal(left, want) {
		t.Errorf("tokens left = %v, want %v", left, want)
	}
}

// Concurrent changes of one order serialise on its row lock: refunds never add up to more
// than was paid, an order is canceled (and restocked) once, and every change that
// succeeded wrote exactly one event.
func TestOutboxConcurrentChangesOfOneOrder(t *testing.T) {
	t.Parallel()
	e := newOutboxEnv(t)
	ctx := context.Background()
	e.exec(`UPDATE variants SET stock_quantity = 10 WHERE id = 'item_123'`)
	ord := e.mustOrder("item_123", 2)
	quarter := ord.Amount / 4 // four fit, a fifth does not

	var wg sync.WaitGroup
	var mu sync.Mutex
	var refunded, canceled int
	var errs []error
	for range 10 {
		wg.Go(func() {
			_, err := e.orders.Refund(ctx, ord.ID, checkout.RefundOriginalPayment, quarter)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				refunded++
			} else if de, ok := checkout.AsError(err); !ok || de.Code != "refund_exceeds_payment" {
				errs = append(errs, err)
			}
		})
		wg.Go(func() {
			_, err := e.orders.SetStatus(ctx, ord.ID, checkout.OrderCanceled)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				canceled++
			} else if de, ok := checkout.AsError(err); !ok || de.Code != "invalid_transition" {
				errs = append(errs, err)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		t.Errorf("unexpected error: %v", err)
	}
	if refunded != 4 || canceled != 1 {
		t.Errorf("refunds succeeded %d (want 4), cancels succeeded %d (want 1)", refunded, canceled)
	}
	got, err := e.orders.Get(ctx, ord.ID)
	if err != nil || got.Refunded() != 4*quarter || got.Status != checkout.OrderCanceled {
		t.Errorf("order = %+v, %v", got, err)
	}
	if n := e.count(`SELECT stock_quantity FROM variants WHERE id = 'item_123'`); n != 10 {
		t.Errorf("stock = %d, want 10 (restocked exactly once)", n)
	}
	if n := len(e.events(ord.ID)); n != 1+refunded+canceled {
		t.Errorf("events = %d, want %d", n, 1+refunded+canceled)
	}
	// The last event shows the final state.
	rows := e.events(ord.ID)
	last := outboxDecode(t, rows[len(rows)-1].Payload)
	if len(last.Data.Refunds) != refunded {
		t.Errorf("last event has %d refunds, want %d", len(last.Data.Refunds), refunded)
	}
}
