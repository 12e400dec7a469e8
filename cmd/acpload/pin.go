package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// cpuSplit divides the CPUs the bench may use between PostgreSQL and everything else
// (-pin): the database gets CPUs of its own, as on its own host in production, and the
// server, pgbench and the load generator share the others. Without it all of them share
// every CPU, and each one's CPU a request includes what the others' wakeups, cache
// misses and runnable queues cost it.
type cpuSplit struct {
	// database holds PostgreSQL (the postmaster and every backend it forks) and
	// pgbouncer.
	database []int
	// rest holds acpload itself, and so the servers, pgbench and the floor's server it
	// starts afterwards, which inherit its CPUs.
	rest []int
}

// splitCPUs gives the first half of allowed (rounded up) to the database and the rest
// to the others. It needs two CPUs at least.
func splitCPUs(allowed []int) (cpuSplit, error) {
	cpus := slices.Clone(allowed)
	slices.Sort(cpus)
	cpus = slices.Compact(cpus)
	if len(cpus) < 2 {
		return cpuSplit{}, fmt.Errorf("-pin needs at least 2 CPUs to split between PostgreSQL and the rest; this process may run on %s", formatCPUs(cpus))
	}
	half := (len(cpus) + 1) / 2
	return cpuSplit{database: cpus[:half], rest: cpus[half:]}, nil
}

// String says where each side runs.
func (s cpuSplit) String() string {
	return fmt.Sprintf("pinned: PostgreSQL on %s; the server, pgbench and the load generator on %s",
		formatCPUs(s.database), formatCPUs(s.rest))
}

// formatCPUs writes a sorted CPU list the way taskset and /proc do, with ranges:
// "CPU 1", "CPUs 0-3,6".
func formatCPUs(cpus []int) string {
	if len(cpus) == 0 {
		return "no CPU"
	}
	var parts []string
	for i := 0; i < len(cpus); {
		j := i
		for j+1 < len(cpus) && cpus[j+1] == cpus[j]+1 {
			j++
		}
		if j == i {
			parts = append(parts, strconv.Itoa(cpus[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", cpus[i], cpus[j]))
		}
		i = j + 1
	}
	if len(cpus) == 1 {
		return "CPU " + parts[0]
	}
	return "CPUs " + strings.Join(parts, ",")
}
