// Package config reads the server's configuration from the environment.
package config

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/webhook"
)

// Config is the whole configuration of the server. Every field comes from one
// environment variable, named in its comment, with the default given there.
type Config struct {
	// Environment (ENVIRONMENT: development, the default, or production) decides whether
	// unsafe settings are refused (production) or only warned about; see CheckServe.
	Environment  string
	DatabaseURL  string        // DATABASE_URL (required)
	Host         string        // HOST, default 0.0.0.0
	Port         int           // PORT, default 8080
	LogLevel     slog.Level    // LOG_LEVEL: debug, info (default), warn, error
	MaxBodyBytes int64         // MAX_BODY_BYTES, default 1048576 (1 MiB)
	SessionTTL   time.Duration // SESSION_TTL, Go duration, default 1h
	// SessionCacheSize (SESSION_CACHE_SIZE, default DefaultSessionCacheSize; 0: off) is
	// how many sessions' views, and as many vault tokens, one instance keeps in memory
	// between a session's writes, so that its next update or completion need not read
	// them again. It pays on one instance, or behind a load balancer that sends a
	// session's requests to one instance; behind one that does not, the cache finds its
	// views mostly out of date and stops using them (docs/operations.md, "The session
	// view cache").
	SessionCacheSize int
	PublicBaseURL    string // PUBLIC_BASE_URL, default http://localhost:PORT
	MigrateOnStart   bool   // MIGRATE_ON_START, default true
	// ShutdownTimeout bounds the drain of in-flight requests on SIGTERM/SIGINT
	// (SHUTDOWN_TIMEOUT, default 20s).
	ShutdownTimeout time.Duration
	// TimerSlack (TIMER_SLACK, default 1ms, at most 10ms; 0 leaves the process as it
	// was started) is the Linux timer slack serve runs with: how late the kernel may wake
	// a sleeping thread to serve several wake-ups at once. The Go runtime's monitor
	// thread sleeps 20 µs at a time while the server is busy (golang/go#18236), and the
	// default slack of 50 µs wakes it thousands of times a second.
	TimerSlack time.Duration
	// TLSCertFile and TLSKeyFile (TLS_CERT_FILE, TLS_KEY_FILE: PEM files, both or
	// neither) make serve speak HTTPS with TLS 1.3 at least; unset, it speaks plain HTTP
	// and TLS is terminated by a proxy or load balancer in front. Read once at start: a
	// renewed certificate is picked up by a restart.
	TLSCertFile string
	TLSKeyFile  string
	// Links shown on every session, each only when set and only in the API versions
	// that know its type: TERMS_OF_USE_URL, PRIVACY_POLICY_URL, SHOP_POLICIES_URL
	// (2025-09-29 only), RETURN_POLICY_URL, SHIPPING_POLICY_URL, CONTACT_US_URL,
	// ABOUT_US_URL, FAQ_URL, SUPPORT_URL (2026-04-17 only). There is no default: the
	// server serves no such pages itself.
	TermsOfUseURL     string
	PrivacyPolicyURL  string
	ShopPoliciesURL   string
	ReturnPolicyURL   string
	ShippingPolicyURL string
	ContactUsURL      string
	AboutUsURL        string
	FAQURL            string
	SupportURL        string
	// MerchantID (MERCHANT_ID, default "merchant") is the merchant's id at the payment
	// service provider: 2026-04-17 sessions show it in every payment handler's config,
	// and agents copy it into the allowance of delegate_payment.
	MerchantID string
	// MarketingConsentOptions (MARKETING_CONSENT_OPTIONS: a JSON array of {channel,
	// display_text, privacy_policy_url}, channel email, sms or whatsapp; default none)
	// are the marketing channels 2026-04-17 sessions offer the buyer (MC-RFC).
	MarketingConsentOptions []checkout.ConsentOption
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
	// WebhookAPIVersion (WEBHOOK_API_VERSION, default 2025-09-29; 2026-04-17 sends the
	// full Order) is the ACP version event bodies are encoded in when they are sent;
	// only versions with an encoder are accepted.
	WebhookAPIVersion string
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
	// MetricsAPIKeys (METRICS_API_KEY, comma-separated for rotation, at least 16
	// characters each) are the bearer keys /metrics requires; unset, /metrics is open.
	MetricsAPIKeys []string
	// TrustedProxies (TRUSTED_PROXIES, comma-separated IPs or CIDRs) are the peers whose
	// X-Forwarded-For is believed for the client address; unset, it is ignored.
	TrustedProxies []netip.Prefix
	// PaymentGateway (PAYMENT_GATEWAY: mock or stripe) charges PSP tokens. Development
	// defaults to mock; production has no default ("" when unset) and CheckServe
	// refuses to serve until the operator chooses.
	PaymentGateway string
	// StripeSecretKey (STRIPE_SECRET_KEY: sk_test_, sk_live_, rk_test_ or rk_live_;
	// required with PAYMENT_GATEWAY=stripe) is the merchant's Stripe API key. It is
	// never logged; StripeKeyMode says what may be.
	StripeSecretKey SecretString
	// StripeAPIBase (STRIPE_API_BASE, default https://api.stripe.com) is where Stripe
	// requests go: stripe-mock or a test server in development. Production requires
	// https unless the host is a loopback address, and Stripe's own API for a live key.
	StripeAPIBase string
	// StripeTimeout (STRIPE_TIMEOUT, default 30s, at least 1s) bounds each HTTP attempt
	// of a Stripe request; the request's own deadline (REQUEST_TIMEOUT) bounds the call.
	StripeTimeout time.Duration
	// AllowMockGateway (ALLOW_MOCK_GATEWAY, default false) lets production serve with
	// the mock gateway, which accepts test tokens and moves no money.
	AllowMockGateway bool
	// RequestTimeout (REQUEST_TIMEOUT, default 10s) bounds the work of one request.
	RequestTimeout time.Duration
	// PaymentAttemptTimeout (PAYMENT_ATTEMPT_TIMEOUT, default 60s, not shorter than
	// REQUEST_TIMEOUT) is how long a PSP charge may run before its payment attempt is
	// stale: another completion or the recovery job may then ask the PSP again with
	// the same idempotency key.
	PaymentAttemptTimeout time.Duration
	// PaymentRecoveryInterval (PAYMENT_RECOVERY_INTERVAL, default 30s) is how often the
	// recovery job looks for stale payment attempts and refunds.
	PaymentRecoveryInterval time.Duration
	// PaymentInDoubtAfter (PAYMENT_IN_DOUBT_AFTER, default 24h, Stripe's idempotency
	// key retention) is how long the recovery job asks the PSP again about a charge
	// before it marks the attempt in_doubt for the operator.
	PaymentInDoubtAfter time.Duration
	// DrainDelay (DRAIN_DELAY, default 5s) is how long /ready answers 503 before the
	// server stops accepting connections, so load balancers take it out first.
	DrainDelay time.Duration
}

