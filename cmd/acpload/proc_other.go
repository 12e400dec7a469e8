//go:build !linux

package main

import "syscall"

// childProcAttr leaves the child in acpload's process group: without a parent-death
// signal, a Ctrl-C reaching both is the safer way for the child to go.
func childProcAttr() *syscall.SysProcAttr { return nil }
