// Package pgtest gives each integration test its own migrated PostgreSQL database, so
// tests can run in parallel without sharing rows. One server per test process is found
// or started by pgserver on first use; migrations run once into a template database, and
// each test gets a cheap copy of it.
//
// Use it from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// When no server can be had, tests that need one are skipped with the reason, except
// under CI=true, where they fail: a CI run must not pass by skipping its database tests.
//
// With TEST_PGBOUNCER=1 the harness also starts pgbouncer (transaction pooling) in front
// of the server, and the URLs NewDatabase and MustPool give go through it, with the query
// exec mode of TEST_PGBOUNCER_EXEC_MODE (default cache_describe, the mode
// docs/operations.md recommends behind PgBouncer). Creating and dropping databases and
// migrating the template still go straight to the server. `make test-pgbouncer` runs the
// checkout suites this way.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/agentic-commerce/agentic-commerce-server/internal/pgserver"
	"github.com/agentic-commerce/agentic-commerce-server/internal/postgres"
)

// startTimeout covers a first-time image pull on the testcontainers path; the local path
// needs a few seconds.
const startTimeout = 5 * time.Minute

// opTimeout bounds one CREATE or DROP DATABASE.
const opTimeout = time.Minute

// harness is the per-process state; it is started lazily so that a `go test -run` that
// selects no database test starts no server.
type harness struct {
	mainCalled atomic.Bool

	once     sync.Once
	err      error // why no server is available; set once
	srv      *pgserver.Server
	admin    *pgxpool.Pool // to the server's maintenance database, never to the template
	template string
	// bouncer, when TEST_PGBOUNCER is set, is the pgbouncer the tests' URLs go through,
	// with execMode as their default_query_exec_mode.
	bouncer  *pgserver.PgBouncer
	execMode string
}

var h harness

