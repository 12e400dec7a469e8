package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/agentic-commerce/agentic-commerce-server/internal/httpapi"
	"github.com/agentic-commerce/agentic-commerce-server/internal/postgres"
)

// The floor is what any Go HTTP server costs on this machine for requests like the
// flow's: net/http reading a request with the flow's headers and create body, decoding
// the body, answering with a session's bytes compressed as the server compresses them,
// and, in the second half, database round trips that do nothing (SELECT $1) through a
// pool configured as the server's. It is no target: it says how much of the server's
// CPU per request no code of the server could save (the HTTP floor, and the price of
// each round trip on both sides), so the CPU verdicts can be read against it.
//
// The floor server is acpload itself, started again as a child process with
// floorServerEnv set (and the server's `serve`, which it ignores, so that the bench
// starts it as it starts a server), so that its CPU is measured apart from the load
// generator's, as the server's is.
const (
	// floorServerEnv, set to "1", makes acpload the floor server.
	floorServerEnv = "ACPLOAD_FLOOR_SERVER"
	// floorResponseEnv is the body the floor server answers with.
	floorResponseEnv = "ACPLOAD_FLOOR_RESPONSE"
	// floorRoundTrips is the number of round trips per request of the floor's second
	// half; the price of one is the difference to the first half over this.
	floorRoundTrips = 2
	// floorMaxBody bounds the request bodies the floor server reads, as MAX_BODY_BYTES
	// bounds the server's.
	floorMaxBody = 1 << 20
)

// floorPath is the path of a floor request with n round trips.
func floorPath(n int) string { return "/floor/" + strconv.Itoa(n) }

// floorHandler answers GET /ready, and POST /floor/{n} with n round trips of SELECT $1
// on pool, then response. A request body that is not JSON gets a 400: the floor decodes
// what it reads, as every server must.
func floorHandler(pool *pgxpool.Pool, response []byte) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
	})
	mux.HandleFunc("POST /floor/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.PathValue("n"))
		if err != nil || n < 0 || n > 16 {
			http.Error(w, "round trips: 0 to 16", http.StatusNotFound)
			return
		}
		var body map[string]any
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, floorMaxBody)).Decode(&body); err != nil {
			http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
			return
		}
		for i := range n {
			var got int
			if err := pool.QueryRow(r.Context(), "SELECT $1::integer", i).Scan(&got); err != nil || got != i {
				http.Error(w, fmt.Sprintf("round trip %d: %v", i, err), http.StatusServiceUnavailable)
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(response)
	})
	return httpapi.Compression()(mux)
}

