// Command acpload is the load generator and benchmark of agentic-commerce-server.
//
// Without -bench it plays N concurrent agents against a running server, each repeating
// the full ACP checkout: create a session (one item_123, shipped to California), update
// it (buyer, standard shipping), delegate a card for it (a vt_ token bound to the
// session), complete it with the token, then replay the completion once with the same
// Idempotency-Key and body, which must come back marked Idempotent-Replayed with the
// same body. Every POST carries an Idempotency-Key and API-Version: 2025-09-29. It
// prints flows/s, requests/s and, per endpoint, the count, rate and exact latency
// percentiles, and every unexpected response by endpoint, status and ACP code.
//
//	acpload -url http://127.0.0.1:8080 -c 8 -d 20s
//
// With -bench it measures the server against its database (`make bench`): it starts a
// throwaway PostgreSQL, migrates it and imports the demo catalog, measures the ceiling
// of one completion with pgbench (complete.pgbench: the server's statements), starts
// the server binary, times it to ready, runs the full flow, then completions only and
// replays only, samples the server's RSS, and prints each figure against its target.
// See docs/PERFORMANCE.md.
//
//	acpload -bench -server ./bin/agentic-commerce-server -c 8 -d 20s
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := realMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	interrupted := ctx.Err() != nil
	stop()
	switch {
	case err == nil:
		return
	case interrupted:
		fmt.Fprintln(os.Stderr, "acpload: interrupted; everything it started is stopped")
	case !errors.Is(err, flag.ErrHelp):
		fmt.Fprintln(os.Stderr, "acpload:", err)
	}
	os.Exit(1)
}

// envList is a repeatable KEY=VALUE flag.
type envList []string

func (e *envList) String() string { return strings.Join(*e, " ") }

func (e *envList) Set(v string) error {
	if k, _, ok := strings.Cut(v, "="); !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", v)
	}
	*e = append(*e, v)
	return nil
}

func realMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("acpload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		baseURL     = fs.String("url", "http://127.0.0.1:8080", "base URL of the running server")
		concurrency = fs.Int("c", 8, "concurrent agents (each sends one request at a time)")
		duration    = fs.Duration("d", 20*time.Second, "measured duration (of each phase with -bench)")
		flows       = fs.Int("n", 0, "run this many measured flows instead of -d")
		apiKey      = fs.String("api-key", "", "API key sent as Authorization: Bearer (the server's API_KEYS)")
		jsonOut     = fs.Bool("json", false, "print JSON instead of tables")
		warmup      = fs.Duration("warmup", 2*time.Second, "warm-up before measuring (not counted)")
		gzip        = fs.Bool("gzip", true, "accept gzip-compressed responses, as agent platforms do")

		bench        = fs.Bool("bench", false, "run the benchmark: throwaway PostgreSQL, pgbench ceiling, server, load phases, targets")
		server       = fs.String("server", "./bin/agentic-commerce-server", "-bench: the server binary to start")
		catalogFile  = fs.String("catalog", "internal/catalog/demo/products.jsonl", "-bench: the product feed to import")
		pgbench      = fs.String("pgbench", "", "-bench: pgbench binary (default: PATH, else the newest /usr/lib/postgresql/*/bin)")
		poolMaxConns = fs.Int("pool-max-conns", 0, "-bench: pool_max_conns for the server's DATABASE_URL (0: the server's default)")
		pgbouncer    = fs.Bool("pgbouncer", false, "-bench: put pgbouncer (transaction pooling) between the server and PostgreSQL")
		logLevel     = fs.String("server-log-level", "info", "-bench: the server's LOG_LEVEL (info logs every request, as in production)")
		check        = fs.Bool("check", false, "-bench: exit 1 when a target is missed or a request fails")
		serverEnv    envList
	)
	fs.Var(&serverEnv, "server-env", "-bench: extra KEY=VALUE for the server's environment (repeatable), e.g. GOGC=200")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	switch {
	case *concurrency < 1:
		return errors.New("-c must be at least 1")
	case *flows < 0:
		return errors.New("-n must not be negative")
	case *flows == 0 && *duration <= 0:
		return errors.New("-d must be positive (or give -n)")
	case *warmup < 0:
		return errors.New("-warmup must not be negative")
	}

	if *bench {
		for _, name := range []string{"url", "n", "api-key"} {
			if set[name] {
				return fmt.Errorf("-%s does not apply to -bench (it starts its own server and runs for -d)", name)
			}
		}
		switch *logLevel {
		case "debug", "info", "warn", "error":
		default:
			return fmt.Errorf("-server-log-level must be debug, info, warn or error, got %q", *logLevel)
		}
		if *pgbench == "" {
			p, err := findPgbench()
			if err != nil {
				return err
			}
			*pgbench = p
		}
		return runBench(ctx, benchConfig{
			server: *server, catalog: *catalogFile, pgbench: *pgbench,
			concurrency: *concurrency, duration: *duration, warmup: *warmup,
			poolMaxConns: *poolMaxConns, pgbouncer: *pgbouncer, logLevel: *logLevel, serverEnv: serverEnv,
			gzip: *gzip, json: *jsonOut, check: *check,
		}, stdout, stderr)
	}

	for _, name := range []string{"server", "catalog", "pgbench", "pool-max-conns", "server-log-level", "server-env", "check"} {
		if set[name] {
			return fmt.Errorf("-%s only applies to -bench", name)
		}
	}
	cfg := loadConfig{
		name: "acpload", baseURL: strings.TrimRight(*baseURL, "/"), apiKey: *apiKey,
		concurrency: *concurrency, duration: *duration, units: *flows, warmup: *warmup,
	}
	if *flows > 0 {
		cfg.duration = 0
	}
	client := newClient(cfg.concurrency, *gzip)
	defer client.CloseIdleConnections()
	rep, err := runLoad(ctx, cfg, client, func(ctx context.Context, a *agent) error { return a.flow(ctx) })
	if *jsonOut {
		if jerr := writeJSON(stdout, rep); jerr != nil {
			return errors.Join(err, jerr)
		}
	} else {
		rep.writeText(stdout)
	}
	return err
}
