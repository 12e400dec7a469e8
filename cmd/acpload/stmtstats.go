package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
)

// StatementStat is one statement's share of a phase, from pg_stat_statements.
type StatementStat struct {
	Statement string  `json:"statement"`
	Calls     int64   `json:"calls"`
	PerUnit   float64 `json:"calls_per_unit"`
	TotalMs   float64 `json:"total_ms"`
	MeanMs    float64 `json:"mean_ms"`
}

// StatementSummary is what the database executed in one phase: top-level statements
// only (each one a client round trip; foreign-key checks run inside them are left
// out), and the execution time, lock waits included.
type StatementSummary struct {
	PerUnit       float64         `json:"statements_per_unit"`
	ExecMsPerUnit float64         `json:"exec_ms_per_unit"`
	Statements    []StatementStat `json:"statements"`
}

// stmtStats reads pg_stat_statements when the server has it loaded. The figures are
// optional: a throwaway cluster does not load the module, so the bench only shows
// them on a server given by TEST_DATABASE_URL with
// shared_preload_libraries = 'pg_stat_statements'.
type stmtStats struct {
	pool *pgxpool.Pool
	ok   bool
}

// newStmtStats enables the extension in the bench database if the module is loaded.
func newStmtStats(ctx context.Context, pool *pgxpool.Pool) *stmtStats {
	s := &stmtStats{pool: pool}
	var libs string
	if err := pool.QueryRow(ctx, `SHOW shared_preload_libraries`).Scan(&libs); err != nil || !strings.Contains(libs, "pg_stat_statements") {
		return s
	}
	if _, err := pool.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_stat_statements`); err != nil {
		return s
	}
	_, err := pool.Exec(ctx, `SELECT pg_stat_statements_reset()`)
	s.ok = err == nil
	return s
}

// reset starts a new measurement.
func (s *stmtStats) reset(ctx context.Context) error {
	if s == nil || !s.ok {
		return nil
	}
	_, err := s.pool.Exec(ctx, `SELECT pg_stat_statements_reset()`)
	return err
}

// stmtCounts are the calls and execution time of each statement (by label) since a
// reset; the counts of several rounds add up.
type stmtCounts map[string]StatementStat

// read returns the counts of this database since the last reset, or nil when
// pg_stat_statements is not available.
func (s *stmtStats) read(ctx context.Context) stmtCounts {
	if s == nil || !s.ok {
		return nil
	}
	rows, err := s.pool.Query(ctx, `
		SELECT query, calls, total_exec_time FROM pg_stat_statements
		WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
		  AND toplevel AND query !~* 'pg_stat_statements'`)
	if err != nil {
		return nil
	}
	defer rows.Close()
	counts := stmtCounts{}
	for rows.Next() {
		var q string
		var calls int64
		var total float64
		if err := rows.Scan(&q, &calls, &total); err != nil {
			return nil
		}
		counts.add(StatementStat{Statement: statementLabel(q), Calls: calls, TotalMs: total})
	}
	if rows.Err() != nil {
		return nil
	}
	return counts
}

func (c stmtCounts) add(st StatementStat) {
	cur := c[st.Statement]
	cur.Statement = st.Statement
	cur.Calls += st.Calls
	cur.TotalMs += st.TotalMs
	c[st.Statement] = cur
}

// merge adds o's counts to c (which may be nil) and returns the result.
func (c stmtCounts) merge(o stmtCounts) stmtCounts {
	if o == nil {
		return c
	}
	if c == nil {
		c = stmtCounts{}
	}
	for _, st := range o {
		c.add(st)
	}
	return c
}

// summary turns the counts into per-unit figures, the costliest statement first; nil
// when there are none.
func (c stmtCounts) summary(units int) *StatementSummary {
	if c == nil || units == 0 {
		return nil
	}
	sum := &StatementSummary{Statements: []StatementStat{}}
	for _, st := range c {
		st.PerUnit = float64(st.Calls) / float64(units)
		if st.Calls > 0 {
			st.MeanMs = st.TotalMs / float64(st.Calls)
		}
		sum.PerUnit += st.PerUnit
		sum.ExecMsPerUnit += st.TotalMs / float64(units)
		sum.Statements = append(sum.Statements, st)
	}
	slices.SortFunc(sum.Statements, func(a, b StatementStat) int {
		return cmp.Or(cmp.Compare(b.TotalMs, a.TotalMs), strings.Compare(a.Statement, b.Statement))
	})
	return sum
}

// statementLabel names a statement: the sqlc query name when it has one ("-- name:
// GetSessionForUpdate :one ..."), else its first words.
func statementLabel(q string) string {
	q = strings.Join(strings.Fields(q), " ")
	if rest, ok := strings.CutPrefix(q, "-- name: "); ok {
		if name, _, ok := strings.Cut(rest, " "); ok {
			return name
		}
	}
	if len(q) > 70 {
		q = q[:70] + "..."
	}
	return q
}

// writeText prints the summary under a phase.
func (s *StatementSummary) writeText(w io.Writer, unit string) {
	if s == nil {
		return
	}
	// Statements, not round trips: the server pipelines several into one (roundtrips.txt).
	fmt.Fprintf(w, "  pg_stat_statements: %.1f statements (several to a round trip) and %.2f ms of execution per %s\n", s.PerUnit, s.ExecMsPerUnit, unit)
	fmt.Fprintf(w, "    %8s %8s %9s  %s\n", "per "+unit[:min(len(unit), 4)], "mean", "total", "statement")
	for _, st := range s.Statements {
		fmt.Fprintf(w, "    %8.2f %8s %9s  %s\n", st.PerUnit, fmtMs(st.MeanMs), fmtMs(st.TotalMs), st.Statement)
	}
}
