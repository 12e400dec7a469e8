package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/agentic-commerce/agentic-commerce-server/internal/testkit"
)

// scriptStatement is one SQL statement of a pgbench script: its sqlc query name (from
// the "-- sqlc: Name" line before it; "begin" and "commit" for those) and its text.
type scriptStatement struct {
	name, text string
}

// parseScript splits a pgbench script into round trips: a statement outside a pipeline
// is one, a \startpipeline ... \endpipeline block is one. The \gset statement that
// draws the session (not the server's) is left out.
func parseScript(t *testing.T, script string) [][]scriptStatement {
	t.Helper()
	var trips [][]scriptStatement
	var pipeline []scriptStatement
	inPipeline, name := false, ""
	var text strings.Builder
	for line := range strings.SplitSeq(script, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == `\startpipeline`:
			inPipeline, pipeline = true, nil
			continue
		case trimmed == `\endpipeline`:
			trips, inPipeline = append(trips, pipeline), false
			continue
		case strings.HasPrefix(trimmed, "-- sqlc: "):
			name = strings.TrimPrefix(trimmed, "-- sqlc: ")
			continue
		case strings.HasPrefix(trimmed, "--"), trimmed == "" && text.Len() == 0:
			continue
		}
		text.WriteString(line + "\n")
		if !strings.HasSuffix(trimmed, ";") && !strings.HasSuffix(trimmed, `\gset`) {
			continue
		}
		s := scriptStatement{name: name, text: text.String()}
		name = ""
		text.Reset()
		switch {
		case strings.HasSuffix(strings.TrimSpace(s.text), `\gset`):
			continue
		case strings.EqualFold(strings.TrimSpace(s.text), "BEGIN;"):
			s.name = "begin"
		case strings.EqualFold(strings.TrimSpace(s.text), "COMMIT;"):
			s.name = "commit"
		case s.name == "":
			t.Fatalf("complete.pgbench: a statement without a \"-- sqlc: Name\" line:\n%s", s.text)
		}
		if inPipeline {
			pipeline = append(pipeline, s)
		} else {
			trips = append(trips, []scriptStatement{s})
		}
	}
	if inPipeline || text.Len() > 0 {
		t.Fatal("complete.pgbench ends inside a pipeline or a statement")
	}
	return trips
}

var (
	dollarParam    = regexp.MustCompile(`\$\d+`)
	pgbenchVar     = regexp.MustCompile(`(^|[^:]):[A-Za-z_]\w*`)
	boundNull      = regexp.MustCompile(`NULL/\*\w+\*/`)
	spaces         = regexp.MustCompile(`\s+`)
	trailingSemico = regexp.MustCompile(`;\s*$`)
)

// normalizeSQL is a statement with every parameter as "?" (db's $n; the script's
// pgbench variables and NULL/*name*/ for a NULL the server binds) and its white space
// collapsed.
func normalizeSQL(s string, script bool) string {
	if script {
		s = boundNull.ReplaceAllString(s, "?")
		s = pgbenchVar.ReplaceAllString(s, "$1?")
	} else {
		s = dollarParam.ReplaceAllString(s, "?")
	}
	s = trailingSemico.ReplaceAllString(s, "")
	return strings.TrimSpace(spaces.ReplaceAllString(s, " "))
}

// TestCompleteScriptIsTheServersSQL holds each statement of complete.pgbench to the text
// of its sqlc query in db/*.sql.go, with the parameters bound from pgbench variables.
// Which statements, in which round trips, TestRoundTrips (internal/httpapi) holds to
// what the server sends.
func TestCompleteScriptIsTheServersSQL(t *testing.T) {
	t.Parallel()
	queries := testkit.Queries(t)

	trips := parseScript(t, completeScript)
	if len(trips) != 3 {
		t.Errorf("complete.pgbench makes %d round trips after drawing its session; the server's completion makes 3", len(trips))
	}
	for _, trip := range trips {
		for _, s := range trip {
			if s.name == "begin" || s.name == "commit" {
				continue
			}
			q, ok := queries[s.name]
			if !ok {
				t.Errorf("complete.pgbench mirrors %s, which db/*.sql.go does not have", s.name)
				continue
			}
			if want, have := normalizeSQL(q, false), normalizeSQL(s.text, true); want != have {
				t.Errorf("complete.pgbench's %s is not db's:\nscript: %s\ndb:     %s", s.name, have, want)
			}
		}
	}
}

func TestNormalizeSQL(t *testing.T) {
	t.Parallel()
	db := "UPDATE t SET a = $1, b = $2 WHERE id = $3::text AND c = '{}'::text[]"
	script := "UPDATE t\nSET a = :x, b = NULL/*b*/\nWHERE id = :id::text AND c = '{}'::text[];"
	if normalizeSQL(db, false) != normalizeSQL(script, true) {
		t.Errorf("%q != %q", normalizeSQL(db, false), normalizeSQL(script, true))
	}
	if normalizeSQL("SELECT a FROM t WHERE id = $1", false) == normalizeSQL("SELECT a FROM t WHERE key = :id;", true) {
		t.Error("different statements normalise alike")
	}
}
