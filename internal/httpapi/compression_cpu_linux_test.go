//go:build linux

package httpapi

import (
	"syscall"
	"time"
)

// threadCPU is the CPU time the calling OS thread has used. A benchmark locked to its
// thread reads its own cost with it, which, unlike ns/op, other processes on a busy
// machine do not inflate.
func threadCPU() time.Duration {
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_THREAD, &usage); err != nil {
		return 0
	}
	return time.Duration(usage.Utime.Nano() + usage.Stime.Nano())
}
