package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/agentic-commerce/agentic-commerce-server/db"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/payment"
)

// Store keeps checkout sessions in PostgreSQL. Every write happens in one transaction
// that holds the session row lock (SELECT ... FOR UPDATE), so concurrent updates of one
// session serialise and never interleave.
type Store struct {
	pool    *pgxpool.Pool
	ttl     time.Duration
	now     func() time.Time
	gateway payment.Gateway
	// orderURL is the prefix of order permalinks (PUBLIC_BASE_URL + "/orders/").
	orderURL string
	events   bool
	// handlers are the payment handlers every open session offers.
	handlers []checkout.PaymentHandler
	// acquirer is the merchant's acquirer, shown to agents that must run 3-D Secure.
	acquirer checkout.Acquirer
	// consents are the marketing channels every session offers.
	consents []checkout.ConsentOption
	// attemptTimeout is how long a payment attempt's PSP call may run before the
	// attempt is stale and may be taken over.
	attemptTimeout time.Duration
	// cache keeps the views of this instance's writes (nil: none).
	cache *SessionCache
	// perBuyer says whether the views read lately show a discount with a per-buyer
	// limit (brought).
	perBuyer perBuyerHint
}

// StoreConfig configures a Store.
type StoreConfig struct {
	// TTL is how long a session lives after its last change.
	TTL time.Duration
	// Gateway charges PSP tokens (anything but our vault tokens).
	Gateway payment.Gateway
	// PublicBaseURL prefixes order permalinks.
	PublicBaseURL string
	// OrderEvents writes an order_create event to the outbox with every order.
	OrderEvents bool
	// MerchantID is the merchant's id at the payment service provider, shown in the
	// configuration of every payment handler (the merchant_id agents copy into a
	// delegated allowance).
	MerchantID string
	// ConsentOptions are the marketing channels every session offers (none: no
	// marketing consent is asked for).
	ConsentOptions []checkout.ConsentOption
	// PaymentAttemptTimeout is how long a PSP call may run before its payment attempt
	// is stale: another completion or the recovery job may then ask the PSP again with
	// the same idempotency key (0: DefaultPaymentAttemptTimeout).
	PaymentAttemptTimeout time.Duration
	// SessionCache keeps the views of the store's writes for the next write of the same
	// session (nil: none). The Vault of the same instance shares it, for its tokens.
	SessionCache *SessionCache
}

// NewStore returns a Store on pool.
func NewStore(pool *pgxpool.Pool, cfg StoreConfig) *Store {
	return &Store{
		pool: pool, ttl: cfg.TTL, now: storedNow, gateway: cfg.Gateway, events: cfg.OrderEvents,
		orderURL: strings.TrimRight(cfg.PublicBaseURL, "/") + "/orders/",
		handlers: checkout.PaymentHandlers(cfg.MerchantID, gatewayName(cfg.Gateway)),
		acquirer: checkout.MockAcquirer(cfg.MerchantID),
		consents: cfg.ConsentOptions, attemptTimeout: cmp.Or(cfg.PaymentAttemptTimeout, DefaultPaymentAttemptTimeout),
		cache: cfg.SessionCache,
	}
}

// gatewayName is the name of the gateway g, that of the mock when there is none (stores
// that never charge a PSP token).
func gatewayName(g payment.Gateway) string {
	if g == nil {
		return payment.MockGateway{}.Name()
	}
	return g.Name()
}

// authentication is the 3-D Secure requirement of a card of directory server ds, through
// the merchant's acquirer. The merchant prefers a challenge: the issuer may still waive
// it.
func (s *Store) authentication(ds string) *checkout.Authentication {
	return &checkout.Authentication{DirectoryServer: ds, Acquirer: s.acquirer, PreferChallenge: true}
}

