//go:build !unix

package pgserver

import (
	"io/fs"
	"os"
	"syscall"
)

// procAttr has nothing to set off Unix: there is no root to step down from.
func procAttr(*runAs, bool) *syscall.SysProcAttr { return nil }

// interrupt falls back to Kill: there is no SIGINT to send to another process.
func interrupt(p *os.Process) error { return p.Kill() }

// processAlive answers true so that no directory is swept when liveness is unknown.
func processAlive(int) bool { return true }

func fileOwner(fs.FileInfo) (uid, gid uint32, ok bool) { return 0, 0, false }
