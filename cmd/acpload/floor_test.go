package main

import (
	"compress/gzip"
	"context"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/pgtest"
)

// floorSession is a body above the compression threshold, as a session is.
var floorSession = `{"id":"cs_1","status":"not_ready_for_payment","messages":["` + strings.Repeat("a session-sized body ", 80) + `"]}`

func TestFloorHandlerMakesItsRoundTripsAndAnswersAsTheServerCompresses(t *testing.T) {
	t.Parallel()
	var trips pgtest.RoundTrips
	h := floorHandler(pgtest.MustPoolTraced(t, &trips), []byte(floorSession))
	post := func(path, body string, gzipped bool) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		if gzipped {
			req.Header.Set("Accept-Encoding", "gzip")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}

	for _, n := range []int{0, floorRoundTrips} {
		var rec *httptest.ResponseRecorder
		got, sent := trips.Measure(func() { rec = post(floorPath(n), createBody, true) })
		if rec.Code != http.StatusOK || got != n {
			t.Fatalf("%s: status %d after %d round trips %v, want 200 after %d: %s", floorPath(n), rec.Code, got, sent, n, rec.Body)
		}
		if enc := rec.Header().Get("Content-Encoding"); enc != "gzip" {
			t.Fatalf("%s: Content-Encoding %q, want gzip as the server sends a session", floorPath(n), enc)
		}
		zr, err := gzip.NewReader(rec.Body)
		if err != nil {
			t.Fatal(err)
		}
		if body, err := io.ReadAll(zr); err != nil || string(body) != floorSession {
			t.Fatalf("%s: body %q (%v), want the session it was given", floorPath(n), body, err)
		}
	}
	if rec := post(floorPath(0), createBody, false); rec.Code != http.StatusOK || rec.Body.String() != floorSession {
		t.Fatalf("without gzip: status %d, body %q", rec.Code, rec.Body)
	}
	for path, want := range map[string]int{
		floorPath(0):  http.StatusBadRequest, // the body below is not JSON
		floorPath(17): http.StatusNotFound,
		"/floor/x":    http.StatusNotFound,
	} {
		if rec := post(path, "{not json", false); rec.Code != want {
			t.Errorf("%s with a broken body: status %d, want %d", path, rec.Code, want)
		}
	}
}

// TestFloorServerStartsAsTheBenchStartsAServer runs the floor server as the bench does:
// this test binary started again with floorServerEnv, which TestMain honours.
func TestFloorServerStartsAsTheBenchStartsAServer(t *testing.T) {
	t.Parallel()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := startServer(ctx, serverConfig{
		binary: self, databaseURL: pgtest.NewDatabase(t), logLevel: "info",
		env: []string{floorServerEnv + "=1", floorResponseEnv + "=" + floorSession},
	})
	if err != nil {
		t.Fatal(err)
	}
	a := &agent{http: newAgentClients(1, true, clientLean).forAgent(srv.base), cfg: &loadConfig{baseURL: srv.base}, run: "t", rec: newRecorder(1)}
	defer a.http.close()
	resp, err := a.post(ctx, epFloor, floorPath(floorRoundTrips), a.key("floor"), createBody)
	if err != nil || resp.status != http.StatusOK || string(resp.body) != floorSession {
		t.Errorf("floor request: %v, status %d, body %q", err, resp.status, resp.body)
	}
	if err := srv.stop(); err != nil {
		t.Errorf("the floor server did not stop cleanly: %v\n%s", err, srv.logs)
	}
}

func TestFloorServerRefusesABodyThatIsNotJSON(t *testing.T) {
	t.Parallel()
	env := map[string]string{floorResponseEnv: "{truncated"}
	err := serveFloor(context.Background(), func(k string) string { return env[k] }, io.Discard)
	if err == nil || !strings.Contains(err.Error(), floorResponseEnv) {
		t.Fatalf("serveFloor with a broken response: %v, want an error naming %s", err, floorResponseEnv)
	}
}

