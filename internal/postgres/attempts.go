package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/agentic-commerce/agentic-commerce-server/db"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/idempotency"
	"github.com/agentic-commerce/agentic-commerce-server/internal/payment"
)

// The statuses of a payment attempt (payment_attempts.status).
const (
	AttemptPending   = "pending"
	AttemptSucceeded = "succeeded"
	AttemptFailed    = "failed"
	AttemptReleased  = "released"
	AttemptInDoubt   = "in_doubt"
)

// DefaultPaymentAttemptTimeout is how long a PSP call may run before its attempt is
// stale and may be taken over (PAYMENT_ATTEMPT_TIMEOUT).
const DefaultPaymentAttemptTimeout = time.Minute

// DefaultInDoubtAfter is how long a pending attempt is asked again before it is left to
// the operator (PAYMENT_IN_DOUBT_AFTER): Stripe keeps an idempotency key for 24 hours,
// after which asking again could charge a second time.
const DefaultInDoubtAfter = 24 * time.Hour

// settleTimeout bounds the transaction that writes a charged attempt's order or gives
// its reservation back. It runs even when the request's context is canceled: the PSP
// has answered, and what it said must be recorded.
const settleTimeout = 10 * time.Second

// errAttemptTaken refuses a completion while another one's charge is in flight.
var errAttemptTaken = checkout.Errorf(checkout.KindConflict, checkout.CodeCompleteInProgress, checkout.Field{},
	"Another completion of this checkout session is waiting for the payment service provider; retry shortly to get its result.")

// errAttemptInDoubt refuses a completion whose earlier charge the PSP never confirmed
// nor refused within the time it keeps idempotency keys: the merchant decides.
var errAttemptInDoubt = checkout.Errorf(checkout.KindConflict, checkout.CodeCompleteInProgress, checkout.Field{},
	"The outcome of this checkout session's payment is unknown and is being checked by the merchant; nothing more will be charged.")

// completionPlan is what the order-writing transaction of a payment attempt writes (the
// attempt's plan column): the order as priced when its stock was taken, so that the
// order matches the charge whatever the catalog became meanwhile, and what the
// completion brought. Its JSON is a storage format: change it only by adding fields.
type completionPlan struct {
	// Order is the order to write, as an order event snapshot.
	Order                 json.RawMessage     `json:"order"`
	BillingAddress        json.RawMessage     `json:"billing_address,omitempty"`
	AuthenticationOutcome *string             `json:"authentication_outcome,omitempty"`
	AuthenticationECI     *string             `json:"authentication_eci,omitempty"`
	AuthenticationVersion *string             `json:"authentication_version,omitempty"`
	AuthenticationTxID    *string             `json:"authentication_transaction_id,omitempty"`
	Redemptions           []plannedRedemption `json:"redemptions"`
	Buyer                 *checkout.Buyer     `json:"buyer"`
	OrderNotes            string              `json:"order_notes"`
	// Consents is null when the agent reported none (stored decisions stay), [] when it
	// reported an empty list.
	Consents    []plannedConsent      `json:"consents"`
	Attribution *checkout.Attribution `json:"attribution"`
	// CarriesAuthentication is whether the completion's API version can carry 3-D
	// Secure: a PSP's request for it is refused accordingly.
	CarriesAuthentication bool `json:"carries_authentication"`
}

// plannedConsent is a marketing decision of the completion.
type plannedConsent struct {
	Channel string `json:"channel"`
	OptedIn bool   `json:"opted_in"`
}

// attemptAuthentication is the 3-D Secure result a pending attempt's charge carries.
type attemptAuthentication struct {
	Outcome       string `json:"outcome"`
	Cryptogram    string `json:"cryptogram,omitempty"`
	ECI           string `json:"eci,omitempty"`
	TransactionID string `json:"transaction_id,omitempty"`
	Version       string `json:"version,omitempty"`
}

// attemptKey is the PSP idempotency key of a session's attempt number n: the session id
// for the first, so that a session is charged at most once whatever happens to this
// server; <session id>:<n> after a refusal, since a PSP answers a repeated key with the
// first (refused) outcome even for another card.
func attemptKey(sessionID string, n int32) string {
	if n == 1 {
		return sessionID
	}
	return fmt.Sprintf("%s:%d", sessionID, n)
}

// requestKey is the request's Idempotency-Key ("" without one).
func requestKey(ctx context.Context) string {
	if claim := idempotency.FromContext(ctx); claim != nil {
		return claim.Key.Key
	}
	return ""
}

// attemptStart is what the first phase decided: an attempt to charge, or a session
// this request already completed (done), or a refusal to commit with.
type attemptStart struct {
	attempt db.PaymentAttempt
	done    *checkout.View
	refusal error
}

