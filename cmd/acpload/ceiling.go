package main

import (
	"bufio"
	"cmp"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/agentic-commerce/agentic-commerce-server/internal/timerslack"
)

// completeScript is complete.pgbench, the database work of one completion.
//
//go:embed complete.pgbench
var completeScript string

// seedSQL creates ready sessions bench_<n> for n in [$1, $2], each with one tee
// (line li_bench_<n>, which complete.pgbench's order line refers to: item_123 at its
// catalog price), the walk-through's address and buyer, standard
// shipping, and an unused vault token vt_bench_<n> bound to it with a 1000.00 USD
// allowance: exactly what a session looks like after create, update and
// delegate_payment. The rows are owned by "" (the caller on a server without
// API_KEYS). Set-based, so a hundred thousand sessions take seconds.
const seedSQL = `
INSERT INTO checkout_sessions (id, owner, state, currency, buyer, fulfillment_address, fulfillment_option_id,
                               created_at, updated_at, expires_at)
SELECT 'bench_' || n, '', 'open', 'usd',
       '{"first_name":"Ada","last_name":"Lovelace","email":"ada@example.com"}',
       '{"name":"John Doe","line_one":"1234 Chat Road","city":"San Francisco","state":"CA","country":"US","postal_code":"94131"}',
       'standard_shipping', now(), now(), '2099-01-01 00:00:00+00'
FROM generate_series($1::bigint, $2::bigint) AS n;

INSERT INTO line_items (id, checkout_session_id, position, variant_id, quantity, unit_amount)
SELECT 'li_bench_' || n, 'bench_' || n, 0, v.id, 1, v.price_amount
FROM generate_series($1::bigint, $2::bigint) AS n, variants AS v
WHERE v.id = 'item_123';

INSERT INTO vault_tokens (id, owner, checkout_session_id, merchant_id, max_amount, currency, expires_at,
                          card_brand, card_funding_type, card_last4, card_exp_month, card_exp_year,
                          card_number_type, card_virtual, risk_signals, manual_review, metadata, created_at)
SELECT 'vt_bench_' || n, '', 'bench_' || n, 'acpload', 100000, 'usd', '2099-01-01 00:00:00+00',
       'visa', 'credit', '4242', 12, 2031, 'fpan', false,
       '[{"type":"card_testing","score":5,"action":"authorized"}]', false, '{"source":"acpload"}', now()
FROM generate_series($1::bigint, $2::bigint) AS n;
`

// seeder hands out ranges of pre-seeded sessions.
type seeder struct {
	pool *pgxpool.Pool
	// seeded is the highest n seeded so far.
	seeded int64
}

// ensure seeds sessions up to n (inclusive) and refreshes the planner statistics.
func (s *seeder) ensure(ctx context.Context, n int64) error {
	if n <= s.seeded {
		return nil
	}
	if s.seeded == 0 {
		if _, err := s.pool.Exec(ctx, `CREATE SEQUENCE IF NOT EXISTS acpload_bench_seq`); err != nil {
			return fmt.Errorf("create sequence: %w", err)
		}
		var price int64
		err := s.pool.QueryRow(ctx, `SELECT price_amount FROM variants WHERE id = 'item_123' AND currency = 'usd' AND available`).Scan(&price)
		if err != nil {
			return fmt.Errorf("the catalog has no available item_123 in usd (import the demo catalog): %w", err)
		}
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	for stmt := range strings.SplitSeq(seedSQL, ";") {
		if strings.TrimSpace(stmt) == "" {
			continue
		}
		if _, err := tx.Exec(ctx, stmt, s.seeded+1, n); err != nil {
			return fmt.Errorf("seed sessions %d-%d: %w", s.seeded+1, n, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	s.seeded = n
	return vacuum(ctx, s.pool)
}

// vacuum gives each phase a database without the previous phase's dead rows and with
// fresh statistics.
func vacuum(ctx context.Context, pool *pgxpool.Pool) error {
	_, err := pool.Exec(ctx, `VACUUM (ANALYZE) checkout_sessions, line_items, vault_tokens, orders, idempotency_keys, variants`)
	if err != nil {
		return fmt.Errorf("vacuum: %w", err)
	}
	return nil
}

// sequenceValue returns how many seeded sessions pgbench has taken.
func sequenceValue(ctx context.Context, pool *pgxpool.Pool) (int64, error) {
	var v int64
	var called bool
	if err := pool.QueryRow(ctx, `SELECT last_value, is_called FROM acpload_bench_seq`).Scan(&v, &called); err != nil {
		return 0, err
	}
	if !called {
		return 0, nil
	}
	return v, nil
}

// findPgbench returns pgbench from PATH, else from the newest /usr/lib/postgresql/*/bin.
func findPgbench() (string, error) {
	if p, err := exec.LookPath("pgbench"); err == nil {
		return p, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pgbench")
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(filepath.Dir(a))), 64)
		vb, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(filepath.Dir(b))), 64)
		return cmp.Compare(vb, va)
	})
	if len(dirs) > 0 {
		return dirs[0], nil
	}
	return "", errors.New("no pgbench on PATH or in /usr/lib/postgresql/*/bin (install postgresql-contrib or the server package)")
}

