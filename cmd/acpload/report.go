package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
)

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// levelVerdicts holds one level's measurements against the targets. The throughput
// and latency ratios compare like with like: the complete-only phase does exactly the
// pgbench script's database work, through HTTP and the server, at the same
// concurrency. The same ratios in the full flow are given as notes. pinned is the
// run's CPU split (-pin), nil when every process shared every CPU.
func levelVerdicts(lr LevelRun, pinned *PinnedCPUs) []Verdict {
	r := lr.Current
	prefix := fmt.Sprintf("%d agents: ", lr.Concurrency)
	complete := r.CompleteOnly.Report.Endpoint("complete")
	replay := r.ReplayOnly.Report.Endpoint("complete_replay")
	flowComplete := r.Flow.Report.Endpoint("complete")
	flowReplay := r.Flow.Report.Endpoint("complete_replay")

	tput := ratio(complete.PerSecond, lr.Ceiling.TPS)
	lat := ratio(complete.P99Ms, lr.Ceiling.P99Ms)
	rep := ratio(replay.PerSecond, complete.PerSecond)
	serverCPU := perRequestMs(r.Flow.CPU.Server, r.Flow.Report.Requests)
	postgresCPU := perRequestMs(r.Flow.CPU.Postgres, r.Flow.Report.Requests)
	rssNote := fmt.Sprintf("VmHWM over the level's server start; %d samples", r.Server.RSSSamples)
	if lr.Concurrency != targetRSSAgents {
		rssNote += fmt.Sprintf("; issue 12 sets the target at %d agents", targetRSSAgents)
	}
	v := []Verdict{
		{
			Name: prefix + "complete throughput / pgbench ceiling", Value: tput, Target: fmt.Sprintf(">= %.2f", targetThroughputRatio),
			Shown: fmt.Sprintf("%s (%.0f / %.0f per s)", fmtHeld(tput, atLeast(targetThroughputRatio)), complete.PerSecond, lr.Ceiling.TPS),
			Pass:  tput >= targetThroughputRatio,
			Note: fmt.Sprintf("full flow: %.2f (%.0f completions/s among %.0f req/s)",
				ratio(flowComplete.PerSecond, lr.Ceiling.TPS), flowComplete.PerSecond, r.Flow.Report.RequestsPerSecond) +
				ceilingBoundNote(r.CompleteOnly, lr.Ceiling, lr.Floor, targetThroughputRatio, "completion", pinned),
		},
		{
			Name: prefix + "complete p99 / pgbench p99", Value: lat, Target: fmt.Sprintf("<= %.0f", targetLatencyRatio),
			Shown: fmt.Sprintf("%s (%s / %s)", fmtHeld(lat, atMost(targetLatencyRatio)), fmtMs(complete.P99Ms), fmtMs(lr.Ceiling.P99Ms)),
			Pass:  lat > 0 && lat <= targetLatencyRatio,
			Note:  fmt.Sprintf("full flow: %.2f (%s)", ratio(flowComplete.P99Ms, lr.Ceiling.P99Ms), fmtMs(flowComplete.P99Ms)),
		},
		{
			Name: prefix + "replay rate / completion rate", Value: rep, Target: fmt.Sprintf(">= %.0f", targetReplayRatio),
			Shown: fmt.Sprintf("%s (%.0f / %.0f per s)", fmtHeld(rep, atLeast(targetReplayRatio)), replay.PerSecond, complete.PerSecond),
			Pass:  rep >= targetReplayRatio,
			Note: fmt.Sprintf("full flow, mean latency complete/replay: %.2f (%s / %s)",
				ratio(flowComplete.MeanMs, flowReplay.MeanMs), fmtMs(flowComplete.MeanMs), fmtMs(flowReplay.MeanMs)),
		},
		{
			Name: prefix + "full flow server CPU per request", Value: serverCPU, Target: fmt.Sprintf("<= %.1f ms", targetServerCPUMs),
			Shown: fmtCPU(serverCPU), Pass: serverCPU >= 0 && serverCPU <= targetServerCPUMs,
			Note: fmt.Sprintf("%s over %d requests", fmtSeconds(r.Flow.CPU.Server), r.Flow.Report.Requests) + lr.Floor.serverNote(serverCPU),
		},
		{
			Name: prefix + "full flow postgres CPU per request", Value: postgresCPU, Target: fmt.Sprintf("<= %.1f ms", targetPostgresCPUMs),
			Shown: fmtCPU(postgresCPU), Pass: postgresCPU >= 0 && postgresCPU <= targetPostgresCPUMs,
			Note: fmt.Sprintf("%s over %d requests", fmtSeconds(r.Flow.CPU.Postgres), r.Flow.Report.Requests) + lr.Floor.postgresNote(),
		},
		{
			Name: prefix + "peak RSS", Value: r.Server.PeakRSSMiB, Target: fmt.Sprintf("< %d MiB", targetRSSMiB),
			Shown: fmt.Sprintf("%.1f MiB", r.Server.PeakRSSMiB),
			Pass:  r.Server.RSSSamples > 0 && r.Server.PeakRSSMiB < targetRSSMiB,
			Note:  rssNote,
		},
		{
			Name: prefix + "time to ready", Value: r.Server.ReadyMs / 1000, Target: fmt.Sprintf("< %s", targetReady),
			Shown: fmt.Sprintf("%.0f ms", r.Server.ReadyMs),
			Pass:  r.Server.ReadyMs < ms(targetReady),
			Note:  "exec to the first 200 on /ready, schema current",
		},
	}
	if b := lr.Baseline; b != nil {
		speedup := ratio(r.Flow.Report.FlowsPerSecond, b.Flow.Report.FlowsPerSecond)
		v = append(v, Verdict{
			Name: prefix + "full flow flows/s / baseline", Value: speedup, Target: fmt.Sprintf(">= %.1f", targetBaselineSpeedup),
			Shown: fmt.Sprintf("%s (%.1f / %.1f per s)", fmtHeld(speedup, atLeast(targetBaselineSpeedup)), r.Flow.Report.FlowsPerSecond, b.Flow.Report.FlowsPerSecond),
			Pass:  speedup >= targetBaselineSpeedup,
			Note:  "both builds in this run, each on its own database, every phase in alternating rounds" + flowBoundNote(lr, pinned),
		})
	}
	return v
}