func TestNewFloorDerivesThePriceOfARoundTrip(t *testing.T) {
	t.Parallel()
	phase := func(requests int, server, postgres float64) Phase {
		return Phase{Report: Report{Requests: requests}, CPU: CPUUsage{Server: server, Postgres: postgres}}
	}
	// 0.08 ms bare; 0.18 ms with two round trips, postgres 0.08 ms: 0.05 and 0.04 each.
	f := newFloor(phase(10000, 0.8, 0), phase(5000, 0.9, 0.4), 2)
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"server bare", f.ServerMs, 0.08},
		{"server per round trip", f.ServerPerRoundTripMs, 0.05},
		{"postgres per round trip", f.PostgresPerRoundTripMs, 0.04},
	} {
		if math.Abs(c.got-c.want) > 1e-9 {
			t.Errorf("%s: %v, want %v", c.name, c.got, c.want)
		}
	}
	// A CPU that could not be read (-1) leaves the figures it feeds unknown.
	f = newFloor(phase(10000, 0.8, -1), phase(5000, -1, 0.4), 2)
	if f.ServerMs != 0.08 || f.ServerPerRoundTripMs != -1 || f.PostgresPerRoundTripMs != -1 {
		t.Errorf("with unreadable CPU: %+v, want 0.08 bare and -1 per round trip", f)
	}
}

// A phase whose writes started from the session view cache's views is charged, at the
// floor, the round trips of a write from a kept view for each view found current and
// one more for each found out of date (from the server's /metrics); the views passed
// over change nothing.
func TestFloorChargesTheRoundTripsOfKeptViews(t *testing.T) {
	t.Parallel()
	f := &Floor{ServerMs: 0.04, ServerPerRoundTripMs: 0.02, RoundTrips: 2}
	p := Phase{Report: Report{Flows: 10, Endpoints: []EndpointStats{{Endpoint: "update_session", Count: 10}}}}
	without := f.serverMs(p) // 0.04 + 2 × 0.02 a flow
	p.KeptViews = keptViewsBetween(
		map[string]float64{metricKeptCurrent: 5, metricKeptOutOfDate: 1, metricKeptPassed: 0},
		map[string]float64{metricKeptCurrent: 15, metricKeptOutOfDate: 3, metricKeptPassed: 7})
	if got, want := f.serverMs(p), without-8*0.02/10; math.Abs(without-0.08) > 1e-9 || math.Abs(got-want) > 1e-9 {
		t.Errorf("floor a flow: %v without kept views (want 0.08), %v with 10 current and 2 out of date (want %v)", without, got, want)
	}
	// An update from a kept view saves one round trip and a completion two
	// (roundtrips.txt): the phase's current views save their average, 1.5 here.
	flow := Phase{Report: Report{Flows: 10, Endpoints: []EndpointStats{
		{Endpoint: "create_session", Count: 10}, {Endpoint: "update_session", Count: 10}, {Endpoint: "complete", Count: 10}}}}
	uncached := f.serverMs(flow) // 3 × 0.04 + (2 + 2 + 3) × 0.02 a flow
	flow.KeptViews = &KeptViews{Current: 20}
	if got, want := f.serverMs(flow), uncached-30*0.02/10; math.Abs(uncached-0.26) > 1e-9 || math.Abs(got-want) > 1e-9 {
		t.Errorf("floor a flow: %v without kept views (want 0.26), %v with an update and a completion from kept views (want %v)", uncached, got, want)
	}
	var text strings.Builder
	p.KeptViews.writeText(&text, p.Report.Flows, "flow")
	if want := "10 kept views current (1.00 a flow), 2 out of date, 7 passed over"; !strings.Contains(text.String(), want) {
		t.Errorf("the report says %q, want %q", text.String(), want)
	}
	text.Reset()
	(&KeptViews{}).writeText(&text, 10, "replay")
	if text.Len() != 0 {
		t.Errorf("a phase that found no kept view prints %q", text.String())
	}
	// A server without the cache exports no counts: nothing is charged or printed.
	if k := keptViewsBetween(map[string]float64{}, map[string]float64{metricKeptCurrent: 3}); k != nil {
		t.Errorf("counts from a scrape without them: %+v", k)
	}
}

