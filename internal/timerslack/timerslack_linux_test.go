//go:build linux

package timerslack_test

import (
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentic-commerce/agentic-commerce-server/internal/timerslack"
)

// TestAsStartedHandsDownTheStartingSlack starts a child from a thread whose slack was
// raised: without AsStarted the child takes the raised slack, with it the slack the
// test process was started with; and the thread keeps its raised slack afterwards.
func TestAsStartedHandsDownTheStartingSlack(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	own, err := timerslack.Thread()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = timerslack.SetThread(own) }()

	var started time.Duration
	if err := timerslack.AsStarted(func() (err error) {
		started, err = timerslack.Thread()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	raised := started + 3*time.Millisecond
	if err := timerslack.SetThread(raised); err != nil {
		t.Fatal(err)
	}

	if got := childSlack(t, func(cmd *exec.Cmd) error { return cmd.Run() }); got != raised {
		t.Errorf("a child started from the thread has a slack of %s, want the thread's %s", got, raised)
	}
	asStarted := childSlack(t, func(cmd *exec.Cmd) error {
		return timerslack.AsStarted(cmd.Run)
	})
	if asStarted != started {
		t.Errorf("a child started through AsStarted has a slack of %s, want the process's starting %s", asStarted, started)
	}
	if got, err := timerslack.Thread(); err != nil || got != raised {
		t.Errorf("after AsStarted the thread's slack = %s (%v), want %s", got, err, raised)
	}
}

// childSlack runs a child that prints its own timer slack, started by start.
func childSlack(t *testing.T, start func(*exec.Cmd) error) time.Duration {
	t.Helper()
	var out strings.Builder
	cmd := exec.Command("cat", "/proc/self/timerslack_ns")
	cmd.Stdout = &out
	if err := start(cmd); err != nil {
		t.Fatal(err)
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(out.String()), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return time.Duration(ns)
}

// TestThreadNames reads this process's threads: the test's own thread is among them,
// under the name the kernel keeps for it.
func TestThreadNames(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	names, err := timerslack.ThreadNames("self")
	if err != nil {
		t.Fatal(err)
	}
	tid := strconv.Itoa(unix.Gettid())
	name, ok := names[tid]
	if !ok {
		t.Fatalf("thread %s not among %v", tid, names)
	}
	if name == "" || len(name) > timerslack.MaxThreadName {
		t.Errorf("thread %s is named %q", tid, name)
	}
}
