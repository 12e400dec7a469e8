package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
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
	if m[metricAcquireWait] != 1.5 || m[metricEmptyAcquires] != 12 || m[metricMaxConns] != 8 ||
		m[`acp_http_requests_total{route="/checkout_sessions"}`] != 99 || len(m) != 4 {
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

// TestChoosePSPPaymentFallsBackOnlyWithoutTheSPTHandler asks three builds: one offering
// the SPT handler, one in 2026-04-17 without it, one without 2026-04-17 at all.
func TestChoosePSPPaymentFallsBackOnlyWithoutTheSPTHandler(t *testing.T) {
	t.Parallel()
	build := func(status int, body string) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("API-Version") != sptAPIVersion || r.Header.Get("Idempotency-Key") == "" {
				http.Error(w, `{"code":"missing_headers"}`, http.StatusBadRequest)
				return
			}
			w.WriteHeader(status)
			_, _ = w.Write([]byte(body))
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	const handlers = `{"id":"cs_1","capabilities":{"payment":{"handlers":[{"id":"card_tokenized"},{"id":"card_psp_test"}%s]}}}`
	for _, tc := range []struct {
		name    string
		srv     *httptest.Server
		want    string
		because string
	}{
		{"SPT handler offered", build(http.StatusCreated, fmt.Sprintf(handlers, `,{"id":"card_stripe_spt"}`)), sptAPIVersion, ""},
		{"no SPT handler", build(http.StatusCreated, fmt.Sprintf(handlers, "")), apiVersion, "offers no card_stripe_spt"},
		{"no 2026-04-17", build(http.StatusBadRequest, `{"code":"unsupported_api_version"}`), apiVersion, "unsupported_api_version"},
	} {
		payment, why := choosePSPPayment(t.Context(), http.DefaultClient, tc.srv.URL)
		if payment.apiVersion != tc.want || (tc.because == "") != (why == "") || !strings.Contains(why, tc.because) {
			t.Errorf("%s: paying in %s, because %q; want %s, because %q", tc.name, payment.apiVersion, why, tc.want, tc.because)
		}
	}
}

func TestSPTCompletionAndToken(t *testing.T) {
	t.Parallel()
	var body struct {
		PaymentData struct {
			HandlerID  string `json:"handler_id"`
			Instrument struct {
				Type       string `json:"type"`
				Credential struct {
					Type, Token string
				} `json:"credential"`
			} `json:"instrument"`
		} `json:"payment_data"`
	}
	a := &agent{id: 3, run: "r1", seq: 7}
	spt := a.sharedPaymentToken()
	if err := json.Unmarshal([]byte(sptCompleteBody(spt)), &body); err != nil {
		t.Fatal(err)
	}
	pd := body.PaymentData
	if pd.HandlerID != sptHandler || pd.Instrument.Type != "card" || pd.Instrument.Credential.Type != "spt" || pd.Instrument.Credential.Token != spt {
		t.Errorf("completion = %+v", pd)
	}
	a.seq++
	if !strings.HasPrefix(spt, "spt_") || strings.ContainsAny(spt, "-/ ") || a.sharedPaymentToken() == spt {
		t.Errorf("token %q: want spt_, letters, digits and _ only, fresh for every flow", spt)
	}
	for _, b := range []string{sptCreateBody, sptUpdateBody} {
		if !json.Valid([]byte(b)) {
			t.Errorf("not JSON: %s", b)
		}
	}
}