// ceilingBoundNote is the ratio of phase's rate, through the server, to pgbench's rate
// in c that the CPU allows. Where the phases share the machine's cores and keep them
// busy, the CPU the server and its load generator spend is taken from PostgreSQL: the
// bound is the CPU a pgbench transaction costs (PostgreSQL and pgbench) over what a
// unit costs through the server (PostgreSQL, the server and acpload), and the measured
// ratio stays near it (docs/performance-history.md, "Fifteenth round"). With pinned
// CPUs each side runs as fast as the busier of its two CPU sets allows, and the bound
// is the ratio of those rates. A third line, when a floor was measured, puts the
// server at its floor (floorBoundNote). Empty when a side's CPU is unknown.
func ceilingBoundNote(phase Phase, c Ceiling, f *Floor, target float64, unit string, pinned *PinnedCPUs) string {
	through := phaseCPU(phase)
	in := unitCPU{postgres: perRequestMs(c.CPU.Postgres, c.Transactions), client: perRequestMs(c.CPU.LoadGen, c.Transactions)}
	bound := boundRatio(through, in, pinned)
	if bound <= 0 {
		return ""
	}
	var note string
	if pinned == nil {
		note = fmt.Sprintf("\nCPU a %s: %.2f ms through the server (%s), "+
			"%.2f ms in pgbench (postgres %.2f, pgbench %.2f): %.2f where CPU bounds both",
			unit, through.total(), through, in.total(), in.postgres, in.client, bound)
	} else {
		note = fmt.Sprintf("\nCPU a %s, PostgreSQL on %d CPU(s) and the rest on %d: through the server postgres %.2f ms, "+
			"server %.2f and load generator %.2f; in pgbench postgres %.2f, pgbench %.2f: %.2f where the busier side bounds each",
			unit, pinned.Postgres, pinned.Rest, through.postgres, through.server, through.client, in.postgres, in.client, bound)
	}
	return note + floorBoundNote(f, phase, in, target, unit, pinned)
}

