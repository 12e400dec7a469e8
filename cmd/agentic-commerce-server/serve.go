package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/agentic-commerce/agentic-commerce-server/internal/config"
	"github.com/agentic-commerce/agentic-commerce-server/internal/httpapi"
	"github.com/agentic-commerce/agentic-commerce-server/internal/metrics"
	"github.com/agentic-commerce/agentic-commerce-server/internal/payment"
	"github.com/agentic-commerce/agentic-commerce-server/internal/payment/stripegw"
	"github.com/agentic-commerce/agentic-commerce-server/internal/postgres"
	"github.com/agentic-commerce/agentic-commerce-server/internal/timerslack"
	"github.com/agentic-commerce/agentic-commerce-server/internal/webhook"
)

// timerSlackReexec is set in the environment of the process serve replaces itself
// with to raise its timer slack (timerslack.Raise), so that a process never replaces
// itself twice. Its value is the name the kernel gave the process that was started,
// which the replacement takes back. Operators see it in /proc/PID/environ
// (docs/operations.md).
const timerSlackReexec = "AGENTIC_COMMERCE_SERVER_TIMER_SLACK_REEXEC"

// connectTimeout bounds how long start-up waits for the database, which may still be
// booting next to the server (docker compose, systemd).
const connectTimeout = 30 * time.Second