// completeInPhases pays for session id with a PSP token in three steps, so that no row
// lock and no pooled connection is held while the PSP answers:
//
//  1. beginAttempt, one short transaction: the checks, the reserved redemptions, a
//     pending payment attempt, the session complete_in_progress, the stock (last);
//  2. the charge, with the attempt's idempotency key, holding nothing;
//  3. settleAttempt: the order (finishAttempt) or the reservation given back
//     (releaseAttempt), one short transaction; or, when the PSP's answer is in doubt,
//     nothing: the attempt stays pending for a retry or the recovery job.
func (s *Store) completeInPhases(ctx context.Context, owner, id string, c checkout.Completion) (checkout.View, error) {
	start, err := s.beginAttempt(ctx, owner, id, c)
	if err != nil {
		return checkout.View{}, s.recordRefusal(ctx, owner, id, err, "")
	}
	switch {
	case start.refusal != nil:
		return checkout.View{}, start.refusal
	case start.done != nil:
		return *start.done, nil
	}
	receipt, err := s.charge(ctx, start.attempt)
	return s.settleAttempt(ctx, start.attempt, receipt, err)
}

// beginAttempt is the first phase. A session already complete_in_progress is resumed
// when its attempt is this request's (a retry with the same Idempotency-Key) or stale;
// a session this request's attempt completed answers with its order.
//
// It is a pipelinedTx of two round trips, as completeWithVaultToken: BEGIN, the locks
// and the session's view (with the number of its latest attempt); then the attempt, its
// reserved redemptions, the session complete_in_progress (MoveSessionState), the stock
// (TakeStock, last) and COMMIT. A session being resumed reads its attempt on its own.
func (s *Store) beginAttempt(ctx context.Context, owner, id string, c checkout.Completion) (attemptStart, error) {
	key := requestKey(ctx)
	var lines []checkout.Line
	claim := idempotency.FromContext(ctx)
	start, err := withClaimingTx(ctx, s.pool, s.now, claim, func(tx *pipelinedTx, now time.Time) (attemptStart, error) {
		q, deferred := db.New(tx), tx.deferred()
		sv, err := s.lockForCompletion(ctx, q, deferred, owner, id, nil, now)
		if err != nil {
			return attemptStart{}, err
		}
		sess := sv.session
		expired, err := expireAhead(ctx, deferred, sess, now)
		if err != nil {
			return attemptStart{}, err
		}
		if sess.State == checkout.StateCompleteInProgress || sess.State == checkout.StateCompleted {
			if start, ok, err := s.resumeAttempt(ctx, q, sess, key, now); ok || err != nil {
				return start, err
			}
		}
		if expired {
			// The session expired on the way (lazy expiry): that commits, the
			// completion is refused.
			return attemptStart{refusal: sess.CheckCompletable(checkout.Quote{})}, nil
		}
		d, _, err := s.draftFromView(ctx, q, sv, c, now)
		if err != nil {
			return attemptStart{}, err
		}
		a, err := s.insertAttempt(ctx, deferred, d, c, key, sv.lastAttempt, now)
		if err != nil {
			return attemptStart{}, err
		}
		if err := deferred.MoveSessionState(ctx, db.MoveSessionStateParams{
			ID: id, State: string(checkout.StateCompleteInProgress), FromState: string(checkout.StateOpen),
		}); err != nil {
			return attemptStart{}, fmt.Errorf("mark session complete_in_progress: %w", err)
		}
		// The stock last: the variant rows stay locked from here to the COMMIT only. A
		// short stock rolls the attempt back with the rest.
		lines = sess.Lines
		if err := takeStockLast(ctx, tx.beforeCommit(), lines); err != nil {
			return attemptStart{}, err
		}
		return attemptStart{attempt: a}, nil
	})
	if errors.Is(err, errLockedTooFew) {
		if claim != nil {
			// The phase sent statement by statement does not hold a key found free: it
			// is claimed on its own first.
			if err := claim.Take(ctx); err != nil {
				return attemptStart{}, err
			}
		}
		return s.beginAttemptStatementByStatement(ctx, owner, id, c)
	}
	return start, pipelinedCompletionError(err, lines)
}