// loadAuthentication sets the 3-D Secure an open session's payment needs at now: that
// of its latest unused, unexpired vault token when it has one (a later card replaces an
// earlier one), otherwise the one a PSP asked for at an earlier completion (stored).
func (s *Store) loadAuthentication(ctx context.Context, q *db.Queries, sess *checkout.Session, stored *string, now time.Time) error {
	sess.Authentication = nil
	if sess.State != checkout.StateOpen {
		return nil
	}
	ds, err := q.LatestSessionTokenAuthentication(ctx, db.LatestSessionTokenAuthenticationParams{
		CheckoutSessionID: sess.ID, Owner: sess.Owner, Now: now,
	})
	switch {
	case isNoRows(err):
		ds = stored
	case err != nil:
		return fmt.Errorf("load session authentication: %w", err)
	}
	if ds != nil {
		sess.Authentication = s.authentication(*ds)
	}
	return nil
}

// view is what a response shows of sess: its quote from cat, the order a completion
// made (nil otherwise), the marketing channels offered with the stored decisions of its
// contact, and, while it can still be paid, the payment handlers it offers.
func (s *Store) view(ctx context.Context, q *db.Queries, sess *checkout.Session, cat checkout.Catalog, now time.Time, order *checkout.Order) (checkout.View, error) {
	consents, err := s.offeredConsents(ctx, q, sess)
	return s.viewWith(sess, cat, now, order, consents), err
}

// viewWith is view with the marketing channels offered already loaded.
func (s *Store) viewWith(sess *checkout.Session, cat checkout.Catalog, now time.Time, order *checkout.Order, consents []checkout.OfferedConsent) checkout.View {
	v := checkout.View{Session: sess, Quote: checkout.Price(sess, cat, now), Order: order, ConsentOptions: consents}
	if sess.State == checkout.StateOpen {
		v.Handlers = s.handlers
	}
	return v
}

// CreateSession validates ch, quotes it against the catalog and stores a new session
// owned by owner (the caller's identity; "" on an open server).
func (s *Store) CreateSession(ctx context.Context, owner string, ch checkout.Changes) (checkout.View, error) {
	if err := ch.Validate(true); err != nil {
		return checkout.View{}, err
	}
	// The catalog is the first round trip's read: the request's idempotency claim rides
	// in it, outside the transaction, which the writes begin in the second.
	var kept keptWrite
	view, err := withRiddenRecordedTx(ctx, s.pool, s.now, func(tx *pipelinedTx, now time.Time) (checkout.View, error) {
		q, deferred := db.New(tx), tx.deferred()
		sess := &checkout.Session{ID: checkout.NewID("cs_"), Owner: owner, State: checkout.StateOpen}
		cat, consents, read, err := s.applyChangesAhead(ctx, q, sess, ch, now, nil)
		if err != nil {
			return checkout.View{}, err
		}
		row, err := sessionParams(sess)
		if err != nil {
			return checkout.View{}, err
		}
		interventions := sess.AgentInterventions
		if interventions == nil {
			interventions = []string{}
		}
		if err := deferred.InsertSession(ctx, db.InsertSessionParams{
			ID: row.ID, Owner: owner, Currency: row.Currency, Buyer: row.Buyer, FulfillmentAddress: row.FulfillmentAddress,
			FulfillmentContact: row.FulfillmentContact, FulfillmentOptionID: row.FulfillmentOptionID,
			Locale: row.Locale, Timezone: row.Timezone, Metadata: row.Metadata, AgentInterventions: interventions,
			OrderNotes: row.OrderNotes, Now: now, ExpiresAt: row.ExpiresAt,
		}); err != nil {
			return checkout.View{}, fmt.Errorf("insert session: %w", err)
		}
		if err := insertLineRows(ctx, deferred, sess); err != nil {
			return checkout.View{}, err
		}
		if err := saveSessionCodes(ctx, deferred, sess); err != nil {
			return checkout.View{}, err
		}
		if err := insertAttribution(ctx, deferred, sess.ID, checkout.FirstTouch, ch.Attribution, "", now); err != nil {
			return checkout.View{}, err
		}
		sv := sessionView{session: sess, catalog: cat, consents: consents, read: *read}
		return s.viewWith(sess, cat, now, nil, consents), s.keepAfterCommit(ctx, tx, &kept, sv)
	})
	if err == nil {
		s.keep(view.Session.ID, kept)
	}
	return view, err
}