// SecretString is a secret setting: it prints, formats and logs as [redacted], so that
// no log line or error showing the configuration shows it. string(s) is the secret.
type SecretString string

// String implements fmt.Stringer.
func (s SecretString) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// GoString implements fmt.GoStringer, for %#v.
func (s SecretString) GoString() string { return `"` + s.String() + `"` }

// LogValue implements slog.LogValuer.
func (s SecretString) LogValue() slog.Value { return slog.StringValue(s.String()) }

// APIKey is one configured bearer key and the caller identity it stands for.
type APIKey struct {
	Name string
	Key  string
}

// DefaultSessionCacheSize is SESSION_CACHE_SIZE's default: about 16 MiB when full of
// sessions of one line (a kept view takes 1.6 KiB; docs/operations.md).
const DefaultSessionCacheSize = 10_000

// maxSessionCacheSize bounds SESSION_CACHE_SIZE: a kept view takes a few KiB, so a
// million of them would be gigabytes.
const maxSessionCacheSize = 1_000_000

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
		DatabaseURL:       get("DATABASE_URL", ""),
		Host:              get("HOST", "0.0.0.0"),
		TermsOfUseURL:     get("TERMS_OF_USE_URL", ""),
		PrivacyPolicyURL:  get("PRIVACY_POLICY_URL", ""),
		ShopPoliciesURL:   get("SHOP_POLICIES_URL", ""),
		ReturnPolicyURL:   get("RETURN_POLICY_URL", ""),
		ShippingPolicyURL: get("SHIPPING_POLICY_URL", ""),
		ContactUsURL:      get("CONTACT_US_URL", ""),
		AboutUsURL:        get("ABOUT_US_URL", ""),
		FAQURL:            get("FAQ_URL", ""),
		SupportURL:        get("SUPPORT_URL", ""),
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
	cacheSize, err := strconv.Atoi(get("SESSION_CACHE_SIZE", strconv.Itoa(DefaultSessionCacheSize)))
	if err != nil || cacheSize < 0 || cacheSize > maxSessionCacheSize {
		errs = append(errs, fmt.Errorf("SESSION_CACHE_SIZE must be an integer from 0 (off) to %d, got %q", maxSessionCacheSize, getenv("SESSION_CACHE_SIZE")))
	}
	cfg.SessionCacheSize = cacheSize
	cfg.ShutdownTimeout = duration(get, "SHUTDOWN_TIMEOUT", "20s", time.Second, &errs)
	cfg.TimerSlack = duration(get, "TIMER_SLACK", "1ms", 0, &errs)
	if cfg.TimerSlack > maxTimerSlack {
		errs = append(errs, fmt.Errorf("TIMER_SLACK must be at most %s: every timer of the server (its timeouts, the webhook's retries) may fire that late, got %q",
			maxTimerSlack, getenv("TIMER_SLACK")))
	}

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
	checkURL("TERMS_OF_USE_URL", cfg.TermsOfUseURL)
	checkURL("PRIVACY_POLICY_URL", cfg.PrivacyPolicyURL)
	checkURL("SHOP_POLICIES_URL", cfg.ShopPoliciesURL)
	checkURL("RETURN_POLICY_URL", cfg.ReturnPolicyURL)
	checkURL("SHIPPING_POLICY_URL", cfg.ShippingPolicyURL)
	checkURL("CONTACT_US_URL", cfg.ContactUsURL)
	checkURL("ABOUT_US_URL", cfg.AboutUsURL)
	checkURL("FAQ_URL", cfg.FAQURL)
	checkURL("SUPPORT_URL", cfg.SupportURL)

	cfg.MerchantID = get("MERCHANT_ID", "merchant")
	if len(cfg.MerchantID) > 256 {
		errs = append(errs, fmt.Errorf("MERCHANT_ID must be at most 256 characters (the allowance's merchant_id limit), got %d", len(cfg.MerchantID)))
	}

	if raw := get("MARKETING_CONSENT_OPTIONS", ""); raw != "" {
		if err := decodeConsentOptions(raw, &cfg.MarketingConsentOptions); err != nil {
			errs = append(errs, fmt.Errorf("MARKETING_CONSENT_OPTIONS: %w", err))
		}
	}

	cfg.TLSCertFile, cfg.TLSKeyFile = get("TLS_CERT_FILE", ""), get("TLS_KEY_FILE", "")
	if (cfg.TLSCertFile == "") != (cfg.TLSKeyFile == "") {
		errs = append(errs, errors.New("TLS_CERT_FILE and TLS_KEY_FILE go together: set both to serve HTTPS, or neither to serve plain HTTP behind a TLS-terminating proxy"))
	}

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
	cfg.WebhookAPIVersion = get("WEBHOOK_API_VERSION", webhook.DefaultVersion)
	if _, err := webhook.EncoderFor(cfg.WebhookAPIVersion); err != nil {
		errs = append(errs, fmt.Errorf("WEBHOOK_API_VERSION must be one of %s, got %q",
			strings.Join(webhook.Versions(), ", "), cfg.WebhookAPIVersion))
	}
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
	cfg.PaymentAttemptTimeout = duration(get, "PAYMENT_ATTEMPT_TIMEOUT", "60s", time.Second, &errs)
	cfg.PaymentRecoveryInterval = duration(get, "PAYMENT_RECOVERY_INTERVAL", "30s", time.Second, &errs)
	cfg.PaymentInDoubtAfter = duration(get, "PAYMENT_IN_DOUBT_AFTER", "24h", time.Minute, &errs)
	metrics, err := strconv.ParseBool(get("METRICS_ENABLED", "true"))
	if err != nil {
		errs = append(errs, fmt.Errorf("METRICS_ENABLED must be true or false, got %q", getenv("METRICS_ENABLED")))
	}
	cfg.MetricsEnabled = metrics
	for _, key := range splitList(getenv("METRICS_API_KEY")) {
		if len(key) < 16 {
			errs = append(errs, errors.New("METRICS_API_KEY: every key must be at least 16 characters"))
			continue
		}
		cfg.MetricsAPIKeys = append(cfg.MetricsAPIKeys, key)
	}
	for _, entry := range splitList(getenv("TRUSTED_PROXIES")) {
		p, err := parsePrefix(entry)
		if err != nil {
			errs = append(errs, fmt.Errorf("TRUSTED_PROXIES must list IP addresses or CIDR prefixes, got %q", entry))
			continue
		}
		if p.Bits() == 0 {
			errs = append(errs, fmt.Errorf("TRUSTED_PROXIES: %q would believe every client's X-Forwarded-For, and let anyone pick the address it is limited by", entry))
			continue
		}
		cfg.TrustedProxies = append(cfg.TrustedProxies, p)
	}

	cfg.Environment = get("ENVIRONMENT", Development)
	if cfg.Environment != Development && cfg.Environment != Production {
		errs = append(errs, fmt.Errorf("ENVIRONMENT must be %s or %s, got %q", Development, Production, cfg.Environment))
	}
	// Production has no default gateway: whether money moves is the operator's choice
	// (CheckServe refuses an unset one); development defaults to the mock.
	defaultGateway := GatewayMock
	if cfg.Environment == Production {
		defaultGateway = ""
	}
	cfg.PaymentGateway = get("PAYMENT_GATEWAY", defaultGateway)
	switch cfg.PaymentGateway {
	case "", GatewayMock, GatewayStripe:
	default:
		errs = append(errs, fmt.Errorf("PAYMENT_GATEWAY must be %s or %s, got %q", GatewayMock, GatewayStripe, cfg.PaymentGateway))
	}
	errs = append(errs, cfg.loadStripe(get)...)
	allowMock, err := strconv.ParseBool(get("ALLOW_MOCK_GATEWAY", "false"))
	if err != nil {
		errs = append(errs, fmt.Errorf("ALLOW_MOCK_GATEWAY must be true or false, got %q", getenv("ALLOW_MOCK_GATEWAY")))
	}
	cfg.AllowMockGateway = allowMock

	errs = append(errs, cfg.contradictions()...)
	return cfg, errors.Join(errs...)
}

