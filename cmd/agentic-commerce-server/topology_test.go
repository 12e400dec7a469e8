package main

// Topology tests: the real binary behind PgBouncer in transaction pooling, and on a
// primary with a streaming standby that is promoted when the primary crashes. Each starts
// its own clusters (and pgbouncer) from the machine's binaries; they skip when those are
// missing, except under CI=true, where they fail.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/agentic-commerce/agentic-commerce-server/internal/pgserver"
	"github.com/agentic-commerce/agentic-commerce-server/internal/pgtest"
	"github.com/agentic-commerce/agentic-commerce-server/internal/testkit"
)

// topoRequestTimeout is the servers' REQUEST_TIMEOUT here: short, so a hang shows.
const topoRequestTimeout = 2 * time.Second

func topoContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// topoDatabase creates database acp on c, migrates it and imports the demo catalog with
// ample stock, straight to the server: migrations take a session-level advisory lock,
// which transaction pooling does not keep (docs/operations.md, "PgBouncer").
func topoDatabase(t *testing.T, ctx context.Context, c *pgserver.Cluster) string {
	t.Helper()
	conn, err := pgx.Connect(ctx, c.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE acp"); err != nil {
		t.Fatal(err)
	}
	dbURL, err := pgserver.DatabaseURL(c.URL, "acp")
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"DATABASE_URL=" + dbURL}
	mustRun(t, env, "migrate", "up")
	mustRun(t, env, "catalog", "import", faultCatalog)
	db := faultConn(t, dbURL)
	if _, err := db.Exec(ctx, `UPDATE variants SET stock_quantity = 1000000`); err != nil {
		t.Fatal(err)
	}
	return dbURL
}

// TestThroughPgBouncerTransactionPooling runs the checkout flow through Debian's
// pgbouncer in transaction pooling, with DATABASE_URL's default_query_exec_mode set as
// docs/operations.md says: idempotent replays, conflicts, concurrent duplicates and the
// payment races, where pgx's default statement cache answered 500.
func TestThroughPgBouncerTransactionPooling(t *testing.T) {
	t.Parallel()
	ctx := topoContext(t)
	c := pgtest.StartCluster(t, ctx, "")
	dbURL := topoDatabase(t, ctx, c)
	b, err := pgserver.StartPgBouncer(ctx, pgserver.PgBouncerOptions{Upstream: c.URL, PoolSize: 4})
	pgtest.RequireBinaries(t, err)
	t.Cleanup(func() { _ = b.Stop(context.Background()) })
	through, err := b.URL("acp")
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, "DATABASE_URL="+through+"&default_query_exec_mode=cache_describe&pool_max_conns=16", "MIGRATE_ON_START=false",
		"RATE_LIMIT_RPS=0", "REQUEST_TIMEOUT="+topoRequestTimeout.String())
	t.Logf("%s on port %d, pool_mode=transaction, default_pool_size=4", b.Version, b.Port)
	cl := newFaultClient(srv.base)
	defer func() {
		if t.Failed() {
			t.Logf("server log:\n%s", srv.logs.String())
		}
	}()

	// Replay and conflict of one key.
	sid := faultReadySession(t, cl, "item_123")
	tok := faultDelegate(t, cl, sid)
	first, err := cl.do(http.MethodPost, "/checkout_sessions/"+sid+"/complete", faultCompleteBody(tok), "pgb-complete")
	if err != nil || first.status != http.StatusOK || faultOrderID(first.body) == "" {
		t.Fatalf("complete: %v %v", first, err)
	}
	replay, err := cl.do(http.MethodPost, "/checkout_sessions/"+sid+"/complete", faultCompleteBody(tok), "pgb-complete")
	if err != nil || replay.status != http.StatusOK || !replay.replayed || faultOrderID(replay.body) != faultOrderID(first.body) {
		t.Errorf("replay: %v %v, want 200 Idempotent-Replayed with order %s", replay, err, faultOrderID(first.body))
	}
	conflict, err := cl.do(http.MethodPost, "/checkout_sessions/"+sid+"/complete", faultCompleteBody("tok_visa"), "pgb-complete")
	if err != nil || conflict.status >= 500 || conflict.status < 400 {
		t.Errorf("same key, other body: %v %v, want a 4xx", conflict, err)
	}

	// Concurrent duplicates of one key, then concurrent completions of one session with
	// different tokens, then of many sessions at once: eight callers each.
	type race struct {
		name string
		path func(i int) string
		body func(i int) string
		key  func(i int) string
		// wantOK is how many 200s the race must give: 1 when all target one session.
		wantOK int
	}
	dupSID := faultReadySession(t, cl, "item_123")
	dupTok := faultDelegate(t, cl, dupSID)
	tokSID := faultReadySession(t, cl, "item_123")
	var tokens, many []string
	for range 8 {
		tokens = append(tokens, faultDelegate(t, cl, tokSID))
		s := faultReadySession(t, cl, "item_123")
		many = append(many, s, faultDelegate(t, cl, s))
	}
	races := []race{
		{"one key", func(int) string { return "/checkout_sessions/" + dupSID + "/complete" },
			func(int) string { return faultCompleteBody(dupTok) }, func(int) string { return "pgb-dup" }, -1},
		{"one session, eight tokens", func(int) string { return "/checkout_sessions/" + tokSID + "/complete" },
			func(i int) string { return faultCompleteBody(tokens[i]) }, func(i int) string { return fmt.Sprintf("pgb-tok-%d", i) }, 1},
		{"eight sessions", func(i int) string { return "/checkout_sessions/" + many[2*i] + "/complete" },
			func(i int) string { return faultCompleteBody(many[2*i+1]) }, func(i int) string { return fmt.Sprintf("pgb-many-%d", i) }, 8},
	}
	for _, r := range races {
		replies := make([]faultReply, 8)
		errs := make([]error, 8)
		var wg sync.WaitGroup
		gate := make(chan struct{})
		for i := range 8 {
			wg.Go(func() {
				<-gate
				replies[i], errs[i] = cl.do(http.MethodPost, r.path(i), r.body(i), r.key(i))
			})
		}
		close(gate)
		wg.Wait()
		ok, orders := 0, map[string]bool{}
		for i, rep := range replies {
			switch {
			case errs[i] != nil:
				t.Errorf("%s: %v", r.name, errs[i])
			case rep.status >= 500:
				t.Errorf("%s: %s", r.name, rep)
			case rep.status == http.StatusOK:
				ok++
				orders[faultOrderID(rep.body)] = true
			}
		}
		switch {
		case r.wantOK < 0 && (ok == 0 || len(orders) != 1):
			// Duplicates of one key: the first, and every replay, carry the same order;
			// the others are told the key is in flight.
			t.Errorf("%s: %d successes with %d distinct orders, want one order", r.name, ok, len(orders))
		case r.wantOK >= 0 && ok != r.wantOK:
			t.Errorf("%s: %d successes, want %d", r.name, ok, r.wantOK)
		}
	}
	conn := faultConn(t, dbURL)
	faultCheckInvariants(t, conn, false)
	if n, err := b.ServerConnections(ctx, "acp"); err != nil || n > 4 {
		t.Errorf("pgbouncer holds %d server connections (%v), want at most its pool size 4", n, err)
	}
}

