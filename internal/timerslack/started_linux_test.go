//go:build linux

package timerslack

import (
	"errors"
	"runtime"
	"testing"
	"time"
)

// TestAsStartedWithoutTheStartingSlack covers the fallback for a process whose
// starting slack could not be read (a seccomp filter that refuses prctl, say): start
// runs on the thread as it is, with the thread's own slack, which a child it starts
// would inherit (TestAsStartedHandsDownTheStartingSlack shows the inheritance), and
// AsStarted returns start's error unchanged. The test swaps the package's record of
// the starting slack, so it does not run in parallel with the others.
func TestAsStartedWithoutTheStartingSlack(t *testing.T) {
	savedStarted, savedErr := started, startedErr
	started, startedErr = 0, errors.New("prctl refused")
	defer func() { started, startedErr = savedStarted, savedErr }()

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	own, err := Thread()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = SetThread(own) }()
	raised := own + 3*time.Millisecond
	if err := SetThread(raised); err != nil {
		t.Fatal(err)
	}

	var during time.Duration
	if err := AsStarted(func() (err error) { during, err = Thread(); return err }); err != nil {
		t.Fatal(err)
	}
	if during != raised {
		t.Errorf("start ran with a slack of %s, want the thread's own %s", during, raised)
	}
	if got, err := Thread(); err != nil || got != raised {
		t.Errorf("after AsStarted the thread's slack = %s (%v), want %s", got, err, raised)
	}

	startErr := errors.New("exec: not started")
	if err := AsStarted(func() error { return startErr }); !errors.Is(err, startErr) {
		t.Errorf("AsStarted returned %v, want start's %v", err, startErr)
	}
}
