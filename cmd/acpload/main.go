// Command acpload is the load generator and benchmark of agentic-commerce-server.
//
// Without -bench it plays N concurrent agents against a running server, each repeating
// the full ACP checkout: create a session (one item_123, or with -lines N a cart of N
// distinct items of the demo catalog, shipped to California), update it (buyer,
// standard shipping), delegate a card for it (a vt_ token bound to the session),
// complete it with the token, then replay the completion once with the same
// Idempotency-Key and body, which must come back marked Idempotent-Replayed with the
// same body. With -admin-key it goes on as the merchant: reads the order, ships all
// its lines and refunds one unit, through the admin API. Every POST carries an
// Idempotency-Key and API-Version: 2025-09-29. It
// prints flows/s, requests/s and, per endpoint, the count, rate and exact latency
// percentiles, and every unexpected response by endpoint, status and ACP code.
//
//	acpload -url http://127.0.0.1:8080 -c 8 -d 20s
//
// With -bench it measures the server against its database (`make bench`): it starts a
// throwaway PostgreSQL, has the server binary migrate a database and import the demo
// catalog, and at each concurrency level of -c (8 or 8,16,32) measures the ceiling of
// one completion with pgbench (complete.pgbench: the server's statements), starts the
// server, times it to ready, runs the full flow, then completions only and replays
// only, samples the server's RSS, measures the floor (a bare Go HTTP server answering
// the flow's create request with a session's bytes, then with two SELECT round trips
// per request: what no code of the server could save), and prints each figure against
// its target. The
// durability settings PostgreSQL ran with are always reported; -durable turns fsync and
// synchronous_commit on. -baseline REV builds the server at a git revision and measures
// it beside the current one, on its own database, figure by figure. -flash-sale N adds
// a flash sale (32 agents completing sessions prepared for one item with stock N until
// it sells out, checked against the database and a hot-row pgbench ceiling);
// -psp-delay D adds completions paid with Stripe Shared Payment Tokens through a fake
// Stripe API that answers after D. See docs/PERFORMANCE.md.
//
//	acpload -bench -server ./bin/agentic-commerce-server -c 8,32 -d 20s -baseline main
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
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/timerslack"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	runFloorServerIfAsked(ctx)
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

// defaultTimerSlack is -timer-slack's default: the server's TIMER_SLACK default, which
// gathers the wake-ups of the Go runtime's monitor thread (internal/timerslack). The
// load generator stands in for agents that run on other hosts, so the less CPU its own
// wake-ups take from the server and PostgreSQL beside it, the closer the bench is to a
// deployment (docs/PERFORMANCE.md, "The load generator").
const defaultTimerSlack = time.Millisecond

// maxTimerSlack bounds -timer-slack as the server bounds TIMER_SLACK.
const maxTimerSlack = 10 * time.Millisecond

// timerSlackReexec marks the process acpload replaces itself with to raise its timer
// slack (timerslack.Raise), and carries the name it was started under.
const timerSlackReexec = "ACPLOAD_TIMER_SLACK_REEXEC"

// raiseTimerSlack gives acpload a timer slack of at least want, and returns the slack
// it runs with. It may replace the process, which then parses its arguments again and
// comes back here; it runs before acpload starts anything, and every process acpload
// starts afterwards gets the slack acpload was started with (timerslack.AsStarted). A
// failure is reported on stderr and the run goes on with the slack it has.
func raiseTimerSlack(ctx context.Context, want time.Duration, stderr io.Writer) time.Duration {
	slack, err := timerslack.Raise(ctx, want, timerSlackReexec, slog.New(slog.NewTextHandler(stderr, nil)))
	if err != nil {
		fmt.Fprintf(stderr, "acpload: -timer-slack not applied, running with a slack of %s: %v\n", slack, err)
	}
	return slack
}

// concurrencyLevels is -c: one level, or a comma-separated list of distinct levels
// ("8,16,32"), each at least 1, run in the order given.
type concurrencyLevels []int

func (l *concurrencyLevels) String() string {
	parts := make([]string, len(*l))
	for i, n := range *l {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, ",")
}