// topoCall is one request of the failover traffic.
type topoCall struct {
	reply      faultReply
	err        error
	retryAfter string
	at         time.Time // when the answer arrived
}

func (c *faultClient) call(method, path, body, key string) topoCall {
	var b any
	if body != "" {
		b = body
	}
	resp, err := c.kit.Do(method, path, b, "Idempotency-Key", key)
	out := topoCall{err: err, at: time.Now()}
	if err != nil {
		return out
	}
	out.reply = faultReply{status: resp.Status, body: resp.Body, elapsed: resp.Elapsed, replayed: resp.Header.Get("Idempotent-Replayed") == "true"}
	out.retryAfter = resp.Header.Get("Retry-After")
	if resp.Status >= 400 {
		var e struct{ Type, Code string }
		_ = json.Unmarshal(resp.Body, &e)
		out.reply.typ, out.reply.code = e.Type, e.Code
	}
	return out
}

// topoCompletion is one completion the traffic sent: its key and body, for the retry,
// and its first answer.
type topoCompletion struct {
	sid, token, key string
	first           topoCall
}

func TestFailoverSynchronousStandby(t *testing.T) { t.Parallel(); testFailover(t, true) }

func TestFailoverAsynchronousStandby(t *testing.T) { t.Parallel(); testFailover(t, false) }

