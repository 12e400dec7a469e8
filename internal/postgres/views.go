package postgres

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/db"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/payment"
)

// sessionView is what a response shows of a session, read in one statement: the
// session as loadSession reads it, the catalog as loadCatalog reads it for the session,
// and the marketing channels offered as offeredConsents reads them.
type sessionView struct {
	session  *checkout.Session
	catalog  checkout.Catalog
	consents []checkout.OfferedConsent
	// read is what the catalog and the consents were made of, which an update reuses
	// when its changes leave the parameters of the parts as they are.
	read catalogRead
	// token is the vault token the view was read for (readSessionView with a token
	// id): nil when none was asked for or the owner has no such token.
	token *payment.Token
	// lastAttempt is the number of the session's latest payment attempt (0: none).
	lastAttempt int32
	// version is the version of the session row read (its xmin), which
	// LockUnchangedSession checks.
	version int64
	// authenticationAsked says the session row holds the 3-D Secure a PSP asked for at
	// an earlier completion (a view that shows it is not kept: SessionCache).
	authenticationAsked bool
}

// catalogRead is a catalog and the consents of a view as read, before they are checked
// against the session they are for.
type catalogRead struct {
	variants []db.Variant
	options  []db.FulfillmentOption
	parts    loadedParts
	// generation is the catalog's generation the read saw (migration 00034), which a
	// write started from a kept view checks (CheckKeptViewCurrent).
	generation int64
}

// loadSessionView reads owner's session id with everything its view needs at now in one
// round trip (GetSessionView), where loadSession, loadCatalog and offeredConsents take
// nine. The statement derives in SQL what those take from the session in Go (the
// normalised discount codes, the buyer's email, the tax region, the consent contacts);
// each is checked against the Go derivation here, and the part is loaded again in its
// own query where they differ (an address or a code with characters SQL's upper and
// Go's strings.ToUpper fold apart), so the view is always the one those would give.
func (s *Store) loadSessionView(ctx context.Context, q *db.Queries, owner, id string, now time.Time) (sessionView, error) {
	return s.readSessionView(ctx, q, db.GetSessionViewParams{ID: id, Owner: owner, Now: now})
}

// readSessionView is loadSessionView for the parameters p, which may name a vault token
// to read with the view (a completion's).
func (s *Store) readSessionView(ctx context.Context, q *db.Queries, p db.GetSessionViewParams) (sessionView, error) {
	id := p.ID
	row, err := q.GetSessionView(ctx, p)
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
	var token *db.VaultToken
	if err := decodeColumns(id,
		jsonColumn(row.VaultToken, &token, "vault token"),
		jsonColumn(row.Lines, &lines, "line items"),
		variantsDecoded.column(row.Variants, &variants, "variants"),
		optionsDecoded.column(row.FulfillmentOptions, &options, "fulfillment options"),
		jsonColumn(row.Discounts, &discounts, "discounts"),
		jsonColumn(row.MarketingConsents, &consents, "marketing consents"),
	); err != nil {
		return sessionView{}, err
	}
	s.perBuyer.note(row.CatalogGeneration, discounts)
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

	sv := sessionView{session: sess, catalog: catalogOf(variants, options), read: catalogRead{
		variants: variants, options: options, generation: row.CatalogGeneration, parts: loadedParts{
			codes: row.NormalizedCodes, buyerEmail: row.BuyerEmail, discounts: discounts,
			taxCountry: row.TaxCountry, taxRegion: row.TaxRegion, taxRateBps: row.TaxRateBps,
			contacts: row.ConsentContacts, consents: consents,
		},
	}}
	if token != nil {
		sv.token = tokenFromRow(*token)
	}
	sv.lastAttempt, sv.version = row.LastAttemptNumber, row.RowVersion
	sv.authenticationAsked = row.CheckoutSession.AuthenticationDirectoryServer != nil
	sv.consents, err = s.quoteParts(ctx, q, sess, &sv.catalog, sv.read.parts)
	if err != nil {
		return sessionView{}, err
	}
	return sv, nil
}

