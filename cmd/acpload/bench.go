package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/agentic-commerce/agentic-commerce-server/internal/catalog"
	"github.com/agentic-commerce/agentic-commerce-server/internal/pgserver"
	"github.com/agentic-commerce/agentic-commerce-server/internal/postgres"
)

// benchConfig is one `acpload -bench` run.
type benchConfig struct {
	server      string
	catalog     string
	pgbench     string
	concurrency int
	duration    time.Duration
	warmup      time.Duration
	// poolMaxConns, when above zero, is added to the server's DATABASE_URL.
	poolMaxConns int
	// pgbouncer puts pgbouncer (transaction pooling) between the server and PostgreSQL;
	// the server's DATABASE_URL then asks for default_query_exec_mode=cache_describe.
	pgbouncer bool
	logLevel  string
	serverEnv []string
	gzip      bool
	json      bool
	// check makes a missed target (or a failed request) an error.
	check bool
}

// The targets the bench holds the server to.
const (
	targetThroughputRatio = 0.5 // complete throughput / pgbench ceiling, at least
	targetLatencyRatio    = 2.0 // complete p99 / pgbench p99, at most
	targetReplayRatio     = 5.0 // replay rate / completion rate, at least
	targetRSSMiB          = 64  // peak RSS, below
	targetReady           = time.Second
)

// Machine describes where the bench ran.
type Machine struct {
	Cores        int    `json:"cores"`
	CPUModel     string `json:"cpu_model"`
	MemoryMiB    int64  `json:"memory_mib"`
	GoVersion    string `json:"go_version"`
	Postgres     string `json:"postgres"`
	PostgresKind string `json:"postgres_kind"`
	// DatabasePath is how the server reached PostgreSQL: "direct", or through pgbouncer
	// (-pgbouncer). The pgbench ceiling is always measured direct, so the throughput
	// ratio through pgbouncer compares with the direct run's.
	DatabasePath    string `json:"database_path"`
	LoadAvgAtStart  string `json:"load_average_at_start"`
	LoadAvgAtEnd    string `json:"load_average_at_end"`
	ServerBinary    string `json:"server_binary"`
	ServerLogLevel  string `json:"server_log_level"`
	PoolMaxConns    string `json:"pool_max_conns"`
	GzipResponses   bool   `json:"gzip_responses"`
	ServerExtraEnv  string `json:"server_extra_env,omitempty"`
	ServerExitState string `json:"server_exit,omitempty"`
	// PgStatStatements says whether per-statement figures were collected.
	PgStatStatements bool `json:"pg_stat_statements"`
}

// ServerStats are the server process's figures.
type ServerStats struct {
	ReadyMs float64 `json:"time_to_ready_ms"`
	// PeakRSSMiB is the larger of the kernel's high-water mark (VmHWM) and the largest
	// sampled VmRSS.
	PeakRSSMiB       float64 `json:"peak_rss_mib"`
	MaxSampledRSSMiB float64 `json:"max_sampled_rss_mib"`
	RSSSamples       int     `json:"rss_samples"`
}

// Verdict is one target: the measured value, the target and whether it is met.
type Verdict struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Shown  string  `json:"shown"`
	Target string  `json:"target"`
	Pass   bool    `json:"pass"`
	// Note gives the same ratio measured in the full ACP flow, for reference.
	Note string `json:"note,omitempty"`
}

// Phase is one load phase against the server with the CPU it cost.
type Phase struct {
	Report Report   `json:"report"`
	CPU    CPUUsage `json:"cpu"`
	// Statements is set when the database has pg_stat_statements loaded.
	Statements *StatementSummary `json:"statements,omitempty"`
}

