package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/catalog"
)

func TestConcurrencyLevels(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want []int
		err  string
	}{
		{"8", []int{8}, ""},
		{"8,16,32", []int{8, 16, 32}, ""},
		{" 32 , 8 ", []int{32, 8}, ""},
		{"8,,16", nil, "comma-separated"},
		{"x", nil, "comma-separated"},
		{"0", nil, "at least 1"},
		{"8,-1", nil, "at least 1"},
		{"8,16,8", nil, "twice"},
	} {
		var l concurrencyLevels
		err := l.Set(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Set(%q) = %v, want an error with %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(l, tc.want) {
			t.Errorf("Set(%q) = %v, %v; want %v", tc.in, l, err, tc.want)
		}
		if tc.in == "8,16,32" && l.String() != "8,16,32" {
			t.Errorf("String() = %q", l.String())
		}
	}
}

func TestBenchFlagsAreCheckedBeforeAnythingStarts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-c", "8,16"}, "without -bench"},
		{[]string{"-durable"}, "-durable only applies to -bench"},
		{[]string{"-pin"}, "-pin only applies to -bench"},
		{[]string{"-pgbouncer"}, "-pgbouncer only applies to -bench"},
		{[]string{"-baseline", "main"}, "-baseline only applies to -bench"},
		{[]string{"-psp-delay", "300ms"}, "-psp-delay only applies to -bench"},
		{[]string{"-flash-sale", "10"}, "-flash-sale only applies to -bench"},
		{[]string{"-bench", "-pgbench", "/bin/true", "-flash-sale", "-1"}, "-flash-sale must not be negative"},
		{[]string{"-bench", "-pgbench", "/bin/true", "-psp-delay", "-1s"}, "-psp-delay must not be negative"},
		{[]string{"-bench", "-pgbench", "/bin/true", "-flash-agents", "0"}, "-flash-agents must be at least 1"},
		{[]string{"-c", "0"}, "at least 1"},
		{[]string{"-lines", "0"}, "-lines must be from 1 to 5"},
		{[]string{"-lines", "6"}, "-lines must be from 1 to 5"},
		{[]string{"-bench", "-pgbench", "/bin/true", "-lines", "2"}, "-lines, -admin-key and -cancel do not apply to -bench"},
		{[]string{"-bench", "-pgbench", "/bin/true", "-admin-key", "k"}, "-lines, -admin-key and -cancel do not apply to -bench"},
		{[]string{"-bench", "-pgbench", "/bin/true", "-cancel"}, "-lines, -admin-key and -cancel do not apply to -bench"},
		{[]string{"-cancel", "-admin-key", "k"}, "-cancel and -admin-key exclude each other"},
		{[]string{"-timer-slack", "11ms"}, "-timer-slack must be from 0 to 10ms"},
		{[]string{"-bench", "-pgbench", "/bin/true", "-timer-slack", "-1ms"}, "-timer-slack must be from 0 to 10ms"},
	} {
		err := realMain(context.Background(), tc.args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error with %q", tc.args, err, tc.want)
		}
	}
}

func TestFlashSaleCatalogAndRequests(t *testing.T) {
	t.Parallel()
	products, err := catalog.Parse(strings.NewReader(flashSaleFeed))
	if err != nil {
		t.Fatalf("the flash-sale feed does not parse: %v", err)
	}
	if len(products) != 1 || len(products[0].Variants) != 1 || products[0].Variants[0].ID != flashVariant {
		t.Errorf("flash-sale feed = %+v, want one product with the one variant %s", products, flashVariant)
	}
	if !strings.Contains(flashCreateBody, `"id":"`+flashVariant+`"`) || strings.Contains(flashCreateBody, "item_123") {
		t.Errorf("flash-sale create body %s", flashCreateBody)
	}
	script := hotRowScript()
	for _, want := range []string{"'{" + flashVariant + "}' AS variant_ids", "take_stock(:variant_ids::text[]"} {
		if !strings.Contains(script, want) {
			t.Errorf("hot-row script lacks %q", want)
		}
	}
	if strings.Contains(script, "'item_123'") || strings.Contains(script, "{item_123}") {
		t.Error("hot-row script still takes the stock of item_123: complete.pgbench changed, update hotRowScript")
	}
}

func TestIsOutOfStock(t *testing.T) {
	t.Parallel()
	for body, want := range map[string]bool{
		`{"type":"invalid_request","code":"out_of_stock","message":"sold out"}`:                              true,
		`{"id":"cs_1","status":"not_ready_for_payment","messages":[{"type":"error","code":"out_of_stock"}]}`: true,
		`{"id":"cs_1","status":"ready_for_payment","messages":[{"type":"info","code":"promo"}]}`:             false,
		`{"type":"invalid_request","code":"missing"}`:                                                        false,
		`not json`: false,
	} {
		if got := isOutOfStock([]byte(body)); got != want {
			t.Errorf("isOutOfStock(%s) = %v, want %v", body, got, want)
		}
	}
}