// Environments (ENVIRONMENT) and payment gateways (PAYMENT_GATEWAY).
const (
	Development = "development"
	Production  = "production"
	GatewayMock = "mock"
	// GatewayStripe charges through Stripe (STRIPE_SECRET_KEY).
	GatewayStripe = "stripe"
)

// DefaultStripeAPIBase is Stripe's API, where STRIPE_API_BASE points by default.
const DefaultStripeAPIBase = "https://api.stripe.com"

// stripeKey is the form of a Stripe secret (sk_) or restricted (rk_) key, test or live.
var stripeKey = regexp.MustCompile(`^(sk|rk)_(test|live)_[0-9A-Za-z]{16,}$`)

// stripeSettings are the variables that only mean something with PAYMENT_GATEWAY=stripe.
var stripeSettings = []string{"STRIPE_SECRET_KEY", "STRIPE_API_BASE", "STRIPE_TIMEOUT"}

// loadStripe reads the STRIPE_* variables. They are refused unless PAYMENT_GATEWAY is
// stripe: a key set beside another gateway (or none) is a forgotten PAYMENT_GATEWAY,
// and serving the mock while the operator believes Stripe charges would take orders
// without money. No message shows the key.
func (c *Config) loadStripe(get func(string, string) string) []error {
	if c.PaymentGateway != GatewayStripe {
		gateway := fmt.Sprintf("PAYMENT_GATEWAY is %q", c.PaymentGateway)
		if c.PaymentGateway == "" {
			gateway = "PAYMENT_GATEWAY is unset"
		}
		var errs []error
		for _, name := range stripeSettings {
			if get(name, "") != "" {
				errs = append(errs, fmt.Errorf("%s is set but %s: set PAYMENT_GATEWAY=stripe to charge through Stripe, or remove the STRIPE_* settings", name, gateway))
			}
		}
		return errs
	}
	var errs []error
	c.StripeSecretKey = SecretString(get("STRIPE_SECRET_KEY", ""))
	switch {
	case c.StripeSecretKey == "":
		errs = append(errs, errors.New("STRIPE_SECRET_KEY is required with PAYMENT_GATEWAY=stripe (the secret key of the Stripe account, sk_live_... or sk_test_...)"))
	case !stripeKey.MatchString(string(c.StripeSecretKey)):
		errs = append(errs, errors.New("STRIPE_SECRET_KEY must be a Stripe secret or restricted key (sk_test_, sk_live_, rk_test_ or rk_live_ followed by the key); the value set is not (not shown)"))
	}
	c.StripeAPIBase = strings.TrimRight(get("STRIPE_API_BASE", DefaultStripeAPIBase), "/")
	if u, err := url.Parse(c.StripeAPIBase); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		errs = append(errs, fmt.Errorf("STRIPE_API_BASE must be an absolute http(s) URL without credentials, got %q", c.StripeAPIBase))
	}
	c.StripeTimeout = duration(get, "STRIPE_TIMEOUT", "30s", time.Second, &errs)
	return errs
}

