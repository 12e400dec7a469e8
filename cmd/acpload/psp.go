package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// pspToken is the PSP test token the slow-PSP phase pays with: in 2025-09-29 the
// completion's payment_data names the token and the provider, which must be stripe.
const pspToken = "tok_visa"

// PSPRun is one build's slow-PSP phase: completions paid through a fake Stripe API that
// answers after -psp-delay.
type PSPRun struct {
	Build   string  `json:"build"`
	DelayMs float64 `json:"psp_delay_ms"`
	Agents  int     `json:"agents"`
	// Supported is false when the build refused to start with PAYMENT_GATEWAY=stripe;
	// Note then says why.
	Supported            bool        `json:"supported"`
	Note                 string      `json:"note,omitempty"`
	Report               *Report     `json:"report,omitempty"`
	CompletionsPerSecond float64     `json:"completions_per_second"`
	P50Ms                float64     `json:"complete_p50_ms"`
	P99Ms                float64     `json:"complete_p99_ms"`
	PSP                  PSPCounts   `json:"psp"`
	Pool                 *PoolWaits  `json:"pool,omitempty"`
	Server               ServerStats `json:"server"`
}

// PoolWaits is how long requests waited for a database connection during the measured
// part, from the server's /metrics (pgxpool's statistics).
type PoolWaits struct {
	AcquireWaitSeconds float64 `json:"acquire_wait_seconds"`
	EmptyAcquires      float64 `json:"empty_acquires"`
	MaxConns           float64 `json:"max_conns"`
}

// The pool metrics the server exports (internal/metrics).
const (
	metricAcquireWait   = "acp_db_pool_acquire_wait_seconds_total"
	metricEmptyAcquires = "acp_db_pool_empty_acquires_total"
	metricMaxConns      = "acp_db_pool_connections_max"
)

// benchStripeKey is the server's STRIPE_SECRET_KEY against the fake PSP: a test key in
// the form the server's configuration checks (sk_test_ and 16 or more letters or
// digits), which the fake PSP accepts.
const benchStripeKey = "sk_test_acploadBench0000000000"

// pspEnv is the server's payment settings for the fake PSP.
func pspEnv(p *fakePSP) []string {
	return []string{"PAYMENT_GATEWAY=stripe", "STRIPE_SECRET_KEY=" + benchStripeKey, "STRIPE_API_BASE=" + p.URL()}
}

// pspCompleteBody pays with the PSP test token.
const pspCompleteBody = `{"payment_data":{"token":"` + pspToken + `","provider":"stripe"}}`

// pspFlow creates a session, makes it ready (buyer, shipping) and completes it with the
// PSP token: the server charges through the gateway.
func pspFlow(ctx context.Context, a *agent) error {
	a.seq++
	id, err := a.readySession(ctx, createBody, nil)
	if err != nil {
		return err
	}
	resp, err := a.post(ctx, epComplete, "/checkout_sessions/"+id+"/complete", a.key("complete"), pspCompleteBody)
	if err != nil {
		return err
	}
	_, err = a.expect(epComplete, resp, http.StatusOK, "completed")
	return err
}

// runPSP starts the build's server against the fake PSP and runs the PSP flow at the
// given agents. A build that refuses to start with PAYMENT_GATEWAY=stripe is reported
// as not supporting it, not as a failed bench.
func (e *benchEnv) runPSP(ctx context.Context, t *benchTarget, psp *fakePSP, agents int) (PSPRun, error) {
	run := PSPRun{Build: t.build.Name, DelayMs: ms(e.cfg.pspDelay), Agents: agents}
	s, err := e.startBenchServer(ctx, t, agents, pspEnv(psp)...)
	if err != nil {
		if ctx.Err() != nil {
			return run, err
		}
		run.Note = "not supported by this build: " + startFailure(err)
		e.progress("slow PSP (%s build): %s", t.build.Name, run.Note)
		return run, nil
	}
	run.Supported = true
	_ = psp.counts()
	var before map[string]float64
	e.speed("slow PSP, " + t.build.Name)
	res, _, _, err := s.measure(ctx, "slow PSP completions", e.cfg.duration, pspFlow, func() {
		before, _ = scrapeMetrics(ctx, s.srv.base)
	})
	after, afterErr := scrapeMetrics(ctx, s.srv.base)
	run.Server = s.stop()
	if err != nil {
		return run, err
	}
	run.PSP = psp.counts()
	r := res.report(loadConfig{name: "slow PSP completions", baseURL: s.srv.base, concurrency: agents, warmup: e.cfg.warmup})
	run.Report = &r
	complete := r.Endpoint("complete")
	run.CompletionsPerSecond, run.P50Ms, run.P99Ms = complete.PerSecond, complete.P50Ms, complete.P99Ms
	run.Pool, run.Note = poolWaits(before, after, afterErr)
	return run, nil
}

// poolWaits is the change of the pool metrics over the measured part, or nil and why.
func poolWaits(before, after map[string]float64, err error) (*PoolWaits, string) {
	if err != nil {
		return nil, "pool waits unknown: " + err.Error()
	}
	if _, ok := after[metricAcquireWait]; !ok || before == nil {
		return nil, "pool waits unknown: /metrics has no " + metricAcquireWait
	}
	return &PoolWaits{
		AcquireWaitSeconds: after[metricAcquireWait] - before[metricAcquireWait],
		EmptyAcquires:      after[metricEmptyAcquires] - before[metricEmptyAcquires],
		MaxConns:           after[metricMaxConns],
	}, ""
}

// scrapeMetrics reads the server's /metrics (open on the bench's server: no
// METRICS_API_KEY) and returns its unlabelled samples.
func scrapeMetrics(ctx context.Context, base string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil, fmt.Errorf("/metrics answered %d", resp.StatusCode)
	}
	return parseMetrics(resp.Body)
}

// parseMetrics reads the unlabelled samples of a Prometheus text exposition:
// "name value [timestamp]" lines; comments and labelled samples are skipped.
func parseMetrics(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.Contains(line, "{") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			return out, fmt.Errorf("metric %s: value %q", f[0], f[1])
		}
		out[f[0]] = v
	}
	return out, sc.Err()
}

// startFailure says why a server did not start in one line: the error's first line and
// the server's last log line, which names the setting it refused.
func startFailure(err error) string {
	lines := strings.Split(strings.TrimSpace(err.Error()), "\n")
	if len(lines) == 1 {
		return lines[0]
	}
	return lines[0] + ": " + strings.TrimSpace(lines[len(lines)-1])
}
