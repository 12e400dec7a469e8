package postgres

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/db"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/payment"
)

// SessionCache keeps, in one instance's memory, the view each session's last write
// answered with and the vault tokens the instance stored, so that the session's next
// update or completion starts from them instead of reading the view again: one round
// trip and most of PostgreSQL's work less, and for a vault-token completion the key's
// look-up rides too (docs/PERFORMANCE.md, "The session view cache"). Nothing kept is
// trusted: the write that starts from a kept view checks, in its own round trip, that
// the session row is the version the view was kept under (LockUnchangedSession) and
// that the catalog, the session's 3-D Secure tokens, the stock of its lines and the
// stored marketing decisions it offers still give the same view
// (CheckKeptViewCurrent), and that its usage-limited discounts stand where they stood
// (CheckDiscountUsageUnchanged). When they do not, the write runs again from a view read
// under the session's lock, as when a session changes between an uncached write's
// read and its lock. A kept view serves only the instance that kept it: behind a load
// balancer without session affinity most writes find the view of another instance's
// write, out of date, and pay a round trip more.
// So the cache watches what the writes that started from its views found: while most
// found them out of date, it uses one view in keptProbeEvery it finds and reads for the
// others, and it uses them all again once they are mostly current (keptOutcomeWeight).
//
// A nil *SessionCache keeps nothing. Its methods are safe for concurrent use.
type SessionCache struct {
	limit  int
	mu     sync.Mutex
	views  map[string]sessionView
	tokens map[string]keptToken
	// current is the moving average of the writes that started from a kept view: 1
	// for one that found it current, 0 for one that found it out of date.
	current float64
	// passed counts the views found and not used since the last one used, while
	// current is not above keptPaysAbove.
	passed int
	stats  SessionCacheStats
}

// SessionCacheStats counts what a SessionCache's views did for the writes that found
// one, since the cache was made.
type SessionCacheStats struct {
	// Current counts the writes that started from a kept view and found it current:
	// each took a round trip less than from a read (a vault-token completion whose key
	// rode with it, two: Store.KeepsSessionView).
	Current uint64
	// OutOfDate counts the writes that started from a kept view and found it out of
	// date (another instance wrote the session, or the catalog changed): each ran
	// again from a read, a round trip more than without the cache.
	OutOfDate uint64
	// Passed counts the kept views found and not used because most recent ones were
	// out of date.
	Passed uint64
}

// The cache's judgement of whether its views pay on this instance. Starting from a kept
// view saves a round trip when it is current and costs one when it is out of date, so
// it pays while more than half are current (keptPaysAbove). The average weighs each
// write's outcome keptOutcomeWeight: from all current, eleven writes in a row that find
// their views out of date take it below a half, as behind a balancer without affinity
// (docs/operations.md, "The session view cache"). Below it, one view in keptProbeEvery
// found is still used, so that the cache sees when its views are current again (the
// balancer gained affinity, the instances became one) and comes back after about
// eleven such in a row; meanwhile a write costs at most a sixteenth of a round trip
// more on average than without the cache.
const (
	keptPaysAbove     = 0.5
	keptOutcomeWeight = 1.0 / 16
	keptProbeEvery    = 16
)

// variantColumnsOutsideGeneration are the columns of variants whose changes the
// catalog's generation does not count (migration 00034): the stock, which a kept view's
// check compares line by line, and updated_at, which no response shows.
var variantColumnsOutsideGeneration = []string{"stock_quantity", "updated_at"}

// keptToken is a vault token this instance stored, with its owner.
type keptToken struct {
	owner string
	token payment.Token
}

// NewSessionCache returns a SessionCache that keeps at most limit views and limit
// tokens, or nil (none) when limit is 0 or less.
func NewSessionCache(limit int) *SessionCache {
	if limit <= 0 {
		return nil
	}
	return &SessionCache{limit: limit, views: make(map[string]sessionView), tokens: make(map[string]keptToken), current: 1}
}

