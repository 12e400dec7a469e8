package config

import (
	"log/slog"
	"strings"
	"testing"
	"time"
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
		cfg.TermsOfUseURL != "http://localhost:8080/legal/terms-of-use" || cfg.ShopPoliciesURL != "" {
		t.Errorf("defaults = %+v", cfg)
	}
}

func TestLoadValues(t *testing.T) {
	t.Parallel()
	cfg, err := Load(env(map[string]string{
		"DATABASE_URL": "postgres://db/acp", "HOST": "127.0.0.1", "PORT": "9000", "LOG_LEVEL": "debug",
		"MAX_BODY_BYTES": "4096", "SESSION_TTL": "30m", "PUBLIC_BASE_URL": "https://shop.example/",
		"MIGRATE_ON_START": "false", "SHOP_POLICIES_URL": "https://shop.example/policies",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr() != "127.0.0.1:9000" || cfg.LogLevel != slog.LevelDebug || cfg.MaxBodyBytes != 4096 ||
		cfg.SessionTTL != 30*time.Minute || cfg.MigrateOnStart || cfg.PublicBaseURL != "https://shop.example" ||
		cfg.PrivacyPolicyURL != "https://shop.example/legal/privacy-policy" {
		t.Errorf("cfg = %+v", cfg)
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	t.Parallel()
	_, err := Load(env(map[string]string{
		"PORT": "http", "LOG_LEVEL": "loud", "MAX_BODY_BYTES": "-1", "SESSION_TTL": "soon",
		"MIGRATE_ON_START": "maybe", "PUBLIC_BASE_URL": "shop.example", "API_KEYS": "short",
		"SIGNING_SECRET": "short", "RATE_LIMIT_RPS": "-1", "IDEMPOTENCY_TTL": "1h", "WEBHOOK_URL": "http://x", "ADMIN_API_KEYS": "short",
	}))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"DATABASE_URL", "PORT", "LOG_LEVEL", "MAX_BODY_BYTES", "SESSION_TTL", "MIGRATE_ON_START", "PUBLIC_BASE_URL", "API_KEYS",
		"SIGNING_SECRET", "RATE_LIMIT_RPS", "IDEMPOTENCY_TTL", "WEBHOOK_SECRET", "ADMIN_API_KEYS"} {
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
		cfg.IdempotencyTTL != 24*time.Hour || cfg.IdempotencyRecoverAfter != time.Minute {
		t.Errorf("cfg = %+v", cfg)
	}
}
