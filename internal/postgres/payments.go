package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/agentic-commerce/agentic-commerce-server/db"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/idempotency"
	"github.com/agentic-commerce/agentic-commerce-server/internal/payment"
	"github.com/agentic-commerce/agentic-commerce-server/internal/webhook"
)

// CompleteSession pays for session id and creates its order.
//
// A vault token (our own mock PSP: no network call) pays in one transaction that locks
// the session row, then the usage-limited discounts it redeems, then the vault token
// row, then the variants whose stock it takes (always in that order, so concurrent
// completions cannot deadlock): either the order, the redemptions, the consumed token,
// the stock and the completed session all commit, or nothing does. That transaction is
// pipelined (completeWithVaultToken): the stock is taken last, just before the COMMIT.
//
// A PSP token is charged in phases (completeInPhases, attempts.go), so that no lock and
// no connection is held while the PSP answers.
//
// The transport looks the idempotency key up before the completion runs; a key found
// free (idempotency.Claim.Free) is held first in the completion's transaction. A vault
// token's completion inserts it there with the response; a PSP token's inserts its claim
// with the first phase (withClaimingTx), so that the key stays claimed while the PSP
// answers, outside any transaction, and records the response with the last.
//
// A declined payment leaves the session as it was, with a payment_declined message.
func (s *Store) CompleteSession(ctx context.Context, owner, id string, c checkout.Completion) (checkout.View, error) {
	if err := c.Validate(); err != nil {
		return checkout.View{}, err
	}
	if err := c.CheckHandler(s.handlers); err != nil {
		return checkout.View{}, err
	}
	if !payment.IsVaultToken(c.Token) {
		// Read under its locks; whatever its outcome, the session's kept view is out
		// of date after it (the SessionCache would find so, a round trip later).
		s.cache.drop(id)
		// A key the transport left to the completion, having found the view kept, is
		// looked up first, as the transport does for every other PSP completion.
		if err := lookUpAlone(ctx, s.pool, idempotency.FromContext(ctx)); err != nil {
			return checkout.View{}, err
		}
		return s.completeInPhases(ctx, owner, id, c)
	}
	view, err := s.completeWithVaultToken(ctx, owner, id, c)
	if errors.Is(err, errLockedTooFew) {
		view, err = s.completeStatementByStatement(ctx, owner, id, c)
	}
	return view, s.recordRefusal(ctx, owner, id, err, "")
}

// KeepsSessionView reports whether this instance keeps a view of owner's session id
// that the session's next completion with a vault token is likely to start from
// (StoreConfig.SessionCache). The transport then leaves the completion's idempotency
// key to the completion, which looks it up in its one round trip (completeWithVaultToken),
// rather than look it up on its own first. It is a hint: a completion that finds no
// view after all looks the key up on its own, as the transport would have.
func (s *Store) KeepsSessionView(owner, id string) bool {
	return s.cache.keeps(owner, id, s.now())
}

// lookUpAlone settles claim, a deferred one whose key nobody looked up yet (nil, or
// one taken or found free: nothing to do), with the key's look-up on its own, as the
// transport's lookUpFirst does: a key found free is marked so (MarkFree) and held by
// the work's transaction; a key with a record stops the work (ErrNotClaimed, the claim
// resolved with what the key holds); a key in flight, maybe a dead request's, is
// claimed on its own (Take).
func lookUpAlone(ctx context.Context, pool *pgxpool.Pool, claim *idempotency.Claim) error {
	if claim == nil || !claim.Pending() || claim.Free() {
		return nil
	}
	out, free, err := lookUpKey(ctx, db.New(pool), claim.Key, claim.Hash)
	switch {
	case err != nil:
		return err
	case free:
		claim.MarkFree()
		return nil
	case out.Kind == idempotency.InFlight:
		return claim.Take(ctx)
	}
	return claim.Resolve(out)
}

// errLockedTooFew says a pipelined completion could not be sure that it locked the
// discounts its order redeems: it rolls back, and the completion runs again one
// statement at a time.
var errLockedTooFew = errors.New("postgres: the discount codes of the session normalise differently in SQL and Go")