func TestFlashSaleAccountSettles(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		acc            flashSaleAccount
		stock          int64
		oversold, lost int64
	}{
		{flashSaleAccount{remaining: 0, orders: 100, units: 100}, 100, 0, 0},
		{flashSaleAccount{remaining: 0, orders: 103, units: 103}, 100, 3, 0},
		{flashSaleAccount{remaining: -2, orders: 102, units: 102}, 100, 2, 0},
		{flashSaleAccount{remaining: 0, orders: 98, units: 98}, 100, 0, 2},
		{flashSaleAccount{remaining: 5, orders: 95, units: 95}, 100, 0, 0},
	} {
		oversold, lost := tc.acc.settle(tc.stock)
		if oversold != tc.oversold || lost != tc.lost {
			t.Errorf("%+v of %d: oversold %d, lost %d; want %d, %d", tc.acc, tc.stock, oversold, lost, tc.oversold, tc.lost)
		}
	}
}

// fakeShop sells stock units of one item through the ACP flow and answers out_of_stock
// at completion once they are gone.
func fakeShop(t *testing.T, stock int) *httptest.Server {
	t.Helper()
	var mu sync.Mutex
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch p := r.URL.Path; {
		case p == "/checkout_sessions":
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte(`{"id":"cs_1","status":"not_ready_for_payment"}`))
		case p == "/checkout_sessions/cs_1" && r.Method == http.MethodGet:
			mu.Lock()
			left := stock > 0
			mu.Unlock()
			if left {
				_, _ = w.Write([]byte(`{"id":"cs_1","status":"ready_for_payment"}`))
				return
			}
			_, _ = w.Write([]byte(`{"id":"cs_1","status":"not_ready_for_payment","messages":[{"type":"error","code":"out_of_stock"}]}`))
		case p == "/checkout_sessions/cs_1":
			_, _ = w.Write([]byte(`{"id":"cs_1","status":"ready_for_payment"}`))
		case p == "/agentic_commerce/delegate_payment":
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte(`{"id":"vt_1"}`))
		case strings.HasSuffix(p, "/complete"):
			mu.Lock()
			left := stock > 0
			if left {
				stock--
			}
			mu.Unlock()
			if !left {
				// As the server does: the re-priced session is not ready, and says why.
				w.WriteHeader(http.StatusConflict)
				_, _ = w.Write([]byte(`{"type":"invalid_request","code":"not_ready_for_payment","message":"not ready"}`))
				return
			}
			_, _ = w.Write([]byte(`{"id":"cs_1","status":"completed"}`))
		}
	}))
}

// prepareSale prepares n sessions on srv for a sale by agents agents.
func prepareSale(t *testing.T, srv *httptest.Server, agents, n int) *flashSale {
	t.Helper()
	sale := newFlashSale(agents)
	cfg := loadConfig{name: "flash sale preparation", baseURL: srv.URL, concurrency: agents, units: n}
	rep, err := runLoad(context.Background(), cfg, newAgentClients(agents, false, clientLean), sale.prepare)
	if err != nil {
		t.Fatal(err)
	}
	sale.collect()
	if len(sale.sessions) != n || len(rep.Failures) != 0 {
		t.Fatalf("prepared %d sessions, want %d; failures %+v", len(sale.sessions), n, rep.Failures)
	}
	return sale
}

func TestFlashSaleSellsOutAndStops(t *testing.T) {
	t.Parallel()
	srv := fakeShop(t, 25)
	defer srv.Close()
	sale := prepareSale(t, srv, 4, 25+flashSaleSpare*4)
	cfg := loadConfig{name: "flash sale", baseURL: srv.URL, concurrency: 4, duration: time.Minute}
	sale.start = time.Now()
	rep, err := runLoad(context.Background(), cfg, newAgentClients(4, false, clientLean), sale.buy)
	if err != nil {
		t.Fatal(err)
	}
	if sale.sold.Load() != 25 || rep.Flows != 25 || sale.refusals.Load() < 1 || !sale.soldOut.Load() {
		t.Errorf("sold %d (%d flows), refusals %d, sold out %v; want 25 sold and at least one refusal",
			sale.sold.Load(), rep.Flows, sale.refusals.Load(), sale.soldOut.Load())
	}
	if rep.Stopped != errSoldOut.Error() || len(rep.Failures) != 0 {
		t.Errorf("stopped %q, failures %+v: a refusal ends the sale and is not a failure", rep.Stopped, rep.Failures)
	}
	// Only completions are measured: the sessions were prepared before.
	for _, ep := range rep.Endpoints {
		if ep.Endpoint != "complete" && ep.Count > 0 {
			t.Errorf("the sale sent %d %s requests, want completions only", ep.Count, ep.Endpoint)
		}
	}
	selling := time.Duration(sale.lastSold.Load())
	if selling <= 0 || selling > time.Since(sale.start) {
		t.Errorf("selling window %v: want the time to the last sale, within the sale", selling)
	}
	rates, counted := quarterRates([]*flashSale{sale}), 0.0
	for _, r := range rates {
		counted += r * selling.Seconds() / 4
	}
	if len(rates) != 4 || math.Round(counted) != 25 {
		t.Errorf("quarter rates %v over %v count %.2f sales, want 4 rates counting the 25", rates, selling, counted)
	}
	if rep.ElapsedSeconds > 30 {
		t.Errorf("the sale ran %.0fs: the agents did not stop when it sold out", rep.ElapsedSeconds)
	}
}

