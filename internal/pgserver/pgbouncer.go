package pgserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// PgBouncer is a pgbouncer process this process started in front of one PostgreSQL
// server, listening on 127.0.0.1.
type PgBouncer struct {
	// Port is pgbouncer's TCP port on 127.0.0.1.
	Port int
	// Version is the first line of `pgbouncer --version`.
	Version string

	upstream string
	base     string
	proc     *os.Process
	exited   chan struct{}
}

// PgBouncerOptions configure StartPgBouncer.
type PgBouncerOptions struct {
	// Upstream is a URL of the server behind pgbouncer; its host, port, user and
	// password are what pgbouncer logs in with, for every database.
	Upstream string
	// PoolMode is pgbouncer's pool_mode; "transaction" when empty, the mode that breaks
	// session state and is the reason to test through pgbouncer at all.
	PoolMode string
	// PoolSize is default_pool_size, the server connections per database; 20 when zero.
	PoolSize int
}

// findPgBouncer looks for pgbouncer on PATH and where Debian installs it (/usr/sbin is
// not on a non-root user's PATH).
func findPgBouncer() (string, error) {
	if p, err := exec.LookPath("pgbouncer"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/pgbouncer", "/usr/local/sbin/pgbouncer", "/usr/local/bin/pgbouncer"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: no pgbouncer on PATH or in /usr/sbin (apt-get install pgbouncer)", ErrNoBinaries)
}

// StartPgBouncer runs pgbouncer in front of opts.Upstream on a free port of 127.0.0.1.
// Its `*` database entry forwards any database name to the upstream server, so
// databases created after the start (one per test) are reachable through it; auth_type
// `any` lets any client user in and logs in upstream as the upstream URL's user.
func StartPgBouncer(ctx context.Context, opts PgBouncerOptions) (_ *PgBouncer, err error) {
	bin, err := findPgBouncer()
	if err != nil {
		return nil, err
	}
	version, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("pgbouncer --version: %w", err)
	}
	up, err := url.Parse(opts.Upstream)
	if err != nil || (up.Scheme != "postgres" && up.Scheme != "postgresql") {
		return nil, fmt.Errorf("pgbouncer upstream must be a postgres:// URL (%v)", err)
	}
	if opts.PoolMode == "" {
		opts.PoolMode = "transaction"
	}
	if opts.PoolSize == 0 {
		opts.PoolSize = 20
	}
	// pgbouncer refuses to run as root: when root, it runs as the same account as the
	// throwaway clusters.
	owner, err := clusterOwner()
	if err != nil {
		return nil, err
	}
	base, err := os.MkdirTemp("", "pgbouncer-*")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(base)
		}
	}()
	if err := owner.checkReachable(base); err != nil {
		return nil, fmt.Errorf("%w; point TMPDIR at a directory it can reach", err)
	}
	if err := owner.chown(base); err != nil {
		return nil, err
	}

	host, port := up.Hostname(), up.Port()
	if host == "" {
		host = "127.0.0.1"
	}
	if port == "" {
		port = "5432"
	}
	target := "host=" + host + " port=" + port
	if u := up.User.Username(); u != "" {
		target += " user=" + u
	}
	if pw, ok := up.User.Password(); ok {
		target += " password=" + pw
	}
	var lastErr error
	for attempt := 1; attempt <= 3; attempt++ {
		listen, err := freePort()
		if err != nil {
			return nil, err
		}
		logPath := filepath.Join(base, "pgbouncer.log")
		conf := fmt.Sprintf(`[databases]
* = %s

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = any
pool_mode = %s
default_pool_size = %d
max_client_conn = 5000
ignore_startup_parameters = extra_float_digits
logfile = %s
log_connections = 0
log_disconnections = 0
`, target, listen, opts.PoolMode, opts.PoolSize, logPath)
		confPath := filepath.Join(base, "pgbouncer.ini")
		if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
			return nil, err
		}
		if err := owner.chown(confPath); err != nil {
			return nil, err
		}
		b := &PgBouncer{Port: listen, Version: strings.TrimSpace(strings.SplitN(string(version), "\n", 2)[0]),
			upstream: opts.Upstream, base: base, exited: make(chan struct{})}
		if err := b.run(bin, owner, confPath); err != nil {
			return nil, err
		}
		probe, _ := b.URL("postgres")
		lastErr = waitReady(ctx, probe, b.exited, startupTimeout)
		if lastErr == nil {
			return b, nil
		}
		b.kill()
		log, _ := os.ReadFile(logPath)
		if out, _ := os.ReadFile(filepath.Join(base, "stderr.log")); len(out) > 0 {
			log = append(log, out...)
		}
		lastErr = fmt.Errorf("pgbouncer on 127.0.0.1:%d: %w; log: %s", listen, lastErr, lastLines(log, 10))
		if !bytes.Contains(log, []byte("Address already in use")) {
			break
		}
	}
	return nil, lastErr
}