// catalogOf is the catalog of variants and options, without discounts and tax rate.
func catalogOf(variants []db.Variant, options []db.FulfillmentOption) checkout.Catalog {
	cat := checkout.Catalog{Variants: make(map[string]checkout.Variant, len(variants)), Options: optionsFromRows(options)}
	for _, v := range variants {
		cat.Variants[v.ID] = variantFromRow(v)
	}
	return cat
}

// loadedParts are the parts of a quote read ahead of knowing the session they are for
// (GetSessionView, GetCatalogFor), with the parameters they were read with.
type loadedParts struct {
	// codes (normalised) and buyerEmail chose discounts.
	codes      []string
	buyerEmail string
	discounts  []db.ListSessionDiscountsRow
	// taxCountry and taxRegion chose taxRateBps.
	taxCountry, taxRegion string
	taxRateBps            int32
	// consents are the stored decisions of contacts.
	contacts []string
	consents []db.MarketingConsent
}

// quoteParts sets the discounts and the tax rate of cat for sess, and returns the
// marketing channels its view offers, from the parts loaded ahead where they were read
// with sess's own parameters; a part read with others is loaded again by its own query.
func (s *Store) quoteParts(ctx context.Context, q *db.Queries, sess *checkout.Session, cat *checkout.Catalog, p loadedParts) ([]checkout.OfferedConsent, error) {
	var err error
	if email := buyerKey(sess.Buyer); p.discountsServe(normalizedCodes(sess), email) {
		for i := range p.discounts {
			inLocalTime(&p.discounts[i].Discount)
			if p.buyerEmail != email {
				p.discounts[i].BuyerRedeemed = 0 // another buyer's count; unused (discountsServe)
			}
		}
		cat.Discounts = sessionDiscountsFromRows(p.discounts)
	} else if cat.Discounts, err = sessionDiscounts(ctx, q, sess); err != nil {
		return nil, err
	}
	cat.TaxRateBps = 0
	if addr := sess.FulfillmentAddress; addr != nil {
		if country, region := addr.TaxRegion(); country == p.taxCountry && region == p.taxRegion {
			cat.TaxRateBps = int(p.taxRateBps)
		} else if cat.TaxRateBps, err = taxRate(ctx, q, addr); err != nil {
			return nil, err
		}
	}
	if containsAll(p.contacts, s.consentContacts(sess)) {
		return s.offeredConsentsFrom(sess, p.consents), nil
	}
	return s.offeredConsents(ctx, q, sess)
}

// applyChangesAhead is applyChanges reading the catalog in one statement
// (GetCatalogFor) before the changes are applied, or none when read, the catalog of the
// session's view (nil: none), already holds what the changes need: the variants of
// their items, and discounts, a tax rate and consents read with the parameters the
// changes are expected to leave. quoteParts loads again what the changes left
// otherwise. It returns the catalog and the marketing channels the view offers, and
// the read the catalog was made of.
func (s *Store) applyChangesAhead(ctx context.Context, q *db.Queries, sess *checkout.Session, ch checkout.Changes, now time.Time, read *catalogRead) (checkout.Catalog, []checkout.OfferedConsent, *catalogRead, error) {
	ids, want := s.readFor(sess, ch)
	if read == nil || !read.serves(ids, want) {
		var err error
		if read, err = readCatalogFor(ctx, q, sess, ids, want); err != nil {
			return checkout.Catalog{}, nil, nil, err
		}
		s.perBuyer.note(read.generation, read.parts.discounts)
	}
	cat := catalogOf(read.variants, read.options)
	if err := sess.Apply(ch, cat, now, s.ttl); err != nil {
		return cat, nil, nil, err
	}
	consents, err := s.quoteParts(ctx, q, sess, &cat, read.parts)
	return cat, consents, read, err
}

// readFor is what applyChangesAhead needs read to apply ch to sess: the variants
// ids, and the parts read with the parameters of want.
func (s *Store) readFor(sess *checkout.Session, ch checkout.Changes) (ids []string, want loadedParts) {
	expected := expectedAfter(sess, ch)
	want = loadedParts{codes: normalizedCodes(expected), buyerEmail: buyerKey(expected.Buyer), contacts: s.consentContacts(expected)}
	if addr := expected.FulfillmentAddress; addr != nil {
		want.taxCountry, want.taxRegion = addr.TaxRegion()
	}
	return checkout.VariantIDs(sess, ch), want
}

