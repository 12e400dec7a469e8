package config

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/testkit"
)

func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := Load(env(map[string]string{"DATABASE_URL": "postgres://localhost/acp"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr() != "0.0.0.0:8080" || cfg.LogLevel != slog.LevelInfo || cfg.MaxBodyBytes != 1<<20 ||
		cfg.SessionTTL != time.Hour || !cfg.MigrateOnStart || cfg.PublicBaseURL != "http://localhost:8080" ||
		cfg.TermsOfUseURL != "" || cfg.PrivacyPolicyURL != "" || cfg.ShopPoliciesURL != "" ||
		cfg.TLSCertFile != "" || cfg.TLSKeyFile != "" || cfg.PaymentAttemptTimeout != time.Minute ||
		cfg.PaymentRecoveryInterval != 30*time.Second || cfg.PaymentInDoubtAfter != 24*time.Hour || cfg.SessionCacheSize != DefaultSessionCacheSize {
		t.Errorf("defaults = %+v", cfg)
	}
	// No link points at a page nobody serves; the missing terms are warned about.
	if w := strings.Join(cfg.Warnings(), "\n"); !strings.Contains(w, "neither TERMS_OF_USE_URL nor PRIVACY_POLICY_URL is set") {
		t.Errorf("warnings without links:\n%s", w)
	}
}

func TestLoadValues(t *testing.T) {
	t.Parallel()
	cfg, err := Load(env(map[string]string{
		"DATABASE_URL": "postgres://db/acp", "HOST": "127.0.0.1", "PORT": "9000", "LOG_LEVEL": "debug",
		"MAX_BODY_BYTES": "4096", "SESSION_TTL": "30m", "PUBLIC_BASE_URL": "https://shop.example/",
		"MIGRATE_ON_START": "false", "SHOP_POLICIES_URL": "https://shop.example/policies",
		"TERMS_OF_USE_URL": "https://shop.example/terms", "PRIVACY_POLICY_URL": "https://shop.example/privacy",
		"SESSION_CACHE_SIZE": "5000",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr() != "127.0.0.1:9000" || cfg.LogLevel != slog.LevelDebug || cfg.MaxBodyBytes != 4096 ||
		cfg.SessionTTL != 30*time.Minute || cfg.MigrateOnStart || cfg.PublicBaseURL != "https://shop.example" ||
		cfg.TermsOfUseURL != "https://shop.example/terms" || cfg.PrivacyPolicyURL != "https://shop.example/privacy" ||
		cfg.ShopPoliciesURL != "https://shop.example/policies" || cfg.SessionCacheSize != 5000 {
		t.Errorf("cfg = %+v", cfg)
	}
	for _, w := range cfg.Warnings() {
		if strings.Contains(w, "TERMS_OF_USE_URL") {
			t.Errorf("warned about links that are set: %s", w)
		}
	}
	// One link is enough not to warn.
	cfg.TermsOfUseURL = ""
	for _, w := range cfg.Warnings() {
		if strings.Contains(w, "TERMS_OF_USE_URL") {
			t.Errorf("warned with a privacy policy link set: %s", w)
		}
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	t.Parallel()
	_, err := Load(env(map[string]string{
		"PORT": "http", "LOG_LEVEL": "loud", "MAX_BODY_BYTES": "-1", "SESSION_TTL": "soon",
		"MIGRATE_ON_START": "maybe", "PUBLIC_BASE_URL": "shop.example", "API_KEYS": "short",
		"SIGNING_SECRET": "short", "RATE_LIMIT_RPS": "-1", "IDEMPOTENCY_TTL": "1h", "WEBHOOK_URL": "http://x", "ADMIN_API_KEYS": "short",
		"SESSION_CACHE_SIZE": "-1",
	}))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"DATABASE_URL", "PORT", "LOG_LEVEL", "MAX_BODY_BYTES", "SESSION_TTL", "MIGRATE_ON_START", "PUBLIC_BASE_URL", "API_KEYS",
		"SIGNING_SECRET", "RATE_LIMIT_RPS", "IDEMPOTENCY_TTL", "WEBHOOK_SECRET", "ADMIN_API_KEYS", "SESSION_CACHE_SIZE"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s:\n%v", want, err)
		}
	}
}

func TestLoadSecurity(t *testing.T) {
	t.Parallel()
	cfg, err := Load(env(map[string]string{
		"DATABASE_URL":         "postgres://db/acp",
		"API_KEYS":             "platform_a:aaaaaaaaaaaaaaaa1, platform_a:aaaaaaaaaaaaaaaa2,bbbbbbbbbbbbbbbbbbbb",
		"SIGNING_SECRET":       "0123456789abcdef0123456789abcdef,fedcba9876543210fedcba9876543210",
		"CORS_ALLOWED_ORIGINS": "https://a.example, https://b.example", "REQUIRE_API_VERSION": "true",
		"RATE_LIMIT_RPS": "0",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := []APIKey{{"platform_a", "aaaaaaaaaaaaaaaa1"}, {"platform_a", "aaaaaaaaaaaaaaaa2"}, {"", "bbbbbbbbbbbbbbbbbbbb"}}
	if len(cfg.APIKeys) != 3 || cfg.APIKeys[0] != want[0] || cfg.APIKeys[1] != want[1] || cfg.APIKeys[2] != want[2] {
		t.Errorf("APIKeys = %+v", cfg.APIKeys)
	}
	if len(cfg.SigningSecrets) != 2 || len(cfg.CORSAllowedOrigins) != 2 || !cfg.RequireAPIVersion || cfg.RateLimit != 0 ||
		cfg.IdempotencyTTL != 24*time.Hour || cfg.IdempotencyRecoverAfter != time.Minute || cfg.TimerSlack != time.Millisecond {
		t.Errorf("cfg = %+v", cfg)
	}
}

// base is a valid configuration to add the variables under test to.
func base(kv map[string]string) func(string) string {
	all := map[string]string{"DATABASE_URL": "postgres://db/acp"}
	for k, v := range kv {
		all[k] = v
	}
	return env(all)
}

func TestLoadRefusesContradictions(t *testing.T) {
	t.Parallel()
	const key, other = "shared-key-0123456789", "other-key-0123456789"
	for _, c := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"agent and admin key", map[string]string{"API_KEYS": "a:" + key, "ADMIN_API_KEYS": key}, "API_KEYS and ADMIN_API_KEYS share a key"},
		{"agent and metrics key", map[string]string{"API_KEYS": key, "METRICS_API_KEY": key}, "API_KEYS and METRICS_API_KEY share a key"},
		{"admin and metrics key", map[string]string{"ADMIN_API_KEYS": key, "METRICS_API_KEY": other + "," + key}, "ADMIN_API_KEYS and METRICS_API_KEY share a key"},
		{"one key, two names", map[string]string{"API_KEYS": "a:" + key + ",b:" + key}, "API_KEYS lists the same key twice"},
		{"name posing as a derived identity", map[string]string{"API_KEYS": "key_0123456789abcdef0123456789abcdef:" + key}, "form of a derived key identity"},
		{"recovery before the request timeout", map[string]string{"IDEMPOTENCY_RECOVER_AFTER": "5s", "REQUEST_TIMEOUT": "10s"}, "IDEMPOTENCY_RECOVER_AFTER (5s) must not be shorter than REQUEST_TIMEOUT (10s)"},
		{"default timeout, short recovery", map[string]string{"IDEMPOTENCY_RECOVER_AFTER": "1s"}, "REQUEST_TIMEOUT"},
		{"payment attempt stale before the request timeout", map[string]string{"PAYMENT_ATTEMPT_TIMEOUT": "5s", "REQUEST_TIMEOUT": "10s"}, "PAYMENT_ATTEMPT_TIMEOUT (5s) must not be shorter than REQUEST_TIMEOUT (10s)"},
		{"timer slack above the bound", map[string]string{"TIMER_SLACK": "11ms"}, "TIMER_SLACK must be at most 10ms"},
		{"negative timer slack", map[string]string{"TIMER_SLACK": "-1ms"}, "TIMER_SLACK must be a duration of at least 0s"},
		{"trust everyone", map[string]string{"TRUSTED_PROXIES": "10.0.0.1, 0.0.0.0/0"}, "would believe every client"},
		{"bad proxy", map[string]string{"TRUSTED_PROXIES": "proxy.local"}, "TRUSTED_PROXIES must list"},
		{"short metrics key", map[string]string{"METRICS_API_KEY": "short"}, "METRICS_API_KEY: every key must be at least 16"},
		{"unknown environment", map[string]string{"ENVIRONMENT": "prod"}, "ENVIRONMENT must be development or production"},
		{"unknown gateway", map[string]string{"PAYMENT_GATEWAY": "adyen"}, "PAYMENT_GATEWAY must be mock or stripe"},
		{"not a boolean", map[string]string{"ALLOW_MOCK_GATEWAY": "yes please"}, "ALLOW_MOCK_GATEWAY must be true or false"},
	} {
		_, err := Load(base(c.env))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one saying %q", c.name, err, c.want)
		}
		if err != nil && (strings.Contains(err.Error(), key) || strings.Contains(err.Error(), other)) {
			t.Errorf("%s: the error shows a key: %v", c.name, err)
		}
	}

	// What is not contradictory stays accepted: a rotation (two keys, one name), the old
	// 64-bit identity as a name (to keep a bare key's sessions), recovery = timeout.
	cfg, err := Load(base(map[string]string{
		"API_KEYS": "a:" + key + ",a:" + other + ",key_0123456789abcdef:bare-but-named-0123456789", "ADMIN_API_KEYS": "admin-key-0123456789",
		"METRICS_API_KEY": "metrics-key-0123456789", "IDEMPOTENCY_RECOVER_AFTER": "10s", "REQUEST_TIMEOUT": "10s",
		"TRUSTED_PROXIES": "10.0.0.1, 192.168.0.0/16, ::ffff:10.0.0.2, fd00::/8",
	}))
	if err != nil {
		t.Fatal(err)
	}
	var proxies []string
	for _, p := range cfg.TrustedProxies {
		proxies = append(proxies, p.String())
	}
	if got := strings.Join(proxies, " "); got != "10.0.0.1/32 192.168.0.0/16 10.0.0.2/32 fd00::/8" {
		t.Errorf("TrustedProxies = %s", got)
	}
	if len(cfg.MetricsAPIKeys) != 1 || cfg.Environment != Development || cfg.PaymentGateway != GatewayMock || cfg.AllowMockGateway {
		t.Errorf("cfg = %+v", cfg)
	}
}

func TestProductionRefusesToServeOpen(t *testing.T) {
	t.Parallel()
	fingerprint := "0123456789abcdef0123456789abcdef"
	cfg, err := Load(base(map[string]string{"ENVIRONMENT": "production", "CARD_FINGERPRINT_KEY": fingerprint}))
	if err != nil {
		t.Fatal(err) // loading is fine: migrate and the CLI need no API keys
	}
	err = cfg.CheckServe()
	if err == nil {
		t.Fatal("production serves open")
	}
	for _, want := range []string{"API_KEYS is required", "PAYMENT_GATEWAY is required", "ALLOW_MOCK_GATEWAY=true", "METRICS_API_KEY is required", "PUBLIC_BASE_URL must be an https URL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}

	// Told otherwise, with keys, it serves.
	cfg, err = Load(base(map[string]string{
		"ENVIRONMENT": "production", "CARD_FINGERPRINT_KEY": fingerprint, "API_KEYS": "platform:agent-key-0123456789",
		"PAYMENT_GATEWAY": "mock", "ALLOW_MOCK_GATEWAY": "true", "METRICS_API_KEY": "metrics-key-0123456789", "PUBLIC_BASE_URL": "https://shop.example",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.CheckServe(); err != nil {
		t.Errorf("a complete production configuration: %v", err)
	}
	// Metrics turned off need no key.
	cfg.MetricsEnabled, cfg.MetricsAPIKeys = false, nil
	if err := cfg.CheckServe(); err != nil {
		t.Errorf("production without metrics: %v", err)
	}

	// Development serves the same open configuration, and says what is unsafe.
	cfg, err = Load(base(map[string]string{"CARD_FINGERPRINT_KEY": fingerprint}))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.CheckServe(); err != nil {
		t.Errorf("development: %v", err)
	}
	warnings := strings.Join(cfg.Warnings(), "\n")
	for _, want := range []string{"API_KEYS is not set", "every caller shares one identity", "PAYMENT_GATEWAY is mock", "/metrics is open"} {
		if !strings.Contains(warnings, want) {
			t.Errorf("development warnings do not say %q:\n%s", want, warnings)
		}
	}

	// Serving needs CARD_FINGERPRINT_KEY in every environment.
	cfg.CardFingerprintKey = nil
	if err := cfg.CheckServe(); err == nil || !strings.Contains(err.Error(), "CARD_FINGERPRINT_KEY is required") {
		t.Errorf("no fingerprint key: %v", err)
	}
}

func TestLoadWebhookAPIVersion(t *testing.T) {
	t.Parallel()
	base := map[string]string{"DATABASE_URL": "postgres://db/acp"}
	cfg, err := Load(env(base))
	if err != nil || cfg.WebhookAPIVersion != "2025-09-29" {
		t.Errorf("default WebhookAPIVersion = %q, %v; want 2025-09-29 (the events sent before the setting)", cfg.WebhookAPIVersion, err)
	}
	for _, v := range []string{"2025-09-29", "2026-04-17"} {
		base["WEBHOOK_API_VERSION"] = " " + v + " "
		if cfg, err := Load(env(base)); err != nil || cfg.WebhookAPIVersion != v {
			t.Errorf("WEBHOOK_API_VERSION=%s: WebhookAPIVersion = %q, %v", v, cfg.WebhookAPIVersion, err)
		}
	}
	for _, bad := range []string{"2099-01-01", "2025-09-29x", "latest"} {
		base["WEBHOOK_API_VERSION"] = bad
		_, err := Load(env(base))
		if err == nil {
			t.Errorf("WEBHOOK_API_VERSION=%s accepted", bad)
			continue
		}
		// The error names the setting, the value and every supported version.
		for _, want := range []string{"WEBHOOK_API_VERSION", `"` + bad + `"`, "2025-09-29", "2026-04-17"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error for %s does not mention %s: %v", bad, want, err)
			}
		}
	}
}

func TestTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile, _ := testkit.SelfSignedCert(t)
	const fingerprint = "0123456789abcdef0123456789abcdef"

	// Half a pair is refused when loading, for every command.
	for _, kv := range []map[string]string{{"TLS_CERT_FILE": certFile}, {"TLS_KEY_FILE": keyFile}} {
		if _, err := Load(base(kv)); err == nil || !strings.Contains(err.Error(), "TLS_CERT_FILE and TLS_KEY_FILE go together") {
			t.Errorf("%v: error %v", kv, err)
		}
	}

	// A pair that cannot be read or does not load is refused before serving, naming both.
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	otherCert, _, _ := testkit.SelfSignedCert(t)
	for name, pair := range map[string][2]string{
		"missing cert":               {filepath.Join(dir, "none.pem"), keyFile},
		"missing key":                {certFile, filepath.Join(dir, "none.pem")},
		"not PEM":                    {garbage, keyFile},
		"key of another certificate": {otherCert, keyFile},
	} {
		cfg, err := Load(base(map[string]string{"TLS_CERT_FILE": pair[0], "TLS_KEY_FILE": pair[1], "CARD_FINGERPRINT_KEY": fingerprint}))
		if err != nil {
			t.Fatalf("%s: Load: %v (the files are checked when serving, not by migrate or catalog)", name, err)
		}
		err = cfg.CheckServe()
		if err == nil || !strings.Contains(err.Error(), "TLS_CERT_FILE") || !strings.Contains(err.Error(), "TLS_KEY_FILE") {
			t.Errorf("%s: CheckServe = %v", name, err)
		}
	}

	// A good pair serves; TLS is optional, in production too (a proxy may terminate it).
	cfg, err := Load(base(map[string]string{"TLS_CERT_FILE": certFile, "TLS_KEY_FILE": keyFile, "CARD_FINGERPRINT_KEY": fingerprint}))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.CheckServe(); err != nil {
		t.Errorf("a good pair: %v", err)
	}
	if cert, err := cfg.TLSCertificate(); err != nil || cert == nil {
		t.Errorf("TLSCertificate = %v, %v", cert, err)
	}
	cfg, err = Load(base(map[string]string{
		"ENVIRONMENT": "production", "CARD_FINGERPRINT_KEY": fingerprint, "API_KEYS": "platform:agent-key-0123456789",
		"PAYMENT_GATEWAY": "mock", "ALLOW_MOCK_GATEWAY": "true", "METRICS_API_KEY": "metrics-key-0123456789", "PUBLIC_BASE_URL": "https://shop.example",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.CheckServe(); err != nil {
		t.Errorf("production without TLS_CERT_FILE: %v", err)
	}
	if cert, err := cfg.TLSCertificate(); err != nil || cert != nil {
		t.Errorf("TLSCertificate without TLS = %v, %v", cert, err)
	}
}

// TestMarketingConsentOptions: none by default; a valid JSON list is read as given;
// what an agent could not be shown (or a typo) stops the start with a reason.
func TestMarketingConsentOptions(t *testing.T) {
	t.Parallel()
	load := func(v string) ([]checkout.ConsentOption, error) {
		cfg, err := Load(env(map[string]string{"DATABASE_URL": "postgres://db/acp", "MARKETING_CONSENT_OPTIONS": v}))
		return cfg.MarketingConsentOptions, err
	}
	if opts, err := load(""); err != nil || opts != nil {
		t.Errorf("default: %v, %v; want none", opts, err)
	}
	opts, err := load(`[{"channel":"email","display_text":"News, offers","privacy_policy_url":"https://shop.example/privacy"},
		{"channel":"sms","display_text":"Deals by text","privacy_policy_url":"https://shop.example/privacy"}]`)
	want := []checkout.ConsentOption{
		{Channel: "email", DisplayText: "News, offers", PrivacyPolicyURL: "https://shop.example/privacy"},
		{Channel: "sms", DisplayText: "Deals by text", PrivacyPolicyURL: "https://shop.example/privacy"},
	}
	if err != nil || !slices.Equal(opts, want) {
		t.Errorf("options = %+v, %v; want %+v", opts, err, want)
	}
	for _, bad := range []struct{ value, reason string }{
		{`email|News|https://shop.example/privacy`, "JSON array"},
		{`[{"channel":"push","display_text":"x","privacy_policy_url":"https://shop.example/p"}]`, "email, sms or whatsapp"},
		{`[{"channel":"email","display_text":"x","privacy_policy_url":"https://shop.example/p"},{"channel":"email","display_text":"y","privacy_policy_url":"https://shop.example/p"}]`, "offered twice"},
		{`[{"channel":"email","display_text":" ","privacy_policy_url":"https://shop.example/p"}]`, "display_text"},
		{`[{"channel":"email","display_text":"x","privacy_policy_url":"/privacy"}]`, "absolute http(s) URL"},
		{`[{"channel":"email","display_text":"x","privacy_url":"https://shop.example/p"}]`, "unknown field"},
		{`[] []`, "one JSON array"},
	} {
		if _, err := load(bad.value); err == nil || !strings.Contains(err.Error(), "MARKETING_CONSENT_OPTIONS") || !strings.Contains(err.Error(), bad.reason) {
			t.Errorf("%s: err = %v, want one saying %q", bad.value, err, bad.reason)
		}
	}
}