// write runs fn in one transaction and, when the request holds an Idempotency-Key,
// records the session fn returns as the key's response in that same transaction.
func (s *Store) write(ctx context.Context, fn func(q *db.Queries, now time.Time) (checkout.View, error)) (checkout.View, error) {
	return withRecordedTxV(ctx, s.pool, s.now, fn)
}

// GetSession returns owner's session id with a quote from the current catalog.
//
// It is one statement (GetSessionView), so one round trip, unless the session has just
// expired: the expiry is written before the session is read again.
func (s *Store) GetSession(ctx context.Context, owner, id string) (checkout.View, error) {
	q := db.New(s.pool)
	now := s.now()
	sv, err := s.loadSessionView(ctx, q, owner, id, now)
	if err != nil {
		return checkout.View{}, err
	}
	if sv.session.Expired(now) {
		// Lazy expiry: the sweeper may not have passed yet; the reader must not see an
		// open session that can no longer be paid.
		if err := s.expire(ctx, owner, id); err != nil {
			return checkout.View{}, err
		}
		now = s.now()
		if sv, err = s.loadSessionView(ctx, q, owner, id, now); err != nil {
			return checkout.View{}, err
		}
	}
	return s.viewWith(sv.session, sv.catalog, now, nil, sv.consents), nil
}

// UpdateSession validates ch and applies it to the locked session, in two round trips
// (writeReadAhead).
func (s *Store) UpdateSession(ctx context.Context, owner, id string, ch checkout.Changes) (checkout.View, error) {
	if err := ch.Validate(false); err != nil {
		return checkout.View{}, err
	}
	startsFromKept := func(sv sessionView) bool { return s.readServes(sv.session, ch, &sv.read) }
	return s.writeReadAhead(ctx, owner, id, startsFromKept, s.broughtBy(ch), func(q, deferred *db.Queries, sv sessionView, expired bool, now time.Time) (checkout.View, *catalogRead, error) {
		return s.applyUpdate(ctx, q, deferred, sv, expired, ch, now)
	})
}