// Ceiling is what pgbench measured: the completions per second the database sustains
// at the concurrency, with nothing between the client and PostgreSQL.
type Ceiling struct {
	Command      string   `json:"command"`
	Transactions int      `json:"transactions"`
	TPS          float64  `json:"tps"`
	MeanMs       float64  `json:"mean_ms"`
	P50Ms        float64  `json:"p50_ms"`
	P95Ms        float64  `json:"p95_ms"`
	P99Ms        float64  `json:"p99_ms"`
	MaxMs        float64  `json:"max_ms"`
	CPU          CPUUsage `json:"cpu"`
	// Statements is set when the database has pg_stat_statements loaded.
	Statements *StatementSummary `json:"statements,omitempty"`
}

// pgbenchRun is one run of the script.
type pgbenchRun struct {
	pgbench     string
	databaseURL string
	script      string
	concurrency int
	duration    time.Duration
	// logDir, when set, gets per-transaction logs (-l).
	logDir string
}

// args is pgbench's command line. -M prepared matches pgx, which prepares and caches
// every statement (and the script's pipelines need the extended protocol); -n skips
// pgbench's own vacuum of its standard tables.
func (r pgbenchRun) args() []string {
	secs := int(math.Ceil(r.duration.Seconds()))
	a := []string{"-n", "-M", "prepared", "-c", strconv.Itoa(r.concurrency), "-j", strconv.Itoa(min(2, r.concurrency)),
		"-T", strconv.Itoa(secs), "-f", r.script}
	if r.logDir != "" {
		a = append(a, "-l", "--log-prefix", filepath.Join(r.logDir, "pgbench_log"))
	}
	return append(a, r.databaseURL)
}

// display is the command line for reports: temporary paths shortened, no URL.
func (r pgbenchRun) display() string {
	a := r.args()
	a[len(a)-1] = "DATABASE_URL"
	for i, s := range a {
		if strings.HasPrefix(s, os.TempDir()) {
			a[i] = filepath.Base(s)
		}
	}
	return strings.Join(a, " ")
}

// run runs pgbench and returns its output and the CPU time it used.
func (r pgbenchRun) run(ctx context.Context) (string, time.Duration, error) {
	cmd := exec.CommandContext(ctx, r.pgbench, r.args()...)
	cmd.SysProcAttr = childProcAttr()
	var out []byte
	err := timerslack.AsStarted(func() (err error) { out, err = cmd.CombinedOutput(); return err })
	var cpu time.Duration
	if cmd.ProcessState != nil {
		cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	if err != nil {
		return string(out), cpu, fmt.Errorf("pgbench %s: %w\n%s", r.display(), err, out)
	}
	return string(out), cpu, nil
}

// parsePgbenchOutput reads the tps pgbench reports (without connection time) and
// refuses a run in which a transaction failed or a client aborted.
func parsePgbenchOutput(out string) (float64, error) {
	tps := -1.0
	for line := range strings.SplitSeq(out, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.Contains(line, "aborted"):
			return 0, fmt.Errorf("pgbench: a client aborted:\n%s", out)
		case strings.HasPrefix(line, "number of failed transactions:"):
			f := strings.Fields(strings.TrimPrefix(line, "number of failed transactions:"))
			if len(f) > 0 && f[0] != "0" {
				return 0, fmt.Errorf("pgbench: %s transactions failed:\n%s", f[0], out)
			}
		case strings.HasPrefix(line, "tps = "):
			v, err := strconv.ParseFloat(strings.Fields(line)[2], 64)
			if err != nil {
				return 0, fmt.Errorf("pgbench: unreadable tps %q", line)
			}
			tps = v
		}
	}
	if tps < 0 {
		return 0, fmt.Errorf("pgbench: no tps in the output:\n%s", out)
	}
	return tps, nil
}