// StripeKeyMode is the mode of the Stripe key, what may be logged of it: "live", "test",
// or "" without a key.
func (c Config) StripeKeyMode() string {
	switch k := string(c.StripeSecretKey); {
	case strings.HasPrefix(k, "sk_live_"), strings.HasPrefix(k, "rk_live_"):
		return "live"
	case k != "":
		return "test"
	}
	return ""
}

// stripeRisks are the Stripe settings production refuses: a key sent to an API base
// that is not Stripe's, over plain HTTP to another machine, or (live key) anywhere
// but Stripe.
func (c Config) stripeRisks() []risk {
	if c.PaymentGateway != GatewayStripe {
		return nil
	}
	u, err := url.Parse(c.StripeAPIBase)
	if err != nil {
		return nil // reported by Load
	}
	var out []risk
	if u.Scheme != "https" && !isLoopback(u.Hostname()) {
		out = append(out, risk{
			fmt.Sprintf("STRIPE_API_BASE must be https (or a loopback address), got %q: the secret key would cross the network in clear", c.StripeAPIBase),
			fmt.Sprintf("STRIPE_API_BASE %q is plain HTTP to another machine: the Stripe key crosses the network in clear", c.StripeAPIBase),
		})
	}
	if c.StripeKeyMode() == "live" && c.StripeAPIBase != DefaultStripeAPIBase {
		out = append(out, risk{
			fmt.Sprintf("STRIPE_SECRET_KEY is a live key but STRIPE_API_BASE is %q: a live key goes to %s only", c.StripeAPIBase, DefaultStripeAPIBase),
			fmt.Sprintf("STRIPE_SECRET_KEY is a live key sent to %q, not to Stripe", c.StripeAPIBase),
		})
	}
	return out
}

