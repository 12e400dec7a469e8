package main

import (
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/pgserver"
)

func TestSplitCPUsGivesTheDatabaseTheFirstHalf(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		allowed        []int
		database, rest []int
	}{
		{[]int{0, 1}, []int{0}, []int{1}},
		{[]int{0, 1, 2}, []int{0, 1}, []int{2}},
		{[]int{4, 5, 6, 7}, []int{4, 5}, []int{6, 7}},
		{[]int{3, 1, 2, 1}, []int{1, 2}, []int{3}},
	} {
		s, err := splitCPUs(tc.allowed)
		if err != nil {
			t.Errorf("%v: %v", tc.allowed, err)
			continue
		}
		if !slices.Equal(s.database, tc.database) || !slices.Equal(s.rest, tc.rest) {
			t.Errorf("%v: database %v, rest %v; want %v and %v", tc.allowed, s.database, s.rest, tc.database, tc.rest)
		}
	}
	for _, allowed := range [][]int{nil, {3}, {2, 2}} {
		if _, err := splitCPUs(allowed); err == nil || !strings.Contains(err.Error(), "-pin needs at least 2 CPUs") {
			t.Errorf("%v: %v, want the 2 CPUs error", allowed, err)
		}
	}
}

func TestFormatCPUsWritesRanges(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cpus []int
		want string
	}{
		{nil, "no CPU"},
		{[]int{1}, "CPU 1"},
		{[]int{0, 2}, "CPUs 0,2"},
		{[]int{0, 1, 2, 3, 6}, "CPUs 0-3,6"},
		{[]int{0, 1, 3, 4, 5}, "CPUs 0-1,3-5"},
		{[]int{10, 11, 12}, "CPUs 10-12"},
	} {
		if got := formatCPUs(tc.cpus); got != tc.want {
			t.Errorf("formatCPUs(%v) = %q, want %q", tc.cpus, got, tc.want)
		}
	}
	s := cpuSplit{database: []int{0}, rest: []int{1}}
	if got, want := s.String(), "pinned: PostgreSQL on CPU 0; the server, pgbench and the load generator on CPU 1"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

// idleProcessEnv makes this test binary an idle Go process (TestMain): several threads,
// none of them pinned, for pinProcess to confine.
const idleProcessEnv = "ACPLOAD_TEST_IDLE_PROCESS"

// Every thread of a Go process must move, not only its main one: the runtime runs its
// goroutines on several threads, and a server left with one of them on the database's
// CPU would measure what -pin is there to keep apart.
func TestPinProcessConfinesEveryThread(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("-pin sets CPU affinity on Linux only")
	}
	allowed, err := allowedCPUs()
	if err != nil {
		t.Fatal(err)
	}
	if len(allowed) < 2 {
		t.Skipf("this process may run on %s only: a pinned thread cannot be told from one left alone", formatCPUs(allowed))
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), idleProcessEnv+"=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	pid := cmd.Process.Pid
	// Let the runtime start its threads (sysmon, the collector's workers).
	var threads []string
	for deadline := time.Now().Add(5 * time.Second); len(threads) < 3 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		threads = taskAffinities(t, pid)
	}
	if len(threads) < 3 {
		t.Fatalf("the idle Go process has %d threads, want several to pin", len(threads))
	}

	last := allowed[len(allowed)-1:]
	if err := pinProcess(pid, last); err != nil {
		t.Fatal(err)
	}
	want := strconv.Itoa(last[0])
	for _, got := range taskAffinities(t, pid) {
		if got != want {
			t.Errorf("a thread of the pinned process may run on CPUs %s, want %s", got, want)
		}
	}
	if err := pinProcess(1<<22+1, last); err != nil {
		t.Errorf("pinning a process that is gone: %v, want nil", err)
	}
}

// taskAffinities returns each thread's Cpus_allowed_list of process pid.
func taskAffinities(t *testing.T, pid int) []string {
	t.Helper()
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		b, err := os.ReadFile(dir + "/" + e.Name() + "/status")
		if err != nil {
			continue // the thread ended
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
				out = append(out, strings.TrimSpace(v))
			}
		}
	}
	return out
}

// -pin moves only a PostgreSQL the bench started and can see: never one named by
// TEST_DATABASE_URL, and not one whose processes are elsewhere (a container's).
func TestPinRefusesAPostgreSQLItDidNotStartOrCannotSee(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env  benchEnv
		want string
	}{
		{benchEnv{pg: &pgserver.Server{Kind: pgserver.KindEnv}, postmaster: 1}, "does not move a PostgreSQL the bench did not start"},
		{benchEnv{pg: &pgserver.Server{Kind: pgserver.KindTestcontainers}}, "the testcontainers server's postmaster is not among them"},
	} {
		if _, err := tc.env.pin(0); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.env.pg.Kind, err, tc.want)
		}
	}
}