// BenchReport is everything `acpload -bench` measured.
type BenchReport struct {
	Machine         Machine     `json:"machine"`
	Concurrency     int         `json:"concurrency"`
	DurationSeconds float64     `json:"duration_seconds"`
	WarmupSeconds   float64     `json:"warmup_seconds"`
	Ceiling         Ceiling     `json:"ceiling"`
	Server          ServerStats `json:"server"`
	Flow            Phase       `json:"flow"`
	CompleteOnly    Phase       `json:"complete_only"`
	ReplayOnly      Phase       `json:"replay_only"`
	Verdicts        []Verdict   `json:"verdicts"`
	Pass            bool        `json:"pass"`
	// Speed is the CPU speed probe taken before each phase, and SpeedSpread how far
	// the slowest fell below the fastest (0.1 = 10%).
	Speed       []PhaseSpeed `json:"cpu_speed"`
	SpeedSpread float64      `json:"cpu_speed_spread"`
}

// PhaseSpeed is the CPU speed probe (MB/s of SHA-256 on one core) before a phase.
type PhaseSpeed struct {
	Phase string  `json:"phase"`
	MBps  float64 `json:"mb_per_s"`
}

// maxSpeedSpread is the change of CPU speed during a run beyond which its ratios are
// flagged as unreliable.
const maxSpeedSpread = 0.15

// speedSpread is how far the slowest probe fell below the fastest.
func speedSpread(sp []PhaseSpeed) float64 {
	lo, hi := 0.0, 0.0
	for i, p := range sp {
		if i == 0 || p.MBps < lo {
			lo = p.MBps
		}
		hi = max(hi, p.MBps)
	}
	if hi == 0 {
		return 0
	}
	return (hi - lo) / hi
}

