package main

// Fault tests: the real binary on a real PostgreSQL, killed mid-burst (TestCrashDuringCompletes)
// or cut off from its database by a TCP proxy the test controls (TestDatabaseFaults).
// Both check the payment invariants with SQL afterwards.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/agentic-commerce/agentic-commerce-server/db"
	"github.com/agentic-commerce/agentic-commerce-server/internal/pgtest"
	"github.com/agentic-commerce/agentic-commerce-server/internal/testkit"
)

const faultCatalog = "../../internal/catalog/demo/products.jsonl"

// ---- HTTP ----

// faultClient calls a server without keep-alive, so a killed or restarted server leaves
// no stale connection behind, and reports failures as errors (usable off the test goroutine).
type faultClient struct {
	kit *testkit.Client
}

func newFaultClient(base string) *faultClient {
	return &faultClient{kit: &testkit.Client{Base: base, HTTP: &http.Client{
		Timeout:   20 * time.Second,
		Transport: &http.Transport{DisableKeepAlives: true},
	}}}
}

type faultReply struct {
	status   int
	body     []byte
	typ      string // ACP error type
	code     string // ACP error code
	replayed bool
	elapsed  time.Duration
}

func (r faultReply) String() string {
	return fmt.Sprintf("%d %s (%s)", r.status, bytes.TrimSpace(r.body), r.elapsed.Round(time.Millisecond))
}

func (c *faultClient) do(method, path, body, key string) (faultReply, error) {
	var b any
	if body != "" {
		b = body
	}
	resp, err := c.kit.Do(method, path, b, "Idempotency-Key", key)
	if err != nil {
		return faultReply{}, err
	}
	r := faultReply{status: resp.Status, body: resp.Body, elapsed: resp.Elapsed, replayed: resp.Header.Get("Idempotent-Replayed") == "true"}
	if r.status >= 400 {
		var e struct{ Type, Code string }
		_ = json.Unmarshal(resp.Body, &e)
		r.typ, r.code = e.Type, e.Code
	}
	return r, nil
}

// must calls the server from the test goroutine and decodes the expected response.
func (c *faultClient) must(t *testing.T, method, path, body, key string, want int) map[string]any {
	t.Helper()
	r, err := c.do(method, path, body, key)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if r.status != want {
		t.Fatalf("%s %s: %s, want %d", method, path, r, want)
	}
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("%s %s: %v: %s", method, path, err, r.body)
	}
	return m
}

const (
	faultBuyer   = `{"first_name":"Ada","last_name":"Lovelace","email":"ada@example.com"}`
	faultAddress = `{"name":"Ada Lovelace","line_one":"1234 Chat Road","city":"San Francisco","state":"CA","country":"US","postal_code":"94131"}`
)

func faultCreateBody(item string) string {
	return `{"items":[{"id":"` + item + `","quantity":1}],"buyer":` + faultBuyer + `,"fulfillment_address":` + faultAddress + `}`
}

func faultCompleteBody(token string) string {
	return `{"payment_data":{"token":"` + token + `","provider":"stripe"}}`
}

// faultReadySession creates a ready_for_payment session for one item.
func faultReadySession(t *testing.T, c *faultClient, item string) string {
	t.Helper()
	id, _ := c.must(t, http.MethodPost, "/checkout_sessions", faultCreateBody(item), "", http.StatusCreated)["id"].(string)
	s := c.must(t, http.MethodPost, "/checkout_sessions/"+id, `{"fulfillment_option_id":"standard_shipping"}`, "", http.StatusOK)
	if s["status"] != "ready_for_payment" {
		t.Fatalf("session %s is %v", id, s["status"])
	}
	return id
}

// faultDelegate issues a vt_ token for 4242... bound to sessionID.
func faultDelegate(t *testing.T, c *faultClient, sessionID string) string {
	t.Helper()
	id, _ := c.must(t, http.MethodPost, "/agentic_commerce/delegate_payment", faultDelegateBody(sessionID), "", http.StatusCreated)["id"].(string)
	if !strings.HasPrefix(id, "vt_") {
		t.Fatalf("delegate: id %q", id)
	}
	return id
}

// faultDelegateBody is a delegate_payment request for 4242... bound to sessionID.
func faultDelegateBody(sessionID string) string {
	return fmt.Sprintf(`{
		"payment_method":{"type":"card","card_number_type":"fpan","number":"4242424242424242","exp_month":"12",
			"exp_year":"%d","cvc":"123","display_card_funding_type":"credit","display_last4":"4242","metadata":{}},
		"allowance":{"reason":"one_time","max_amount":100000,"currency":"usd","checkout_session_id":%q,
			"merchant_id":"merchant_123","expires_at":%q},
		"risk_signals":[{"type":"card_testing","score":1,"action":"authorized"}],
		"metadata":{}}`, time.Now().Year()+3, sessionID, time.Now().Add(30*24*time.Hour).UTC().Format(time.RFC3339))
}