// writeReadAhead runs apply on owner's session id as an update or a cancel writes it.
// It reads the session's view first, with the request's idempotency claim and outside
// the transaction, and locks the session in the transaction of apply's writes only if
// nothing changed it in between (LockUnchangedSession): two round trips. When something
// did, apply runs again with the session read under its lock (lockSessionAhead). apply
// gets the Queries of statements run now (q) and deferred to the writes (deferred), the
// view read, and expired: the session was found past its expiry, and its cancellation
// as expired is deferred. It returns the view it answers with and the catalog read that
// priced it, which the SessionCache keeps (nil: keep nothing).
//
// With a SessionCache, the view this instance kept from the session's last write
// stands for the read when startsFromKept (nil: never) says apply needs nothing more
// of the catalog: one round trip, whose writes are checked to start from the session,
// the catalog and the stock as they are (LockUnchangedSession, CheckKeptViewCurrent).
// A write that fails that check runs again as when the session changed; one that apply
// refuses from the kept view runs again from a view read, which gives the refusal (or
// not) as the database has it.
//
// What the change brings (b: the stored marketing decisions of its contacts, the
// redemptions of its buyer) is read along with the view, so that the change needs no
// read of its own for them; from a kept view that lacks only them, they are read alone
// in the first round trip, and the writes are the second.
func (s *Store) writeReadAhead(ctx context.Context, owner, id string, startsFromKept func(sessionView) bool, b brought,
	apply func(q, deferred *db.Queries, sv sessionView, expired bool, now time.Time) (checkout.View, *catalogRead, error),
) (checkout.View, error) {
	var kept keptWrite
	run := func(fromKept bool) (view checkout.View, usedKept, refusedKept bool, err error) {
		view, err = withRiddenRecordedTx(ctx, s.pool, s.now, func(tx *pipelinedTx, now time.Time) (checkout.View, error) {
			q, deferred := db.New(tx), tx.deferred()
			refusedKept, kept = false, keptWrite{}
			var sv sessionView
			ok := false
			if fromKept && startsFromKept != nil {
				sv, ok = s.cache.view(owner, id, "", now)
				if ok && !startsFromKept(sv) {
					// The kept view may lack only what the change brings: it is read
					// alone, a round trip the claim rides, rather than the whole view
					// with it.
					var err error
					if ok, err = s.readBroughtAlone(ctx, tx, &sv, b, startsFromKept); err != nil {
						return checkout.View{}, err
					}
				}
			}
			if usedKept = ok; !ok {
				var err error
				if sv, err = s.loadSessionViewWith(ctx, tx, owner, id, b, now); err != nil {
					return checkout.View{}, err
				}
			}
			if err := deferred.LockUnchangedSession(ctx, db.LockUnchangedSessionParams{ID: id, Owner: owner, RowVersion: sv.version}); err != nil {
				return checkout.View{}, fmt.Errorf("lock session: %w", err)
			}
			expired, err := expireAhead(ctx, deferred, sv.session, now)
			if err != nil {
				return checkout.View{}, err
			}
			generation := sv.read.generation
			view, read, err := apply(q, deferred, sv, expired, now)
			if err != nil {
				refusedKept = ok
				return view, err
			}
			if ok {
				if err := checkKeptView(ctx, deferred, generation, view.Session, read, nil); err != nil {
					return view, err
				}
				if err := checkDiscountUsage(ctx, deferred, view.Session.ID, read.parts); err != nil {
					return view, err
				}
			}
			return view, s.keepAfterCommit(ctx, tx, &kept, keptFrom(sv, view, read))
		})
		return view, usedKept, refusedKept, err
	}
	view, usedKept, refusedKept, err := run(true)
	if refusedKept {
		view, _, _, err = run(false)
	} else if usedKept {
		s.cache.found(!isSessionMoved(err))
	}
	if isSessionMoved(err) {
		view, err = withPipelinedRecordedTx(ctx, s.pool, s.now, func(tx *pipelinedTx, now time.Time) (checkout.View, error) {
			q, deferred := db.New(tx), tx.deferred()
			sv, expired, err := s.lockSessionAhead(ctx, tx, owner, id, b, now)
			if err != nil {
				return checkout.View{}, err
			}
			view, read, err := apply(q, deferred, sv, expired, now)
			if err != nil {
				return view, err
			}
			return view, s.keepAfterCommit(ctx, tx, &kept, keptFrom(sv, view, read))
		})
	}
	if err != nil {
		s.cache.drop(id)
		return view, err
	}
	s.keep(id, kept)
	return view, nil
}

// sessionMovedCode is the SQLSTATE of raise_session_moved (migration 00016).
const sessionMovedCode = "AC414"

// isSessionMoved reports whether err is LockUnchangedSession's: the session changed
// after it was read.
func isSessionMoved(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == sessionMovedCode
}

