//go:build linux

package main

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/timerslack"
)

// TestServeRaisesTheTimerSlack starts serve as an operator would and reads the slack
// the kernel holds for it: TIMER_SLACK's default, a value, 0 (as started), a larger
// slack given by whatever started the process (systemd's TimerSlackNSec), which is
// kept, and a process that finds itself marked as a replacement, which goes on as it
// is and says so. Whether it replaced itself or not, every thread keeps the name of
// the binary that was started, which ps, top, pgrep and perf show.
func TestServeRaisesTheTimerSlack(t *testing.T) {
	t.Parallel()
	// The kernel's default, given to every server started here whatever the slack of
	// the machine running the test.
	const started = 50 * time.Microsecond
	env := []string{"DATABASE_URL=" + emptyDatabase(t), "MIGRATE_ON_START=false"}
	// The kernel's name for the process: the binary's file name, cut to 15 bytes.
	startedName := filepath.Base(binary)
	startedName = startedName[:min(len(startedName), timerslack.MaxThreadName)]

	for _, tc := range []struct {
		name    string
		env     []string
		startAt time.Duration // the slack of the thread that starts the binary (0: started)
		want    time.Duration
		marked  bool   // the replacement's mark is in its environment: it replaced itself
		warn    bool   // the server says it runs without TIMER_SLACK
		threads string // every thread's name (empty: the binary's)
	}{
		{name: "default", want: time.Millisecond, marked: true},
		{name: "set", env: []string{"TIMER_SLACK=2ms"}, want: 2 * time.Millisecond, marked: true},
		{name: "off", env: []string{"TIMER_SLACK=0"}, want: started},
		{name: "larger from the parent", startAt: 5 * time.Millisecond, want: 5 * time.Millisecond},
		// A process that finds the mark of a replacement never replaces itself again,
		// even when the slack it finds is not the one asked for, and takes the name the
		// mark gives, as the kernel keeps it.
		{
			name: "marked as a replacement", env: []string{timerSlackReexec + "=a-name-longer-than-the-kernel-keeps"},
			want: started, marked: true, warn: true, threads: "a-name-longer-t",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			startAt := tc.startAt
			if startAt == 0 {
				startAt = started
			}
			srv := startServerWithSlack(t, startAt, append(env, tc.env...)...)
			pid := srv.cmd.Process.Pid
			if got, err := timerslack.Process(pid); err != nil || got != tc.want {
				t.Errorf("timer slack of the server = %s (%v), want %s", got, err, tc.want)
			}
			// The replacement is the process that was started (one id, signals reach it)
			// and it logged only after it replaced itself: one posture, one serving line.
			environ, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
			if err != nil {
				t.Fatal(err)
			}
			if got := bytes.Contains(environ, []byte(timerSlackReexec+"=")); got != tc.marked {
				t.Errorf("the replacement's mark in its environment = %v, want %v", got, tc.marked)
			}
			logs := srv.logs.String()
			if n := strings.Count(logs, `"msg":"security posture"`); n != 1 {
				t.Errorf("%d posture lines:\n%s", n, logs)
			}
			if !strings.Contains(logs, `"timer_slack":"`+tc.want.String()+`"`) {
				t.Errorf("the serving line does not show a timer slack of %s:\n%s", tc.want, logs)
			}
			if got := strings.Contains(logs, `"msg":"TIMER_SLACK not applied`); got != tc.warn {
				t.Errorf("warned that TIMER_SLACK is not applied = %v, want %v:\n%s", got, tc.warn, logs)
			}
			if status, body := srv.call(t, http.MethodGet, "/health", ""); status != http.StatusOK {
				t.Errorf("/health = %d %s", status, body)
			}
			name := tc.threads
			if name == "" {
				name = startedName
			}
			// After a request, so that the threads the runtime starts to serve it count.
			names, err := timerslack.ThreadNames(strconv.Itoa(pid))
			if err != nil {
				t.Fatal(err)
			}
			for tid, got := range names {
				if got != name {
					t.Errorf("thread %s is named %q, want %q", tid, got, name)
				}
			}
			srv.stop(t)
		})
	}
}

func TestServeRefusesATimerSlackAboveTheBound(t *testing.T) {
	t.Parallel()
	_, errOut, code := run(t, []string{"DATABASE_URL=postgres://db/acp", "TIMER_SLACK=20ms"}, "serve")
	if code == 0 || !strings.Contains(errOut, "TIMER_SLACK must be at most 10ms") {
		t.Errorf("exit %d: %s", code, errOut)
	}
}

// startServerWithSlack starts serve from a thread whose timer slack is slack, which the
// new process inherits, as from systemd's TimerSlackNSec.
func startServerWithSlack(t *testing.T, slack time.Duration, env ...string) *server {
	t.Helper()
	// The child is forked from the thread that calls Start: keep this goroutine on one
	// thread, give it the slack, and give it back its own afterwards.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	own, err := timerslack.Thread()
	if err != nil {
		t.Fatal(err)
	}
	if err := timerslack.SetThread(slack); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = timerslack.SetThread(own) }()
	return startServer(t, env...)
}
