//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/pgtest"
	"github.com/agentic-commerce/agentic-commerce-server/internal/timerslack"
)

// slackProbeEnv, set to a database URL, makes this test binary start as acpload does
// (probeTimerSlack, from TestMain) for TestAcploadRunsWithItsTimerSlack.
const slackProbeEnv = "ACPLOAD_TEST_SLACK_PROBE"

// probeSlack is the raised slack the probe asks for: above any the test may start with.
const probeSlack = 7 * time.Millisecond

// slackProbe is what the probe reports: its own slack and threads' names, and the slack
// of the server it started.
type slackProbe struct {
	Slack       time.Duration     `json:"slack"`
	Threads     map[string]string `json:"threads"`
	ServerSlack time.Duration     `json:"server_slack"`
}

// probeTimerSlack raises the timer slack as acpload's realMain does (which replaces the
// process: the replacement comes back here), starts the floor server on databaseURL as
// the bench starts a server, and prints a slackProbe on stdout.
func probeTimerSlack(databaseURL string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	slack := raiseTimerSlack(ctx, probeSlack, os.Stderr)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	srv, err := startServer(ctx, serverConfig{
		binary: self, databaseURL: databaseURL, logLevel: "info",
		env: []string{floorServerEnv + "=1", floorResponseEnv + "=" + floorSession},
	})
	if err != nil {
		return err
	}
	defer srv.stop()
	p := slackProbe{Slack: slack}
	if p.ServerSlack, err = timerslack.Process(srv.pid()); err != nil {
		return err
	}
	if p.Threads, err = timerslack.ThreadNames("self"); err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(p)
}

// TestAcploadRunsWithItsTimerSlack starts this test binary as acpload (probeTimerSlack):
// it runs with the slack it raised, on every thread, under the name it was started
// with, while the server it starts gets the slack it was itself started with.
func TestAcploadRunsWithItsTimerSlack(t *testing.T) {
	t.Parallel()
	databaseURL := pgtest.NewDatabase(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The probe starts from this thread and inherits its slack.
	runtime.LockOSThread()
	started, err := timerslack.Thread()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = append(os.Environ(), slackProbeEnv+"="+databaseURL)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	runtime.UnlockOSThread()
	if err != nil {
		t.Fatalf("probe: %v\n%s", err, errOut.String())
	}
	var p slackProbe
	if err := json.Unmarshal(out.Bytes(), &p); err != nil {
		t.Fatalf("probe's report %q: %v\n%s", out.String(), err, errOut.String())
	}
	want := max(started, probeSlack)
	if p.Slack != want {
		t.Errorf("acpload runs with a slack of %s, want %s", p.Slack, want)
	}
	if p.ServerSlack != started {
		t.Errorf("the server acpload started runs with a slack of %s, want acpload's starting %s", p.ServerSlack, started)
	}
	if len(p.Threads) == 0 {
		t.Errorf("no threads reported: %q", out.String())
	}
	name := filepath.Base(self)
	name = name[:min(len(name), timerslack.MaxThreadName)]
	for tid, got := range p.Threads {
		if got != name {
			t.Errorf("thread %s of acpload is named %q, want %q", tid, got, name)
		}
	}
}
