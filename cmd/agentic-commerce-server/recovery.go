package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/config"
	"github.com/agentic-commerce/agentic-commerce-server/internal/postgres"
)

// recoverPayments runs the payment recovery job every PAYMENT_RECOVERY_INTERVAL until
// ctx ends: it finishes the payment attempts a completion left pending (a crash or a
// PSP that did not answer between the charge and the order) and the refunds left
// pending. Each run is safe on several instances (docs/payments.md, "Recovery job").
func recoverPayments(ctx context.Context, store *postgres.Store, orders *postgres.Orders, cfg config.Config, logger *slog.Logger) {
	t := time.NewTicker(cfg.PaymentRecoveryInterval)
	defer t.Stop()
	for {
		results, err := store.RecoverPayments(ctx, cfg.PaymentInDoubtAfter)
		if err != nil && ctx.Err() == nil {
			logger.Warn("payment recovery failed", slog.Any("error", err))
		}
		for _, r := range results {
			logRecovery(ctx, logger, r)
		}
		if n, err := orders.RecoverRefunds(ctx, cfg.PaymentAttemptTimeout); err != nil && ctx.Err() == nil {
			logger.Warn("refund recovery", slog.Int("settled", n), slog.Any("error", err))
		} else if n > 0 {
			logger.Info("refunds recovered", slog.Int("settled", n))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// logRecovery logs what the recovery job did with one attempt: an attempt left in
// doubt is an error, for the operator to settle at the PSP.
func logRecovery(ctx context.Context, logger *slog.Logger, r postgres.RecoveryResult) {
	attrs := []slog.Attr{
		slog.String("attempt_id", r.AttemptID), slog.String("checkout_session_id", r.SessionID),
		slog.String("order_id", r.OrderID), slog.String("outcome", r.Outcome),
	}
	if r.Err != nil {
		attrs = append(attrs, slog.Any("error", r.Err))
	}
	switch r.Outcome {
	case postgres.RecoveredInDoubt:
		logger.LogAttrs(ctx, slog.LevelError, "payment attempt in doubt: check the charge at the PSP (orders attempts in_doubt)", attrs...)
	case postgres.RecoveredPending:
		logger.LogAttrs(ctx, slog.LevelWarn, "payment attempt still pending", attrs...)
	default:
		logger.LogAttrs(ctx, slog.LevelInfo, "payment attempt recovered", attrs...)
	}
}

// listAttempts prints the newest payment attempts, of status args[0] when given.
func listAttempts(ctx context.Context, orders *postgres.Orders, args []string, stdout io.Writer) error {
	status := ""
	if len(args) == 1 {
		status = args[0]
	}
	list, err := orders.PaymentAttempts(ctx, status, 50)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ATTEMPT\tSTATUS\tSESSION\tORDER\tAMOUNT\tGATEWAY\tIDEMPOTENCY KEY\tPSP REFERENCE\tTRIES\tCREATED\tLAST ERROR")
	for _, a := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d %s\t%s\t%s\t%s\t%d\t%s\t%s\n", a.ID, a.Status, a.SessionID, a.OrderID,
			a.Amount, a.Currency, a.Gateway, a.IdempotencyKey, a.PSPReference, a.Tries,
			a.CreatedAt.UTC().Format(time.RFC3339), a.LastError)
	}
	return tw.Flush()
}
