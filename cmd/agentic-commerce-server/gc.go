package main

import (
	"log/slog"
	"runtime/debug"
)

// defaultGCPercent is the garbage collector's target for serve when the environment
// does not set GOGC: the heap may grow to three times what is live before a cycle,
// where Go's default (100) lets it double. The server's live heap is small (pgx's
// buffers, the pools, the statement caches) and its garbage is per request, so
// collecting half as often costs a few MiB: measured with the full ACP flow
// (docs/PERFORMANCE.md, "Fourth round"), the server's CPU per request fell by 4–5% for
// 5–9 MiB more peak RSS; 300 and 400 gained under 1% more. GOGC (and GOMEMLIMIT) set
// in the environment keep their meaning.
const defaultGCPercent = 200

// applyGCDefault sets defaultGCPercent unless lookup (os.LookupEnv) finds GOGC, which
// the Go runtime has applied already, and logs the percentage in effect (-1: off).
func applyGCDefault(lookup func(string) (string, bool), logger *slog.Logger) int {
	percent, source := defaultGCPercent, "default"
	if _, set := lookup("GOGC"); set {
		// SetGCPercent returns the percentage it replaces: put it back.
		percent = debug.SetGCPercent(defaultGCPercent)
		debug.SetGCPercent(percent)
		source = "GOGC"
	} else {
		debug.SetGCPercent(defaultGCPercent)
	}
	logger.Info("garbage collector", slog.Int("gc_percent", percent), slog.String("source", source))
	return percent
}