// beginAttemptStatementByStatement is beginAttempt sent statement by statement: for
// the session whose lock set the pipelined one cannot be sure of (errLockedTooFew).
func (s *Store) beginAttemptStatementByStatement(ctx context.Context, owner, id string, c checkout.Completion) (attemptStart, error) {
	key := requestKey(ctx)
	return withTxV(ctx, s.pool, func(q *db.Queries) (attemptStart, error) {
		now := s.now()
		sess, expired, err := s.lockSession(ctx, q, owner, id, now)
		if err != nil {
			return attemptStart{}, err
		}
		if sess.State == checkout.StateCompleteInProgress || sess.State == checkout.StateCompleted {
			if start, ok, err := s.resumeAttempt(ctx, q, sess, key, now); ok || err != nil {
				return start, err
			}
		}
		d, err := s.draftCompletion(ctx, q, sess, expired, c, now)
		var expiry *commitThen
		if errors.As(err, &expiry) {
			// The session expired on the way (lazy expiry): that commits, the
			// completion is refused.
			return attemptStart{refusal: expiry.err}, nil
		}
		if err != nil {
			return attemptStart{}, err
		}
		last, err := q.LastPaymentAttemptNumber(ctx, d.sess.ID)
		if err != nil {
			return attemptStart{}, fmt.Errorf("count payment attempts: %w", err)
		}
		a, err := s.insertAttempt(ctx, q, d, c, key, last, now)
		if err != nil {
			return attemptStart{}, err
		}
		n, err := q.SetSessionState(ctx, db.SetSessionStateParams{
			ID: id, State: string(checkout.StateCompleteInProgress), FromState: string(checkout.StateOpen),
		})
		if err != nil {
			return attemptStart{}, fmt.Errorf("mark session complete_in_progress: %w", err)
		}
		if n != 1 {
			return attemptStart{}, errors.New("session changed under its row lock")
		}
		// The stock last: the variant rows stay locked from here to the COMMIT only. A
		// short stock rolls the attempt back with the rest.
		if err := takeStock(ctx, q, d.sess.Lines); err != nil {
			return attemptStart{}, err
		}
		return attemptStart{attempt: a}, nil
	})
}

// resumeAttempt decides, under the session's row lock, what a completion of a session
// in progress or completed does: ok is false when it should proceed as a new
// completion (which a completed session then refuses as today).
func (s *Store) resumeAttempt(ctx context.Context, q *db.Queries, sess *checkout.Session, key string, now time.Time) (attemptStart, bool, error) {
	a, err := q.GetLatestPaymentAttempt(ctx, sess.ID)
	if isNoRows(err) {
		if sess.State == checkout.StateCompleted {
			return attemptStart{}, false, nil // paid with a vault token
		}
		return attemptStart{}, false, fmt.Errorf("session %s is complete_in_progress without a payment attempt", sess.ID)
	}
	if err != nil {
		return attemptStart{}, false, fmt.Errorf("load payment attempt: %w", err)
	}
	sameRequest := key != "" && a.RequestKey != nil && *a.RequestKey == key
	switch {
	case sess.State == checkout.StateCompleted:
		if a.Status != AttemptSucceeded || !sameRequest {
			return attemptStart{}, false, nil
		}
		// The retry of a completion that the recovery job (or a concurrent resumer)
		// finished: its answer is the order.
		v, err := s.completedView(ctx, q, sess, a.OrderID, now)
		return attemptStart{done: &v}, true, err
	case a.Status == AttemptInDoubt:
		return attemptStart{}, true, errAttemptInDoubt
	case a.Status != AttemptPending:
		return attemptStart{}, false, fmt.Errorf("session %s is complete_in_progress with its attempt %s", sess.ID, a.Status)
	}
	n, err := q.LeasePaymentAttempt(ctx, db.LeasePaymentAttemptParams{
		ID: a.ID, Now: now, StaleBefore: now.Add(-s.attemptTimeout), RequestKey: nonEmpty(key),
	})
	if err != nil {
		return attemptStart{}, false, fmt.Errorf("lease payment attempt: %w", err)
	}
	if n != 1 {
		return attemptStart{}, true, errAttemptTaken
	}
	return attemptStart{attempt: a}, true, nil
}

