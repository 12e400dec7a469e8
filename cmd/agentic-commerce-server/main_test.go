package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/agentic-commerce/agentic-commerce-server/internal/pgtest"
	"github.com/agentic-commerce/agentic-commerce-server/internal/testkit"
)

var binary string

func TestMain(m *testing.M) {
	// The tests drive the real binary, as an operator does: signals, exit codes, stdout.
	dir, err := os.MkdirTemp("", "acs-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "agentic-commerce-server")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	defer os.RemoveAll(dir)
	pgtest.Main(m)
}

// run runs the binary with env and returns stdout, stderr and the exit code.
func run(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

func mustRun(t *testing.T, env []string, args ...string) string {
	t.Helper()
	out, errOut, code := run(t, env, args...)
	if code != 0 {
		t.Fatalf("%v: exit %d\nstdout: %s\nstderr: %s", args, code, out, errOut)
	}
	return out
}

// emptyDatabase creates a database with no schema at all.
func emptyDatabase(t *testing.T) string {
	t.Helper()
	admin := pgtest.ServerURL(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	name := fmt.Sprintf("acs_empty_%d", time.Now().UnixNano())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), admin)
		if err == nil {
			_, _ = c.Exec(context.Background(), "DROP DATABASE "+name+" WITH (FORCE)")
			_ = c.Close(context.Background())
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

func TestMigrateUpDownStatus(t *testing.T) {
	t.Parallel()
	env := []string{"DATABASE_URL=" + emptyDatabase(t)}

	if out := mustRun(t, env, "migrate", "status"); !strings.Contains(out, "pending") || strings.Contains(out, "applied") {
		t.Errorf("status of an empty database:\n%s", out)
	}
	if out := mustRun(t, env, "migrate", "up"); !regexp.MustCompile(`applied [1-9]\d* migration\(s\)`).MatchString(out) {
		t.Errorf("up: %s", out)
	}
	if out := mustRun(t, env, "migrate", "up"); !strings.Contains(out, "applied 0 migration(s)") {
		t.Errorf("second up: %s", out)
	}
	if out := mustRun(t, env, "migrate", "status"); !strings.Contains(out, "applied") || strings.Contains(out, "pending") {
		t.Errorf("status after up:\n%s", out)
	}
	mustRun(t, env, "migrate", "down")
	if out := mustRun(t, env, "migrate", "status"); !strings.Contains(out, "pending") {
		t.Errorf("status after down:\n%s", out)
	}
	mustRun(t, env, "migrate", "up")

	if _, errOut, code := run(t, env, "migrate", "sideways"); code == 0 || !strings.Contains(errOut, "usage:") {
		t.Errorf("bad action: exit %d, %s", code, errOut)
	}
}

func TestCatalogImportAndStock(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	env := []string{"DATABASE_URL=" + dbURL}
	count := func() (n int) {
		conn, err := pgx.Connect(context.Background(), dbURL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM variants`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	out := mustRun(t, env, "catalog", "import", "../../internal/catalog/demo/products.jsonl")
	if !regexp.MustCompile(`imported \d+ product\(s\), \d+ variant\(s\)`).MatchString(out) {
		t.Errorf("import output: %s", out)
	}
	before := count()
	if before < 5 {
		t.Fatalf("variants after the demo import = %d", before)
	}
	mustRun(t, env, "catalog", "import", "../../internal/catalog/demo/products.jsonl") // an upsert: same count
	if n := count(); n != before {
		t.Errorf("re-import changed the variant count: %d -> %d", before, n)
	}

	// A file with a good line and two bad ones: every bad line is reported, nothing lands.
	bad := filepath.Join(t.TempDir(), "bad.jsonl")
	content := `{"id":"p_new","variants":[{"id":"v_new","title":"New","price":{"amount":100,"currency":"USD"}}]}
{"id":"p_bad","variants":[{"id":"v_bad","title":"Bad"}]}
{"id":"p_worse","variants":[{"id":"v_worse","title":"Worse","price":{"amount":1.5,"currency":"USD"}}]}
`
	if err := os.WriteFile(bad, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := run(t, env, "catalog", "import", bad)
	if code == 0 || !strings.Contains(errOut, "line 2") || !strings.Contains(errOut, "line 3") || strings.Contains(errOut, "line 1:") {
		t.Errorf("bad import: exit %d\n%s", code, errOut)
	}
	if n := count(); n != before {
		t.Errorf("a refused import wrote variants: %d -> %d", before, n)
	}

	stock := func() *int32 {
		conn, err := pgx.Connect(context.Background(), dbURL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		var s *int32
		if err := conn.QueryRow(context.Background(), `SELECT stock_quantity FROM variants WHERE id = 'item_123'`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	mustRun(t, env, "catalog", "stock", "item_123", "5")
	if s := stock(); s == nil || *s != 5 {
		t.Errorf("stock = %v, want 5", s)
	}
	mustRun(t, env, "catalog", "stock", "item_123", "unlimited")
	if s := stock(); s != nil {
		t.Errorf("stock = %v, want unlimited", *s)
	}
	for _, args := range [][]string{{"catalog", "stock", "no_such_variant", "1"}, {"catalog", "stock", "item_123", "-1"}, {"catalog", "stock", "item_123", "lots"}} {
		if _, errOut, code := run(t, env, args...); code == 0 {
			t.Errorf("%v succeeded: %s", args, errOut)
		}
	}
}

// server is a running serve process.
type server struct {
	cmd  *exec.Cmd
	base string
	logs *syncBuffer
	done chan error
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startServer starts `serve` on a free port and waits until it listens.
func startServer(t *testing.T, env ...string) *server {
	t.Helper()
	cmd := exec.Command(binary, "serve")
	cmd.Env = append(os.Environ(), append([]string{"PORT=0", "HOST=127.0.0.1", "DRAIN_DELAY=0s",
		"CARD_FINGERPRINT_KEY=cmd-test-card-fingerprint-key-0123456789"}, env...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, logs: &syncBuffer{}, done: make(chan error, 1)}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			_, _ = s.logs.Write([]byte(line + "\n"))
			var entry struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal([]byte(line), &entry) == nil && entry.Msg == "serving" {
				addr <- entry.Addr
			}
		}
		s.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	})
	select {
	case a := <-addr:
		s.base = "http://" + a
	case err := <-s.done:
		t.Fatalf("server exited before listening: %v\n%s", err, s.logs.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("server did not start:\n%s", s.logs.String())
	}
	return s
}

// stop sends SIGTERM and expects a clean exit.
func (s *server) stop(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, s.logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("server did not stop after SIGTERM")
	}
	if !strings.Contains(s.logs.String(), `"msg":"stopped"`) {
		t.Errorf("no clean shutdown in the logs:\n%s", s.logs.String())
	}
}

func (s *server) call(t *testing.T, method, path, body string) (int, []byte) {
	t.Helper()
	var b any
	if body != "" {
		b = body
	}
	r, err := (&testkit.Client{Base: s.base}).Do(method, path, b)
	if err != nil {
		t.Fatal(err)
	}
	return r.Status, r.Body
}

func TestRestartLosesNothing(t *testing.T) {
	t.Parallel()
	env := []string{"DATABASE_URL=" + emptyDatabase(t)}
	mustRun(t, env, "migrate", "up")
	mustRun(t, env, "catalog", "import", "../../internal/catalog/demo/products.jsonl")

	srv := startServer(t, env...)
	status, body := srv.call(t, http.MethodPost, "/checkout_sessions", `{"items":[{"id":"item_123","quantity":2}],
		"fulfillment_address":{"name":"J","line_one":"1 Road","city":"SF","state":"CA","country":"US","postal_code":"94131"}}`)
	if status != http.StatusCreated {
		t.Fatalf("create: %d %s", status, body)
	}
	var created struct{ ID string }
	_ = json.Unmarshal(body, &created)
	status, body = srv.call(t, http.MethodPost, "/checkout_sessions/"+created.ID,
		`{"buyer":{"first_name":"Ada","last_name":"L","email":"ada@example.com"},"fulfillment_option_id":"standard_shipping"}`)
	if status != http.StatusOK || !bytes.Contains(body, []byte(`"status":"ready_for_payment"`)) {
		t.Fatalf("update: %d %s", status, body)
	}
	// No link is configured, so none is shown: links is a required array, empty.
	if !bytes.Contains(body, []byte(`"links":[]`)) {
		t.Errorf("links without TERMS_OF_USE_URL or PRIVACY_POLICY_URL: %s", body)
	}
	before := string(body)
	srv.stop(t)

	srv = startServer(t, env...)
	status, body = srv.call(t, http.MethodGet, "/checkout_sessions/"+created.ID, "")
	if status != http.StatusOK {
		t.Fatalf("get after restart: %d %s", status, body)
	}
	if after := string(body); after != before {
		t.Errorf("session changed across a restart:\nbefore %s\nafter  %s", before, after)
	}
	if status, body := srv.call(t, http.MethodGet, "/ready", ""); status != http.StatusOK {
		t.Errorf("/ready = %d %s", status, body)
	}
	srv.stop(t)
}

func TestReadyNeedsACurrentSchema(t *testing.T) {
	t.Parallel()
	env := []string{"DATABASE_URL=" + emptyDatabase(t), "MIGRATE_ON_START=false"}
	srv := startServer(t, env...)
	if status, body := srv.call(t, http.MethodGet, "/ready", ""); status != http.StatusServiceUnavailable || !bytes.Contains(body, []byte(`"type":"service_unavailable"`)) {
		t.Errorf("/ready on an empty database = %d %s", status, body)
	}
	if status, _ := srv.call(t, http.MethodGet, "/health", ""); status != http.StatusOK {
		t.Errorf("/health = %d", status)
	}
	mustRun(t, env, "migrate", "up")
	if status, body := srv.call(t, http.MethodGet, "/ready", ""); status != http.StatusOK {
		t.Errorf("/ready after migrate up = %d %s", status, body)
	}
	srv.stop(t)
}

func TestBadConfigurationStopsAtStart(t *testing.T) {
	t.Parallel()
	_, errOut, code := run(t, []string{"DATABASE_URL=", "PORT=nope", "API_KEYS=secret"}, "serve")
	if code == 0 || !strings.Contains(errOut, "DATABASE_URL") || !strings.Contains(errOut, "PORT") || !strings.Contains(errOut, "API_KEYS") {
		t.Errorf("exit %d: %s", code, errOut)
	}
	if out, _, code := run(t, nil, "help"); code != 0 || !strings.Contains(out, "catalog import FILE") {
		t.Errorf("help: exit %d %s", code, out)
	}
}