// completeWithVaultToken is the vault-token completion in a pipelinedTx: two round trips
// after the idempotency key's look-up, reading ahead of its locks (completeReadAhead),
// or, for a session whose session, token or usage-limited discounts changed between
// the two, or whose discounts were counted for another buyer than the completion's
// (countedFor), two more under its locks (completeUnderLocks).
//
// With a SessionCache holding the session's view and the token, the read goes: one
// round trip, checked as an update from a kept view is (writeReadAhead). The key's
// look-up rides it when the transport left the key to the storage layer, having found
// the view kept (KeepsSessionView): the key is held first in that round trip, looked
// up, and inserted with the response, so that a key found taken rolls the completion
// back (pipelinedTx.commitRidden, holdWhenRiding). One refused from the kept view runs
// again from a view read. A completion that does not start from a kept view looks its
// key up on its own first (lookUpAlone), as the transport does when it finds none: a
// replay is then that one statement, not the session's view.
func (s *Store) completeWithVaultToken(ctx context.Context, owner, id string, c checkout.Completion) (checkout.View, error) {
	var kept *sessionView
	if sv, ok := s.cache.view(owner, id, c.Token, s.now()); ok && sv.countedFor(c) {
		kept = &sv
	} else if err := lookUpAlone(ctx, s.pool, idempotency.FromContext(ctx)); err != nil {
		return checkout.View{}, err
	}
	view, refusedKept, err := s.completeReadAhead(ctx, owner, id, c, kept)
	switch {
	case refusedKept:
		if err := lookUpAlone(ctx, s.pool, idempotency.FromContext(ctx)); err != nil {
			return checkout.View{}, err
		}
		view, _, err = s.completeReadAhead(ctx, owner, id, c, nil)
	case kept != nil && !errors.Is(err, idempotency.ErrNotClaimed):
		// (A key found taken stops the completion before it tells whether the view
		// was current.)
		s.cache.found(!isSessionMoved(err) && !isTokenChanged(err))
	}
	if errors.Is(err, errReadUnderLocks) || isSessionMoved(err) || isTokenChanged(err) {
		view, err = s.completeUnderLocks(ctx, owner, id, c)
	}
	// Completed, the session has no next write; refused, its next starts from a read.
	// A key found taken left the session as it was, and its view as current as before.
	if !errors.Is(err, idempotency.ErrNotClaimed) {
		s.cache.dropCompleted(id, c.Token)
	}
	return view, err
}

// isTokenChanged reports whether err is ConsumeVaultToken's: the token was used or
// deleted (the sweeper deletes expired ones) after it was read.
func isTokenChanged(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == tokenChangedCode
}

// errReadUnderLocks says a completion read ahead of its locks found a discount with a
// per-buyer limit counted for another buyer than the completion's (countedFor): its
// redemptions must be counted for that buyer, under the discount's lock
// (completeUnderLocks).
var errReadUnderLocks = errors.New("postgres: a discount was counted for another buyer; the completion reads under its locks")

// completeReadAhead is the vault-token completion in two round trips after the
// idempotency key's look-up (docs/PERFORMANCE.md, "Round trips"):
//
//  1. the session's view with the token (GetSessionView), read ahead of the
//     completion's locks, outside the transaction (readOutside);
//  2. the key found free held (HoldIdempotencyKey); the session's row lock, taken only
//     if no transaction changed the row since that read (LockUnchangedSession, else
//     AC414); the locks of the usage-limited discounts the quote redeems
//     (LockDiscounts) and the check that none of the view's usage-limited
//     discounts reached a limit the view had it short of, or the reverse
//     (CheckDiscountUsageUnchanged, else AC414); the order and everything written with
//     it, the key with its response
//     (InsertIdempotentResponse) and the stock (TakeStock, beforeCommit): the whole
//     transaction, sent without BEGIN and COMMIT as the pipeline's implicit one.
//
// The session row's version stands for most of what the completion decides on: every
// write to a session, its token's use and its payment attempts included, changes the
// row. Three things do not, and each sends the completion under its locks: the
// discounts' redemption counts, which other sessions' completions change (checked
// behind the locks of the discounts the completion redeems: a limit of N redeems
// exactly N; a per-buyer limit counted for another buyer than the completion brings is
// read under the locks at once, errReadUnderLocks); the token, which the sweeper may delete once expired (its use,
// ConsumeVaultToken, raises AC411 when it is gone or used); and the session itself
// (AC414). The token is not locked ahead: its use locks it, after the session and the
// discounts and before the stock, the lock order of every completion. A transaction
// that raised wrote nothing, so running again under the locks gives the answer the
// locked read gives.
//
// kept, the view and the token kept by the SessionCache (nil: none), stands for the
// read (step 1), checked in step 2 (CheckKeptViewCurrent); refusedKept says the
// completion was refused from it, before anything was sent. The completion is then one
// round trip, and a deferred idempotency claim still pending rides it, its key held
// (holdWhenRiding).
func (s *Store) completeReadAhead(ctx context.Context, owner, id string, c checkout.Completion, kept *sessionView) (view checkout.View, refusedKept bool, err error) {
	var lines []checkout.Line
	view, err = withRiddenRecordedTx(ctx, s.pool, s.now, func(tx *pipelinedTx, now time.Time) (checkout.View, error) {
		q, deferred := db.New(tx), tx.deferred()
		refusedKept = false
		var sv sessionView
		if kept != nil {
			sv = kept.copied()
			tx.holdWhenRiding()
		} else {
			// The view takes no lock (LockUnchangedSession does, with the writes), so it
			// is read outside the transaction, and the writes are its only round trip.
			tx.readOutside()
			var err error
			if sv, err = s.readSessionView(ctx, q, db.GetSessionViewParams{ID: id, Owner: owner, TokenID: &c.Token, Now: now}); err != nil {
				return checkout.View{}, err
			}
		}
		if !sv.countedFor(c) {
			return checkout.View{}, errReadUnderLocks
		}
		if err := deferred.LockUnchangedSession(ctx, db.LockUnchangedSessionParams{ID: id, Owner: owner, RowVersion: sv.version}); err != nil {
			return checkout.View{}, fmt.Errorf("lock session: %w", err)
		}
		if kept != nil {
			if err := checkKeptView(ctx, deferred, sv.read.generation, sv.session, &sv.read, sv.token); err != nil {
				return checkout.View{}, err
			}
		}
		view, err := s.completeFromView(ctx, tx, sv, c, now, func(d *completionDraft) error {
			// The usage-limited discounts the quote redeems are locked, and every
			// usage-limited discount of the view checked behind those locks: a
			// statement after a lock reads a snapshot taken once the lock was
			// granted, which holds every redemption committed before it.
			if ids := d.limitedRedeemed(); len(ids) > 0 {
				if err := deferred.LockDiscounts(ctx, ids); err != nil {
					return fmt.Errorf("lock discounts: %w", err)
				}
			}
			return checkDiscountUsage(ctx, deferred, id, sv.read.parts)
		})
		refusedKept = kept != nil && err != nil
		lines = sv.session.Lines
		return view, err
	})
	return view, refusedKept, pipelinedCompletionError(err, lines)
}

