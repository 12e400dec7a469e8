package pgserver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DevPort is the port of the local dev cluster: not 5432, so that it coexists with a
// system PostgreSQL or the docker-compose service.
const DevPort = 55432

// DevDatabase is the application database created in the local dev cluster.
const DevDatabase = "acp"

// devMu serialises this process's operations on a dev data directory.
var devMu sync.Mutex

// StartDev returns the database for `make run`. It tries, in order, DATABASE_URL, the
// docker-compose `postgres` service (when a Docker engine answers), and a persistent
// local cluster in dataDir that survives between runs. It is idempotent: a second call
// reuses the cluster the first one started.
func StartDev(ctx context.Context, dataDir string) (*Server, error) {
	if u := os.Getenv("DATABASE_URL"); u != "" {
		return &Server{URL: u, Kind: KindEnv}, nil
	}
	if err := dockerAvailable(ctx); err == nil {
		srv, err := composeUp(ctx)
		if err == nil {
			return srv, nil
		}
		slog.Default().Warn("pgserver: docker compose failed, using a local cluster instead", "err", err)
	}
	return startLocalDev(ctx, dataDir, DevPort)
}

// StopDev stops the local dev cluster in dataDir, if one is running. It leaves the data
// in place, and does nothing to servers it did not start (DATABASE_URL, docker compose).
func StopDev(ctx context.Context, dataDir string) error {
	devMu.Lock()
	defer devMu.Unlock()
	dataDir, err := filepath.Abs(dataDir)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dataDir, "PG_VERSION")); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	major, err := clusterMajor(dataDir)
	if err != nil {
		return err
	}
	bins, err := findBinaries(major)
	if err != nil {
		return fmt.Errorf("pgserver: stop dev cluster in %s: %w", dataDir, err)
	}
	owner, err := clusterOwner()
	if err != nil {
		return err
	}
	running, err := devRunning(ctx, bins, owner, dataDir)
	if err != nil || !running {
		return err
	}
	cmd := owner.command(ctx, bins.path("pg_ctl"), "stop", "-D", dataDir, "-m", "fast", "-w", "-t", strconv.Itoa(int(startupTimeout.Seconds())))
	cmd.Dir = dataDir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pgserver: pg_ctl stop -D %s: %w: %s", dataDir, err, lastLines(out, 10))
	}
	return nil
}

// devConf makes the dev cluster reachable only over loopback TCP on a fixed port; Unix
// sockets are off because a checkout path can exceed the socket path limit.
func devConf(port int) string {
	return fmt.Sprintf(`listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = ''
max_connections = %d
`, port, throwawayMaxConnections)
}