func serve(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
	if err := cfg.CheckServe(); err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	// First, before serve opens anything or logs a line: this may replace the process
	// (see timerslack.Raise), whose replacement runs main again, up to here.
	slack, err := timerslack.Raise(ctx, cfg.TimerSlack, timerSlackReexec, logger)
	if err != nil {
		logger.Warn("TIMER_SLACK not applied: the server runs with the timer slack it was started with",
			slog.String("error", err.Error()), slog.String("timer_slack", slack.String()))
	}
	logPosture(cfg, logger)
	pool, err := connectWithRetry(ctx, cfg.DatabaseURL, logger)
	if err != nil {
		return err
	}
	defer pool.Close()

	migrator, err := postgres.NewMigrator(pool, logger)
	if err != nil {
		return err
	}
	latest := migrator.LatestVersion()
	if cfg.MigrateOnStart {
		n, err := migrator.Up(ctx)
		if err != nil {
			_ = migrator.Close()
			return err
		}
		logger.Info("migrations applied", slog.Int("applied", n), slog.Int64("version", latest))
	}
	if err := migrator.Close(); err != nil {
		return fmt.Errorf("close migrator: %w", err)
	}

	ready := func(ctx context.Context) error {
		v, err := postgres.SchemaVersion(ctx, pool)
		if err != nil {
			return err
		}
		if v != latest {
			return fmt.Errorf("schema version %d, binary expects %d: run migrate up", v, latest)
		}
		return nil
	}
	keys := make([]httpapi.APIKey, len(cfg.APIKeys))
	for i, k := range cfg.APIKeys {
		keys[i] = httpapi.APIKey{Name: k.Name, Key: k.Key}
	}
	if cfg.WebhookURL == "" {
		logger.Warn("WEBHOOK_URL is not set: no order events are sent to the agent platform")
	}
	idem := postgres.NewIdempotency(pool, cfg.IdempotencyRecoverAfter)
	// A lease longer than one attempt, so no two workers send one event at once.
	outbox := postgres.NewOutbox(pool, cfg.WebhookTimeout+30*time.Second)
	var m *metrics.Metrics
	if cfg.MetricsEnabled {
		m = metrics.New(pool, outbox.Backlog)
	}
	psp, err := gateway(cfg)
	if err != nil {
		return fmt.Errorf("payment gateway: %w", err)
	}
	// One store serves sessions and carts: carts live as long as sessions (SESSION_TTL).
	// The vault shares its cache, for the tokens its completions use.
	cache := postgres.NewSessionCache(cfg.SessionCacheSize)
	if cache != nil {
		m.WatchSessionCache(cache.Counts)
	}
	store := postgres.NewStore(pool, postgres.StoreConfig{
		TTL: cfg.SessionTTL, Gateway: psp, PublicBaseURL: cfg.PublicBaseURL,
		OrderEvents: cfg.WebhookURL != "", MerchantID: cfg.MerchantID,
		ConsentOptions: cfg.MarketingConsentOptions, PaymentAttemptTimeout: cfg.PaymentAttemptTimeout,
		SessionCache: cache,
	})
	orders := postgres.NewOrders(pool, cfg.WebhookURL != "").WithGateway(psp)
	api := httpapi.New(httpapi.Config{
		MaxBodyBytes: cfg.MaxBodyBytes, Links: sessionLinks(cfg), APIKeys: keys, SigningSecrets: cfg.SigningSecrets,
		RateLimit: cfg.RateLimit, RateBurst: cfg.RateBurst, CORSAllowedOrigins: cfg.CORSAllowedOrigins,
		RequireAPIVersion: cfg.RequireAPIVersion, AdminAPIKeys: cfg.AdminAPIKeys,
		CardFingerprintKey: cfg.CardFingerprintKey, RequestTimeout: cfg.RequestTimeout,
		TrustedProxies: cfg.TrustedProxies, MetricsAPIKeys: cfg.MetricsAPIKeys,
		PublicBaseURL: cfg.PublicBaseURL,
	}, httpapi.Deps{
		Sessions:    store,
		Carts:       store,
		Vault:       postgres.NewVault(pool, payment.NewFingerprinter(cfg.CardFingerprintKey)).WithTokenLifetime(cfg.VaultTokenMaxLifetime).WithSessionCache(cache),
		Replays:     postgres.NewSignatureReplays(pool),
		Idempotency: idem,
		Orders:      orders,
		Consents:    postgres.NewConsents(pool),
		Discounts:   postgres.NewDiscounts(pool),
		Metrics:     m,
		Unavailable: postgres.IsUnavailable,
		Ready:       ready,
		Logger:      logger,
	})

	// Background jobs outlive the signal until the HTTP server has drained, so requests
	// still in flight are not left without the workers they rely on.
	jobsCtx, stopJobs := context.WithCancel(context.WithoutCancel(ctx))
	var jobs sync.WaitGroup
	jobs.Go(func() { cleanIdempotencyKeys(jobsCtx, idem, cfg.IdempotencyTTL, logger) })
	retention := postgres.Retention{
		CanceledSessions: cfg.CanceledSessionRetention, OrderEvents: cfg.OrderEventRetention,
		ExpiredTokenGrace: expiredTokenGrace, TokenLifetime: cfg.VaultTokenMaxLifetime,
	}
	jobs.Go(func() { sweep(jobsCtx, postgres.NewSweeper(pool), cfg.SweepInterval, retention, logger) })
	jobs.Go(func() { recoverPayments(jobsCtx, store, orders, cfg, logger) })
	if cfg.WebhookURL != "" {
		worker := webhook.NewWorker(webhook.Config{
			URL: cfg.WebhookURL, Secret: cfg.WebhookSecret, Timeout: cfg.WebhookTimeout,
			Horizon: cfg.WebhookRetryHorizon, Workers: cfg.WebhookWorkers, APIVersion: cfg.WebhookAPIVersion,
		}, outbox, logger)
		worker.Observe = func(r webhook.Result) { m.Delivery(deliveryResult(r)) }
		jobs.Go(func() { worker.Run(jobsCtx) })
	}
	defer func() {
		stopJobs()
		jobs.Wait()
	}()

	srv := &http.Server{
		Addr:              cfg.Addr(),
		Handler:           api,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	cert, err := cfg.TLSCertificate() // checked by CheckServe; loaded again here
	if err != nil {
		return err
	}
	scheme := "http"
	if cert != nil {
		// TLS 1.3 is the protocol's minimum; ServeTLS adds HTTP/2 to NextProtos.
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{*cert}}
		scheme = "https"
	}
	ln, err := net.Listen("tcp", srv.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", srv.Addr, err)
	}
	logger.Info("serving", slog.String("addr", ln.Addr().String()), slog.String("scheme", scheme),
		slog.Int64("schema_version", latest), slog.String("timer_slack", slack.String()))

	errc := make(chan error, 1)
	go func() {
		if cert != nil {
			errc <- srv.ServeTLS(ln, "", "")
			return
		}
		errc <- srv.Serve(ln)
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	api.Drain()
	logger.Info("shutting down: /ready answers 503", slog.Duration("drain_delay", cfg.DrainDelay))
	time.Sleep(cfg.DrainDelay)
	logger.Info("shutting down: draining in-flight requests", slog.Duration("timeout", cfg.ShutdownTimeout))
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	logger.Info("stopped")
	return nil
}

// logPosture says at start what the configuration decided about security, so an
// operator reads in the log, not in the code, whether the server is open.
func logPosture(cfg config.Config, logger *slog.Logger) {
	auth := fmt.Sprintf("%d API key(s)", len(cfg.APIKeys))
	if len(cfg.APIKeys) == 0 {
		auth = "open: no API_KEYS, every caller shares one identity"
	}
	metricsAccess := "off"
	switch {
	case cfg.MetricsEnabled && len(cfg.MetricsAPIKeys) > 0:
		metricsAccess = "METRICS_API_KEY"
	case cfg.MetricsEnabled:
		metricsAccess = "open"
	}
	transport := "plain HTTP: TLS must be terminated in front (TLS_CERT_FILE unset)"
	if cfg.TLSCertFile != "" {
		transport = "HTTPS, TLS 1.3 minimum (TLS_CERT_FILE)"
	}
	proxies := make([]string, len(cfg.TrustedProxies))
	for i, p := range cfg.TrustedProxies {
		proxies[i] = p.String()
	}
	logger.Info("security posture",
		slog.String("environment", cfg.Environment),
		slog.String("transport", transport),
		slog.String("authentication", auth),
		slog.Bool("request_signatures", len(cfg.SigningSecrets) > 0),
		slog.Bool("admin_api", len(cfg.AdminAPIKeys) > 0),
		slog.String("metrics", metricsAccess),
		slog.String("payment_gateway", cfg.PaymentGateway),
		// What may be said of the Stripe key: test or live ("" with another gateway).
		slog.String("stripe_key_mode", cfg.StripeKeyMode()),
		slog.Float64("rate_limit_rps", cfg.RateLimit),
		slog.Any("trusted_proxies", proxies),
	)
	for _, w := range cfg.Warnings() {
		logger.Warn(w)
	}
	if cfg.RateLimit == 0 {
		logger.Warn("RATE_LIMIT_RPS=0: no request is rate limited")
	}
}

// sessionLinks are the links every session shows: each configured URL, nothing for an
// unset one (the server serves no legal pages of its own). Each API version shows those
// whose type it knows. Never nil: links is a required array, so no links is [].
func sessionLinks(cfg config.Config) []httpapi.Link {
	links := []httpapi.Link{}
	for _, l := range []httpapi.Link{
		{Type: "terms_of_use", URL: cfg.TermsOfUseURL},
		{Type: "privacy_policy", URL: cfg.PrivacyPolicyURL},
		{Type: "seller_shop_policies", URL: cfg.ShopPoliciesURL},
		{Type: "return_policy", URL: cfg.ReturnPolicyURL},
		{Type: "shipping_policy", URL: cfg.ShippingPolicyURL},
		{Type: "contact_us", URL: cfg.ContactUsURL},
		{Type: "about_us", URL: cfg.AboutUsURL},
		{Type: "faq", URL: cfg.FAQURL},
		{Type: "support", URL: cfg.SupportURL},
	} {
		if l.URL != "" {
			links = append(links, l)
		}
	}
	return links
}

// gateway is the payment gateway PAYMENT_GATEWAY names: Stripe, or the mock.
// config.Load has checked the Stripe settings, and CheckServe that production chose.
func gateway(cfg config.Config) (payment.Gateway, error) {
	if cfg.PaymentGateway != config.GatewayStripe {
		return payment.MockGateway{}, nil
	}
	return stripegw.New(stripegw.Config{
		SecretKey: string(cfg.StripeSecretKey), APIBase: cfg.StripeAPIBase,
		Timeout: cfg.StripeTimeout, NetworkRetries: stripegw.DefaultNetworkRetries,
	})
}

// connectWithRetry opens the pool, retrying with backoff until connectTimeout.
func connectWithRetry(ctx context.Context, databaseURL string, logger *slog.Logger) (*pgxpool.Pool, error) {
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	delay := 250 * time.Millisecond
	for {
		pool, err := postgres.Connect(ctx, databaseURL)
		if err == nil {
			return pool, nil
		}
		logger.Warn("database not reachable yet", slog.Any("error", err), slog.Duration("retry_in", delay))
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("database unreachable after %s: %w", connectTimeout, err)
		case <-time.After(delay):
		}
		delay = min(2*delay, 4*time.Second)
	}
}