// applyUpdate applies ch to the session of sv, read under its lock or locked unchanged
// by a statement deferred before these writes (expired: found past its expiry, its
// cancellation deferred), and defers the writes.
func (s *Store) applyUpdate(ctx context.Context, q, deferred *db.Queries, sv sessionView, expired bool, ch checkout.Changes, now time.Time) (checkout.View, *catalogRead, error) {
	sess := sv.session
	cat, consents, read, err := s.applyChangesAhead(ctx, q, sess, ch, now, &sv.read)
	if err != nil {
		return checkout.View{}, nil, refuseAfterExpiry(err, expired)
	}
	if err := updateSession(ctx, deferred, sess, now); err != nil {
		return checkout.View{}, nil, err
	}
	if ch.Items != nil {
		if err := deferred.DeleteLineItems(ctx, sess.ID); err != nil {
			return checkout.View{}, nil, fmt.Errorf("delete line items: %w", err)
		}
		if err := insertLineRows(ctx, deferred, sess); err != nil {
			return checkout.View{}, nil, err
		}
	}
	return s.viewWith(sess, cat, now, nil, consents), read, nil
}

// lockSessionAhead is lockSession in a pipelinedTx: the lock (LockSession) goes out
// with the statement that reads the session (GetSessionView), and what the change
// brings (b) with them; the lazy expiry is deferred. It returns the session's view,
// whose catalog the change may reuse.
func (s *Store) lockSessionAhead(ctx context.Context, tx *pipelinedTx, owner, id string, b brought, now time.Time) (sv sessionView, expired bool, err error) {
	deferred := tx.deferred()
	if err := deferred.LockSession(ctx, db.LockSessionParams{ID: id, Owner: owner}); err != nil {
		return sv, false, fmt.Errorf("lock session: %w", err)
	}
	if sv, err = s.loadSessionViewWith(ctx, tx, owner, id, b, now); err != nil {
		return sv, false, err
	}
	expired, err = expireAhead(ctx, deferred, sv.session, now)
	return sv, expired, err
}

// expireAhead is lockSession's lazy expiry in a pipelinedTx: a session sess found past
// its expiry at now is canceled as expired, its write deferred, and expired says so.
func expireAhead(ctx context.Context, deferred *db.Queries, sess *checkout.Session, now time.Time) (expired bool, err error) {
	if !sess.Expired(now) {
		return false, nil
	}
	if err := sess.Cancel(checkout.CanceledExpired, nil, now); err != nil {
		return false, err
	}
	return true, updateSession(ctx, deferred, sess, now)
}

// CancelSession cancels an open session, recording trace (nil: none) with it; a
// completed or canceled one is refused with checkout.KindNotAllowed. It takes an
// update's two round trips (writeReadAhead), from a view read: a cancellation is rare,
// and leaves nothing to keep.
func (s *Store) CancelSession(ctx context.Context, owner, id string, trace *checkout.IntentTrace) (checkout.View, error) {
	return s.writeReadAhead(ctx, owner, id, nil, brought{}, func(_, deferred *db.Queries, sv sessionView, expired bool, now time.Time) (checkout.View, *catalogRead, error) {
		view, err := s.applyCancel(ctx, deferred, sv, expired, trace, now)
		return view, nil, err
	})
}

// applyCancel cancels the session of sv, read under its lock or locked unchanged by a
// statement deferred before these writes (expired: found past its expiry, its
// cancellation as expired deferred, so the agent's is refused), and defers the write.
// The view is the one read with the session: a cancellation changes nothing it is
// priced from.
func (s *Store) applyCancel(ctx context.Context, deferred *db.Queries, sv sessionView, expired bool, trace *checkout.IntentTrace, now time.Time) (checkout.View, error) {
	sess := sv.session
	if err := sess.Cancel(checkout.CanceledByAgent, trace, now); err != nil {
		return checkout.View{}, refuseAfterExpiry(err, expired)
	}
	if err := updateSession(ctx, deferred, sess, now); err != nil {
		return checkout.View{}, err
	}
	return s.viewWith(sess, sv.catalog, now, nil, sv.consents), nil
}

// lockSession locks owner's session id for a write. A session found past its expiry is
// canceled as expired right there (lazy expiry), and expired says so: the change about
// to be refused must still commit that.
func (s *Store) lockSession(ctx context.Context, q *db.Queries, owner, id string, now time.Time) (sess *checkout.Session, expired bool, err error) {
	if sess, err = s.loadSession(ctx, q, owner, id, true, now); err != nil {
		return nil, false, err
	}
	if !sess.Expired(now) {
		return sess, false, nil
	}
	if err := sess.Cancel(checkout.CanceledExpired, nil, now); err != nil {
		return nil, false, err
	}
	return sess, true, updateSession(ctx, q, sess, now)
}