// runBench starts a throwaway PostgreSQL, measures the database ceiling of a completion
// with pgbench, starts the server on the same database and drives it through three
// phases (the full ACP flow, completions only, replays only), then prints the figures
// against the targets. Everything it starts is stopped before it returns, also when
// ctx is canceled.
func runBench(ctx context.Context, cfg benchConfig, stdout, stderr io.Writer) (err error) {
	progress := func(format string, args ...any) {
		fmt.Fprintf(stderr, "acpload: "+format+"\n", args...)
	}
	rep := BenchReport{
		Concurrency: cfg.concurrency, DurationSeconds: cfg.duration.Seconds(), WarmupSeconds: cfg.warmup.Seconds(),
		Machine: machineInfo(cfg),
	}
	progress("load average at start: %s (%d cores)", rep.Machine.LoadAvgAtStart, rep.Machine.Cores)

	tmp, err := os.MkdirTemp("", "acpload-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	progress("starting a throwaway PostgreSQL")
	pg, err := pgserver.StartThrowaway(ctx)
	if err != nil {
		return err
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err = errors.Join(err, pg.Stop(stopCtx))
	}()
	databaseURL, dropDB, err := createDatabase(ctx, pg)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, dropDB()) }()

	if err := postgres.MigrateUp(ctx, databaseURL); err != nil {
		return err
	}
	pool, err := postgres.Connect(ctx, databaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := importCatalog(ctx, pool, cfg.catalog); err != nil {
		return err
	}
	meter := cpuMeter{}
	rep.Machine.Postgres, rep.Machine.PostgresKind = postgresVersion(ctx, pool), pg.Kind
	meter.postmaster = postmasterPID(ctx, pool)
	stmts := newStmtStats(ctx, pool)
	rep.Machine.PgStatStatements = stmts.ok

	seed := &seeder{pool: pool}
	speed := func(phase string) { rep.Speed = append(rep.Speed, PhaseSpeed{Phase: phase, MBps: cpuSpeed()}) }
	speed("calibration")
	ceiling, err := newCeiling(ctx, cfg, pool, seed, databaseURL, tmp, meter, stmts, progress)
	if err != nil {
		return err
	}

	serverURL, err := withPoolSize(databaseURL, cfg.poolMaxConns)
	if err != nil {
		return err
	}
	rep.Machine.DatabasePath = "direct"
	if cfg.pgbouncer {
		progress("starting pgbouncer (transaction pooling) in front of PostgreSQL")
		b, startErr := pgserver.StartPgBouncer(ctx, pgserver.PgBouncerOptions{Upstream: pg.URL})
		if startErr != nil {
			return startErr
		}
		defer func() { err = errors.Join(err, b.Stop(context.Background())) }()
		if serverURL, err = throughPgBouncer(serverURL, b.Port); err != nil {
			return err
		}
		rep.Machine.DatabasePath = b.Version + ", pool_mode=transaction, default_query_exec_mode=cache_describe"
	}
	progress("starting %s", cfg.server)
	srv, err := startServer(ctx, serverConfig{binary: cfg.server, databaseURL: serverURL, logLevel: cfg.logLevel, env: cfg.serverEnv})
	if err != nil {
		return err
	}
	defer func() {
		if stopErr := srv.stop(); stopErr != nil {
			rep.Machine.ServerExitState = stopErr.Error()
			progress("server exit: %v\n%s", stopErr, srv.logs)
		}
	}()
	rep.Server.ReadyMs = ms(srv.ready)
	meter.server = srv.pid()
	ceiling.meter = meter
	rss := sampleRSS(srv.pid(), 50*time.Millisecond)
	defer rss.Stop()

	client := newClient(cfg.concurrency, cfg.gzip)
	defer client.CloseIdleConnections()
	// phase runs one load phase of duration d; its CPU split and statements cover the
	// measured part only (they start when the warm-up ends).
	phase := func(name string, d time.Duration, unit func(context.Context, *agent) error) (loadResult, CPUUsage, stmtCounts, error) {
		progress("%s: %d agents, %s (+%s warm-up)", name, cfg.concurrency, d, cfg.warmup)
		lc := loadConfig{name: name, baseURL: srv.base, concurrency: cfg.concurrency, duration: d, warmup: cfg.warmup}
		snap := make(chan cpuSnapshot, 1)
		timer := time.AfterFunc(cfg.warmup, func() {
			_ = stmts.reset(ctx)
			snap <- meter.snapshot()
		})
		res, err := runAgents(ctx, lc, client, unit)
		after := meter.snapshot()
		if timer.Stop() {
			return res, CPUUsage{}, nil, err
		}
		return res, usage(<-snap, after, 0), stmts.read(ctx), err
	}
	finish := func(name string, res loadResult, cpu CPUUsage, counts stmtCounts) Phase {
		lc := loadConfig{name: name, baseURL: srv.base, concurrency: cfg.concurrency, warmup: cfg.warmup}
		r := res.report(lc)
		return Phase{Report: r, CPU: cpu, Statements: counts.summary(r.Flows)}
	}

	speed("full flow")
	res, cpu, counts, err := phase("full ACP flow", cfg.duration, func(ctx context.Context, a *agent) error { return a.flow(ctx) })
	if err != nil {
		return err
	}
	rep.Flow = finish("full ACP flow", res, cpu, counts)

	// The ceiling and the complete-only phase do the same database work, one through
	// pgbench and one through the server. They alternate in rounds, so that a machine
	// whose speed drifts during the run (a busy VM host) slows both alike.
	const rounds = 2
	half := (cfg.duration + rounds - 1) / rounds
	work := &seededWork{done: make([][]completedSession, cfg.concurrency)}
	var completeRes loadResult
	var completeCPU CPUUsage
	var completeCounts stmtCounts
	for i := range rounds {
		speed(fmt.Sprintf("pgbench round %d", i+1))
		if err := ceiling.round(ctx, half, progress); err != nil {
			return err
		}
		first, last, err := ceiling.reserve(ctx, half+cfg.warmup, cfg.concurrency)
		if err != nil {
			return err
		}
		if err := vacuum(ctx, pool); err != nil {
			return err
		}
		work.next.Store(first - 1)
		work.last = last
		speed(fmt.Sprintf("complete round %d", i+1))
		res, cpu, counts, err := phase(fmt.Sprintf("complete only, round %d", i+1), half, work.complete)
		if err != nil {
			return err
		}
		completeRes, completeCPU, completeCounts = completeRes.add(res), completeCPU.add(cpu), completeCounts.merge(counts)
		ceiling.cursor = min(work.next.Load(), work.last)
		if res.elapsed > 0 {
			ceiling.rate = max(ceiling.rate, float64(res.rec.flows)/res.elapsed.Seconds())
		}
	}
	rep.Ceiling = ceiling.result()
	rep.CompleteOnly = finish("complete only", completeRes, completeCPU, completeCounts)

	work.collect()
	if len(work.all) == 0 {
		return errors.New("complete-only phase: no completion succeeded, nothing to replay")
	}
	speed("replay")
	if res, cpu, counts, err = phase("replay only", cfg.duration, work.replay); err != nil {
		return err
	}
	rep.ReplayOnly = finish("replay only", res, cpu, counts)
	speed("end")

	maxRSS, hwm, samples := rss.Stop()
	rep.Server.MaxSampledRSSMiB = mib(maxRSS)
	rep.Server.PeakRSSMiB = mib(max(maxRSS, hwm))
	rep.Server.RSSSamples = samples
	rep.Machine.LoadAvgAtEnd = loadAverage()
	rep.SpeedSpread = speedSpread(rep.Speed)
	rep.Verdicts, rep.Pass = verdicts(rep)

	if cfg.json {
		err = writeJSON(stdout, rep)
	} else {
		rep.writeText(stdout)
	}
	if err == nil && cfg.check && !rep.Pass {
		err = errors.New("a target was missed or a request failed (-check)")
	}
	return err
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// createDatabase creates a fresh database on pg and returns its URL and a function that
// drops it. The drop matters only on a server the bench does not own (TEST_DATABASE_URL);
// a throwaway server is deleted whole.
func createDatabase(ctx context.Context, pg *pgserver.Server) (string, func() error, error) {
	name := fmt.Sprintf("acpload_%d_%d", os.Getpid(), time.Now().Unix())
	conn, err := pgx.Connect(ctx, pg.URL)
	if err != nil {
		return "", nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, fmt.Errorf("create database: %w", err)
	}
	u, err := pgserver.DatabaseURL(pg.URL, name)
	if err != nil {
		return "", nil, err
	}
	drop := func() error {
		if pg.Kind != pgserver.KindEnv {
			return nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, pg.URL)
		if err != nil {
			return err
		}
		defer c.Close(ctx)
		_, err = c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		return err
	}
	return u, drop, nil
}

// importCatalog upserts the products of the feed file path.
func importCatalog(ctx context.Context, pool *pgxpool.Pool, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("catalog: %w", err)
	}
	defer f.Close()
	products, err := catalog.Parse(f)
	if err != nil {
		return fmt.Errorf("catalog %s: %w", path, err)
	}
	_, err = postgres.ImportCatalog(ctx, pool, products)
	return err
}