// flowBoundNote, the second line of the flows/s verdict, is the ratio of the two
// builds' flows a second that their CPU a flow allows, as ceilingBoundNote gives it
// for the completion, and the third line puts the current build's server at its floor.
func flowBoundNote(lr LevelRun, pinned *PinnedCPUs) string {
	cur, base := phaseCPU(lr.Current.Flow), phaseCPU(lr.Baseline.Flow)
	bound := boundRatio(cur, base, pinned)
	if bound <= 0 {
		return ""
	}
	where := "where CPU bounds both"
	if pinned != nil {
		where = fmt.Sprintf("where the busier side bounds each, PostgreSQL on %d CPU(s) and the rest on %d", pinned.Postgres, pinned.Rest)
	}
	return fmt.Sprintf("\nCPU a flow: %.2f ms (%s), the baseline's %.2f ms (%s): %.2f %s",
		cur.total(), cur, base.total(), base, bound, where) +
		floorBoundNote(lr.Floor, lr.Current.Flow, base, targetBaselineSpeedup, "flow", pinned)
}

// floorBoundNote answers whether a throughput target is within the server's reach:
// the ratio the CPU would allow with the server at its floor (a bare Go HTTP server
// making the round trips each request makes, Floor.serverMs), PostgreSQL and the load
// generator spending what they spent in phase, against other, the other side of the
// ratio; and how much CPU a unit the target leaves the server (serverBudget). Empty
// without a floor or a count of the phase's round trips.
func floorBoundNote(f *Floor, phase Phase, other unitCPU, target float64, unit string, pinned *PinnedCPUs) string {
	cpu := phaseCPU(phase)
	floor := f.serverMs(phase)
	if floor < 0 || cpu.postgres < 0 || cpu.client < 0 {
		return ""
	}
	atFloor := cpu
	atFloor.server = floor
	bound := boundRatio(atFloor, other, pinned)
	if bound <= 0 {
		return ""
	}
	note := fmt.Sprintf("\nthe server at its floor (%.3f ms a %s) would give %.2f", floor, unit, bound)
	budget, short := cpu.serverBudget(other, target, unit, pinned)
	if budget <= 0 {
		return note + fmt.Sprintf("; %.2f leaves the server no CPU: %s", target, short)
	}
	note += fmt.Sprintf("; %.2f leaves it %.3f ms a %s", target, budget, unit)
	if phase.Report.kinds() > 1 {
		note += fmt.Sprintf(" (%.3f ms a request)", budget*float64(phase.Report.Flows)/float64(phase.Report.Requests))
	}
	return note
}

// unitCPU is the CPU one unit of work (a flow, a completion, a pgbench transaction)
// costs each process, in ms: PostgreSQL, the server (0 for pgbench) and the client,
// the load generator or pgbench. A figure that could not be read is negative.
type unitCPU struct{ postgres, server, client float64 }

// phaseCPU is a phase's CPU a unit of work, a flow of its report.
func phaseCPU(p Phase) unitCPU {
	n := p.Report.Flows
	return unitCPU{postgres: perRequestMs(p.CPU.Postgres, n), server: perRequestMs(p.CPU.Server, n), client: perRequestMs(p.CPU.LoadGen, n)}
}

func (u unitCPU) total() float64 { return u.postgres + u.server + u.client }

// String gives the split as the bench prints it.
func (u unitCPU) String() string {
	return fmt.Sprintf("postgres %.2f, server %.2f, load generator %.2f", u.postgres, u.server, u.client)
}

// rate is the units a millisecond the CPU allows, up to a constant: shared, every
// process takes its CPU from the same cores, so the rate is the cores over the total
// (the cores cancel in a ratio of rates); pinned, each side runs as fast as the busier
// of its CPU sets allows. 0 when a figure is unknown or a side spends nothing, for
// which no bound is given.
func (u unitCPU) rate(pinned *PinnedCPUs) float64 {
	if min(u.postgres, u.server, u.client) < 0 {
		return 0
	}
	if pinned == nil {
		if u.total() == 0 {
			return 0
		}
		return 1 / u.total()
	}
	if u.postgres == 0 || u.server+u.client == 0 {
		return 0
	}
	return min(float64(pinned.Postgres)/u.postgres, float64(pinned.Rest)/(u.server+u.client))
}

// boundRatio is the ratio of u's rate to other's where the CPU bounds both; 0 when
// either is unknown.
func boundRatio(u, other unitCPU, pinned *PinnedCPUs) float64 {
	a, b := u.rate(pinned), other.rate(pinned)
	if a == 0 || b == 0 {
		return 0
	}
	return a / b
}

