package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/pgtest"
)

// init keeps the main goroutine, which runs TestMain, on the main thread when this binary
// runs as the slack probe, so that the probe starts its server from another thread:
// one whose default slack is the raised one (see timerslack.AsStarted).
func init() {
	if os.Getenv(slackProbeEnv) != "" {
		runtime.LockOSThread()
	}
}

// TestMain serves as the bench's floor server when a test starts this binary as one
// (TestFloorServerStartsAsTheBenchStartsAServer), idles as a Go process to be pinned
// (TestPinProcessConfinesEveryThread), starts as acpload does to show its timer slack
// (TestAcploadRunsWithItsTimerSlack, Linux only), and runs the tests otherwise.
func TestMain(m *testing.M) {
	if os.Getenv(idleProcessEnv) == "1" {
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	if url := os.Getenv(slackProbeEnv); url != "" {
		if err := probeTimerSlack(url); err != nil {
			fmt.Fprintln(os.Stderr, "slack probe:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv(floorServerEnv) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		runFloorServerIfAsked(ctx)
	}
	pgtest.Main(m)
}