// run starts pgbouncer in the foreground as a child that dies with this process.
func (b *PgBouncer) run(bin string, owner *runAs, confPath string) error {
	cmd := exec.Command(bin, confPath)
	cmd.Dir = b.base
	// Errors before the logfile opens (a bad configuration) go to stderr.
	out, err := os.Create(filepath.Join(b.base, "stderr.log"))
	if err != nil {
		return err
	}
	defer out.Close() // the child has its own descriptor
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = procAttr(owner, true)
	if err := startChild(cmd, b.exited); err != nil {
		return fmt.Errorf("start pgbouncer: %w", err)
	}
	b.proc = cmd.Process
	return nil
}

// PID is pgbouncer's process ID, for a caller that places it on CPUs, as acpload -pin
// does.
func (b *PgBouncer) PID() int { return b.proc.Pid }

// URL returns a URL to database name through pgbouncer, with the upstream URL's user,
// password and options (a caller adds default_query_exec_mode, see docs/operations.md).
func (b *PgBouncer) URL(name string) (string, error) {
	u, err := url.Parse(b.upstream)
	if err != nil {
		return "", err
	}
	u.Host = "127.0.0.1:" + strconv.Itoa(b.Port)
	u.Path = "/" + name
	u.RawPath = ""
	return u.String(), nil
}

// ServerConnections counts pgbouncer's server connections to database (SHOW SERVERS),
// which shows that clients were multiplexed rather than given one server each.
func (b *PgBouncer) ServerConnections(ctx context.Context, database string) (int, error) {
	admin, err := b.URL("pgbouncer")
	if err != nil {
		return 0, err
	}
	cfg, err := pgx.ParseConfig(admin)
	if err != nil {
		return 0, err
	}
	// The admin console speaks only the simple protocol.
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, "SHOW SERVERS")
	if err != nil {
		return 0, err
	}
	col := -1
	for i, f := range rows.FieldDescriptions() {
		if f.Name == "database" {
			col = i
		}
	}
	n := 0
	for rows.Next() {
		v, err := rows.Values()
		if err != nil {
			return 0, err
		}
		if col >= 0 && v[col] == database {
			n++
		}
	}
	return n, rows.Err()
}

// Stop ends pgbouncer and removes its directory.
func (b *PgBouncer) Stop(context.Context) error {
	b.kill()
	err := os.RemoveAll(b.base)
	if errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	return err
}

// kill ends the process (SIGINT: pgbouncer's immediate shutdown), and SIGKILL if it
// lingers.
func (b *PgBouncer) kill() {
	if b.proc == nil {
		return
	}
	select {
	case <-b.exited:
		return
	default:
	}
	_ = interrupt(b.proc)
	select {
	case <-b.exited:
	case <-time.After(10 * time.Second):
		_ = b.proc.Kill()
		<-b.exited
	}
}
