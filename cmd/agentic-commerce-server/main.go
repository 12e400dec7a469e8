// Command agentic-commerce-server serves the Agentic Commerce Protocol checkout API on
// PostgreSQL, and manages its schema and catalog.
//
// Usage:
//
//	agentic-commerce-server [serve]                 serve the API (the default)
//	agentic-commerce-server migrate up|down|status  manage the database schema
//	agentic-commerce-server catalog import FILE     upsert products from an ACP feed file
//	agentic-commerce-server catalog stock ID QTY    set a variant's stock (QTY or "unlimited")
//	agentic-commerce-server orders list|show|status|refund  the merchant's order lifecycle
//	agentic-commerce-server discounts create|list|disable|import  the merchant's discounts
//	agentic-commerce-server healthcheck             probe the local /health (container health checks)
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/config"
)

const usage = `usage:
  agentic-commerce-server [serve]                 serve the ACP API (default)
  agentic-commerce-server migrate up|down|status  manage the database schema
  agentic-commerce-server catalog import FILE     upsert products from an ACP product feed (JSONL or JSON array)
  agentic-commerce-server catalog stock ID QTY    set a variant's stock; QTY is a number >= 0 or "unlimited"
  agentic-commerce-server orders list [STATUS]     list the newest orders (optionally only those in STATUS)
  agentic-commerce-server orders show ID          print an order as JSON
  agentic-commerce-server orders status ID STATUS move an order (confirmed, shipped, fulfilled, canceled, manual_review)
  agentic-commerce-server orders refund ID TYPE AMOUNT  record a refund (store_credit or original_payment, minor units)
  agentic-commerce-server orders attempts [STATUS]  list the newest payment attempts of PSP charges (e.g. in_doubt)
  agentic-commerce-server orders attempts release ATTEMPT  give back an in_doubt attempt's stock (the PSP shows no charge)
  agentic-commerce-server discounts create -title T (-percent-bps N | -amount-off N -currency C) [-code CODE]
        [-scope order|items|fulfillment] [-items ID,…] [-min-subtotal N] [-starts T] [-ends T]
        [-usage-limit N] [-per-buyer-limit N] [-exclusive] [-priority N]
                                                  create a discount (no -code: an automatic one)
  agentic-commerce-server discounts list          list discounts with their redemptions
  agentic-commerce-server discounts disable ID    stop a discount from applying
  agentic-commerce-server discounts import FILE   create or replace discounts from a JSON file (all or none)
  agentic-commerce-server healthcheck             exit 0 when the local server answers /health (for containers)

Configuration comes from the environment; see README.md.`

// errUsage marks a command line that does not parse; main prints the usage for it.
var errUsage = errors.New("invalid command line")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := realMain(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		if errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, usage)
		}
		fmt.Fprintln(os.Stderr, "agentic-commerce-server:", err)
		os.Exit(1)
	}
}

func realMain(ctx context.Context, args []string, stdout io.Writer) error {
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	case "healthcheck":
		// For container health checks in images without curl: needs only PORT.
		return healthcheck(ctx, os.Getenv("PORT"))
	}
	cfg, err := config.Load(os.Getenv)
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))

	switch cmd {
	case "serve":
		if len(args) != 0 {
			return fmt.Errorf("%w: serve takes no arguments", errUsage)
		}
		return serve(ctx, cfg, logger)
	case "migrate":
		return migrate(ctx, cfg, args, stdout, logger)
	case "catalog":
		return catalogCmd(ctx, cfg, args, stdout)
	case "orders":
		return ordersCmd(ctx, cfg, args, stdout)
	case "discounts":
		return discountsCmd(ctx, cfg, args, stdout)
	}
	return fmt.Errorf("%w: unknown command %q", errUsage, cmd)
}

func healthcheck(ctx context.Context, port string) error {
	if port == "" {
		port = "8080"
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:"+port+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health: HTTP %d", resp.StatusCode)
	}
	return nil
}