// Stats returns what the cache's views did so far (zero for a nil cache).
func (c *SessionCache) Stats() SessionCacheStats {
	if c == nil {
		return SessionCacheStats{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// Counts returns Stats' three counts, in the order metrics.WatchSessionCache takes
// them.
func (c *SessionCache) Counts() (current, outOfDate, passed uint64) {
	st := c.Stats()
	return st.Current, st.OutOfDate, st.Passed
}

// found records what a write that started from a kept view found it: current, or out
// of date.
func (c *SessionCache) found(current bool) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	outcome := 0.0
	if current {
		outcome = 1
		c.stats.Current++
	} else {
		c.stats.OutOfDate++
	}
	c.current += (outcome - c.current) * keptOutcomeWeight
}

// keepView keeps sv, the view a write that left the session at version answered with,
// which cacheable said may serve the session's next write. sv is kept as it is: the
// write's session and read are its own (a read decodes its own copies, view hands out
// clones) and nothing changes them once it answered; view clones them for each user.
func (c *SessionCache) keepView(sv sessionView, version int64) {
	if c == nil {
		return
	}
	sv.version, sv.token = version, nil
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.views[sv.session.ID]; !ok && len(c.views) >= c.limit {
		for id := range c.views { // an arbitrary one: map iteration order is random
			delete(c.views, id)
			break
		}
	}
	c.views[sv.session.ID] = sv
}

// cacheable reports whether a view may be kept: it must be a view that a read of the
// session would give whatever other sessions do, and whose every part the check of a
// write started from it covers (CheckKeptViewCurrent). So not when
//   - the session is not open (nothing but a read follows);
//   - the session asks for 3-D Secure, by its row or a token: the check covers only
//     the absence of a token that does;
//   - its catalog was read with other parameters than the session's own (its variants,
//     codes, buyer, tax region or consent contacts, the contacts the merchant's
//     marketing channels reach for it), so that a part was loaded on its own.
//
// The stored marketing decisions a view offers, and the redemption counts of its
// usage-limited discounts, change with other sessions' completions, which do not write
// this session's row; the check compares the decisions of the contacts read, and
// whether each limit is reached, with what the view was read with
// (CheckDiscountUsageUnchanged, under the discounts' locks for a completion), so they
// do not keep a view out.
func cacheable(sv sessionView, contacts []string) bool {
	sess := sv.session
	if sess.State != checkout.StateOpen || sess.Authentication != nil || sv.authenticationAsked {
		return false
	}
	want := loadedParts{codes: normalizedCodes(sess), buyerEmail: buyerKey(sess.Buyer), contacts: contacts}
	if addr := sess.FulfillmentAddress; addr != nil {
		want.taxCountry, want.taxRegion = addr.TaxRegion()
	}
	return sv.read.serves(checkout.VariantIDs(sess, checkout.Changes{}), want)
}

// view returns a copy of the view kept for owner's session id, open and unexpired at
// now, with the vault token tokenID ("" for none) when this instance stored it for
// owner; ok is false when there is none of either, or when the cache passes it over
// because its views have mostly been out of date lately. The write that uses the view
// tells the cache what it found (found).
func (c *SessionCache) view(owner, id, tokenID string, now time.Time) (sv sessionView, ok bool) {
	if c == nil {
		return sv, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if sv, ok = c.viewOf(owner, id, now); !ok {
		return sessionView{}, false
	}
	if tokenID != "" {
		t, ok := c.tokens[tokenID]
		if !ok || t.owner != owner {
			return sessionView{}, false
		}
		token := t.token
		sv.token = &token
	}
	if c.current <= keptPaysAbove {
		if c.passed++; c.passed < keptProbeEvery {
			c.stats.Passed++
			return sessionView{}, false
		}
		c.passed = 0
	}
	return sv.copied(), true
}

// copied is a copy of sv that shares nothing a write changes in place: what view hands
// out, and what each run of a completion from a kept view starts from (a run that
// missed its claim's ride runs again: runPipelinedTx).
func (sv sessionView) copied() sessionView {
	sv.session, sv.read = cloneSession(sv.session), sv.read.clone()
	if sv.token != nil {
		token := *sv.token
		sv.token = &token
	}
	return sv
}

// keeps reports whether view would most likely hand out the view kept for owner's
// session id at now, without counting anything: there is one, it is owner's and open,
// and the cache is not passing its views over.
func (c *SessionCache) keeps(owner, id string, now time.Time) bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.viewOf(owner, id, now)
	return ok && c.current > keptPaysAbove
}

// viewOf is the view kept for owner's session id if it is open and unexpired at now,
// as kept (not a copy). c.mu must be held.
func (c *SessionCache) viewOf(owner, id string, now time.Time) (sessionView, bool) {
	sv, ok := c.views[id]
	if !ok || sv.session.Owner != owner || sv.session.Expired(now) {
		return sessionView{}, false
	}
	return sv, true
}

// drop forgets the view kept for session id.
func (c *SessionCache) drop(id string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.views, id)
}

// keepToken keeps t, a vault token owner just stored, unless it asks for 3-D Secure
// (the check of a kept view covers only the absence of such a token).
func (c *SessionCache) keepToken(owner string, t payment.Token) {
	if c == nil || t.AuthenticationDirectoryServer != "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.tokens[t.ID]; !ok && len(c.tokens) >= c.limit {
		for id := range c.tokens {
			delete(c.tokens, id)
			break
		}
	}
	c.tokens[t.ID] = keptTokenOf(owner, t)
}

