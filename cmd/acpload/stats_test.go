package main

import (
	"bufio"
	"bytes"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

func durations(ms ...int) []time.Duration {
	out := make([]time.Duration, len(ms))
	for i, m := range ms {
		out[i] = time.Duration(m) * time.Millisecond
	}
	return out
}

func TestPercentileNearestRank(t *testing.T) {
	t.Parallel()
	// 1..100 ms: the p-th percentile is exactly p ms.
	var hundred []time.Duration
	for i := 1; i <= 100; i++ {
		hundred = append(hundred, time.Duration(i)*time.Millisecond)
	}
	for _, tc := range []struct {
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{nil, 50, 0},
		{durations(7), 50, 7 * time.Millisecond},
		{durations(7), 99, 7 * time.Millisecond},
		{durations(1, 2), 50, 1 * time.Millisecond},
		{durations(1, 2), 51, 2 * time.Millisecond},
		{durations(1, 2, 3, 4), 75, 3 * time.Millisecond},
		{durations(1, 2, 3, 4), 100, 4 * time.Millisecond},
		{hundred, 50, 50 * time.Millisecond},
		{hundred, 95, 95 * time.Millisecond},
		{hundred, 99, 99 * time.Millisecond},
		{hundred, 99.5, 100 * time.Millisecond},
		{hundred, 0.1, 1 * time.Millisecond},
	} {
		if got := percentile(tc.sorted, tc.p); got != tc.want {
			t.Errorf("percentile(%d values, %v) = %v, want %v", len(tc.sorted), tc.p, got, tc.want)
		}
	}
}

func TestSummarizeSortsAndComputesExactStats(t *testing.T) {
	t.Parallel()
	var lat []time.Duration
	for i := 1000; i >= 1; i-- { // 1000 ms down to 1 ms, unsorted on purpose
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	rand.Shuffle(len(lat), func(i, j int) { lat[i], lat[j] = lat[j], lat[i] })
	s := summarize("complete", lat, 10*time.Second)
	if !slices.IsSorted(lat) {
		t.Error("summarize left the latencies unsorted")
	}
	want := EndpointStats{
		Endpoint: "complete", Count: 1000, PerSecond: 100,
		MeanMs: 500.5, P50Ms: 500, P95Ms: 950, P99Ms: 990, MaxMs: 1000,
	}
	if s != want {
		t.Errorf("summarize = %+v\nwant        %+v", s, want)
	}
	if empty := summarize("x", nil, time.Second); empty.Count != 0 || empty.P99Ms != 0 || empty.PerSecond != 0 {
		t.Errorf("summary of nothing = %+v", empty)
	}
}

func TestMergeAndReport(t *testing.T) {
	t.Parallel()
	a, b := newRecorder(4), newRecorder(4)
	for _, d := range durations(1, 3) {
		a.observe(epCreate, d)
		a.observe(epComplete, 10*d)
	}
	for _, d := range durations(2, 4, 6, 8, 10) { // more than preallocated: the slice grows
		b.observe(epCreate, d)
	}
	b.observe(epReplay, time.Millisecond)
	a.fail(epComplete, 409, "out_of_stock")
	b.fail(epComplete, 409, "out_of_stock")
	b.fail(epUpdate, 0, "transport: connection refused")
	a.flows, b.flows, b.failedFlows = 2, 1, 2

	r := buildReport("test", "http://x", 2, time.Second, 2*time.Second, merge([]*recorder{a, b}))
	if r.Flows != 3 || r.FailedFlows != 2 || r.FlowsPerSecond != 1.5 {
		t.Errorf("flows = %d ok, %d failed, %v/s", r.Flows, r.FailedFlows, r.FlowsPerSecond)
	}
	if r.Requests != 10 || r.RequestsPerSecond != 5 {
		t.Errorf("requests = %d, %v/s", r.Requests, r.RequestsPerSecond)
	}
	var names []string
	for _, e := range r.Endpoints {
		names = append(names, e.Endpoint)
	}
	if want := []string{"create_session", "complete", "complete_replay", "all"}; !slices.Equal(names, want) {
		t.Errorf("endpoints = %v, want %v (no update_session or delegate_payment: none sent)", names, want)
	}
	create := r.Endpoint("create_session")
	if create.Count != 7 || create.P50Ms != 4 || create.MaxMs != 10 || create.PerSecond != 3.5 {
		t.Errorf("create_session = %+v", create)
	}
	if all := r.Endpoint("all"); all.Count != 10 || all.MaxMs != 30 {
		t.Errorf("all = %+v", all)
	}
	wantFailures := []Failure{
		{Endpoint: "complete", Status: 409, Code: "out_of_stock", Count: 2},
		{Endpoint: "update_session", Status: 0, Code: "transport: connection refused", Count: 1},
	}
	if !slices.Equal(r.Failures, wantFailures) {
		t.Errorf("failures = %+v\nwant %+v", r.Failures, wantFailures)
	}

	var out bytes.Buffer
	r.writeText(&out)
	for _, want := range []string{"3 ok, 2 failed", "create_session", "complete_replay", "409 out_of_stock", "--- transport: connection refused"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, out.String())
		}
	}
}

