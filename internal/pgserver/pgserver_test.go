package pgserver

import (
	"context"
	"errors"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// requireLocalBinaries skips tests of the local path on machines without PostgreSQL
// server binaries; the other paths are covered where they exist (CI, Docker hosts).
func requireLocalBinaries(t *testing.T) {
	t.Helper()
	if _, err := findBinaries(0); err != nil {
		t.Skipf("local PostgreSQL binaries not available: %v", err)
	}
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func queryString(t *testing.T, ctx context.Context, connURL, sql string) string {
	t.Helper()
	conn, err := pgx.Connect(ctx, connURL)
	if err != nil {
		t.Fatalf("connect %s: %v", connURL, err)
	}
	defer conn.Close(ctx)
	var s string
	if err := conn.QueryRow(ctx, sql).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

func portOf(t *testing.T, connURL string) string {
	t.Helper()
	u, err := url.Parse(connURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Port()
}

func TestStartLocalThrowaway(t *testing.T) {
	t.Parallel()
	requireLocalBinaries(t)
	ctx := testContext(t)

	srv, err := startLocalThrowaway(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop(context.Background()) })
	if srv.Kind != KindLocal {
		t.Errorf("Kind = %q, want %q", srv.Kind, KindLocal)
	}
	if !strings.HasPrefix(srv.URL, "postgres://postgres@127.0.0.1:") || !strings.HasSuffix(srv.URL, "/postgres?sslmode=disable") {
		t.Errorf("URL = %q, want a superuser URL to 127.0.0.1/postgres", srv.URL)
	}
	for setting, want := range map[string]string{
		"fsync":                   "off",
		"synchronous_commit":      "off",
		"full_page_writes":        "off",
		"max_connections":         "200",
		"unix_socket_directories": "",
		"server_encoding":         "UTF8",
	} {
		if got := queryString(t, ctx, srv.URL, "SHOW "+setting); got != want {
			t.Errorf("SHOW %s = %q, want %q", setting, got, want)
		}
	}
	if got := queryString(t, ctx, srv.URL, "SELECT rolsuper::text FROM pg_roles WHERE rolname = current_user"); got != "true" {
		t.Errorf("connected role is not a superuser")
	}

	dataDir := queryString(t, ctx, srv.URL, "SHOW data_directory")
	base := filepath.Dir(dataDir)
	if err := srv.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := os.Stat(base); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("throwaway directory %s still exists after Stop (stat err %v)", base, err)
	}
	if conn, err := net.DialTimeout("tcp", "127.0.0.1:"+portOf(t, srv.URL), time.Second); err == nil {
		conn.Close()
		t.Errorf("server still listening after Stop")
	}
	if err := srv.Stop(ctx); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// TestStartLocalThrowawayTwice starts two servers at once, as two test packages do.
func TestStartLocalThrowawayTwice(t *testing.T) {
	t.Parallel()
	requireLocalBinaries(t)
	ctx := testContext(t)

	var servers [2]*Server
	errs := make(chan error, 2)
	for i := range servers {
		go func() {
			var err error
			servers[i], err = startLocalThrowaway(ctx)
			errs <- err
		}()
	}
	for range servers {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	for _, s := range servers {
		if s != nil {
			t.Cleanup(func() { _ = s.Stop(context.Background()) })
		}
	}
	if t.Failed() {
		return
	}
	if servers[0].URL == servers[1].URL {
		t.Fatalf("both servers have URL %s", servers[0].URL)
	}
	for _, s := range servers {
		if got := queryString(t, ctx, s.URL, "SELECT 'ok'"); got != "ok" {
			t.Errorf("query on %s = %q", s.URL, got)
		}
		if err := s.Stop(ctx); err != nil {
			t.Errorf("Stop %s: %v", s.URL, err)
		}
	}
}

func TestStartThrowawayPrefersTestDatabaseURL(t *testing.T) {
	t.Setenv("PGTEST_BACKEND", "") // the default order is what is tested here
	requireLocalBinaries(t)
	ctx := testContext(t)
	backing, err := startLocalThrowaway(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = backing.Stop(context.Background()) })

	t.Setenv("TEST_DATABASE_URL", backing.URL)
	srv, err := StartThrowaway(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if srv.Kind != KindEnv || srv.URL != backing.URL {
		t.Fatalf("StartThrowaway = {%q %q}, want {%q %q}", srv.Kind, srv.URL, KindEnv, backing.URL)
	}
	if err := srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ping(ctx, backing.URL, 5*time.Second); err != nil {
		t.Fatalf("Stop of an env server must not stop it: %v", err)
	}
}

func TestStartThrowawayBadTestDatabaseURL(t *testing.T) {
	t.Setenv("PGTEST_BACKEND", "")
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:"+strconv.Itoa(port)+"/postgres?sslmode=disable&connect_timeout=2")
	_, err = StartThrowaway(testContext(t))
	if err == nil || !strings.Contains(err.Error(), "TEST_DATABASE_URL") {
		t.Fatalf("err = %v, want one naming TEST_DATABASE_URL", err)
	}
}

// TestStartThrowaway goes through the public entry point; here that is the local path
// unless Docker answers, or the path PGTEST_BACKEND forces (CI forces testcontainers, on
// an image it builds: PGTEST_IMAGE).
func TestStartThrowaway(t *testing.T) {
	t.Setenv("TEST_DATABASE_URL", "")
	backend, err := throwawayBackend()
	if err != nil {
		t.Fatal(err)
	}
	if backend != BackendTestcontainers {
		requireLocalBinaries(t)
	}
	ctx := testContext(t)
	start := time.Now()
	srv, err := StartThrowaway(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("StartThrowaway: kind %s in %s", srv.Kind, time.Since(start).Round(time.Millisecond))
	if backend != BackendAuto && srv.Kind != backend {
		t.Errorf("PGTEST_BACKEND=%s gave a server of kind %s", backend, srv.Kind)
	}
	if srv.Kind == KindTestcontainers {
		// Published on the loopback address only, and reached through it.
		u, err := url.Parse(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		if u.Hostname() != "127.0.0.1" {
			t.Errorf("container URL host = %q, want 127.0.0.1", u.Hostname())
		}
		t.Logf("container image %s: %s", throwawayImage(), queryString(t, ctx, srv.URL, "SELECT version()"))
	}
	defer func() {
		if err := srv.Stop(ctx); err != nil {
			t.Error(err)
		}
	}()
	if got := queryString(t, ctx, srv.URL, "SELECT current_database()"); got != "postgres" {
		t.Errorf("current_database() = %q", got)
	}
}

func TestThrowawayBackendSetting(t *testing.T) {
	for _, tc := range []struct{ env, want string }{
		{"", BackendAuto}, {"auto", BackendAuto}, {" Testcontainers ", BackendTestcontainers}, {"local", BackendLocal},
	} {
		t.Setenv("PGTEST_BACKEND", tc.env)
		got, err := throwawayBackend()
		if err != nil || got != tc.want {
			t.Errorf("PGTEST_BACKEND=%q: got %q, %v; want %q", tc.env, got, err, tc.want)
		}
	}
	t.Setenv("PGTEST_BACKEND", "docker")
	if _, err := StartThrowaway(t.Context()); err == nil || !strings.Contains(err.Error(), "PGTEST_BACKEND") {
		t.Errorf("PGTEST_BACKEND=docker: err = %v, want one naming the setting", err)
	}
	// A forced path must not be replaced by a server named in the environment.
	t.Setenv("PGTEST_BACKEND", "local")
	t.Setenv("TEST_DATABASE_URL", "postgres://127.0.0.1:1/postgres")
	if _, err := StartThrowaway(t.Context()); err == nil || !strings.Contains(err.Error(), "both set") {
		t.Errorf("PGTEST_BACKEND with TEST_DATABASE_URL: err = %v, want a refusal", err)
	}
}

func TestThrowawayImageSetting(t *testing.T) {
	t.Setenv("PGTEST_IMAGE", "")
	if got := throwawayImage(); got != ThrowawayImage {
		t.Errorf("default image = %q, want %q", got, ThrowawayImage)
	}
	t.Setenv("PGTEST_IMAGE", "acp-local/postgres:bookworm")
	if got := throwawayImage(); got != "acp-local/postgres:bookworm" {
		t.Errorf("PGTEST_IMAGE not honoured: %q", got)
	}
}

func TestDockerProbeFailsFast(t *testing.T) {
	start := time.Now()
	err := probeDocker(t.Context())
	elapsed := time.Since(start)
	t.Logf("docker probe: %v in %s", err, elapsed)
	if elapsed > dockerPingTimeout+time.Second {
		t.Errorf("docker probe took %s, want at most about %s", elapsed, dockerPingTimeout)
	}
}

func TestStartLocalDevIdempotent(t *testing.T) {
	t.Parallel()
	requireLocalBinaries(t)
	ctx := testContext(t)
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	root := tempDirReachable(t)
	dataDir := filepath.Join(root, ".data", "postgres")
	t.Cleanup(func() { _ = StopDev(context.Background(), dataDir) })

	srv, err := startLocalDev(ctx, dataDir, port)
	if err != nil {
		t.Fatal(err)
	}
	want := "postgres://postgres@127.0.0.1:" + strconv.Itoa(port) + "/acp?sslmode=disable"
	if srv.URL != want || srv.Kind != KindLocal {
		t.Fatalf("startLocalDev = {%q %q}, want {%q %q}", srv.Kind, srv.URL, KindLocal, want)
	}
	if err := srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	pid1 := postmasterPID(t, dataDir)
	conn, err := pgx.Connect(ctx, srv.URL)
	if err != nil {
		t.Fatalf("dev server must survive Server.Stop: %v", err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')`); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if _, err := os.Stat(filepath.Join(root, ".data", "postgres.log")); err != nil {
		t.Errorf("server log: %v", err)
	}

	// A second start reuses the running cluster.
	srv2, err := startLocalDev(ctx, dataDir, port)
	if err != nil {
		t.Fatal(err)
	}
	if srv2.URL != srv.URL {
		t.Errorf("second URL %q != first %q", srv2.URL, srv.URL)
	}
	if pid2 := postmasterPID(t, dataDir); pid2 != pid1 {
		t.Errorf("second start restarted the server: pid %s -> %s", pid1, pid2)
	}

	// StopDev stops it, twice without complaint; a restart keeps the data.
	if err := StopDev(ctx, dataDir); err != nil {
		t.Fatal(err)
	}
	if err := StopDev(ctx, dataDir); err != nil {
		t.Fatalf("second StopDev: %v", err)
	}
	if err := ping(ctx, srv.URL, 2*time.Second); err == nil {
		t.Fatal("server still answers after StopDev")
	}
	srv3, err := startLocalDev(ctx, dataDir, port)
	if err != nil {
		t.Fatal(err)
	}
	if got := queryString(t, ctx, srv3.URL, "SELECT v FROM kept"); got != "still here" {
		t.Errorf("data after restart = %q", got)
	}
}

func TestStopDevWithoutCluster(t *testing.T) {
	if err := StopDev(testContext(t), filepath.Join(t.TempDir(), "nothing")); err != nil {
		t.Fatal(err)
	}
}

func TestStartDevPrefersDatabaseURL(t *testing.T) {
	const u = "postgres://someone@db.example:5432/app"
	t.Setenv("DATABASE_URL", u)
	srv, err := StartDev(testContext(t), filepath.Join(t.TempDir(), "unused"))
	if err != nil {
		t.Fatal(err)
	}
	if srv.Kind != KindEnv || srv.URL != u {
		t.Fatalf("StartDev = {%q %q}, want {%q %q}", srv.Kind, srv.URL, KindEnv, u)
	}
}

func TestStartDevUnreachableDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root hands the cluster to another user")
	}
	requireLocalBinaries(t)
	private := filepath.Join(t.TempDir(), "private")
	if err := os.Mkdir(private, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := startLocalDev(testContext(t), filepath.Join(private, "checkout", ".data", "postgres"), 1)
	if err == nil || !strings.Contains(err.Error(), "DATABASE_URL") || !strings.Contains(err.Error(), private) {
		t.Fatalf("err = %v, want one naming %s and DATABASE_URL", err, private)
	}
}

func TestDatabaseURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "postgres://postgres@127.0.0.1:5432/acp_x?sslmode=disable"},
		{"postgresql://u:p%40ss@h/db", "postgresql://u:p%40ss@h/acp_x"},
		{"postgres://u@h:1", "postgres://u@h:1/acp_x"},
		{"host=h user=u dbname=other", "host=h user=u dbname=other dbname='acp_x'"},
	} {
		got, err := DatabaseURL(tc.in, "acp_x")
		if err != nil || got != tc.want {
			t.Errorf("DatabaseURL(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// tempDirReachable returns a temporary directory the postgres user can enter even when
// the test runs as root (t.TempDir is private to root).
func tempDirReachable(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func postmasterPID(t *testing.T, dataDir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, _, _ := strings.Cut(string(b), "\n")
	return pid
}