// readServes reports whether read, the catalog of sess's view, holds what
// applyChangesAhead needs to apply ch to sess, so that it reads nothing more.
func (s *Store) readServes(sess *checkout.Session, ch checkout.Changes, read *catalogRead) bool {
	ids, want := s.readFor(sess, ch)
	return read.serves(ids, want)
}

// serves reports whether r holds the variants ids and parts read with the parameters
// of want.
func (r *catalogRead) serves(ids []string, want loadedParts) bool {
	for _, id := range ids {
		if !slices.ContainsFunc(r.variants, func(v db.Variant) bool { return v.ID == id }) {
			return false
		}
	}
	p := r.parts
	return p.discountsServe(want.codes, want.buyerEmail) &&
		p.taxCountry == want.taxCountry && p.taxRegion == want.taxRegion && containsAll(p.contacts, want.contacts)
}

// discountsServe reports whether p's discounts, read for p's codes and buyer, are those
// of a session with codes and the buyer's email. The buyer only counts through the
// redemptions of a discount with a per-buyer limit: without one among them, discounts
// read for one buyer serve another, so an update that sets the buyer (the usual second
// step of a checkout) does not read the catalog again (docs/PERFORMANCE.md, "Round
// trips"). The other buyer's counts are then not the session's: quoteParts zeroes them.
func (p *loadedParts) discountsServe(codes []string, buyerEmail string) bool {
	if !slices.Equal(p.codes, codes) {
		return false
	}
	return p.buyerEmail == buyerEmail ||
		!slices.ContainsFunc(p.discounts, func(d db.ListSessionDiscountsRow) bool { return d.Discount.PerBuyerLimit != nil })
}

// readCatalogFor reads the variants ids and the parts with the parameters of want
// (GetCatalogFor) for sess.
func readCatalogFor(ctx context.Context, q *db.Queries, sess *checkout.Session, ids []string, want loadedParts) (*catalogRead, error) {
	id := sess.ID
	row, err := q.GetCatalogFor(ctx, db.GetCatalogForParams{
		VariantIds: ids, BuyerEmail: want.buyerEmail, CheckoutSessionID: id, Codes: want.codes,
		TaxCountry: want.taxCountry, TaxRegion: want.taxRegion, Contacts: want.contacts, HasOrder: mayHaveOrder(sess),
	})
	if err != nil {
		return nil, fmt.Errorf("load catalog: %w", err)
	}
	read := &catalogRead{parts: want, generation: row.CatalogGeneration}
	read.parts.taxRateBps = row.TaxRateBps
	if err := decodeColumns(id,
		variantsDecoded.column(row.Variants, &read.variants, "variants"),
		optionsDecoded.column(row.FulfillmentOptions, &read.options, "fulfillment options"),
		jsonColumn(row.Discounts, &read.parts.discounts, "discounts"),
		jsonColumn(row.MarketingConsents, &read.parts.consents, "marketing consents"),
	); err != nil {
		return nil, err
	}
	return read, nil
}

// expectedAfter is sess with what ch sets of the parameters of its quote's parts (its
// codes, buyer, address and contact): what Apply will most likely leave. It is a
// guess, checked by quoteParts.
func expectedAfter(sess *checkout.Session, ch checkout.Changes) *checkout.Session {
	after := &checkout.Session{
		ID: sess.ID, DiscountCodes: sess.DiscountCodes, Buyer: sess.Buyer,
		FulfillmentAddress: sess.FulfillmentAddress, FulfillmentContact: sess.FulfillmentContact,
	}
	if ch.DiscountCodes != nil {
		after.DiscountCodes = *ch.DiscountCodes
	}
	if ch.Buyer != nil {
		after.Buyer = ch.Buyer
	}
	if ch.FulfillmentAddress != nil {
		after.FulfillmentAddress = ch.FulfillmentAddress
	}
	if ch.FulfillmentContact != nil {
		after.FulfillmentContact = ch.FulfillmentContact
	}
	return after
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
