package pgserver

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/timerslack"
)

// throwawayMaxConnections leaves room for many parallel tests, each with its own pool.
const throwawayMaxConnections = 200

// startupTimeout bounds initdb-to-ready and pg_ctl waits; a cold local start takes a few
// seconds, so a minute means something is wrong rather than slow.
const startupTimeout = 60 * time.Second

// binaries are the PostgreSQL server programs of one installation; they must come from
// the same directory so that initdb, pg_ctl and postgres agree on the version.
type binaries struct {
	dir   string
	major int
}

func (b binaries) path(name string) string { return filepath.Join(b.dir, name) }

var pgVersionRE = regexp.MustCompile(`\(PostgreSQL\) (\d+)`)

// findBinaries returns the first installation that has initdb, pg_ctl and postgres:
// the one on PATH (resolved through symlinks, to find its siblings), then the newest
// /usr/lib/postgresql/*/bin, which Debian and Ubuntu keep off PATH. wantMajor, when not
// zero, selects an installation of that major version, because a data directory only
// runs under the version that created it.
func findBinaries(wantMajor int) (binaries, error) {
	var candidates []string
	if p, err := exec.LookPath("initdb"); err == nil {
		if resolved, err := filepath.EvalSymlinks(p); err == nil {
			candidates = append(candidates, filepath.Dir(resolved))
		}
		candidates = append(candidates, filepath.Dir(p))
	}
	candidates = append(candidates, debianBinDirs()...)

	var notes []string
	seen := map[string]bool{}
	for _, dir := range candidates {
		if seen[dir] {
			continue
		}
		seen[dir] = true
		missing := ""
		for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
			if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
				missing = name
				break
			}
		}
		if missing != "" {
			notes = append(notes, fmt.Sprintf("%s has no %s", dir, missing))
			continue
		}
		major, err := binMajor(filepath.Join(dir, "pg_ctl"))
		if err != nil {
			notes = append(notes, fmt.Sprintf("%s: %v", dir, err))
			continue
		}
		if wantMajor != 0 && major != wantMajor {
			notes = append(notes, fmt.Sprintf("%s is PostgreSQL %d", dir, major))
			continue
		}
		return binaries{dir: dir, major: major}, nil
	}
	want := "initdb, pg_ctl and postgres"
	if wantMajor != 0 {
		want = fmt.Sprintf("PostgreSQL %d (%s)", wantMajor, want)
	}
	if len(notes) == 0 {
		return binaries{}, fmt.Errorf("no %s on PATH or in /usr/lib/postgresql/*/bin", want)
	}
	return binaries{}, fmt.Errorf("no %s found: %s", want, strings.Join(notes, "; "))
}

// debianBinDirs lists /usr/lib/postgresql/*/bin, newest major first.
func debianBinDirs() []string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	version := func(d string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(d)), 64)
		return v
	}
	slices.SortFunc(dirs, func(a, b string) int {
		switch va, vb := version(a), version(b); {
		case va > vb:
			return -1
		case va < vb:
			return 1
		}
		return strings.Compare(a, b)
	})
	return dirs
}

func binMajor(pgCtl string) (int, error) {
	out, err := exec.Command(pgCtl, "--version").Output()
	if err != nil {
		return 0, fmt.Errorf("pg_ctl --version: %w", err)
	}
	m := pgVersionRE.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("unrecognised pg_ctl --version output %q", strings.TrimSpace(string(out)))
	}
	return strconv.Atoi(string(m[1]))
}

// runAs is the OS account the server programs run under. PostgreSQL refuses to run as
// root, so a root caller hands the cluster to the `postgres` user.
type runAs struct {
	name   string
	uid    uint32
	gid    uint32
	groups []uint32
}

// clusterOwner returns nil when the current user can run PostgreSQL itself, and the
// `postgres` account when running as root.
func clusterOwner() (*runAs, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, and PostgreSQL refuses to run as root, but there is no `postgres` OS user to run it as (%v); create one (e.g. useradd --system postgres) or run as a non-root user", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("postgres OS user: %w", err)
	}
	owner := &runAs{name: u.Username, uid: uint32(uid), gid: uint32(gid)}
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if g, err := strconv.ParseUint(id, 10, 32); err == nil {
				owner.groups = append(owner.groups, uint32(g))
			}
		}
	}
	return owner, nil
}