// countedFor reports whether the discounts of sv were counted for the buyer completion
// c leaves the session with (applyCompletion), so that the completion may price from
// them and check them under its locks: always, unless one has a per-buyer limit and c
// brings another email.
func (sv sessionView) countedFor(c checkout.Completion) bool {
	buyer := sv.session.Buyer
	if c.Buyer != nil && sv.session.State == checkout.StateOpen {
		buyer = c.Buyer
	}
	return sv.read.parts.discountsServe(sv.read.parts.codes, buyerKey(buyer))
}

// completeUnderLocks is the vault-token completion in two round trips after the
// idempotency key's look-up:
//
//  1. BEGIN; the key found free held; the session's row lock (LockSession); the locks
//     of the usage-limited discounts that may apply to it (LockCompletionDiscounts),
//     and of the vault token (LockVaultToken); the session's view with the token
//     (GetSessionView), read under those locks, so the discounts are counted with
//     every redemption that committed before them;
//  2. the order and everything written with it, the key with its response, the stock
//     (TakeStock, beforeCommit) and COMMIT.
//
// The stock is taken last, so the variant rows every completion of a popular item
// waits for are held from that statement to the COMMIT right behind it. A short stock
// or a token used meanwhile cannot be seen in Go before the COMMIT: their statements
// raise (AC410, AC411), the transaction aborts, and pipelinedCompletionError maps the
// error back to the refusal the completion gave when it checked each row count.
func (s *Store) completeUnderLocks(ctx context.Context, owner, id string, c checkout.Completion) (checkout.View, error) {
	var lines []checkout.Line
	view, err := withPipelinedRecordedTx(ctx, s.pool, s.now, func(tx *pipelinedTx, now time.Time) (checkout.View, error) {
		sv, err := s.lockForCompletion(ctx, db.New(tx), tx.deferred(), owner, id, &c.Token, now)
		if err != nil {
			return checkout.View{}, err
		}
		view, err := s.completeFromView(ctx, tx, sv, c, now, nil)
		lines = sv.session.Lines
		return view, err
	})
	return view, pipelinedCompletionError(err, lines)
}

// completeFromView completes the session of sv, read under the completion's locks or
// locked unchanged by a statement deferred before these writes: the lazy expiry, the
// draft, the statements lockDiscounts (nil: none) queues for the draft, the order rows
// (deferred) and the stock (last before the COMMIT).
func (s *Store) completeFromView(ctx context.Context, tx *pipelinedTx, sv sessionView, c checkout.Completion, now time.Time,
	lockDiscounts func(d *completionDraft) error,
) (checkout.View, error) {
	q, deferred := db.New(tx), tx.deferred()
	sess := sv.session
	expired, err := expireAhead(ctx, deferred, sess, now)
	if err != nil {
		return checkout.View{}, err
	}
	if expired {
		return checkout.View{}, refuseAfterExpiry(sess.CheckCompletable(checkout.Quote{}), true)
	}
	d, offered, err := s.draftFromView(ctx, q, sv, c, now)
	if err != nil {
		return checkout.View{}, err
	}
	d.params.PaymentMethod, d.params.PaymentReference = "vault_token", d.vaultToken.ID
	if lockDiscounts != nil {
		if err := lockDiscounts(d); err != nil {
			return checkout.View{}, err
		}
	}
	if err := s.writeOrderRows(ctx, deferred, d, now); err != nil {
		return checkout.View{}, err
	}
	if err := takeStockLast(ctx, tx.beforeCommit(), sess.Lines); err != nil {
		return checkout.View{}, err
	}
	offered = withDecisions(offered, sess, sess.ConsentRecords(s.consents, d.consents))
	return s.viewWith(sess, d.cat, now, d.order, offered), nil
}

