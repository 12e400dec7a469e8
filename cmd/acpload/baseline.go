package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// buildBaseline builds the server at git revision rev: `git archive` of the commit into
// a temporary directory (the repository's worktrees and index are not touched), then
// `go build` there with the toolchain and flags of `make build`. The sources are
// removed once built; the binary lives in tmp until the run ends.
func buildBaseline(ctx context.Context, rev, tmp string, progress func(string, ...any)) (Build, error) {
	b := Build{Name: "baseline", Revision: rev}
	out, err := exec.CommandContext(ctx, "git", "rev-parse", "--verify", "--end-of-options", rev+"^{commit}").Output()
	if err != nil {
		return b, fmt.Errorf("-baseline %s: not a commit of this repository: %w", rev, err)
	}
	b.Commit = strings.TrimSpace(string(out))
	src := filepath.Join(tmp, "baseline-src")
	if err := os.Mkdir(src, 0o755); err != nil {
		return b, err
	}
	defer os.RemoveAll(src)

	progress("baseline: exporting %s (%s) and building its server", rev, shortCommit(b.Commit))
	archive := exec.CommandContext(ctx, "git", "archive", "--format=tar", b.Commit)
	untar := exec.CommandContext(ctx, "tar", "-x", "-C", src)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		return b, err
	}
	untar.Stdin = pipe
	var archiveErr, untarErr strings.Builder
	archive.Stderr, untar.Stderr = &archiveErr, &untarErr
	if err := untar.Start(); err != nil {
		return b, err
	}
	if err := archive.Run(); err != nil {
		_ = untar.Wait()
		return b, fmt.Errorf("git archive %s: %w: %s", b.Commit, err, archiveErr.String())
	}
	if err := untar.Wait(); err != nil {
		return b, fmt.Errorf("unpack %s: %w: %s", b.Commit, err, untarErr.String())
	}

	b.Binary = filepath.Join(tmp, "agentic-commerce-server-"+shortCommit(b.Commit))
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", b.Binary, "./cmd/agentic-commerce-server")
	build.Dir = src
	// GOTOOLCHAIN comes from the environment (the Makefile exports it): the baseline is
	// built with the toolchain the current build was.
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return b, fmt.Errorf("build the baseline server at %s: %w\n%s", rev, err, out)
	}
	return b, nil
}

func shortCommit(c string) string { return c[:min(len(c), 12)] }

// Comparison is one figure of the current build beside the baseline's at one level.
type Comparison struct {
	Figure   string  `json:"figure"`
	Unit     string  `json:"unit"`
	Current  float64 `json:"current"`
	Baseline float64 `json:"baseline"`
	// Ratio is current / baseline (0 when the baseline's figure is 0 or unknown).
	Ratio float64 `json:"ratio"`
	// HigherIsBetter says which way a ratio above 1 points.
	HigherIsBetter bool `json:"higher_is_better"`
}

// perRequestMs is CPU seconds per request in milliseconds; -1 when the CPU figure is
// unknown or there was no request.
func perRequestMs(cpuSeconds float64, requests int) float64 {
	if cpuSeconds < 0 || requests == 0 {
		return -1
	}
	return cpuSeconds * 1000 / float64(requests)
}

// compareBuilds puts each headline figure of the two builds side by side.
func compareBuilds(cur, base BuildRun) []Comparison {
	type figure struct {
		name, unit string
		higher     bool
		get        func(BuildRun) float64
	}
	figures := []figure{
		{"full flow: flows/s", "/s", true, func(r BuildRun) float64 { return r.Flow.Report.FlowsPerSecond }},
		{"full flow: server CPU per request", "ms", false, func(r BuildRun) float64 {
			return perRequestMs(r.Flow.CPU.Server, r.Flow.Report.Requests)
		}},
		{"full flow: postgres CPU per request", "ms", false, func(r BuildRun) float64 {
			return perRequestMs(r.Flow.CPU.Postgres, r.Flow.Report.Requests)
		}},
		{"full flow: complete p99", "ms", false, func(r BuildRun) float64 { return r.Flow.Report.Endpoint("complete").P99Ms }},
		{"complete only: completions/s", "/s", true, func(r BuildRun) float64 { return r.CompleteOnly.Report.Endpoint("complete").PerSecond }},
		{"complete only: p99", "ms", false, func(r BuildRun) float64 { return r.CompleteOnly.Report.Endpoint("complete").P99Ms }},
		{"complete only: server CPU per completion", "ms", false, func(r BuildRun) float64 {
			return perRequestMs(r.CompleteOnly.CPU.Server, r.CompleteOnly.Report.Requests)
		}},
		{"complete only: postgres CPU per completion", "ms", false, func(r BuildRun) float64 {
			return perRequestMs(r.CompleteOnly.CPU.Postgres, r.CompleteOnly.Report.Requests)
		}},
		{"replay only: replays/s", "/s", true, func(r BuildRun) float64 { return r.ReplayOnly.Report.Endpoint("complete_replay").PerSecond }},
		{"replay only: p99", "ms", false, func(r BuildRun) float64 { return r.ReplayOnly.Report.Endpoint("complete_replay").P99Ms }},
		{"peak RSS", "MiB", false, func(r BuildRun) float64 { return r.Server.PeakRSSMiB }},
		{"time to ready", "ms", false, func(r BuildRun) float64 { return r.Server.ReadyMs }},
	}
	out := make([]Comparison, len(figures))
	for i, f := range figures {
		c, b := f.get(cur), f.get(base)
		out[i] = Comparison{Figure: f.name, Unit: f.unit, Current: c, Baseline: b, HigherIsBetter: f.higher}
		if b > 0 && c >= 0 {
			out[i].Ratio = c / b
		}
	}
	return out
}