// chown hands path to owner; a no-op when not running as root.
func (o *runAs) chown(path string) error {
	if o == nil {
		return nil
	}
	return os.Chown(path, int(o.uid), int(o.gid))
}

// command builds a command that runs as owner (when set).
func (o *runAs) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = procAttr(o, false)
	// Interrupt first: initdb and pg_ctl clean up after SIGINT, not after SIGKILL.
	cmd.Cancel = func() error { return interrupt(cmd.Process) }
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// checkReachable verifies that owner may traverse every existing directory on the way to
// path. Root can reach a checkout under /root, but the postgres user cannot, and
// PostgreSQL's own error for that ("could not change directory") does not say why.
func (o *runAs) checkReachable(path string) error {
	if o == nil {
		return nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	var dirs []string
	for d := filepath.Dir(abs); ; d = filepath.Dir(d) {
		dirs = append(dirs, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	slices.Reverse(dirs)
	for _, d := range dirs {
		fi, err := os.Stat(d)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // created later by root with mode 0755
		}
		if err != nil {
			return err
		}
		if !o.canSearch(fi) {
			return fmt.Errorf("the %s OS user (uid %d) cannot enter %s (mode %04o), so PostgreSQL cannot reach %s", o.name, o.uid, d, fi.Mode().Perm(), abs)
		}
	}
	return nil
}

func (o *runAs) canSearch(fi fs.FileInfo) bool {
	uid, gid, ok := fileOwner(fi)
	perm := fi.Mode().Perm()
	if !ok {
		return true // cannot tell; let PostgreSQL report it
	}
	switch {
	case uid == o.uid:
		return perm&0o100 != 0
	case gid == o.gid || slices.Contains(o.groups, gid):
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}

// initdb creates a cluster in dataDir (which must be empty or absent) with a trusted
// `postgres` superuser: the servers listen on 127.0.0.1 only and hold no real data.
func initdb(ctx context.Context, bins binaries, owner *runAs, dataDir string, extraConf string) error {
	cmd := owner.command(ctx, bins.path("initdb"),
		"--pgdata="+dataDir,
		"--username=postgres",
		"--auth=trust",
		"--encoding=UTF8",
		"--locale=C",
		"--no-sync",
	)
	cmd.Dir = dataDir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("initdb %s: %w: %s", dataDir, err, lastLines(out, 15))
	}
	f, err := os.OpenFile(filepath.Join(dataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString("\n# Added by internal/pgserver.\n" + extraConf)
	return errors.Join(err, f.Close())
}

// throwawayConf trades durability for speed: the cluster is deleted after the tests.
// Unix sockets are off because temp paths can exceed the socket path limit.
var throwawayConf = fmt.Sprintf(`listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = %d
fsync = off
synchronous_commit = off
full_page_writes = off
`, throwawayMaxConnections)

// ownerFile records which process owns a throwaway directory, so that a later run can
// delete directories left behind by a test binary that was killed.
const ownerFile = "pgserver.owner"

// startLocalThrowaway initialises a cluster in a new temporary directory and runs its
// postmaster as a child process, on a free port of 127.0.0.1.
func startLocalThrowaway(ctx context.Context) (*Server, error) {
	c, err := StartCluster(ctx, ClusterOptions{})
	if err != nil {
		return nil, err
	}
	return &Server{URL: c.URL, Kind: KindLocal, stop: c.Stop}, nil
}

// newClusterDir makes the temporary base directory of one cluster, marked with this
// process as owner (see sweepStaleThrowaways) and handed to the cluster's OS user, and
// an empty data directory in it.
func newClusterDir(owner *runAs) (base, dataDir string, err error) {
	sweepStaleThrowaways()
	base, err = os.MkdirTemp("", "pgserver-*")
	if err != nil {
		return "", "", err
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(base)
		}
	}()
	if err := os.WriteFile(filepath.Join(base, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		return "", "", err
	}
	if err := owner.checkReachable(base); err != nil {
		return "", "", fmt.Errorf("%w; point TMPDIR at a directory it can reach", err)
	}
	if err := owner.chown(base); err != nil {
		return "", "", err
	}
	dataDir = filepath.Join(base, "data")
	if err := os.Mkdir(dataDir, 0o700); err != nil {
		return "", "", err
	}
	if err := owner.chown(dataDir); err != nil {
		return "", "", err
	}
	return base, dataDir, nil
}

// startPostmasterRetry runs startPostmaster, retrying a bind failure with a new port:
// a free port can be taken between choosing and binding it (other test processes do
// the same).
func startPostmasterRetry(ctx context.Context, bins binaries, owner *runAs, dataDir, logPath string) (pm *postmaster, err error) {
	for attempt := 1; ; attempt++ {
		pm, err = startPostmaster(ctx, bins, owner, dataDir, logPath)
		if err == nil || !errors.Is(err, errPortInUse) || attempt == 3 {
			return pm, err
		}
	}
}

var errPortInUse = errors.New("port already in use")

// postmaster is a server process started by this process.
type postmaster struct {
	url    string
	port   int
	proc   *os.Process
	exited chan struct{}
}

// startPostmaster runs `postgres` directly rather than through pg_ctl, so that the
// server is this process's child: on Linux it dies with the test binary (even one killed
// by -timeout), and a startup failure is seen at once rather than after pg_ctl's wait.
func startPostmaster(ctx context.Context, bins binaries, owner *runAs, dataDir, logPath string) (*postmaster, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own descriptor

	cmd := exec.Command(bins.path("postgres"), "-D", dataDir, "-p", strconv.Itoa(port))
	cmd.Dir = dataDir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = procAttr(owner, true)

	exited := make(chan struct{})
	if err := startChild(cmd, exited); err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	pm := &postmaster{
		url:    fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port),
		port:   port,
		proc:   cmd.Process,
		exited: exited,
	}
	if err := waitReady(ctx, pm.url, exited, startupTimeout); err != nil {
		stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_ = pm.stop(stopCtx)
		cancel()
		log, _ := os.ReadFile(logPath)
		if bytes.Contains(log, []byte("Address already in use")) {
			return nil, fmt.Errorf("postgres on port %d: %w", port, errPortInUse)
		}
		return nil, fmt.Errorf("postgres on 127.0.0.1:%d: %w; server log: %s", port, err, lastLines(log, 15))
	}
	return pm, nil
}

// startChild starts cmd, whose SysProcAttr asks for a parent-death signal, and closes
// exited when it ends. The signal is tied to the OS thread that forked the child, so
// the thread is pinned until the child exits; otherwise Go could retire the thread and
// take the child down with it.
func startChild(cmd *exec.Cmd, exited chan<- struct{}) error {
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		// With the slack this process was started with, not one it raised for itself
		// (acpload's -timer-slack): PostgreSQL runs as from the shell that started it.
		if err := timerslack.AsStarted(cmd.Start); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait()
		close(exited)
	}()
	return <-started
}

// stop asks for a fast shutdown (SIGINT: disconnect clients, no waiting) and waits for
// the process; if ctx ends first the process is killed so that Stop always returns.
func (pm *postmaster) stop(ctx context.Context) error {
	select {
	case <-pm.exited:
		return nil
	default:
	}
	if err := interrupt(pm.proc); err != nil {
		select {
		case <-pm.exited:
			return nil
		default:
			return fmt.Errorf("signal postgres: %w", err)
		}
	}
	select {
	case <-pm.exited:
		return nil
	case <-ctx.Done():
		_ = pm.proc.Kill()
		<-pm.exited
		return fmt.Errorf("postgres did not shut down in time, killed: %w", ctx.Err())
	}
}

// sweepStaleThrowaways deletes throwaway directories whose owning process is gone (a
// test binary killed before its cleanup ran); each holds a ~40 MB cluster.
func sweepStaleThrowaways() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "pgserver-*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue // not ours, or still being created
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || processAlive(pid) {
			continue
		}
		_ = os.RemoveAll(dir)
	}
}

// freePort asks the kernel for an unused port on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// lastLines keeps error messages short while keeping the lines that name the cause.
func lastLines(b []byte, n int) string {
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			lines = append(lines, line)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