// lockForCompletion is lockSessionAhead for a completion: after the session, the
// usage-limited discounts that may apply to it and the vault token (nil: a PSP token,
// nothing to lock) are locked (the lock order of every completion), and the view holds
// the token, read locked.
func (s *Store) lockForCompletion(ctx context.Context, q, deferred *db.Queries, owner, id string, token *string, now time.Time) (sessionView, error) {
	if err := deferred.LockSession(ctx, db.LockSessionParams{ID: id, Owner: owner}); err != nil {
		return sessionView{}, fmt.Errorf("lock session: %w", err)
	}
	if err := deferred.LockCompletionDiscounts(ctx, id); err != nil {
		return sessionView{}, fmt.Errorf("lock discounts: %w", err)
	}
	if token != nil {
		if err := deferred.LockVaultToken(ctx, db.LockVaultTokenParams{ID: *token, Owner: owner}); err != nil {
			return sessionView{}, fmt.Errorf("lock vault token: %w", err)
		}
	}
	return s.readSessionView(ctx, q, db.GetSessionViewParams{ID: id, Owner: owner, TokenID: token, Now: now})
}

// draftFromView is draftCompletion on the view of a session read under every lock of
// its completion (lockForCompletion), without its statements: the discounts' counts are
// the view's, the token is the view's. It returns the draft with the marketing channels
// the session offers, and errLockedTooFew when the view's discount codes are not those
// the completion prices with (the locks may have missed a discount).
func (s *Store) draftFromView(ctx context.Context, q *db.Queries, sv sessionView, c checkout.Completion, now time.Time) (*completionDraft, []checkout.OfferedConsent, error) {
	sess := sv.session
	if !slices.Equal(sv.read.parts.codes, normalizedCodes(sess)) {
		return nil, nil, errLockedTooFew
	}
	applyCompletion(sess, c)
	cat := catalogOf(sv.read.variants, sv.read.options)
	offered, err := s.quoteParts(ctx, q, sess, &cat, sv.read.parts)
	if err != nil {
		return nil, nil, err
	}
	quote := checkout.Price(sess, cat, now)
	if err := sess.CheckCompletable(quote); err != nil {
		return nil, nil, err
	}
	if err := refuseUsageLimitReached(quote); err != nil {
		return nil, nil, err
	}
	var vaultToken *payment.Token
	if payment.IsVaultToken(c.Token) {
		if vaultToken = sv.token; vaultToken == nil {
			return nil, nil, payment.ErrTokenNotFound
		}
		if err := vaultToken.CheckUse(sess.ID, quote.Totals.Total, sess.Currency, now); err != nil {
			return nil, nil, err
		}
	}
	if err := checkout.CheckAuthentication(s.tokenAuthentication(vaultToken), c.Authentication, c.CarriesAuthentication); err != nil {
		return nil, nil, err
	}
	d, err := s.newCompletionDraft(sess, cat, quote, vaultToken, c, now)
	return d, offered, err
}

// withDecisions is offered, the marketing channels a session offers with its contacts'
// stored decisions, with the decisions records just made: as a read after they were
// stored would show it.
func withDecisions(offered []checkout.OfferedConsent, sess *checkout.Session, records []checkout.ConsentRecord) []checkout.OfferedConsent {
	for i, o := range offered {
		contact := checkout.ConsentContact(o.Channel, sess.Buyer, sess.FulfillmentContact)
		for _, r := range records {
			if contact != "" && r.Channel == o.Channel && r.Contact == contact {
				offered[i].Subscribed = r.OptedIn
			}
		}
	}
	return offered
}

// completeStatementByStatement is the vault-token completion of CompleteSession sent
// statement by statement, each checked as it returns: for the session whose lock set
// the pipelined completion cannot be sure of (errLockedTooFew).
func (s *Store) completeStatementByStatement(ctx context.Context, owner, id string, c checkout.Completion) (checkout.View, error) {
	return s.write(ctx, func(q *db.Queries, now time.Time) (checkout.View, error) {
		sess, expired, err := s.lockSession(ctx, q, owner, id, now)
		if err != nil {
			return checkout.View{}, err
		}
		d, err := s.draftCompletion(ctx, q, sess, expired, c, now)
		if err != nil {
			return checkout.View{}, err
		}
		if err := takeStock(ctx, q, sess.Lines); err != nil {
			return checkout.View{}, err
		}
		d.params.PaymentMethod, d.params.PaymentReference = "vault_token", d.vaultToken.ID
		return s.writeOrder(ctx, q, d, now)
	})
}

// completionDraft is what a completion's checks decided under the session's row lock:
// the session with the completion's buyer and notes, the catalog it was priced with, the
// order to write and how it is paid.
type completionDraft struct {
	sess        *checkout.Session
	cat         checkout.Catalog
	order       *checkout.Order
	params      db.InsertOrderParams
	redemptions []plannedRedemption
	// vaultToken pays the order (nil: a PSP token).
	vaultToken *payment.Token
	// consents and attribution are the completion's, stored with the order.
	consents    []checkout.MarketingConsent
	attribution *checkout.Attribution
}

