package config

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

const (
	testStripeKey = "sk_test_51AbCdEfGhIjKlMnOpQrStUv"
	liveStripeKey = "sk_live_51AbCdEfGhIjKlMnOpQrStUv"
)

// productionServing is a production configuration that serves but for the gateway, with
// kv added.
func productionServing(kv map[string]string) map[string]string {
	all := map[string]string{
		"ENVIRONMENT": "production", "CARD_FINGERPRINT_KEY": "0123456789abcdef0123456789abcdef",
		"API_KEYS": "platform:agent-key-0123456789", "METRICS_API_KEY": "metrics-key-0123456789",
		"PUBLIC_BASE_URL": "https://shop.example",
	}
	for k, v := range kv {
		all[k] = v
	}
	return all
}

func TestLoadStripe(t *testing.T) {
	t.Parallel()
	cfg, err := Load(base(map[string]string{"PAYMENT_GATEWAY": "stripe", "STRIPE_SECRET_KEY": testStripeKey}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PaymentGateway != GatewayStripe || string(cfg.StripeSecretKey) != testStripeKey ||
		cfg.StripeAPIBase != DefaultStripeAPIBase || cfg.StripeTimeout != 30*time.Second || cfg.StripeKeyMode() != "test" {
		t.Errorf("defaults: gateway %q, base %q, timeout %s, mode %q", cfg.PaymentGateway, cfg.StripeAPIBase, cfg.StripeTimeout, cfg.StripeKeyMode())
	}
	for _, w := range cfg.Warnings() {
		if strings.Contains(w, "PAYMENT_GATEWAY") || strings.Contains(w, "STRIPE") {
			t.Errorf("warned about a Stripe test configuration: %s", w)
		}
	}

	cfg, err = Load(base(map[string]string{
		"PAYMENT_GATEWAY": "stripe", "STRIPE_SECRET_KEY": "rk_live_51AbCdEfGhIjKlMnOpQrStUv",
		"STRIPE_API_BASE": "http://127.0.0.1:12111/", "STRIPE_TIMEOUT": "5s",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.StripeAPIBase != "http://127.0.0.1:12111" || cfg.StripeTimeout != 5*time.Second || cfg.StripeKeyMode() != "live" {
		t.Errorf("set: base %q, timeout %s, mode %q", cfg.StripeAPIBase, cfg.StripeTimeout, cfg.StripeKeyMode())
	}
	// Development serves it, and says the live key leaves for another API.
	if w := strings.Join(cfg.Warnings(), "\n"); !strings.Contains(w, "live key sent to") {
		t.Errorf("development warnings do not mention the live key's destination:\n%s", w)
	}
}

func TestLoadRefusesStripeMistakes(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"no key", map[string]string{"PAYMENT_GATEWAY": "stripe"}, "STRIPE_SECRET_KEY is required"},
		{"publishable key", map[string]string{"PAYMENT_GATEWAY": "stripe", "STRIPE_SECRET_KEY": "pk_test_51AbCdEfGhIjKlMnOpQrStUv"}, "must be a Stripe secret or restricted key"},
		{"key of another PSP", map[string]string{"PAYMENT_GATEWAY": "stripe", "STRIPE_SECRET_KEY": "AQEyhmfxK4rLbxdGw0m"}, "must be a Stripe secret or restricted key"},
		{"relative base", map[string]string{"PAYMENT_GATEWAY": "stripe", "STRIPE_SECRET_KEY": testStripeKey, "STRIPE_API_BASE": "api.stripe.com"}, "STRIPE_API_BASE must be an absolute http(s) URL"},
		{"short timeout", map[string]string{"PAYMENT_GATEWAY": "stripe", "STRIPE_SECRET_KEY": testStripeKey, "STRIPE_TIMEOUT": "10ms"}, "STRIPE_TIMEOUT must be a duration of at least 1s"},
		{"key beside the mock", map[string]string{"PAYMENT_GATEWAY": "mock", "STRIPE_SECRET_KEY": testStripeKey}, `STRIPE_SECRET_KEY is set but PAYMENT_GATEWAY is "mock"`},
		{"key without a gateway", map[string]string{"STRIPE_SECRET_KEY": testStripeKey}, "set PAYMENT_GATEWAY=stripe"},
		{"base beside the mock", map[string]string{"STRIPE_API_BASE": "http://127.0.0.1:12111"}, `STRIPE_API_BASE is set but PAYMENT_GATEWAY is "mock"`},
		{"key in production without a gateway", map[string]string{"ENVIRONMENT": "production", "STRIPE_SECRET_KEY": testStripeKey}, "STRIPE_SECRET_KEY is set but PAYMENT_GATEWAY is unset"},
	} {
		_, err := Load(base(c.env))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one saying %q", c.name, err, c.want)
		}
		if key := c.env["STRIPE_SECRET_KEY"]; err != nil && key != "" && strings.Contains(err.Error(), key) {
			t.Errorf("%s: the error shows the key: %v", c.name, err)
		}
	}
}

func TestProductionStripe(t *testing.T) {
	t.Parallel()
	// Unset, production serves no gateway at all: the operator chooses.
	cfg, err := Load(base(productionServing(nil)))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PaymentGateway != "" {
		t.Errorf("production defaults PAYMENT_GATEWAY to %q", cfg.PaymentGateway)
	}
	if err := cfg.CheckServe(); err == nil || !strings.Contains(err.Error(), "PAYMENT_GATEWAY is required: set PAYMENT_GATEWAY=stripe") {
		t.Errorf("production without PAYMENT_GATEWAY: %v", err)
	}

	for _, c := range []struct {
		name   string
		env    map[string]string
		refuse string // "" when production serves it
	}{
		{"live key, Stripe's API", map[string]string{"STRIPE_SECRET_KEY": liveStripeKey}, ""},
		{"test key, stripe-mock on loopback", map[string]string{"STRIPE_SECRET_KEY": testStripeKey, "STRIPE_API_BASE": "http://127.0.0.1:12111"}, ""},
		{"test key, localhost", map[string]string{"STRIPE_SECRET_KEY": testStripeKey, "STRIPE_API_BASE": "http://localhost:12111"}, ""},
		{"test key, plain HTTP elsewhere", map[string]string{"STRIPE_SECRET_KEY": testStripeKey, "STRIPE_API_BASE": "http://stripe-mock:12111"}, "STRIPE_API_BASE must be https (or a loopback address)"},
		{"live key, another API", map[string]string{"STRIPE_SECRET_KEY": liveStripeKey, "STRIPE_API_BASE": "https://stripe.example"}, "a live key goes to https://api.stripe.com only"},
		{"live key, stripe-mock", map[string]string{"STRIPE_SECRET_KEY": liveStripeKey, "STRIPE_API_BASE": "http://127.0.0.1:12111"}, "a live key goes to https://api.stripe.com only"},
	} {
		c.env["PAYMENT_GATEWAY"] = "stripe"
		cfg, err := Load(base(productionServing(c.env)))
		if err != nil {
			t.Errorf("%s: load: %v", c.name, err)
			continue
		}
		err = cfg.CheckServe()
		switch {
		case c.refuse == "" && err != nil:
			t.Errorf("%s: refused: %v", c.name, err)
		case c.refuse != "" && (err == nil || !strings.Contains(err.Error(), c.refuse)):
			t.Errorf("%s: error %v, want one saying %q", c.name, err, c.refuse)
		case err != nil && strings.Contains(err.Error(), c.env["STRIPE_SECRET_KEY"]):
			t.Errorf("%s: the error shows the key: %v", c.name, err)
		}
	}
}

// TestSecretStringNeverShows formats a configuration holding a Stripe key every way a
// log line or an error could, and finds the key in none.
func TestSecretStringNeverShows(t *testing.T) {
	t.Parallel()
	cfg, err := Load(base(map[string]string{"PAYMENT_GATEWAY": "stripe", "STRIPE_SECRET_KEY": testStripeKey}))
	if err != nil {
		t.Fatal(err)
	}
	var logged strings.Builder
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", slog.Any("stripe_key", cfg.StripeSecretKey))
	for _, shown := range []string{
		fmt.Sprint(cfg), fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprintf("%s %q", cfg.StripeSecretKey, cfg.StripeSecretKey), logged.String(),
	} {
		if strings.Contains(shown, testStripeKey) || !strings.Contains(shown, "[redacted]") {
			t.Errorf("the key shows, or its placeholder does not: %s", shown)
		}
	}
	if string(cfg.StripeSecretKey) != testStripeKey {
		t.Errorf("the key itself is lost")
	}
}