// serverBudget is the most CPU a unit u's server may spend for u's rate to reach want
// times other's, PostgreSQL and the client spending what they do: shared, what the
// target allows a unit in all less PostgreSQL's and the client's; pinned, what it
// allows the other CPU set less the client's, unless PostgreSQL's own CPU already
// falls short. When no server could meet the target, budget is 0 or less and short
// says what falls short instead.
func (u unitCPU) serverBudget(other unitCPU, want float64, unit string, pinned *PinnedCPUs) (budget float64, short string) {
	need := want * other.rate(pinned) // units a millisecond
	if need == 0 {
		return 0, ""
	}
	if pinned == nil {
		allowed := 1 / need
		return allowed - u.postgres - u.client, fmt.Sprintf("it allows %.3f ms a %s in all, and PostgreSQL and the load generator spent %.3f",
			allowed, unit, u.postgres+u.client)
	}
	if allowed := float64(pinned.Postgres) / need; u.postgres > allowed {
		return 0, fmt.Sprintf("PostgreSQL's own CPU falls short: it allows PostgreSQL %.3f ms a %s, which spent %.3f", allowed, unit, u.postgres)
	}
	allowed := float64(pinned.Rest) / need
	return allowed - u.client, fmt.Sprintf("it allows the server's CPU(s) %.3f ms a %s, and the load generator spent %.3f", allowed, unit, u.client)
}

// flashSaleVerdicts holds the current build's flash sale to its targets: nothing
// oversold or lost, the stock sold out, and a completion rate near the hot row's
// database ceiling, with the ratio the CPU allows (ceilingBoundNote) under it. floor
// is the floor measured at the sale's concurrency, nil when no level measured it.
func flashSaleVerdicts(fs FlashSale, floor *Floor, pinned *PinnedCPUs) []Verdict {
	return []Verdict{
		{
			Name: "flash sale: oversold", Value: float64(fs.Oversold), Target: "= 0",
			Shown: fmt.Sprintf("%d", fs.Oversold), Pass: fs.Oversold == 0,
			Note: fmt.Sprintf("database: %d orders for %d stock, %d left", fs.Orders, fs.Stock, fs.StockRemaining),
		},
		{
			Name: "flash sale: lost", Value: float64(fs.Lost), Target: "= 0",
			Shown: fmt.Sprintf("%d", fs.Lost), Pass: fs.Lost == 0,
			Note: "units taken from the stock without an order",
		},
		{
			Name: "flash sale: sold out", Value: float64(fs.Sold), Target: fmt.Sprintf("= %d", fs.Stock),
			Shown: fmt.Sprintf("%d sold, %d refused", fs.Sold, fs.Refusals), Pass: fs.SoldOut && fs.Sold == int64(fs.Stock) && fs.Orders == fs.Sold,
			Note: fmt.Sprintf("%d answered completed, %d orders in the database", fs.Sold, fs.Orders),
		},
		{
			Name: "flash sale: completions/s / hot-row ceiling", Value: fs.CeilingRatio, Target: fmt.Sprintf(">= %.1f", targetFlashSaleRatio),
			Shown: fmt.Sprintf("%s (%.0f / %.0f per s)", fmtHeld(fs.CeilingRatio, atLeast(targetFlashSaleRatio)), fs.CompletionsPerSecond, fs.Ceiling.TPS),
			Pass:  fs.CeilingRatio >= targetFlashSaleRatio,
			Note:  flashSaleSides + ceilingBoundNote(Phase{Report: fs.Report, CPU: fs.CPU}, fs.Ceiling, floor, targetFlashSaleRatio, "sale", pinned),
		},
	}
}

// verdicts holds the whole run against the targets. The run passes when every target
// is met and no request of the current build failed; the baseline's figures are for
// comparison only.
func verdicts(r BenchReport) ([]Verdict, bool) {
	var v []Verdict
	for _, lr := range r.Runs {
		v = append(v, levelVerdicts(lr, r.Machine.PinnedCPUs)...)
	}
	for _, fs := range r.FlashSale {
		if fs.Build == r.Current.Name {
			v = append(v, flashSaleVerdicts(fs, r.floorAt(fs.Agents), r.Machine.PinnedCPUs)...)
		}
	}
	pass := true
	for _, x := range v {
		pass = pass && x.Pass
	}
	for _, p := range r.currentReports() {
		pass = pass && len(p.Failures) == 0 && p.Stopped == ""
	}
	return v, pass
}

// floorAt is the floor measured at the level of n agents, nil when none was.
func (r BenchReport) floorAt(n int) *Floor {
	for _, lr := range r.Runs {
		if lr.Concurrency == n {
			return lr.Floor
		}
	}
	return nil
}

