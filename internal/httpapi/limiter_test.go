package httpapi

import (
	"fmt"
	"testing"
	"time"
)

// The limiter on a synthetic clock: sweeping full buckets changes no answer, and the
// number of buckets never passes the bound however many keys come.

func TestLimiterSweepIsExactAndBounded(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	rl := newRateLimiter(1, 2, 100) // 2 at once, one more per second
	take := func(key string) bool {
		_, ok := rl.reserve(key, now)
		return ok
	}
	// Three takes in a row, each its own call (take has side effects; staticcheck's SA4000
	// reads a repeated call in one || chain as a mistake).
	takeThree := func(key string) [3]bool { return [3]bool{take(key), take(key), take(key)} }
	if got := takeThree("a"); got != [3]bool{true, true, false} {
		t.Fatalf("a bucket of 2 answered %v, want exactly 2 allowed", got)
	}
	// A minute later "a" has refilled: the sweep a new key triggers drops it, and it
	// behaves as before, 2 and then a refusal.
	now = now.Add(sweepEvery)
	take("b")
	if got := rl.size(); got != 1 {
		t.Errorf("%d buckets after the sweep, want 1 (b)", got)
	}
	if got := takeThree("a"); got != [3]bool{true, true, false} {
		t.Errorf("a swept bucket answered %v, not as a new one", got)
	}

	// 10,000 keys within one second, each keeping its bucket non-full: the map stops at
	// 100 and the rest share the overflow bucket, which holds them like any other.
	refused := 0
	for i := range 10_000 {
		if !take(fmt.Sprintf("flood-%d", i)) {
			refused++
		}
	}
	if got := rl.size(); got > 100 {
		t.Errorf("%d buckets, bound 100", got)
	}
	if refused < 10_000-100 {
		t.Errorf("%d of 10000 flood requests refused; past the bound they share one bucket", refused)
	}
	// Once their buckets refill, a sweep makes room for new keys again.
	now = now.Add(2 * time.Second)
	if !take("late") {
		t.Error("a new key after the flood refilled is refused")
	}
	if got := rl.size(); got != 1 {
		t.Errorf("%d buckets after the flood refilled, want 1", got)
	}
}