// idempotencyCleanupEvery is how often old idempotency keys are deleted. Every instance
// runs the job; the DELETE is safe to run concurrently.
const idempotencyCleanupEvery = 10 * time.Minute

// cleanIdempotencyKeys deletes keys older than ttl until ctx ends.
func cleanIdempotencyKeys(ctx context.Context, idem *postgres.Idempotency, ttl time.Duration, logger *slog.Logger) {
	t := time.NewTicker(idempotencyCleanupEvery)
	defer t.Stop()
	for {
		n, err := idem.DeleteBefore(ctx, time.Now().Add(-ttl))
		switch {
		case err != nil && ctx.Err() == nil:
			logger.Warn("idempotency key cleanup failed", slog.Any("error", err))
		case n > 0:
			logger.Info("idempotency keys removed", slog.Int64("count", n))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func deliveryResult(r webhook.Result) string {
	switch {
	case r.Delivered:
		return "delivered"
	case r.Dead:
		return "dead"
	}
	return "retry"
}

// expiredTokenGrace keeps expired, unused vault tokens a day for investigation before
// the sweeper deletes them.
const expiredTokenGrace = 24 * time.Hour

// sweep runs the time-based jobs every interval until ctx ends: expire sessions past
// their TTL, then delete what the retention periods no longer keep (canceled sessions,
// finished order events, unusable vault tokens, remembered signatures). Each is safe on
// several instances.
func sweep(ctx context.Context, s *postgres.Sweeper, every time.Duration, r postgres.Retention, logger *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if n, err := s.ExpireSessions(ctx); err != nil && ctx.Err() == nil {
			logger.Warn("session expiry sweep failed", slog.Any("error", err))
		} else if n > 0 {
			logger.Info("sessions expired", slog.Int64("count", n))
		}
		p, err := s.Purge(ctx, r)
		if err != nil && ctx.Err() == nil {
			logger.Warn("retention sweep failed", slog.Any("error", err))
		}
		if p != (postgres.Purged{}) {
			logger.Info("retention sweep", slog.Int64("sessions", p.Sessions), slog.Int64("order_events", p.OrderEvents),
				slog.Int64("vault_tokens", p.Tokens), slog.Int64("signatures", p.Signatures), slog.Int64("carts", p.Carts))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