// limitedRedeemed are the ids of the usage-limited discounts d redeems, in id order:
// the discounts a completion must hold while it counts and writes their redemptions.
func (d *completionDraft) limitedRedeemed() []string {
	var ids []string
	for _, r := range d.redemptions {
		if r.Limited {
			ids = append(ids, r.DiscountID)
		}
	}
	slices.Sort(ids)
	return ids
}

// plannedRedemption is one discount the order redeems, for amount.
type plannedRedemption struct {
	DiscountID string `json:"discount_id"`
	Amount     int64  `json:"amount"`
	// Limited says whether the discount has a usage limit: only those are reserved
	// while a payment attempt is in flight.
	Limited bool `json:"limited"`
}

// draftCompletion runs every check of completion c of sess at now, sess being locked
// (lockSession; expired says it expired there): the session is completable, its
// discounts are still within their limits (locked), its vault token may pay (locked),
// its 3-D Secure is satisfied. Nothing is written but a lazy expiry, which commits with
// the refusal; the caller takes the stock (takeStock), as late in its transaction as it
// can, since the variant rows of a popular item are what concurrent completions wait
// for.
func (s *Store) draftCompletion(ctx context.Context, q *db.Queries, sess *checkout.Session, expired bool, c checkout.Completion, now time.Time) (*completionDraft, error) {
	if expired {
		return nil, refuseAfterExpiry(sess.CheckCompletable(checkout.Quote{}), true)
	}
	applyCompletion(sess, c)
	cat, err := loadCatalog(ctx, q, sess, checkout.VariantIDs(sess, checkout.Changes{}))
	if err != nil {
		return nil, err
	}
	quote := checkout.Price(sess, cat, now)
	if err := sess.CheckCompletable(quote); err != nil {
		return nil, err
	}
	if quote, err = redeemDiscounts(ctx, q, sess, &cat, quote, now); err != nil {
		return nil, err
	}
	total, currency := quote.Totals.Total, sess.Currency

	var vaultToken *payment.Token
	if payment.IsVaultToken(c.Token) {
		if vaultToken, err = lockVaultToken(ctx, q, sess.Owner, c.Token); err != nil {
			return nil, err
		}
		if err := vaultToken.CheckUse(sess.ID, total, currency, now); err != nil {
			return nil, err
		}
	}
	// A vault token knows whether its card needs 3-D Secure; for a PSP token only
	// the PSP does, at the charge. A failed authentication refuses either way.
	if err := checkout.CheckAuthentication(s.tokenAuthentication(vaultToken), c.Authentication, c.CarriesAuthentication); err != nil {
		return nil, err
	}
	return s.newCompletionDraft(sess, cat, quote, vaultToken, c, now)
}

// applyCompletion sets on open session sess the buyer and the order notes completion c
// brings, and drops the 3-D Secure it shows: the cart is judged first, then the 3-D
// Secure of the completion's own credential, not the one the session shows.
func applyCompletion(sess *checkout.Session, c checkout.Completion) {
	if sess.State == checkout.StateOpen {
		if c.Buyer != nil {
			sess.Buyer = c.Buyer
		}
		if c.OrderNotes != nil {
			sess.OrderNotes = *c.OrderNotes
		}
	}
	sess.Authentication = nil
}

// newCompletionDraft is the draft of the order completion c of sess makes, checked at
// now: priced by quote from cat, paid with vaultToken (nil: a PSP token).
func (s *Store) newCompletionDraft(sess *checkout.Session, cat checkout.Catalog, quote checkout.Quote, vaultToken *payment.Token, c checkout.Completion, now time.Time) (*completionDraft, error) {
	total, currency := quote.Totals.Total, sess.Currency
	order := &checkout.Order{
		ID: checkout.NewID("ord_"), CheckoutSessionID: sess.ID, Status: checkout.OrderCreated,
		Amount: total, Currency: currency, Notes: sess.OrderNotes, CreatedAt: now, UpdatedAt: now,
		Amounts: &checkout.OrderAmounts{
			// Subtotal is net of item-level discounts; Discount is the order-level
			// ones, so that subtotal - discount + fulfillment + tax is the amount.
			Subtotal: quote.Totals.Subtotal, Discount: quote.Totals.Discount,
			Fulfillment: quote.Totals.Fulfillment, Tax: quote.Totals.Tax,
		},
	}
	order.PermalinkURL = s.orderURL + order.ID
	for _, l := range quote.Lines {
		order.Lines = append(order.Lines, checkout.OrderLine{
			ID: l.ID, ItemID: l.VariantID, Title: l.Title, Quantity: l.Quantity, Current: l.Quantity,
			// What the line cost before tax, after its discounts (its share of the
			// order-level ones included): a refund by units gives back what was paid.
			UnitAmount: l.UnitAmount, Subtotal: l.Subtotal - l.OrderDiscount, Tax: l.Tax, Priced: true,
		})
	}
	if vaultToken != nil && vaultToken.ManualReview {
		// The agent platform's risk signal asked for a review: the order waits for
		// the merchant instead of going straight to fulfilment.
		order.Status = checkout.OrderManualReview
	}
	d := &completionDraft{
		sess: sess, cat: cat, order: order, vaultToken: vaultToken, consents: c.Consents, attribution: c.Attribution,
		params: db.InsertOrderParams{
			ID: order.ID, CheckoutSessionID: sess.ID, Status: string(order.Status), Amount: total, Currency: currency,
			PermalinkUrl: order.PermalinkURL, OrderNotes: nonEmpty(order.Notes), Now: now,
		},
	}
	for _, a := range quote.Discounts.Applied {
		d.redemptions = append(d.redemptions, plannedRedemption{
			DiscountID: a.Discount.ID, Amount: a.Amount,
			Limited: a.Discount.UsageLimit != nil || a.Discount.PerBuyerLimit != nil,
		})
	}
	if c.BillingAddress != nil {
		var err error
		if d.params.BillingAddress, err = json.Marshal(c.BillingAddress); err != nil {
			return nil, fmt.Errorf("encode billing address: %w", err)
		}
	}
	if a := c.Authentication; a != nil {
		// What may be kept of the authentication; the cryptogram only goes to the
		// charge.
		outcome := string(a.Outcome)
		d.params.AuthenticationOutcome, d.params.AuthenticationEci = &outcome, nonEmpty(a.ECI)
		d.params.AuthenticationVersion, d.params.AuthenticationTransactionID = nonEmpty(a.Version), nonEmpty(a.TransactionID)
	}
	return d, nil
}