// isLoopback reports whether host is localhost or a loopback address.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// derivedIdentity is the form of the identity the server derives for a key given without
// a name (httpapi.CallerIdentity). A name of that form could pass for another key's
// caller, and own its sessions.
var derivedIdentity = regexp.MustCompile(`^key_[0-9a-f]{32}$`)

// contradictions reports settings that are each valid but cannot all be meant: one key
// standing for two callers, a name posing as a derived identity, idempotency keys taken
// over while their request may still run.
func (c Config) contradictions() []error {
	var errs []error
	seen := map[string]string{} // key -> the variable that holds it
	claim := func(variable, key string) {
		switch prev, ok := seen[key]; {
		case !ok:
			seen[key] = variable
		case prev == variable:
			errs = append(errs, fmt.Errorf("%s lists the same key twice", variable))
		default:
			errs = append(errs, fmt.Errorf("%s and %s share a key: each key must open one thing only", prev, variable))
		}
	}
	for _, k := range c.APIKeys {
		claim("API_KEYS", k.Key)
		if derivedIdentity.MatchString(k.Name) {
			errs = append(errs, fmt.Errorf("API_KEYS: the name %q has the form of a derived key identity (key_ and 32 hex digits) and could stand for another key's caller; choose another name", k.Name))
		}
	}
	for _, k := range c.AdminAPIKeys {
		claim("ADMIN_API_KEYS", k)
	}
	for _, k := range c.MetricsAPIKeys {
		claim("METRICS_API_KEY", k)
	}
	if c.IdempotencyRecoverAfter > 0 && c.RequestTimeout > 0 && c.IdempotencyRecoverAfter < c.RequestTimeout {
		errs = append(errs, fmt.Errorf("IDEMPOTENCY_RECOVER_AFTER (%s) must not be shorter than REQUEST_TIMEOUT (%s): a retry would take over the key of a request that may still be running, and run it twice",
			c.IdempotencyRecoverAfter, c.RequestTimeout))
	}
	if c.PaymentAttemptTimeout > 0 && c.RequestTimeout > 0 && c.PaymentAttemptTimeout < c.RequestTimeout {
		errs = append(errs, fmt.Errorf("PAYMENT_ATTEMPT_TIMEOUT (%s) must not be shorter than REQUEST_TIMEOUT (%s): another completion would ask the PSP again while the first may still be waiting for it",
			c.PaymentAttemptTimeout, c.RequestTimeout))
	}
	return errs
}

