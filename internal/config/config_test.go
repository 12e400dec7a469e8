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
		"MIGRATE_ON_START": "maybe", "PUBLIC_BASE_URL": "shop.example", "API_KEYS": "k1",
	}))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"DATABASE_URL", "PORT", "LOG_LEVEL", "MAX_BODY_BYTES", "SESSION_TTL", "MIGRATE_ON_START", "PUBLIC_BASE_URL", "API_KEYS"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s:\n%v", want, err)
		}
	}
}