// faultOrderID returns the order id of a complete response.
func faultOrderID(body []byte) string {
	var s struct {
		Order *struct {
			ID string `json:"id"`
		} `json:"order"`
	}
	if json.Unmarshal(body, &s) != nil || s.Order == nil {
		return ""
	}
	return s.Order.ID
}

// faultFinal reports whether a response settles a request: anything but a 5xx or a
// "still in flight" 409.
func faultFinal(r faultReply) bool {
	return r.status < 500 && !(r.status == http.StatusConflict && r.code == "idempotency_in_flight")
}

// retryUntilFinal repeats a request with the same key and body until it gets a final
// response or the deadline passes.
func (c *faultClient) retryUntilFinal(method, path, body, key string, deadline time.Time) (faultReply, error) {
	var last faultReply
	var lastErr error
	for time.Now().Before(deadline) {
		r, err := c.do(method, path, body, key)
		if err == nil && faultFinal(r) {
			return r, nil
		}
		last, lastErr = r, err
		time.Sleep(100 * time.Millisecond)
	}
	if lastErr != nil {
		return last, fmt.Errorf("no final response before the deadline: %w", lastErr)
	}
	return last, fmt.Errorf("no final response before the deadline; last: %s", last)
}

// ---- SQL ----

func faultConn(t *testing.T, dbURL string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func faultInt(t *testing.T, conn *pgx.Conn, query string, args ...any) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// faultRowCounts counts the rows of every table a request can write, and the latest change
// of a session (every write to a session moves its updated_at).
func faultRowCounts(t *testing.T, conn *pgx.Conn) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, table := range []string{"checkout_sessions", "line_items", "orders", "vault_tokens", "order_events", "idempotency_keys"} {
		out[table] = fmt.Sprint(faultInt(t, conn, "SELECT count(*) FROM "+table))
	}
	var latest string
	if err := conn.QueryRow(context.Background(), `SELECT coalesce(max(updated_at)::text, '') FROM checkout_sessions`).Scan(&latest); err != nil {
		t.Fatal(err)
	}
	out["checkout_sessions.max(updated_at)"] = latest
	return out
}

// faultCheckInvariants checks what no fault may break: a vault token pays at most one
// order, every order is paid exactly once, every order has its event (when events are
// on), one order per session, and no idempotency key stays in flight.
func faultCheckInvariants(t *testing.T, conn *pgx.Conn, events bool) {
	t.Helper()
	zero := []struct{ what, query string }{
		{"vault tokens with used_at and order_id disagreeing", `SELECT count(*) FROM vault_tokens WHERE (used_at IS NULL) <> (order_id IS NULL)`},
		{"vault-token orders whose token does not point back", `SELECT count(*) FROM orders o WHERE o.payment_method = 'vault_token'
			AND NOT EXISTS (SELECT 1 FROM vault_tokens v WHERE v.id = o.payment_reference AND v.order_id = o.id)`},
		{"vault tokens paying two orders", `SELECT count(*) FROM (SELECT payment_reference FROM orders WHERE payment_method = 'vault_token'
			GROUP BY payment_reference HAVING count(*) > 1) x`},
		{"used vault tokens without their order", `SELECT count(*) FROM vault_tokens v WHERE v.order_id IS NOT NULL
			AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.id = v.order_id AND o.payment_reference = v.id)`},
		{"sessions with two orders", `SELECT count(*) FROM (SELECT checkout_session_id FROM orders GROUP BY 1 HAVING count(*) > 1) x`},
		{"sessions whose state disagrees with having an order", `SELECT count(*) FROM checkout_sessions s
			WHERE (s.state = 'completed') <> EXISTS (SELECT 1 FROM orders o WHERE o.checkout_session_id = s.id)`},
		{"idempotency keys left in flight", `SELECT count(*) FROM idempotency_keys WHERE state = 'in_flight'`},
	}
	if events {
		zero = append(zero, struct{ what, query string }{"orders without exactly one order_create event",
			`SELECT count(*) FROM orders o WHERE (SELECT count(*) FROM order_events e WHERE e.order_id = o.id AND e.type = 'order_create') <> 1`})
	}
	for _, z := range zero {
		if n := faultInt(t, conn, z.query); n != 0 {
			t.Errorf("%d %s", n, z.what)
		}
	}
	orders := faultInt(t, conn, `SELECT count(*) FROM orders`)
	used := faultInt(t, conn, `SELECT count(*) FROM vault_tokens WHERE used_at IS NOT NULL`)
	psp := faultInt(t, conn, `SELECT count(*) FROM orders WHERE payment_method = 'psp_token'`)
	if orders != used+psp {
		t.Errorf("%d orders, but %d used vault tokens + %d PSP payments", orders, used, psp)
	}
}

// faultOutcome is what the database holds for one completion attempt.
type faultOutcome struct {
	state   string
	orderID string
}

