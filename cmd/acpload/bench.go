package main

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/agentic-commerce/agentic-commerce-server/internal/payment/stripegw/stripefake"
	"github.com/agentic-commerce/agentic-commerce-server/internal/pgserver"
	"github.com/agentic-commerce/agentic-commerce-server/internal/postgres"
	"github.com/agentic-commerce/agentic-commerce-server/internal/timerslack"
)

// benchConfig is one `acpload -bench` run.
type benchConfig struct {
	server  string
	catalog string
	// discounts, when set, is a discounts file each build imports after the catalog.
	discounts string
	pgbench   string
	// levels are the concurrency levels, each run in turn (ceiling, phases, RSS).
	levels   []int
	duration time.Duration
	warmup   time.Duration
	// poolMaxConns, when above zero, is added to the server's DATABASE_URL.
	poolMaxConns int
	// pgbouncer puts pgbouncer (transaction pooling) between the server and PostgreSQL;
	// the server's DATABASE_URL then asks for default_query_exec_mode=cache_describe.
	pgbouncer bool
	// pin gives PostgreSQL (and pgbouncer) CPUs of their own and the rest of the bench
	// the others (cpuSplit).
	pin       bool
	logLevel  string
	serverEnv []string
	gzip      bool
	// client is the agents' HTTP client: clientLean or clientStd (-client).
	client string
	json   bool
	// timerSlack is the timer slack acpload runs with (-timer-slack), for the report.
	timerSlack time.Duration
	// check makes a missed target (or a failed request) an error.
	check bool

	// baseline, when set, is a git revision whose server is built and measured beside
	// the current one.
	baseline string
	// durable runs PostgreSQL with fsync and synchronous_commit on.
	durable bool
	// flashStock, when above zero, adds the flash-sale phase: flashAgents agents
	// complete sessions prepared for one unit each of an item with this much stock
	// until it sells out.
	flashStock  int
	flashAgents int
	// pspDelay, when above zero, adds the slow-PSP phase against a fake Stripe API
	// answering after this delay.
	pspDelay time.Duration
}

// The targets the bench holds the server to (issue 12).
const (
	targetThroughputRatio  = 0.85 // complete throughput / pgbench ceiling, at least
	targetLatencyRatio     = 2.0  // complete p99 / pgbench p99, at most
	targetReplayRatio      = 5.0  // replay rate / completion rate, at least
	targetRSSMiB           = 64   // peak RSS, below
	targetRSSAgents        = 32   // the concurrency at which the RSS target applies
	targetReady            = time.Second
	targetServerCPUMs      = 0.3 // server CPU per request of the full flow, at most
	targetPostgresCPUMs    = 0.6 // PostgreSQL CPU per request of the full flow, at most
	targetBaselineSpeedup  = 2.5 // full-flow flows/s over the baseline's, at least
	targetFlashSaleRatio   = 0.8 // flash-sale completions/s / hot-row pgbench ceiling, at least
	flashSaleTimeout       = 5 * time.Minute
	defaultFlashSaleAgents = 32
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
	DatabasePath string `json:"database_path"`
	// CPUs says whether PostgreSQL shared the CPUs with the server and the load
	// generator or ran on its own (-pin).
	CPUs string `json:"cpus"`
	// PinnedCPUs counts each side's CPUs with -pin; nil when they shared them.
	PinnedCPUs *PinnedCPUs `json:"pinned_cpus,omitempty"`

	LoadAvgAtStart string `json:"load_average_at_start"`
	LoadAvgAtEnd   string `json:"load_average_at_end"`
	ServerBinary   string `json:"server_binary"`
	ServerLogLevel string `json:"server_log_level"`
	PoolMaxConns   string `json:"pool_max_conns"`
	GzipResponses  bool   `json:"gzip_responses"`
	// LoadTimerSlack is the timer slack the load generator ran with (-timer-slack); the
	// servers, PostgreSQL and pgbench ran with the slack acpload was started with.
	LoadTimerSlack string `json:"load_generator_timer_slack"`
	// LoadClient is the agents' HTTP client (-client): "lean" or "net/http".
	LoadClient     string `json:"load_generator_client"`
	ServerExtraEnv string `json:"server_extra_env,omitempty"`
	// PgStatStatements says whether per-statement figures were collected.
	PgStatStatements bool `json:"pg_stat_statements"`
}