func TestReportShowsTheFloorBesideTheCPUVerdicts(t *testing.T) {
	t.Parallel()
	floor := Floor{RoundTrips: 2, ServerMs: 0.083, ServerPerRoundTripMs: 0.048, PostgresPerRoundTripMs: 0.042,
		Bare:           Phase{Report: Report{Name: "floor, 0 round trips", RequestsPerSecond: 10000}},
		WithRoundTrips: Phase{Report: Report{Name: "floor, 2 round trips", RequestsPerSecond: 5000}}}
	rep := BenchReport{Levels: []int{8}, Runs: []LevelRun{{Concurrency: 8, Ceiling: Ceiling{TPS: 1000, P99Ms: 5},
		Current: buildRun("current", 300, 900, 5000, 1000, 0.25, 0.5, 40), Floor: &floor}}}
	requireReportText(t, rep,
		"-- floor: a bare Go HTTP server",
		"floor, 2 round trips: 5000 req/s",
		"server CPU per request: 0.083 ms bare, 0.048 ms per round trip; postgres CPU per round trip: 0.042 ms",
		// 0.25 ms a request over 0.083 + 2 × 0.048 ms.
		"over 1000 requests; floor: 0.083 ms bare HTTP + 0.048 ms per round trip (1.4x a floor request with 2 round trips)",
		"over 1000 requests; floor: 0.042 ms per round trip",
	)
}

func TestServerNoteGivesTheMultipleOnlyWhenKnown(t *testing.T) {
	t.Parallel()
	known := &Floor{RoundTrips: 2, ServerMs: 0.083, ServerPerRoundTripMs: 0.048}
	if got, want := known.serverNote(0.358), " (2.0x a floor request with 2 round trips)"; !strings.HasSuffix(got, want) {
		t.Errorf("serverNote(0.358) = %q, want it to end with %q", got, want)
	}
	for name, tc := range map[string]struct {
		floor        *Floor
		perRequestMs float64
	}{
		"no floor":                   {nil, 0.3},
		"server CPU unreadable":      {known, -1},
		"round trip's CPU unknown":   {&Floor{RoundTrips: 2, ServerMs: 0.083, ServerPerRoundTripMs: -1}, 0.3},
		"bare request's CPU unknown": {&Floor{RoundTrips: 2, ServerMs: -1, ServerPerRoundTripMs: 0.048}, 0.3},
	} {
		if got := tc.floor.serverNote(tc.perRequestMs); strings.Contains(got, "floor request") {
			t.Errorf("%s: serverNote = %q, want no multiple", name, got)
		}
	}
}

// TestRoundTripsFileCoversTheFlow holds roundtrips.txt to the flow acpload sends: every
// request of a full flow has its count, so the floor line is printed for the flow
// (internal/httpapi's TestRoundTrips holds the counts to the server's). A malformed
// line, or an endpoint listed twice, stops the program rather than skew the line.
func TestRoundTripsFileCoversTheFlow(t *testing.T) {
	t.Parallel()
	for ep := epCreate; ep <= epReplay; ep++ {
		if r, ok := roundTripsByEndpoint[ep.String()]; !ok || r.trips < 1 || (r.hasKept && r.kept < 1) {
			t.Errorf("roundtrips.txt gives %s %+v round trips (listed: %v)", ep, r, ok)
		}
	}
	for _, bad := range []string{"complete complete", "complete complete three", "complete complete 3 extra", "complete complete -1",
		"complete complete 3\ncomplete complete 2", "complete complete 3 complete_kept", "complete complete 3 complete_kept 4",
		"complete complete 3 complete_kept -1", "complete complete 3 complete_kept 1 extra"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("the malformed lines %q were read", bad)
				}
			}()
			mustParseRoundTrips("# a comment\n" + bad + "\n")
		}()
	}
}
