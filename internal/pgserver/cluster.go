package pgserver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNoBinaries says the machine lacks a program a topology needs (the PostgreSQL
// server binaries, pg_basebackup, pgbouncer). Tests skip on it outside CI, and only on it.
var ErrNoBinaries = errors.New("pgserver: required binaries not installed")

// ClusterOptions configure StartCluster.
type ClusterOptions struct {
	// Conf is appended to postgresql.conf after the throwaway settings, so it overrides
	// them (e.g. "synchronous_commit = on" for a replication test).
	Conf string
}

// Cluster is a PostgreSQL cluster this process started from the machine's binaries, on
// 127.0.0.1 with a trusted `postgres` superuser. Unlike a Server it exposes what the
// topology tests need: its port, an immediate stop that simulates a crash, streaming
// standbys and their promotion.
type Cluster struct {
	// URL is the superuser URL of the `postgres` maintenance database.
	URL string
	// Port is the TCP port on 127.0.0.1.
	Port int

	bins    binaries
	owner   *runAs
	base    string
	dataDir string
	logPath string
	pm      *postmaster

	stopOnce sync.Once
	stopErr  error
}

// StartCluster initialises a cluster in a new temporary directory and runs its
// postmaster as a child of this process, on a free port of 127.0.0.1.
func StartCluster(ctx context.Context, opts ClusterOptions) (_ *Cluster, err error) {
	bins, err := findBinaries(0)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoBinaries, err)
	}
	owner, err := clusterOwner()
	if err != nil {
		return nil, err
	}
	base, dataDir, err := newClusterDir(owner)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(base)
		}
	}()
	if err := initdb(ctx, bins, owner, dataDir, throwawayConf+opts.Conf+"\n"); err != nil {
		return nil, err
	}
	c := &Cluster{bins: bins, owner: owner, base: base, dataDir: dataDir, logPath: filepath.Join(base, "postgres.log")}
	if err := c.start(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Cluster) start(ctx context.Context) error {
	pm, err := startPostmasterRetry(ctx, c.bins, c.owner, c.dataDir, c.logPath)
	if err != nil {
		return err
	}
	c.pm, c.URL, c.Port = pm, pm.url, pm.port
	return nil
}

// StandbyOptions configure StartStandby.
type StandbyOptions struct {
	// Name is the standby's cluster_name, which it reports to the primary as its
	// application_name: the name synchronous_standby_names lists.
	Name string
	// KeepSynchronousStandbyNames keeps the synchronous_standby_names copied from the
	// primary. By default the standby gets synchronous_standby_names = '', because a
	// promoted standby that keeps it waits for a standby it does not have, and every
	// commit hangs (docs/operations.md, "Failover").
	KeepSynchronousStandbyNames bool
}

