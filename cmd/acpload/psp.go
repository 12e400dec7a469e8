package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/payment/stripegw/stripefake"
)

// The slow-PSP phase pays as an agent does, with a Stripe Shared Payment Token: in
// 2026-04-17 the completion names the session's SPT handler and carries the token as an
// spt credential, and the Stripe gateway charges it in one PaymentIntent. A build that
// does not offer the handler (an older baseline) is paid the 2025-09-29 way instead,
// with Stripe's test card token, which the gateway first turns into a PaymentMethod.
const (
	sptAPIVersion = "2026-04-17"
	sptHandler    = "card_stripe_spt"
	// pspToken is the fallback's test token: 2025-09-29's payment_data names it and the
	// provider, which must be stripe.
	pspToken = "tok_visa"
)

// The 2026-04-17 shapes of the flow's create and update: the same cart, address and
// buyer as createBody and updateBody. A 2026-04-17 create also names the currency and
// the agent's capabilities (none), and the update selects the shipping option for the
// item.
const (
	sptCreateBody = `{"line_items":[{"id":"item_123","quantity":1}],"currency":"usd","capabilities":{},` +
		`"fulfillment_details":{"address":{"name":"John Doe","line_one":"1234 Chat Road","city":"San Francisco",` +
		`"state":"CA","country":"US","postal_code":"94131"}}}`
	sptUpdateBody = `{"buyer":{"first_name":"Ada","last_name":"Lovelace","email":"ada@example.com"},` +
		`"selected_fulfillment_options":[{"type":"shipping","option_id":"standard_shipping","item_ids":["item_123"]}]}`
)

// sptCompleteBody pays with a Shared Payment Token through the SPT handler.
func sptCompleteBody(token string) string {
	return `{"payment_data":{"handler_id":"` + sptHandler + `","instrument":{"type":"card",` +
		`"credential":{"type":"spt","token":"` + token + `"}}}}`
}

// sharedPaymentToken is a fresh SPT for the agent's current flow: Stripe's are single
// use, and the fake PSP refuses one spent already.
func (a *agent) sharedPaymentToken() string {
	return "spt_acpload" + a.run + "x" + strconv.Itoa(a.id) + "x" + strconv.FormatUint(a.seq, 10)
}

// pspPayment is how the slow-PSP phase pays a build.
type pspPayment struct {
	// apiVersion is the ACP version of every request.
	apiVersion string
	// flow is one measured unit: create, update, complete.
	flow func(context.Context, *agent) error
	// describe says how the phase paid, for the report.
	describe string
}

var (
	sptPayment = pspPayment{
		apiVersion: sptAPIVersion, flow: sptFlow,
		describe: "Shared Payment Tokens (" + sptHandler + ", spt credential) in " + sptAPIVersion + ": the Stripe gateway makes one PaymentIntent per completion",
	}
	cardTokenPayment = pspPayment{
		apiVersion: apiVersion, flow: cardTokenFlow,
		describe: pspToken + " in " + apiVersion + ": the Stripe gateway makes a PaymentMethod, then a PaymentIntent per completion",
	}
)