// insertAttempt records the pending payment attempt of draft d, numbered after the
// session's latest (last, read under its row lock), with its reserved usage-limited
// redemptions, and returns it. Its statements return only their errors: q may be a
// pipelinedTx's deferred Queries.
func (s *Store) insertAttempt(ctx context.Context, q *db.Queries, d *completionDraft, c checkout.Completion, key string, last int32, now time.Time) (db.PaymentAttempt, error) {
	orderSnapshot, err := encodeSnapshot("order_create", d.order, now)
	if err != nil {
		return db.PaymentAttempt{}, fmt.Errorf("encode planned order: %w", err)
	}
	plan := completionPlan{
		Order: orderSnapshot, BillingAddress: d.params.BillingAddress,
		AuthenticationOutcome: d.params.AuthenticationOutcome, AuthenticationECI: d.params.AuthenticationEci,
		AuthenticationVersion: d.params.AuthenticationVersion, AuthenticationTxID: d.params.AuthenticationTransactionID,
		Redemptions: d.redemptions, Buyer: d.sess.Buyer, OrderNotes: d.sess.OrderNotes,
		Attribution: d.attribution, CarriesAuthentication: c.CarriesAuthentication,
	}
	if c.Consents != nil {
		plan.Consents = make([]plannedConsent, len(c.Consents))
		for i, m := range c.Consents {
			plan.Consents[i] = plannedConsent{Channel: m.Channel, OptedIn: m.OptedIn}
		}
	}
	a := db.PaymentAttempt{
		ID: checkout.NewID("pa_"), CheckoutSessionID: d.sess.ID, Owner: d.sess.Owner, Number: last + 1,
		OrderID: d.order.ID, Gateway: s.gateway.Name(), IdempotencyKey: attemptKey(d.sess.ID, last+1),
		RequestKey: nonEmpty(key), Token: c.Token, Amount: d.order.Amount, Currency: d.order.Currency,
		Status: AttemptPending, Tries: 1, CreatedAt: now, AttemptedAt: now, UpdatedAt: now,
	}
	if a.Plan, err = json.Marshal(plan); err != nil {
		return a, fmt.Errorf("encode completion plan: %w", err)
	}
	if r := c.Authentication; r != nil {
		if a.Authentication, err = json.Marshal(attemptAuthentication{
			Outcome: string(r.Outcome), Cryptogram: r.Cryptogram, ECI: r.ECI, TransactionID: r.TransactionID, Version: r.Version,
		}); err != nil {
			return a, fmt.Errorf("encode authentication: %w", err)
		}
	}
	if err := q.InsertPaymentAttempt(ctx, db.InsertPaymentAttemptParams{
		ID: a.ID, CheckoutSessionID: a.CheckoutSessionID, Owner: a.Owner, Number: a.Number, OrderID: a.OrderID,
		Gateway: a.Gateway, IdempotencyKey: a.IdempotencyKey, RequestKey: a.RequestKey, Token: a.Token,
		Amount: a.Amount, Currency: a.Currency, Authentication: a.Authentication, Plan: a.Plan, Now: now,
	}); err != nil {
		return a, fmt.Errorf("insert payment attempt: %w", err)
	}
	for _, r := range d.redemptions {
		if !r.Limited {
			continue
		}
		if err := q.InsertPaymentAttemptDiscount(ctx, db.InsertPaymentAttemptDiscountParams{
			AttemptID: a.ID, DiscountID: r.DiscountID, BuyerEmail: buyerKey(d.sess.Buyer),
		}); err != nil {
			return a, fmt.Errorf("reserve discount redemption: %w", err)
		}
	}
	return a, nil
}

// charge is the second phase: it asks the gateway to charge attempt a, with its
// idempotency key and the parameters it was recorded with, holding no lock and no
// connection.
func (s *Store) charge(ctx context.Context, a db.PaymentAttempt) (payment.Receipt, error) {
	if name := s.gateway.Name(); a.Gateway != name {
		// PAYMENT_GATEWAY changed while the attempt was pending: only the PSP that
		// was asked can tell what became of it. The attempt stays pending, then in
		// doubt, for the operator.
		return payment.Receipt{}, fmt.Errorf("payment attempt %s was sent to the %s gateway; this server charges through %s", a.ID, a.Gateway, name)
	}
	c := payment.Charge{
		Token: a.Token, Amount: a.Amount, Currency: a.Currency, SessionID: a.CheckoutSessionID,
		OrderID: a.OrderID, IdempotencyKey: a.IdempotencyKey,
	}
	if a.Authentication != nil {
		var auth attemptAuthentication
		if err := json.Unmarshal(a.Authentication, &auth); err != nil {
			return payment.Receipt{}, fmt.Errorf("decode authentication of payment attempt %s: %w", a.ID, err)
		}
		c.Authentication = &checkout.AuthenticationResult{
			Outcome: checkout.AuthenticationOutcome(auth.Outcome), Cryptogram: auth.Cryptogram,
			ECI: auth.ECI, TransactionID: auth.TransactionID, Version: auth.Version,
		}
	}
	return s.gateway.Charge(ctx, c)
}

// chargeOutcome is what a gateway's answer means for an attempt.
type chargeOutcome int

const (
	// charged: the PSP took the payment; the order is written.
	charged chargeOutcome = iota
	// refused: the PSP refused for good (declined, 3-D Secure required, unknown
	// token); the reservation is given back.
	refused
	// inDoubt: the PSP did not say (ErrUnavailable, a deadline, anything unexpected);
	// the attempt stays pending and is asked again with the same key.
	inDoubt
)

