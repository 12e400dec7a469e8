package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/catalog"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/config"
	"github.com/agentic-commerce/agentic-commerce-server/internal/postgres"
)

const discountsUsage = "discounts takes create [FLAGS], list, disable ID or import FILE"

// discountsCmd manages the merchant's discounts: codes and automatic discounts.
func discountsCmd(ctx context.Context, cfg config.Config, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: %s", errUsage, discountsUsage)
	}
	var run func(*postgres.Discounts) error
	switch {
	case args[0] == "create":
		d, err := parseDiscountFlags(args[1:])
		if err != nil {
			return err
		}
		run = func(s *postgres.Discounts) error {
			created, err := s.Create(ctx, d)
			if err != nil {
				return err
			}
			return printJSON(stdout, catalog.NewDiscountDoc(created))
		}
	case args[0] == "list" && len(args) == 1:
		run = func(s *postgres.Discounts) error {
			list, err := s.List(ctx)
			if err != nil {
				return err
			}
			return printDiscounts(stdout, list)
		}
	case args[0] == "disable" && len(args) == 2:
		run = func(s *postgres.Discounts) error {
			d, err := s.Disable(ctx, args[1])
			if err != nil {
				return err
			}
			return printJSON(stdout, catalog.NewDiscountDoc(d))
		}
	case args[0] == "import" && len(args) == 2:
		list, err := parseFile(args[1], " ", catalog.ParseDiscounts)
		if err != nil {
			return err
		}
		run = func(s *postgres.Discounts) error {
			n, err := s.Import(ctx, list)
			if err != nil {
				return fmt.Errorf("%s: nothing imported: %w", args[1], err)
			}
			fmt.Fprintf(stdout, "imported %d discount(s) from %s\n", n, args[1])
			return nil
		}
	default:
		return fmt.Errorf("%w: %s", errUsage, discountsUsage)
	}
	pool, err := postgres.Connect(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	return run(postgres.NewDiscounts(pool))
}

// parseDiscountFlags reads the flags of discounts create into a discount definition;
// the domain validates it.
func parseDiscountFlags(args []string) (checkout.Discount, error) {
	fs := flag.NewFlagSet("discounts create", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var d checkout.Discount
	var scope, items, starts, ends string
	var usage, perBuyer int
	exclusive := false
	fs.StringVar(&d.ID, "id", "", "discount id (default: generated)")
	fs.StringVar(&d.Code, "code", "", "the code buyers enter (none: an automatic discount)")
	fs.StringVar(&d.Title, "title", "", "name shown to buyers (required)")
	fs.IntVar(&d.PercentBps, "percent-bps", 0, "percentage off in basis points (2000 = 20%)")
	fs.Int64Var(&d.AmountOff, "amount-off", 0, "fixed amount off in minor units")
	fs.StringVar(&d.Currency, "currency", "", "currency of amount-off (ISO 4217)")
	fs.StringVar(&scope, "scope", "order", "order, items or fulfillment")
	fs.StringVar(&items, "items", "", "comma-separated variant ids a discount of scope items applies to")
	fs.Int64Var(&d.MinSubtotal, "min-subtotal", 0, "minimum merchandise subtotal in minor units")
	fs.StringVar(&starts, "starts", "", "start (RFC 3339)")
	fs.StringVar(&ends, "ends", "", "end (RFC 3339)")
	fs.IntVar(&usage, "usage-limit", 0, "maximum orders in all (0: no limit)")
	fs.IntVar(&perBuyer, "per-buyer-limit", 0, "maximum orders per buyer email (0: no limit)")
	fs.BoolVar(&exclusive, "exclusive", false, "never combine with another discount")
	fs.IntVar(&d.Priority, "priority", checkout.DefaultDiscountPriority, "stacking order, lower first")
	if err := fs.Parse(args); err != nil {
		return d, fmt.Errorf("%w: discounts create: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return d, fmt.Errorf("%w: discounts create takes flags only, got %q", errUsage, fs.Arg(0))
	}
	d.Scope, d.Stackable = checkout.DiscountScope(scope), !exclusive
	if items != "" {
		d.ItemIDs = strings.Split(items, ",")
	}
	for _, t := range []struct {
		flag string
		in   string
		out  **time.Time
	}{{"starts", starts, &d.StartsAt}, {"ends", ends, &d.EndsAt}} {
		if t.in == "" {
			continue
		}
		v, err := time.Parse(time.RFC3339, t.in)
		if err != nil {
			return d, fmt.Errorf("%w: -%s must be an RFC 3339 time such as 2026-12-31T23:59:59Z", errUsage, t.flag)
		}
		*t.out = &v
	}
	if usage > 0 {
		d.UsageLimit = &usage
	}
	if perBuyer > 0 {
		d.PerBuyerLimit = &perBuyer
	}
	return d, nil
}

func printDiscounts(w io.Writer, list []checkout.Discount) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tCODE\tTITLE\tVALUE\tSCOPE\tREDEEMED\tSTATE")
	for _, d := range list {
		code := d.Code
		if d.Automatic() {
			code = "(automatic)"
		}
		value := fmt.Sprintf("%d %s", d.AmountOff, d.Currency)
		if d.PercentBps > 0 {
			value = fmt.Sprintf("%d.%02d%%", d.PercentBps/100, d.PercentBps%100)
		}
		redeemed := fmt.Sprint(d.Redeemed)
		if d.UsageLimit != nil {
			redeemed += fmt.Sprintf("/%d", *d.UsageLimit)
		}
		state := "enabled"
		if d.Disabled {
			state = "disabled"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, code, d.Title, value, d.Scope, redeemed, state)
	}
	return tw.Flush()
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
