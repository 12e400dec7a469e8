package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/agentic-commerce/agentic-commerce-server/internal/pgtest"
)

const securityFingerprintKey = "CARD_FINGERPRINT_KEY=cmd-test-card-fingerprint-key-0123456789"

func TestProductionRefusesToStartOpen(t *testing.T) {
	t.Parallel()
	// Checked before the database is dialed: nothing listens on port 1.
	_, errOut, code := run(t, []string{"ENVIRONMENT=production", "DATABASE_URL=postgres://127.0.0.1:1/none",
		"PORT=0", "API_KEYS=", "METRICS_API_KEY=", "ALLOW_MOCK_GATEWAY=", "PUBLIC_BASE_URL=", securityFingerprintKey}, "serve")
	if code == 0 {
		t.Fatalf("production started without API keys:\n%s", errOut)
	}
	for _, want := range []string{"API_KEYS is required", "PAYMENT_GATEWAY is required", "ALLOW_MOCK_GATEWAY=true", "METRICS_API_KEY is required", "PUBLIC_BASE_URL must be an https URL"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr does not say %q:\n%s", want, errOut)
		}
	}
	if strings.Contains(errOut, "database not reachable") {
		t.Errorf("the configuration was refused only after dialing the database:\n%s", errOut)
	}
}

func TestProductionServesWhenToldAndSaysSo(t *testing.T) {
	t.Parallel()
	const agentKey, metricsKey = "cmd-agent-key-0123456789", "cmd-metrics-key-0123456789"
	srv := startServer(t, "DATABASE_URL="+pgtest.NewDatabase(t), "ENVIRONMENT=production", "API_KEYS=platform:"+agentKey,
		"PAYMENT_GATEWAY=mock", "ALLOW_MOCK_GATEWAY=true", "METRICS_API_KEY="+metricsKey, "PUBLIC_BASE_URL=https://shop.example")
	logs := srv.logs.String()
	for _, want := range []string{`"msg":"security posture"`, `"environment":"production"`, `"authentication":"1 API key(s)"`,
		`"metrics":"METRICS_API_KEY"`, `"payment_gateway":"mock"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("start-up log lacks %s:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, agentKey) || strings.Contains(logs, metricsKey) {
		t.Errorf("a key is in the log")
	}
	if status, body := srv.call(t, http.MethodGet, "/metrics", ""); status != http.StatusUnauthorized {
		t.Errorf("/metrics without its key = %d %s", status, body)
	}
	req, _ := http.NewRequest(http.MethodGet, srv.base+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+metricsKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/metrics with its key = %d", resp.StatusCode)
	}
	if status, _ := srv.call(t, http.MethodGet, "/checkout_sessions/cs_x", ""); status != http.StatusUnauthorized {
		t.Errorf("an ACP endpoint without a key = %d", status)
	}
	srv.stop(t)
}

func TestDevelopmentServesOpenAndWarns(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "DATABASE_URL="+pgtest.NewDatabase(t), "API_KEYS=", "METRICS_API_KEY=", "ENVIRONMENT=",
		"TERMS_OF_USE_URL=", "PRIVACY_POLICY_URL=")
	logs := srv.logs.String()
	for _, want := range []string{`"environment":"development"`, `"level":"WARN","msg":"API_KEYS is not set`,
		"every caller shares one identity", `"msg":"METRICS_API_KEY is not set`,
		`"level":"WARN","msg":"neither TERMS_OF_USE_URL nor PRIVACY_POLICY_URL is set`,
		`"transport":"plain HTTP: TLS must be terminated in front (TLS_CERT_FILE unset)"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("start-up log lacks %s:\n%s", want, logs)
		}
	}
	srv.stop(t)
}

// TestProductionServesStripeAndSaysWhichKey starts production on Stripe (a test key, an
// API base on loopback that is never asked: start-up sends Stripe nothing) and reads in
// the log that Stripe charges, with a test key, and never the key itself.
func TestProductionServesStripeAndSaysWhichKey(t *testing.T) {
	t.Parallel()
	const stripeKey = "sk_test_cmdTest0123456789abcdef"
	srv := startServer(t, "DATABASE_URL="+pgtest.NewDatabase(t), "ENVIRONMENT=production", "API_KEYS=platform:cmd-agent-key-0123456789",
		"METRICS_ENABLED=false", "PUBLIC_BASE_URL=https://shop.example",
		"PAYMENT_GATEWAY=stripe", "STRIPE_SECRET_KEY="+stripeKey, "STRIPE_API_BASE=http://127.0.0.1:1")
	logs := srv.logs.String()
	for _, want := range []string{`"payment_gateway":"stripe"`, `"stripe_key_mode":"test"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("start-up log lacks %s:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, stripeKey) {
		t.Errorf("the Stripe key is in the log")
	}
}

// TestProductionRefusesALiveKeyElsewhere: a live key goes to Stripe's API only.
func TestProductionRefusesALiveKeyElsewhere(t *testing.T) {
	t.Parallel()
	const liveKey = "sk_live_cmdTest0123456789abcdef"
	_, errOut, code := run(t, []string{"ENVIRONMENT=production", "DATABASE_URL=postgres://127.0.0.1:1/none", "PORT=0",
		"API_KEYS=platform:cmd-agent-key-0123456789", "METRICS_ENABLED=false", "PUBLIC_BASE_URL=https://shop.example", securityFingerprintKey,
		"PAYMENT_GATEWAY=stripe", "STRIPE_SECRET_KEY=" + liveKey, "STRIPE_API_BASE=https://stripe.example"}, "serve")
	if code == 0 || !strings.Contains(errOut, "a live key goes to https://api.stripe.com only") {
		t.Errorf("exit %d, stderr:\n%s", code, errOut)
	}
	if strings.Contains(errOut, liveKey) {
		t.Errorf("the refusal shows the key:\n%s", errOut)
	}
}