// startLocalDev initialises dataDir on first use, starts the cluster unless it already
// runs, and makes sure DevDatabase exists.
func startLocalDev(ctx context.Context, dataDir string, port int) (*Server, error) {
	devMu.Lock()
	defer devMu.Unlock()
	dataDir, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, err
	}
	owner, err := clusterOwner()
	if err != nil {
		return nil, fmt.Errorf("pgserver: local dev cluster: %w; or set DATABASE_URL", err)
	}
	if err := owner.checkReachable(dataDir); err != nil {
		return nil, fmt.Errorf("pgserver: local dev cluster: %w. Set DATABASE_URL to a server you run, or move the checkout to a directory the %s user can reach (e.g. under /srv or /tmp)", err, owner.name)
	}
	major, err := clusterMajor(dataDir)
	if err != nil {
		return nil, err
	}
	bins, err := findBinaries(major)
	if err != nil {
		return nil, fmt.Errorf("pgserver: local dev cluster in %s: %w", dataDir, err)
	}
	logPath := filepath.Join(filepath.Dir(dataDir), "postgres.log")

	if major == 0 {
		if err := initDevCluster(ctx, bins, owner, dataDir, port); err != nil {
			return nil, fmt.Errorf("pgserver: initialise dev cluster in %s: %w", dataDir, err)
		}
	}
	running, err := devRunning(ctx, bins, owner, dataDir)
	if err != nil {
		return nil, err
	}
	if !running {
		if err := ensureLogFile(owner, logPath); err != nil {
			return nil, fmt.Errorf("pgserver: dev cluster log: %w", err)
		}
		// pg_ctl detaches the server into its own session, so it outlives this process
		// and Ctrl-C in `make run` does not reach it.
		cmd := owner.command(ctx, bins.path("pg_ctl"), "start", "-D", dataDir, "-l", logPath, "-w", "-t", strconv.Itoa(int(startupTimeout.Seconds())))
		cmd.Dir = dataDir
		if out, err := cmd.CombinedOutput(); err != nil {
			logTail, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("pgserver: pg_ctl start -D %s: %w: %s; server log %s: %s", dataDir, err, lastLines(out, 5), logPath, lastLines(logTail, 10))
		}
	}

	adminURL := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	if err := ensureDatabase(ctx, adminURL, DevDatabase); err != nil {
		return nil, fmt.Errorf("pgserver: dev cluster in %s: %w", dataDir, err)
	}
	appURL, err := DatabaseURL(adminURL, DevDatabase)
	if err != nil {
		return nil, err
	}
	// Stop is a no-op: the cluster persists between runs; StopDev stops it.
	return &Server{URL: appURL, Kind: KindLocal}, nil
}

// initDevCluster runs initdb in a sibling directory and renames it into place, so that
// an interrupted initdb never leaves a dataDir that looks initialised (has PG_VERSION).
func initDevCluster(ctx context.Context, bins binaries, owner *runAs, dataDir string, port int) error {
	if entries, err := os.ReadDir(dataDir); err == nil && len(entries) > 0 {
		return fmt.Errorf("%s exists, is not empty and holds no PostgreSQL cluster (no PG_VERSION); remove it or choose another directory", dataDir)
	}
	parent := filepath.Dir(dataDir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dataDir)+".initdb-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp) // after a successful rename, tmp no longer exists
	if err := owner.chown(tmp); err != nil {
		return err
	}
	if err := initdb(ctx, bins, owner, tmp, devConf(port)); err != nil {
		return err
	}
	_ = os.Remove(dataDir) // an empty directory may stand in the way of the rename
	return os.Rename(tmp, dataDir)
}

// ensureLogFile creates the server log up front because pg_ctl's shell opens it as the
// cluster owner, which cannot create files in a root-owned parent directory.
func ensureLogFile(owner *runAs, logPath string) error {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_ = f.Close()
	return owner.chown(logPath)
}

// clusterMajor returns the major version recorded in dataDir/PG_VERSION, or 0 when
// dataDir holds no cluster yet.
func clusterMajor(dataDir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "PG_VERSION"))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("pgserver: read PG_VERSION: %w", err)
	}
	major, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("pgserver: %s/PG_VERSION holds %q", dataDir, strings.TrimSpace(string(b)))
	}
	return major, nil
}

// devRunning asks pg_ctl whether the cluster in dataDir runs; pg_ctl checks the pid
// file against live processes, which survives a crashed server's stale pid file.
func devRunning(ctx context.Context, bins binaries, owner *runAs, dataDir string) (bool, error) {
	cmd := owner.command(ctx, bins.path("pg_ctl"), "status", "-D", dataDir)
	cmd.Dir = dataDir
	out, err := cmd.CombinedOutput()
	if err == nil {
		return true, nil
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) && exitErr.ExitCode() == 3 { // 3: not running
		return false, nil
	}
	return false, fmt.Errorf("pgserver: pg_ctl status -D %s: %w: %s", dataDir, err, lastLines(out, 5))
}

// ensureDatabase creates name unless it exists; concurrent creators are tolerated.
func ensureDatabase(ctx context.Context, adminURL, name string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connect %s: %w", adminURL, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return fmt.Errorf("look up database %s: %w", name, err)
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // duplicate_database
		return nil
	}
	if err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}