func TestQuarterRatesSplitTheSellingTime(t *testing.T) {
	t.Parallel()
	first, second := newFlashSale(2), newFlashSale(2)
	rounds := []*flashSale{first, second}
	if r := quarterRates(rounds); r != nil {
		t.Errorf("before a sale: %v, want none", r)
	}
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	// Two rounds of 2 s each, end to end 4 s, a second a quarter. The second round's
	// sales count from the first's end, and the last sale on the very end counts in the
	// last quarter.
	first.soldAt[0] = []time.Duration{ms(500), ms(1500)}
	first.soldAt[1] = []time.Duration{ms(1999), ms(2000)}
	first.recordSale(ms(2000))
	second.soldAt[1] = []time.Duration{ms(1900), ms(2000)}
	second.recordSale(ms(2000))
	// The first round's last sale, at its end (2 s of 4), opens the third quarter.
	if got, want := quarterRates(rounds), []float64{1, 2, 1, 2}; !slices.Equal(got, want) {
		t.Errorf("quarter rates %v, want %v", got, want)
	}
}

func TestTheFlashSaleSplitsIntoRounds(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		stock, rounds int
		want          []int
	}{
		{2000, 2, []int{1000, 1000}},
		{2001, 2, []int{1001, 1000}},
		{7, 3, []int{3, 2, 2}},
		{1, 2, []int{1}},
	} {
		if got := splitStock(c.stock, c.rounds); !slices.Equal(got, c.want) {
			t.Errorf("splitStock(%d, %d) = %v, want %v", c.stock, c.rounds, got, c.want)
		}
	}
	prepared := newFlashSale(3)
	for i := range 7 {
		prepared.sessions = append(prepared.sessions, flashSession{path: fmt.Sprint(i)})
	}
	rounds := prepared.split([]int{4, 3})
	if len(rounds) != 2 || len(rounds[0].sessions) != 4 || len(rounds[1].sessions) != 3 ||
		rounds[0].sessions[3].path != "3" || rounds[1].sessions[0].path != "4" || len(rounds[1].soldAt) != 3 {
		t.Errorf("split into %d rounds: %+v", len(rounds), rounds)
	}
	// Each round is settled against the stock it set, from the orders before it: two
	// rounds of 1000, the first clean, the second with 2 units gone without an order.
	fs := FlashSale{SoldOut: true}
	sold := func(n int64, soldOut bool, selling time.Duration) *flashSale {
		sale := newFlashSale(1)
		sale.sold.Store(n)
		sale.refusals.Store(32)
		sale.soldOut.Store(soldOut)
		sale.recordSale(selling)
		return sale
	}
	fs.addRound(1000, flashSaleAccount{remaining: 1000}, flashSaleAccount{remaining: 0, orders: 1000, units: 1000},
		sold(1000, true, 2*time.Second))
	if fs.Oversold != 0 || fs.Lost != 0 || fs.Sold != 1000 || !fs.SoldOut || fs.SellingSeconds != 2 {
		t.Errorf("after a clean round: %+v", fs)
	}
	fs.addRound(1000, flashSaleAccount{remaining: 1000, orders: 1000, units: 1000},
		flashSaleAccount{remaining: 0, orders: 1998, units: 1998}, sold(998, false, 3*time.Second))
	if fs.Oversold != 0 || fs.Lost != 2 || fs.Sold != 1998 || fs.Orders != 1998 || fs.Refusals != 64 ||
		fs.SoldOut || fs.SellingSeconds != 5 || fs.StockRemaining != 0 {
		t.Errorf("after a round that lost 2 units: %+v; want 2 lost, 1998 sold and ordered, not sold out, 5 s", fs)
	}
}

func TestReportShowsTheSalesQuarterRates(t *testing.T) {
	t.Parallel()
	fs := FlashSale{Build: "current", Stock: 2000, Sold: 2000, Orders: 2000, Refusals: 32, SoldOut: true,
		SellingSeconds: 2.5, CompletionsPerSecond: 800, QuarterRates: []float64{610, 790, 880, 920},
		Ceiling: Ceiling{TPS: 900, Transactions: 9000}, CeilingRatio: 800.0 / 900}
	requireReportText(t, BenchReport{Current: Build{Name: "current"}, FlashSale: []FlashSale{fs}},
		"completions/s by quarter of the selling time: 610 / 790 / 880 / 920")
}