// currentReports are the current build's load reports that must run clean: every
// phase's, the flash sale's (which stops when sold out) and the PSP phase's.
func (r BenchReport) currentReports() []Report {
	var out []Report
	for _, lr := range r.Runs {
		out = append(out, lr.Current.Flow.Report, lr.Current.CompleteOnly.Report, lr.Current.ReplayOnly.Report)
	}
	for _, fs := range r.FlashSale {
		if fs.Build == r.Current.Name {
			rep := fs.Report
			if fs.SoldOut {
				rep.Stopped = ""
			}
			out = append(out, rep)
		}
	}
	for _, p := range r.PSP {
		if p.Build == r.Current.Name && p.Report != nil {
			out = append(out, *p.Report)
		}
	}
	return out
}

func fmtCPU(v float64) string {
	if v < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.3f ms", v)
}

func fmtSeconds(v float64) string {
	if v < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1fs CPU", v)
}

// writeText prints the bench report.
func (r BenchReport) writeText(w io.Writer) {
	m := r.Machine
	levels := concurrencyLevels(r.Levels)
	fmt.Fprintf(w, "\n== acpload -bench: %s agents, %gs per phase (+%gs warm-up)\n", levels.String(), r.DurationSeconds, r.WarmupSeconds)
	fmt.Fprintf(w, "machine: %d cores (%s), %d MiB; %s; PostgreSQL %s (%s)\n", m.Cores, m.CPUModel, m.MemoryMiB, m.GoVersion, m.Postgres, m.PostgresKind)
	fmt.Fprintf(w, "durability: %s\n", r.Durability)
	fmt.Fprintf(w, "database path: %s\n", m.DatabasePath)
	fmt.Fprintf(w, "CPUs: %s\n", m.CPUs)
	fmt.Fprintf(w, "load average: %s at start, %s at end\n", m.LoadAvgAtStart, m.LoadAvgAtEnd)
	if !m.PgStatStatements {
		fmt.Fprintln(w, "per-statement figures: off (give TEST_DATABASE_URL a server with shared_preload_libraries = 'pg_stat_statements')")
	}
	fmt.Fprintf(w, "server: %s, LOG_LEVEL=%s, pool_max_conns %s, gzip %v %s\n", m.ServerBinary, m.ServerLogLevel, m.PoolMaxConns, m.GzipResponses, m.ServerExtraEnv)
	fmt.Fprintf(w, "load generator: %s client, timer slack %s (the processes it starts: the slack it was started with)\n", m.LoadClient, m.LoadTimerSlack)
	if b := r.Baseline; b != nil {
		fmt.Fprintf(w, "baseline: %s = %s, built into %s; each build has its own database, migrated by its own binary\n", b.Revision, shortCommit(b.Commit), b.Binary)
	}

	for _, lr := range r.Runs {
		c := lr.Ceiling
		fmt.Fprintf(w, "\n==== %d agents\n", lr.Concurrency)
		fmt.Fprintf(w, "\n-- database ceiling, in rounds alternating with the complete-only phase: %s\n", c.Command)
		c.writeText(w)
		writeBuildRun(w, lr.Current)
		if lr.Baseline != nil {
			writeBuildRun(w, *lr.Baseline)
			writeComparison(w, lr)
		}
		if lr.Floor != nil {
			lr.Floor.writeText(w)
		}
	}
	for _, fs := range r.FlashSale {
		fs.writeText(w)
	}
	for _, p := range r.PSP {
		p.writeText(w)
	}

	fmt.Fprint(w, "\n-- CPU speed probe before each phase (MB/s of SHA-256, one core):")
	for _, p := range r.Speed {
		fmt.Fprintf(w, " %s %.0f;", p.Phase, p.MBps)
	}
	fmt.Fprintf(w, " spread %.0f%%\n", 100*r.SpeedSpread)

	fmt.Fprintf(w, "\n%-52s %-30s %-11s %s\n", "target", "measured", "wanted", "result")
	for _, v := range r.Verdicts {
		res := "PASS"
		if !v.Pass {
			res = "FAIL"
		}
		fmt.Fprintf(w, "%-52s %-30s %-11s %s\n", v.Name, v.Shown, v.Target, res)
		for line := range strings.Lines(v.Note) {
			fmt.Fprintf(w, "%-52s   %s\n", "", strings.TrimSuffix(line, "\n"))
		}
	}
	for _, p := range r.currentReports() {
		if n := len(p.Failures); n > 0 || p.Stopped != "" {
			fmt.Fprintf(w, "WARNING: %s (%d agents) had failed requests or stopped early; see its table above\n", p.Name, p.Concurrency)
		}
	}
	if !r.Durability.Durable() {
		fmt.Fprintln(w, "NOTE: PostgreSQL ran without durable commits; BENCH_DURABLE=1 (-durable) measures with fsync and synchronous_commit on")
	}
	if r.SpeedSpread > maxSpeedSpread {
		fmt.Fprintf(w, "WARNING: the CPU speed probe changed by %.0f%% during the run (a busy VM host shows up this way, with no steal time): the phases ran on different machines, in effect; rerun\n", 100*r.SpeedSpread)
	}
}