// PinnedCPUs is how many CPUs each side had with -pin.
type PinnedCPUs struct {
	// Postgres counts PostgreSQL's CPUs (and pgbouncer's).
	Postgres int `json:"postgres"`
	// Rest counts the CPUs of the servers, pgbench and the load generator.
	Rest int `json:"rest"`
}

// ServerStats are the server process's figures over one start.
type ServerStats struct {
	ReadyMs float64 `json:"time_to_ready_ms"`
	// PeakRSSMiB is the larger of the kernel's high-water mark (VmHWM) and the largest
	// sampled VmRSS.
	PeakRSSMiB       float64 `json:"peak_rss_mib"`
	MaxSampledRSSMiB float64 `json:"max_sampled_rss_mib"`
	RSSSamples       int     `json:"rss_samples"`
	// ExitState is set when the server did not stop cleanly.
	ExitState string `json:"server_exit,omitempty"`
}

// Verdict is one target: the measured value, the target and whether it is met.
type Verdict struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Shown  string  `json:"shown"`
	Target string  `json:"target"`
	Pass   bool    `json:"pass"`
	// Note gives context: the same ratio in the full ACP flow, how it was read.
	Note string `json:"note,omitempty"`
}

// Phase is one load phase against the server with the CPU it cost.
type Phase struct {
	Report Report   `json:"report"`
	CPU    CPUUsage `json:"cpu"`
	// Statements is set when the database has pg_stat_statements loaded.
	Statements *StatementSummary `json:"statements,omitempty"`
	// KeptViews is set when the server counts its session view cache's views.
	KeptViews *KeptViews `json:"kept_views,omitempty"`
}

// KeptViews is what the server's session view cache did in a phase, from its /metrics
// (acp_session_cache_views_total, internal/metrics): the writes that found a kept view
// current, each taking the round trips roundtrips.txt gives its request from a kept
// view (fewer), those that found one out of date, each about a round trip more, and the
// views passed over, which change nothing.
type KeptViews struct {
	Current   float64 `json:"current"`
	OutOfDate float64 `json:"out_of_date"`
	Passed    float64 `json:"passed"`
}

// The series of acp_session_cache_views_total, by result.
const (
	metricKeptCurrent   = `acp_session_cache_views_total{result="current"}`
	metricKeptOutOfDate = `acp_session_cache_views_total{result="out_of_date"}`
	metricKeptPassed    = `acp_session_cache_views_total{result="passed"}`
)

// keptViewsBetween is what the session view cache did between two scrapes of the
// server's /metrics, or nil when either lacks its counts: a server without the cache
// (SESSION_CACHE_SIZE=0, or a build from before it), or a scrape that failed.
func keptViewsBetween(before, after map[string]float64) *KeptViews {
	for _, m := range []map[string]float64{before, after} {
		if _, ok := m[metricKeptCurrent]; !ok {
			return nil
		}
	}
	return &KeptViews{
		Current:   after[metricKeptCurrent] - before[metricKeptCurrent],
		OutOfDate: after[metricKeptOutOfDate] - before[metricKeptOutOfDate],
		Passed:    after[metricKeptPassed] - before[metricKeptPassed],
	}
}

// add sums two phases' counts; nil is none.
func (k *KeptViews) add(o *KeptViews) *KeptViews {
	if k == nil || o == nil {
		return cmp.Or(k, o)
	}
	return &KeptViews{Current: k.Current + o.Current, OutOfDate: k.OutOfDate + o.OutOfDate, Passed: k.Passed + o.Passed}
}

// roundTripsSaved is how many round trips fewer than roundtrips.txt gives the phase's
// requests the kept views made them take (0 for nil), when a write that found its view
// current saved perCurrent on average (an update saves one, a completion two: the
// phase's mix of them) and one that found it out of date cost about one more.
func (k *KeptViews) roundTripsSaved(perCurrent float64) float64 {
	if k == nil {
		return 0
	}
	return k.Current*perCurrent - k.OutOfDate
}