func (l *concurrencyLevels) Set(v string) error {
	var out concurrencyLevels
	for part := range strings.SplitSeq(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(part))
		switch {
		case err != nil:
			return fmt.Errorf("want a number or a comma-separated list such as 8,16,32, got %q", v)
		case n < 1:
			return fmt.Errorf("every level must be at least 1, got %d", n)
		case slices.Contains(out, n):
			return fmt.Errorf("level %d is given twice", n)
		}
		out = append(out, n)
	}
	*l = out
	return nil
}

func realMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("acpload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		baseURL  = fs.String("url", "http://127.0.0.1:8080", "base URL of the running server")
		levels   = concurrencyLevels{8}
		duration = fs.Duration("d", 20*time.Second, "measured duration (of each phase with -bench)")
		flows    = fs.Int("n", 0, "run this many measured flows instead of -d")
		apiKey   = fs.String("api-key", "", "API key sent as Authorization: Bearer (the server's API_KEYS)")
		jsonOut  = fs.Bool("json", false, "print JSON instead of tables")
		warmup   = fs.Duration("warmup", 2*time.Second, "warm-up before measuring (not counted)")
		gzip     = fs.Bool("gzip", true, "accept gzip-compressed responses, as agent platforms do")
		client   = fs.String("client", clientLean, "the agents' HTTP client: "+clientLean+" (acpload's own HTTP/1.1 client, a connection and no goroutine of its own per agent, so that it takes less CPU from what it measures; https URLs go through net/http) or "+clientStd+" (Go's standard client)")
		adminKey = fs.String("admin-key", "", "a key of the server's ADMIN_API_KEYS: each flow then also reads its order, ships it and refunds one unit through the admin API")
		cancel   = fs.Bool("cancel", false, "each flow abandons its checkout: create, update, then cancel instead of paying")
		lines    = fs.Int("lines", 1, fmt.Sprintf("items in each session's cart, one of each (1 to %d distinct items of the demo catalog)", len(cartItems)))
		slack    = fs.Duration("timer-slack", defaultTimerSlack, "acpload's own timer slack, as the server's TIMER_SLACK, so that its wake-ups disturb what it measures less; the processes it starts keep the slack it was started with (0: leave acpload's as started)")

		bench        = fs.Bool("bench", false, "run the benchmark: throwaway PostgreSQL, pgbench ceiling, server, load phases, targets")
		server       = fs.String("server", "./bin/agentic-commerce-server", "-bench: the server binary to start")
		catalogFile  = fs.String("catalog", "internal/catalog/demo/products.jsonl", "-bench: the product feed to import")
		discounts    = fs.String("discounts", "", "-bench: a discounts file to import after the catalog (the server's `discounts import`), e.g. an automatic promotion with a usage limit; acpload's sessions send no codes (default: none)")
		pgbench      = fs.String("pgbench", "", "-bench: pgbench binary (default: PATH, else the newest /usr/lib/postgresql/*/bin)")
		poolMaxConns = fs.Int("pool-max-conns", 0, "-bench: pool_max_conns for the server's DATABASE_URL (0: the server's default)")
		pgbouncer    = fs.Bool("pgbouncer", false, "-bench: put pgbouncer (transaction pooling) between the server and PostgreSQL")
		pin          = fs.Bool("pin", false, "-bench: run PostgreSQL (and pgbouncer) on half of the CPUs and the server, pgbench and the load generator on the others, as on separate hosts")
		logLevel     = fs.String("server-log-level", "info", "-bench: the server's LOG_LEVEL (info logs every request, as in production)")
		check        = fs.Bool("check", false, "-bench: exit 1 when a target is missed or a request fails")
		baseline     = fs.String("baseline", "", "-bench: also build the server at this git revision and measure it beside the current one")
		durable      = fs.Bool("durable", false, "-bench: run PostgreSQL with fsync=on and synchronous_commit=on (default: off, for speed)")
		flashStock   = fs.Int("flash-sale", 0, "-bench: add the flash-sale phase: one item with this much stock, sold to -flash-agents agents (0: off)")
		flashAgents  = fs.Int("flash-agents", defaultFlashSaleAgents, "-bench: agents of the flash-sale phase")
		pspDelay     = fs.Duration("psp-delay", 0, "-bench: add the slow-PSP phase: the server pays through a fake Stripe API answering after this delay (0: off)")
		serverEnv    envList
	)
	fs.Var(&levels, "c", "concurrent agents (each sends one request at a time); with -bench a comma-separated list of levels, e.g. 8,16,32")
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
	case *flows < 0:
		return errors.New("-n must not be negative")
	case *flows == 0 && *duration <= 0:
		return errors.New("-d must be positive (or give -n)")
	case *warmup < 0:
		return errors.New("-warmup must not be negative")
	case *lines < 1 || *lines > len(cartItems):
		return fmt.Errorf("-lines must be from 1 to %d (the demo catalog's available items)", len(cartItems))
	case *slack < 0 || *slack > maxTimerSlack:
		return fmt.Errorf("-timer-slack must be from 0 to %s", maxTimerSlack)
	case *client != clientLean && *client != clientStd:
		return fmt.Errorf("-client must be %s or %s, got %q", clientLean, clientStd, *client)
	}

	if *bench {
		switch {
		case *flashStock < 0:
			return errors.New("-flash-sale must not be negative")
		case *flashAgents < 1:
			return errors.New("-flash-agents must be at least 1")
		case *pspDelay < 0:
			return errors.New("-psp-delay must not be negative")
		}
		if set["lines"] || set["admin-key"] || set["cancel"] {
			return errors.New("-lines, -admin-key and -cancel do not apply to -bench (its phases are the checkout's, of one-line sessions, as its pgbench ceiling)")
		}
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
		timerSlack := raiseTimerSlack(ctx, *slack, stderr)
		return runBench(ctx, benchConfig{
			server: *server, catalog: *catalogFile, discounts: *discounts, pgbench: *pgbench,
			levels: levels, duration: *duration, warmup: *warmup,
			poolMaxConns: *poolMaxConns, pgbouncer: *pgbouncer, pin: *pin, logLevel: *logLevel, serverEnv: serverEnv,
			gzip: *gzip, client: *client, json: *jsonOut, check: *check,
			baseline: *baseline, durable: *durable, flashStock: *flashStock, flashAgents: *flashAgents, pspDelay: *pspDelay,
			timerSlack: timerSlack,
		}, stdout, stderr)
	}

	for _, name := range []string{"server", "catalog", "discounts", "pgbench", "pool-max-conns", "pgbouncer", "pin", "server-log-level", "server-env", "check",
		"baseline", "durable", "flash-sale", "flash-agents", "psp-delay"} {
		if set[name] {
			return fmt.Errorf("-%s only applies to -bench", name)
		}
	}
	if len(levels) != 1 {
		return errors.New("-c takes one level without -bench (a list of levels is a -bench feature)")
	}
	if *cancel && *adminKey != "" {
		return errors.New("-cancel and -admin-key exclude each other: an abandoned checkout has no order")
	}
	cfg := loadConfig{
		name: "acpload", baseURL: strings.TrimRight(*baseURL, "/"), apiKey: *apiKey,
		concurrency: levels[0], duration: *duration, units: *flows, warmup: *warmup,
		createBody: createBodyOf(*lines), adminKey: *adminKey, cancel: *cancel,
	}
	if *flows > 0 {
		cfg.duration = 0
	}
	raiseTimerSlack(ctx, *slack, stderr)
	clients := newAgentClients(cfg.concurrency, *gzip, *client)
	defer clients.closeIdle()
	rep, err := runLoad(ctx, cfg, clients, func(ctx context.Context, a *agent) error { return a.flow(ctx) })
	if *jsonOut {
		if jerr := writeJSON(stdout, rep); jerr != nil {
			return errors.Join(err, jerr)
		}
	} else {
		rep.writeText(stdout)
	}
	return err
}