// withPoolSize adds pool_max_conns to a URL-form DATABASE_URL.
func withPoolSize(databaseURL string, n int) (string, error) {
	if n <= 0 {
		return databaseURL, nil
	}
	u, err := url.Parse(databaseURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("-pool-max-conns needs a postgres:// URL, got %q", databaseURL)
	}
	q := u.Query()
	q.Set("pool_max_conns", strconv.Itoa(n))
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// throughPgBouncer points a URL-form DATABASE_URL at pgbouncer's port, with the query
// exec mode transaction pooling needs (docs/operations.md, "PgBouncer").
func throughPgBouncer(databaseURL string, port int) (string, error) {
	u, err := url.Parse(databaseURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("-pgbouncer needs a postgres:// URL, got %q", databaseURL)
	}
	u.Host = "127.0.0.1:" + strconv.Itoa(port)
	q := u.Query()
	q.Set("default_query_exec_mode", "cache_describe")
	u.RawQuery = q.Encode()
	return u.String(), nil
}

func postgresVersion(ctx context.Context, pool *pgxpool.Pool) string {
	var v string
	if err := pool.QueryRow(ctx, `SHOW server_version`).Scan(&v); err != nil {
		return "unknown"
	}
	return v
}

// postmasterPID finds the postmaster of the database, when it runs on this machine, so
// that its CPU time can be read; 0 when it cannot be found.
func postmasterPID(ctx context.Context, pool *pgxpool.Pool) int {
	var backend int
	if err := pool.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&backend); err != nil {
		return 0
	}
	st, err := readProcStat(strconv.Itoa(backend))
	if err != nil {
		return 0
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", st.ppid))
	if err != nil || !strings.HasPrefix(string(comm), "postgres") {
		return 0
	}
	return st.ppid
}

// machineInfo describes this machine from /proc and the runtime.
func machineInfo(cfg benchConfig) Machine {
	m := Machine{
		Cores: runtime.NumCPU(), CPUModel: "unknown", GoVersion: runtime.Version(),
		LoadAvgAtStart: loadAverage(), ServerBinary: cfg.server, ServerLogLevel: cfg.logLevel,
		PoolMaxConns: "server default", GzipResponses: cfg.gzip, ServerExtraEnv: strings.Join(cfg.serverEnv, " "),
	}
	if cfg.poolMaxConns > 0 {
		m.PoolMaxConns = strconv.Itoa(cfg.poolMaxConns)
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				if f := strings.Fields(v); len(f) > 0 {
					kb, _ := strconv.ParseInt(f[0], 10, 64)
					m.MemoryMiB = kb >> 10
				}
			}
		}
	}
	return m
}