// writeText prints the counts, with the current ones a unit of work (flows of them),
// and nothing for nil or a phase that found no kept view (the replays).
func (k *KeptViews) writeText(w io.Writer, flows int, unit string) {
	if k == nil || *k == (KeptViews{}) {
		return
	}
	fmt.Fprintf(w, "  session view cache: %.0f kept views current (%.2f a %s), %.0f out of date, %.0f passed over\n",
		k.Current, k.Current/float64(max(flows, 1)), unit, k.OutOfDate, k.Passed)
}

// Build is one server binary under test: the current one, or the baseline built from
// a git revision.
type Build struct {
	Name   string `json:"name"`
	Binary string `json:"binary"`
	// Revision and Commit are set for a baseline: what was asked and what it resolved to.
	Revision string `json:"revision,omitempty"`
	Commit   string `json:"commit,omitempty"`
}

// BuildRun is one build's phases at one concurrency level, on one server start.
type BuildRun struct {
	Build        string      `json:"build"`
	Server       ServerStats `json:"server"`
	Flow         Phase       `json:"flow"`
	CompleteOnly Phase       `json:"complete_only"`
	ReplayOnly   Phase       `json:"replay_only"`
	// Skipped says why the complete-only and replay phases did not run (a baseline
	// whose schema the bench cannot seed).
	Skipped string `json:"skipped,omitempty"`
}

// LevelRun is everything measured at one concurrency level.
type LevelRun struct {
	Concurrency int       `json:"concurrency"`
	Ceiling     Ceiling   `json:"ceiling"`
	Current     BuildRun  `json:"current"`
	Baseline    *BuildRun `json:"baseline,omitempty"`
	// Comparison is each figure of the current build beside the baseline's.
	Comparison []Comparison `json:"comparison,omitempty"`
	// Floor is what a bare Go HTTP server and a round trip cost at this level.
	Floor *Floor `json:"floor,omitempty"`
}