// faultAllOrNothing checks that session id (paid with token) is either fully completed
// (order, used token, completed session, and its event when events are on) or untouched
// (open, no order, unused token), and returns which.
func faultAllOrNothing(t *testing.T, conn *pgx.Conn, id, token string, events bool) faultOutcome {
	t.Helper()
	ctx := context.Background()
	var out faultOutcome
	if err := conn.QueryRow(ctx, `SELECT state, coalesce((SELECT o.id FROM orders o WHERE o.checkout_session_id = s.id), '')
		FROM checkout_sessions s WHERE s.id = $1`, id).Scan(&out.state, &out.orderID); err != nil {
		t.Fatalf("session %s: %v", id, err)
	}
	var tokenOrder string
	if strings.HasPrefix(token, "vt_") {
		if err := conn.QueryRow(ctx, `SELECT coalesce(order_id, '') FROM vault_tokens WHERE id = $1`, token).Scan(&tokenOrder); err != nil {
			t.Fatalf("token %s: %v", token, err)
		}
	}
	if out.orderID == "" {
		if out.state != "open" || tokenOrder != "" {
			t.Errorf("session %s: no order, but state %s and token order %q (a partial completion)", id, out.state, tokenOrder)
		}
		return out
	}
	if out.state != "completed" {
		t.Errorf("session %s: order %s, but state %s", id, out.orderID, out.state)
	}
	if strings.HasPrefix(token, "vt_") && tokenOrder != out.orderID {
		t.Errorf("session %s: order %s, but its token %s paid %q", id, out.orderID, token, tokenOrder)
	}
	if events {
		if n := faultInt(t, conn, `SELECT count(*) FROM order_events WHERE order_id = $1 AND type = 'order_create'`, out.orderID); n != 1 {
			t.Errorf("order %s has %d order_create events", out.orderID, n)
		}
	}
	return out
}

// faultAllOrNothingOrPending is faultAllOrNothing, where a session paid with a PSP token
// may also be complete_in_progress with one pending payment attempt and no order: cut
// between the charge and the order, it waits for its retry (or the recovery job).
func faultAllOrNothingOrPending(t *testing.T, conn *pgx.Conn, id, token string) faultOutcome {
	t.Helper()
	pending := faultInt(t, conn, `SELECT count(*) FROM checkout_sessions s JOIN payment_attempts a ON a.checkout_session_id = s.id
		WHERE s.id = $1 AND s.state = 'complete_in_progress' AND a.status = 'pending'
		  AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.checkout_session_id = s.id)`, id)
	if pending == 1 && !strings.HasPrefix(token, "vt_") {
		return faultOutcome{state: "complete_in_progress"}
	}
	return faultAllOrNothing(t, conn, id, token, false)
}

// ---- crash ----

func TestCrashDuringCompletes(t *testing.T) {
	t.Parallel()
	dbURL := emptyDatabase(t)
	mustRun(t, []string{"DATABASE_URL=" + dbURL}, "migrate", "up")
	mustRun(t, []string{"DATABASE_URL=" + dbURL}, "catalog", "import", faultCatalog)

	var delivered atomic.Int64
	hook := testkit.NewReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		delivered.Add(1)
		w.WriteHeader(http.StatusOK)
	})
	env := []string{
		"DATABASE_URL=" + dbURL, "WEBHOOK_URL=" + hook.URL, "WEBHOOK_SECRET=fault-test-webhook-secret-0123456789abcdef",
		"IDEMPOTENCY_RECOVER_AFTER=2s", "REQUEST_TIMEOUT=2s", "RATE_LIMIT_RPS=0",
	}
	srv := startServer(t, env...)
	c := newFaultClient(srv.base)

	const n = 40
	type attempt struct {
		session, token, key, body string
	}
	attempts := make([]attempt, n)
	for i := range attempts {
		item := []string{"item_123", "item_456"}[i%2]
		a := attempt{session: faultReadySession(t, c, item), key: fmt.Sprintf("crash-complete-%d", i)}
		if i%2 == 0 {
			a.token = faultDelegate(t, c, a.session)
		} else {
			a.token = "tok_visa"
		}
		a.body = faultCompleteBody(a.token)
		attempts[i] = a
	}

	// The burst: every complete at once, and SIGKILL in the middle of it.
	type result struct {
		r   faultReply
		err error
	}
	results := make([]result, n)
	start := make(chan struct{})
	answered := make(chan struct{}, n)
	var wg sync.WaitGroup
	for i := range attempts {
		wg.Go(func() {
			<-start
			r, err := c.do(http.MethodPost, "/checkout_sessions/"+attempts[i].session+"/complete", attempts[i].body, attempts[i].key)
			results[i] = result{r, err}
			if err == nil {
				answered <- struct{}{}
			}
		})
	}
	burst := time.Now()
	close(start)
	// Kill once a quarter of the completes were answered: by then some have committed
	// without being answered yet, and most are in flight or not started.
	timeout := time.After(5 * time.Second)
