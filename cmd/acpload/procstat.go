package main

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The readers in this file use Linux's /proc. Elsewhere they return errors and the
// bench reports the figures they feed as unavailable.

// clockTick is the unit of the CPU times in /proc (USER_HZ), 100 Hz on every Linux
// architecture Go supports.
const clockTick = 10 * time.Millisecond

// loadAverage returns the 1, 5 and 15 minute load averages as /proc/loadavg prints them.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// procStat holds the fields of /proc/<pid>/stat the bench uses.
type procStat struct {
	ppid int
	// cpu is user + system time of the process itself; children is that of the
	// children it has waited for (a postmaster's exited backends).
	cpu, children time.Duration
}

// readProcStat parses /proc/<pid>/stat ("self" for this process).
func readProcStat(pid string) (procStat, error) {
	b, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
	if err != nil {
		return procStat{}, err
	}
	return parseProcStat(b)
}

// parseProcStat parses the text of /proc/<pid>/stat. The command name (field 2) may
// hold spaces and parentheses, so the fields are counted from its closing parenthesis.
func parseProcStat(b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, errors.New("malformed stat")
	}
	// After the name: state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17).
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return procStat{}, errors.New("short stat")
	}
	n := func(field int) int64 { v, _ := strconv.ParseInt(f[field-3], 10, 64); return v }
	return procStat{
		ppid:     int(n(4)),
		cpu:      time.Duration(n(14)+n(15)) * clockTick,
		children: time.Duration(n(16)+n(17)) * clockTick,
	}, nil
}

// treeCPU returns the CPU time of process root and everything under it: its own time,
// the time of the children it has reaped and the time of its live descendants. Its
// difference over an interval is what the tree used in it, even when children exit.
func treeCPU(root int) (time.Duration, error) {
	return walkTreeCPU(root, procStatOf, listPIDs)
}

// procStatOf reads process pid's /proc/PID/stat.
func procStatOf(pid int) (procStat, error) { return readProcStat(strconv.Itoa(pid)) }

// treeWalkAttempts bounds the walks of one treeCPU; past it, the last walk is the answer.
// Backends exit in bursts (pgbench's, as it ends), and a walk takes a few milliseconds:
// a tree still unsettled after 50 is one whose children never stop exiting.
const treeWalkAttempts = 50

// walkTreeCPU is treeCPU over the readers read (one process's stat) and pids (every
// process). A child reaped during a walk moves its time into its parent's children
// time: when the parent was read before the reap and the child's turn comes after it,
// the child is gone and its time is in neither reading. pgbench's backends exit as it
// ends, and a snapshot taken then lost up to 45% of a round's PostgreSQL CPU. So
// the walk reads the root and every descendant found again, and walks once more while
// one of them has reaped a child (or exited) in between.
func walkTreeCPU(root int, read func(pid int) (procStat, error), pids func() ([]int, error)) (time.Duration, error) {
	var total time.Duration
	for range treeWalkAttempts {
		tree, err := readTree(root, read, pids)
		if err != nil {
			return 0, err
		}
		total = 0
		for _, st := range tree {
			total += st.cpu + st.children
		}
		if settled(tree, read) {
			break
		}
	}
	return total, nil
}

// readTree reads root and every process under it, by process ID.
func readTree(root int, read func(pid int) (procStat, error), pids func() ([]int, error)) (map[int]procStat, error) {
	rs, err := read(root)
	if err != nil {
		return nil, err
	}
	all, err := pids()
	if err != nil {
		return nil, err
	}
	procs := map[int]procStat{}
	for _, pid := range all {
		if pid == root {
			continue
		}
		if st, err := read(pid); err == nil { // else it exited meanwhile
			procs[pid] = st
		}
	}
	tree := map[int]procStat{root: rs}
	for pid, st := range procs {
		if descends(st.ppid, root, procs) {
			tree[pid] = st
		}
	}
	return tree, nil
}