// readPgbenchLogs reads the per-transaction latencies of every log file in dir. A
// line is "client_id transaction_no time script_no time_epoch time_us [...]" with time
// in microseconds (or "failed"/"skipped").
func readPgbenchLogs(dir string) ([]time.Duration, error) {
	files, err := filepath.Glob(filepath.Join(dir, "pgbench_log.*"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no pgbench logs in %s", dir)
	}
	var lat []time.Duration
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		lat, err = parsePgbenchLog(bufio.NewScanner(f), lat)
		_ = f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	return lat, nil
}

func parsePgbenchLog(sc *bufio.Scanner, lat []time.Duration) ([]time.Duration, error) {
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 {
			continue
		}
		us, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			return lat, fmt.Errorf("transaction %s of client %s: %s", f[1], f[0], f[2])
		}
		lat = append(lat, time.Duration(us)*time.Microsecond)
	}
	return lat, sc.Err()
}

// sessionSupply hands out ranges of the pre-seeded sessions of one database. pgbench
// takes sessions from the sequence; the bench's own complete-only rounds take the ones
// after them, so cursor (the highest session number used by anyone) only moves forward.
type sessionSupply struct {
	seed   *seeder
	cursor int64
	// rate is the highest completion rate seen so far, to size the seeding.
	rate float64
}

// reserve seeds enough sessions after the cursor for a run of d at the highest rate seen
// (with a wide margin) and returns the first and last session number of the range.
func (s *sessionSupply) reserve(ctx context.Context, d time.Duration, concurrency int) (first, last int64, err error) {
	first = s.cursor + 1
	last = s.cursor + int64(s.rate*d.Seconds()*2) + int64(200*concurrency)
	return first, last, s.seed.ensure(ctx, last)
}

// ceilingRunner runs a pgbench script in rounds on the seeded sessions of the current
// build's database; the sequence is set to the supply's cursor before every round.
type ceilingRunner struct {
	run    pgbenchRun
	pool   *pgxpool.Pool
	supply *sessionSupply
	meter  cpuMeter
	stmts  *stmtStats
	tmp    string

	rounds  int
	lat     []time.Duration
	seconds float64
	cpu     CPUUsage
	counts  stmtCounts
}

// newCeiling writes the script (under name), seeds sessions and runs a calibration at
// the concurrency, which also warms PostgreSQL's cache and gives the rate that sizes
// later seeding.
func newCeiling(ctx context.Context, env *benchEnv, t *benchTarget, script, name string, concurrency int) (*ceilingRunner, error) {
	scriptPath := filepath.Join(env.tmp, name)
	if err := os.WriteFile(scriptPath, []byte(script), 0o644); err != nil {
		return nil, err
	}
	c := &ceilingRunner{
		run:  pgbenchRun{pgbench: env.cfg.pgbench, databaseURL: t.databaseURL, script: scriptPath, concurrency: concurrency},
		pool: t.pool, supply: t.supply, meter: cpuMeter{postmaster: env.postmaster}, stmts: t.stmts, tmp: env.tmp,
	}
	if err := t.supply.seed.ensure(ctx, max(t.supply.cursor+20000, 20000)); err != nil {
		return nil, err
	}
	if _, err := c.pool.Exec(ctx, `SELECT setval('acpload_bench_seq', $1, $2)`, max(t.supply.cursor, 1), t.supply.cursor > 0); err != nil {
		return nil, fmt.Errorf("set sequence: %w", err)
	}
	calibration := max(env.cfg.warmup, 2*time.Second)
	env.progress("pgbench calibration and warm-up (%s, %d clients)", calibration, concurrency)
	c.run.duration = calibration
	out, _, err := c.run.run(ctx)
	if err != nil {
		return nil, err
	}
	rate, err := parsePgbenchOutput(out)
	if err != nil {
		return nil, err
	}
	t.supply.rate = max(t.supply.rate, rate)
	t.supply.cursor, err = sequenceValue(ctx, c.pool)
	return c, err
}

