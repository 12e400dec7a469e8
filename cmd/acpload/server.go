package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/timerslack"
)

// serverConfig says how the bench starts the server binary.
type serverConfig struct {
	binary      string
	databaseURL string
	// logLevel is LOG_LEVEL; at info (the default) every request writes an access log
	// line, as in production.
	logLevel string
	// env are extra KEY=VALUE settings (GOGC, GOMAXPROCS, ...), applied last.
	env []string
}

// serverProcess is a running server started by the bench.
type serverProcess struct {
	cmd  *exec.Cmd
	base string
	// ready is the time from exec to the first 200 on /ready.
	ready  time.Duration
	logs   *logTail
	exited chan struct{}
	// waitErr is set once exited is closed.
	waitErr error
}

// serverEnv is the whole environment of the server: nothing is inherited but the basics
// of a process, so settings of the caller's shell (API_KEYS, WEBHOOK_URL, ...) cannot
// change what is measured.
func serverEnv(cfg serverConfig, port int) []string {
	env := []string{
		"DATABASE_URL=" + cfg.databaseURL,
		"HOST=127.0.0.1",
		"PORT=" + strconv.Itoa(port),
		"LOG_LEVEL=" + cfg.logLevel,
		// The bench plays many agents from one address: no rate limit.
		"RATE_LIMIT_RPS=0",
		"DRAIN_DELAY=0s",
		"SHUTDOWN_TIMEOUT=5s",
		// As in production: delegated cards are fingerprinted with an HMAC key.
		"CARD_FINGERPRINT_KEY=acpload-benchmark-fingerprint-key-0123456789",
	}
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "TZ"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return append(env, cfg.env...)
}

// startServer runs `binary serve` and waits until /ready answers 200. With LOG_LEVEL
// info or debug it listens on a port of its choosing (PORT=0) and the address is read
// from its "serving" log line; at warn or error that line is not written, so a free
// port is chosen here first.
func startServer(ctx context.Context, cfg serverConfig) (_ *serverProcess, err error) {
	port := 0
	quiet := cfg.logLevel == "warn" || cfg.logLevel == "error"
	if quiet {
		if port, err = freePort(); err != nil {
			return nil, err
		}
	}
	cmd := exec.Command(cfg.binary, "serve")
	cmd.Env = serverEnv(cfg, port)
	cmd.Stdout = io.Discard
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	// Its own process group, so a Ctrl-C in the terminal reaches the bench, which then
	// stops the server itself; and killed with the bench should the bench die.
	cmd.SysProcAttr = childProcAttr()

	s := &serverProcess{cmd: cmd, logs: newLogTail(40), exited: make(chan struct{})}
	start := time.Now()
	// The parent-death signal belongs to the thread that forked the child, so that
	// thread stays locked until the child exits.
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := timerslack.AsStarted(cmd.Start); err != nil {
			started <- err
			return
		}
		started <- nil
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start %s: %w", cfg.binary, err)
	}
	defer func() {
		if err != nil {
			s.stop()
		}
	}()

	addr := make(chan string, 1)
	go s.readLogs(stderr, addr)
	if quiet {
		addr <- net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	}

	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	select {
	case a := <-addr:
		s.base = "http://" + a
	case <-s.exited:
		return nil, fmt.Errorf("server exited before listening: %v\n%s", s.waitErr, s.logs)
	case <-deadline.C:
		return nil, fmt.Errorf("server did not listen within 30s:\n%s", s.logs)
	case <-ctx.Done():
		return nil, ctx.Err()
	}

	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		if ok := probeReady(ctx, client, s.base); ok {
			s.ready = time.Since(start)
			return s, nil
		}
		select {
		case <-tick.C:
		case <-s.exited:
			return nil, fmt.Errorf("server exited before it was ready: %v\n%s", s.waitErr, s.logs)
		case <-deadline.C:
			return nil, fmt.Errorf("server not ready within 30s:\n%s", s.logs)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// probeReady reports whether GET /ready answers 200.
func probeReady(ctx context.Context, client *http.Client, base string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/ready", nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// readLogs keeps the last log lines for error messages and sends the address of the
// "serving" line. It must keep reading: a server blocked on a full stderr pipe would
// stall mid-request.
func (s *serverProcess) readLogs(r io.Reader, addr chan<- string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		s.logs.add(string(line))
		if !strings.Contains(string(line), `"msg":"serving"`) {
			continue
		}
		var entry struct {
			Addr string `json:"addr"`
		}
		if json.Unmarshal(line, &entry) == nil && entry.Addr != "" {
			select {
			case addr <- entry.Addr:
			default:
			}
		}
	}
	_, _ = io.Copy(io.Discard, r)
}

// pid is the server's process id.
func (s *serverProcess) pid() int { return s.cmd.Process.Pid }

// stop asks the server to shut down (SIGTERM) and kills it if it has not exited after
// 15 seconds. It returns the exit error of a server that did not stop cleanly.
func (s *serverProcess) stop() error {
	select {
	case <-s.exited:
		return s.waitErr
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		return s.waitErr
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
		return errors.New("server did not stop within 15s of SIGTERM; killed")
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

// logTail keeps the last n lines written to it.
type logTail struct {
	mu    sync.Mutex
	n     int
	lines []string
}

func newLogTail(n int) *logTail { return &logTail{n: n} }

func (t *logTail) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) == t.n {
		t.lines = append(t.lines[:0], t.lines[1:]...)
	}
	t.lines = append(t.lines, line)
}

// String returns the kept lines.
func (t *logTail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}
