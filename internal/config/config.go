// Package config reads the server's configuration from the environment.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Config is the whole configuration of the server. Every field comes from one
// environment variable, named in its comment, with the default given there.
type Config struct {
	DatabaseURL    string        // DATABASE_URL (required)
	Host           string        // HOST, default 0.0.0.0
	Port           int           // PORT, default 8080
	LogLevel       slog.Level    // LOG_LEVEL: debug, info (default), warn, error
	MaxBodyBytes   int64         // MAX_BODY_BYTES, default 1048576 (1 MiB)
	SessionTTL     time.Duration // SESSION_TTL, Go duration, default 1h
	PublicBaseURL  string        // PUBLIC_BASE_URL, default http://localhost:PORT
	MigrateOnStart bool          // MIGRATE_ON_START, default true
	// ShutdownTimeout bounds the drain of in-flight requests on SIGTERM/SIGINT
	// (SHUTDOWN_TIMEOUT, default 20s).
	ShutdownTimeout time.Duration
	// Links shown on every session: TERMS_OF_USE_URL and PRIVACY_POLICY_URL (defaults
	// under PUBLIC_BASE_URL/legal/), SHOP_POLICIES_URL (optional).
	TermsOfUseURL    string
	PrivacyPolicyURL string
	ShopPoliciesURL  string
	// CardFingerprintKey keys the HMAC fingerprint of delegated cards
	// (CARD_FINGERPRINT_KEY, at least 32 bytes; unset: no fingerprints are stored).
	CardFingerprintKey []byte
	// APIKeys (API_KEYS: comma-separated "key" or "name:key") turns on Bearer
	// authentication; keys sharing a name are one caller, for rotation.
	APIKeys []APIKey
	// SigningSecrets (SIGNING_SECRET, comma-separated for rotation) turns on request
	// signature checks.
	SigningSecrets [][]byte
	// RateLimit and RateBurst (RATE_LIMIT_RPS, default 100, 0 turns limiting off;
	// RATE_LIMIT_BURST, default 200) bound each caller's request rate.
	RateLimit float64
	RateBurst int
	// CORSAllowedOrigins (CORS_ALLOWED_ORIGINS, comma-separated, or *).
	CORSAllowedOrigins []string
	// RequireAPIVersion (REQUIRE_API_VERSION, default false) refuses requests without
	// an API-Version header.
	RequireAPIVersion bool
	// IdempotencyTTL (IDEMPOTENCY_TTL, default and minimum 24h) is how long keys are kept.
	IdempotencyTTL time.Duration
	// IdempotencyRecoverAfter (IDEMPOTENCY_RECOVER_AFTER, default 60s) is how long a key
	// may stay in flight before its request is presumed dead and the key is taken over.
	IdempotencyRecoverAfter time.Duration
	// WebhookURL (WEBHOOK_URL) receives order events; unset, none are written.
	WebhookURL string
	// WebhookSecret (WEBHOOK_SECRET, at least 32 bytes, required with WEBHOOK_URL) signs
	// them in Merchant-Signature.
	WebhookSecret []byte
	// WebhookTimeout (WEBHOOK_TIMEOUT, default 10s) bounds one delivery attempt.
	WebhookTimeout time.Duration
	// WebhookRetryHorizon (WEBHOOK_RETRY_HORIZON, default 72h) is how long an event is
	// retried before it is marked dead.
	WebhookRetryHorizon time.Duration
	// WebhookWorkers (WEBHOOK_WORKERS, default 2) deliver events in parallel.
	WebhookWorkers int
	// AdminAPIKeys (ADMIN_API_KEYS, comma-separated, at least 16 characters each) open
	// the merchant's order API; unset, it is off.
	AdminAPIKeys []string
	// SweepInterval (SWEEP_INTERVAL, default 1m) is how often expired sessions are
	// canceled and expired vault tokens deleted.
	SweepInterval time.Duration
	// CanceledSessionRetention (CANCELED_SESSION_RETENTION, default 720h, at least 1h)
	// is how long a canceled or expired session is kept before it is deleted.
	CanceledSessionRetention time.Duration
	// OrderEventRetention (ORDER_EVENT_RETENTION, default 720h, at least 1h) is how long
	// a delivered or dead order event is kept before it is deleted.
	OrderEventRetention time.Duration
	// VaultTokenMaxLifetime (VAULT_TOKEN_MAX_LIFETIME, default 168h, at least 5m) caps
	// how long a vault token can pay, whatever expiry its allowance asks for.
	VaultTokenMaxLifetime time.Duration
	// MetricsEnabled (METRICS_ENABLED, default true) serves /metrics.
	MetricsEnabled bool
	// RequestTimeout (REQUEST_TIMEOUT, default 10s) bounds the work of one request.
	RequestTimeout time.Duration
	// DrainDelay (DRAIN_DELAY, default 5s) is how long /ready answers 503 before the
	// server stops accepting connections, so load balancers take it out first.
	DrainDelay time.Duration
}