wait:
	for range n / 4 {
		select {
		case <-answered:
		case <-timeout:
			break wait
		}
	}
	time.Sleep(2 * time.Millisecond)
	if err := srv.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Since(burst)
	<-srv.done
	wg.Wait()

	seenOK := map[int]string{} // attempt -> order id the client was given
	var failed, other int
	for i, res := range results {
		switch {
		case res.err != nil:
			failed++
		case res.r.status == http.StatusOK:
			seenOK[i] = faultOrderID(res.r.body)
			if seenOK[i] == "" {
				t.Errorf("complete %d: 200 without an order: %s", i, res.r.body)
			}
		default:
			other++
			t.Errorf("complete %d answered before the kill: %s, want 200", i, res.r)
		}
	}
	conn := faultConn(t, dbURL)
	t.Logf("killed %s into the burst: %d completes answered 200, %d cut off, %d other; the database holds %d orders and %d keys in flight",
		killedAt.Round(time.Millisecond), len(seenOK), failed, other,
		faultInt(t, conn, `SELECT count(*) FROM orders`), faultInt(t, conn, `SELECT count(*) FROM idempotency_keys WHERE state = 'in_flight'`))

	// Restart; claims of the dead process become recoverable after 2s.
	srv = startServer(t, env...)
	c = newFaultClient(srv.base)
	time.Sleep(1100 * time.Millisecond)
	finals := make([]result, n)
	deadline := time.Now().Add(20 * time.Second)
	for i := range attempts {
		wg.Go(func() {
			r, err := c.retryUntilFinal(http.MethodPost, "/checkout_sessions/"+attempts[i].session+"/complete", attempts[i].body, attempts[i].key, deadline)
			finals[i] = result{r, err}
		})
	}
	wg.Wait()

	for i, a := range attempts {
		out := faultAllOrNothing(t, conn, a.session, a.token, true)
		if want, ok := seenOK[i]; ok && out.orderID != want {
			t.Errorf("complete %d answered 200 with order %s before the crash; the database has %q", i, want, out.orderID)
		}
		f := finals[i]
		if f.err != nil {
			t.Errorf("retry of complete %d: %v", i, f.err)
			continue
		}
		switch {
		case f.r.status == http.StatusOK:
			if got := faultOrderID(f.r.body); got == "" || got != out.orderID {
				t.Errorf("retry of complete %d answered order %q; the database has %q", i, got, out.orderID)
			}
			if _, before := seenOK[i]; before && !f.r.replayed {
				t.Errorf("retry of complete %d, which succeeded before the crash, is not a replay: %s", i, f.r)
			}
		case f.r.status == http.StatusMethodNotAllowed && f.r.code == "checkout_session_completed":
			if out.orderID == "" {
				t.Errorf("retry of complete %d says completed, but the session has no order", i)
			}
		default:
			t.Errorf("retry of complete %d: %s, want 200 or 405 completed", i, f.r)
		}
	}
	faultCheckInvariants(t, conn, true)
	if got := faultInt(t, conn, `SELECT count(*) FROM orders`); got != n {
		t.Errorf("%d orders after every retry settled, want %d", got, n)
	}
	srv.stop(t)
	if strings.Contains(srv.logs.String(), `"level":"ERROR"`) {
		t.Logf("server errors after the restart:\n%s", srv.logs.String())
	}
}

// ---- database faults ----

// pgProxy is a TCP proxy between the server and PostgreSQL that can cut every
// connection, slow every chunk, or cut at a transaction's COMMIT.
type pgProxy struct {
	t      *testing.T
	ln     net.Listener
	target string
	url    string // DATABASE_URL through the proxy

	mu     sync.Mutex
	pairs  map[*proxyPair]struct{}
	down   bool
	delay  time.Duration
	trap   commitTrap
	sprung chan struct{}
	// countdown is how many more chunks to PostgreSQL cutAtMessage lets through.
	countdown int
}

type proxyPair struct {
	client, server net.Conn
	commitSent     atomic.Bool
}

type commitTrap int

const (
	noTrap commitTrap = iota
	// cutBeforeCommit cuts everything when a COMMIT is sent, before PostgreSQL sees it.
	cutBeforeCommit
	// cutAfterCommit lets a COMMIT through, drops PostgreSQL's answer and cuts
	// everything: the transaction committed, but the server cannot know.
	cutAfterCommit
	// cutAtMessage cuts everything at the N-th chunk sent to PostgreSQL after arming,
	// before PostgreSQL sees it.
	cutAtMessage
	// slowAfterClaim slows every chunk (as slow does) once an idempotency claim id has
	// gone by: PostgreSQL answering a claim (its RETURNING claim_id), or the server
	// sending one with its work (a PSP completion's claim, inserted with its first
	// phase): the database degrades mid-request.
	slowAfterClaim
)

// faultClaimIDPrefix starts every idempotency claim id (checkout.NewID("clm_")).
var faultClaimIDPrefix = []byte("clm_")

// faultSlowDelay is the delay of every chunk while the proxy is slow: twice the request timeout.
const faultSlowDelay = 2 * faultRequestTimeout

// faultCommitMessage is the simple-protocol Query message pgx sends for tx.Commit.
var faultCommitMessage = []byte("Q\x00\x00\x00\x0bcommit\x00")

