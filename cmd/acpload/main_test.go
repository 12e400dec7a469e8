package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/pgtest"
)

// TestMain serves as the bench's floor server when a test starts this binary as one
// (TestFloorServerStartsAsTheBenchStartsAServer), idles as a Go process to be pinned
// (TestPinProcessConfinesEveryThread), and runs the tests otherwise.
func TestMain(m *testing.M) {
	if os.Getenv(idleProcessEnv) == "1" {
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	if os.Getenv(floorServerEnv) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		runFloorServerIfAsked(ctx)
	}
	pgtest.Main(m)
}