// descends says that process p is root or under it, following the parents in procs.
// The steps are bounded: process IDs reused during a walk could make a loop.
func descends(p, root int, procs map[int]procStat) bool {
	for range len(procs) + 1 {
		if p == root {
			return true
		}
		st, ok := procs[p]
		if !ok {
			return false
		}
		p = st.ppid
	}
	return false
}

// settled says that no process of tree, read again, has reaped a child or exited since
// its reading in tree.
func settled(tree map[int]procStat, read func(pid int) (procStat, error)) bool {
	for pid, st := range tree {
		again, err := read(pid)
		if err != nil || again.children != st.children {
			return false
		}
	}
	return true
}

// listPIDs returns the process IDs under /proc.
func listPIDs() ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	pids := make([]int, 0, len(entries))
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// machineCPU returns the busy and total CPU time of all CPUs since boot (/proc/stat).
func machineCPU() (busy, total time.Duration, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0, errors.New("malformed /proc/stat")
	}
	// user nice system idle iowait irq softirq steal (guest time is part of user).
	var sum, idle int64
	for i, s := range f[1:9] {
		v, _ := strconv.ParseInt(s, 10, 64)
		sum += v
		if i == 3 || i == 4 {
			idle += v
		}
	}
	return time.Duration(sum-idle) * clockTick, time.Duration(sum) * clockTick, nil
}

// memoryStatus returns VmRSS and VmHWM (peak RSS) of pid in bytes.
func memoryStatus(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		f := strings.Fields(value) // "12345 kB"
		if len(f) == 0 {
			continue
		}
		kb, _ := strconv.ParseInt(f[0], 10, 64)
		if name == "VmRSS" {
			rss = kb << 10
		} else {
			hwm = kb << 10
		}
	}
	if rss == 0 && hwm == 0 {
		return 0, 0, errors.New("no VmRSS in /proc status")
	}
	return rss, hwm, nil
}

// rssSampler reads a process's memory every interval until stopped.
type rssSampler struct {
	pid  int
	stop chan struct{}
	done chan struct{}

	mu      sync.Mutex
	maxRSS  int64
	hwm     int64
	samples int
}

