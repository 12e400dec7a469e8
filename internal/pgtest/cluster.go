package pgtest

import (
	"context"
	"errors"
	"os"
	"strconv"
	"testing"

	"github.com/agentic-commerce/agentic-commerce-server/internal/pgserver"
)

// RequireBinaries fails tb on err, but skips it when err says the machine lacks a
// program a topology needs (pgserver.ErrNoBinaries) outside CI: under CI=true a missing
// program fails the run, since CI installs them (.ci/run).
func RequireBinaries(tb testing.TB, err error) {
	tb.Helper()
	if err == nil {
		return
	}
	if ci, _ := strconv.ParseBool(os.Getenv("CI")); errors.Is(err, pgserver.ErrNoBinaries) && !ci {
		tb.Skipf("skipping: %v", err)
	}
	tb.Fatal(err)
}

// StartCluster starts a cluster of tb's own from the machine's binaries, with conf
// appended to its postgresql.conf, for a test that needs server settings the shared
// server cannot take (a replication topology, a synchronous standby). It is stopped when
// tb ends, and its log is shown if tb failed. See RequireBinaries for a machine without
// the binaries.
func StartCluster(tb testing.TB, ctx context.Context, conf string) *pgserver.Cluster {
	tb.Helper()
	c, err := pgserver.StartCluster(ctx, pgserver.ClusterOptions{Conf: conf})
	RequireBinaries(tb, err)
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("log of the cluster on port %d:\n%s", c.Port, c.Log())
		}
		_ = c.Stop(context.Background())
	})
	return c
}
