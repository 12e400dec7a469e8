package testkit

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// sqlcQuery is one statement of sqlc's generated code: its name and its text as the
// server sends it (sqlc's macros expanded, parameters as $n).
var sqlcQuery = regexp.MustCompile("(?s)const \\w+ = `-- name: (\\w+) :\\w+\n(.*?)`")

// Queries returns every statement of the module's db/*.sql.go by its sqlc name, failing
// the test when there are none: the tests that hold the server's SQL to something
// (complete.pgbench's mirror of it, the types PostgreSQL gives its parameters) read it
// from the code sqlc generated, not from queries/*.sql, whose macros they would have to
// expand.
func Queries(tb testing.TB) map[string]string {
	tb.Helper()
	root, err := moduleRoot()
	if err != nil {
		tb.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(root, "db", "*.sql.go"))
	if err != nil || len(files) == 0 {
		tb.Fatalf("no db/*.sql.go under %s: %v", root, err)
	}
	queries := map[string]string{}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		for _, m := range sqlcQuery.FindAllStringSubmatch(string(src), -1) {
			queries[m[1]] = m[2]
		}
	}
	if len(queries) == 0 {
		tb.Fatalf("no sqlc statement in %v", files)
	}
	return queries
}

// moduleRoot is the nearest directory at or above the working directory (a test's
// package directory) that holds go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("testkit: no go.mod at or above the working directory")
		}
		dir = parent
	}
}