// outcomeOf classifies a gateway's answer err (nil: charged). Only a refusal the PSP
// stated frees the stock: any error it did not classify might hide a charge.
func outcomeOf(err error) chargeOutcome {
	if err == nil {
		return charged
	}
	if _, ok := errors.AsType[*payment.AuthenticationRequiredError](err); ok {
		return refused
	}
	if errors.Is(err, payment.ErrUnavailable) {
		return inDoubt
	}
	if de, ok := checkout.AsError(err); ok && de.Kind != checkout.KindInternal && de.Kind != checkout.KindUnavailable {
		return refused
	}
	return inDoubt
}

// settleAttempt is the third phase for the gateway's answer (receipt, err) to attempt
// a: the completed session's view, or the refusal the agent gets.
func (s *Store) settleAttempt(ctx context.Context, a db.PaymentAttempt, receipt payment.Receipt, err error) (checkout.View, error) {
	// The PSP has answered: what it said is recorded even if the request is gone.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	switch outcomeOf(err) {
	case charged:
		return s.finishAttempt(sctx, a, receipt.Reference)
	case refused:
		refusal, rerr := s.releaseAttempt(sctx, a, err)
		if rerr != nil {
			return checkout.View{}, rerr
		}
		return checkout.View{}, refusal
	}
	if nerr := db.New(s.pool).NotePaymentAttemptError(sctx, db.NotePaymentAttemptErrorParams{
		ID: a.ID, LastError: nonEmpty(err.Error()), Now: s.now(),
	}); nerr != nil {
		err = errors.Join(err, fmt.Errorf("note payment attempt %s: %w", a.ID, nerr))
	}
	if errors.Is(err, payment.ErrUnavailable) || ctx.Err() != nil {
		return checkout.View{}, fmt.Errorf("%w (%w)", checkout.ErrPaymentPending, err)
	}
	// An error the gateway did not classify (a parameter, a key, the account): a bug or
	// a configuration to fix, answered 500 and logged. The attempt stays pending all
	// the same: nothing says the PSP did not charge.
	return checkout.View{}, fmt.Errorf("charge of payment attempt %s, left pending: %w", a.ID, err)
}

// finishAttempt writes the order of attempt a, charged as reference, and completes its
// session, in one transaction that records the request's idempotent response. An
// attempt another caller finished meanwhile answers with that order: it is written once.
//
// It is a pipelinedTx of two round trips: BEGIN, the session's row lock
// (LockSession), the attempt, locked (read along), and the session's view; the settled
// attempt, the order and everything written with it, the record of the response and
// COMMIT. The view of an attempt already succeeded goes unused.
func (s *Store) finishAttempt(ctx context.Context, a db.PaymentAttempt, reference string) (checkout.View, error) {
	view, err := withPipelinedRecordedTx(ctx, s.pool, s.now, func(tx *pipelinedTx, now time.Time) (checkout.View, error) {
		q, deferred := db.New(tx), tx.deferred()
		if err := deferred.LockSession(ctx, db.LockSessionParams{ID: a.CheckoutSessionID, Owner: a.Owner}); err != nil {
			return checkout.View{}, fmt.Errorf("lock session: %w", err)
		}
		var current db.PaymentAttempt
		if err := tx.readAlong(func(q *db.Queries) (err error) {
			current, err = q.GetLatestPaymentAttempt(ctx, a.CheckoutSessionID)
			if err != nil && !isNoRows(err) {
				return fmt.Errorf("lock payment attempt: %w", err)
			}
			return nil // no attempt: current stays empty, answered after the view
		}); err != nil {
			return checkout.View{}, fmt.Errorf("lock payment attempt: %w", err)
		}
		sv, err := s.loadSessionView(ctx, q, a.Owner, a.CheckoutSessionID, now)
		if err != nil {
			return checkout.View{}, err
		}
		if current.ID == "" {
			return checkout.View{}, fmt.Errorf("lock payment attempt: %w", pgx.ErrNoRows)
		}
		sess := sv.session
		if current.ID == a.ID && current.Status == AttemptSucceeded {
			return s.completedView(ctx, q, sess, a.OrderID, now)
		}
		if current.ID != a.ID || (current.Status != AttemptPending && current.Status != AttemptInDoubt) {
			return checkout.View{}, fmt.Errorf("payment attempt %s was charged (%s) but is %s", a.ID, reference, current.Status)
		}
		d, offered, err := s.draftFromPlan(ctx, q, sv, current, now)
		if err != nil {
			return checkout.View{}, err
		}
		d.params.PaymentMethod, d.params.PaymentReference, d.params.PaymentGateway = "psp_token", reference, &a.Gateway
		if err := deferred.SettleOpenPaymentAttempt(ctx, db.SettleOpenPaymentAttemptParams{
			ID: a.ID, Status: AttemptSucceeded, PspReference: &reference, Now: now,
		}); err != nil {
			return checkout.View{}, fmt.Errorf("settle payment attempt: %w", err)
		}
		if err := s.writeOrderRows(ctx, deferred, d, now); err != nil {
			return checkout.View{}, err
		}
		offered = withDecisions(offered, d.sess, d.sess.ConsentRecords(s.consents, d.consents))
		return s.viewWith(d.sess, d.cat, now, d.order, offered), nil
	})
	return view, pipelinedCompletionError(err, nil)
}

