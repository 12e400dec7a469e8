// Command devdb finds or starts the PostgreSQL that `make run` uses and prints its URL,
// so that the Makefile can do DATABASE_URL=$$(go run ./cmd/devdb up).
//
// Usage:
//
//	devdb [-data DIR] up     print the DATABASE_URL (starting a database if needed)
//	devdb [-data DIR] down   stop the local dev cluster in DIR, keeping its data
//
// `up` uses DATABASE_URL when set, else the docker-compose postgres service when Docker
// answers, else a persistent cluster of the local PostgreSQL binaries in DIR
// (default ./.data/postgres, port 55432). Only the URL goes to stdout; logs go to stderr.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/agentic-commerce/agentic-commerce-server/internal/pgserver"
)

const usage = `usage:
  devdb [-data DIR] up     print DATABASE_URL, starting a dev database if needed
  devdb [-data DIR] down   stop the local dev cluster in DIR (data is kept)`

// errUsage marks a command line that does not parse; main prints the usage for it.
var errUsage = errors.New("invalid command line")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := realMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, usage)
		}
		fmt.Fprintln(os.Stderr, "devdb:", err)
		os.Exit(1)
	}
}

func realMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("devdb", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported once, by main
	dataDir := fs.String("data", "./.data/postgres", "data directory of the local dev cluster")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(stdout, usage)
		return nil
	} else if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("%w: missing command", errUsage)
	}
	cmd := fs.Arg(0)
	// Flags may also follow the command (devdb up -data DIR).
	if err := fs.Parse(fs.Args()[1:]); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	// pgserver warns through the default logger; stdout must carry only the URL.
	slog.SetDefault(slog.New(slog.NewTextHandler(stderr, nil)))

	switch cmd {
	case "up":
		srv, err := pgserver.StartDev(ctx, *dataDir)
		if err != nil {
			return err
		}
		slog.Info("dev database ready", "kind", srv.Kind)
		_, err = fmt.Fprintln(stdout, srv.URL)
		return err
	case "down":
		if err := pgserver.StopDev(ctx, *dataDir); err != nil {
			return err
		}
		slog.Info("local dev cluster is down", "data", *dataDir)
		return nil
	case "help":
		fmt.Fprintln(stdout, usage)
		return nil
	default:
		return fmt.Errorf("%w: unknown command %q", errUsage, cmd)
	}
}