func TestFlashSaleStopsWhenThePreparedSessionsRunOut(t *testing.T) {
	t.Parallel()
	srv := fakeShop(t, 25)
	defer srv.Close()
	sale := prepareSale(t, srv, 4, 10)
	cfg := loadConfig{name: "flash sale", baseURL: srv.URL, concurrency: 4, duration: time.Minute}
	sale.start = time.Now()
	rep, err := runLoad(context.Background(), cfg, newAgentClients(4, false, clientLean), sale.buy)
	if err != nil {
		t.Fatal(err)
	}
	if sale.sold.Load() != 10 || sale.soldOut.Load() || rep.Stopped != errExhausted.Error() {
		t.Errorf("sold %d, sold out %v, stopped %q; want 10 sold, not sold out, stopped for want of sessions",
			sale.sold.Load(), sale.soldOut.Load(), rep.Stopped)
	}
}

// buildRun is a BuildRun with the figures the verdicts and comparisons read.
func buildRun(name string, flowsPerSecond, completions, replays float64, requests int, serverCPU, postgresCPU, rss float64) BuildRun {
	return BuildRun{
		Build:  name,
		Server: ServerStats{ReadyMs: 100, PeakRSSMiB: rss, RSSSamples: 10},
		Flow: Phase{
			Report: Report{Name: "full ACP flow", FlowsPerSecond: flowsPerSecond, Requests: requests, Flows: requests / 5,
				Endpoints: []EndpointStats{{Endpoint: "complete", PerSecond: flowsPerSecond, P99Ms: 10}}},
			CPU: CPUUsage{Server: serverCPU, Postgres: postgresCPU},
		},
		CompleteOnly: Phase{Report: Report{Name: "complete only", Requests: int(completions), Flows: int(completions),
			Endpoints: []EndpointStats{{Endpoint: "complete", PerSecond: completions, P99Ms: 8}}}},
		ReplayOnly: Phase{Report: Report{Name: "replay only",
			Endpoints: []EndpointStats{{Endpoint: "complete_replay", PerSecond: replays, P99Ms: 2}}}},
	}
}

func TestCompareBuilds(t *testing.T) {
	t.Parallel()
	cur := buildRun("current", 300, 900, 5000, 1000, 0.25, 0.5, 40)
	base := buildRun("baseline", 100, 450, 2500, 1000, 0.5, -1, 50)
	rows := compareBuilds(cur, base)
	get := func(name string) Comparison {
		for _, r := range rows {
			if r.Figure == name {
				return r
			}
		}
		t.Fatalf("no figure %q in %+v", name, rows)
		return Comparison{}
	}
	if c := get("full flow: flows/s"); c.Current != 300 || c.Baseline != 100 || c.Ratio != 3 || !c.HigherIsBetter {
		t.Errorf("flows/s = %+v", c)
	}
	if c := get("full flow: server CPU per request"); c.Current != 0.25 || c.Baseline != 0.5 || c.Ratio != 0.5 || c.HigherIsBetter {
		t.Errorf("server CPU = %+v", c)
	}
	if c := get("full flow: postgres CPU per request"); c.Baseline != -1 || c.Ratio != 0 {
		t.Errorf("an unknown baseline figure must give no ratio: %+v", c)
	}
	if c := get("complete only: completions/s"); c.Ratio != 2 {
		t.Errorf("completions/s = %+v", c)
	}
}

func TestVerdictsPerLevelAndBaseline(t *testing.T) {
	t.Parallel()
	good := buildRun("current", 300, 900, 5000, 1000, 0.25, 0.5, 40)
	rep := BenchReport{
		Current: Build{Name: "current"},
		Runs: []LevelRun{
			{Concurrency: 8, Ceiling: Ceiling{TPS: 1000, P99Ms: 5}, Current: good},
			// At 32 agents the server reaches only 0.8 of the ceiling and its RSS is over.
			{Concurrency: 32, Ceiling: Ceiling{TPS: 1000, P99Ms: 5}, Current: buildRun("current", 300, 800, 5000, 1000, 0.25, 0.5, 70)},
		},
	}
	v, pass := verdicts(rep)
	if pass {
		t.Error("a missed target at 32 agents passed the run")
	}
	failed := map[string]bool{}
	for _, x := range v {
		if !x.Pass {
			failed[x.Name] = true
		}
	}
	want := map[string]bool{"32 agents: complete throughput / pgbench ceiling": true, "32 agents: peak RSS": true}
	if len(failed) != len(want) || !failed["32 agents: complete throughput / pgbench ceiling"] || !failed["32 agents: peak RSS"] {
		t.Errorf("failed verdicts %v, want %v", failed, want)
	}
	for _, x := range v {
		if strings.Contains(x.Name, "baseline") {
			t.Errorf("a baseline verdict without a baseline: %s", x.Name)
		}
	}

	base := buildRun("baseline", 100, 450, 2500, 1000, 0.5, 1, 50)
	rep.Runs = rep.Runs[:1]
	rep.Runs[0].Baseline = &base
	v, pass = verdicts(rep)
	if !pass {
		t.Errorf("3x the baseline's flows/s and every target met, yet the run failed: %+v", v)
	}
	slower := buildRun("baseline", 200, 450, 2500, 1000, 0.5, 1, 50)
	rep.Runs[0].Baseline = &slower
	if v, pass = verdicts(rep); pass {
		t.Errorf("1.5x the baseline passed the 2.5x target: %+v", v[len(v)-1])
	}

	// A failed request of the current build fails the run.
	rep.Runs[0].Baseline = nil
	rep.Runs[0].Current.ReplayOnly.Report.Failures = []Failure{{Endpoint: "complete_replay", Status: 500, Count: 1}}
	if _, pass = verdicts(rep); pass {
		t.Error("a failed request passed the run")
	}
}