// dropCompleted forgets session id's view and the token tokenID once a completion
// used them (or failed with them).
func (c *SessionCache) dropCompleted(id, tokenID string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.views, id)
	delete(c.tokens, tokenID)
}

// cloneSession is a copy of s that shares nothing a write changes in place.
func cloneSession(s *checkout.Session) *checkout.Session {
	c := *s
	c.Lines = slices.Clone(s.Lines)
	c.DiscountCodes = slices.Clone(s.DiscountCodes)
	c.AgentInterventions = slices.Clone(s.AgentInterventions)
	c.Metadata = maps.Clone(s.Metadata)
	c.Buyer = clonePtr(s.Buyer)
	c.FulfillmentAddress = clonePtr(s.FulfillmentAddress)
	c.FulfillmentContact = clonePtr(s.FulfillmentContact)
	c.Authentication = clonePtr(s.Authentication)
	c.CancelTrace = clonePtr(s.CancelTrace)
	return &c
}

// keptWrite is what a write leaves the SessionCache: the view it answered with and the
// version of the session row it leaves, read along with its writes (ok: read).
type keptWrite struct {
	sv      sessionView
	version int64
	ok      bool
}

// keepAfterCommit notes in k the view sv a write answers with, and queues the read of
// the session row's version the write leaves (SessionRowVersion), after the writes
// queued so far: in the COMMIT's round trip, as a read along. Nothing is noted or read
// when the store keeps no views or sv may not be kept (sv.session nil: none to keep).
func (s *Store) keepAfterCommit(ctx context.Context, tx *pipelinedTx, k *keptWrite, sv sessionView) error {
	*k = keptWrite{}
	if s.cache == nil || sv.session == nil || !cacheable(sv, s.consentContacts(sv.session)) {
		return nil
	}
	k.sv = sv
	return tx.readAlong(func(q *db.Queries) error {
		version, err := q.SessionRowVersion(ctx, sv.session.ID)
		if err != nil {
			return fmt.Errorf("read session version: %w", err)
		}
		k.version, k.ok = version, true
		return nil
	})
}

// keep keeps the view of session id noted in k by a write that committed, or forgets
// the session's kept view when k holds none.
func (s *Store) keep(id string, k keptWrite) {
	if k.ok {
		s.cache.keepView(k.sv, k.version)
		return
	}
	s.cache.drop(id)
}

// keptFrom is the view to keep of a write that started from sv and answered with view,
// priced from read (nil: nothing to keep).
func keptFrom(sv sessionView, view checkout.View, read *catalogRead) sessionView {
	if read == nil {
		return sessionView{}
	}
	return sessionView{
		session: view.Session, consents: view.ConsentOptions, read: *read,
		lastAttempt: sv.lastAttempt, authenticationAsked: sv.authenticationAsked,
	}
}