// refuseAfterExpiry commits the lazy expiry before refusing.
func refuseAfterExpiry(err error, expired bool) error {
	if expired {
		return &commitThen{err: err}
	}
	return err
}

// expire cancels the session if it is open past its expiry, in its own statement.
func (s *Store) expire(ctx context.Context, owner, id string) error {
	if _, err := db.New(s.pool).ExpireSession(ctx, db.ExpireSessionParams{ID: id, Owner: owner, Now: s.now()}); err != nil {
		return fmt.Errorf("expire session: %w", err)
	}
	return nil
}

// updateSession writes the session row back.
func updateSession(ctx context.Context, q *db.Queries, sess *checkout.Session, now time.Time) error {
	row, err := sessionParams(sess)
	if err != nil {
		return err
	}
	row.Now = now
	if err := q.UpdateSession(ctx, row); err != nil {
		return fmt.Errorf("update session: %w", err)
	}
	return saveSessionCodes(ctx, q, sess)
}

// loadSession reads owner's session id with its lines and, at now, the 3-D Secure its
// payment needs; forUpdate locks the row until the transaction ends.
func (s *Store) loadSession(ctx context.Context, q *db.Queries, owner, id string, forUpdate bool, now time.Time) (*checkout.Session, error) {
	var row db.CheckoutSession
	var err error
	if forUpdate {
		row, err = q.GetSessionForUpdate(ctx, db.GetSessionForUpdateParams{ID: id, Owner: owner})
	} else {
		row, err = q.GetSession(ctx, db.GetSessionParams{ID: id, Owner: owner})
	}
	if isNoRows(err) {
		return nil, checkout.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("load session: %w", err)
	}
	sess, err := sessionFromRow(row)
	if err != nil {
		return nil, err
	}
	lines, err := q.ListLineItems(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("load line items: %w", err)
	}
	sess.Lines = linesFromRows(lines)
	if err := loadSessionCodes(ctx, q, sess); err != nil {
		return nil, err
	}
	return sess, s.loadAuthentication(ctx, q, sess, row.AuthenticationDirectoryServer, now)
}

// sessionFromRow is the session of row, without its lines, discount codes and 3-D Secure.
func sessionFromRow(row db.CheckoutSession) (*checkout.Session, error) {
	sess := &checkout.Session{
		ID: row.ID, Owner: row.Owner, State: checkout.State(row.State), Currency: row.Currency,
		AgentInterventions: row.AgentInterventions,
		CreatedAt:          row.CreatedAt, UpdatedAt: row.UpdatedAt, ExpiresAt: row.ExpiresAt,
	}
	if row.Locale != nil {
		sess.Locale = *row.Locale
	}
	if row.Timezone != nil {
		sess.Timezone = *row.Timezone
	}
	if row.FulfillmentOptionID != nil {
		sess.FulfillmentOptionID = *row.FulfillmentOptionID
	}
	if row.PaymentError != nil {
		sess.PaymentError = *row.PaymentError
	}
	if row.CancelReason != nil {
		sess.CancelReason = checkout.CancelReason(*row.CancelReason)
	}
	sess.OrderNotes = deref(row.OrderNotes)
	if err := decodeColumns(row.ID,
		jsonColumn(row.Buyer, &sess.Buyer, "buyer"),
		jsonColumn(row.FulfillmentAddress, &sess.FulfillmentAddress, "address"),
		jsonColumn(row.FulfillmentContact, &sess.FulfillmentContact, "fulfillment contact"),
		jsonColumn(row.Metadata, &sess.Metadata, "metadata"),
		jsonColumn(row.CancelIntentTrace, &sess.CancelTrace, "intent trace"),
	); err != nil {
		return nil, err
	}
	return sess, nil
}