// The throughput verdict's second line is the ratio the CPU allows, from the
// complete-only phase's and the ceiling's CPU split, and is left out when a split is
// unknown (a remote PostgreSQL, or /proc missing).
func TestThroughputVerdictShowsTheRatioTheCPUAllows(t *testing.T) {
	t.Parallel()
	run := buildRun("current", 300, 1000, 5000, 1000, 0.25, 0.5, 40) // 1000 completions
	run.CompleteOnly.CPU = CPUUsage{Postgres: 1.18, Server: 0.60, LoadGen: 0.22}
	lr := LevelRun{Concurrency: 8, Current: run,
		Ceiling: Ceiling{TPS: 1000, P99Ms: 5, Transactions: 1000, CPU: CPUUsage{Postgres: 1.30, LoadGen: 0.15}}}

	v := levelVerdicts(lr, nil)[0]
	want := "\nCPU a completion: 2.00 ms through the server (postgres 1.18, server 0.60, load generator 0.22), " +
		"1.45 ms in pgbench (postgres 1.30, pgbench 0.15): 0.73 where CPU bounds both"
	if !strings.HasSuffix(v.Note, want) {
		t.Fatalf("throughput note %q, want it to end with %q", v.Note, want)
	}
	var out strings.Builder
	BenchReport{Verdicts: []Verdict{v}}.writeText(&out)
	if !strings.Contains(out.String(), "\n"+strings.Repeat(" ", 55)+strings.TrimPrefix(want, "\n")+"\n") {
		t.Errorf("the second line is not printed under the verdict, indented as the first:\n%s", out.String())
	}

	// With PostgreSQL on a CPU of its own, each side runs as fast as its busier CPU set
	// allows: PostgreSQL's here on both (1/1.18 and 1/1.30 per ms, against 1/0.82 and
	// 1/0.15 on the other CPU).
	v = levelVerdicts(lr, &PinnedCPUs{Postgres: 1, Rest: 1})[0]
	want = "\nCPU a completion, PostgreSQL on 1 CPU(s) and the rest on 1: through the server postgres 1.18 ms, " +
		"server 0.60 and load generator 0.22; in pgbench postgres 1.30, pgbench 0.15: 1.10 where the busier side bounds each"
	if !strings.HasSuffix(v.Note, want) {
		t.Fatalf("pinned throughput note %q, want it to end with %q", v.Note, want)
	}
	// The server's side bounds once it needs more than the database's: 1/(0.82×2) per ms
	// on one CPU against 1/1.30.
	lr.Current.CompleteOnly.CPU.Server = 1.42
	if v := levelVerdicts(lr, &PinnedCPUs{Postgres: 1, Rest: 1})[0]; !strings.HasSuffix(v.Note, ": 0.79 where the busier side bounds each") {
		t.Errorf("pinned throughput note %q, want the server's side to bound it at 0.79", v.Note)
	}

	lr.Ceiling.CPU.Postgres = -1
	for _, pinned := range []*PinnedCPUs{nil, {Postgres: 1, Rest: 1}} {
		if v := levelVerdicts(lr, pinned)[0]; strings.Contains(v.Note, "CPU a completion") {
			t.Errorf("a note from an unknown CPU split: %q", v.Note)
		}
	}
}

