// Package pgserver is the one place that knows how to find or start a PostgreSQL server,
// so that tests, `make run` and CI agree on where the database comes from. It prefers a
// server the caller names (TEST_DATABASE_URL / DATABASE_URL), then Docker, then the
// PostgreSQL binaries installed on the machine, because each step down needs less from
// the machine but gives less isolation.
package pgserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Kinds of Server, so that callers and logs can tell where a database came from.
const (
	// KindEnv is a server named by TEST_DATABASE_URL or DATABASE_URL; pgserver does not
	// own it and never stops it.
	KindEnv = "env"
	// KindTestcontainers is a throwaway container started through testcontainers-go.
	KindTestcontainers = "testcontainers"
	// KindDocker is the docker-compose `postgres` service used by `make run`.
	KindDocker = "docker"
	// KindLocal is a cluster run from the PostgreSQL binaries installed on this machine.
	KindLocal = "local"
)

// ThrowawayImage is the default image for test containers (PGTEST_IMAGE overrides it); it
// matches docker-compose.yml's default so that tests and the dev stack run the same major
// version.
const ThrowawayImage = "postgres:16-alpine"

// Backends StartThrowaway can be limited to with PGTEST_BACKEND. The default, auto, tries
// each in turn; naming one makes a run prove that path (CI forces testcontainers) instead
// of passing quietly on another.
const (
	BackendAuto           = "auto"
	BackendTestcontainers = "testcontainers"
	BackendLocal          = "local"
)

// throwawayBackend reads PGTEST_BACKEND.
func throwawayBackend() (string, error) {
	switch b := strings.ToLower(strings.TrimSpace(os.Getenv("PGTEST_BACKEND"))); b {
	case "", BackendAuto:
		return BackendAuto, nil
	case BackendTestcontainers, BackendLocal:
		return b, nil
	default:
		return "", fmt.Errorf("pgserver: PGTEST_BACKEND=%q: want %s, %s or %s", b, BackendAuto, BackendTestcontainers, BackendLocal)
	}
}

// throwawayImage is PGTEST_IMAGE, or ThrowawayImage: a machine that cannot pull the
// official image runs one built locally (scripts/local-images.sh) with the same contract.
func throwawayImage() string {
	if img := strings.TrimSpace(os.Getenv("PGTEST_IMAGE")); img != "" {
		return img
	}
	return ThrowawayImage
}

// Server is a running PostgreSQL the caller may connect to as a superuser (or as the
// owner of the database named in URL, for servers given through the environment).
type Server struct {
	// URL is a pgx connection URL. For throwaway servers it names the `postgres`
	// maintenance database, so callers can CREATE DATABASE from it.
	URL string
	// Kind says which path produced the server: KindEnv, KindTestcontainers,
	// KindDocker or KindLocal.
	Kind string

	stopOnce sync.Once
	stopErr  error
	stop     func(ctx context.Context) error
}

// Stop releases what StartThrowaway created (container, process, data directory). It is
// a no-op for servers pgserver does not own, and for dev servers, which persist between
// runs (see StopDev). Calling it more than once is safe.
func (s *Server) Stop(ctx context.Context) error {
	if s == nil {
		return nil
	}
	s.stopOnce.Do(func() {
		if s.stop != nil {
			s.stopErr = s.stop(ctx)
		}
	})
	return s.stopErr
}

// envPingTimeout bounds the check of a server named by the environment: a wrong URL must
// fail the run quickly and say which variable was wrong.
const envPingTimeout = 10 * time.Second

