// Package metrics exposes the server's Prometheus metrics: HTTP traffic, checkout
// outcomes, the order-event outbox and the database pool. Every method is safe on a nil
// *Metrics, so metrics can be turned off without conditionals at the call sites.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds the collectors of one server process.
type Metrics struct {
	registry   *prometheus.Registry
	requests   *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	outcomes   *prometheus.CounterVec
	refusals   *prometheus.CounterVec
	deliveries *prometheus.CounterVec
	toolCalls  *prometheus.CounterVec
	toolTime   *prometheus.HistogramVec
}

// Checkout outcomes counted by Outcome.
const (
	SessionCreated   = "session_created"
	SessionCompleted = "session_completed"
	SessionCanceled  = "session_canceled"
	TokenIssued      = "token_issued"
	TokenConsumed    = "token_consumed"
)

// New registers the collectors. backlog counts the undelivered order events; it is
// called on each scrape with a short timeout.
func New(pool *pgxpool.Pool, backlog func(context.Context) (int64, error)) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		registry: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "acp_http_requests_total", Help: "HTTP requests by route, method and status.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "acp_http_request_duration_seconds", Help: "HTTP request latency by route, method and status.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route", "method", "status"}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "acp_checkout_outcomes_total", Help: "Checkout outcomes: sessions created, completed, canceled; tokens issued and consumed.",
		}, []string{"outcome"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "acp_refusals_total", Help: "Requests refused with an ACP error, by error code.",
		}, []string{"code"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "acp_webhook_delivery_attempts_total", Help: "Order event delivery attempts by result (delivered, retry, dead).",
		}, []string{"result"}),
		// All MCP calls are one HTTP route (/mcp): these say which tool was called and
		// how it ended, what the route, method and status of REST say.
		toolCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "acp_mcp_tool_calls_total", Help: "MCP tool calls by tool and result (ok, replayed, refused, failed).",
		}, []string{"tool", "result"}),
		toolTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "acp_mcp_tool_call_duration_seconds", Help: "MCP tool call latency by tool and result.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"tool", "result"}),
	}
	reg.MustRegister(m.requests, m.latency, m.outcomes, m.refusals, m.deliveries, m.toolCalls, m.toolTime,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if backlog != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "acp_webhook_outbox_backlog", Help: "Order events waiting to be delivered.",
		}, func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			n, err := backlog(ctx)
			if err != nil {
				return -1
			}
			return float64(n)
		}))
	}
	if pool != nil {
		stat := func(name, help string, f func(*pgxpool.Stat) float64) {
			reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help},
				func() float64 { return f(pool.Stat()) }))
		}
		stat("acp_db_pool_connections_total", "Connections open in the pool.", func(s *pgxpool.Stat) float64 { return float64(s.TotalConns()) })
		stat("acp_db_pool_connections_idle", "Idle connections in the pool.", func(s *pgxpool.Stat) float64 { return float64(s.IdleConns()) })
		stat("acp_db_pool_connections_acquired", "Connections in use.", func(s *pgxpool.Stat) float64 { return float64(s.AcquiredConns()) })
		stat("acp_db_pool_connections_max", "Largest pool size.", func(s *pgxpool.Stat) float64 { return float64(s.MaxConns()) })
		stat("acp_db_pool_acquire_wait_seconds_total", "Time spent waiting for a connection.", func(s *pgxpool.Stat) float64 { return s.AcquireDuration().Seconds() })
		stat("acp_db_pool_empty_acquires_total", "Acquires that had to wait for a connection.", func(s *pgxpool.Stat) float64 { return float64(s.EmptyAcquireCount()) })
	}
	return m
}

// WatchSessionCache exports what an instance's session view cache did, read from
// counts on each scrape: the writes that found a kept view current (a round trip
// saved), out of date (a round trip more), and passed over (not used, because most
// views lately were out of date: docs/operations.md, "The session view cache").
func (m *Metrics) WatchSessionCache(counts func() (current, outOfDate, passed uint64)) {
	if m == nil {
		return
	}
	for _, result := range []string{"current", "out_of_date", "passed"} {
		m.registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "acp_session_cache_views_total",
			Help:        "Kept session views that writes found, by what they found: current (a round trip saved), out_of_date (one more), passed (not used while most were out of date).",
			ConstLabels: prometheus.Labels{"result": result},
		}, func() float64 {
			current, outOfDate, passed := counts()
			switch result {
			case "current":
				return float64(current)
			case "out_of_date":
				return float64(outOfDate)
			}
			return float64(passed)
		}))
	}
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	// The server's own middleware compresses responses; compressing here too would send
	// gzip inside gzip.
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{DisableCompression: true})
}

// ObserveRequest counts one HTTP request. route must come from a bounded set (a route
// template or "unmatched"); method is reduced to MethodLabel here, since it is whatever
// the client sent and every distinct label value is a series kept for good.
func (m *Metrics) ObserveRequest(route, method string, status int, d time.Duration) {
	if m == nil {
		return
	}
	s := strconv.Itoa(status)
	method = MethodLabel(method)
	m.requests.WithLabelValues(route, method, s).Inc()
	m.latency.WithLabelValues(route, method, s).Observe(d.Seconds())
}

// MethodLabel is the label value of an HTTP method: the method itself when it is one of
// RFC 9110's (plus PATCH), "other" for anything else a client invents.
func MethodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return method
	}
	return "other"
}

// Results of an MCP tool call counted by ToolCall.
const (
	ToolOK       = "ok"       // answered with a session
	ToolReplayed = "replayed" // answered with the stored result of its idempotency key
	ToolRefused  = "refused"  // answered with an ACP Error the caller can act on (4xx)
	ToolFailed   = "failed"   // answered with a server-side ACP Error (5xx)
)

// ToolCall counts one MCP tool call. tool must come from a bounded set (the served
// tools' names, or "unknown").
func (m *Metrics) ToolCall(tool, result string, d time.Duration) {
	if m == nil {
		return
	}
	m.toolCalls.WithLabelValues(tool, result).Inc()
	m.toolTime.WithLabelValues(tool, result).Observe(d.Seconds())
}

// Outcome counts one checkout outcome.
func (m *Metrics) Outcome(name string) {
	if m == nil {
		return
	}
	m.outcomes.WithLabelValues(name).Inc()
}

// Refusal counts one request refused with code.
func (m *Metrics) Refusal(code string) {
	if m == nil {
		return
	}
	m.refusals.WithLabelValues(code).Inc()
}

// Delivery counts one webhook delivery attempt with result delivered, retry or dead.
func (m *Metrics) Delivery(result string) {
	if m == nil {
		return
	}
	m.deliveries.WithLabelValues(result).Inc()
}
