//go:build linux

package timerslack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Raise gives every thread of the process a timer slack of at least want and returns
// the slack the process runs with. It must be called before the process opens anything
// it would not want to keep, or starts anything: it may replace the process, whose
// replacement runs main again up to Raise.
//
// A thread takes its slack from the thread that starts it, and the Go runtime starts
// its monitor thread, the one whose 20 µs sleeps the slack is for, before main runs.
// The kernel sets another thread's slack only through /proc/TID/timerslack_ns, which
// needs CAP_SYS_NICE, a capability a server has no other use for. So the way to reach
// the monitor is a new process image: Raise sets the slack of its own thread and
// replaces the process with the same binary, arguments and environment. execve keeps
// the process id, stdin, stdout and stderr, and the slack. The replacement finds mark, an environment
// variable's name, in its environment, so that a process never replaces itself twice,
// whatever the kernel reports; the variable's value is the name the kernel gave the
// process that was started (/proc/PID/comm). Raise returns only when there is nothing
// to do (want is 0, the slack is already as large, this is the replacement, or ctx is
// done: a signal came first) or when the replacement failed, with the reason.
//
// The kernel names a process after the file it executes, and the replacement's is
// /proc/self/exe: its threads would all be "exe" in ps, top, pgrep and perf. The
// replacement takes back the name of the process that was started, which it finds in
// mark, and logs a warning to logger if it cannot.
func Raise(ctx context.Context, want time.Duration, mark string, logger *slog.Logger) (time.Duration, error) {
	have, err := Thread()
	if err != nil {
		return 0, err
	}
	if name, replaced := os.LookupEnv(mark); replaced {
		_ = os.Unsetenv(mark)
		if err := nameThreads(name); err != nil {
			logger.Warn("the process runs under the name the kernel gave its replacement",
				slog.String("error", err.Error()))
		}
		if have < want {
			return have, fmt.Errorf("the replaced process still runs with %s", have)
		}
		return have, nil
	}
	if want == 0 || have >= want || ctx.Err() != nil {
		return have, nil
	}
	name, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		return have, err
	}
	// The slack is the calling thread's, and execve keeps that thread's.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := SetThread(want); err != nil {
		return have, err
	}
	// /proc/self/exe is this process's own binary even if its file has been replaced
	// or removed since it started (an upgrade in place).
	marked := mark + "=" + string(bytes.TrimSuffix(name, []byte("\n")))
	err = unix.Exec("/proc/self/exe", os.Args, append(os.Environ(), marked))
	// Still here: the exec failed, and this thread alone has the new slack. Put it back
	// so that the process is uniform, as it was started.
	_ = SetThread(have)
	return have, fmt.Errorf("exec /proc/self/exe: %w", err)
}

// Thread is the calling thread's timer slack. A caller that means one thread locks its
// goroutine to it (runtime.LockOSThread).
func Thread() (time.Duration, error) {
	ns, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
	if err != nil {
		return 0, fmt.Errorf("prctl(PR_GET_TIMERSLACK): %w", err)
	}
	return time.Duration(ns), nil
}

// SetThread sets the calling thread's timer slack, which the threads it starts, the
// processes it forks and the image it executes inherit. A caller that means one thread
// locks its goroutine to it (runtime.LockOSThread).
func SetThread(d time.Duration) error {
	if err := unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(d.Nanoseconds()), 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_TIMERSLACK): %w", err)
	}
	return nil
}

// nameThreads gives every thread of the process the name name (its first 15 bytes, as
// the kernel keeps), which ps, top, pgrep and perf show; an empty name changes
// nothing. A thread takes its name from the thread that starts it, so once every
// thread has it, the threads the runtime starts later have it too; one that starts
// while the threads are renamed is found on the next pass.
func nameThreads(name string) error {
	name = name[:min(len(name), MaxThreadName)]
	if name == "" {
		return nil
	}
	for range 5 {
		names, err := ThreadNames("self")
		if err != nil {
			return err
		}
		renamed := 0
		for tid, have := range names {
			if have == name {
				continue
			}
			err := os.WriteFile("/proc/self/task/"+tid+"/comm", []byte(name), 0)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			renamed++
		}
		if renamed == 0 {
			return nil
		}
	}
	return errors.New("the process's threads kept starting under another name")
}

// Process is the timer slack of process pid's main thread, as /proc/PID/timerslack_ns
// reports it.
func Process(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/timerslack_ns")
	if err != nil {
		return 0, err
	}
	ns, err := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("timerslack_ns %q: %w", b, err)
	}
	return time.Duration(ns), nil
}

// ThreadNames reads the name of each thread of process pid ("self" for this one), by
// thread id; a thread that exits while they are read is left out.
func ThreadNames(pid string) (map[string]string, error) {
	dir := "/proc/" + pid + "/task/"
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make(map[string]string, len(tasks))
	for _, task := range tasks {
		b, err := os.ReadFile(dir + task.Name() + "/comm")
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		names[task.Name()] = string(bytes.TrimSuffix(b, []byte("\n")))
	}
	return names, nil
}

// started is the timer slack the process was started with, or 0 when it is not known
// (startedErr): the slack of the thread that forked it. The kernel sets a thread's
// default slack, to which prctl(PR_SET_TIMERSLACK, 0) returns, from the slack of the
// thread that starts it; a process's main thread thus keeps the slack of the thread
// that forked the process, even across execve, while the threads of a process Raise
// replaced have the raised slack as their default. (A launcher that sets the new
// process's slack itself before executing it, as systemd's TimerSlackNSec= does,
// changes the main thread's slack but not its default: started is then the launcher's
// own.) Package initialisation runs on the main thread (the Go runtime locks the main
// goroutine there until main.main), which readStarted checks.
var started, startedErr = readStarted()

// readStarted reads the calling thread's default slack, which is the process's
// starting slack on its main thread, and leaves the thread's slack as it was.
func readStarted() (time.Duration, error) {
	if unix.Gettid() != unix.Getpid() {
		return 0, errors.New("the process's starting timer slack is read on its main thread, and this is not it")
	}
	own, err := Thread()
	if err != nil {
		return 0, err
	}
	if err := unix.Prctl(unix.PR_SET_TIMERSLACK, 0, 0, 0, 0); err != nil {
		return 0, fmt.Errorf("prctl(PR_SET_TIMERSLACK, 0): %w", err)
	}
	d, err := Thread()
	if serr := SetThread(own); err == nil {
		err = serr
	}
	return d, err
}

// AsStarted runs start, which starts a child process (exec.Cmd's Start, Run or
// Output), on a thread whose timer slack is the one this process was started with, so
// that the child starts with it too rather than with the slack Raise gave this process:
// a child measured beside this process (a server, PostgreSQL, pgbench) runs as it would
// have been started from the same shell. The thread gets its own slack back before
// AsStarted returns. When the starting slack is not known (a seccomp filter that
// refuses prctl, say), start runs on the thread as it is.
func AsStarted(start func() error) error {
	if startedErr != nil {
		return start()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	own, err := Thread()
	if err != nil {
		return err
	}
	if own == started {
		return start()
	}
	if err := SetThread(started); err != nil {
		return err
	}
	defer func() { _ = SetThread(own) }()
	return start()
}