// sampleRSS starts sampling pid's RSS every interval.
func sampleRSS(pid int, every time.Duration) *rssSampler {
	s := &rssSampler{pid: pid, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			s.sample()
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *rssSampler) sample() {
	rss, hwm, err := memoryStatus(s.pid)
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maxRSS, s.hwm = max(s.maxRSS, rss), max(s.hwm, hwm)
	s.samples++
}

// Stop ends the sampling (taking one last sample) and returns the largest sampled RSS,
// the kernel's high-water mark and the number of samples.
func (s *rssSampler) Stop() (maxRSS, hwm int64, samples int) {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
	s.sample()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxRSS, s.hwm, s.samples
}

// CPUUsage splits the CPU time the machine spent during one phase between the parts
// of the benchmark; Other is whatever else ran (kernel work not charged to a process,
// and other people's jobs on a shared machine). Times are CPU seconds; -1 means the
// figure could not be read.
type CPUUsage struct {
	WallSeconds float64 `json:"wall_seconds"`
	Cores       int     `json:"cores"`
	Busy        float64 `json:"busy_seconds"`
	Postgres    float64 `json:"postgres_seconds"`
	Server      float64 `json:"server_seconds"`
	LoadGen     float64 `json:"load_generator_seconds"`
	Other       float64 `json:"other_seconds"`
}

// cpuMeter takes CPU snapshots of the machine, PostgreSQL (the postmaster's process
// tree), the server and this process.
type cpuMeter struct {
	postmaster int // 0: unknown
	server     int // 0: none
}

type cpuSnapshot struct {
	at                                   time.Time
	busy, postgres, server, self         time.Duration
	busyOK, postgresOK, serverOK, selfOK bool
}

func (m cpuMeter) snapshot() cpuSnapshot {
	s := cpuSnapshot{at: time.Now()}
	var err error
	s.busy, _, err = machineCPU()
	s.busyOK = err == nil
	if m.postmaster != 0 {
		s.postgres, err = treeCPU(m.postmaster)
		s.postgresOK = err == nil
	}
	if m.server != 0 {
		var st procStat
		st, err = readProcStat(strconv.Itoa(m.server))
		s.server, s.serverOK = st.cpu, err == nil
	}
	st, err := readProcStat("self")
	s.self, s.selfOK = st.cpu, err == nil
	return s
}

// usage is the CPU used between two snapshots; extra is CPU used by load-generating
// children not in either tree (pgbench).
func usage(a, b cpuSnapshot, extra time.Duration) CPUUsage {
	secs := func(ok bool, d time.Duration) float64 {
		if !ok {
			return -1
		}
		return d.Seconds()
	}
	u := CPUUsage{
		WallSeconds: b.at.Sub(a.at).Seconds(),
		Cores:       runtime.NumCPU(),
		Busy:        secs(a.busyOK && b.busyOK, b.busy-a.busy),
		Postgres:    secs(a.postgresOK && b.postgresOK, b.postgres-a.postgres),
		Server:      secs(a.serverOK && b.serverOK, b.server-a.server),
		LoadGen:     secs(a.selfOK && b.selfOK, b.self-a.self+extra),
		Other:       -1,
	}
	if u.Busy >= 0 && u.Postgres >= 0 && u.LoadGen >= 0 {
		// The per-process and machine counters tick separately (10 ms each), so the
		// remainder can come out a little below zero on a quiet machine.
		u.Other = max(u.Busy-u.Postgres-u.LoadGen-max(u.Server, 0), 0)
	}
	return u
}

// String prints the split, with per-unit costs when units is above zero.
func (u CPUUsage) String(units int, unit string) string {
	f := func(v float64) string {
		if v < 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.1fs", v)
	}
	per := func(v float64) string {
		if v < 0 || units == 0 {
			return ""
		}
		return fmt.Sprintf(" (%.2fms/%s)", v*1000/float64(units), unit)
	}
	capacity := u.WallSeconds * float64(u.Cores)
	util := ""
	if u.Busy >= 0 && capacity > 0 {
		util = fmt.Sprintf(" = %.0f%% of %d cores", 100*u.Busy/capacity, u.Cores)
	}
	s := fmt.Sprintf("CPU busy %s%s: postgres %s%s", f(u.Busy), util, f(u.Postgres), per(u.Postgres))
	if u.Server >= 0 {
		s += fmt.Sprintf(", server %s%s", f(u.Server), per(u.Server))
	}
	return s + fmt.Sprintf(", load generator %s%s, other %s", f(u.LoadGen), per(u.LoadGen), f(u.Other))
}

// add sums two phases' CPU usage; a figure unknown in either stays unknown.
func (u CPUUsage) add(o CPUUsage) CPUUsage {
	if u.Cores == 0 {
		return o
	}
	sum := func(a, b float64) float64 {
		if a < 0 || b < 0 {
			return -1
		}
		return a + b
	}
	return CPUUsage{
		WallSeconds: u.WallSeconds + o.WallSeconds, Cores: u.Cores,
		Busy: sum(u.Busy, o.Busy), Postgres: sum(u.Postgres, o.Postgres), Server: sum(u.Server, o.Server),
		LoadGen: sum(u.LoadGen, o.LoadGen), Other: sum(u.Other, o.Other),
	}
}

// cpuSpeed measures how fast one core of this machine is right now: MB/s of SHA-256,
// the best of five 20 ms runs. On a virtual machine whose host is busy the guest's CPUs
// slow down without any steal time being reported; comparing this figure between phases
// shows it.
func cpuSpeed() float64 {
	buf := make([]byte, 64<<10)
	best := 0.0
	for range 5 {
		start := time.Now()
		n := 0
		for time.Since(start) < 20*time.Millisecond {
			sum := sha256.Sum256(buf)
			buf[0] = sum[0]
			n += len(buf)
		}
		best = max(best, float64(n)/time.Since(start).Seconds()/1e6)
	}
	return best
}
