//go:build unix && !linux

package pgserver

import "syscall"

// setParentDeathSignal is Linux-only; elsewhere a killed test binary leaves its server
// running until the next run's sweep removes the data directory.
func setParentDeathSignal(*syscall.SysProcAttr, syscall.Signal) {}
