package main

import (
	"log/slog"
	"runtime/debug"
	"testing"
)

// TestApplyGCDefault holds serve's garbage collector target: 200 when GOGC is unset,
// and whatever the runtime took from GOGC when it is set.
func TestApplyGCDefault(t *testing.T) {
	original := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(original) })
	logger := slog.New(slog.DiscardHandler)

	unset := func(string) (string, bool) { return "", false }
	if got := applyGCDefault(unset, logger); got != defaultGCPercent {
		t.Errorf("GOGC unset: applyGCDefault = %d, want %d", got, defaultGCPercent)
	}
	if now := debug.SetGCPercent(100); now != defaultGCPercent {
		t.Errorf("GOGC unset: the runtime's percentage is %d, want %d", now, defaultGCPercent)
	}

	// The runtime applied GOGC=50 at start; applyGCDefault must leave it.
	debug.SetGCPercent(50)
	set := func(k string) (string, bool) { return "50", k == "GOGC" }
	if got := applyGCDefault(set, logger); got != 50 {
		t.Errorf("GOGC=50: applyGCDefault = %d, want 50", got)
	}
	if now := debug.SetGCPercent(100); now != 50 {
		t.Errorf("GOGC=50: the runtime's percentage is %d, want 50", now)
	}
}