// completedSession is a seeded session the complete-only phase paid for, with the
// digest of the response, which every replay must reproduce.
type completedSession struct {
	n   int64
	sum [sha256.Size]byte
}

// seededWork hands pre-seeded sessions to the complete-only phase, then their
// completions to the replay-only phase.
type seededWork struct {
	// next is the last session number handed out; last the highest seeded.
	next atomic.Int64
	last int64
	// done holds each agent's completions (indexed by agent id: no lock).
	done [][]completedSession
	// all is every completion, gathered after the complete-only phase.
	all        []completedSession
	replayNext atomic.Int64
}

func seededRequest(n int64) (path, key, body string) {
	id := strconv.FormatInt(n, 10)
	return "/checkout_sessions/bench_" + id + "/complete", "acpload-bench-complete-" + id, completeBody("vt_bench_" + id)
}

// complete pays for the next seeded session with its vault token.
func (w *seededWork) complete(ctx context.Context, a *agent) error {
	n := w.next.Add(1)
	if n > w.last {
		return errExhausted
	}
	path, key, body := seededRequest(n)
	resp, err := a.post(ctx, epComplete, path, key, body)
	if err != nil {
		return err
	}
	if _, err := a.expect(epComplete, resp, http.StatusOK, "completed"); err != nil {
		return err
	}
	w.done[a.id] = append(w.done[a.id], completedSession{n: n, sum: sha256.Sum256(resp.body)})
	return nil
}

// collect gathers the agents' completions for the replay phase.
func (w *seededWork) collect() {
	for _, d := range w.done {
		w.all = append(w.all, d...)
	}
}

// replay sends a completion again, same key and body, round robin over every completed
// session: it must come back as the stored response, marked as a replay.
func (w *seededWork) replay(ctx context.Context, a *agent) error {
	c := w.all[(w.replayNext.Add(1)-1)%int64(len(w.all))]
	path, key, body := seededRequest(c.n)
	resp, err := a.post(ctx, epReplay, path, key, body)
	if err != nil {
		return err
	}
	switch {
	case resp.status != http.StatusOK:
		_, err := a.expect(epReplay, resp, http.StatusOK, "")
		return err
	case !resp.replayed:
		a.failIfRecording(epReplay, resp.status, "no Idempotent-Replayed: true")
		return errFlowFailed
	case sha256.Sum256(resp.body) != c.sum:
		a.failIfRecording(epReplay, resp.status, "body differs from the first response")
		return errFlowFailed
	}
	return nil
}

