package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// endpoint is one kind of request acpload sends; its latencies are kept apart.
type endpoint int

// The endpoints of one ACP flow, in flow order.
const (
	epCreate endpoint = iota
	epUpdate
	epDelegate
	epComplete
	epReplay
	// epGetOrder, epFulfil and epRefund are the admin API's, after a flow with
	// -admin-key: the order read, all its lines shipped, one unit refunded.
	epGetOrder
	epFulfil
	epRefund
	// epCancel is the cancel of a flow with -cancel, which abandons its ready session
	// instead of paying.
	epCancel
	// epFloor is the bench's floor server (floor.go), not an ACP endpoint.
	epFloor
	numEndpoints
)

// String is the endpoint's name in reports.
func (e endpoint) String() string {
	switch e {
	case epCreate:
		return "create_session"
	case epUpdate:
		return "update_session"
	case epDelegate:
		return "delegate_payment"
	case epComplete:
		return "complete"
	case epReplay:
		return "complete_replay"
	case epGetOrder:
		return "admin_get_order"
	case epFulfil:
		return "admin_fulfil"
	case epRefund:
		return "admin_refund"
	case epCancel:
		return "cancel_session"
	case epFloor:
		return "floor"
	}
	return fmt.Sprintf("endpoint(%d)", int(e))
}

// Failure counts the responses of one endpoint that were not what the flow expected,
// keyed by HTTP status (0 for a transport error) and ACP error code (or what check
// failed, for a 2xx with the wrong content).
type Failure struct {
	Endpoint string `json:"endpoint"`
	Status   int    `json:"status"`
	Code     string `json:"code"`
	Count    int    `json:"count"`
}

type failureKey struct {
	ep     endpoint
	status int
	code   string
}

// recorder holds one agent's observations. Only its agent writes to it, so recording a
// latency is an append to a preallocated slice: no lock, no allocation in the steady
// state. Recorders are merged once the run is over.
type recorder struct {
	latency     [numEndpoints][]time.Duration
	failures    map[failureKey]int
	flows       int
	failedFlows int
}

// newRecorder preallocates room for perEndpoint latencies of every endpoint.
func newRecorder(perEndpoint int) *recorder {
	r := &recorder{failures: map[failureKey]int{}}
	for i := range r.latency {
		r.latency[i] = make([]time.Duration, 0, perEndpoint)
	}
	return r
}

func (r *recorder) observe(ep endpoint, d time.Duration) {
	r.latency[ep] = append(r.latency[ep], d)
}

func (r *recorder) fail(ep endpoint, status int, code string) {
	r.failures[failureKey{ep, status, code}]++
}

// merge folds the recorders into one; their latency slices are concatenated.
func merge(recs []*recorder) *recorder {
	var n [numEndpoints]int
	for _, r := range recs {
		for ep := range n {
			n[ep] += len(r.latency[ep])
		}
	}
	out := &recorder{failures: map[failureKey]int{}}
	for ep := range out.latency {
		out.latency[ep] = make([]time.Duration, 0, n[ep])
	}
	for _, r := range recs {
		for ep := range out.latency {
			out.latency[ep] = append(out.latency[ep], r.latency[ep]...)
		}
		for k, v := range r.failures {
			out.failures[k] += v
		}
		out.flows += r.flows
		out.failedFlows += r.failedFlows
	}
	return out
}

// percentile returns the nearest-rank p-th percentile (0 < p <= 100) of sorted: the
// smallest observation with at least p% of the observations at or below it. It is
// exact (no histogram buckets); an empty input gives 0.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// EndpointStats summarises the latencies of one endpoint over a run.
type EndpointStats struct {
	Endpoint  string  `json:"endpoint"`
	Count     int     `json:"count"`
	PerSecond float64 `json:"per_second"`
	MeanMs    float64 `json:"mean_ms"`
	P50Ms     float64 `json:"p50_ms"`
	P95Ms     float64 `json:"p95_ms"`
	P99Ms     float64 `json:"p99_ms"`
	MaxMs     float64 `json:"max_ms"`
}

