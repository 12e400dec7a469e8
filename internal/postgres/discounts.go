package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/agentic-commerce/agentic-commerce-server/db"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
)

// Discounts manages the merchant's discounts (the admin API and the discounts CLI).
type Discounts struct {
	pool *pgxpool.Pool
	now  func() time.Time
}

// NewDiscounts returns the discount store on pool.
func NewDiscounts(pool *pgxpool.Pool) *Discounts {
	return &Discounts{pool: pool, now: storedNow}
}

// Create validates d and stores it; an empty ID gets a generated one. A code already
// taken (case-insensitively) or an id already used is refused with KindConflict. With
// an Idempotency-Key, the response is recorded in the same transaction.
func (s *Discounts) Create(ctx context.Context, d checkout.Discount) (checkout.Discount, error) {
	if err := d.Validate(); err != nil {
		return d, err
	}
	if d.ID == "" {
		d.ID = checkout.NewID("disc_")
	}
	// A pipelinedTx: BEGIN, the insert and the discount read back in one round trip, the
	// record and COMMIT in the next. The insert's error comes back with the read.
	return withPipelinedRecordedTxV(ctx, s.pool, s.now, func(q, deferred *db.Queries, now time.Time) (checkout.Discount, error) {
		if err := writeDiscount(ctx, deferred, d, now, false); err != nil {
			return d, err
		}
		got, err := getDiscount(ctx, q, d.ID)
		return got, discountWriteError(err, d)
	})
}

