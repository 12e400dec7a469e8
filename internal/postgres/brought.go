package postgres

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/db"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
)

// brought is what an update brings that the view it starts from must have been read
// for, beyond the session as stored: the contacts whose stored marketing decisions it
// will show, and the email of the buyer it sets, whose redemptions a discount with a
// per-buyer limit counts. Both are known from the request before anything is read, so
// they are read along with the view (loadSessionViewWith), or alone beside a kept one
// (readBroughtAlone), rather than by a catalog read (GetCatalogFor) a round trip after
// the view (docs/PERFORMANCE.md, "Round trips").
type brought struct {
	// contacts are the contacts the update brings (contactsBroughtBy; nil: none).
	contacts []string
	// buyer is the email of the buyer the update sets, as buyerKey gives it (""
	// when it sets none, sets one without an email, or changes the codes too: the
	// catalog is read for those anyway).
	buyer string
	// buyerAlong says the buyer's redemptions are read along with a view read: the
	// store's perBuyerHint expects a discount with a per-buyer limit to apply. A kept
	// view shows whether one may, and the redemptions are read beside it only then.
	buyerAlong bool
}

// broughtBy is what update ch brings.
func (s *Store) broughtBy(ch checkout.Changes) brought {
	b := brought{contacts: s.contactsBroughtBy(ch)}
	if ch.Buyer != nil && ch.DiscountCodes == nil {
		b.buyer = buyerKey(ch.Buyer)
		b.buyerAlong = b.buyer != "" && s.perBuyer.likely()
	}
	return b
}

// loadSessionViewWith is loadSessionView in tx, with what b brings read along in its
// round trip: the stored marketing decisions of b's contacts, added to the parts of
// its read (addDecisions), and, when b.buyerAlong, the redemptions of b's buyer, which
// its discounts are then counted with (countFor). Reads that go first go outside the
// transaction (readOutside), as a claim riding them needs; behind a statement that
// locks (a locked update's LockSession), they are in the transaction.
func (s *Store) loadSessionViewWith(ctx context.Context, tx *pipelinedTx, owner, id string, b brought, now time.Time) (sessionView, error) {
	var decisions []db.MarketingConsent
	var redemptions []db.ListBuyerRedemptionsRow
	reads := b.reads(ctx, id, &decisions, &redemptions, len(b.contacts) > 0, b.buyerAlong)
	if len(reads) > 0 {
		tx.readOutside()
	}
	for _, read := range reads {
		if err := tx.readAlong(read); err != nil {
			return sessionView{}, err
		}
	}
	sv, err := s.loadSessionView(ctx, db.New(tx), owner, id, now)
	if err != nil {
		return sessionView{}, err
	}
	sv.read.parts.addDecisions(b.contacts, decisions)
	if b.buyerAlong && sv.session.State == checkout.StateOpen {
		sv.read.parts.countFor(b.buyer, redemptions)
	}
	return sv, nil
}

// readBroughtAlone makes sv, a kept view that serve says the update cannot start from,
// one it can, when all it lacks is what b brings: it reads, in one round trip that a
// claim rides, the stored decisions of b's contacts and, where a discount of sv's with
// a per-buyer limit counts them, the redemptions of b's buyer, and adds them to sv. It
// reports whether sv now serves; it reads nothing when sv would not serve with them.
func (s *Store) readBroughtAlone(ctx context.Context, tx *pipelinedTx, sv *sessionView, b brought, serve func(sessionView) bool) (bool, error) {
	parts := &sv.read.parts
	buyer := b.buyer != "" && b.buyer != parts.buyerEmail && slices.ContainsFunc(parts.discounts, perBuyerLimited)
	expected := sv.withContacts(b.contacts)
	if buyer {
		expected.read.parts.buyerEmail = b.buyer
	}
	if !serve(expected) {
		return false, nil
	}
	var decisions []db.MarketingConsent
	var redemptions []db.ListBuyerRedemptionsRow
	reads := b.reads(ctx, sv.session.ID, &decisions, &redemptions, len(b.contacts) > 0, buyer)
	if len(reads) == 0 {
		return false, nil
	}
	tx.readOutside()
	if err := tx.readAll(reads); err != nil {
		return false, err
	}
	parts.addDecisions(b.contacts, decisions)
	if buyer {
		parts.countFor(b.buyer, redemptions)
	}
	return serve(*sv), nil
}