// draftFromPlan rebuilds the draft attempt a was recorded with, on the session of sv,
// read under its row lock. It returns the draft with the marketing channels the
// session offers.
func (s *Store) draftFromPlan(ctx context.Context, q *db.Queries, sv sessionView, a db.PaymentAttempt, now time.Time) (*completionDraft, []checkout.OfferedConsent, error) {
	var plan completionPlan
	if err := json.Unmarshal(a.Plan, &plan); err != nil {
		return nil, nil, fmt.Errorf("decode plan of payment attempt %s: %w", a.ID, err)
	}
	_, order, _, err := decodeSnapshot(plan.Order)
	if err != nil {
		return nil, nil, fmt.Errorf("decode order of payment attempt %s: %w", a.ID, err)
	}
	order.CreatedAt, order.UpdatedAt = now, now
	sess := sv.session
	sess.Buyer, sess.OrderNotes = plan.Buyer, plan.OrderNotes
	// The catalog prices the completed session's view: the order is the plan's, priced
	// when its stock was taken.
	cat := catalogOf(sv.read.variants, sv.read.options)
	offered, err := s.quoteParts(ctx, q, sess, &cat, sv.read.parts)
	if err != nil {
		return nil, nil, err
	}
	d := &completionDraft{
		sess: sess, cat: cat, order: order, redemptions: plan.Redemptions, attribution: plan.Attribution,
		params: db.InsertOrderParams{
			ID: order.ID, CheckoutSessionID: sess.ID, Status: string(order.Status), Amount: order.Amount,
			Currency: order.Currency, PermalinkUrl: order.PermalinkURL, OrderNotes: nonEmpty(order.Notes), Now: now,
			BillingAddress: plan.BillingAddress, AuthenticationOutcome: plan.AuthenticationOutcome,
			AuthenticationEci: plan.AuthenticationECI, AuthenticationVersion: plan.AuthenticationVersion,
			AuthenticationTransactionID: plan.AuthenticationTxID,
		},
	}
	if plan.Consents != nil {
		d.consents = make([]checkout.MarketingConsent, len(plan.Consents))
		for i, m := range plan.Consents {
			d.consents[i] = checkout.MarketingConsent{Channel: m.Channel, OptedIn: m.OptedIn}
		}
	}
	return d, offered, nil
}

// completedView is the view of completed session sess with its order orderID.
func (s *Store) completedView(ctx context.Context, q *db.Queries, sess *checkout.Session, orderID string, now time.Time) (checkout.View, error) {
	row, err := q.GetOrder(ctx, orderID)
	if err != nil {
		return checkout.View{}, fmt.Errorf("load order %s: %w", orderID, err)
	}
	order, err := fullOrder(ctx, q, row)
	if err != nil {
		return checkout.View{}, err
	}
	cat, err := loadCatalog(ctx, q, sess, checkout.VariantIDs(sess, checkout.Changes{}))
	if err != nil {
		return checkout.View{}, err
	}
	return s.view(ctx, q, sess, cat, now, order)
}

// releaseAttempt gives back what attempt a reserved after the PSP refused it (cause):
// the stock, the redemptions (the attempt no longer counts), the session open again as
// it was, with the refusal shown as today's single-transaction completion showed it. It
// returns the refusal the agent gets, and err when the release itself failed (the
// attempt then stays pending, and the next resumer or the recovery job releases it).
func (s *Store) releaseAttempt(ctx context.Context, a db.PaymentAttempt, cause error) (refusal, err error) {
	var plan completionPlan
	if err := json.Unmarshal(a.Plan, &plan); err != nil {
		return cause, fmt.Errorf("decode plan of payment attempt %s: %w", a.ID, err)
	}
	refusal, pspAuthentication := cause, ""
	if ar, ok := errors.AsType[*payment.AuthenticationRequiredError](cause); ok {
		pspAuthentication = ar.DirectoryServer
		refusal = checkout.CheckAuthentication(&checkout.Authentication{DirectoryServer: ar.DirectoryServer}, nil, plan.CarriesAuthentication)
	}
	err = WithTx(ctx, s.pool, func(q *db.Queries) error {
		now := s.now()
		released, err := giveBack(ctx, q, a, plan, AttemptFailed, cause.Error(), now)
		if err != nil || !released {
			return err
		}
		return noteRefusal(ctx, q, a.Owner, a.CheckoutSessionID, refusal, pspAuthentication)
	})
	if err != nil {
		return refusal, fmt.Errorf("release payment attempt %s: %w", a.ID, err)
	}
	return refusal, nil
}

