package httpapi

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// TestAccessLogLine pins the access log, which operators parse: one JSON line a request
// with these fields and no others, at INFO, and none when the logger's level is above.
func TestAccessLogLine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		level slog.Level
		lines int
	}{
		{name: "info", level: slog.LevelInfo, lines: 1},
		{name: "warn", level: slog.LevelWarn, lines: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var logs bytes.Buffer
			logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: tc.level}))
			srv := httptest.NewServer(New(Config{PublicBaseURL: "https://shop.example/"}, Deps{Logger: logger}))
			t.Cleanup(srv.Close)
			resp, body := roundTrip(t, srv, http.MethodGet, discoveryPath)
			// The line is written after the response; Close waits for the handler, and so
			// for the write to logs.
			srv.Close()

			lines := slices.Collect(strings.Lines(logs.String()))
			if len(lines) != tc.lines {
				t.Fatalf("%d log lines, want %d:\n%s", len(lines), tc.lines, logs.String())
			}
			if tc.lines == 0 {
				return
			}
			var entry map[string]any
			if err := json.Unmarshal([]byte(lines[0]), &entry); err != nil {
				t.Fatalf("%v: %s", err, lines[0])
			}
			wantKeys := []string{"bytes", "duration_ms", "level", "method", "msg", "path", "request_id", "route", "status", "time"}
			if got := slices.Sorted(maps.Keys(entry)); !slices.Equal(got, wantKeys) {
				t.Errorf("fields = %v, want %v", got, wantKeys)
			}
			for key, want := range map[string]any{
				"level": "INFO", "msg": "request", "method": http.MethodGet, "route": discoveryPath,
				"path": discoveryPath, "status": float64(resp.StatusCode), "bytes": float64(len(body)),
				"request_id": resp.Header.Get("Request-Id"),
			} {
				if entry[key] != want {
					t.Errorf("%s = %v (%T), want %v", key, entry[key], entry[key], want)
				}
			}
			if d, ok := entry["duration_ms"].(float64); !ok || d < 0 {
				t.Errorf("duration_ms = %v (%T), want a number of milliseconds", entry["duration_ms"], entry["duration_ms"])
			}
		})
	}
}