// linesFromRows are the session lines of rows, in their order.
func linesFromRows(rows []db.LineItem) []checkout.Line {
	lines := make([]checkout.Line, len(rows))
	for i, l := range rows {
		lines[i] = checkout.Line{ID: l.ID, VariantID: l.VariantID, Quantity: int(l.Quantity), UnitAmount: l.UnitAmount}
	}
	return lines
}

// loadCatalog reads the variants named by ids, the active fulfillment options, the tax
// rate of sess's address and its discounts.
func loadCatalog(ctx context.Context, q *db.Queries, sess *checkout.Session, ids []string) (checkout.Catalog, error) {
	var rows catalogRows
	for _, read := range rows.reads(ctx, ids) {
		if err := read(q); err != nil {
			return checkout.Catalog{}, err
		}
	}
	cat := rows.catalog()
	var err error
	if cat.Discounts, err = sessionDiscounts(ctx, q, sess); err != nil {
		return cat, err
	}
	cat.TaxRateBps, err = taxRate(ctx, q, sess.FulfillmentAddress)
	return cat, err
}

// catalogRows are the rows a catalog is read from: variants and the active
// fulfillment options (a cart's whole catalog; a session's adds its discounts and tax).
type catalogRows struct {
	// named are the variants read by id, ofCart those of a cart's items (readCart).
	named, ofCart []db.Variant
	options       []db.FulfillmentOption
}

// reads are the statements that read the variants named by ids (none when ids is
// empty) and the active fulfillment options into c, for readAll.
func (c *catalogRows) reads(ctx context.Context, ids []string) []func(q *db.Queries) error {
	var reads []func(q *db.Queries) error
	if len(ids) > 0 {
		reads = append(reads, func(q *db.Queries) (err error) {
			c.named, err = q.ListVariantsByID(ctx, ids)
			return wrapErr(err, "load variants")
		})
	}
	return append(reads, func(q *db.Queries) (err error) {
		c.options, err = q.ListActiveFulfillmentOptions(ctx)
		return wrapErr(err, "load fulfillment options")
	})
}

// catalog is the catalog of c's rows.
func (c *catalogRows) catalog() checkout.Catalog {
	cat := checkout.Catalog{Variants: make(map[string]checkout.Variant, len(c.named)+len(c.ofCart)), Options: optionsFromRows(c.options)}
	for _, r := range slices.Concat(c.ofCart, c.named) {
		cat.Variants[r.ID] = variantFromRow(r)
	}
	return cat
}

// optionsFromRows are the fulfillment options of rows, in their order.
func optionsFromRows(rows []db.FulfillmentOption) []checkout.FulfillmentOption {
	opts := make([]checkout.FulfillmentOption, len(rows))
	for i, o := range rows {
		opts[i] = checkout.FulfillmentOption{
			ID: o.ID, Type: checkout.FulfillmentType(o.Type), Title: o.Title, Subtitle: o.Subtitle,
			Carrier: o.Carrier, Amount: o.Amount, Currency: o.Currency, Taxable: o.Taxable,
			MinDeliveryDays: intPtr(o.MinDeliveryDays), MaxDeliveryDays: intPtr(o.MaxDeliveryDays),
		}
	}
	return opts
}

func taxRate(ctx context.Context, q *db.Queries, addr *checkout.Address) (int, error) {
	if addr == nil {
		return 0, nil
	}
	country, region := addr.TaxRegion()
	bps, err := q.GetTaxRate(ctx, db.GetTaxRateParams{Country: country, Region: region})
	if isNoRows(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("load tax rate: %w", err)
	}
	return int(bps), nil
}