// verdicts holds the measurements against the targets. The throughput and latency
// ratios compare like with like: the complete-only phase does exactly the pgbench
// script's database work, through HTTP and the server. The same ratios in the full
// flow are given as notes.
func verdicts(r BenchReport) ([]Verdict, bool) {
	ratio := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	}
	complete := r.CompleteOnly.Report.Endpoint("complete")
	replay := r.ReplayOnly.Report.Endpoint("complete_replay")
	flowComplete := r.Flow.Report.Endpoint("complete")
	flowReplay := r.Flow.Report.Endpoint("complete_replay")

	tput := ratio(complete.PerSecond, r.Ceiling.TPS)
	lat := ratio(complete.P99Ms, r.Ceiling.P99Ms)
	rep := ratio(replay.PerSecond, complete.PerSecond)
	v := []Verdict{
		{
			Name: "complete throughput / pgbench ceiling", Value: tput, Target: fmt.Sprintf(">= %.1f", targetThroughputRatio),
			Shown: fmt.Sprintf("%.2f (%.0f / %.0f per s)", tput, complete.PerSecond, r.Ceiling.TPS),
			Pass:  tput >= targetThroughputRatio,
			Note: fmt.Sprintf("full flow: %.2f (%.0f completions/s among %.0f req/s)",
				ratio(flowComplete.PerSecond, r.Ceiling.TPS), flowComplete.PerSecond, r.Flow.Report.RequestsPerSecond),
		},
		{
			Name: "complete p99 / pgbench p99", Value: lat, Target: fmt.Sprintf("<= %.0f", targetLatencyRatio),
			Shown: fmt.Sprintf("%.2f (%s / %s)", lat, fmtMs(complete.P99Ms), fmtMs(r.Ceiling.P99Ms)),
			Pass:  lat > 0 && lat <= targetLatencyRatio,
			Note:  fmt.Sprintf("full flow: %.2f (%s)", ratio(flowComplete.P99Ms, r.Ceiling.P99Ms), fmtMs(flowComplete.P99Ms)),
		},
		{
			Name: "replay rate / completion rate", Value: rep, Target: fmt.Sprintf(">= %.0f", targetReplayRatio),
			Shown: fmt.Sprintf("%.2f (%.0f / %.0f per s)", rep, replay.PerSecond, complete.PerSecond),
			Pass:  rep >= targetReplayRatio,
			Note: fmt.Sprintf("full flow, mean latency complete/replay: %.2f (%s / %s)",
				ratio(flowComplete.MeanMs, flowReplay.MeanMs), fmtMs(flowComplete.MeanMs), fmtMs(flowReplay.MeanMs)),
		},
		{
			Name: "peak RSS", Value: r.Server.PeakRSSMiB, Target: fmt.Sprintf("< %d MiB", targetRSSMiB),
			Shown: fmt.Sprintf("%.1f MiB", r.Server.PeakRSSMiB),
			Pass:  r.Server.RSSSamples > 0 && r.Server.PeakRSSMiB < targetRSSMiB,
			Note:  fmt.Sprintf("VmHWM over the whole run; %d samples", r.Server.RSSSamples),
		},
		{
			Name: "time to ready", Value: r.Server.ReadyMs / 1000, Target: fmt.Sprintf("< %s", targetReady),
			Shown: fmt.Sprintf("%.0f ms", r.Server.ReadyMs),
			Pass:  r.Server.ReadyMs < ms(targetReady),
			Note:  "exec to the first 200 on /ready, schema current",
		},
	}
	pass := true
	for _, x := range v {
		pass = pass && x.Pass
	}
	for _, p := range []Phase{r.Flow, r.CompleteOnly, r.ReplayOnly} {
		pass = pass && len(p.Report.Failures) == 0 && p.Report.Stopped == ""
	}
	return v, pass
}

