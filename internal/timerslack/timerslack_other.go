//go:build !linux

package timerslack

import (
	"context"
	"log/slog"
	"time"
)

// Raise does nothing outside Linux, whose timer slack it sets: it reports a slack of 0.
func Raise(context.Context, time.Duration, string, *slog.Logger) (time.Duration, error) {
	return 0, nil
}

// AsStarted runs start: outside Linux there is no timer slack to hand down.
func AsStarted(start func() error) error { return start() }