// faultPipelinedCommits are what a COMMIT sent in a pipeline (a pgx.Batch: the server's
// pipelinedTx) looks like.
var faultPipelinedCommits = pipelinedStatement("commit")

// pipelinedStatement is what a statement sent in a pipeline looks like in the extended
// protocol: its text after a Parse message's statement name, or the name pgx's
// statement cache gives it (stmtcache.StatementName: "stmtcache_" and the hex of the
// first 24 bytes of its SHA-256), which a Bind of the cached statement carries instead
// of the text.
func pipelinedStatement(sql string) [][]byte {
	digest := sha256.Sum256([]byte(sql))
	return [][]byte{[]byte("\x00" + sql + "\x00"), []byte("stmtcache_" + hex.EncodeToString(digest[:24]) + "\x00")}
}

// faultImplicitCommits are what ends a vault-token completion's transaction, which has
// no COMMIT: its writes are one pipeline, the implicit transaction PostgreSQL commits at
// that pipeline's Sync, and its last statement is the stock (TakeStock).
var faultImplicitCommits = func() [][]byte {
	var c capturedSQL
	_ = db.New(&c).TakeStock(context.Background(), db.TakeStockParams{})
	return pipelinedStatement(c.sql)
}()

// capturedSQL is a db.DBTX that keeps the text of the statement an :exec method of
// Queries sends, and sends nothing (its other methods are not there to be called).
type capturedSQL struct {
	db.DBTX
	sql string
}

func (c *capturedSQL) Exec(_ context.Context, sql string, _ ...any) (pgconn.CommandTag, error) {
	c.sql = sql
	return pgconn.CommandTag{}, nil
}

// isCommit reports whether chunk, sent to PostgreSQL, commits a transaction: it holds a
// COMMIT, or ends a completion's implicit transaction (faultImplicitCommits).
func isCommit(chunk []byte) bool {
	if bytes.Contains(chunk, faultCommitMessage) {
		return true
	}
	contains := func(m []byte) bool { return bytes.Contains(chunk, m) }
	return slices.ContainsFunc(faultPipelinedCommits, contains) || slices.ContainsFunc(faultImplicitCommits, contains)
}

func startFaultProxy(t *testing.T, dbURL string) *pgProxy {
	t.Helper()
	cfg, err := pgconn.ParseConfig(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(cfg.Host, "/") {
		t.Skipf("PostgreSQL listens on a Unix socket (%s); the fault proxy needs TCP", cfg.Host)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &pgProxy{t: t, ln: ln, target: net.JoinHostPort(cfg.Host, fmt.Sprint(cfg.Port)), pairs: map[*proxyPair]struct{}{}}
	port := ln.Addr().(*net.TCPAddr).Port
	if strings.HasPrefix(dbURL, "postgres://") || strings.HasPrefix(dbURL, "postgresql://") {
		u, err := url.Parse(dbURL)
		if err != nil {
			t.Fatal(err)
		}
		u.Host = fmt.Sprintf("127.0.0.1:%d", port)
		p.url = u.String()
	} else {
		p.url = fmt.Sprintf("%s host=127.0.0.1 port=%d", dbURL, port)
	}
	go p.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		p.closeAll()
	})
	return p
}

func (p *pgProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.serve(c)
	}
}

func (p *pgProxy) serve(c net.Conn) {
	p.mu.Lock()
	down := p.down
	p.mu.Unlock()
	if down {
		_ = c.Close()
		return
	}
	s, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		_ = c.Close()
		return
	}
	pair := &proxyPair{client: c, server: s}
	p.mu.Lock()
	if p.down {
		p.mu.Unlock()
		_ = c.Close()
		_ = s.Close()
		return
	}
	p.pairs[pair] = struct{}{}
	p.mu.Unlock()
	go p.pump(pair, c, s, true)
	p.pump(pair, s, c, false)
	p.mu.Lock()
	delete(p.pairs, pair)
	p.mu.Unlock()
}