// giveBack ends open attempt a as status (failed or released), in the caller's
// transaction: it locks the session, then the attempt, then the variants (the lock
// order of every completion), puts the stock back and opens the session again. It
// reports false, changing nothing, when the attempt was no longer open.
func giveBack(ctx context.Context, q *db.Queries, a db.PaymentAttempt, plan completionPlan, status, reason string, now time.Time) (bool, error) {
	if _, err := q.GetSessionForUpdate(ctx, db.GetSessionForUpdateParams{ID: a.CheckoutSessionID, Owner: a.Owner}); err != nil {
		return false, fmt.Errorf("lock session: %w", err)
	}
	if _, err := q.GetLatestPaymentAttempt(ctx, a.CheckoutSessionID); err != nil {
		return false, fmt.Errorf("lock payment attempt: %w", err)
	}
	if err := settle(ctx, q, a.ID, status, nil, &reason, now); errors.Is(err, errAttemptSettled) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	_, order, _, err := decodeSnapshot(plan.Order)
	if err != nil {
		return false, fmt.Errorf("decode order of payment attempt %s: %w", a.ID, err)
	}
	back := make([]stockBack, len(order.Lines))
	for i, l := range order.Lines {
		back[i] = stockBack{variantID: l.ItemID, units: l.Quantity}
	}
	if err := putBackStock(ctx, q, back); err != nil {
		return false, err
	}
	// The session goes back to the agent as it was before the completion (a session no
	// longer in progress is left as it is).
	if _, err := q.SetSessionState(ctx, db.SetSessionStateParams{
		ID: a.CheckoutSessionID, State: string(checkout.StateOpen), FromState: string(checkout.StateCompleteInProgress),
	}); err != nil {
		return false, fmt.Errorf("reopen session: %w", err)
	}
	return true, nil
}

// errAttemptSettled says an attempt was no longer open when its outcome came.
var errAttemptSettled = errors.New("payment attempt already settled")

// settle ends open attempt id as status, with the PSP's reference or the reason.
func settle(ctx context.Context, q *db.Queries, id, status string, reference, reason *string, now time.Time) error {
	n, err := q.SettlePaymentAttempt(ctx, db.SettlePaymentAttemptParams{
		ID: id, Status: status, PspReference: reference, LastError: reason, Now: now,
	})
	if err != nil {
		return fmt.Errorf("settle payment attempt: %w", err)
	}
	if n != 1 {
		return errAttemptSettled
	}
	return nil
}

// PaymentAttempt is a payment attempt as the operator sees it (the payments attempts
// command).
type PaymentAttempt struct {
	ID, SessionID, OrderID, Gateway, IdempotencyKey, Status string
	Amount                                                  int64
	Currency                                                string
	PSPReference, LastError                                 string
	Tries                                                   int
	CreatedAt, AttemptedAt, UpdatedAt                       time.Time
}

// PaymentAttempts lists up to limit payment attempts, newest first, of status ("":
// any): what the operator checks at the PSP when an attempt is in_doubt.
func (o *Orders) PaymentAttempts(ctx context.Context, status string, limit int) ([]PaymentAttempt, error) {
	rows, err := db.New(o.pool).ListPaymentAttempts(ctx, db.ListPaymentAttemptsParams{Status: status, MaxRows: int32(limit)})
	if err != nil {
		return nil, fmt.Errorf("list payment attempts: %w", err)
	}
	out := make([]PaymentAttempt, len(rows))
	for i, r := range rows {
		out[i] = PaymentAttempt{
			ID: r.ID, SessionID: r.CheckoutSessionID, OrderID: r.OrderID, Gateway: r.Gateway, IdempotencyKey: r.IdempotencyKey,
			Status: r.Status, Amount: r.Amount, Currency: r.Currency, PSPReference: deref(r.PspReference),
			LastError: deref(r.LastError), Tries: int(r.Tries), CreatedAt: r.CreatedAt, AttemptedAt: r.AttemptedAt, UpdatedAt: r.UpdatedAt,
		}
	}
	return out, nil
}

// The outcomes of a recovered attempt (RecoveryResult.Outcome).
const (
	RecoveredCompleted = "completed" // charged: the order is written
	RecoveredFailed    = "failed"    // refused: the reservation is given back
	RecoveredPending   = "pending"   // still no answer: asked again next run
	RecoveredInDoubt   = "in_doubt"  // no answer past the horizon: the operator decides
)

// RecoveryResult is what one recovery run did with one payment attempt.
type RecoveryResult struct {
	AttemptID, SessionID, OrderID string
	Outcome                       string
	// Err is the gateway's answer when it settled nothing, or why settling failed.
	Err error
}