// The throughput verdicts' last line puts the server at its floor: the ratio the CPU
// would then allow, and what the target leaves the server, with the other processes
// spending what they spent. The figures are the thirty-third round's, shared, at 8
// agents (docs/performance-history.md): even a server at its floor stays under 0.85 of
// the ceiling there, and 2.5 times the baseline leaves it 0.128 ms a request.
func TestThroughputVerdictsPutTheServerAtItsFloor(t *testing.T) {
	t.Parallel()
	flowEndpoints := []EndpointStats{
		{Endpoint: "create_session", Count: 1000}, {Endpoint: "update_session", Count: 1000},
		{Endpoint: "delegate_payment", Count: 1000}, {Endpoint: "complete", Count: 1000}, {Endpoint: "complete_replay", Count: 1000},
		{Endpoint: allEndpoints, Count: 5000},
	}
	cur := buildRun("current", 473, 1000, 9000, 5000, 0, 0, 35)
	cur.Flow.Report.Flows, cur.Flow.Report.Endpoints = 1000, flowEndpoints
	cur.Flow.CPU = CPUUsage{Postgres: 2.08, Server: 1.36, LoadGen: 0.51}
	cur.CompleteOnly.Report.Endpoints[0].Count = 1000
	cur.CompleteOnly.CPU = CPUUsage{Postgres: 0.77, Server: 0.40, LoadGen: 0.13}
	base := buildRun("baseline", 223, 500, 4800, 5000, 0, 0, 47)
	base.Flow.Report.Flows = 1000
	base.Flow.CPU = CPUUsage{Postgres: 4.30, Server: 3.00, LoadGen: 0.78}
	lr := LevelRun{Concurrency: 8, Current: cur, Baseline: &base,
		Ceiling: Ceiling{TPS: 2536, P99Ms: 7, Transactions: 1000, CPU: CPUUsage{Postgres: 0.69, LoadGen: 0.09}},
		Floor:   &Floor{ServerMs: 0.038, ServerPerRoundTripMs: 0.023, RoundTrips: 2}}
	note := func(v []Verdict, name string) string {
		for _, x := range v {
			if strings.HasSuffix(x.Name, name) {
				return x.Note
			}
		}
		t.Fatalf("no verdict %q in %+v", name, v)
		return ""
	}

	v := levelVerdicts(lr, nil)
	// A completion at the floor: 0.038 + 3 × 0.023 ms.
	if got, want := note(v, "complete throughput / pgbench ceiling"),
		"\nthe server at its floor (0.107 ms a completion) would give 0.77; 0.85 leaves it 0.018 ms a completion"; !strings.HasSuffix(got, want) {
		t.Errorf("throughput note %q, want it to end with %q", got, want)
	}
	// A flow at the floor: 5 × 0.038 + 9 × 0.023 ms.
	if got, want := note(v, "full flow flows/s / baseline"),
		"\nCPU a flow: 3.95 ms (postgres 2.08, server 1.36, load generator 0.51), the baseline's 8.08 ms "+
			"(postgres 4.30, server 3.00, load generator 0.78): 2.05 where CPU bounds both"+
			"\nthe server at its floor (0.397 ms a flow) would give 2.71; 2.50 leaves it 0.642 ms a flow (0.128 ms a request)"; !strings.HasSuffix(got, want) {
		t.Errorf("flows/s note %q, want it to end with %q", got, want)
	}

	// Pinned, PostgreSQL's CPU bounds the flow: 1/2.08 flows a ms against the baseline's
	// 1/4.30, 2.07 times, whatever the server spends.
	v = levelVerdicts(lr, &PinnedCPUs{Postgres: 1, Rest: 1})
	if got, want := note(v, "full flow flows/s / baseline"),
		"\nthe server at its floor (0.397 ms a flow) would give 2.07; 2.50 leaves the server no CPU: "+
			"PostgreSQL's own CPU falls short: it allows PostgreSQL 1.720 ms a flow, which spent 2.080"; !strings.HasSuffix(got, want) {
		t.Errorf("pinned flows/s note %q, want it to end with %q", got, want)
	}
	// The completion's 0.85 needs 1/(0.85 × 1/0.69) ms of the other CPU a completion,
	// less the load generator's 0.13.
	if got, want := note(v, "complete throughput / pgbench ceiling"),
		"\nthe server at its floor (0.107 ms a completion) would give 0.90; 0.85 leaves it 0.682 ms a completion"; !strings.HasSuffix(got, want) {
		t.Errorf("pinned throughput note %q, want it to end with %q", got, want)
	}

	// And the server's CPU, when the load generator beside it spends more than the
	// 0.812 ms a completion 0.85 allows that CPU.
	lr.Current.CompleteOnly.CPU.LoadGen = 0.90
	if got, want := note(levelVerdicts(lr, &PinnedCPUs{Postgres: 1, Rest: 1}), "complete throughput / pgbench ceiling"),
		"; 0.85 leaves the server no CPU: it allows the server's CPU(s) 0.812 ms a completion, and the load generator spent 0.900"; !strings.HasSuffix(got, want) {
		t.Errorf("pinned throughput note %q, want it to end with %q", got, want)
	}
	lr.Current.CompleteOnly.CPU.LoadGen = 0.13

	// Shared, a ceiling whose transaction costs 0.69 ms in all allows a completion
	// 0.69 / 0.85 = 0.812 ms, less than PostgreSQL and the load generator spent.
	lr.Ceiling.CPU.Postgres = 0.60
	if got, want := note(levelVerdicts(lr, nil), "complete throughput / pgbench ceiling"),
		"; 0.85 leaves the server no CPU: it allows 0.812 ms a completion in all, and PostgreSQL and the load generator spent 0.900"; !strings.HasSuffix(got, want) {
		t.Errorf("throughput note %q, want it to end with %q", got, want)
	}

	// No line without a floor, nor for a flow with a request whose round trips are not
	// counted (the admin API's).
	lr.Floor = nil
	if v := levelVerdicts(lr, nil); strings.Contains(note(v, "flows/s / baseline"), "floor") {
		t.Errorf("a floor line without a floor: %q", note(v, "flows/s / baseline"))
	}
	lr.Floor = &Floor{ServerMs: 0.038, ServerPerRoundTripMs: 0.023, RoundTrips: 2}
	lr.Current.Flow.Report.Endpoints = append(flowEndpoints, EndpointStats{Endpoint: "admin_refund", Count: 1000})
	if v := levelVerdicts(lr, nil); strings.Contains(note(v, "flows/s / baseline"), "floor") {
		t.Errorf("a floor line for a flow with uncounted round trips: %q", note(v, "flows/s / baseline"))
	}
}