// APIKey is one configured bearer key and the caller identity it stands for.
type APIKey struct {
	Name string
	Key  string
}

// Load reads the configuration through getenv (os.Getenv in production) and reports every
// invalid value at once.
func Load(getenv func(string) string) (Config, error) {
	var errs []error
	get := func(name, def string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		return def
	}
	cfg := Config{
		DatabaseURL:      get("DATABASE_URL", ""),
		Host:             get("HOST", "0.0.0.0"),
		TermsOfUseURL:    get("TERMS_OF_USE_URL", ""),
		PrivacyPolicyURL: get("PRIVACY_POLICY_URL", ""),
		ShopPoliciesURL:  get("SHOP_POLICIES_URL", ""),
	}
	if cfg.DatabaseURL == "" {
		errs = append(errs, errors.New("DATABASE_URL is required (e.g. postgres://user:pass@localhost:5432/acp)"))
	}

	port, err := strconv.Atoi(get("PORT", "8080"))
	if err != nil || port < 0 || port > 65535 {
		errs = append(errs, fmt.Errorf("PORT must be a TCP port number (0 picks a free one), got %q", getenv("PORT")))
	}
	cfg.Port = port

	if err := cfg.LogLevel.UnmarshalText([]byte(get("LOG_LEVEL", "info"))); err != nil {
		errs = append(errs, fmt.Errorf("LOG_LEVEL must be debug, info, warn or error, got %q", getenv("LOG_LEVEL")))
	}

	maxBody, err := strconv.ParseInt(get("MAX_BODY_BYTES", "1048576"), 10, 64)
	if err != nil || maxBody < 1024 {
		errs = append(errs, fmt.Errorf("MAX_BODY_BYTES must be an integer >= 1024, got %q", getenv("MAX_BODY_BYTES")))
	}
	cfg.MaxBodyBytes = maxBody

	cfg.SessionTTL = duration(get, "SESSION_TTL", "1h", time.Minute, &errs)
	cfg.ShutdownTimeout = duration(get, "SHUTDOWN_TIMEOUT", "20s", time.Second, &errs)

	migrate, err := strconv.ParseBool(get("MIGRATE_ON_START", "true"))
	if err != nil {
		errs = append(errs, fmt.Errorf("MIGRATE_ON_START must be true or false, got %q", getenv("MIGRATE_ON_START")))
	}
	cfg.MigrateOnStart = migrate

	cfg.PublicBaseURL = strings.TrimRight(get("PUBLIC_BASE_URL", fmt.Sprintf("http://localhost:%d", port)), "/")
	checkURL := func(name, v string) {
		if v == "" {
			return
		}
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("%s must be an absolute http(s) URL, got %q", name, v))
		}
	}
	checkURL("PUBLIC_BASE_URL", cfg.PublicBaseURL)
	if cfg.TermsOfUseURL == "" {
		cfg.TermsOfUseURL = cfg.PublicBaseURL + "/legal/terms-of-use"
	}
	if cfg.PrivacyPolicyURL == "" {
		cfg.PrivacyPolicyURL = cfg.PublicBaseURL + "/legal/privacy-policy"
	}
	checkURL("TERMS_OF_USE_URL", cfg.TermsOfUseURL)
	checkURL("PRIVACY_POLICY_URL", cfg.PrivacyPolicyURL)
	checkURL("SHOP_POLICIES_URL", cfg.ShopPoliciesURL)

	if key := getenv("CARD_FINGERPRINT_KEY"); key != "" {
		if len(key) < 32 {
			errs = append(errs, errors.New("CARD_FINGERPRINT_KEY must be at least 32 bytes (e.g. openssl rand -hex 32)"))
		}
		cfg.CardFingerprintKey = []byte(key)
	}

	for _, entry := range splitList(getenv("API_KEYS")) {
		name, key, named := strings.Cut(entry, ":")
		if !named || !isIdentifier(name) {
			name, key = "", entry
		}
		if len(key) < 16 {
			errs = append(errs, errors.New("API_KEYS: every key must be at least 16 characters"))
			continue
		}
		cfg.APIKeys = append(cfg.APIKeys, APIKey{Name: name, Key: key})
	}
	for _, secret := range splitList(getenv("SIGNING_SECRET")) {
		if len(secret) < 32 {
			errs = append(errs, errors.New("SIGNING_SECRET: every secret must be at least 32 bytes"))
			continue
		}
		cfg.SigningSecrets = append(cfg.SigningSecrets, []byte(secret))
	}
	rps, err := strconv.ParseFloat(get("RATE_LIMIT_RPS", "100"), 64)
	if err != nil || rps < 0 {
		errs = append(errs, fmt.Errorf("RATE_LIMIT_RPS must be a number >= 0, got %q", getenv("RATE_LIMIT_RPS")))
	}
	cfg.RateLimit = rps
	burst, err := strconv.Atoi(get("RATE_LIMIT_BURST", "200"))
	if err != nil || burst < 1 {
		errs = append(errs, fmt.Errorf("RATE_LIMIT_BURST must be an integer >= 1, got %q", getenv("RATE_LIMIT_BURST")))
	}
	cfg.RateBurst = burst
	cfg.CORSAllowedOrigins = splitList(getenv("CORS_ALLOWED_ORIGINS"))
	require, err := strconv.ParseBool(get("REQUIRE_API_VERSION", "false"))
	if err != nil {
		errs = append(errs, fmt.Errorf("REQUIRE_API_VERSION must be true or false, got %q", getenv("REQUIRE_API_VERSION")))
	}
	cfg.RequireAPIVersion = require
	cfg.IdempotencyTTL = duration(get, "IDEMPOTENCY_TTL", "24h", 24*time.Hour, &errs)
	cfg.IdempotencyRecoverAfter = duration(get, "IDEMPOTENCY_RECOVER_AFTER", "60s", time.Second, &errs)

	cfg.WebhookURL = get("WEBHOOK_URL", "")
	checkURL("WEBHOOK_URL", cfg.WebhookURL)
	if secret := getenv("WEBHOOK_SECRET"); secret != "" {
		if len(secret) < 32 {
			errs = append(errs, errors.New("WEBHOOK_SECRET must be at least 32 bytes"))
		}
		cfg.WebhookSecret = []byte(secret)
	}
	if cfg.WebhookURL != "" && len(cfg.WebhookSecret) == 0 {
		errs = append(errs, errors.New("WEBHOOK_URL needs WEBHOOK_SECRET: order events are always signed"))
	}
	cfg.WebhookTimeout = duration(get, "WEBHOOK_TIMEOUT", "10s", 100*time.Millisecond, &errs)
	cfg.WebhookRetryHorizon = duration(get, "WEBHOOK_RETRY_HORIZON", "72h", time.Second, &errs)
	workers, err := strconv.Atoi(get("WEBHOOK_WORKERS", "2"))
	if err != nil || workers < 1 || workers > 64 {
		errs = append(errs, fmt.Errorf("WEBHOOK_WORKERS must be 1 to 64, got %q", getenv("WEBHOOK_WORKERS")))
	}
	cfg.WebhookWorkers = workers
	for _, key := range splitList(getenv("ADMIN_API_KEYS")) {
		if len(key) < 16 {
			errs = append(errs, errors.New("ADMIN_API_KEYS: every key must be at least 16 characters"))
			continue
		}
		cfg.AdminAPIKeys = append(cfg.AdminAPIKeys, key)
	}
	cfg.SweepInterval = duration(get, "SWEEP_INTERVAL", "1m", time.Second, &errs)
	cfg.CanceledSessionRetention = duration(get, "CANCELED_SESSION_RETENTION", "720h", time.Hour, &errs)
	cfg.OrderEventRetention = duration(get, "ORDER_EVENT_RETENTION", "720h", time.Hour, &errs)
	cfg.VaultTokenMaxLifetime = duration(get, "VAULT_TOKEN_MAX_LIFETIME", "168h", 5*time.Minute, &errs)
	cfg.DrainDelay = duration(get, "DRAIN_DELAY", "5s", 0, &errs)
	cfg.RequestTimeout = duration(get, "REQUEST_TIMEOUT", "10s", 100*time.Millisecond, &errs)
	metrics, err := strconv.ParseBool(get("METRICS_ENABLED", "true"))
	if err != nil {
		errs = append(errs, fmt.Errorf("METRICS_ENABLED must be true or false, got %q", getenv("METRICS_ENABLED")))
	}
	cfg.MetricsEnabled = metrics
	return cfg, errors.Join(errs...)
}

func duration(get func(string, string) string, name, def string, minimum time.Duration, errs *[]error) time.Duration {
	v := get(name, def)
	d, err := time.ParseDuration(v)
	if err != nil || d < minimum {
		*errs = append(*errs, fmt.Errorf("%s must be a duration of at least %s (e.g. %s), got %q", name, minimum, def, v))
	}
	return d
}

// Addr is the listen address.
func (c Config) Addr() string { return net.JoinHostPort(c.Host, strconv.Itoa(c.Port)) }

// splitList splits a comma-separated variable, dropping empty entries.
func splitList(v string) []string {
	var out []string
	for _, part := range strings.Split(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// isIdentifier reports whether s can name a caller (letters, digits, '_', '-', '.').
func isIdentifier(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