// recoveryBatch bounds how many attempts one recovery run takes.
const recoveryBatch = 50

// RecoverPayments finishes the payment attempts left pending by a completion that
// stopped between its phases (a crash, a PSP that did not answer). It leases the stale
// ones (FOR UPDATE SKIP LOCKED: two instances never work one attempt), asks the gateway
// again with each one's idempotency key and parameters, and writes its order once or
// gives its reservation back. One still unanswered is asked again next run, unless it is
// older than inDoubtAfter: it is then marked in_doubt, its stock kept, for the operator.
func (s *Store) RecoverPayments(ctx context.Context, inDoubtAfter time.Duration) ([]RecoveryResult, error) {
	now := s.now()
	attempts, err := db.New(s.pool).ClaimStalePaymentAttempts(ctx, db.ClaimStalePaymentAttemptsParams{
		Now: now, StaleBefore: now.Add(-s.attemptTimeout), MaxRows: recoveryBatch,
	})
	if err != nil {
		return nil, fmt.Errorf("claim stale payment attempts: %w", err)
	}
	results := make([]RecoveryResult, 0, len(attempts))
	for _, a := range attempts {
		if ctx.Err() != nil {
			break // the rest stay leased until they are stale again
		}
		results = append(results, s.recoverAttempt(ctx, a, inDoubtAfter))
	}
	return results, nil
}

// recoverAttempt asks the gateway again for leased attempt a and settles it.
func (s *Store) recoverAttempt(ctx context.Context, a db.PaymentAttempt, inDoubtAfter time.Duration) RecoveryResult {
	r := RecoveryResult{AttemptID: a.ID, SessionID: a.CheckoutSessionID, OrderID: a.OrderID}
	// The lease lasts attemptTimeout: a call still running past it could meet another
	// instance's call on the same attempt (harmless with one idempotency key, but not
	// the plan).
	cctx, cancel := context.WithTimeout(ctx, s.attemptTimeout)
	receipt, cerr := s.charge(cctx, a)
	cancel()
	switch outcomeOf(cerr) {
	case charged:
		r.Outcome = RecoveredCompleted
		_, r.Err = s.finishAttempt(ctx, a, receipt.Reference)
	case refused:
		r.Outcome = RecoveredFailed
		_, r.Err = s.releaseAttempt(ctx, a, cerr)
	default:
		r.Outcome, r.Err = RecoveredPending, cerr
		now := s.now()
		if a.CreatedAt.Before(now.Add(-inDoubtAfter)) {
			r.Outcome = RecoveredInDoubt
			reason := cerr.Error()
			if err := settle(ctx, db.New(s.pool), a.ID, AttemptInDoubt, nil, &reason, now); err != nil {
				r.Err = errors.Join(cerr, err)
			}
		} else if err := db.New(s.pool).NotePaymentAttemptError(ctx, db.NotePaymentAttemptErrorParams{
			ID: a.ID, LastError: nonEmpty(cerr.Error()), Now: now,
		}); err != nil {
			r.Err = errors.Join(cerr, err)
		}
	}
	if r.Err != nil && r.Outcome != RecoveredPending && r.Outcome != RecoveredInDoubt {
		r.Outcome = RecoveredPending // settling failed: the attempt is still pending
	}
	return r
}

// errNotInDoubt refuses to release an attempt the operator may not release.
var errNotInDoubt = checkout.Errorf(checkout.KindConflict, "payment_attempt_not_in_doubt", checkout.Field{},
	"Only an in_doubt payment attempt can be released: a pending one is still being settled.")

// ReleaseAttempt gives back what in_doubt payment attempt id holds — the stock, the
// reserved redemptions, the session open again — once the operator has checked at the
// PSP that its charge was not taken. The attempt becomes released.
func (o *Orders) ReleaseAttempt(ctx context.Context, id string) error {
	q := db.New(o.pool)
	a, err := q.GetPaymentAttempt(ctx, id)
	if isNoRows(err) {
		return checkout.Errorf(checkout.KindNotFound, "not_found", checkout.Field{}, "No payment attempt with id %q.", id)
	}
	if err != nil {
		return fmt.Errorf("load payment attempt: %w", err)
	}
	if a.Status != AttemptInDoubt {
		return errNotInDoubt
	}
	var plan completionPlan
	if err := json.Unmarshal(a.Plan, &plan); err != nil {
		return fmt.Errorf("decode plan of payment attempt %s: %w", a.ID, err)
	}
	return WithTx(ctx, o.pool, func(q *db.Queries) error {
		released, err := giveBack(ctx, q, a, plan, AttemptReleased, "released by the operator", o.now())
		if err == nil && !released {
			return errNotInDoubt
		}
		return err
	})
}