// writeText prints a pgbench ceiling's figures.
func (c Ceiling) writeText(w io.Writer) {
	fmt.Fprintf(w, "  %d transactions, %.1f tps; latency mean %s, p50 %s, p95 %s, p99 %s, max %s\n",
		c.Transactions, c.TPS, fmtMs(c.MeanMs), fmtMs(c.P50Ms), fmtMs(c.P95Ms), fmtMs(c.P99Ms), fmtMs(c.MaxMs))
	fmt.Fprintf(w, "  %s\n", c.CPU.String(c.Transactions, "tx"))
	c.Statements.writeText(w, "tx")
}

// writeBuildRun prints one build's phases at one level.
func writeBuildRun(w io.Writer, r BuildRun) {
	for _, p := range []struct {
		title string
		phase Phase
		unit  string
	}{
		{"full ACP flow (create, update, delegate_payment, complete, replay)", r.Flow, "flow"},
		{"complete only (pre-seeded ready sessions, the pgbench script's work through the server)", r.CompleteOnly, "completion"},
		{"replay only (the completions above, same key and body)", r.ReplayOnly, "replay"},
	} {
		if p.phase.Report.Name == "" {
			continue // skipped: said below
		}
		fmt.Fprintf(w, "\n-- %s build: %s\n", r.Build, p.title)
		p.phase.Report.writeText(w)
		fmt.Fprintf(w, "  %s\n", p.phase.CPU.String(p.phase.Report.Flows, p.unit))
		p.phase.Statements.writeText(w, p.unit)
		p.phase.KeptViews.writeText(w, p.phase.Report.Flows, p.unit)
	}
	if r.Skipped != "" {
		fmt.Fprintf(w, "\n-- %s build: %s\n", r.Build, r.Skipped)
	}
	s := r.Server
	fmt.Fprintf(w, "\n-- %s build's server: ready in %.0f ms; peak RSS %.1f MiB (max sampled %.1f MiB over %d samples)\n",
		r.Build, s.ReadyMs, s.PeakRSSMiB, s.MaxSampledRSSMiB, s.RSSSamples)
	if s.ExitState != "" {
		fmt.Fprintf(w, "  server exit: %s\n", s.ExitState)
	}
}

// writeComparison prints the level's figures side by side.
func writeComparison(w io.Writer, lr LevelRun) {
	fmt.Fprintf(w, "\n-- current vs baseline, %d agents (ratio = current / baseline)\n", lr.Concurrency)
	fmt.Fprintf(w, "  %-44s %12s %12s %8s\n", "figure", "current", "baseline", "ratio")
	for _, c := range lr.Comparison {
		better := "lower is better"
		if c.HigherIsBetter {
			better = "higher is better"
		}
		fmt.Fprintf(w, "  %-44s %12s %12s %8s  %s\n", c.Figure, fmtFigure(c.Current, c.Unit), fmtFigure(c.Baseline, c.Unit), fmtRatio(c.Ratio), better)
	}
}

func fmtFigure(v float64, unit string) string {
	switch {
	case v < 0:
		return "n/a"
	case unit == "ms" && v < 10:
		return fmt.Sprintf("%.3f %s", v, unit)
	}
	return fmt.Sprintf("%.1f %s", v, unit)
}

func fmtRatio(v float64) string {
	if v == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2fx", v)
}

// flashSaleSides says what each side of the flash sale's ratio contains.
const flashSaleSides = "sale: POST /complete of prepared sessions (vault token, 1 unit) through the server; " +
	"ceiling: complete.pgbench's statements on the same row in pgbench, no HTTP"