// CheckServe reports what forbids serving with c. In production that includes every
// setting that would leave the server open or fake: no API keys, no PAYMENT_GATEWAY,
// the mock payment gateway unless ALLOW_MOCK_GATEWAY=true, a Stripe key sent anywhere
// but Stripe's API over https, metrics without a key, a public URL that is not https. In development those are only warned about at start (see Warnings). In
// every environment it needs CARD_FINGERPRINT_KEY and, when set, a loadable
// TLS_CERT_FILE/TLS_KEY_FILE pair; TLS itself is not required in production, since it
// may be terminated by a proxy in front.
func (c Config) CheckServe() error {
	var errs []error
	if len(c.CardFingerprintKey) == 0 {
		// Without a stable key no card fingerprint can be stored, and idempotent
		// retries of delegate_payment could not be recognised across instances
		// without hashing card data in a way a database thief could reverse.
		errs = append(errs, errors.New("CARD_FINGERPRINT_KEY is required to serve (at least 32 bytes, e.g. openssl rand -hex 32; make run creates one under .data/)"))
	}
	if _, err := c.TLSCertificate(); err != nil {
		errs = append(errs, err)
	}
	if c.Environment == Production {
		for _, w := range c.risks() {
			errs = append(errs, fmt.Errorf("ENVIRONMENT=production: %s", w.refusal))
		}
	}
	return errors.Join(errs...)
}