// writeOrder writes the paid order of d and completes its session, in the caller's
// transaction: the order with its lines and amounts, the redemptions, the consumed
// vault token, the order_create event, the completed session, the consents and the
// attribution. It returns the completed session's view.
func (s *Store) writeOrder(ctx context.Context, q *db.Queries, d *completionDraft, now time.Time) (checkout.View, error) {
	if err := s.writeOrderRows(ctx, q, d, now); err != nil {
		return checkout.View{}, err
	}
	return s.view(ctx, q, d.sess, d.cat, now, d.order)
}

// writeOrderRows is writeOrder's writes, each a statement whose only result is its
// error: they may be deferred in a pipelinedTx (w its deferred Queries).
func (s *Store) writeOrderRows(ctx context.Context, w *db.Queries, d *completionDraft, now time.Time) error {
	sess, order := d.sess, d.order
	if err := w.InsertOrder(ctx, d.params); err != nil {
		return orderError(err)
	}
	if err := insertOrderDetails(ctx, w, order); err != nil {
		return err
	}
	if err := recordRedemptions(ctx, w, sess, &d.cat, d.redemptions, order.ID, now); err != nil {
		return err
	}
	if d.vaultToken != nil {
		if err := w.ConsumeVaultToken(ctx, db.ConsumeVaultTokenParams{ID: d.vaultToken.ID, UsedAt: &now, OrderID: &order.ID}); err != nil {
			return tokenError(err)
		}
	}
	if err := emitEvent(ctx, w, s.events, webhook.OrderCreate, order, now); err != nil {
		return err
	}
	sess.Complete(now)
	if err := updateSession(ctx, w, sess, now); err != nil {
		return err
	}
	completion := checkout.Completion{Consents: d.consents}
	if err := s.storeConsents(ctx, w, sess, completion, order.ID, now); err != nil {
		return err
	}
	return insertAttribution(ctx, w, sess.ID, checkout.LastTouch, d.attribution, order.ID, now)
}

// recordRefusal records on session id what a refused completion must leave visible,
// once its transaction rolled back (noteRefusal), and returns err.
func (s *Store) recordRefusal(ctx context.Context, owner, id string, err error, pspAuthentication string) error {
	if werr := noteRefusal(ctx, db.New(s.pool), owner, id, err, pspAuthentication); werr != nil {
		return errors.Join(err, werr)
	}
	return err
}

// noteRefusal records refusal on open session id: a decline (or a failed
// authentication) as the session's payment error, and the 3-D Secure a PSP asked for
// (pspAuthentication, "" for none) as the session's authentication, so that it shows
// the agent what to authenticate with. Any other refusal leaves the session as it is.
func noteRefusal(ctx context.Context, q *db.Queries, owner, id string, refusal error, pspAuthentication string) error {
	de, ok := checkout.AsError(refusal)
	switch {
	case ok && (de.Kind == checkout.KindDeclined || de.Code == checkout.CodeAuthenticationFailed):
		if err := q.SetPaymentError(ctx, db.SetPaymentErrorParams{ID: id, Owner: owner, PaymentError: &de.Message}); err != nil {
			return fmt.Errorf("record decline: %w", err)
		}
	case ok && de.Code == checkout.CodeRequires3DS && pspAuthentication != "":
		if err := q.SetSessionAuthentication(ctx, db.SetSessionAuthenticationParams{
			ID: id, Owner: owner, DirectoryServer: &pspAuthentication,
		}); err != nil {
			return fmt.Errorf("record authentication: %w", err)
		}
	}
	return nil
}

// tokenAuthentication is the 3-D Secure a vault token's card needs (nil: none, or no
// vault token).
func (s *Store) tokenAuthentication(t *payment.Token) *checkout.Authentication {
	if t == nil || t.AuthenticationDirectoryServer == "" {
		return nil
	}
	return s.authentication(t.AuthenticationDirectoryServer)
}