// round runs pgbench for d with per-transaction logs and checks that every transaction
// created its order.
func (c *ceilingRunner) round(ctx context.Context, d time.Duration, progress func(string, ...any)) error {
	first, _, err := c.supply.reserve(ctx, d, c.run.concurrency)
	if err != nil {
		return err
	}
	if _, err := c.pool.Exec(ctx, `SELECT setval('acpload_bench_seq', $1, $2)`, max(first-1, 1), first > 1); err != nil {
		return fmt.Errorf("set sequence: %w", err)
	}
	if err := vacuum(ctx, c.pool); err != nil {
		return err
	}
	c.rounds++
	// Every runner (one per level, and the hot row's) has rounds of its own: a new
	// directory each time, never one a previous runner wrote.
	logDir, err := os.MkdirTemp(c.tmp, fmt.Sprintf("pgbench-logs-%d-", c.rounds))
	if err != nil {
		return err
	}
	c.run.duration, c.run.logDir = d, logDir
	progress("pgbench %s", c.run.display())
	if err := c.stmts.reset(ctx); err != nil {
		return err
	}
	before := c.meter.snapshot()
	out, pgbenchCPU, err := c.run.run(ctx)
	after := c.meter.snapshot()
	if err != nil {
		return err
	}
	tps, err := parsePgbenchOutput(out)
	if err != nil {
		return err
	}
	lat, err := readPgbenchLogs(logDir)
	if err != nil {
		return err
	}
	// Read before the checks below add statements of their own.
	c.counts = c.counts.merge(c.stmts.read(ctx))

	last, err := sequenceValue(ctx, c.pool)
	if err != nil {
		return err
	}
	if last > c.supply.seed.seeded {
		return fmt.Errorf("pgbench used sessions up to %d but only %d were seeded", last, c.supply.seed.seeded)
	}
	var orders int64
	err = c.pool.QueryRow(ctx, `SELECT count(*) FROM orders WHERE checkout_session_id IN
		(SELECT 'bench_' || n FROM generate_series($1::bigint, $2::bigint) AS n)`, first, last).Scan(&orders)
	if err != nil {
		return err
	}
	if ran := last - first + 1; orders != ran || ran != int64(len(lat)) {
		return fmt.Errorf("pgbench logged %d transactions and used %d sessions, which got %d orders: the script is not doing the server's work",
			len(lat), ran, orders)
	}
	c.supply.cursor = last
	c.supply.rate = max(c.supply.rate, tps)
	c.lat = append(c.lat, lat...)
	c.seconds += float64(len(lat)) / tps
	c.cpu = c.cpu.add(usage(before, after, pgbenchCPU))
	return nil
}

// result summarises every round: the rate is all transactions over the time pgbench
// reported for them (without connection set-up), the percentiles are exact over all.
func (c *ceilingRunner) result() Ceiling {
	st := summarize("pgbench", c.lat, 0)
	out := Ceiling{
		Command:      fmt.Sprintf("pgbench %s, %d rounds", c.run.display(), c.rounds),
		Transactions: len(c.lat),
		MeanMs:       st.MeanMs, P50Ms: st.P50Ms, P95Ms: st.P95Ms, P99Ms: st.P99Ms, MaxMs: st.MaxMs,
		CPU:        c.cpu,
		Statements: c.counts.summary(len(c.lat)),
	}
	if c.seconds > 0 {
		out.TPS = float64(len(c.lat)) / c.seconds
	}
	return out
}