func TestFlashSaleVerdicts(t *testing.T) {
	t.Parallel()
	fs := FlashSale{Build: "current", Stock: 100, Sold: 100, Orders: 100, Refusals: 3, SoldOut: true,
		CompletionsPerSecond: 90, Ceiling: Ceiling{TPS: 100}, CeilingRatio: 0.9}
	rep := BenchReport{Current: Build{Name: "current"}, FlashSale: []FlashSale{fs}}
	if v, pass := verdicts(rep); !pass || len(v) != 4 {
		t.Errorf("a clean sale: pass %v, %+v", pass, v)
	}
	oversold := fs
	oversold.Oversold, oversold.Orders = 2, 102
	rep.FlashSale = []FlashSale{oversold}
	if _, pass := verdicts(rep); pass {
		t.Error("an oversold sale passed")
	}
	// The baseline's sale is shown, not judged.
	baseline := oversold
	baseline.Build = "baseline"
	rep.FlashSale = []FlashSale{fs, baseline}
	if _, pass := verdicts(rep); !pass {
		t.Error("the baseline's oversold sale failed the run")
	}

	// The ratio's verdict carries the CPU a sale (ceilingBoundNote) and, with the floor
	// of the sale's level, the server at its floor: 0.035 + 3 × 0.020 ms a request, 2064
	// requests (64 of them refused) for 2000 sales.
	sale := fs
	sale.Agents = 32
	sale.Report = Report{Flows: 2000, Requests: 2064, Endpoints: []EndpointStats{{Endpoint: "complete", Count: 2064}}}
	sale.CPU = CPUUsage{Postgres: 1.98, Server: 0.92, LoadGen: 0.36}
	sale.Ceiling = Ceiling{TPS: 1778, Transactions: 10000, CPU: CPUUsage{Postgres: 9.0, LoadGen: 1.0}}
	rep.FlashSale = []FlashSale{sale}
	rep.Runs = []LevelRun{{Concurrency: 32, Floor: &Floor{ServerMs: 0.035, ServerPerRoundTripMs: 0.020, RoundTrips: 2}}}
	want := "\nCPU a sale: 1.63 ms through the server (postgres 0.99, server 0.46, load generator 0.18), " +
		"1.00 ms in pgbench (postgres 0.90, pgbench 0.10): 0.61 where CPU bounds both" +
		"\nthe server at its floor (0.098 ms a sale) would give 0.79; 0.80 leaves it 0.080 ms a sale"
	v := flashSaleVerdicts(sale, rep.floorAt(32), nil)
	if got := v[len(v)-1].Note; !strings.HasSuffix(got, want) {
		t.Errorf("flash sale ratio note %q, want it to end with %q", got, want)
	}
	all, _ := verdicts(rep)
	if got := all[len(all)-1].Note; !strings.HasSuffix(got, want) {
		t.Errorf("verdicts gave the flash sale ratio note %q, want it to end with %q", got, want)
	}
	// Without a floor at the sale's level, the CPU line alone.
	rep.Runs[0].Concurrency = 8
	all, _ = verdicts(rep)
	if got := all[len(all)-1].Note; strings.Contains(got, "floor") || !strings.Contains(got, "0.61 where CPU bounds both") {
		t.Errorf("flash sale ratio note without a floor at 32 agents: %q", got)
	}
}

func TestDurabilityIsAlwaysStated(t *testing.T) {
	t.Parallel()
	fast := Durability{Fsync: "off", SynchronousCommit: "off", FullPageWrites: "off"}
	durable := Durability{Requested: true, Fsync: "on", SynchronousCommit: "on", FullPageWrites: "on"}
	if fast.Durable() || !durable.Durable() {
		t.Error("Durable() is wrong")
	}
	if s := fast.String(); !strings.Contains(s, "fsync=off synchronous_commit=off") || !strings.Contains(s, "not crash-safe") {
		t.Errorf("fast: %q", s)
	}
	if s := durable.String(); !strings.Contains(s, "fsync=on synchronous_commit=on") || !strings.Contains(s, "-durable") {
		t.Errorf("durable: %q", s)
	}
	var buf bytes.Buffer
	BenchReport{Durability: fast}.writeText(&buf)
	if !strings.Contains(buf.String(), "durability: fsync=off") || !strings.Contains(buf.String(), "BENCH_DURABLE=1") {
		t.Errorf("the text report does not state the durability:\n%s", buf.String())
	}
}

