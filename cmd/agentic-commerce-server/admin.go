package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/catalog"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/config"
	"github.com/agentic-commerce/agentic-commerce-server/internal/postgres"
)

func migrate(ctx context.Context, cfg config.Config, args []string, stdout io.Writer, logger *slog.Logger) error {
	if len(args) != 1 {
		return fmt.Errorf("%w: migrate takes one of up, down, status", errUsage)
	}
	pool, err := postgres.Connect(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	m, err := postgres.NewMigrator(pool, logger)
	if err != nil {
		return err
	}
	defer m.Close()

	switch args[0] {
	case "up":
		n, err := m.Up(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "applied %d migration(s); schema at version %d\n", n, m.LatestVersion())
		return nil
	case "down":
		if err := m.Down(ctx); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "rolled back one migration")
		return nil
	case "status":
		list, err := m.Status(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "VERSION\tSTATE\tMIGRATION")
		for _, s := range list {
			state := "pending"
			if s.Applied {
				state = "applied"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\n", s.Version, state, s.Name)
		}
		return tw.Flush()
	}
	return fmt.Errorf("%w: unknown migrate action %q", errUsage, args[0])
}

func catalogCmd(ctx context.Context, cfg config.Config, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: catalog takes import FILE or stock ID QTY", errUsage)
	}
	switch {
	case args[0] == "import" && len(args) == 2:
		products, err := parseFile(args[1], "\n", catalog.Parse)
		if err != nil {
			return err
		}
		pool, err := postgres.Connect(ctx, cfg.DatabaseURL)
		if err != nil {
			return err
		}
		defer pool.Close()
		res, err := postgres.ImportCatalog(ctx, pool, products)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "imported %d product(s), %d variant(s) from %s\n", res.Products, res.Variants, args[1])
		return nil
	case args[0] == "stock" && len(args) == 3:
		var qty *int32
		if args[2] != "unlimited" {
			n, err := strconv.ParseInt(args[2], 10, 32)
			if err != nil || n < 0 {
				return fmt.Errorf("%w: QTY must be a whole number >= 0 or \"unlimited\", got %q", errUsage, args[2])
			}
			q := int32(n)
			qty = &q
		}
		pool, err := postgres.Connect(ctx, cfg.DatabaseURL)
		if err != nil {
			return err
		}
		defer pool.Close()
		if err := postgres.SetStock(ctx, pool, args[1], qty); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "stock of %s set to %s\n", args[1], args[2])
		return nil
	}
	return fmt.Errorf("%w: catalog takes import FILE or stock ID QTY", errUsage)
}

// parseFile opens path and parses it; a refusal says nothing was imported, before the
// parser's message (after sep).
func parseFile[T any](path, sep string, parse func(io.Reader) (T, error)) (T, error) {
	f, err := os.Open(path)
	if err != nil {
		var zero T
		return zero, err
	}
	defer f.Close()
	v, err := parse(f)
	if err != nil {
		return v, fmt.Errorf("%s: nothing imported:%s%w", path, sep, err)
	}
	return v, nil
}

func ordersCmd(ctx context.Context, cfg config.Config, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: %s", errUsage, ordersUsage)
	}
	pool, err := postgres.Connect(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	// Changes made here notify the agent platform like those made over the admin API,
	// and refunds of PSP charges go through the configured gateway, as there.
	psp, err := gateway(cfg)
	if err != nil {
		return fmt.Errorf("payment gateway: %w", err)
	}
	orders := postgres.NewOrders(pool, cfg.WebhookURL != "").WithGateway(psp)

	var ord *checkout.Order
	switch {
	case args[0] == "list" && len(args) <= 2:
		status := ""
		if len(args) == 2 {
			status = args[1]
		}
		list, err := orders.List(ctx, status, nil, "", 50)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ORDER\tSTATUS\tAMOUNT\tREFUNDED\tCREATED")
		for _, o := range list {
			fmt.Fprintf(tw, "%s\t%s\t%d %s\t%d\t%s\n", o.ID, o.Status, o.Amount, o.Currency, o.Refunded(), o.CreatedAt.UTC().Format(time.RFC3339))
		}
		return tw.Flush()
	case args[0] == "attempts" && len(args) == 3 && args[1] == "release":
		if err := orders.ReleaseAttempt(ctx, args[2]); err != nil {
			return err
		}
		_, err := fmt.Fprintf(stdout, "released %s: its stock and discounts are back, its session open\n", args[2])
		return err
	case args[0] == "attempts" && len(args) <= 2:
		return listAttempts(ctx, orders, args[1:], stdout)
	case args[0] == "show" && len(args) == 2:
		ord, err = orders.Get(ctx, args[1])
	case args[0] == "status" && len(args) == 3:
		ord, err = orders.SetStatus(ctx, args[1], checkout.OrderStatus(args[2]))
	case args[0] == "refund" && len(args) >= 4:
		ord, err = refundCmd(ctx, orders, args[1:])
	case args[0] == "fulfil" && len(args) >= 4:
		ord, err = fulfilCmd(ctx, orders, args[1:])
	case args[0] == "event" && len(args) >= 4:
		ord, err = eventCmd(ctx, orders, args[1:])
	case args[0] == "cancel" && len(args) >= 3:
		var lines []checkout.LineQuantity
		if lines, err = parseLineArgs(args[2:]); err == nil {
			ord, err = orders.CancelLines(ctx, args[1], checkout.Cancellation{Lines: lines})
		}
	default:
		return fmt.Errorf("%w: %s", errUsage, ordersUsage)
	}
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(ord)
}