func TestParsePgbenchOutput(t *testing.T) {
	t.Parallel()
	ok := `pgbench (15.18 (Debian 15.18-0+deb12u1))
transaction type: complete.pgbench
scaling factor: 1
query mode: prepared
number of clients: 8
number of threads: 2
maximum number of tries: 1
duration: 20 s
number of transactions actually processed: 24690
number of failed transactions: 0 (0.000%)
latency average = 6.479 ms
initial connection time = 12.345 ms
tps = 1234.567890 (without initial connection time)
`
	tps, err := parsePgbenchOutput(ok)
	if err != nil || tps != 1234.56789 {
		t.Errorf("parse = %v, %v", tps, err)
	}
	for name, out := range map[string]string{
		"failed":  strings.Replace(ok, "failed transactions: 0 (0.000%)", "failed transactions: 3 (0.012%)", 1),
		"aborted": ok + "pgbench: error: client 3 aborted in command 9 (SQL) of script 0\n",
		"no tps":  strings.Replace(ok, "tps = ", "tp = ", 1),
	} {
		if _, err := parsePgbenchOutput(out); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestParsePgbenchLog(t *testing.T) {
	t.Parallel()
	log := "0 0 6479 0 1764262000 123456\n1 0 812 0 1764262000 223456\n\n2 5 12000 0 1764262001 1 0\n"
	lat, err := parsePgbenchLog(bufio.NewScanner(strings.NewReader(log)), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{6479 * time.Microsecond, 812 * time.Microsecond, 12 * time.Millisecond}
	if !slices.Equal(lat, want) {
		t.Errorf("latencies = %v, want %v", lat, want)
	}
	if _, err := parsePgbenchLog(bufio.NewScanner(strings.NewReader("3 7 failed 0 1764262000 1\n")), nil); err == nil {
		t.Error("a failed transaction was accepted")
	}
}

func TestParseProcStat(t *testing.T) {
	t.Parallel()
	// The command name may hold spaces and parentheses.
	line := "4242 (postgres: a (b)) S 4200 4242 4242 0 -1 4194560 1 0 0 0 150 50 30 20 20 0 1 0 100 0 0\n"
	st, err := parseProcStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if st.ppid != 4200 || st.cpu != 2*time.Second || st.children != 500*time.Millisecond {
		t.Errorf("parseProcStat = %+v", st)
	}
	if _, err := parseProcStat([]byte("garbage")); err == nil {
		t.Error("garbage parsed")
	}
}

func TestSeededRequestIsStable(t *testing.T) {
	t.Parallel()
	// The replay phase must send exactly what the complete phase sent.
	p1, k1, b1 := seededRequest(42)
	p2, k2, b2 := seededRequest(42)
	if p1 != p2 || k1 != k2 || b1 != b2 {
		t.Error("seededRequest is not deterministic")
	}
	if p1 != "/checkout_sessions/bench_42/complete" || !strings.Contains(b1, `"token":"vt_bench_42"`) {
		t.Errorf("seededRequest(42) = %s %s %s", p1, k1, b1)
	}
}

func TestRoundsAddUp(t *testing.T) {
	t.Parallel()
	a, b := newRecorder(2), newRecorder(2)
	a.observe(epComplete, time.Millisecond)
	a.flows = 1
	b.observe(epComplete, 3*time.Millisecond)
	b.flows = 1
	var total loadResult
	total = total.add(loadResult{rec: a, elapsed: time.Second})
	total = total.add(loadResult{rec: b, elapsed: time.Second, stopped: "ran out"})
	r := total.report(loadConfig{name: "x", concurrency: 1})
	if r.Flows != 2 || r.ElapsedSeconds != 2 || r.FlowsPerSecond != 1 || r.Stopped != "ran out" || r.Endpoint("complete").MaxMs != 3 {
		t.Errorf("merged rounds = %+v", r)
	}

	u := CPUUsage{WallSeconds: 1, Cores: 2, Busy: 1.5, Postgres: 1, Server: -1, LoadGen: 0.25, Other: 0.25}
	if got := (CPUUsage{}).add(u).add(u); got.WallSeconds != 2 || got.Busy != 3 || got.Postgres != 2 || got.Server != -1 {
		t.Errorf("CPU usage of two rounds = %+v (an unknown figure must stay unknown)", got)
	}

	var c stmtCounts
	c = c.merge(stmtCounts{"A": {Statement: "A", Calls: 10, TotalMs: 5}})
	c = c.merge(stmtCounts{"A": {Statement: "A", Calls: 10, TotalMs: 15}, "B": {Statement: "B", Calls: 20, TotalMs: 2}})
	sum := c.summary(20)
	if sum.PerUnit != 2 || sum.ExecMsPerUnit != 1.1 || len(sum.Statements) != 2 ||
		sum.Statements[0] != (StatementStat{Statement: "A", Calls: 20, PerUnit: 1, TotalMs: 20, MeanMs: 1}) {
		t.Errorf("statement summary = %+v", sum)
	}
	if stmtCounts(nil).summary(5) != nil {
		t.Error("no counts must give no summary")
	}
}

func TestSpeedSpread(t *testing.T) {
	t.Parallel()
	if got := speedSpread([]PhaseSpeed{{"a", 100}, {"b", 80}, {"c", 95}}); got != 0.2 {
		t.Errorf("spread = %v, want 0.2", got)
	}
	if speedSpread(nil) != 0 {
		t.Error("spread of nothing")
	}
	if statementLabel("-- name: GetSessionForUpdate :one\nSELECT *  FROM x") != "GetSessionForUpdate" {
		t.Error("sqlc statements are named by their query name")
	}
}