func TestReportShowsEveryPart(t *testing.T) {
	t.Parallel()
	cur := buildRun("current", 300, 900, 5000, 1000, 0.25, 0.5, 40)
	base := buildRun("baseline", 100, 450, 2500, 1000, 0.5, 1, 50)
	rep := BenchReport{
		Current:  Build{Name: "current", Binary: "bin/x"},
		Baseline: &Build{Name: "baseline", Revision: "main", Commit: "0123456789abcdef0123", Binary: "/tmp/y"},
		Levels:   []int{8},
		Runs: []LevelRun{{Concurrency: 8, Ceiling: Ceiling{TPS: 1000, P99Ms: 5}, Current: cur, Baseline: &base,
			Comparison: compareBuilds(cur, base)}},
		FlashSale: []FlashSale{{Build: "current", Stock: 10, Sold: 10, Orders: 10, SoldOut: true}},
		PSP: []PSPRun{
			{Build: "current", Agents: 8, DelayMs: 300, Note: "not supported by this build: server exited before listening: PAYMENT_GATEWAY must be mock"},
		},
	}
	rep.Machine.CPUs = cpuSplit{database: []int{0}, rest: []int{1}}.String()
	requireReportText(t, rep,
		"CPUs: pinned: PostgreSQL on CPU 0;",
		"baseline: main = 0123456789ab",
		"-- current vs baseline, 8 agents",
		"full flow: flows/s",
		"3.00x",
		"flash sale, 32 agents"[:10],
		"sold 10, out-of-stock refusals 0, oversold 0, lost 0",
		"not supported by this build",
		"8 agents: full flow flows/s / baseline",
	)
}

// requireReportText gives rep its verdicts, prints it as text and fails t for each of
// want the text lacks.
func requireReportText(t *testing.T, rep BenchReport, want ...string) {
	t.Helper()
	rep.Verdicts, rep.Pass = verdicts(rep)
	var buf bytes.Buffer
	rep.writeText(&buf)
	out := buf.String()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("the report lacks %q:\n%s", w, out)
		}
	}
}

func TestStartFailureKeepsTheServersReason(t *testing.T) {
	t.Parallel()
	err := errors.New("server exited before listening: exit status 1\n{\"level\":\"ERROR\",\"msg\":\"config\"}\nPAYMENT_GATEWAY must be mock, got \"stripe\"")
	if got := startFailure(err); !strings.HasPrefix(got, "server exited before listening") || !strings.HasSuffix(got, `got "stripe"`) {
		t.Errorf("startFailure = %q", got)
	}
}

func TestASkippedBaselineSaysWhyOnce(t *testing.T) {
	t.Parallel()
	base := buildRun("baseline", 100, 0, 0, 500, 0.5, 1, 50)
	base.CompleteOnly, base.ReplayOnly = Phase{}, Phase{}
	base.Skipped = "complete only and replay only not measured: seed sessions 1-2000: no column x"
	var buf bytes.Buffer
	writeBuildRun(&buf, base)
	if n := strings.Count(buf.String(), "not measured"); n != 1 {
		t.Errorf("the reason is printed %d times:\n%s", n, buf.String())
	}
	if strings.Contains(buf.String(), "complete only:") {
		t.Errorf("an empty phase was printed:\n%s", buf.String())
	}
	rows := compareBuilds(buildRun("current", 300, 900, 5000, 1000, 0.25, 0.5, 40), base)
	for _, r := range rows {
		if strings.HasPrefix(r.Figure, "complete only") && r.Ratio != 0 {
			t.Errorf("%s: ratio %.2f against a phase that did not run", r.Figure, r.Ratio)
		}
	}
}

// A figure is shown on the side of its target that decides its verdict, for targets
// held from below and from above.
func TestFmtHeldNeverRoundsOntoTheTarget(t *testing.T) {
	for _, c := range []struct {
		v     float64
		holds func(float64) bool
		want  string
	}{
		{0.8493, atLeast(0.85), "0.849"},
		{0.84999, atLeast(0.85), "0.84999"},
		{0.8512, atLeast(0.85), "0.85"},
		{0.85, atLeast(0.85), "0.85"},
		{0.6712, atLeast(0.85), "0.67"},
		{2.4961, atLeast(2.5), "2.496"},
		{5.41, atLeast(5), "5.41"},
		{4.999, atLeast(5), "4.999"},
		{2.003, atMost(2), "2.003"},
		{1.997, atMost(2), "2.00"},
		{1.37, atMost(2), "1.37"},
	} {
		if got := fmtHeld(c.v, c.holds); got != c.want {
			t.Errorf("fmtHeld(%v) = %s, want %s", c.v, got, c.want)
		}
	}
}

// Each round of a phase starts with the next build, so that no build always runs
// first, and every build runs once a round.
func TestRoundsRotateTheBuilds(t *testing.T) {
	builds := []string{"current", "baseline"}
	for i, want := range [][]string{{"current", "baseline"}, {"baseline", "current"}, {"current", "baseline"}} {
		if got := rotated(builds, i); !slices.Equal(got, want) {
			t.Errorf("round %d: %v, want %v", i+1, got, want)
		}
	}
	if got := rotated([]string{"current"}, 1); !slices.Equal(got, []string{"current"}) {
		t.Errorf("one build, round 2: %v", got)
	}
	if got := rotated([]string(nil), 1); len(got) != 0 {
		t.Errorf("no build: %v", got)
	}
	if !slices.Equal(builds, []string{"current", "baseline"}) {
		t.Errorf("rotated changed its argument: %v", builds)
	}
}