// reads are the reads of what b brings for session id, each keeping its result in
// decisions or redemptions: b's contacts' stored decisions (withDecisions) and b's
// buyer's redemptions (withRedemptions).
func (b brought) reads(ctx context.Context, id string, decisions *[]db.MarketingConsent, redemptions *[]db.ListBuyerRedemptionsRow, withDecisions, withRedemptions bool) []func(q *db.Queries) error {
	var reads []func(q *db.Queries) error
	if withDecisions {
		reads = append(reads, func(q *db.Queries) (err error) {
			*decisions, err = loadDecisions(ctx, q, b.contacts)
			return err
		})
	}
	if withRedemptions {
		reads = append(reads, func(q *db.Queries) (err error) {
			if *redemptions, err = q.ListBuyerRedemptions(ctx, db.ListBuyerRedemptionsParams{
				CheckoutSessionID: id, BuyerEmail: b.buyer,
			}); err != nil {
				return fmt.Errorf("load the buyer's redemptions: %w", err)
			}
			return nil
		})
	}
	return reads
}

// perBuyerLimited reports whether d, a discount a view read, has a per-buyer limit.
func perBuyerLimited(d db.ListSessionDiscountsRow) bool { return d.Discount.PerBuyerLimit != nil }

// countFor makes p, whose discounts were counted for another buyer, count them for
// buyer (an email, as buyerKey gives it) from rows, the redemptions read for buyer
// (ListBuyerRedemptions): when each discount of p with a per-buyer limit has its row,
// its count becomes the row's, and p is as a read for buyer gives it (discount_usage
// counts nothing for a discount without that limit). Otherwise p is left as it is, and
// the update that needed it reads the catalog (applyChangesAhead).
func (p *loadedParts) countFor(buyer string, rows []db.ListBuyerRedemptionsRow) {
	if p.buyerEmail == buyer {
		return
	}
	counts := make([]int32, len(p.discounts))
	for i, d := range p.discounts {
		if !perBuyerLimited(d) {
			continue
		}
		j := slices.IndexFunc(rows, func(r db.ListBuyerRedemptionsRow) bool { return r.ID == d.Discount.ID })
		if j < 0 {
			return
		}
		counts[i] = rows[j].BuyerRedeemed
	}
	for i := range p.discounts {
		p.discounts[i].BuyerRedeemed = counts[i]
	}
	p.buyerEmail = buyer
}

// perBuyerHint says whether the views and catalogs a Store reads (readSessionView,
// applyChangesAhead) show a discount with a per-buyer limit at the newest catalog
// generation it has seen: an update that sets the buyer
// then reads the new buyer's redemptions along with the session's view (brought),
// which it needs only where such a discount may apply. A hint only: wrong, the update
// answers the same, a round trip slower (a catalog read after the view) or a statement
// dearer (the redemptions read and not needed, an index look-up of the session's
// discounts). A shop without such discounts, as the bench, never reads them; one with
// an automatic one always does; a catalog change starts the hint afresh. Its zero value
// expects none, and its methods are safe for concurrent use.
type perBuyerHint struct {
	// latest is the newest catalog generation a view read showed; seen, the newest
	// at which one showed a discount with a per-buyer limit (0: none).
	latest, seen atomic.Int64
}

// note records the discounts of a view or a catalog read at catalog generation
// generation.
func (h *perBuyerHint) note(generation int64, discounts []db.ListSessionDiscountsRow) {
	raise(&h.latest, generation)
	if slices.ContainsFunc(discounts, perBuyerLimited) {
		raise(&h.seen, generation)
	}
}

// likely reports whether a view read now would most likely show a discount with a
// per-buyer limit.
func (h *perBuyerHint) likely() bool {
	seen := h.seen.Load()
	return seen != 0 && seen == h.latest.Load()
}

// raise sets v to to, unless v is already as high.
func raise(v *atomic.Int64, to int64) {
	for {
		was := v.Load()
		if to <= was || v.CompareAndSwap(was, to) {
			return
		}
	}
}
