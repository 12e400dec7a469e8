package config

import (
	"strings"
	"testing"
	"time"
)

func TestLoadRetention(t *testing.T) {
	t.Parallel()
	cfg, err := Load(env(map[string]string{"DATABASE_URL": "postgres://localhost/acp"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CanceledSessionRetention != 30*24*time.Hour || cfg.OrderEventRetention != 30*24*time.Hour ||
		cfg.VaultTokenMaxLifetime != 7*24*time.Hour {
		t.Errorf("retention defaults = %s, %s, %s", cfg.CanceledSessionRetention, cfg.OrderEventRetention, cfg.VaultTokenMaxLifetime)
	}
	cfg, err = Load(env(map[string]string{"DATABASE_URL": "postgres://localhost/acp",
		"CANCELED_SESSION_RETENTION": "48h", "ORDER_EVENT_RETENTION": "2160h", "VAULT_TOKEN_MAX_LIFETIME": "1h"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CanceledSessionRetention != 48*time.Hour || cfg.OrderEventRetention != 90*24*time.Hour || cfg.VaultTokenMaxLifetime != time.Hour {
		t.Errorf("retention = %s, %s, %s", cfg.CanceledSessionRetention, cfg.OrderEventRetention, cfg.VaultTokenMaxLifetime)
	}
	_, err = Load(env(map[string]string{"DATABASE_URL": "postgres://localhost/acp",
		"CANCELED_SESSION_RETENTION": "10m", "ORDER_EVENT_RETENTION": "forever", "VAULT_TOKEN_MAX_LIFETIME": "1s"}))
	for _, want := range []string{"CANCELED_SESSION_RETENTION", "ORDER_EVENT_RETENTION", "VAULT_TOKEN_MAX_LIFETIME"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s: %v", want, err)
		}
	}
}
