//go:build unix

package pgserver

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
)

// procAttr runs a child as owner (when set) and, where the OS supports it, makes it
// receive SIGQUIT (PostgreSQL's immediate shutdown) when this process dies.
func procAttr(owner *runAs, dieWithParent bool) *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{}
	if owner != nil {
		attr.Credential = &syscall.Credential{Uid: owner.uid, Gid: owner.gid, Groups: owner.groups}
	}
	if dieWithParent {
		setParentDeathSignal(attr, syscall.SIGQUIT)
	}
	return attr
}

// interrupt sends SIGINT, which PostgreSQL takes as "fast shutdown" and initdb and
// pg_ctl as "clean up and exit".
func interrupt(p *os.Process) error { return p.Signal(os.Interrupt) }

// processAlive reports whether pid names a live process (EPERM means it exists but
// belongs to someone else).
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func fileOwner(fi fs.FileInfo) (uid, gid uint32, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return st.Uid, st.Gid, true
}