// TLSCertificate loads the TLS_CERT_FILE/TLS_KEY_FILE pair; it is nil, without an
// error, when TLS is not configured (plain HTTP).
func (c Config) TLSCertificate() (*tls.Certificate, error) {
	if c.TLSCertFile == "" || c.TLSKeyFile == "" {
		return nil, nil
	}
	pair, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile)
	if err != nil {
		return nil, fmt.Errorf("TLS_CERT_FILE %q and TLS_KEY_FILE %q must be a readable PEM certificate (chain) and its private key: %w",
			c.TLSCertFile, c.TLSKeyFile, err)
	}
	return &pair, nil
}

// Warnings are the risks of c that development mode accepts and production refuses,
// and what both only warn about.
func (c Config) Warnings() []string {
	var out []string
	for _, r := range c.risks() {
		if r.warning != "" {
			out = append(out, r.warning)
		}
	}
	if c.TermsOfUseURL == "" && c.PrivacyPolicyURL == "" {
		// Not refused: the protocol does not require the links, but buyers should see the
		// merchant's terms before they pay.
		out = append(out, "neither TERMS_OF_USE_URL nor PRIVACY_POLICY_URL is set: sessions show buyers no terms of use or privacy policy link")
	}
	return out
}

type risk struct{ refusal, warning string }

func (c Config) risks() []risk {
	var out []risk
	if len(c.APIKeys) == 0 {
		out = append(out, risk{
			"API_KEYS is required: without it anyone who can reach the server is a caller, and all callers share one identity",
			"API_KEYS is not set: the ACP endpoints are open to anyone who can reach this server, and every caller shares one identity (one caller's Idempotency-Key replays, sessions and tokens are every caller's)",
		})
	}
	if c.PaymentGateway == "" {
		out = append(out, risk{
			"PAYMENT_GATEWAY is required: set PAYMENT_GATEWAY=stripe with STRIPE_SECRET_KEY to take payments, or PAYMENT_GATEWAY=mock with ALLOW_MOCK_GATEWAY=true to serve simulated payments",
			"", // development defaults to mock, so the gateway is never unset there
		})
	}
	out = append(out, c.stripeRisks()...)
	if c.PaymentGateway == GatewayMock && !c.AllowMockGateway {
		out = append(out, risk{
			"PAYMENT_GATEWAY=mock moves no money; set ALLOW_MOCK_GATEWAY=true if that is intended",
			"PAYMENT_GATEWAY is mock: payments are simulated, no money moves",
		})
	}
	if c.MetricsEnabled && len(c.MetricsAPIKeys) == 0 {
		out = append(out, risk{
			"METRICS_API_KEY is required while METRICS_ENABLED=true: the metrics tell anyone how much the shop sells",
			"METRICS_API_KEY is not set: /metrics is open to anyone who can reach this server",
		})
	}
	if u, err := url.Parse(c.PublicBaseURL); err == nil && u.Scheme != "https" {
		out = append(out, risk{
			fmt.Sprintf("PUBLIC_BASE_URL must be an https URL, got %q: buyers follow its order links", c.PublicBaseURL),
			"", // development runs on http://localhost
		})
	}
	return out
}

// parsePrefix reads an IP address (a prefix of one) or a CIDR prefix.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	ip = ip.Unmap()
	return netip.PrefixFrom(ip, ip.BitLen()), nil
}

// maxTimerSlack bounds TIMER_SLACK: the runtime's monitor sleeps at most 10 ms, so a
// larger slack saves it no wake-up and only makes every timer later.
const maxTimerSlack = 10 * time.Millisecond

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

// decodeConsentOptions reads MARKETING_CONSENT_OPTIONS strictly: JSON, since display
// texts hold commas and other separators; an unknown key is a typo to report, not to
// drop.
func decodeConsentOptions(raw string, into *[]checkout.ConsentOption) error {
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		return fmt.Errorf("must be a JSON array of {\"channel\", \"display_text\", \"privacy_policy_url\"}: %w", err)
	}
	if dec.More() {
		return errors.New("must be one JSON array")
	}
	return checkout.CheckConsentOptions(*into)
}