// pump copies from one side to the other, chunk by chunk, applying the delay and trap.
func (p *pgProxy) pump(pair *proxyPair, from, to net.Conn, upstream bool) {
	defer func() {
		_ = from.Close()
		_ = to.Close()
	}()
	buf := make([]byte, 64<<10)
	for {
		n, err := from.Read(buf)
		if n > 0 {
			p.mu.Lock()
			delay := p.delay
			p.mu.Unlock()
			if delay > 0 {
				time.Sleep(delay)
			}
			if !p.pass(pair, buf[:n], upstream) {
				return
			}
			if _, err := to.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// pass applies the armed trap to a chunk; false drops it.
func (p *pgProxy) pass(pair *proxyPair, chunk []byte, upstream bool) bool {
	p.mu.Lock()
	trap := p.trap
	p.mu.Unlock()
	switch {
	case trap == cutAtMessage && upstream:
		p.mu.Lock()
		p.countdown--
		spring := p.countdown < 0 && p.trap == cutAtMessage
		p.mu.Unlock()
		if spring {
			p.spring()
			return false
		}
	case trap == cutBeforeCommit && upstream && isCommit(chunk):
		p.spring()
		return false
	case trap == cutAfterCommit && upstream && isCommit(chunk):
		pair.commitSent.Store(true)
	case trap == cutAfterCommit && !upstream && pair.commitSent.Load():
		p.spring()
		return false
	case trap == slowAfterClaim && bytes.Contains(chunk, faultClaimIDPrefix):
		p.mu.Lock()
		p.trap, p.delay = noTrap, faultSlowDelay
		sprung := p.sprung
		p.mu.Unlock()
		close(sprung)
	}
	return true
}

func (p *pgProxy) spring() {
	p.mu.Lock()
	p.trap = noTrap
	sprung := p.sprung
	p.down = true
	p.mu.Unlock()
	if sprung != nil {
		close(sprung)
	}
	p.closeAll()
}

// arm sets a trap for the next COMMIT; the returned channel closes when it springs.
func (p *pgProxy) arm(trap commitTrap) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.trap = trap
	p.sprung = make(chan struct{})
	return p.sprung
}

// armAfter cuts everything at the n-th chunk sent to PostgreSQL from now (n >= 1).
func (p *pgProxy) armAfter(n int) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.trap, p.countdown = cutAtMessage, n-1
	p.sprung = make(chan struct{})
	return p.sprung
}

// cut closes every connection and refuses new ones until restore.
func (p *pgProxy) cut() {
	p.mu.Lock()
	p.down = true
	p.mu.Unlock()
	p.closeAll()
}

func (p *pgProxy) closeAll() {
	p.mu.Lock()
	pairs := make([]*proxyPair, 0, len(p.pairs))
	for pair := range p.pairs {
		pairs = append(pairs, pair)
	}
	p.mu.Unlock()
	for _, pair := range pairs {
		_ = pair.client.Close()
		_ = pair.server.Close()
	}
}

func (p *pgProxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
	p.delay = 0
	p.trap = noTrap
}

func (p *pgProxy) slow(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delay = d
}

const faultRequestTimeout = time.Second

// faultUnavailableSoon checks a request made while the database is faulty: 503
// service_unavailable (never a 500), within about the request timeout.
func faultUnavailableSoon(t *testing.T, what string, r faultReply, err error, codes ...string) {
	t.Helper()
	switch {
	case err != nil:
		t.Errorf("%s: %v", what, err)
	case r.status != http.StatusServiceUnavailable || r.typ != "service_unavailable":
		t.Errorf("%s: %s, want 503 service_unavailable", what, r)
	case len(codes) > 0 && !slices.Contains(codes, r.code):
		t.Errorf("%s: code %s, want one of %v: %s", what, r.code, codes, r)
	case r.elapsed > faultRequestTimeout+2*time.Second:
		t.Errorf("%s: answered after %s, want about the request timeout (%s)", what, r.elapsed.Round(time.Millisecond), faultRequestTimeout)
	default:
		t.Logf("%s: %d %s after %s", what, r.status, r.code, r.elapsed.Round(time.Millisecond))
	}
}

// faultRecovers polls method path until it answers want, within 10s, and returns how long it took.
func faultRecovers(t *testing.T, c *faultClient, what, method, path, body string, want int) time.Duration {
	t.Helper()
	start := time.Now()
	var last faultReply
	var lastErr error
	for time.Since(start) < 10*time.Second {
		r, err := c.do(method, path, body, "")
		if err == nil && r.status == want {
			t.Logf("%s: recovered after %s", what, time.Since(start).Round(time.Millisecond))
			return time.Since(start)
		}
		if err == nil && r.status == http.StatusInternalServerError {
			t.Errorf("%s while recovering: %s", what, r)
		}
		last, lastErr = r, err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s did not recover within 10s: last %s %v", what, last, lastErr)
	return 0
}

func TestDatabaseFaults(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	mustRun(t, []string{"DATABASE_URL=" + dbURL}, "catalog", "import", faultCatalog)
	proxy := startFaultProxy(t, dbURL)
	srv := startServer(t, "DATABASE_URL="+proxy.url, "REQUEST_TIMEOUT="+faultRequestTimeout.String(),
		"RATE_LIMIT_RPS=0", "IDEMPOTENCY_RECOVER_AFTER=1s", "SWEEP_INTERVAL=1h")
	c := newFaultClient(srv.base)
	conn := faultConn(t, dbURL)
	defer func() {
		if t.Failed() {
			t.Logf("server log:\n%s", srv.logs.String())
		}
	}()

	open := faultReadySession(t, c, "item_123")
	requests := []struct{ name, method, path, body, key string }{
		{"create", http.MethodPost, "/checkout_sessions", faultCreateBody("item_123"), ""},
		{"create with Idempotency-Key", http.MethodPost, "/checkout_sessions", faultCreateBody("item_123"), "fault-create"},
		{"get", http.MethodGet, "/checkout_sessions/" + open, "", ""},
		{"update", http.MethodPost, "/checkout_sessions/" + open, `{"fulfillment_option_id":"express_shipping"}`, ""},
		{"complete", http.MethodPost, "/checkout_sessions/" + open + "/complete", faultCompleteBody("tok_visa"), "fault-complete"},
		{"cancel", http.MethodPost, "/checkout_sessions/" + open + "/cancel", "", ""},
	}

	t.Run("cut", func(t *testing.T) {
		defer proxy.restore()
		before := faultRowCounts(t, conn)
		proxy.cut()
		for _, rq := range requests {
			r, err := c.do(rq.method, rq.path, rq.body, rq.key)
			faultUnavailableSoon(t, rq.name+" while cut", r, err, "database_unavailable", "timeout")
		}
		r, err := c.do(http.MethodGet, "/ready", "", "")
		faultUnavailableSoon(t, "/ready while cut", r, err)
		if after := faultRowCounts(t, conn); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Errorf("requests refused while the database was cut wrote rows:\nbefore %v\nafter  %v", before, after)
		}
		proxy.restore()
		faultRecovers(t, c, "create after restore", http.MethodPost, "/checkout_sessions", faultCreateBody("item_123"), http.StatusCreated)
		faultRecovers(t, c, "/ready after restore", http.MethodGet, "/ready", "", http.StatusOK)
		c.must(t, http.MethodGet, "/checkout_sessions/"+open, "", "", http.StatusOK)
		c.must(t, http.MethodPost, "/checkout_sessions/"+open, `{"fulfillment_option_id":"standard_shipping"}`, "", http.StatusOK)
	})

	t.Run("slow", func(t *testing.T) {
		defer proxy.restore()
		proxy.slow(faultSlowDelay)
		for _, rq := range requests[:4] {
			r, err := c.do(rq.method, rq.path, rq.body, "")
			faultUnavailableSoon(t, rq.name+" while slow", r, err, "timeout")
		}
		proxy.restore()
		faultRecovers(t, c, "get after the slowdown", http.MethodGet, "/checkout_sessions/"+open, "", http.StatusOK)
		faultRecovers(t, c, "create after the slowdown", http.MethodPost, "/checkout_sessions", faultCreateBody("item_123"), http.StatusCreated)
	})

	// A complete whose transaction is cut where it commits (the pipeline of its writes,
	// whose Sync commits them), before PostgreSQL sees it: nothing is written, and the
	// retry with the same key completes it once.
	t.Run("cut before commit", func(t *testing.T) {
		defer proxy.restore()
		id := faultReadySession(t, c, "item_123")
		token := faultDelegate(t, c, id)
		sprung := proxy.arm(cutBeforeCommit)
		r, err := c.do(http.MethodPost, "/checkout_sessions/"+id+"/complete", faultCompleteBody(token), "fault-before-commit")
		select {
		case <-sprung:
		case <-time.After(time.Second):
			t.Fatalf("the complete did not reach COMMIT: %s %v", r, err)
		}
		faultUnavailableSoon(t, "complete cut before commit", r, err)
		if out := faultAllOrNothing(t, conn, id, token, false); out.orderID != "" {
			t.Errorf("a transaction cut before COMMIT left order %s", out.orderID)
		}
		proxy.restore()
		f, err := c.retryUntilFinal(http.MethodPost, "/checkout_sessions/"+id+"/complete", faultCompleteBody(token), "fault-before-commit", time.Now().Add(10*time.Second))
		if err != nil || f.status != http.StatusOK {
			t.Fatalf("retry: %s %v", f, err)
		}
		if out := faultAllOrNothing(t, conn, id, token, false); out.orderID == "" || out.orderID != faultOrderID(f.body) {
			t.Errorf("retry answered order %q; the database has %q", faultOrderID(f.body), out.orderID)
		}
	})

	// A complete whose transaction commits but whose answer is lost with the connection:
	// the client gets a 503, the order is whole, and the retry replays it.
	t.Run("answer to commit lost", func(t *testing.T) {
		defer proxy.restore()
		id := faultReadySession(t, c, "item_123")
		token := faultDelegate(t, c, id)
		sprung := proxy.arm(cutAfterCommit)
		r, err := c.do(http.MethodPost, "/checkout_sessions/"+id+"/complete", faultCompleteBody(token), "fault-after-commit")
		select {
		case <-sprung:
		case <-time.After(time.Second):
			t.Fatalf("the complete did not reach COMMIT: %s %v", r, err)
		}
		faultUnavailableSoon(t, "complete whose commit answer was lost", r, err)
		out := faultAllOrNothing(t, conn, id, token, false)
		if out.orderID == "" {
			t.Fatalf("the committed transaction left no order")
		}
		proxy.restore()
		f, err := c.retryUntilFinal(http.MethodPost, "/checkout_sessions/"+id+"/complete", faultCompleteBody(token), "fault-after-commit", time.Now().Add(10*time.Second))
		switch {
		case err != nil:
			t.Fatalf("retry: %v", err)
		case f.status == http.StatusOK && f.replayed && faultOrderID(f.body) == out.orderID:
		case f.status == http.StatusMethodNotAllowed && f.code == "checkout_session_completed":
			t.Logf("retry answered 405 completed rather than replaying the order")
		default:
			t.Errorf("retry: %s, want a replay of order %s", f, out.orderID)
		}
	})

	// The database slows down after the request claimed its Idempotency-Key: the request
	// must still answer 503 within about REQUEST_TIMEOUT. Releasing the claim of a server
	// error is bounded by releaseTimeout (250ms), so the slow database does not hold the
	// client (it once held it for another settleTimeout, 2s).
	t.Run("slow after the claim", func(t *testing.T) {
		defer proxy.restore()
		id := faultReadySession(t, c, "item_123")
		sprung := proxy.arm(slowAfterClaim)
		r, err := c.do(http.MethodPost, "/checkout_sessions/"+id+"/complete", faultCompleteBody("tok_visa"), "fault-slow-after-claim")
		select {
		case <-sprung:
		case <-time.After(time.Second):
			t.Fatalf("the complete did not claim its key: %s %v", r, err)
		}
		faultUnavailableSoon(t, "complete slowed after its claim", r, err, "timeout")
		proxy.restore()
		f, err := c.retryUntilFinal(http.MethodPost, "/checkout_sessions/"+id+"/complete", faultCompleteBody("tok_visa"), "fault-slow-after-claim", time.Now().Add(10*time.Second))
		if err != nil || f.status != http.StatusOK {
			t.Fatalf("retry: %s %v", f, err)
		}
		if out := faultAllOrNothing(t, conn, id, "tok_visa", false); out.orderID != faultOrderID(f.body) {
			t.Errorf("retry answered order %q; the database has %q", faultOrderID(f.body), out.orderID)
		}
	})

	// A cut at every step of a complete: the K-th message the server sends PostgreSQL
	// during the request is dropped and every connection closed, for K = 1, 2, ... until
	// the complete finishes before its K-th message. Each cut leaves a whole order or
	// nothing, or, for a PSP token cut after its charge, a pending payment attempt (the
	// session complete_in_progress) that the retry resumes; the retries, all made at the
	// end (claims left in flight recover after 1s), complete every session exactly once.
	t.Run("cut at every step", func(t *testing.T) {
		defer proxy.restore()
		type cutAttempt struct{ id, token, key string }
		var cuts []cutAttempt
		var summary []string
		for k := 1; k <= 60; k++ {
			a := cutAttempt{id: faultReadySession(t, c, "item_456"), token: "tok_visa", key: fmt.Sprintf("fault-step-%d", k)}
			if k%2 == 1 {
				a.token = faultDelegate(t, c, a.id)
			}
			sprung := proxy.armAfter(k)
			r, err := c.do(http.MethodPost, "/checkout_sessions/"+a.id+"/complete", faultCompleteBody(a.token), a.key)
			springs := false
			select {
			case <-sprung:
				springs = true
			default:
			}
			proxy.restore()
			out := faultAllOrNothingOrPending(t, conn, a.id, a.token)
			cuts = append(cuts, a)
			if !springs {
				if err != nil || r.status != http.StatusOK || faultOrderID(r.body) != out.orderID {
					t.Errorf("complete with no cut: %s %v; the database has order %q", r, err, out.orderID)
				}
				t.Logf("a complete sends %d messages to PostgreSQL; cut at each (message:status/kept): %s", k-1, strings.Join(summary, " "))
				break
			}
			switch {
			case err != nil:
				t.Errorf("complete cut at message %d: %v", k, err)
			case r.status == http.StatusOK:
				if faultOrderID(r.body) != out.orderID {
					t.Errorf("complete cut at message %d answered order %q; the database has %q", k, faultOrderID(r.body), out.orderID)
				}
			case r.status != http.StatusServiceUnavailable || r.typ != "service_unavailable":
				t.Errorf("complete cut at message %d: %s, want 503 service_unavailable", k, r)
			}
			kept := "nothing"
			switch {
			case out.orderID != "":
				kept = "order"
			case out.state == "complete_in_progress":
				kept = "pending"
			}
			summary = append(summary, fmt.Sprintf("%d:%d/%s", k, r.status, kept))
			if k == 60 {
				t.Errorf("a complete still had not finished after 60 messages")
			}
		}
		deadline := time.Now().Add(15 * time.Second)
		for _, a := range cuts {
			f, err := c.retryUntilFinal(http.MethodPost, "/checkout_sessions/"+a.id+"/complete", faultCompleteBody(a.token), a.key, deadline)
			if err != nil || f.status != http.StatusOK {
				t.Errorf("retry of %s after its cut: %s %v", a.key, f, err)
				continue
			}
			if out := faultAllOrNothing(t, conn, a.id, a.token, false); out.orderID == "" || out.orderID != faultOrderID(f.body) {
				t.Errorf("retry of %s answered order %q; the database has %q", a.key, faultOrderID(f.body), out.orderID)
			}
		}
	})

	faultCheckInvariants(t, conn, false)
	srv.stop(t)
}