// BenchReport is everything `acpload -bench` measured.
type BenchReport struct {
	Machine         Machine    `json:"machine"`
	Durability      Durability `json:"durability"`
	Current         Build      `json:"current"`
	Baseline        *Build     `json:"baseline,omitempty"`
	Levels          []int      `json:"levels"`
	DurationSeconds float64    `json:"duration_seconds"`
	WarmupSeconds   float64    `json:"warmup_seconds"`
	Runs            []LevelRun `json:"runs"`
	// FlashSale is set with -flash-sale: the current build's, then the baseline's.
	FlashSale []FlashSale `json:"flash_sale,omitempty"`
	// PSP is set with -psp-delay: the current build's, then the baseline's.
	PSP      []PSPRun  `json:"slow_psp,omitempty"`
	Verdicts []Verdict `json:"verdicts"`
	Pass     bool      `json:"pass"`
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

// benchEnv is what every part of one bench run shares: the database server, the
// progress log, the CPU meter's PostgreSQL side and the speed probes.
type benchEnv struct {
	cfg        benchConfig
	pg         *pgserver.Server
	tmp        string
	progress   func(format string, args ...any)
	postmaster int
	rep        *BenchReport
	// bouncerPort is pgbouncer's port with -pgbouncer, else 0.
	bouncerPort int
}

// pin confines PostgreSQL (the postmaster, every process under it, and pgbouncer's
// process bouncer when not 0) to the database's CPUs and acpload to the others. It runs
// before any server or pgbench starts: they inherit acpload's CPUs, and a Go server sizes
// GOMAXPROCS from them as it starts. The postmaster goes first, so that every backend it
// forks from then on inherits its CPUs and the walk after it finds those forked before.
func (e *benchEnv) pin(bouncer int) (cpuSplit, error) {
	switch {
	case e.pg.Kind == pgserver.KindEnv:
		return cpuSplit{}, errors.New("-pin does not move a PostgreSQL the bench did not start (TEST_DATABASE_URL)")
	case e.postmaster == 0:
		return cpuSplit{}, fmt.Errorf("-pin needs PostgreSQL's processes on this machine, and the %s server's postmaster is not among them", e.pg.Kind)
	}
	allowed, err := allowedCPUs()
	if err != nil {
		return cpuSplit{}, err
	}
	split, err := splitCPUs(allowed)
	if err != nil {
		return cpuSplit{}, err
	}
	if err := pinProcess(e.postmaster, split.database); err != nil {
		return cpuSplit{}, err
	}
	tree, err := readTree(e.postmaster, procStatOf, listPIDs)
	if err != nil {
		return cpuSplit{}, err
	}
	delete(tree, e.postmaster) // pinned above
	for pid := range tree {
		if err := pinProcess(pid, split.database); err != nil {
			return cpuSplit{}, err
		}
	}
	if bouncer != 0 {
		if err := pinProcess(bouncer, split.database); err != nil {
			return cpuSplit{}, err
		}
	}
	return split, pinProcess(os.Getpid(), split.rest)
}

func (e *benchEnv) speed(phase string) {
	e.rep.Speed = append(e.rep.Speed, PhaseSpeed{Phase: phase, MBps: cpuSpeed()})
}

// benchTarget is one build with its own database, migrated and stocked by its own
// binary: schemas may differ between revisions.
type benchTarget struct {
	build       Build
	databaseURL string
	// serverURL is the server's DATABASE_URL: pool size and pgbouncer applied.
	serverURL string
	pool      *pgxpool.Pool
	stmts     *stmtStats
	supply    *sessionSupply
}

// runBench starts a throwaway PostgreSQL and, at each concurrency level, measures the
// database ceiling of a completion with pgbench and drives the server (and the
// baseline's, with -baseline) through three phases: the full ACP flow, completions
// only, replays only. The flash-sale and slow-PSP phases follow when asked for. It
// prints the figures against the targets. Everything it starts is stopped before it
// returns, also when ctx is canceled.
func runBench(ctx context.Context, cfg benchConfig, stdout, stderr io.Writer) (err error) {
	progress := func(format string, args ...any) {
		fmt.Fprintf(stderr, "acpload: "+format+"\n", args...)
	}
	rep := &BenchReport{
		Levels: cfg.levels, DurationSeconds: cfg.duration.Seconds(), WarmupSeconds: cfg.warmup.Seconds(),
		Machine: machineInfo(cfg), Current: Build{Name: "current", Binary: cfg.server},
	}
	progress("load average at start: %s (%d cores)", rep.Machine.LoadAvgAtStart, rep.Machine.Cores)

	tmp, err := os.MkdirTemp("", "acpload-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	env := &benchEnv{cfg: cfg, tmp: tmp, progress: progress, rep: rep}

	if cfg.baseline != "" {
		b, err := buildBaseline(ctx, cfg.baseline, tmp, progress)
		if err != nil {
			return err
		}
		rep.Baseline = &b
	}

	progress("starting a throwaway PostgreSQL")
	if env.pg, err = pgserver.StartThrowaway(ctx); err != nil {
		return err
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err = errors.Join(err, env.pg.Stop(stopCtx))
	}()
	if rep.Durability, err = applyDurability(ctx, env.pg, cfg.durable); err != nil {
		return err
	}
	progress("durability: %s", rep.Durability)

	rep.Machine.DatabasePath = "direct"
	bouncerPID := 0
	if cfg.pgbouncer {
		progress("starting pgbouncer (transaction pooling) in front of PostgreSQL")
		b, startErr := pgserver.StartPgBouncer(ctx, pgserver.PgBouncerOptions{Upstream: env.pg.URL})
		if startErr != nil {
			return startErr
		}
		defer func() { err = errors.Join(err, b.Stop(context.Background())) }()
		env.bouncerPort, bouncerPID = b.Port, b.PID()
		rep.Machine.DatabasePath = b.Version + ", pool_mode=transaction, default_query_exec_mode=cache_describe"
	}

	current, cleanup, err := env.newTarget(ctx, rep.Current)
	defer func() { err = errors.Join(err, cleanup()) }()
	if err != nil {
		return err
	}
	rep.Machine.Postgres, rep.Machine.PostgresKind = postgresVersion(ctx, current.pool), env.pg.Kind
	env.postmaster = postmasterPID(ctx, current.pool)
	rep.Machine.PgStatStatements = current.stmts.ok
	var baseline *benchTarget
	if rep.Baseline != nil {
		var cleanupBaseline func() error
		baseline, cleanupBaseline, err = env.newTarget(ctx, *rep.Baseline)
		defer func() { err = errors.Join(err, cleanupBaseline()) }()
		if err != nil {
			return err
		}
	}

	rep.Machine.CPUs = "shared: PostgreSQL, the server, pgbench and the load generator on every CPU"
	if cfg.pin {
		split, err := env.pin(bouncerPID)
		if err != nil {
			return err
		}
		rep.Machine.CPUs = split.String()
		rep.Machine.PinnedCPUs = &PinnedCPUs{Postgres: len(split.database), Rest: len(split.rest)}
		progress("CPUs %s", rep.Machine.CPUs)
	}

	env.speed("calibration")
	for _, c := range cfg.levels {
		lr, err := env.runLevel(ctx, current, baseline, c)
		if err != nil {
			return err
		}
		rep.Runs = append(rep.Runs, lr)
	}

	if cfg.flashStock > 0 {
		targets := []*benchTarget{current}
		if baseline != nil {
			targets = append(targets, baseline)
		}
		sales, err := env.runFlashSales(ctx, targets)
		if err != nil {
			return err
		}
		rep.FlashSale = sales
	}

	if cfg.pspDelay > 0 {
		psp, err := stripefake.Start(stripefake.Options{Delay: cfg.pspDelay})
		if err != nil {
			return err
		}
		defer psp.Close()
		for _, t := range []*benchTarget{current, baseline} {
			if t == nil {
				continue
			}
			run, err := env.runPSP(ctx, t, psp, slices.Max(cfg.levels))
			if err != nil {
				return err
			}
			rep.PSP = append(rep.PSP, run)
		}
	}
	env.speed("end")

	rep.Machine.LoadAvgAtEnd = loadAverage()
	rep.SpeedSpread = speedSpread(rep.Speed)
	rep.Verdicts, rep.Pass = verdicts(*rep)

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

// newTarget creates the build's database, migrates it and imports the catalog with the
// build's own binary, and connects to it. cleanup closes and drops what was made, also
// after an error.
func (e *benchEnv) newTarget(ctx context.Context, b Build) (t *benchTarget, cleanup func() error, err error) {
	var undo []func() error
	cleanup = func() error {
		var errs []error
		for i := len(undo) - 1; i >= 0; i-- {
			errs = append(errs, undo[i]())
		}
		return errors.Join(errs...)
	}
	t = &benchTarget{build: b}
	databaseURL, dropDB, err := createDatabase(ctx, e.pg, b.Name)
	if err != nil {
		return nil, cleanup, err
	}
	undo = append(undo, dropDB)
	t.databaseURL = databaseURL
	e.progress("%s build: migrating and importing the catalog with %s", b.Name, b.Binary)
	steps := [][]string{{"migrate", "up"}, {"catalog", "import", e.cfg.catalog}}
	if e.cfg.discounts != "" {
		steps = append(steps, []string{"discounts", "import", e.cfg.discounts})
	}
	if e.cfg.flashStock > 0 {
		feed := filepath.Join(e.tmp, "flash-sale.jsonl")
		if err := os.WriteFile(feed, []byte(flashSaleFeed), 0o644); err != nil {
			return nil, cleanup, err
		}
		steps = append(steps, []string{"catalog", "import", feed})
	}
	for _, args := range steps {
		if err := runAdmin(ctx, b.Binary, databaseURL, args...); err != nil {
			return nil, cleanup, err
		}
	}
	if t.pool, err = postgres.Connect(ctx, databaseURL); err != nil {
		return nil, cleanup, err
	}
	undo = append(undo, func() error { t.pool.Close(); return nil })
	t.stmts = newStmtStats(ctx, t.pool)
	t.supply = &sessionSupply{seed: &seeder{pool: t.pool}}

	if t.serverURL, err = withPoolSize(databaseURL, e.cfg.poolMaxConns); err != nil {
		return nil, cleanup, err
	}
	if e.bouncerPort != 0 {
		if t.serverURL, err = throughPgBouncer(t.serverURL, e.bouncerPort); err != nil {
			return nil, cleanup, err
		}
	}
	return t, cleanup, nil
}

// runAdmin runs one of the server binary's admin commands (migrate, catalog) against
// databaseURL, with the environment the server is started with.
func runAdmin(ctx context.Context, binary, databaseURL string, args ...string) error {
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = serverEnv(serverConfig{databaseURL: databaseURL, logLevel: "warn"}, 0)
	cmd.SysProcAttr = childProcAttr()
	var out []byte
	if err := timerslack.AsStarted(func() (err error) { out, err = cmd.CombinedOutput(); return err }); err != nil {
		return fmt.Errorf("%s %s: %w\n%s", binary, strings.Join(args, " "), err, out)
	}
	return nil
}

// benchServer is one start of a build's server with what measures it.
type benchServer struct {
	env    *benchEnv
	target *benchTarget
	srv    *serverProcess
	meter  cpuMeter
	rss    *rssSampler
	// clients are the agents'; clients.std also serves one-off requests.
	clients *agentClients
	agents  int
	// apiVersion is the ACP version of the requests measure sends ("": apiVersion).
	apiVersion string
}

// startBenchServer starts the target's server with extra environment and the meters
// around it.
func (e *benchEnv) startBenchServer(ctx context.Context, t *benchTarget, agents int, extraEnv ...string) (*benchServer, error) {
	e.progress("starting %s (%s build, %d agents)", t.build.Binary, t.build.Name, agents)
	srv, err := startServer(ctx, serverConfig{
		binary: t.build.Binary, databaseURL: t.serverURL, logLevel: e.cfg.logLevel,
		env: append(append([]string{}, e.cfg.serverEnv...), extraEnv...),
	})
	if err != nil {
		return nil, err
	}
	return &benchServer{
		env: e, target: t, srv: srv, agents: agents,
		meter:   cpuMeter{postmaster: e.postmaster, server: srv.pid()},
		rss:     sampleRSS(srv.pid(), 50*time.Millisecond),
		clients: newAgentClients(agents, e.cfg.gzip, e.cfg.client),
	}, nil
}

// stop stops the server and returns its figures.
func (s *benchServer) stop() ServerStats {
	s.clients.closeIdle()
	st := ServerStats{ReadyMs: ms(s.srv.ready)}
	if err := s.srv.stop(); err != nil {
		st.ExitState = err.Error()
		s.env.progress("server exit: %v\n%s", err, s.srv.logs)
	}
	maxRSS, hwm, samples := s.rss.Stop()
	st.MaxSampledRSSMiB, st.PeakRSSMiB, st.RSSSamples = mib(maxRSS), mib(max(maxRSS, hwm)), samples
	return st
}

// measure runs one load phase of duration d; its CPU split and statements cover the
// measured part only (they start when the warm-up ends, as does atStart if given).
func (s *benchServer) measure(ctx context.Context, name string, d time.Duration, unit func(context.Context, *agent) error, atStart func()) (loadResult, CPUUsage, stmtCounts, error) {
	cfg := s.env.cfg
	lc := loadConfig{name: name, baseURL: s.srv.base, concurrency: s.agents, duration: d, warmup: cfg.warmup, apiVersion: s.apiVersion}
	snap := make(chan cpuSnapshot, 1)
	timer := time.AfterFunc(cfg.warmup, func() {
		_ = s.target.stmts.reset(ctx)
		if atStart != nil {
			atStart()
		}
		snap <- s.meter.snapshot()
	})
	res, err := runAgents(ctx, lc, s.clients, unit)
	after := s.meter.snapshot()
	if timer.Stop() {
		return res, CPUUsage{}, nil, err
	}
	return res, usage(<-snap, after, 0), s.target.stmts.read(ctx), err
}

// finish summarises a phase's result.
func (s *benchServer) finish(name string, res loadResult, cpu CPUUsage, counts stmtCounts) Phase {
	lc := loadConfig{name: name, baseURL: s.srv.base, concurrency: s.agents, warmup: s.env.cfg.warmup}
	r := res.report(lc)
	return Phase{Report: r, CPU: cpu, Statements: counts.summary(r.Flows)}
}

// runLevel measures the builds at c agents: the current build against the database
// ceiling, the baseline beside it when there is one, and then the floor. Both servers
// run through the level and every phase alternates between them in rounds (the
// complete-only rounds with pgbench's too), each round starting with the next build
// (rotated): a machine whose speed drifts during the run (a busy VM host) then slows
// every build and the ceiling alike, and a ratio compares the builds rather than the
// minutes they ran in or their places in a round.
func (e *benchEnv) runLevel(ctx context.Context, current, baseline *benchTarget, c int) (lr LevelRun, err error) {
	lr.Concurrency = c
	ceiling, err := newCeiling(ctx, e, current, completeScript, "complete.pgbench", c)
	if err != nil {
		return lr, err
	}
	var runners []*buildRunner
	defer func() {
		for _, r := range runners {
			r.stop()
		}
	}()
	for _, t := range []*benchTarget{current, baseline} {
		if t == nil {
			continue
		}
		r, err := e.startBuild(ctx, t, c)
		if err != nil {
			return lr, err
		}
		r.baseline = t == baseline
		runners = append(runners, r)
	}
	ceiling.meter = runners[0].s.meter

	flow := func(*buildRunner) func(context.Context, *agent) error {
		return func(ctx context.Context, a *agent) error { return a.flow(ctx) }
	}
	replay := func(r *buildRunner) func(context.Context, *agent) error { return r.work.replay }
	if err := e.alternate(ctx, runners, "full ACP flow", flow, func(r *buildRunner, p Phase) { r.run.Flow = p }); err != nil {
		return lr, err
	}

	const completeRounds = 2
	half := (e.cfg.duration + completeRounds - 1) / completeRounds
	for i := range completeRounds {
		e.speed(fmt.Sprintf("pgbench round %d, %d agents", i+1, c))
		if err := ceiling.round(ctx, half, e.progress); err != nil {
			return lr, err
		}
		for _, r := range rotated(runners, i) {
			if r.baseline {
				// The baseline is seeded at the rate the current build's database sustains.
				r.t.supply.rate = max(r.t.supply.rate, current.supply.rate)
			}
			if err := r.completeRound(ctx, half, i+1); err != nil {
				return lr, err
			}
		}
	}
	var replaying []*buildRunner
	for _, r := range runners {
		if err := r.finishComplete(); err != nil {
			return lr, err
		}
		if r.run.Skipped == "" {
			replaying = append(replaying, r)
		}
	}
	if err := e.alternate(ctx, replaying, "replay only", replay, func(r *buildRunner, p Phase) { r.run.ReplayOnly = p }); err != nil {
		return lr, err
	}
	floor, err := e.measureFloor(ctx, current, runners[0].s)
	if err != nil {
		return lr, err
	}
	lr.Floor = &floor

	lr.Current, lr.Ceiling = runners[0].stop(), ceiling.result()
	if baseline != nil {
		b := runners[1].stop()
		lr.Baseline = &b
		lr.Comparison = compareBuilds(lr.Current, b)
	}
	return lr, nil
}

// alternate runs the phase named name on the runners in turn, in as many rounds as
// there are runners, each of the phase's duration divided by that (so each runner is
// measured for the whole duration), and hands each runner its rounds added up.
func (e *benchEnv) alternate(ctx context.Context, runners []*buildRunner, name string,
	unit func(*buildRunner) func(context.Context, *agent) error, done func(*buildRunner, Phase),
) error {
	rounds := len(runners)
	if rounds == 0 {
		return nil
	}
	d := (e.cfg.duration + time.Duration(rounds) - 1) / time.Duration(rounds)
	sums := make([]phaseSum, len(runners))
	for i := range rounds {
		for _, r := range rotated(runners, i) {
			n := slices.Index(runners, r)
			label, measured := name+", "+r.label, name
			if rounds > 1 {
				label, measured = fmt.Sprintf("%s round %d, %s", name, i+1, r.label), fmt.Sprintf("%s, round %d", name, i+1)
			}
			e.speed(label)
			var before map[string]float64
			res, cpu, counts, err := r.s.measure(ctx, measured, d, unit(r), func() {
				before, _ = scrapeMetrics(ctx, r.s.srv.base)
			})
			if err != nil {
				return err
			}
			after, _ := scrapeMetrics(ctx, r.s.srv.base)
			sums[n].add(res, cpu, counts)
			sums[n].kept = sums[n].kept.add(keptViewsBetween(before, after))
		}
	}
	for n, r := range runners {
		p := r.s.finish(name, sums[n].res, sums[n].cpu, sums[n].counts)
		p.KeptViews = sums[n].kept
		done(r, p)
	}
	return nil
}

// rotated is runners in the order of round i: each round starts one runner later, so
// that no build always runs first (after pgbench's round, or after the previous
// phase).
func rotated[R any](runners []R, i int) []R {
	k := i % max(len(runners), 1)
	return append(slices.Clone(runners[k:]), runners[:k]...)
}

// phaseSum adds up the rounds of a phase.
type phaseSum struct {
	res    loadResult
	cpu    CPUUsage
	counts stmtCounts
	kept   *KeptViews
}

func (p *phaseSum) add(res loadResult, cpu CPUUsage, counts stmtCounts) {
	p.res, p.cpu, p.counts = p.res.add(res), p.cpu.add(cpu), p.counts.merge(counts)
}

// buildRunner is one build's server at one level and what was measured of it so far.
type buildRunner struct {
	env   *benchEnv
	t     *benchTarget
	s     *benchServer
	label string
	run   BuildRun
	// baseline is set for the baseline build, which is measured beside the current one.
	baseline bool
	// work is the seeded sessions the complete-only rounds complete and the replays
	// replay; complete adds up those rounds.
	work     *seededWork
	complete phaseSum
	stopped  bool
}

// startBuild starts the target's server for c agents.
func (e *benchEnv) startBuild(ctx context.Context, t *benchTarget, c int) (*buildRunner, error) {
	s, err := e.startBenchServer(ctx, t, c)
	if err != nil {
		return nil, err
	}
	return &buildRunner{
		env: e, t: t, s: s, label: fmt.Sprintf("%s, %d agents", t.build.Name, c), run: BuildRun{Build: t.build.Name},
		work: &seededWork{done: make([][]completedSession, c)},
	}, nil
}

// completeRound runs one round of completions only, for d, on sessions seeded for it.
// A baseline whose schema the seeding cannot write is skipped, and says why.
func (r *buildRunner) completeRound(ctx context.Context, d time.Duration, round int) error {
	if r.run.Skipped != "" {
		return nil
	}
	e, t, cfg := r.env, r.t, r.env.cfg
	first, last, err := t.supply.reserve(ctx, d+cfg.warmup, r.s.agents)
	if err != nil && r.baseline {
		// The seeding writes the current schema's tables; a baseline's may differ.
		r.run.Skipped = "complete only and replay only not measured: " + err.Error()
		e.progress("%s: %s", r.label, r.run.Skipped)
		return nil
	}
	if err != nil {
		return err
	}
	if err := vacuum(ctx, t.pool); err != nil {
		return err
	}
	r.work.next.Store(first - 1)
	r.work.last = last
	e.speed(fmt.Sprintf("complete round %d, %s", round, r.label))
	res, cpu, counts, err := r.s.measure(ctx, fmt.Sprintf("complete only, round %d", round), d, r.work.complete, nil)
	if err != nil {
		return err
	}
	r.complete.add(res, cpu, counts)
	t.supply.cursor = min(r.work.next.Load(), r.work.last)
	if res.elapsed > 0 {
		t.supply.rate = max(t.supply.rate, float64(res.rec.flows)/res.elapsed.Seconds())
	}
	return nil
}

// finishComplete sums the complete-only rounds up and collects their sessions for
// the replays.
func (r *buildRunner) finishComplete() error {
	if r.run.Skipped != "" {
		return nil
	}
	r.run.CompleteOnly = r.s.finish("complete only", r.complete.res, r.complete.cpu, r.complete.counts)
	r.work.collect()
	if len(r.work.all) == 0 {
		return fmt.Errorf("%s: complete-only phase: no completion succeeded, nothing to replay", r.label)
	}
	return nil
}

// stop stops the server (once) and returns the build's figures.
func (r *buildRunner) stop() BuildRun {
	if !r.stopped {
		r.stopped = true
		r.run.Server = r.s.stop()
	}
	return r.run
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// createDatabase creates a fresh database for the build on pg and returns its URL and a function that
// drops it. The drop matters only on a server the bench does not own (TEST_DATABASE_URL);
// a throwaway server is deleted whole.
func createDatabase(ctx context.Context, pg *pgserver.Server, build string) (string, func() error, error) {
	name := fmt.Sprintf("acpload_%s_%d_%d", build, os.Getpid(), time.Now().Unix())
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
		LoadTimerSlack: cfg.timerSlack.String(), LoadClient: cmp.Or(cfg.client, clientLean),
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