// StartThrowaway returns a PostgreSQL server for one test process. It tries, in order,
// TEST_DATABASE_URL, a testcontainers-go container (only when a Docker engine answers),
// and a temporary cluster from the local PostgreSQL binaries; the error lists why each
// path failed so that a developer knows what to install or set. PGTEST_BACKEND=
// testcontainers or local takes that path only, and fails when it fails.
func StartThrowaway(ctx context.Context) (*Server, error) {
	backend, err := throwawayBackend()
	if err != nil {
		return nil, err
	}
	if backend != BackendAuto {
		// A forced path that TEST_DATABASE_URL silently overrode would prove nothing.
		if os.Getenv("TEST_DATABASE_URL") != "" {
			return nil, fmt.Errorf("pgserver: PGTEST_BACKEND=%s and TEST_DATABASE_URL are both set; unset one", backend)
		}
		return startForced(ctx, backend)
	}
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		if err := ping(ctx, u, envPingTimeout); err != nil {
			return nil, fmt.Errorf("pgserver: TEST_DATABASE_URL is set but its server does not answer: %w", err)
		}
		return &Server{URL: u, Kind: KindEnv}, nil
	}

	var failures []string
	if err := dockerAvailable(ctx); err != nil {
		failures = append(failures, fmt.Sprintf("testcontainers: no Docker engine answered (%v)", err))
	} else {
		srv, err := startContainer(ctx)
		if err == nil {
			return srv, nil
		}
		// The local path may still work; say why Docker was not used, since a developer
		// with Docker expects the container.
		slog.Default().Warn("pgserver: testcontainers failed, trying local PostgreSQL binaries", "err", err)
		failures = append(failures, fmt.Sprintf("testcontainers: %v", err))
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("pgserver: no PostgreSQL server for tests: %w (tried: %s)", err, strings.Join(failures, "; "))
	}

	srv, err := startLocalThrowaway(ctx)
	if err == nil {
		return srv, nil
	}
	failures = append(failures, fmt.Sprintf("local binaries: %v", err))
	return nil, fmt.Errorf("pgserver: no PostgreSQL server for tests; set TEST_DATABASE_URL, start Docker, or install PostgreSQL server binaries (initdb, postgres). Tried: %s",
		strings.Join(failures, "; "))
}

// startForced runs the one path PGTEST_BACKEND names.
func startForced(ctx context.Context, backend string) (*Server, error) {
	switch backend {
	case BackendTestcontainers:
		if err := dockerAvailable(ctx); err != nil {
			return nil, fmt.Errorf("pgserver: PGTEST_BACKEND=testcontainers but no Docker engine answered: %w", err)
		}
		srv, err := startContainer(ctx)
		if err != nil {
			return nil, fmt.Errorf("pgserver: PGTEST_BACKEND=testcontainers: %w", err)
		}
		return srv, nil
	default:
		srv, err := startLocalThrowaway(ctx)
		if err != nil {
			return nil, fmt.Errorf("pgserver: PGTEST_BACKEND=local: %w", err)
		}
		return srv, nil
	}
}

// DatabaseURL returns serverURL pointed at database name, keeping user, host and options.
// It accepts both URL and keyword/value connection strings, because TEST_DATABASE_URL
// and DATABASE_URL may be either.
func DatabaseURL(serverURL, name string) (string, error) {
	if name == "" {
		return "", errors.New("pgserver: empty database name")
	}
	if strings.HasPrefix(serverURL, "postgres://") || strings.HasPrefix(serverURL, "postgresql://") {
		u, err := url.Parse(serverURL)
		if err != nil {
			return "", fmt.Errorf("pgserver: parse connection URL: %w", err)
		}
		u.Path = "/" + name
		u.RawPath = ""
		return u.String(), nil
	}
	// In keyword/value strings a later keyword overrides an earlier one (libpq and pgx).
	quoted := strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(name)
	return strings.TrimSpace(serverURL) + " dbname='" + quoted + "'", nil
}

// ping connects once to connURL and runs a round trip; it does not retry.
func ping(ctx context.Context, connURL string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, connURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return conn.Ping(ctx)
}

// waitReady polls connURL until the server accepts a query, exited reports that the
// process died, or the deadline passes. Polling is the readiness check here: a directly
// started postmaster has no other signal for "accepting connections".
func waitReady(ctx context.Context, connURL string, exited <-chan struct{}, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		if last = ping(ctx, connURL, 2*time.Second); last == nil {
			return nil
		}
		select {
		case <-exited:
			return errors.New("server process exited during startup")
		case <-ctx.Done():
			return fmt.Errorf("server not ready after %s: %w (last error: %v)", timeout, ctx.Err(), last)
		case <-tick.C:
		}
	}
}