// writeText prints a flash sale.
func (fs FlashSale) writeText(w io.Writer) {
	fmt.Fprintf(w, "\n-- %s build: flash sale, %d agents completing %d sessions prepared for 1 unit each of %s (stock %d) until sold out, in %d rounds alternating with the hot-row ceiling's\n",
		fs.Build, fs.Agents, fs.Prepared, flashVariant, fs.Stock, fs.Rounds)
	fmt.Fprintf(w, "  sold %d, out-of-stock refusals %d, oversold %d, lost %d; database: %d orders, stock left %d\n",
		fs.Sold, fs.Refusals, fs.Oversold, fs.Lost, fs.Orders, fs.StockRemaining)
	fmt.Fprintf(w, "  %.1f completions/s over %.2fs of selling; hot-row pgbench ceiling %.1f tps at %d clients (p99 %s): ratio %.2f\n",
		fs.CompletionsPerSecond, fs.SellingSeconds, fs.Ceiling.TPS, fs.Agents, fmtMs(fs.Ceiling.P99Ms), fs.CeilingRatio)
	if len(fs.QuarterRates) > 0 {
		rates := make([]string, len(fs.QuarterRates))
		for i, r := range fs.QuarterRates {
			rates[i] = fmt.Sprintf("%.0f", r)
		}
		fmt.Fprintf(w, "  completions/s by quarter of the selling time: %s\n", strings.Join(rates, " / "))
	}
	fmt.Fprintf(w, "  ratio's sides: %s\n", flashSaleSides)
	fmt.Fprintf(w, "  hot-row ceiling: %s\n", fs.Ceiling.Command)
	fs.Report.writeText(w)
	fmt.Fprintf(w, "  %s\n", fs.CPU.String(int(fs.Sold), "sale"))
	fmt.Fprintf(w, "  server: ready in %.0f ms; peak RSS %.1f MiB\n", fs.Server.ReadyMs, fs.Server.PeakRSSMiB)
}

// writeText prints a slow-PSP phase.
func (p PSPRun) writeText(w io.Writer) {
	fmt.Fprintf(w, "\n-- %s build: slow PSP, %d agents completing through a fake Stripe API answering after %s\n",
		p.Build, p.Agents, fmtMs(p.DelayMs))
	if !p.Supported {
		fmt.Fprintf(w, "  %s\n", p.Note)
		return
	}
	fmt.Fprintf(w, "  paid with %s\n", p.Payment)
	fmt.Fprintf(w, "  %.1f completions/s; complete p50 %s, p99 %s; PSP served (flows begun in the warm-up included) %d payment methods, %d payment intents (%d with an SPT), %d refunds, %d replays, refused %d\n",
		p.CompletionsPerSecond, fmtMs(p.P50Ms), fmtMs(p.P99Ms), p.PSP.PaymentMethods, p.PSP.PaymentIntents, p.PSP.SharedPaymentTokens,
		p.PSP.Refunds, p.PSP.Replays, p.PSP.Refused)
	if p.Pool != nil {
		fmt.Fprintf(w, "  database pool: %.2fs waiting for a connection, %.0f acquires found the pool empty (max %.0f connections)\n",
			p.Pool.AcquireWaitSeconds, p.Pool.EmptyAcquires, p.Pool.MaxConns)
	} else if p.Note != "" {
		fmt.Fprintf(w, "  %s\n", p.Note)
	}
	if p.Report != nil {
		p.Report.writeText(w)
	}
}

// fmtHeld writes a figure held to a target (holds) with two decimals, or with as many
// more as it takes for the figure shown to meet the target exactly when the figure
// does (0.849 is not shown as 0.85 beside a FAIL against >= 0.85, nor 2.003 as 2.00
// beside a FAIL against <= 2).
func fmtHeld(v float64, holds func(float64) bool) string {
	for prec := 2; ; prec++ {
		shown := strconv.FormatFloat(v, 'f', prec, 64)
		if f, err := strconv.ParseFloat(shown, 64); prec >= 6 || err != nil || holds(f) == holds(v) {
			return shown
		}
	}
}

// atLeast and atMost are the targets a figure is held to.
func atLeast(target float64) func(float64) bool { return func(v float64) bool { return v >= target } }
func atMost(target float64) func(float64) bool  { return func(v float64) bool { return v <= target } }
