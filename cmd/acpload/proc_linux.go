//go:build linux

package main

import "syscall"

// childProcAttr puts a child in its own process group (a terminal's Ctrl-C reaches only
// acpload, which then stops the child itself) and has the kernel kill it should acpload
// die without cleaning up.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
