package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/agentic-commerce/agentic-commerce-server/internal/pgtest"
	"github.com/agentic-commerce/agentic-commerce-server/internal/testkit"
)

const (
	instancesSecret   = "instances-webhook-secret-0123456789abcdef"
	instancesAdminKey = "instances-admin-key-0123456789"
)

// instancesClient is shared by the goroutines of these tests; it never follows redirects
// and times out rather than hanging a test.
var instancesClient = &http.Client{Timeout: 15 * time.Second}

// instancesDo sends a request and returns status and body; it is safe from any
// goroutine (errors are returned, not reported with t.Fatal).
func instancesDo(method, url, body string, headers ...string) (int, []byte, error) {
	var b any
	if body != "" {
		b = body
	}
	r, err := (&testkit.Client{HTTP: instancesClient}).Do(method, url, b, headers...)
	return r.Status, r.Body, err
}

func instancesMust(t *testing.T, method, url, body string, want int, headers ...string) map[string]any {
	t.Helper()
	status, raw, err := instancesDo(method, url, body, headers...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	if status != want {
		t.Fatalf("%s %s: %d, want %d; %s", method, url, status, want, raw)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s %s: %v: %s", method, url, err, raw)
	}
	return m
}

// Between SIGTERM and the end of DRAIN_DELAY the instance still serves, but /ready
// answers 503 shutting_down so that load balancers take it out; then it exits 0.
func TestInstancesReadyTurns503DuringTheDrain(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "DATABASE_URL="+pgtest.NewDatabase(t), "DRAIN_DELAY=3s", "SHUTDOWN_TIMEOUT=5s")
	instancesMust(t, http.MethodGet, srv.base+"/ready", "", http.StatusOK)

	signaled := time.Now()
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var sawDrain time.Duration
	for time.Since(signaled) < 2500*time.Millisecond {
		status, raw, err := instancesDo(http.MethodGet, srv.base+"/ready", "")
		if err != nil {
			t.Fatalf("/ready during the drain: %v (the listener must stay open for DRAIN_DELAY)", err)
		}
		if status == http.StatusServiceUnavailable {
			var e map[string]any
			_ = json.Unmarshal(raw, &e)
			if e["code"] != "shutting_down" || e["type"] != "service_unavailable" {
				t.Errorf("/ready during the drain: %s", raw)
			}
			sawDrain = time.Since(signaled)
			break
		}
		if status != http.StatusOK {
			t.Fatalf("/ready: %d %s", status, raw)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if sawDrain == 0 {
		t.Fatalf("/ready never answered 503 after SIGTERM\n%s", srv.logs.String())
	}
	// Still serving: liveness and real traffic in flight are answered.
	if status, _, err := instancesDo(http.MethodGet, srv.base+"/health", ""); err != nil || status != http.StatusOK {
		t.Errorf("/health during the drain: %d %v", status, err)
	}
	status, raw, err := instancesDo(http.MethodPost, srv.base+"/checkout_sessions", `{"items":[{"id":"item_123","quantity":1}]}`)
	if err != nil || (status != http.StatusCreated && status != http.StatusBadRequest) {
		t.Errorf("a request during the drain: %d %v %s", status, err, raw)
	}
	if status, _, _ := instancesDo(http.MethodGet, srv.base+"/ready", ""); status != http.StatusServiceUnavailable {
		t.Errorf("/ready went back to %d during the drain", status)
	}

	select {
	case err := <-srv.done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, srv.logs.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("no exit after SIGTERM\n%s", srv.logs.String())
	}
	if took := time.Since(signaled); took < 2900*time.Millisecond {
		t.Errorf("exited %v after SIGTERM, before DRAIN_DELAY=3s was over", took)
	}
	if srv.cmd.ProcessState.ExitCode() != 0 {
		t.Errorf("exit code %d", srv.cmd.ProcessState.ExitCode())
	}
	logs := srv.logs.String()
	if !strings.Contains(logs, `"msg":"stopped"`) || !strings.Contains(logs, "shutting down") {
		t.Errorf("no clean shutdown in the logs:\n%s", logs)
	}
}

// instancesReceiver is the agent platform's webhook endpoint: it verifies every
// signature, fails some first attempts, and records what it accepted.
type instancesReceiver struct {
	*testkit.Receiver
	mu       sync.Mutex
	attempts map[string]int      // by Request-Id
	accepted map[string]int      // 2xx answers by Request-Id
	statuses map[string][]string // accepted statuses by checkout session, in arrival order
	types    map[string][]string // accepted event types by checkout session
	badSig   []string
	failed   int
}

func newInstancesReceiver(t *testing.T) *instancesReceiver {
	t.Helper()
	r := &instancesReceiver{
		attempts: map[string]int{}, accepted: map[string]int{},
		statuses: map[string][]string{}, types: map[string][]string{},
	}
	r.Receiver = testkit.NewReceiver(t, func(_ int, w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		id := req.Header.Get("Request-Id")
		r.mu.Lock()
		defer r.mu.Unlock()
		if !instancesVerify(req.Header.Get("Merchant-Signature"), body) || req.Header.Get("Content-Type") != "application/json" {
			r.badSig = append(r.badSig, id)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if _, err := time.Parse(time.RFC3339, req.Header.Get("Timestamp")); err != nil {
			r.badSig = append(r.badSig, id+" (Timestamp)")
		}
		first := r.attempts[id] == 0
		r.attempts[id]++
		// About 30% of events fail their first attempt, so retries happen.
		n, _ := strconv.Atoi(strings.TrimPrefix(id, "evt_"))
		if first && n%10 < 3 {
			r.failed++
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		var ev struct {
			Type string
			Data struct {
				CheckoutSessionID string `json:"checkout_session_id"`
				Status            string
			}
		}
		if err := json.Unmarshal(body, &ev); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		r.accepted[id]++
		sid := ev.Data.CheckoutSessionID
		r.statuses[sid] = append(r.statuses[sid], ev.Data.Status)
		r.types[sid] = append(r.types[sid], ev.Type)
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"received":true,"request_id":%q}`, id)
	})
	return r
}

func instancesVerify(header string, body []byte) bool {
	return testkit.VerifyFresh([]byte(instancesSecret), header, body, time.Minute)
}

// Two instances on one database: concurrent completions of one session make exactly one
// order, and the order events written by both are delivered by the workers of both,
// each exactly once and in order per order, with retries.
func TestInstancesShareOneDatabase(t *testing.T) {
	t.Parallel()
	start := time.Now()
	dbURL := emptyDatabase(t)
	env := []string{"DATABASE_URL=" + dbURL}
	mustRun(t, env, "migrate", "up")
	mustRun(t, env, "catalog", "import", "../../internal/catalog/demo/products.jsonl")

	rcv := newInstancesReceiver(t)
	env = append(env,
		"WEBHOOK_URL="+rcv.URL, "WEBHOOK_SECRET="+instancesSecret, "WEBHOOK_RETRY_HORIZON=1h", "WEBHOOK_TIMEOUT=5s",
		"WEBHOOK_WORKERS=2", "ADMIN_API_KEYS="+instancesAdminKey, "DRAIN_DELAY=0s", "SWEEP_INTERVAL=1s",
		"RATE_LIMIT_RPS=0", "PUBLIC_BASE_URL=https://shop.example", "MIGRATE_ON_START=false")
	a, b := startServer(t, env...), startServer(t, env...)
	instances := []*server{a, b}
	t.Logf("setup: %v", time.Since(start))

	// Ten ready sessions, half created on each instance and made ready on the other.
	const sessions = 10
	sids := make([]string, sessions)
	for i := range sids {
		on, other := instances[i%2], instances[(i+1)%2]
		created := instancesMust(t, http.MethodPost, on.base+"/checkout_sessions", `{"items":[{"id":"item_123","quantity":1}],
			"buyer":{"first_name":"Ada","last_name":"Lovelace","email":"ada@example.com"},
			"fulfillment_address":{"name":"Ada","line_one":"1 Road","city":"San Francisco","state":"CA","country":"US","postal_code":"94131"}}`,
			http.StatusCreated)
		sids[i], _ = created["id"].(string)
		s := instancesMust(t, http.MethodPost, other.base+"/checkout_sessions/"+sids[i], `{"fulfillment_option_id":"standard_shipping"}`, http.StatusOK)
		if s["status"] != "ready_for_payment" {
			t.Fatalf("session %s: %v", sids[i], s["status"])
		}
	}

	// Race completions of every session against both instances at once.
	const perInstance = 3
	type result struct {
		status int
		body   map[string]any
		err    error
	}
	results := make([][]result, sessions)
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for i, sid := range sids {
		results[i] = make([]result, 2*perInstance)
		for j := range 2 * perInstance {
			wg.Go(func() {
				<-gate
				status, raw, err := instancesDo(http.MethodPost, instances[j%2].base+"/checkout_sessions/"+sid+"/complete",
					`{"payment_data":{"token":"tok_visa","provider":"stripe"}}`)
				var m map[string]any
				if err == nil {
					err = json.Unmarshal(raw, &m)
				}
				results[i][j] = result{status, m, err}
			})
		}
	}
	close(gate)
	wg.Wait()
	orderIDs := make([]string, sessions)
	for i, rs := range results {
		ok := 0
		for _, r := range rs {
			switch {
			case r.err != nil:
				t.Errorf("session %s: %v", sids[i], r.err)
			case r.status == http.StatusOK:
				ok++
				o, _ := r.body["order"].(map[string]any)
				orderIDs[i], _ = o["id"].(string)
			case r.status == http.StatusMethodNotAllowed && r.body["code"] == "checkout_session_completed":
			case r.status == http.StatusConflict && r.body["code"] == "checkout_session_complete_in_progress":
				// Another instance's charge of the session was with the PSP.
			default:
				t.Errorf("session %s: %d %v", sids[i], r.status, r.body)
			}
		}
		if ok != 1 {
			t.Errorf("session %s: %d completions succeeded, want exactly 1", sids[i], ok)
		}
	}
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var orders, perSession int
	if err := conn.QueryRow(context.Background(),
		`SELECT count(*), coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM orders GROUP BY checkout_session_id) x`).Scan(&orders, &perSession); err != nil {
		t.Fatal(err)
	}
	if orders != sessions || perSession != 1 {
		t.Fatalf("%d sessions with orders, at most %d per session; want %d and 1", orders, perSession, sessions)
	}
	if t.Failed() {
		t.FailNow()
	}

	// Merchant changes through the admin API, on alternating instances.
	expected := map[string][]string{}
	for _, sid := range sids {
		expected[sid] = []string{"created"}
	}
	paths := [][]string{
		{"confirmed", "shipped", "fulfilled"},
		{"confirmed", "shipped"},
		{"manual_review", "confirmed"},
		{"canceled"},
		{"confirmed", "canceled"},
	}
	call := 0
	admin := func(i int, path, body string, want int) {
		t.Helper()
		inst := instances[call%2]
		call++
		instancesMust(t, http.MethodPost, inst.base+"/admin/orders/"+orderIDs[i]+path, body, want, "Authorization", "Bearer "+instancesAdminKey)
	}
	for i, p := range paths {
		for _, st := range p {
			admin(i, "/status", `{"status":"`+st+`"}`, http.StatusOK)
			expected[sids[i]] = append(expected[sids[i]], st)
		}
	}
	admin(5, "/refunds", `{"type":"store_credit","amount":100}`, http.StatusCreated)
	expected[sids[5]] = append(expected[sids[5]], "created")
	admin(5, "/status", `{"status":"confirmed"}`, http.StatusOK)
	expected[sids[5]] = append(expected[sids[5]], "confirmed")
	// A refused change on the other instance writes nothing.
	instancesMust(t, http.MethodPost, instances[call%2].base+"/admin/orders/"+orderIDs[0]+"/status", `{"status":"canceled"}`,
		http.StatusConflict, "Authorization", "Bearer "+instancesAdminKey)

	// Wait until every event is delivered.
	deadline := time.Now().Add(20 * time.Second)
	var pending int
	for {
		if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM order_events WHERE status <> 'delivered'`).Scan(&pending); err != nil {
			t.Fatal(err)
		}
		if pending == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if pending != 0 {
		t.Fatalf("%d events not delivered after 20s\nA:\n%s\nB:\n%s", pending, a.logs.String(), b.logs.String())
	}
	t.Logf("all delivered after %v", time.Since(start))

	rows, err := conn.Query(context.Background(), `SELECT id, attempts FROM order_events ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	dbAttempts := map[string]int{}
	for rows.Next() {
		var id int64
		var attempts int
		if err := rows.Scan(&id, &attempts); err != nil {
			t.Fatal(err)
		}
		dbAttempts["evt_"+strconv.FormatInt(id, 10)] = attempts
	}
	rows.Close()
	wantEvents := 0
	for _, s := range expected {
		wantEvents += len(s)
	}
	if len(dbAttempts) != wantEvents {
		t.Errorf("order_events rows = %d, want %d", len(dbAttempts), wantEvents)
	}

	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if len(rcv.badSig) != 0 {
		t.Errorf("requests with a bad signature or headers: %v", rcv.badSig)
	}
	for id, attempts := range dbAttempts {
		if rcv.accepted[id] != 1 {
			t.Errorf("%s accepted %d times, want exactly once", id, rcv.accepted[id])
		}
		if rcv.attempts[id] != attempts {
			t.Errorf("%s: receiver saw %d attempts, the outbox counts %d", id, rcv.attempts[id], attempts)
		}
	}
	if len(rcv.accepted) != len(dbAttempts) {
		t.Errorf("receiver accepted %d distinct events, the outbox has %d", len(rcv.accepted), len(dbAttempts))
	}
	if rcv.failed == 0 {
		t.Error("no first attempt failed: the retry path was not exercised")
	}
	for _, sid := range sids {
		if got := rcv.statuses[sid]; !slices.Equal(got, expected[sid]) {
			t.Errorf("session %s: statuses received %v, want %v (in the order written)", sid, got, expected[sid])
		}
		if ty := rcv.types[sid]; len(ty) == 0 || ty[0] != "order_create" || slices.Contains(ty[1:], "order_create") {
			t.Errorf("session %s: event types %v", sid, ty)
		}
	}
	t.Logf("%d events, %d failed first attempts, %v in all", len(dbAttempts), rcv.failed, time.Since(start))

	// Both instances stop cleanly.
	var stops sync.WaitGroup
	for _, s := range instances {
		stops.Go(func() {
			if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Error(err)
			}
		})
	}
	stops.Wait()
	for _, s := range instances {
		select {
		case err := <-s.done:
			if err != nil {
				t.Errorf("exit: %v\n%s", err, s.logs.String())
			}
		case <-time.After(20 * time.Second):
			t.Error("an instance did not stop")
		}
		if bytes.Contains([]byte(s.logs.String()), []byte(`"level":"ERROR"`)) {
			t.Errorf("errors in the logs:\n%s", s.logs.String())
		}
	}
}

// Two instances behind round robin, each with the session view cache it has by
// default: each finds the views it kept out of date (the other instance wrote the
// session since), notices, and stops starting from them, as its /metrics shows. Every
// answer is the session as the request left it.
func TestInstancesWithoutAffinityStopUsingKeptViews(t *testing.T) {
	t.Parallel()
	dbURL := emptyDatabase(t)
	env := []string{"DATABASE_URL=" + dbURL}
	mustRun(t, env, "migrate", "up")
	mustRun(t, env, "catalog", "import", "../../internal/catalog/demo/products.jsonl")
	env = append(env, "RATE_LIMIT_RPS=0", "MIGRATE_ON_START=false")
	instances := []*server{startServer(t, env...), startServer(t, env...)}

	const sessions, rounds = 16, 6
	sids := make([]string, sessions)
	for i := range sids {
		created := instancesMust(t, http.MethodPost, instances[0].base+"/checkout_sessions",
			`{"items":[{"id":"item_123","quantity":1}]}`, http.StatusCreated)
		sids[i], _ = created["id"].(string)
	}
	for k := range rounds {
		on := instances[(k+1)%2] // each session's writes alternate between the two
		for _, sid := range sids {
			quantity := k + 2
			s := instancesMust(t, http.MethodPost, on.base+"/checkout_sessions/"+sid,
				fmt.Sprintf(`{"items":[{"id":"item_123","quantity":%d}]}`, quantity), http.StatusOK)
			lines, _ := s["line_items"].([]any)
			if len(lines) != 1 || lines[0].(map[string]any)["item"].(map[string]any)["quantity"] != float64(quantity) {
				t.Fatalf("round %d, session %s: line items %v, want one of quantity %d", k, sid, lines, quantity)
			}
		}
	}
	for n, srv := range instances {
		views := func(result string) float64 {
			t.Helper()
			status, body, err := instancesDo(http.MethodGet, srv.base+"/metrics", "")
			if err != nil || status != http.StatusOK {
				t.Fatalf("instance %d: /metrics: %d %v", n, status, err)
			}
			series := `acp_session_cache_views_total{result="` + result + `"} `
			for line := range strings.SplitSeq(string(body), "\n") {
				if v, ok := strings.CutPrefix(line, series); ok {
					f, err := strconv.ParseFloat(v, 64)
					if err != nil {
						t.Fatalf("instance %d: %q", n, line)
					}
					return f
				}
			}
			t.Fatalf("instance %d: /metrics has no %s", n, series)
			return 0
		}
		// Each instance looks up 32 or 48 views, every one out of date: it stops
		// using them after 11 in a row, and tries one in 16 after that.
		if outOfDate, passed := views("out_of_date"), views("passed"); outOfDate > 16 || passed < 15 {
			t.Errorf("instance %d: %v views out of date and %v passed over, want at most 16 and at least 15", n, outOfDate, passed)
		}
	}
}

// A slow webhook receiver must not take the API down with it. Each delivery attempt
// holds a database transaction (and so a pooled connection) for the whole HTTP call;
// with WEBHOOK_WORKERS at least the pool size (4 by default on a 2-core machine), a
// receiver that hangs until WEBHOOK_TIMEOUT leaves no connection for API requests.
func TestInstancesSlowReceiverDoesNotStarveTheAPI(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	mustRun(t, []string{"DATABASE_URL=" + dbURL}, "catalog", "import", "../../internal/catalog/demo/products.jsonl")
	var mu sync.Mutex
	inFlight := 0
	release := make(chan struct{})
	rcv := testkit.NewReceiver(t, func(_ int, _ http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inFlight++
		mu.Unlock()
		defer func() { mu.Lock(); inFlight--; mu.Unlock() }()
		select { // hang until the sender gives up
		case <-r.Context().Done():
		case <-release:
		case <-time.After(10 * time.Second):
		}
	})
	t.Cleanup(func() { close(release) })
	srv := startServer(t, "DATABASE_URL="+dbURL, "WEBHOOK_URL="+rcv.URL, "WEBHOOK_SECRET="+instancesSecret,
		"WEBHOOK_TIMEOUT=4s", "WEBHOOK_WORKERS=4", "DRAIN_DELAY=0s", "RATE_LIMIT_RPS=0")

	var sids []string
	for range 4 {
		created := instancesMust(t, http.MethodPost, srv.base+"/checkout_sessions", `{"items":[{"id":"item_123","quantity":1}],
			"buyer":{"first_name":"Ada","last_name":"Lovelace","email":"ada@example.com"},
			"fulfillment_address":{"name":"Ada","line_one":"1 Road","city":"San Francisco","state":"CA","country":"US","postal_code":"94131"}}`,
			http.StatusCreated)
		sid, _ := created["id"].(string)
		instancesMust(t, http.MethodPost, srv.base+"/checkout_sessions/"+sid, `{"fulfillment_option_id":"standard_shipping"}`, http.StatusOK)
		sids = append(sids, sid)
	}
	for _, sid := range sids {
		instancesDo(http.MethodPost, srv.base+"/checkout_sessions/"+sid+"/complete", `{"payment_data":{"token":"tok_visa","provider":"stripe"}}`)
	}
	// Wait until the workers are stuck on the receiver.
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := inFlight
		mu.Unlock()
		if n >= 4 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	start := time.Now()
	status, raw, err := instancesDo(http.MethodGet, srv.base+"/checkout_sessions/"+sids[0], "")
	took := time.Since(start)
	if err != nil || status != http.StatusOK {
		t.Fatalf("GET session while deliveries hang: %d %v %s", status, err, raw)
	}
	if took > time.Second {
		t.Errorf("BUG: a GET took %v while 4 webhook deliveries hang: every pooled connection is held by an "+
			"outbox transaction for the whole HTTP call (postgres.Outbox.Deliver), so the API waits for WEBHOOK_TIMEOUT", took.Round(time.Millisecond))
	}
	srv.stop(t)
}