func variantFromRow(r db.Variant) checkout.Variant {
	return checkout.Variant{
		ID: r.ID, Title: r.Title, PriceAmount: r.PriceAmount, Currency: r.Currency,
		Available: r.Available, AvailabilityStatus: r.AvailabilityStatus,
		Fulfillment: checkout.FulfillmentType(r.FulfillmentType), Stock: intPtr(r.StockQuantity),
	}
}

func sessionParams(sess *checkout.Session) (db.UpdateSessionParams, error) {
	p := db.UpdateSessionParams{
		ID: sess.ID, Currency: sess.Currency, State: string(sess.State), ExpiresAt: sess.ExpiresAt,
	}
	if sess.FulfillmentOptionID != "" {
		p.FulfillmentOptionID = &sess.FulfillmentOptionID
	}
	if sess.PaymentError != "" {
		p.PaymentError = &sess.PaymentError
	}
	if sess.CancelReason != "" {
		reason := string(sess.CancelReason)
		p.CancelReason = &reason
	}
	if sess.Locale != "" {
		p.Locale = &sess.Locale
	}
	if sess.Timezone != "" {
		p.Timezone = &sess.Timezone
	}
	p.OrderNotes = nonEmpty(sess.OrderNotes)
	var err error
	for _, c := range []struct {
		into  *[]byte
		value any
		null  bool
		what  string
	}{
		{&p.Buyer, sess.Buyer, sess.Buyer == nil, "buyer"},
		{&p.FulfillmentAddress, sess.FulfillmentAddress, sess.FulfillmentAddress == nil, "address"},
		{&p.FulfillmentContact, sess.FulfillmentContact, sess.FulfillmentContact == nil, "fulfillment contact"},
		{&p.Metadata, sess.Metadata, sess.Metadata == nil, "metadata"},
		{&p.CancelIntentTrace, sess.CancelTrace, sess.CancelTrace == nil, "intent trace"},
	} {
		if c.null {
			continue
		}
		if *c.into, err = json.Marshal(c.value); err != nil {
			return p, fmt.Errorf("encode %s: %w", c.what, err)
		}
	}
	return p, nil
}

// column is a nullable jsonb column of a session row and what to decode it into.
type column struct {
	raw    []byte
	decode func([]byte) error
	what   string
}

// jsonColumn decodes raw into *into (a pointer or map field is allocated by the
// decoder), leaving it nil for SQL NULL.
func jsonColumn[T any](raw []byte, into *T, what string) column {
	return column{raw: raw, what: what, decode: func(b []byte) error { return json.Unmarshal(b, into) }}
}

// decodeColumns decodes the non-NULL columns of session id.
func decodeColumns(id string, cols ...column) error {
	for _, c := range cols {
		if c.raw == nil {
			continue
		}
		if err := c.decode(c.raw); err != nil {
			return fmt.Errorf("decode %s of %s: %w", c.what, id, err)
		}
	}
	return nil
}

// insertLineRows writes the line items of sess in one statement, which can be deferred
// in a pipeline.
func insertLineRows(ctx context.Context, q *db.Queries, sess *checkout.Session) error {
	p := db.InsertLineItemRowsParams{
		CheckoutSessionID: sess.ID,
		Ids:               make([]string, len(sess.Lines)), Positions: make([]int32, len(sess.Lines)),
		VariantIds: make([]string, len(sess.Lines)), Quantities: make([]int32, len(sess.Lines)),
		UnitAmounts: make([]int64, len(sess.Lines)),
	}
	for i, l := range sess.Lines {
		p.Ids[i], p.Positions[i], p.VariantIds[i] = l.ID, int32(i), l.VariantID
		p.Quantities[i], p.UnitAmounts[i] = int32(l.Quantity), l.UnitAmount
	}
	if err := q.InsertLineItemRows(ctx, p); err != nil {
		return fmt.Errorf("insert line items: %w", err)
	}
	return nil
}

func intPtr(v *int32) *int {
	if v == nil {
		return nil
	}
	n := int(*v)
	return &n
}