// Main runs the package's tests and then drops the template database and stops the
// server, if a test started one. It exits the process with the tests' result.
func Main(m *testing.M) {
	h.mainCalled.Store(true)
	code := m.Run()
	if err := h.shutdown(); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: cleanup: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	if h.err != nil && inCI() {
		fmt.Fprintf(os.Stderr, "pgtest: CI=true and no PostgreSQL server is available: %v\n", h.err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// NewDatabase creates a database for tb, copied from the migrated template, and drops it
// when tb ends. It returns the database's connection URL.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	h.require(tb)

	name := "acp_test_" + randomHex(8)
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	// No session may be connected to the template while it is copied; none is, because
	// the template does not allow connections once migrated.
	if _, err := h.admin.Exec(ctx, "CREATE DATABASE "+ident(name)+" TEMPLATE "+ident(h.template)); err != nil {
		tb.Fatalf("pgtest: create database from template %s: %v", h.template, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		// FORCE ends sessions a test left open (e.g. a pool it did not close).
		if _, err := h.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(name)+" WITH (FORCE)"); err != nil {
			tb.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	u, err := h.databaseURL(name)
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	return u
}

// databaseURL is the URL the tests use for database name: straight to the server, or
// through pgbouncer.
func (h *harness) databaseURL(name string) (string, error) {
	if h.bouncer == nil {
		return pgserver.DatabaseURL(h.srv.URL, name)
	}
	s, err := h.bouncer.URL(name)
	if err != nil {
		return "", err
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Set("default_query_exec_mode", h.execMode)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// ThroughPgBouncer reports whether the tests' databases are reached through pgbouncer
// (TEST_PGBOUNCER), for the few tests that must say why they do not apply there.
func ThroughPgBouncer() bool { return pgbouncerWanted() }

func pgbouncerWanted() bool {
	on, _ := strconv.ParseBool(os.Getenv("TEST_PGBOUNCER"))
	return on
}

// MustPool returns a pool on a new database from NewDatabase, closed when tb ends
// (before the database is dropped).
func MustPool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	return MustPoolTraced(tb, nil)
}

// ServerURL returns the server's superuser URL (to its maintenance database), for tests
// that need databases the template cannot give, such as an empty one to migrate. Such
// tests own what they create and must drop it; pgserver.DatabaseURL builds their URLs.
func ServerURL(tb testing.TB) string {
	tb.Helper()
	h.require(tb)
	return h.srv.URL
}

// require starts the server on first use and skips or fails tb when there is none.
func (h *harness) require(tb testing.TB) {
	tb.Helper()
	if !h.mainCalled.Load() {
		tb.Fatal("pgtest: the package must call pgtest.Main from TestMain, which stops the server after the tests")
	}
	h.once.Do(h.start)
	if h.err == nil {
		return
	}
	if inCI() {
		tb.Fatalf("pgtest: no PostgreSQL server (CI=true, so this fails rather than skips): %v", h.err)
	}
	tb.Skipf("pgtest: no PostgreSQL server, skipping: %v", h.err)
}

func (h *harness) start() {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := h.startServer(ctx); err != nil {
		h.err = err
		// A half-started harness is torn down now: Main's shutdown only sees a good one.
		_ = h.shutdown()
	}
}

func (h *harness) startServer(ctx context.Context) error {
	srv, err := pgserver.StartThrowaway(ctx)
	if err != nil {
		return err
	}
	h.srv = srv
	cfg, err := pgxpool.ParseConfig(srv.URL)
	if err != nil {
		return fmt.Errorf("parse server URL: %w", err)
	}
	// A few sessions suffice for CREATE/DROP DATABASE; the server's connection budget
	// belongs to the tests' own pools.
	cfg.MaxConns = 4
	admin, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect to %s server: %w", srv.Kind, err)
	}
	h.admin = admin

	// A random name keeps concurrent test processes sharing TEST_DATABASE_URL apart.
	tpl := "acp_tpl_" + randomHex(8)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+ident(tpl)); err != nil {
		return fmt.Errorf("create template database: %w", err)
	}
	h.template = tpl
	tplURL, err := pgserver.DatabaseURL(srv.URL, tpl)
	if err != nil {
		return err
	}
	if err := postgres.MigrateUp(ctx, tplURL); err != nil {
		return fmt.Errorf("migrate template database %s: %w", tpl, err)
	}
	// Refusing connections keeps a stray session from blocking CREATE DATABASE ... TEMPLATE.
	if _, err := admin.Exec(ctx, "ALTER DATABASE "+ident(tpl)+" WITH ALLOW_CONNECTIONS false"); err != nil {
		return fmt.Errorf("lock template database: %w", err)
	}
	if pgbouncerWanted() {
		h.execMode = os.Getenv("TEST_PGBOUNCER_EXEC_MODE")
		if h.execMode == "" {
			h.execMode = "cache_describe"
		}
		b, err := pgserver.StartPgBouncer(ctx, pgserver.PgBouncerOptions{Upstream: srv.URL})
		if err != nil {
			return fmt.Errorf("TEST_PGBOUNCER is set: %w", err)
		}
		h.bouncer = b
		fmt.Fprintf(os.Stderr, "pgtest: through %s on 127.0.0.1:%d (pool_mode=transaction, default_query_exec_mode=%s)\n",
			b.Version, b.Port, h.execMode)
	}
	return nil
}

// shutdown drops the template and stops the server; each step runs only if started.
func (h *harness) shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	var errs []error
	if h.bouncer != nil {
		// First, so that no server connection of pgbouncer holds a database being dropped.
		if err := h.bouncer.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop pgbouncer: %w", err))
		}
		h.bouncer = nil
	}
	if h.admin != nil {
		if h.template != "" {
			if _, err := h.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(h.template)+" WITH (FORCE)"); err != nil {
				errs = append(errs, fmt.Errorf("drop template %s: %w", h.template, err))
			}
			h.template = ""
		}
		h.admin.Close()
		h.admin = nil
	}
	if h.srv != nil {
		if err := h.srv.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop %s server: %w", h.srv.Kind, err))
		}
		h.srv = nil
	}
	return errors.Join(errs...)
}

func inCI() bool {
	ci, _ := strconv.ParseBool(os.Getenv("CI"))
	return ci
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