// PSPRun is one build's slow-PSP phase: completions paid through a fake Stripe API that
// answers after -psp-delay.
type PSPRun struct {
	Build   string  `json:"build"`
	DelayMs float64 `json:"psp_delay_ms"`
	Agents  int     `json:"agents"`
	// Supported is false when the build refused to start with PAYMENT_GATEWAY=stripe;
	// Note then says why.
	Supported bool   `json:"supported"`
	Note      string `json:"note,omitempty"`
	// Payment says how the completions paid: with SPTs, or with tok_visa and why.
	Payment              string            `json:"payment,omitempty"`
	Report               *Report           `json:"report,omitempty"`
	CompletionsPerSecond float64           `json:"completions_per_second"`
	P50Ms                float64           `json:"complete_p50_ms"`
	P99Ms                float64           `json:"complete_p99_ms"`
	PSP                  stripefake.Counts `json:"psp"`
	Pool                 *PoolWaits        `json:"pool,omitempty"`
	Server               ServerStats       `json:"server"`
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
func pspEnv(p *stripefake.Server) []string {
	return []string{"PAYMENT_GATEWAY=stripe", "STRIPE_SECRET_KEY=" + benchStripeKey, "STRIPE_API_BASE=" + p.URL()}
}

// pspCompleteBody pays with the PSP test token.
const pspCompleteBody = `{"payment_data":{"token":"` + pspToken + `","provider":"stripe"}}`

// sptFlow creates a 2026-04-17 session, makes it ready (buyer, shipping) and completes
// it with a fresh Shared Payment Token: the server charges it through the gateway.
func sptFlow(ctx context.Context, a *agent) error {
	a.seq++
	id, err := a.readySessionFrom(ctx, sptCreateBody, sptUpdateBody)
	if err != nil {
		return err
	}
	return a.completeWith(ctx, id, sptCompleteBody(a.sharedPaymentToken()))
}

// cardTokenFlow is sptFlow in 2025-09-29, paid with the PSP test card token.
func cardTokenFlow(ctx context.Context, a *agent) error {
	a.seq++
	id, err := a.readySession(ctx, createBody)
	if err != nil {
		return err
	}
	return a.completeWith(ctx, id, pspCompleteBody)
}

// completeWith completes the session id with body and expects it completed.
func (a *agent) completeWith(ctx context.Context, id, body string) error {
	resp, err := a.post(ctx, epComplete, "/checkout_sessions/"+id+"/complete", a.key("complete"), body)
	if err != nil {
		return err
	}
	_, err = a.expect(epComplete, resp, http.StatusOK, "completed")
	return err
}

// choosePSPPayment asks the server, with a 2026-04-17 session, whether it offers the SPT
// handler: SPTs if it does, else the card token fallback and why.
func choosePSPPayment(ctx context.Context, client *http.Client, base string) (pspPayment, string) {
	handlers, err := offeredHandlers(ctx, client, base)
	switch {
	case err != nil:
		return cardTokenPayment, "this build takes no " + sptAPIVersion + " session (" + err.Error() + ")"
	case !slices.Contains(handlers, sptHandler):
		return cardTokenPayment, fmt.Sprintf("this build offers no %s (handlers %v)", sptHandler, handlers)
	}
	return sptPayment, ""
}

// offeredHandlers creates a 2026-04-17 session and returns the ids of the payment
// handlers it offers.
func offeredHandlers(ctx context.Context, client *http.Client, base string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/checkout_sessions", strings.NewReader(sptCreateBody))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("API-Version", sptAPIVersion)
	req.Header.Set("Idempotency-Key", "acpload-spt-probe-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusCreated {
		return nil, fmt.Errorf("create answered %d %s", resp.StatusCode, cmp.Or(errorCode(body), "(no ACP error code)"))
	}
	var session struct {
		Capabilities struct {
			Payment struct {
				Handlers []struct {
					ID string `json:"id"`
				} `json:"handlers"`
			} `json:"payment"`
		} `json:"capabilities"`
	}
	if err := json.Unmarshal(body, &session); err != nil {
		return nil, fmt.Errorf("create's answer: %w", err)
	}
	ids := []string{}
	for _, h := range session.Capabilities.Payment.Handlers {
		ids = append(ids, h.ID)
	}
	return ids, nil
}

// runPSP starts the build's server against the fake PSP and runs the PSP flow at the
// given agents. A build that refuses to start with PAYMENT_GATEWAY=stripe is reported
// as not supporting it, not as a failed bench.
func (e *benchEnv) runPSP(ctx context.Context, t *benchTarget, psp *stripefake.Server, agents int) (PSPRun, error) {
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
	payment, why := choosePSPPayment(ctx, s.clients.std, s.srv.base)
	run.Payment = payment.describe
	if why != "" {
		run.Payment += "; not SPTs: " + why
	}
	e.progress("slow PSP (%s build): paying with %s", t.build.Name, run.Payment)
	s.apiVersion = payment.apiVersion
	var before map[string]float64
	e.speed("slow PSP, " + t.build.Name)
	res, _, _, err := s.measure(ctx, "slow PSP completions", e.cfg.duration, payment.flow, func() {
		// What the PSP served is counted over the measured part, as the pool's waits
		// are: the warm-up's charges would double the PSP calls per completion.
		_ = psp.TakeCounts()
		before, _ = scrapeMetrics(ctx, s.srv.base)
	})
	after, afterErr := scrapeMetrics(ctx, s.srv.base)
	run.Server = s.stop()
	if err != nil {
		return run, err
	}
	run.PSP = psp.TakeCounts()
	r := res.report(loadConfig{name: "slow PSP completions", baseURL: s.srv.base, concurrency: agents, warmup: e.cfg.warmup})
	run.Report = &r
	complete := r.Endpoint("complete")
	run.CompletionsPerSecond, run.P50Ms, run.P99Ms = complete.PerSecond, complete.P50Ms, complete.P99Ms
	run.Pool, run.Note = poolWaits(before, after, afterErr)
	if r.Flows > 0 && run.PSP.PaymentIntents == 0 {
		// A build that starts with PAYMENT_GATEWAY=stripe but charges elsewhere (one
		// from before the gateway was wired into serve) would otherwise look fast.
		run.Payment += "; WARNING: the fake PSP charged nothing, this build did not pay through it"
	}
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
// METRICS_API_KEY) and returns its samples (parseMetrics).
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

// parseMetrics reads the samples of a Prometheus text exposition, "series value
// [timestamp]" lines, by series: the name, with its labels as the server writes them
// (`name{label="value"}`). Comments are skipped, and so are samples whose labels hold
// a space, which the series the bench reads never do.
func parseMetrics(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 || strings.Count(f[0], "{") != strings.Count(f[0], "}") {
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