// writeText prints the bench report.
func (r BenchReport) writeText(w io.Writer) {
	m := r.Machine
	fmt.Fprintf(w, "\n== acpload -bench: %d agents, %gs per phase (+%gs warm-up)\n", r.Concurrency, r.DurationSeconds, r.WarmupSeconds)
	fmt.Fprintf(w, "machine: %d cores (%s), %d MiB; %s; PostgreSQL %s (%s)\n", m.Cores, m.CPUModel, m.MemoryMiB, m.GoVersion, m.Postgres, m.PostgresKind)
	fmt.Fprintf(w, "database path: %s\n", m.DatabasePath)
	fmt.Fprintf(w, "load average: %s at start, %s at end\n", m.LoadAvgAtStart, m.LoadAvgAtEnd)
	if !m.PgStatStatements {
		fmt.Fprintln(w, "per-statement figures: off (give TEST_DATABASE_URL a server with shared_preload_libraries = 'pg_stat_statements')")
	}
	fmt.Fprintf(w, "server: %s, LOG_LEVEL=%s, pool_max_conns %s, gzip %v %s\n", m.ServerBinary, m.ServerLogLevel, m.PoolMaxConns, m.GzipResponses, m.ServerExtraEnv)

	c := r.Ceiling
	fmt.Fprintf(w, "\n-- database ceiling, in rounds alternating with the complete-only phase: %s\n", c.Command)
	fmt.Fprintf(w, "  %d transactions, %.1f tps; latency mean %s, p50 %s, p95 %s, p99 %s, max %s\n",
		c.Transactions, c.TPS, fmtMs(c.MeanMs), fmtMs(c.P50Ms), fmtMs(c.P95Ms), fmtMs(c.P99Ms), fmtMs(c.MaxMs))
	fmt.Fprintf(w, "  %s\n", c.CPU.String(c.Transactions, "tx"))
	c.Statements.writeText(w, "tx")

	for _, p := range []struct {
		title string
		phase Phase
		unit  string
	}{
		{"full ACP flow (create, update, delegate_payment, complete, replay)", r.Flow, "flow"},
		{"complete only (pre-seeded ready sessions, the pgbench script's work through the server; rounds alternating with pgbench)", r.CompleteOnly, "completion"},
		{"replay only (the completions above, same key and body)", r.ReplayOnly, "replay"},
	} {
		fmt.Fprintf(w, "\n-- %s\n", p.title)
		p.phase.Report.writeText(w)
		fmt.Fprintf(w, "  %s\n", p.phase.CPU.String(p.phase.Report.Flows, p.unit))
		p.phase.Statements.writeText(w, p.unit)
	}

	fmt.Fprint(w, "\n-- CPU speed probe before each phase (MB/s of SHA-256, one core):")
	for _, p := range r.Speed {
		fmt.Fprintf(w, " %s %.0f;", p.Phase, p.MBps)
	}
	fmt.Fprintf(w, " spread %.0f%%\n", 100*r.SpeedSpread)

	s := r.Server
	fmt.Fprintf(w, "\n-- server: ready in %.0f ms; peak RSS %.1f MiB (max sampled %.1f MiB over %d samples)\n",
		s.ReadyMs, s.PeakRSSMiB, s.MaxSampledRSSMiB, s.RSSSamples)
	if m.ServerExitState != "" {
		fmt.Fprintf(w, "  server exit: %s\n", m.ServerExitState)
	}

	fmt.Fprintf(w, "\n%-38s %-28s %-10s %s\n", "target", "measured", "wanted", "result")
	for _, v := range r.Verdicts {
		res := "PASS"
		if !v.Pass {
			res = "FAIL"
		}
		fmt.Fprintf(w, "%-38s %-28s %-10s %s\n", v.Name, v.Shown, v.Target, res)
		if v.Note != "" {
			fmt.Fprintf(w, "%-38s   %s\n", "", v.Note)
		}
	}
	for _, p := range []Phase{r.Flow, r.CompleteOnly, r.ReplayOnly} {
		if n := len(p.Report.Failures); n > 0 || p.Report.Stopped != "" {
			fmt.Fprintf(w, "WARNING: %s had failed requests or stopped early; see its table above\n", p.Report.Name)
		}
	}
	if r.SpeedSpread > maxSpeedSpread {
		fmt.Fprintf(w, "WARNING: the CPU speed probe changed by %.0f%% during the run (a busy VM host shows up this way, with no steal time): the phases ran on different machines, in effect; rerun\n", 100*r.SpeedSpread)
	}
}
