package main

import (
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"
)

// A process tree whose children keep exiting, as a postmaster's backends do when pgbench
// disconnects, must never appear to have used less CPU than a moment before: a child
// reaped while treeCPU walks /proc moves its time into its parent's, and a snapshot
// that reads the parent before the reap and misses the child after it loses that time
// (a pgbench round's "other" CPU was PostgreSQL's backends, lost so).
func TestTreeCPUKeepsTheChildrenThatExitDuringTheWalk(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("treeCPU reads Linux's /proc")
	}
	// A shell that starts one short busy child after another and reaps each.
	cmd := exec.Command("sh", "-c", `while :; do (i=0; while [ $i -lt 4000 ]; do i=$((i+1)); done); done`)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	var last time.Duration
	snapshots := 0
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); snapshots++ {
		cpu, err := treeCPU(cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		if cpu < last {
			t.Fatalf("snapshot %d: the tree's CPU fell from %v to %v: a child that exited during the walk was lost", snapshots, last, cpu)
		}
		last = cpu
	}
	if last < 100*time.Millisecond {
		t.Fatalf("the children used %v of CPU in 2 s: the test did not exercise exits", last)
	}
	t.Logf("%d snapshots, %v of CPU", snapshots, last)
}

// The same race, made to happen: a backend is reaped between the postmaster's reading
// and its own turn in the walk.
func TestWalkTreeCPUCountsAChildReapedDuringTheWalk(t *testing.T) {
	const postmaster, exiting, staying, stranger = 1, 2, 3, 4
	procs := map[int]procStat{
		postmaster: {cpu: 10 * time.Millisecond},
		exiting:    {ppid: postmaster, cpu: 500 * time.Millisecond},
		staying:    {ppid: postmaster, cpu: 20 * time.Millisecond},
		stranger:   {cpu: time.Second},
	}
	reaped := false
	read := func(pid int) (procStat, error) {
		st, ok := procs[pid]
		if !ok {
			return procStat{}, os.ErrNotExist
		}
		if pid == postmaster && !reaped {
			// The reap lands right after this reading: the postmaster's children time
			// takes the backend's, whose entry goes.
			reaped = true
			pm := procs[postmaster]
			pm.children += procs[exiting].cpu
			procs[postmaster] = pm
			delete(procs, exiting)
		}
		return st, nil
	}
	pids := func() ([]int, error) { return []int{postmaster, exiting, staying, stranger}, nil }

	got, err := walkTreeCPU(postmaster, read, pids)
	if err != nil {
		t.Fatal(err)
	}
	if want := 530 * time.Millisecond; got != want {
		t.Fatalf("tree CPU %v, want %v (the postmaster's 10ms, the reaped backend's 500ms, the live one's 20ms)", got, want)
	}
}