// takeStock takes the stock of every line in one statement (TakeStock, sent now on q),
// in variant id order so that concurrent completions lock variant rows in one order; an
// unlimited variant's row is not locked (take_variant_stock). A short stock refuses the
// completion, naming the line that sold out, and leaves q's transaction aborted.
func takeStock(ctx context.Context, q *db.Queries, lines []checkout.Line) error {
	err := q.TakeStock(ctx, takeStockParams(lines))
	if err == nil {
		return nil
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == stockShortCode {
		return pipelinedCompletionError(err, lines)
	}
	return fmt.Errorf("take stock: %w", err)
}

// stockOrder is the order in which the stock of lines is taken: the indexes of lines
// by variant id, so that concurrent completions lock variant rows in one order.
func stockOrder(lines []checkout.Line) []int {
	order := make([]int, len(lines))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return strings.Compare(lines[a].VariantID, lines[b].VariantID) })
	return order
}

// outOfStock refuses a completion whose line i sold out.
func outOfStock(lines []checkout.Line, i int) error {
	return checkout.Errorf(checkout.KindConflict, "out_of_stock", checkout.At(checkout.FieldLines).Index(i),
		"Item %s sold out before the payment went through; nothing was charged.", lines[i].VariantID)
}

// takeStockLast is takeStock in one statement (TakeStock) queued on w, a pipelinedTx's
// beforeCommit Queries: a short stock fails the COMMIT's round trip with SQLSTATE
// AC410, which pipelinedCompletionError maps to takeStock's refusal for lines.
func takeStockLast(ctx context.Context, w *db.Queries, lines []checkout.Line) error {
	if err := w.TakeStock(ctx, takeStockParams(lines)); err != nil {
		return fmt.Errorf("take stock: %w", err)
	}
	return nil
}

// takeStockParams are TakeStock's arrays for lines, in stockOrder.
func takeStockParams(lines []checkout.Line) db.TakeStockParams {
	p := db.TakeStockParams{VariantIds: make([]string, len(lines)), Quantities: make([]int32, len(lines))}
	for n, i := range stockOrder(lines) {
		p.VariantIds[n], p.Quantities[n] = lines[i].VariantID, int32(lines[i].Quantity)
	}
	return p
}

// The SQLSTATEs of migration 00015's functions.
const (
	stockShortCode     = "AC410" // take_stock
	tokenChangedCode   = "AC411" // raise_vault_token_changed
	sessionChangedCode = "AC412" // raise_session_changed
	attemptSettledCode = "AC413" // raise_payment_attempt_settled
)

// pipelinedCompletionError maps the errors the deferred statements of a pipelined
// completion (completeWithVaultToken, beginAttempt, finishAttempt) raise for lines (the session's) to
// the errors the completion returned when it checked each statement's row count, and
// returns any other err as it is.
func pipelinedCompletionError(err error, lines []checkout.Line) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return err
	}
	switch {
	case pgErr.Code == stockShortCode:
		n, convErr := strconv.Atoi(pgErr.Detail)
		order := stockOrder(lines)
		if convErr != nil || n < 1 || n > len(order) {
			return fmt.Errorf("take stock: unexpected detail %q: %w", pgErr.Detail, err)
		}
		return outOfStock(lines, order[n-1])
	case pgErr.Code == tokenChangedCode:
		return tokenError(err)
	case pgErr.Code == sessionChangedCode:
		return fmt.Errorf("session changed under its row lock: %w", err)
	case pgErr.Code == attemptSettledCode:
		return fmt.Errorf("payment attempt settled under its row lock: %w", err)
	case pgErr.Code == "23505" && pgErr.TableName == "orders":
		return orderError(err)
	}
	return err
}

// tokenError is the error of a vault token found used under its row lock.
func tokenError(err error) error {
	return fmt.Errorf("vault token changed under its row lock: %w", err)
}

// orderError maps a unique violation on orders to "already completed": the constraint
// is the last line of defence should the row lock ever be bypassed.
func orderError(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return checkout.Errorf(checkout.KindNotAllowed, "checkout_session_completed", checkout.Field{}, "The checkout session already has an order.")
	}
	return fmt.Errorf("insert order: %w", err)
}

// lockVaultToken locks owner's token id; another owner's token is not found.
func lockVaultToken(ctx context.Context, q *db.Queries, owner, id string) (*payment.Token, error) {
	row, err := q.GetVaultTokenForUpdate(ctx, db.GetVaultTokenForUpdateParams{ID: id, Owner: owner})
	if isNoRows(err) {
		return nil, payment.ErrTokenNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("load vault token: %w", err)
	}
	return tokenFromRow(row), nil
}