// serveFloor runs the floor server until ctx ends, configured as the bench configures
// the server: DATABASE_URL, HOST and PORT (0: any free port, logged in a "serving"
// line as the server logs it), and floorResponseEnv.
func serveFloor(ctx context.Context, getenv func(string) string, stderr io.Writer) error {
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	response := []byte(getenv(floorResponseEnv))
	if !json.Valid(response) {
		return fmt.Errorf("%s is not JSON", floorResponseEnv)
	}
	pool, err := postgres.Connect(ctx, getenv("DATABASE_URL"))
	if err != nil {
		return err
	}
	defer pool.Close()
	ln, err := net.Listen("tcp", net.JoinHostPort(getenv("HOST"), getenv("PORT")))
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: floorHandler(pool, response), ReadHeaderTimeout: 10 * time.Second}
	log.Info("serving", "addr", ln.Addr().String())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return err
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// runFloorServerIfAsked runs the floor server and exits when floorServerEnv asks for
// it, and returns otherwise. main and the tests' TestMain call it first.
func runFloorServerIfAsked(ctx context.Context) {
	if os.Getenv(floorServerEnv) != "1" {
		return
	}
	if err := serveFloor(ctx, os.Getenv, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "acpload floor server:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// Floor is the floor measured at one level: the floor server without round trips
// (Bare) and with RoundTrips of them per request.
type Floor struct {
	Bare           Phase `json:"bare"`
	WithRoundTrips Phase `json:"with_round_trips"`
	RoundTrips     int   `json:"round_trips"`
	// ServerMs is the floor server's CPU per request without round trips: net/http,
	// the body's decoding and the response's compression.
	ServerMs float64 `json:"server_ms_per_request"`
	// ServerPerRoundTripMs and PostgresPerRoundTripMs are what one round trip adds to
	// a request's CPU on either side.
	ServerPerRoundTripMs   float64 `json:"server_ms_per_round_trip"`
	PostgresPerRoundTripMs float64 `json:"postgres_ms_per_round_trip"`
}

// newFloor derives the per-request figures from the two halves; a figure whose CPU
// could not be read is -1, as perRequestMs gives it.
func newFloor(bare, with Phase, roundTrips int) Floor {
	f := Floor{Bare: bare, WithRoundTrips: with, RoundTrips: roundTrips}
	f.ServerMs = perRequestMs(bare.CPU.Server, bare.Report.Requests)
	perTrip := func(b, w float64) float64 {
		if b < 0 || w < 0 || roundTrips <= 0 {
			return -1
		}
		return (w - b) / float64(roundTrips)
	}
	f.ServerPerRoundTripMs = perTrip(f.ServerMs, perRequestMs(with.CPU.Server, with.Report.Requests))
	f.PostgresPerRoundTripMs = perTrip(perRequestMs(bare.CPU.Postgres, bare.Report.Requests),
		perRequestMs(with.CPU.Postgres, with.Report.Requests))
	return f
}

// serverNote and postgresNote put the floor beside the CPU verdicts. serverNote also
// gives the server's CPU a request (perRequestMs) over a floor request with the floor's
// round trips. The host's speed moves both alike (docs/PERFORMANCE.md, "Machine and
// conditions"), so the multiple compares runs of different days where the
// milliseconds cannot.
func (f *Floor) serverNote(perRequestMs float64) string {
	if f == nil {
		return ""
	}
	note := fmt.Sprintf("; floor: %s bare HTTP + %s per round trip", fmtCPU(f.ServerMs), fmtCPU(f.ServerPerRoundTripMs))
	floorRequest := f.ServerMs + float64(f.RoundTrips)*f.ServerPerRoundTripMs
	if perRequestMs > 0 && f.ServerMs > 0 && f.ServerPerRoundTripMs >= 0 {
		note += fmt.Sprintf(" (%.1fx a floor request with %d round trips)", perRequestMs/floorRequest, f.RoundTrips)
	}
	return note
}

func (f *Floor) postgresNote() string {
	if f == nil {
		return ""
	}
	return fmt.Sprintf("; floor: %s per round trip", fmtCPU(f.PostgresPerRoundTripMs))
}

// roundTripsFile holds the round trips each request of the flow makes, with the
// TestRoundTrips operation that measures the same request (which holds the counts to
// this file).
//
//go:embed roundtrips.txt
var roundTripsFile string

// requestRoundTrips are the round trips of one request of the flow: trips from a read,
// and kept (when the request can start from one: hasKept) from a view the server's
// session view cache kept.
type requestRoundTrips struct {
	trips, kept int
	hasKept     bool
}

// roundTripsByEndpoint are roundTripsFile's counts by endpoint: what a server at the
// floor would still pay for each request.
var roundTripsByEndpoint = mustParseRoundTrips(roundTripsFile)

// mustParseRoundTrips reads roundtrips.txt's lines (endpoint, operation, count, and
// for a request that can start from a kept view, that operation and its count; # for
// comments). The file is embedded, so a malformed one is a build's mistake, which
// TestRoundTripsFileCoversTheFlow catches before a bench runs. An endpoint listed twice
// is one: with the last line winning, an edit that added a line and left the old one
// would charge the floor a count TestRoundTrips never measured.
func mustParseRoundTrips(file string) map[string]requestRoundTrips {
	counts := map[string]requestRoundTrips{}
	count := func(field string) int {
		n, err := strconv.Atoi(field)
		if err != nil || n < 0 {
			return -1
		}
		return n
	}
	for line := range strings.SplitSeq(file, "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		var r requestRoundTrips
		switch len(fields) {
		case 3:
			r.trips = count(fields[2])
		case 5:
			r.trips, r.kept, r.hasKept = count(fields[2]), count(fields[4]), true
		default:
			r.trips = -1
		}
		if r.trips < 0 || r.kept < 0 || r.kept > r.trips {
			panic(fmt.Sprintf("acpload: roundtrips.txt: malformed line %q", line))
		}
		if _, seen := counts[fields[0]]; seen {
			panic(fmt.Sprintf("acpload: roundtrips.txt: %s listed twice", fields[0]))
		}
		counts[fields[0]] = r
	}
	return counts
}

// serverMs is the CPU a unit of work of p (a flow, or a completion) would cost a
// server at the floor: each request a bare Go HTTP server's, plus the floor's CPU a
// round trip for each of the request's round trips, those roundtrips.txt gives it
// less those the session view cache saved in the phase (KeptViews). -1 when the
// floor's figures are unknown, or p holds a request whose round trips are not counted
// (the admin API's).
func (f *Floor) serverMs(p Phase) float64 {
	rep := p.Report
	if f == nil || f.ServerMs < 0 || f.ServerPerRoundTripMs < 0 || rep.Flows == 0 {
		return -1
	}
	var total, keepable, savable float64
	for _, e := range rep.Endpoints {
		if e.Endpoint == allEndpoints {
			continue
		}
		r, ok := roundTripsByEndpoint[e.Endpoint]
		if !ok {
			return -1
		}
		total += float64(e.Count) * (f.ServerMs + float64(r.trips)*f.ServerPerRoundTripMs)
		if r.hasKept {
			keepable += float64(e.Count)
			savable += float64(e.Count * (r.trips - r.kept))
		}
	}
	if keepable > 0 {
		total -= p.KeptViews.roundTripsSaved(savable/keepable) * f.ServerPerRoundTripMs
	}
	return total / float64(rep.Flows)
}

// writeText prints the floor's halves and what they give.
func (f *Floor) writeText(w io.Writer) {
	fmt.Fprintf(w, "\n-- floor: a bare Go HTTP server (the flow's create request, a session's bytes gzipped as the server does), then %d SELECT round trips per request\n", f.RoundTrips)
	for _, p := range []Phase{f.Bare, f.WithRoundTrips} {
		fmt.Fprintf(w, "  %s: %.0f req/s; %s\n", p.Report.Name, p.Report.RequestsPerSecond, p.CPU.String(p.Report.Requests, "request"))
	}
	fmt.Fprintf(w, "  server CPU per request: %s bare, %s per round trip; postgres CPU per round trip: %s\n",
		fmtCPU(f.ServerMs), fmtCPU(f.ServerPerRoundTripMs), fmtCPU(f.PostgresPerRoundTripMs))
}

// measureFloor starts the floor server on t's database, answering with the body of a
// session the build's server s created, and measures it for half the phase duration
// bare and half with floorRoundTrips round trips per request, at s's concurrency.
func (e *benchEnv) measureFloor(ctx context.Context, t *benchTarget, s *benchServer) (_ Floor, err error) {
	session, err := sampleSession(ctx, s)
	if err != nil {
		return Floor{}, fmt.Errorf("floor: %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		return Floor{}, fmt.Errorf("floor: %w", err)
	}
	e.progress("starting the floor server (%d agents)", s.agents)
	srv, err := startServer(ctx, serverConfig{
		binary: self, databaseURL: t.serverURL, logLevel: "info",
		env: []string{floorServerEnv + "=1", floorResponseEnv + "=" + string(session)},
	})
	if err != nil {
		return Floor{}, fmt.Errorf("floor server: %w", err)
	}
	floor := &benchServer{
		env: e, target: t, srv: srv, agents: s.agents,
		meter:   cpuMeter{postmaster: e.postmaster, server: srv.pid()},
		rss:     sampleRSS(srv.pid(), time.Second),
		clients: newAgentClients(s.agents, e.cfg.gzip, e.cfg.client),
	}
	defer func() {
		if st := floor.stop(); st.ExitState != "" && err == nil {
			err = fmt.Errorf("floor server: %s", st.ExitState)
		}
	}()
	half := (e.cfg.duration + 1) / 2
	var phases [2]Phase
	for i, n := range []int{0, floorRoundTrips} {
		name := fmt.Sprintf("floor, %d round trips", n)
		e.speed(fmt.Sprintf("%s, %d agents", name, s.agents))
		unit := func(ctx context.Context, a *agent) error {
			resp, err := a.post(ctx, epFloor, floorPath(n), a.key("floor"), createBody)
			if err != nil {
				return err
			}
			if resp.status != http.StatusOK {
				a.failIfRecording(epFloor, resp.status, "floor")
				return fmt.Errorf("floor: status %d", resp.status)
			}
			return nil
		}
		res, cpu, counts, err := floor.measure(ctx, name, half, unit, nil)
		if err != nil {
			return Floor{}, err
		}
		phases[i] = floor.finish(name, res, cpu, counts)
		if n := phases[i].Report.FailedFlows; n > 0 {
			return Floor{}, fmt.Errorf("%s: %d requests failed: %v", name, n, phases[i].Report.Failures)
		}
	}
	return newFloor(phases[0], phases[1], floorRoundTrips), nil
}

// sampleSession creates a session on s with the flow's create body and returns the
// response's body: what the floor server answers with.
func sampleSession(ctx context.Context, s *benchServer) ([]byte, error) {
	run := "floor" + strconv.FormatInt(time.Now().UnixNano(), 36)
	a := &agent{http: s.clients.forAgent(s.srv.base), cfg: &loadConfig{baseURL: s.srv.base}, run: run, rec: newRecorder(1)}
	defer a.http.close()
	resp, err := a.post(ctx, epCreate, "/checkout_sessions", a.key("create"), createBody)
	if err != nil {
		return nil, err
	}
	if resp.status != http.StatusCreated {
		return nil, fmt.Errorf("sample session: status %d: %s", resp.status, resp.body)
	}
	return append([]byte(nil), resp.body...), nil
}
