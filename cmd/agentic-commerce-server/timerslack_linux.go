//go:build linux

package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// timerSlackReexec is set in the environment of the process serve replaces itself
// with, so that a process never replaces itself twice, whatever the kernel reports.
const timerSlackReexec = "AGENTIC_COMMERCE_SERVER_TIMER_SLACK_REEXEC"

// raiseTimerSlack gives every thread of the process a timer slack of at least want
// (TIMER_SLACK) and returns the slack serve runs with.
//
// A thread takes its slack from the thread that starts it, and the Go runtime starts
// its monitor thread, the one whose 20 µs sleeps the slack is for, before main runs.
// The kernel sets another thread's slack only through /proc/PID/timerslack_ns, which
// reaches the process's first thread alone and needs CAP_SYS_NICE. So the way to reach
// the monitor is a new process image: raiseTimerSlack sets the slack of its own thread
// and replaces the process with the same binary, arguments and environment. execve
// keeps the process id, the open files (stdin, stdout, stderr: serve has opened
// nothing else yet) and the slack. It returns only when there is nothing to do (want
// is 0, the slack is already as large, this is the replacement, or ctx is done: a
// signal came first) or when the replacement failed, with the reason.
func raiseTimerSlack(ctx context.Context, want time.Duration) (time.Duration, error) {
	have, err := timerSlack()
	if err != nil {
		return 0, err
	}
	if _, replaced := os.LookupEnv(timerSlackReexec); replaced {
		_ = os.Unsetenv(timerSlackReexec)
		if have < want {
			return have, fmt.Errorf("the replaced process still runs with %s", have)
		}
		return have, nil
	}
	if want == 0 || have >= want || ctx.Err() != nil {
		return have, nil
	}
	// The slack is the calling thread's, and execve keeps that thread's.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := setTimerSlack(want); err != nil {
		return have, err
	}
	// /proc/self/exe is this process's own binary even if its file has been replaced
	// or removed since it started (an upgrade in place).
	err = unix.Exec("/proc/self/exe", os.Args, append(os.Environ(), timerSlackReexec+"=1"))
	// Still here: the exec failed, and this thread alone has the new slack. Put it back
	// so that the process is uniform, as it was started.
	_ = setTimerSlack(have)
	return have, fmt.Errorf("exec /proc/self/exe: %w", err)
}

// timerSlack is the calling thread's timer slack.
func timerSlack() (time.Duration, error) {
	ns, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
	if err != nil {
		return 0, fmt.Errorf("prctl(PR_GET_TIMERSLACK): %w", err)
	}
	return time.Duration(ns), nil
}

// setTimerSlack sets the calling thread's timer slack, which the threads it starts
// and the image it executes inherit.
func setTimerSlack(d time.Duration) error {
	if err := unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(d.Nanoseconds()), 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_TIMERSLACK): %w", err)
	}
	return nil
}