// checkKeptView queues CheckKeptViewCurrent for a write that started from a view kept
// at the catalog's generation, priced sess from read, offers the marketing decisions
// read with it, and pays with token, a kept one (nil: none). The counts of its
// usage-limited discounts are checked apart (checkDiscountUsage): a completion checks
// them behind the locks it takes on those it redeems.
func checkKeptView(ctx context.Context, deferred *db.Queries, generation int64, sess *checkout.Session, read *catalogRead, token *payment.Token) error {
	p := db.CheckKeptViewCurrentParams{
		CatalogGeneration: generation, CheckoutSessionID: sess.ID,
		VariantIds: make([]string, len(sess.Lines)), Quantities: make([]int32, len(sess.Lines)), Stocks: make([]int32, len(sess.Lines)),
	}
	for i, l := range sess.Lines {
		p.VariantIds[i], p.Quantities[i], p.Stocks[i] = l.VariantID, int32(l.Quantity), -1
		if j := slices.IndexFunc(read.variants, func(v db.Variant) bool { return v.ID == l.VariantID }); j >= 0 && read.variants[j].StockQuantity != nil {
			p.Stocks[i] = *read.variants[j].StockQuantity
		}
	}
	if token != nil {
		p.TokenID, p.TokenExpiresAt, p.TokenMaxAmount = token.ID, token.Allowance.ExpiresAt, token.Allowance.MaxAmount
	}
	// Never nil: a NULL array would make the comparison NULL, and the check pass.
	consents := read.parts.consents
	p.ConsentContacts = append(make([]string, 0, len(read.parts.contacts)), read.parts.contacts...)
	p.SeenChannels, p.SeenContacts, p.SeenOptedIn = make([]string, len(consents)), make([]string, len(consents)), make([]bool, len(consents))
	for i, c := range consents {
		p.SeenChannels[i], p.SeenContacts[i], p.SeenOptedIn[i] = c.Channel, c.Contact, c.OptedIn
	}
	if err := deferred.CheckKeptViewCurrent(ctx, p); err != nil {
		return fmt.Errorf("check kept view: %w", err)
	}
	return nil
}

// checkDiscountUsage queues CheckDiscountUsageUnchanged for a write that priced session
// sessionID from parts, read before the write (ahead of it, or kept): whether each of
// their usage-limited discounts has reached its limit, and the buyer's, as parts
// counted them. A completion queues it after the locks of those it redeems
// (LockDiscounts). Nothing is queued when no discount among parts has a limit:
// the flow of a merchant without limited discounts sends what it sent.
func checkDiscountUsage(ctx context.Context, deferred *db.Queries, sessionID string, parts loadedParts) error {
	p := db.CheckDiscountUsageUnchangedParams{CheckoutSessionID: sessionID, BuyerEmail: parts.buyerEmail}
	for _, d := range parts.discounts {
		usage, perBuyer := d.Discount.UsageLimit, d.Discount.PerBuyerLimit
		if usage == nil && perBuyer == nil {
			continue
		}
		// As checkout's eligibility compares them, and the statement too.
		p.DiscountIds = append(p.DiscountIds, d.Discount.ID)
		p.UsedUp = append(p.UsedUp, usage != nil && d.Redeemed >= *usage)
		p.BuyerUsedUp = append(p.BuyerUsedUp, perBuyer != nil && parts.buyerEmail != "" && d.BuyerRedeemed >= *perBuyer)
	}
	if len(p.DiscountIds) == 0 {
		return nil
	}
	if err := deferred.CheckDiscountUsageUnchanged(ctx, p); err != nil {
		return fmt.Errorf("check discount usage: %w", err)
	}
	return nil
}

// clone is a copy of r that shares nothing a write changes in place (quoteParts moves
// the discounts' times to the local zone).
func (r catalogRead) clone() catalogRead {
	r.variants = variantsDecoded.clone(r.variants)
	r.options = optionsDecoded.clone(r.options)
	ds := slices.Clone(r.parts.discounts)
	for i := range ds {
		d := &ds[i].Discount
		d.StartsAt, d.EndsAt, d.DisabledAt = clonePtr(d.StartsAt), clonePtr(d.EndsAt), clonePtr(d.DisabledAt)
	}
	r.parts.discounts = ds
	return r
}

// keptToken is the vault token t as a completion reads it from its row (tokenFromRow),
// from what the Vault stored of it.
func keptTokenOf(owner string, t payment.Token) keptToken {
	row := db.VaultToken{
		ID: t.ID, MaxAmount: t.Allowance.MaxAmount, Currency: t.Allowance.Currency,
		CheckoutSessionID: t.Allowance.CheckoutSessionID, MerchantID: t.Allowance.MerchantID,
		// pgx sends a time as whole microseconds, truncated: the row holds no more.
		ExpiresAt: t.Allowance.ExpiresAt.Truncate(time.Microsecond), ManualReview: t.ManualReview,
		AuthenticationDirectoryServer: nonEmpty(t.AuthenticationDirectoryServer),
	}
	return keptToken{owner: owner, token: *tokenFromRow(row)}
}