// testFailover runs checkout traffic on a primary with a streaming standby, crashes the
// primary (immediate stop), promotes the standby after a gap, and checks what clients
// saw and what the new primary holds. The server is given both hosts with
// target_session_attrs=read-write, and is never restarted.
func testFailover(t *testing.T, synchronous bool) {
	ctx := topoContext(t)
	conf := "synchronous_commit = on\n"
	if synchronous {
		conf += "synchronous_standby_names = 's1'\n"
	}
	primary := pgtest.StartCluster(t, ctx, conf)
	// The standby first: with synchronous_standby_names, no commit returns without it.
	standby, err := primary.StartStandby(ctx, pgserver.StandbyOptions{Name: "s1"})
	pgtest.RequireBinaries(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log of the standby:\n%s", standby.Log())
		}
		_ = standby.Stop(context.Background())
	})
	if err := primary.WaitStreaming(ctx, "s1", synchronous); err != nil {
		t.Fatal(err)
	}
	topoDatabase(t, ctx, primary)
	newPrimaryURL, err := pgserver.DatabaseURL(standby.URL, "acp")
	if err != nil {
		t.Fatal(err)
	}

	var events sync.Map // checkout session id -> event ids (Request-Id) received
	rcv := testkit.NewReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		var ev struct {
			Data struct {
				CheckoutSessionID string `json:"checkout_session_id"`
			}
		}
		body := make([]byte, 1<<16)
		n, _ := r.Body.Read(body)
		_ = json.Unmarshal(body[:n], &ev)
		ids, _ := events.LoadOrStore(ev.Data.CheckoutSessionID, &sync.Map{})
		ids.(*sync.Map).Store(r.Header.Get("Request-Id"), true)
		w.WriteHeader(http.StatusOK)
	})
	both := fmt.Sprintf("postgres://postgres@127.0.0.1:%d,127.0.0.1:%d/acp?sslmode=disable&target_session_attrs=read-write&connect_timeout=2",
		primary.Port, standby.Port)
	srv := startServer(t, "DATABASE_URL="+both, "MIGRATE_ON_START=false", "RATE_LIMIT_RPS=0",
		"REQUEST_TIMEOUT="+topoRequestTimeout.String(), "IDEMPOTENCY_RECOVER_AFTER="+topoRequestTimeout.String(),
		"WEBHOOK_URL="+rcv.URL, "WEBHOOK_SECRET="+instancesSecret, "WEBHOOK_TIMEOUT=2s", "WEBHOOK_RETRY_HORIZON=1h",
		"SWEEP_INTERVAL=1s")
	defer func() {
		if t.Failed() {
			t.Logf("server log:\n%s", srv.logs.String())
		}
	}()
	cl := newFaultClient(srv.base)

	// Readiness, polled throughout.
	var readyMu sync.Mutex
	var readyLog []topoCall
	stopReady := make(chan struct{})
	readyDone := make(chan struct{})
	go func() {
		defer close(readyDone)
		for {
			select {
			case <-stopReady:
				return
			case <-time.After(50 * time.Millisecond):
			}
			c := cl.call(http.MethodGet, "/ready", "", "")
			readyMu.Lock()
			readyLog = append(readyLog, c)
			readyMu.Unlock()
		}
	}()

	// Traffic: workers loop create, update, delegate, complete until told to stop.
	var (
		mu          sync.Mutex
		calls       []topoCall
		completions []*topoCompletion
		seq         atomic.Int64
	)
	record := func(c topoCall) bool {
		mu.Lock()
		calls = append(calls, c)
		mu.Unlock()
		return c.err == nil && c.reply.status < 300
	}
	stopTraffic := make(chan struct{})
	var workers sync.WaitGroup
	for range 4 {
		workers.Go(func() {
			for {
				select {
				case <-stopTraffic:
					return
				default:
				}
				c := cl.call(http.MethodPost, "/checkout_sessions", faultCreateBody("item_123"), "")
				if !record(c) {
					time.Sleep(50 * time.Millisecond)
					continue
				}
				var s struct{ ID string }
				_ = json.Unmarshal(c.reply.body, &s)
				if !record(cl.call(http.MethodPost, "/checkout_sessions/"+s.ID, `{"fulfillment_option_id":"standard_shipping"}`, "")) {
					continue
				}
				tokCall := cl.call(http.MethodPost, "/agentic_commerce/delegate_payment", faultDelegateBody(s.ID), "")
				if !record(tokCall) {
					continue
				}
				var tok struct{ ID string }
				_ = json.Unmarshal(tokCall.reply.body, &tok)
				comp := &topoCompletion{sid: s.ID, token: tok.ID, key: fmt.Sprintf("fo-%d", seq.Add(1))}
				comp.first = cl.call(http.MethodPost, "/checkout_sessions/"+s.ID+"/complete", faultCompleteBody(tok.ID), comp.key)
				record(comp.first)
				mu.Lock()
				completions = append(completions, comp)
				mu.Unlock()
			}
		})
	}

	// One completion is sure to be sent in the gap, and retried after it.
	gapSID := faultReadySession(t, cl, "item_123")
	gapComp := &topoCompletion{sid: gapSID, token: faultDelegate(t, cl, gapSID), key: "fo-gap"}

	time.Sleep(1500 * time.Millisecond)
	killed := time.Now()
	if err := primary.Kill(); err != nil {
		t.Fatal(err)
	}
	gapComp.first = cl.call(http.MethodPost, "/checkout_sessions/"+gapSID+"/complete", faultCompleteBody(gapComp.token), gapComp.key)
	if gapComp.first.err != nil || gapComp.first.reply.status != http.StatusServiceUnavailable {
		t.Errorf("completion with no primary: %s %v, want 503", gapComp.first.reply, gapComp.first.err)
	}
	mu.Lock()
	calls = append(calls, gapComp.first)
	completions = append(completions, gapComp)
	mu.Unlock()
	time.Sleep(time.Until(killed.Add(1500 * time.Millisecond))) // the gap: no primary at all
	promoteStart := time.Now()
	if err := standby.Promote(ctx, false); err != nil {
		t.Fatal(err)
	}
	promoted := time.Now()
	if promoted.Sub(promoteStart) > time.Second {
		t.Logf("slow promotion; standby log:\n%s", standby.Log())
	}
	time.Sleep(3 * time.Second)
	close(stopTraffic)
	workers.Wait()
	close(stopReady)
	<-readyDone
	t.Logf("primary killed; standby promoted %s later (pg_promote took %s)",
		promoteStart.Sub(killed).Round(time.Millisecond), promoted.Sub(promoteStart).Round(time.Millisecond))

	// What clients saw: 2xx, clean 503s with Retry-After, or "in flight"; never a 500 or
	// an answer later than the request timeout allows.
	var gap503, total int
	var firstOK time.Time
	for _, c := range calls {
		total++
		switch {
		case c.err != nil:
			t.Errorf("transport error: %v", c.err)
		case c.reply.elapsed > topoRequestTimeout+2*time.Second:
			t.Errorf("answered after %s (REQUEST_TIMEOUT %s): %s", c.reply.elapsed.Round(time.Millisecond), topoRequestTimeout, c.reply)
		case c.reply.status == http.StatusServiceUnavailable:
			if c.reply.typ != "service_unavailable" || c.retryAfter == "" {
				t.Errorf("503 without the ACP error or Retry-After (%q): %s", c.retryAfter, c.reply)
			}
			gap503++
		case c.reply.status < 300:
			if c.at.After(promoted) && (firstOK.IsZero() || c.at.Before(firstOK)) {
				firstOK = c.at
			}
		case c.reply.status == http.StatusConflict && c.reply.code == "idempotency_in_flight":
		default:
			t.Errorf("unexpected answer: %s", c.reply)
		}
	}
	if firstOK.IsZero() {
		t.Fatalf("no request succeeded after the promotion (%d requests, %d were 503)", total, gap503)
	}
	recovery := firstOK.Sub(promoted)
	t.Logf("%d requests, %d answered 503 during the failure; first success %s after the promotion", total, gap503, recovery.Round(time.Millisecond))
	if recovery > 5*time.Second {
		t.Errorf("recovery took %s after the promotion, want seconds at most", recovery)
	}

	// Readiness said so: 503 between the kill and the promotion, 200 after.
	var sawNotReady bool
	var readyAgain time.Time
	for _, c := range readyLog {
		if c.err != nil {
			t.Errorf("/ready: %v", c.err)
			continue
		}
		if c.at.After(killed) && c.at.Before(promoteStart) && c.reply.status == http.StatusServiceUnavailable {
			sawNotReady = true
		}
		if c.at.After(promoted) && c.reply.status == http.StatusOK && readyAgain.IsZero() {
			readyAgain = c.at
		}
	}
	if !sawNotReady || readyAgain.IsZero() {
		t.Errorf("/ready: 503 during the gap %v, 200 after the promotion %v", sawNotReady, !readyAgain.IsZero())
	} else {
		t.Logf("/ready: 503 during the gap, 200 again %s after the promotion", readyAgain.Sub(promoted).Round(time.Millisecond))
	}

	// Every completion answered 200 before the crash has its order on the new primary
	// (with synchronous replication); without it, count what was lost.
	conn := faultConn(t, newPrimaryURL)
	acked, lost := 0, 0
	for _, c := range completions {
		if c.first.err == nil && c.first.reply.status == http.StatusOK && c.first.at.Before(killed) {
			acked++
			if faultInt(t, conn, `SELECT count(*) FROM orders WHERE id = $1`, faultOrderID(c.first.reply.body)) != 1 {
				lost++
			}
		}
	}
	if synchronous && lost > 0 {
		t.Errorf("%d of %d completions answered 200 before the crash have no order on the new primary", lost, acked)
	}
	t.Logf("replication synchronous=%v: %d of %d completions answered 200 before the crash are missing on the new primary", synchronous, lost, acked)

	// Retrying every completion that did not settle, with its key, gives the order it
	// made or a fresh one, never a second charge.
	retried := 0
	for _, c := range completions {
		if c.first.err == nil && faultFinal(c.first.reply) {
			continue
		}
		retried++
		r, err := cl.retryUntilFinal(http.MethodPost, "/checkout_sessions/"+c.sid+"/complete", faultCompleteBody(c.token), c.key, time.Now().Add(15*time.Second))
		if err != nil {
			t.Errorf("retry of %s: %v", c.key, err)
			continue
		}
		if !synchronous && faultInt(t, conn, `SELECT count(*) FROM checkout_sessions s JOIN vault_tokens t ON t.checkout_session_id = s.id
			WHERE s.id = $1 AND t.id = $2`, c.sid, c.token) == 0 {
			// The session or its token, answered before the crash, was lost with the
			// primary: an asynchronous standby may lack its last commits. The retry must
			// then be refused as a client error, and nothing can have been paid.
			if r.status < 400 || r.status >= 500 {
				t.Errorf("retry of %s, whose session or token the standby lacks: %s, want a 4xx", c.key, r)
			}
			t.Logf("retry of %s: session or token lost with the asynchronous primary, answered %d", c.key, r.status)
			continue
		}
		out := faultAllOrNothing(t, conn, c.sid, c.token, true)
		if r.status == http.StatusOK && faultOrderID(r.body) != out.orderID {
			t.Errorf("retry of %s: order %s, but the session has %q", c.key, faultOrderID(r.body), out.orderID)
		}
		if r.status != http.StatusOK {
			t.Errorf("retry of %s: %s, want 200", c.key, r)
		}
	}
	t.Logf("%d completions retried with their Idempotency-Key after the failover", retried)
	// A key claimed by a request the crash cut off stays in flight on the new primary
	// until a retry takes it over (IDEMPOTENCY_RECOVER_AFTER) or it expires: only the
	// completions are retried here, so only theirs must have settled. Without
	// synchronous replication, a completion answered 200 as the primary died may have
	// lost its commit while its claim, committed a round trip earlier, reached the
	// standby: nobody retries a 200, so that key stays in flight too.
	var unacked []string
	for _, c := range completions {
		if c.first.err == nil && c.first.reply.status == http.StatusOK &&
			faultInt(t, conn, `SELECT count(*) FROM orders WHERE id = $1`, faultOrderID(c.first.reply.body)) == 0 {
			unacked = append(unacked, c.key)
		}
	}
	if synchronous && len(unacked) > 0 {
		t.Errorf("completions answered 200 without an order on the new primary: %v", unacked)
	}
	if n := faultInt(t, conn, `SELECT count(*) FROM idempotency_keys WHERE state = 'in_flight' AND path LIKE '%/complete' AND key <> ALL($1)`, unacked); n != 0 {
		t.Errorf("%d completion keys left in flight after their retries", n)
	}
	t.Logf("%d completions answered 200 lost their commit with the primary; their keys stay in flight", len(unacked))
	t.Logf("%d other keys in flight, cut off by the crash", faultInt(t, conn, `SELECT count(*) FROM idempotency_keys WHERE state = 'in_flight'`))
	// Both kinds are accounted for above; the invariants hold for every other key.
	if _, err := conn.Exec(ctx, `DELETE FROM idempotency_keys WHERE state = 'in_flight' AND (path NOT LIKE '%/complete' OR key = ANY($1))`, unacked); err != nil {
		t.Fatal(err)
	}
	faultCheckInvariants(t, conn, true)

	// The outbox resumed on the new primary: every order's event reaches the receiver.
	// An event whose lease committed on the standby while the crash kept the commit's
	// answer from the worker was never sent: it is sent when its lease runs out
	// (WEBHOOK_TIMEOUT + 30s, serve.go), so the wait is longer than a lease.
	const eventWait = 2*time.Second + 30*time.Second + 15*time.Second
	deadline := time.Now().Add(eventWait)
	for {
		rows, err := conn.Query(ctx, `SELECT checkout_session_id FROM orders`)
		if err != nil {
			t.Fatal(err)
		}
		sids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		missing := 0
		for _, sid := range sids {
			if _, ok := events.Load(sid); !ok {
				missing++
			}
		}
		if missing == 0 {
			t.Logf("order events of all %d orders delivered", len(sids))
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("%d of %d orders have no event at the receiver %s after the failover", missing, len(sids), eventWait)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
}