// tokenFromRow is the vault token of row, as a completion checks it.
func tokenFromRow(row db.VaultToken) *payment.Token {
	return &payment.Token{
		ID: row.ID,
		Allowance: payment.Allowance{
			Reason: "one_time", MaxAmount: row.MaxAmount, Currency: row.Currency,
			CheckoutSessionID: row.CheckoutSessionID, MerchantID: row.MerchantID, ExpiresAt: row.ExpiresAt,
		},
		UsedAt:                        row.UsedAt,
		ManualReview:                  row.ManualReview,
		AuthenticationDirectoryServer: deref(row.AuthenticationDirectoryServer),
	}
}

// Vault stores delegated payment tokens: the mock PSP side of Delegate Payment.
type Vault struct {
	pool        *pgxpool.Pool
	fingerprint payment.Fingerprinter
	now         func() time.Time
	lifetime    time.Duration
	// cache keeps the tokens stored, for the Store of the same instance (nil: none).
	cache *SessionCache
}

// DefaultTokenLifetime caps how long a vault token can pay, whatever expiry its
// allowance asks for (VAULT_TOKEN_MAX_LIFETIME).
const DefaultTokenLifetime = 7 * 24 * time.Hour

// NewVault returns a Vault on pool that fingerprints cards with fp and caps token life
// at DefaultTokenLifetime.
func NewVault(pool *pgxpool.Pool, fp payment.Fingerprinter) *Vault {
	return &Vault{pool: pool, fingerprint: fp, now: storedNow, lifetime: DefaultTokenLifetime}
}

// WithTokenLifetime sets the cap on a token's life (from its creation) and returns v.
// An allowance may say 2099; an unused token of a checkout nobody finishes should not
// stay in the database, able to pay, that long.
func (v *Vault) WithTokenLifetime(d time.Duration) *Vault {
	v.lifetime = d
	return v
}

// WithSessionCache makes v keep the tokens it stores in c, the SessionCache of the
// instance's Store, whose completions then need not read them, and returns v.
func (v *Vault) WithSessionCache(c *SessionCache) *Vault {
	v.cache = c
	return v
}

// Delegate validates d and stores a new single-use token for it, owned by owner. Only
// what PCI DSS lets a merchant keep is written: never the card number, the CVC or the
// cryptogram. The request's idempotency claim, the token, the record of the response and
// the COMMIT are one round trip.
func (v *Vault) Delegate(ctx context.Context, owner string, d *payment.Delegation) (payment.Token, error) {
	if err := d.Validate(v.now()); err != nil {
		return payment.Token{}, err
	}
	// Nothing is read: the deferred claim rides the COMMIT (pipelinedTx.commitRidden).
	t, err := withRiddenRecordedTxV(ctx, v.pool, v.now, func(_, deferred *db.Queries, now time.Time) (payment.Token, error) {
		return insertToken(ctx, deferred, owner, d, v.fingerprint, now, v.lifetime)
	})
	if err == nil {
		v.cache.keepToken(owner, t)
	}
	return t, err
}

func insertToken(ctx context.Context, q *db.Queries, owner string, d *payment.Delegation, fp payment.Fingerprinter, now time.Time, lifetime time.Duration) (payment.Token, error) {
	t := payment.NewToken(d, fp, now)
	if limit := t.Created.Add(lifetime); lifetime > 0 && t.Allowance.ExpiresAt.After(limit) {
		t.Allowance.ExpiresAt = limit
	}
	p := db.InsertVaultTokenParams{
		ID: t.ID, Owner: owner, CheckoutSessionID: t.Allowance.CheckoutSessionID, MerchantID: t.Allowance.MerchantID,
		MaxAmount: t.Allowance.MaxAmount, Currency: t.Allowance.Currency, ExpiresAt: t.Allowance.ExpiresAt,
		CardBrand: t.CardBrand, CardFundingType: t.CardFunding, CardLast4: t.CardLast4, CardNumberType: t.CardType,
		CardVirtual: t.Virtual, ManualReview: t.ManualReview, CreatedAt: t.Created,
		CardFingerprint: nonEmpty(t.Fingerprint), CardWalletType: nonEmpty(t.WalletType),
		AuthenticationDirectoryServer: nonEmpty(t.AuthenticationDirectoryServer),
	}
	if t.CardExpMonth != 0 {
		m, y := int16(t.CardExpMonth), int16(t.CardExpYear)
		p.CardExpMonth, p.CardExpYear = &m, &y
	}
	// No risk signals (2026-04-17 allows []) are stored as [], not null: the column is
	// an array.
	signals := t.RiskSignals
	if signals == nil {
		signals = []payment.RiskSignal{}
	}
	var err error
	if p.RiskSignals, err = json.Marshal(signals); err != nil {
		return t, fmt.Errorf("encode risk signals: %w", err)
	}
	if p.Metadata, err = json.Marshal(orEmpty(t.Metadata)); err != nil {
		return t, fmt.Errorf("encode metadata: %w", err)
	}
	if t.Billing != nil {
		if p.BillingAddress, err = json.Marshal(t.Billing); err != nil {
			return t, fmt.Errorf("encode billing address: %w", err)
		}
	}
	if err := q.InsertVaultToken(ctx, p); err != nil {
		return t, fmt.Errorf("store vault token: %w", err)
	}
	return t, nil
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