// Import validates and stores every discount of list in one transaction: all of them
// or, on the first refusal, none (its error names its position). A discount whose id
// exists is replaced (an import can be run again), keeping whether it is disabled and
// its redemptions; one without an id gets a new one.
func (s *Discounts) Import(ctx context.Context, list []checkout.Discount) (int, error) {
	for i := range list {
		if err := list[i].Validate(); err != nil {
			return 0, fmt.Errorf("discount %d: %w", i, err)
		}
		if list[i].ID == "" {
			list[i].ID = checkout.NewID("disc_")
		}
	}
	now := s.now()
	err := WithTx(ctx, s.pool, func(q *db.Queries) error {
		for i, d := range list {
			if err := writeDiscount(ctx, q, d, now, true); err != nil {
				return fmt.Errorf("discount %d (%s): %w", i, d.ID, err)
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return len(list), nil
}

// writeDiscount inserts d or, with replace, replaces the discount of its id.
func writeDiscount(ctx context.Context, q *db.Queries, d checkout.Discount, now time.Time, replace bool) error {
	p := db.InsertDiscountParams{
		ID: d.ID, Code: nonEmpty(d.Code), Title: d.Title, Currency: nonEmpty(d.Currency), Scope: string(d.Scope),
		ItemIds: d.ItemIDs, MinSubtotal: d.MinSubtotal, StartsAt: d.StartsAt, EndsAt: d.EndsAt,
		UsageLimit: int32Ptr(d.UsageLimit), PerBuyerLimit: int32Ptr(d.PerBuyerLimit),
		Stackable: d.Stackable, Priority: int32(d.Priority), Now: now,
	}
	if p.ItemIds == nil {
		p.ItemIds = []string{}
	}
	if d.PercentBps > 0 {
		bps := int32(d.PercentBps)
		p.PercentBps = &bps
	} else {
		p.AmountOff = &d.AmountOff
	}
	var err error
	if replace {
		err = q.UpsertDiscount(ctx, db.UpsertDiscountParams(p))
	} else {
		err = q.InsertDiscount(ctx, p)
	}
	if err != nil {
		return discountWriteError(fmt.Errorf("insert discount: %w", err), d)
	}
	return nil
}

// discountWriteError is err, of the round trip that wrote d, with a unique violation
// turned into the conflict it means: the code taken, or the id used.
func discountWriteError(err error, d checkout.Discount) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "23505" {
		return err
	}
	if strings.Contains(pgErr.ConstraintName, "code") {
		return checkout.Errorf(checkout.KindConflict, "conflict", checkout.At(checkout.FieldDiscountCode), "The code %s is taken by another discount.", d.Code)
	}
	return checkout.Errorf(checkout.KindConflict, "conflict", checkout.At(checkout.FieldID), "A discount with id %s exists.", d.ID)
}

// List returns every discount, newest first, with its redemption count.
func (s *Discounts) List(ctx context.Context) ([]checkout.Discount, error) {
	rows, err := db.New(s.pool).ListDiscounts(ctx)
	if err != nil {
		return nil, fmt.Errorf("list discounts: %w", err)
	}
	out := make([]checkout.Discount, len(rows))
	for i, r := range rows {
		out[i] = discountFromRow(r.Discount, r.Redeemed, 0)
	}
	return out, nil
}

// Get returns discount id.
func (s *Discounts) Get(ctx context.Context, id string) (checkout.Discount, error) {
	return getDiscount(ctx, db.New(s.pool), id)
}

func getDiscount(ctx context.Context, q *db.Queries, id string) (checkout.Discount, error) {
	r, err := q.GetDiscount(ctx, id)
	if isNoRows(err) {
		return checkout.Discount{}, errNoDiscount(id)
	}
	if err != nil {
		return checkout.Discount{}, fmt.Errorf("get discount: %w", err)
	}
	return discountFromRow(r.Discount, r.Redeemed, 0), nil
}

// Disable stops discount id from applying to any session from now on; a session that
// holds its code shows it rejected. Orders already paid keep their discount, and
// disabling again changes nothing.
//
// A pipelinedTx: BEGIN, the update and the discount read back in one round trip, the
// record and COMMIT in the next.
func (s *Discounts) Disable(ctx context.Context, id string) (checkout.Discount, error) {
	return withPipelinedRecordedTx(ctx, s.pool, s.now, func(tx *pipelinedTx, now time.Time) (checkout.Discount, error) {
		var disabled int64
		if err := tx.readAlong(func(q *db.Queries) (err error) {
			disabled, err = q.DisableDiscount(ctx, db.DisableDiscountParams{ID: id, Now: now})
			return wrapErr(err, "disable discount")
		}); err != nil {
			return checkout.Discount{}, err
		}
		d, err := getDiscount(ctx, db.New(tx), id)
		if err == nil && disabled == 0 {
			// Created after the update looked (each statement reads its own snapshot):
			// there was nothing to disable.
			err = errNoDiscount(id)
		}
		return d, err
	})
}

func errNoDiscount(id string) error {
	return checkout.Errorf(checkout.KindNotFound, "not_found", checkout.Field{}, "No discount with id %q.", id)
}

func discountFromRow(r db.Discount, redeemed, buyerRedeemed int32) checkout.Discount {
	d := checkout.Discount{
		ID: r.ID, Title: r.Title, Scope: checkout.DiscountScope(r.Scope), ItemIDs: r.ItemIds,
		MinSubtotal: r.MinSubtotal, StartsAt: r.StartsAt, EndsAt: r.EndsAt,
		UsageLimit: intPtr(r.UsageLimit), PerBuyerLimit: intPtr(r.PerBuyerLimit),
		Stackable: r.Stackable, Priority: int(r.Priority), Disabled: r.DisabledAt != nil,
		Redeemed: int(redeemed), BuyerRedeemed: int(buyerRedeemed), CreatedAt: r.CreatedAt,
	}
	if r.Code != nil {
		d.Code = *r.Code
	}
	if r.Currency != nil {
		d.Currency = *r.Currency
	}
	if r.PercentBps != nil {
		d.PercentBps = int(*r.PercentBps)
	}
	if r.AmountOff != nil {
		d.AmountOff = *r.AmountOff
	}
	return d
}

// sessionDiscounts loads what prices the discounts of sess: the definitions its codes
// name and the enabled automatic ones, counted for its buyer.
func sessionDiscounts(ctx context.Context, q *db.Queries, sess *checkout.Session) ([]checkout.Discount, error) {
	rows, err := q.ListSessionDiscounts(ctx, db.ListSessionDiscountsParams{
		Codes: normalizedCodes(sess), BuyerEmail: buyerKey(sess.Buyer), CheckoutSessionID: sess.ID,
		HasOrder: mayHaveOrder(sess),
	})
	if err != nil {
		return nil, fmt.Errorf("load discounts: %w", err)
	}
	return sessionDiscountsFromRows(rows), nil
}

// mayHaveOrder reports whether sess may have an order, whose redeemed discounts its
// discounts then include: only a completion writes one, in the transaction that
// completes the session, so an open session has none and its statements skip reading
// them (migration 00033).
func mayHaveOrder(sess *checkout.Session) bool { return sess.State != checkout.StateOpen }

// normalizedCodes are the discount codes of sess as discounts store theirs.
func normalizedCodes(sess *checkout.Session) []string {
	codes := make([]string, len(sess.DiscountCodes))
	for i, c := range sess.DiscountCodes {
		codes[i] = checkout.NormalizeCode(c)
	}
	return codes
}

// sessionDiscountsFromRows are the discounts of a session's rows of ListSessionDiscounts.
func sessionDiscountsFromRows(rows []db.ListSessionDiscountsRow) []checkout.Discount {
	out := make([]checkout.Discount, len(rows))
	for i, r := range rows {
		out[i] = discountFromRow(r.Discount, r.Redeemed, r.BuyerRedeemed)
		out[i].UsedBySession = r.UsedBySession
	}
	return out
}

// buyerKey is the form a buyer's email is counted under for per-buyer limits ("" for
// no buyer, which no redemption has).
func buyerKey(b *checkout.Buyer) string {
	if b == nil {
		return ""
	}
	return strings.ToLower(strings.TrimSpace(b.Email))
}

// loadSessionCodes reads whether sess uses the discount extension, and its codes.
func loadSessionCodes(ctx context.Context, q *db.Queries, sess *checkout.Session) error {
	codes, err := q.GetSessionDiscountCodes(ctx, sess.ID)
	if isNoRows(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load discount codes: %w", err)
	}
	sess.DiscountsActive, sess.DiscountCodes = true, codes
	return nil
}

// saveSessionCodes writes the extension row of a session that uses it.
func saveSessionCodes(ctx context.Context, q *db.Queries, sess *checkout.Session) error {
	if !sess.DiscountsActive {
		return nil
	}
	codes := sess.DiscountCodes
	if codes == nil {
		codes = []string{}
	}
	if err := q.UpsertSessionDiscountCodes(ctx, db.UpsertSessionDiscountCodesParams{CheckoutSessionID: sess.ID, Codes: codes}); err != nil {
		return fmt.Errorf("store discount codes: %w", err)
	}
	return nil
}

// redeemDiscounts counts the order's discounts, in the completion's transaction. The
// discounts with a usage limit that the quote applies are locked first and the session
// priced again with their counts as they are now: a completion that waited for another
// sees its redemption. A code of the session rejected for its usage limit then refuses
// the completion (the buyer would pay more than the session showed; see
// docs/decisions.md). It returns the quote to charge.
func redeemDiscounts(ctx context.Context, q *db.Queries, sess *checkout.Session, cat *checkout.Catalog, quote checkout.Quote, now time.Time) (checkout.Quote, error) {
	var limited []string
	for _, a := range quote.Discounts.Applied {
		if a.Discount.UsageLimit != nil || a.Discount.PerBuyerLimit != nil {
			limited = append(limited, a.Discount.ID)
		}
	}
	if len(limited) > 0 {
		slices.Sort(limited)
		if err := q.LockDiscounts(ctx, limited); err != nil {
			return quote, fmt.Errorf("lock discounts: %w", err)
		}
		var err error
		if cat.Discounts, err = sessionDiscounts(ctx, q, sess); err != nil {
			return quote, err
		}
		quote = checkout.Price(sess, *cat, now)
	}
	return quote, refuseUsageLimitReached(quote)
}

// refuseUsageLimitReached refuses a completion priced by quote when a code of its
// session is rejected for its usage limit (priced with the discounts locked).
func refuseUsageLimitReached(quote checkout.Quote) error {
	for _, r := range quote.Discounts.Rejected {
		if r.Reason == checkout.ReasonUsageLimitReached {
			return checkout.Errorf(checkout.KindConflict, string(r.Reason), checkout.At(checkout.FieldDiscountCodes).Index(r.Index),
				"%s Nothing was charged: remove the code to pay without it.", r.Message)
		}
	}
	return nil
}

// recordRedemptions writes one redemption per discount the order used, and marks them
// used by the session in cat, so that the completed session's view shows them.
func recordRedemptions(ctx context.Context, q *db.Queries, sess *checkout.Session, cat *checkout.Catalog, redemptions []plannedRedemption, orderID string, now time.Time) error {
	for i := range cat.Discounts {
		cat.Discounts[i].UsedBySession = slices.ContainsFunc(redemptions, func(r plannedRedemption) bool {
			return r.DiscountID == cat.Discounts[i].ID
		})
	}
	for _, r := range redemptions {
		if err := q.InsertRedemption(ctx, db.InsertRedemptionParams{
			DiscountID: r.DiscountID, OrderID: orderID, BuyerEmail: buyerKey(sess.Buyer), Amount: r.Amount, Now: now,
		}); err != nil {
			return fmt.Errorf("record discount redemption: %w", err)
		}
	}
	return nil
}

func int32Ptr(v *int) *int32 {
	if v == nil {
		return nil
	}
	n := int32(*v)
	return &n
}
