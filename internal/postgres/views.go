package postgres

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/db"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
)

// sessionView is what a response shows of a session, read in one statement: the
// session as loadSession reads it, the catalog as loadCatalog reads it for the session,
// and the marketing channels offered as offeredConsents reads them.
type sessionView struct {
	session  *checkout.Session
	catalog  checkout.Catalog
	consents []checkout.OfferedConsent
}

// loadSessionView reads owner's session id with everything its view needs at now in one
// round trip (GetSessionView), where loadSession, loadCatalog and offeredConsents take
// nine. The statement derives in SQL what those take from the session in Go (the
// normalised discount codes, the buyer's email, the tax region, the consent contacts);
// each is checked against the Go derivation here, and the part is loaded again in its
// own query where they differ (an address or a code with characters SQL's upper and
// Go's strings.ToUpper fold apart), so the view is always the one those would give.
func (s *Store) loadSessionView(ctx context.Context, q *db.Queries, owner, id string, now time.Time) (sessionView, error) {
	row, err := q.GetSessionView(ctx, db.GetSessionViewParams{ID: id, Owner: owner, Now: now})
	if isNoRows(err) {
		return sessionView{}, checkout.ErrNotFound
	}
	if err != nil {
		return sessionView{}, fmt.Errorf("load session view: %w", err)
	}
	sess, err := sessionFromRow(row.CheckoutSession)
	if err != nil {
		return sessionView{}, err
	}
	var lines []db.LineItem
	var variants []db.Variant
	var options []db.FulfillmentOption
	var discounts []db.ListSessionDiscountsRow
	var consents []db.MarketingConsent
	if err := decodeColumns(id,
		jsonColumn(row.Lines, &lines, "line items"),
		jsonColumn(row.Variants, &variants, "variants"),
		jsonColumn(row.FulfillmentOptions, &options, "fulfillment options"),
		jsonColumn(row.Discounts, &discounts, "discounts"),
		jsonColumn(row.MarketingConsents, &consents, "marketing consents"),
	); err != nil {
		return sessionView{}, err
	}
	sess.Lines = linesFromRows(lines)
	if row.DiscountsActive {
		sess.DiscountsActive, sess.DiscountCodes = true, row.DiscountCodes
	}
	// As loadAuthentication: the latest usable vault token's card, else what a PSP
	// asked for at an earlier completion.
	if sess.State == checkout.StateOpen {
		ds := row.CheckoutSession.AuthenticationDirectoryServer
		if row.HasUsableToken {
			ds = row.UsableTokenDirectoryServer
		}
		if ds != nil {
			sess.Authentication = s.authentication(*ds)
		}
	}

	sv := sessionView{session: sess, catalog: checkout.Catalog{
		Variants: make(map[string]checkout.Variant, len(variants)), Options: optionsFromRows(options),
	}}
	for _, v := range variants {
		sv.catalog.Variants[v.ID] = variantFromRow(v)
	}
	if slices.Equal(row.NormalizedCodes, normalizedCodes(sess)) && row.BuyerEmail == buyerKey(sess.Buyer) {
		for i := range discounts {
			inLocalTime(&discounts[i].Discount)
		}
		sv.catalog.Discounts = sessionDiscountsFromRows(discounts)
	} else if sv.catalog.Discounts, err = sessionDiscounts(ctx, q, sess); err != nil {
		return sessionView{}, err
	}
	if addr := sess.FulfillmentAddress; addr != nil {
		if country, region := addr.TaxRegion(); country == row.TaxCountry && region == row.TaxRegion {
			sv.catalog.TaxRateBps = int(row.TaxRateBps)
		} else if sv.catalog.TaxRateBps, err = taxRate(ctx, q, addr); err != nil {
			return sessionView{}, err
		}
	}
	if contacts := s.consentContacts(sess); containsAll(row.ConsentContacts, contacts) {
		sv.consents = s.offeredConsentsFrom(sess, consents)
	} else if sv.consents, err = s.offeredConsents(ctx, q, sess); err != nil {
		return sessionView{}, err
	}
	return sv, nil
}

// containsAll reports whether every element of want is in have.
func containsAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

// inLocalTime moves the times of d, decoded from JSON in the database session's time
// zone, to the process's, where pgx puts the times it scans: a response shows the
// discount's start and end as they are, zone included.
func inLocalTime(d *db.Discount) {
	for _, t := range []*time.Time{d.StartsAt, d.EndsAt, d.DisabledAt, &d.CreatedAt, &d.UpdatedAt} {
		if t != nil {
			*t = t.Local()
		}
	}
}