// summarize sorts lat in place and summarises it; elapsed turns the count into a rate.
func summarize(name string, lat []time.Duration, elapsed time.Duration) EndpointStats {
	slices.Sort(lat)
	s := EndpointStats{Endpoint: name, Count: len(lat)}
	if elapsed > 0 {
		s.PerSecond = float64(len(lat)) / elapsed.Seconds()
	}
	if len(lat) == 0 {
		return s
	}
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	s.MeanMs = ms(sum / time.Duration(len(lat)))
	s.P50Ms = ms(percentile(lat, 50))
	s.P95Ms = ms(percentile(lat, 95))
	s.P99Ms = ms(percentile(lat, 99))
	s.MaxMs = ms(lat[len(lat)-1])
	return s
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Report is the outcome of one load run: what ran, the rates, and every endpoint's
// latency distribution and failures.
type Report struct {
	Name           string  `json:"name"`
	URL            string  `json:"url"`
	Concurrency    int     `json:"concurrency"`
	WarmupSeconds  float64 `json:"warmup_seconds"`
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	// Flows counts the measured units of work that succeeded end to end (a full ACP
	// flow, or a single completion or replay in the bench's isolated phases).
	Flows             int             `json:"flows"`
	FailedFlows       int             `json:"failed_flows"`
	FlowsPerSecond    float64         `json:"flows_per_second"`
	Requests          int             `json:"requests"`
	RequestsPerSecond float64         `json:"requests_per_second"`
	Endpoints         []EndpointStats `json:"endpoints"`
	Failures          []Failure       `json:"failures"`
	// Stopped says why the run ended before its duration, when it did.
	Stopped string `json:"stopped,omitempty"`
}

// allEndpoints names the row of a report's endpoints that sums every endpoint's
// requests, after the endpoints' own rows when there are several.
const allEndpoints = "all"

// buildReport summarises a merged recorder. Endpoints that saw no request are left out.
func buildReport(name, url string, concurrency int, warmup, elapsed time.Duration, rec *recorder) Report {
	r := Report{
		Name: name, URL: url, Concurrency: concurrency,
		WarmupSeconds: warmup.Seconds(), ElapsedSeconds: elapsed.Seconds(),
		Flows: rec.flows, FailedFlows: rec.failedFlows,
		Endpoints: []EndpointStats{}, Failures: []Failure{},
	}
	var all []time.Duration
	for ep := range numEndpoints {
		lat := rec.latency[ep]
		if len(lat) == 0 {
			continue
		}
		all = append(all, lat...)
		r.Endpoints = append(r.Endpoints, summarize(ep.String(), lat, elapsed))
	}
	if len(r.Endpoints) > 1 {
		r.Endpoints = append(r.Endpoints, summarize(allEndpoints, all, elapsed))
	}
	r.Requests = len(all)
	if elapsed > 0 {
		r.FlowsPerSecond = float64(r.Flows) / elapsed.Seconds()
		r.RequestsPerSecond = float64(r.Requests) / elapsed.Seconds()
	}
	for k, n := range rec.failures {
		r.Failures = append(r.Failures, Failure{Endpoint: k.ep.String(), Status: k.status, Code: k.code, Count: n})
	}
	slices.SortFunc(r.Failures, func(a, b Failure) int {
		return cmp.Or(-cmp.Compare(a.Count, b.Count), strings.Compare(a.Endpoint, b.Endpoint),
			cmp.Compare(a.Status, b.Status), strings.Compare(a.Code, b.Code))
	})
	return r
}

// kinds counts the kinds of request the report holds, its endpoints but the sum.
func (r Report) kinds() int {
	n := 0
	for _, e := range r.Endpoints {
		if e.Endpoint != allEndpoints {
			n++
		}
	}
	return n
}

// Endpoint returns the stats of the named endpoint (zero when it saw no request).
func (r Report) Endpoint(name string) EndpointStats {
	for _, e := range r.Endpoints {
		if e.Endpoint == name {
			return e
		}
	}
	return EndpointStats{Endpoint: name}
}

// writeText prints the report as a table.
func (r Report) writeText(w io.Writer) {
	fmt.Fprintf(w, "%s: %d agents, %.1fs measured (+%.1fs warmup) against %s\n",
		r.Name, r.Concurrency, r.ElapsedSeconds, r.WarmupSeconds, r.URL)
	fmt.Fprintf(w, "  flows: %d ok, %d failed, %.1f flows/s; requests: %d, %.1f req/s\n",
		r.Flows, r.FailedFlows, r.FlowsPerSecond, r.Requests, r.RequestsPerSecond)
	if r.Stopped != "" {
		fmt.Fprintf(w, "  stopped early: %s\n", r.Stopped)
	}
	fmt.Fprintf(w, "  %-17s %8s %9s %9s %9s %9s %9s %9s\n", "endpoint", "count", "req/s", "mean", "p50", "p95", "p99", "max")
	for _, e := range r.Endpoints {
		fmt.Fprintf(w, "  %-17s %8d %9.1f %9s %9s %9s %9s %9s\n", e.Endpoint, e.Count, e.PerSecond,
			fmtMs(e.MeanMs), fmtMs(e.P50Ms), fmtMs(e.P95Ms), fmtMs(e.P99Ms), fmtMs(e.MaxMs))
	}
	if len(r.Failures) == 0 {
		fmt.Fprintln(w, "  non-2xx / failed checks: none")
		return
	}
	fmt.Fprintln(w, "  non-2xx / failed checks:")
	for _, f := range r.Failures {
		status := fmt.Sprint(f.Status)
		if f.Status == 0 {
			status = "---"
		}
		fmt.Fprintf(w, "    %-17s %s %-40s %d\n", f.Endpoint, status, f.Code, f.Count)
	}
}

// fmtMs prints a latency in milliseconds with a precision that suits its size.
func fmtMs(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0fms", v)
	case v >= 10:
		return fmt.Sprintf("%.1fms", v)
	}
	return fmt.Sprintf("%.2fms", v)
}

// writeJSON prints v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