// StartStandby clones c with pg_basebackup (streaming the WAL of the copy) and starts
// the clone as a hot standby that streams from c.
func (c *Cluster) StartStandby(ctx context.Context, opts StandbyOptions) (_ *Cluster, err error) {
	basebackup := c.bins.path("pg_basebackup")
	if _, err := os.Stat(basebackup); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrNoBinaries, basebackup, err)
	}
	base, dataDir, err := newClusterDir(c.owner)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(base)
		}
	}()
	// -R writes standby.signal and primary_conninfo; --no-sync because the clone is as
	// disposable as its primary.
	cmd := c.owner.command(ctx, basebackup, "--pgdata="+dataDir, "--host=127.0.0.1", "--port="+strconv.Itoa(c.Port),
		"--username=postgres", "--wal-method=stream", "--checkpoint=fast", "--write-recovery-conf", "--no-sync")
	cmd.Dir = dataDir
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("pg_basebackup from port %d: %w: %s", c.Port, err, lastLines(out, 15))
	}
	conf := "\n# Added by internal/pgserver for a standby.\n"
	if opts.Name != "" {
		conf += "cluster_name = " + quoteConf(opts.Name) + "\n"
	}
	if !opts.KeepSynchronousStandbyNames {
		conf += "synchronous_standby_names = ''\n"
	}
	f, err := os.OpenFile(filepath.Join(dataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	_, err = f.WriteString(conf)
	if err := errors.Join(err, f.Close()); err != nil {
		return nil, err
	}
	s := &Cluster{bins: c.bins, owner: c.owner, base: base, dataDir: dataDir, logPath: filepath.Join(base, "postgres.log")}
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// WaitStreaming waits until a standby named name streams from c (and, when sync is
// set, is its synchronous standby), so a test starts its traffic on a replicated primary.
func (c *Cluster) WaitStreaming(ctx context.Context, name string, sync bool) error {
	ctx, cancel := context.WithTimeout(ctx, startupTimeout)
	defer cancel()
	for {
		var state, syncState string
		err := queryRow(ctx, c.URL, `SELECT state, sync_state FROM pg_stat_replication WHERE application_name = $1`,
			[]any{name}, &state, &syncState)
		if err == nil && state == "streaming" && (!sync || syncState == "sync") {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("standby %q not streaming from port %d (state %q, sync_state %q, last error %v): %w",
				name, c.Port, state, syncState, err, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Kill stops the server the way a crash does: SIGQUIT is PostgreSQL's immediate
// shutdown (no checkpoint, clients cut at once). It waits for the postmaster to exit.
func (c *Cluster) Kill() error {
	select {
	case <-c.pm.exited:
		return nil
	default:
	}
	if err := c.pm.proc.Signal(syscall.SIGQUIT); err != nil {
		return fmt.Errorf("signal postgres: %w", err)
	}
	select {
	case <-c.pm.exited:
		return nil
	case <-time.After(startupTimeout):
		_ = c.pm.proc.Kill()
		<-c.pm.exited
		return errors.New("postgres did not exit after SIGQUIT, killed")
	}
}

// Promote turns a standby into a primary and waits until it accepts writes. It first
// clears synchronous_standby_names with ALTER SYSTEM, as an operator must (see
// StandbyOptions.KeepSynchronousStandbyNames), unless keepSyncNames is set.
func (c *Cluster) Promote(ctx context.Context, keepSyncNames bool) error {
	conn, err := pgx.Connect(ctx, c.URL)
	if err != nil {
		return fmt.Errorf("connect to standby: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if !keepSyncNames {
		if _, err := conn.Exec(ctx, `ALTER SYSTEM SET synchronous_standby_names = ''`); err != nil {
			return fmt.Errorf("clear synchronous_standby_names: %w", err)
		}
		if _, err := conn.Exec(ctx, `SELECT pg_reload_conf()`); err != nil {
			return fmt.Errorf("reload configuration: %w", err)
		}
	}
	var promoted bool
	if err := conn.QueryRow(ctx, `SELECT pg_promote(true, 60)`).Scan(&promoted); err != nil {
		return fmt.Errorf("pg_promote: %w", err)
	}
	if !promoted {
		return errors.New("pg_promote: the standby did not leave recovery within 60s")
	}
	return nil
}

// Log returns the server log (startup, replication and crash messages), for a failing
// test to show.
func (c *Cluster) Log() string {
	b, _ := os.ReadFile(c.logPath)
	return string(b)
}

// Stop shuts the server down (fast) and removes its directory. Calling it more than once
// is safe, as is calling it after Kill.
func (c *Cluster) Stop(ctx context.Context) error {
	c.stopOnce.Do(func() {
		err := c.pm.stop(ctx)
		c.stopErr = errors.Join(err, os.RemoveAll(c.base))
	})
	return c.stopErr
}

// queryRow runs one query on a new connection to connURL and scans its row into dest.
func queryRow(ctx context.Context, connURL, sql string, args []any, dest ...any) error {
	conn, err := pgx.Connect(ctx, connURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return conn.QueryRow(ctx, sql, args...).Scan(dest...)
}

// quoteConf quotes a postgresql.conf string value.
func quoteConf(s string) string {
	out := []byte{'\''}
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' || s[i] == '\\' {
			out = append(out, '\\')
		}
		out = append(out, s[i])
	}
	return string(append(out, '\''))
}
