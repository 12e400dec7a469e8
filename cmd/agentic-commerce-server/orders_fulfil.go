package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/postgres"
)

// ordersUsage lists the orders subcommands; they mirror the admin order API.
const ordersUsage = `orders takes
  list [STATUS]
  show ID
  status ID STATUS
  refund ID TYPE AMOUNT|LINE=QTY... [-amount N] [-description D] [-reason R]
  fulfil ID TYPE LINE=QTY... [-status S] [-carrier C] [-tracking-number N] [-tracking-url U]
                             [-access-url U] [-license-key K] [-description D]
  event ID FULFILLMENT TYPE [-at RFC3339] [-description D] [-location L]
  cancel ID LINE=QTY...
  attempts [STATUS]   payment attempts of PSP charges (pending, succeeded, failed, released, in_doubt)
  attempts release ATTEMPT   give back an in_doubt attempt's stock once the PSP shows no charge`

// parseLineArgs reads LINE=QTY arguments (line item id = units).
func parseLineArgs(args []string) ([]checkout.LineQuantity, error) {
	out := make([]checkout.LineQuantity, 0, len(args))
	for _, a := range args {
		id, q, ok := strings.Cut(a, "=")
		n, err := strconv.Atoi(q)
		if !ok || id == "" || err != nil {
			return nil, fmt.Errorf("%w: %q is not LINE=QTY (a line item id and a whole number of units)", errUsage, a)
		}
		out = append(out, checkout.LineQuantity{LineID: id, Quantity: n})
	}
	return out, nil
}

// splitFlags parses the -flags that may follow the positional arguments.
func splitFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for len(args) > 0 {
		if strings.HasPrefix(args[0], "-") {
			if err := fs.Parse(args); err != nil {
				return nil, fmt.Errorf("%w: %v", errUsage, err)
			}
			args = fs.Args()
			continue
		}
		pos, args = append(pos, args[0]), args[1:]
	}
	return pos, nil
}

// refundCmd is `orders refund ID TYPE AMOUNT` or `orders refund ID TYPE LINE=QTY...`:
// an amount, or named units priced tax-inclusive (-amount to give the amount for them).
func refundCmd(ctx context.Context, orders *postgres.Orders, args []string) (*checkout.Order, error) {
	fs := flag.NewFlagSet("refund", flag.ContinueOnError)
	amount := fs.Int64("amount", 0, "amount in minor units")
	desc := fs.String("description", "", "why, for the buyer")
	reason := fs.String("reason", "", "reason code")
	pos, err := splitFlags(fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) < 3 {
		return nil, fmt.Errorf("%w: %s", errUsage, ordersUsage)
	}
	req := checkout.RefundRequest{Type: checkout.RefundType(pos[1]), Amount: *amount, Description: *desc, Reason: *reason}
	if len(pos) == 3 && !strings.Contains(pos[2], "=") {
		if req.Amount, err = strconv.ParseInt(pos[2], 10, 64); err != nil || req.Amount <= 0 {
			return nil, fmt.Errorf("%w: AMOUNT must be a positive whole number of minor units, got %q", errUsage, pos[2])
		}
	} else if req.Lines, err = parseLineArgs(pos[2:]); err != nil {
		return nil, err
	}
	return orders.RefundLines(ctx, pos[0], req)
}

// fulfilCmd is `orders fulfil ID TYPE LINE=QTY...`.
func fulfilCmd(ctx context.Context, orders *postgres.Orders, args []string) (*checkout.Order, error) {
	fs := flag.NewFlagSet("fulfil", flag.ContinueOnError)
	status := fs.String("status", "", "initial status (default pending)")
	carrier := fs.String("carrier", "", "carrier (shipping)")
	number := fs.String("tracking-number", "", "tracking number (shipping)")
	trackURL := fs.String("tracking-url", "", "tracking URL (shipping)")
	accessURL := fs.String("access-url", "", "access URL (digital)")
	license := fs.String("license-key", "", "license key (digital)")
	desc := fs.String("description", "", "description for the buyer")
	pos, err := splitFlags(fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) < 3 {
		return nil, fmt.Errorf("%w: %s", errUsage, ordersUsage)
	}
	f := checkout.Fulfillment{
		Type: checkout.FulfillmentType(pos[1]), Status: checkout.FulfillmentStatus(*status),
		Carrier: *carrier, TrackingNumber: *number, TrackingURL: *trackURL, Description: *desc,
	}
	if *accessURL != "" || *license != "" {
		f.Digital = &checkout.DigitalDelivery{AccessURL: *accessURL, LicenseKey: *license}
	}
	if f.Lines, err = parseLineArgs(pos[2:]); err != nil {
		return nil, err
	}
	return orders.AddFulfillment(ctx, pos[0], f)
}

// eventCmd is `orders event ID FULFILLMENT TYPE`.
func eventCmd(ctx context.Context, orders *postgres.Orders, args []string) (*checkout.Order, error) {
	fs := flag.NewFlagSet("event", flag.ContinueOnError)
	at := fs.String("at", "", "when it happened (RFC 3339; default now)")
	desc := fs.String("description", "", "description for the buyer")
	loc := fs.String("location", "", "where it happened")
	pos, err := splitFlags(fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) != 3 {
		return nil, fmt.Errorf("%w: %s", errUsage, ordersUsage)
	}
	ev := checkout.FulfillmentEvent{Type: checkout.FulfillmentEventType(pos[2]), OccurredAt: time.Now(), Description: *desc, Location: *loc}
	if *at != "" {
		if ev.OccurredAt, err = time.Parse(time.RFC3339, *at); err != nil {
			return nil, fmt.Errorf("%w: -at must be an RFC 3339 time, got %q", errUsage, *at)
		}
	}
	return orders.AddFulfillmentEvent(ctx, pos[0], pos[1], ev)
}
