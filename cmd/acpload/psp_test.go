package main

import (
	"strings"
	"testing"
)

func TestParseMetricsAndPoolWaits(t *testing.T) {
	t.Parallel()
	text := `# HELP acp_db_pool_acquire_wait_seconds_total Time spent waiting for a connection.
# TYPE acp_db_pool_acquire_wait_seconds_total counter
acp_db_pool_acquire_wait_seconds_total 1.5
acp_db_pool_empty_acquires_total 12
acp_db_pool_connections_max 8
acp_http_requests_total{route="/checkout_sessions"} 99
`
	m, err := parseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if m[metricAcquireWait] != 1.5 || m[metricEmptyAcquires] != 12 || m[metricMaxConns] != 8 || len(m) != 3 {
		t.Errorf("parsed %v", m)
	}
	if _, err := parseMetrics(strings.NewReader("x notanumber\n")); err == nil {
		t.Error("an unreadable value was accepted")
	}
	after := map[string]float64{metricAcquireWait: 4, metricEmptyAcquires: 30, metricMaxConns: 8}
	w, note := poolWaits(m, after, nil)
	if w == nil || w.AcquireWaitSeconds != 2.5 || w.EmptyAcquires != 18 || w.MaxConns != 8 || note != "" {
		t.Errorf("pool waits = %+v, %q", w, note)
	}
	if w, note := poolWaits(m, map[string]float64{}, nil); w != nil || !strings.Contains(note, metricAcquireWait) {
		t.Errorf("no pool metrics: %+v, %q", w, note)
	}
}
