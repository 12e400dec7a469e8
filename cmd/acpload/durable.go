package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/agentic-commerce/agentic-commerce-server/internal/pgserver"
)

// Durability is what PostgreSQL did with a commit during the run, read back from the
// server rather than assumed: a throwaway cluster trades durability for speed unless
// -durable asks for production settings.
type Durability struct {
	// Requested says -durable was given.
	Requested         bool   `json:"requested"`
	Fsync             string `json:"fsync"`
	SynchronousCommit string `json:"synchronous_commit"`
	FullPageWrites    string `json:"full_page_writes"`
}

// Durable reports whether a commit survived a crash of the machine: fsync and
// synchronous_commit both on.
func (d Durability) Durable() bool { return d.Fsync == "on" && d.SynchronousCommit == "on" }

// String is the one line the report prints.
func (d Durability) String() string {
	s := fmt.Sprintf("fsync=%s synchronous_commit=%s full_page_writes=%s", d.Fsync, d.SynchronousCommit, d.FullPageWrites)
	switch {
	case d.Requested:
		return s + " (-durable: commits wait for the disk, as in production)"
	case d.Durable():
		return s + " (the server's own settings: commits wait for the disk)"
	}
	return s + " (not crash-safe: commits do not wait for the disk; -durable for production settings)"
}

// durableSettings are the settings -durable turns on. fsync and full_page_writes take
// a reload; synchronous_commit is read by every new session.
var durableSettings = []string{"fsync", "synchronous_commit", "full_page_writes"}

// applyDurability turns the durable settings on when want is set (ALTER SYSTEM and a
// reload: postgresql.auto.conf overrides the throwaway's postgresql.conf), then reads
// back what the server runs with. A server the bench does not own (TEST_DATABASE_URL)
// is never altered: -durable then fails unless it is durable already. So does a
// setting given on the postmaster's command line (the container path's), which
// ALTER SYSTEM cannot override.
func applyDurability(ctx context.Context, pg *pgserver.Server, want bool) (Durability, error) {
	if want && pg.Kind != pgserver.KindEnv {
		conn, err := pgx.Connect(ctx, pg.URL)
		if err != nil {
			return Durability{}, err
		}
		for _, name := range durableSettings {
			if _, err := conn.Exec(ctx, "ALTER SYSTEM SET "+name+" = on"); err != nil {
				_ = conn.Close(ctx)
				return Durability{}, fmt.Errorf("-durable: %w", err)
			}
		}
		_, err = conn.Exec(ctx, "SELECT pg_reload_conf()")
		_ = conn.Close(ctx)
		if err != nil {
			return Durability{}, fmt.Errorf("-durable: reload: %w", err)
		}
	}
	// The reload is asynchronous: wait for new sessions to see it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		d, err := readDurability(ctx, pg.URL)
		if err != nil {
			return d, err
		}
		d.Requested = want
		if !want || d.Durable() {
			return d, nil
		}
		if time.Now().After(deadline) {
			return d, errors.New("-durable: the server still runs with " + d.String() +
				"; a server given by TEST_DATABASE_URL is not altered, and settings on the postmaster's command line (the container path) cannot be")
		}
		select {
		case <-ctx.Done():
			return d, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// readDurability reads the settings on a new session.
func readDurability(ctx context.Context, serverURL string) (Durability, error) {
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return Durability{}, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var d Durability
	err = conn.QueryRow(ctx, `SELECT current_setting('fsync'), current_setting('synchronous_commit'), current_setting('full_page_writes')`).
		Scan(&d.Fsync, &d.SynchronousCommit, &d.FullPageWrites)
	if err != nil {
		return d, fmt.Errorf("read the durability settings: %w", err)
	}
	return d, nil
}
