package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/agentic-commerce/agentic-commerce-server/db"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
)

// offeredConsents are the merchant's marketing channels as sess shows them, each with
// the stored decision of the contact the channel reaches for sess (none known: not
// subscribed). Nil when the merchant offers none.
func (s *Store) offeredConsents(ctx context.Context, q *db.Queries, sess *checkout.Session) ([]checkout.OfferedConsent, error) {
	contacts := s.consentContacts(sess)
	if len(contacts) == 0 {
		return s.offeredConsentsFrom(sess, nil), nil
	}
	rows, err := loadDecisions(ctx, q, contacts)
	if err != nil {
		return nil, err
	}
	return s.offeredConsentsFrom(sess, rows), nil
}

// loadDecisions reads the stored marketing decisions of contacts, on every channel.
func loadDecisions(ctx context.Context, q *db.Queries, contacts []string) ([]db.MarketingConsent, error) {
	rows, err := q.ListMarketingConsents(ctx, contacts)
	if err != nil {
		return nil, fmt.Errorf("load marketing consents: %w", err)
	}
	return rows, nil
}

// consentContacts are the contacts the merchant's marketing channels reach for sess.
func (s *Store) consentContacts(sess *checkout.Session) []string {
	contacts := make([]string, 0, len(s.consents))
	for _, o := range s.consents {
		if c := checkout.ConsentContact(o.Channel, sess.Buyer, sess.FulfillmentContact); c != "" {
			contacts = append(contacts, c)
		}
	}
	return contacts
}

// contactsBroughtBy are the contacts the merchant's marketing channels may reach for a
// session after ch, from the buyer and the fulfillment contact ch sets (nil when it
// sets neither, or the merchant offers no consents): the ones whose stored decisions an
// update reads along with the session's view (writeReadAhead). Each channel's contact
// falls back from the buyer to the fulfillment contact, either of which may be the
// session's, so the buyer's and the contact's are both read, as well as the one the
// two give together.
func (s *Store) contactsBroughtBy(ch checkout.Changes) []string {
	if len(s.consents) == 0 || (ch.Buyer == nil && ch.FulfillmentContact == nil) {
		return nil
	}
	var contacts []string
	for _, o := range s.consents {
		for _, c := range []string{
			checkout.ConsentContact(o.Channel, ch.Buyer, ch.FulfillmentContact),
			checkout.ConsentContact(o.Channel, ch.Buyer, nil),
			checkout.ConsentContact(o.Channel, nil, ch.FulfillmentContact),
		} {
			if c != "" && !slices.Contains(contacts, c) {
				contacts = append(contacts, c)
			}
		}
	}
	return contacts
}

// withContacts is sv as if its read held the stored decisions of contacts too: what
// an update can start from once it has read them (writeReadAhead).
func (sv sessionView) withContacts(contacts []string) sessionView {
	sv.read.parts.contacts = append(slices.Clip(sv.read.parts.contacts), contacts...)
	return sv
}

// addDecisions adds to p the contacts it was not read for, with their stored decisions
// among rows, read for contacts.
func (p *loadedParts) addDecisions(contacts []string, rows []db.MarketingConsent) {
	for _, c := range contacts {
		if slices.Contains(p.contacts, c) {
			continue
		}
		p.contacts = append(p.contacts, c)
		for _, r := range rows {
			if r.Contact == c {
				p.consents = append(p.consents, r)
			}
		}
	}
}

// offeredConsentsFrom is offeredConsents with the stored decisions of rows, which hold
// those of every contact of consentContacts (and may hold others).
func (s *Store) offeredConsentsFrom(sess *checkout.Session, rows []db.MarketingConsent) []checkout.OfferedConsent {
	if len(s.consents) == 0 {
		return nil
	}
	out := make([]checkout.OfferedConsent, len(s.consents))
	for i, o := range s.consents {
		out[i] = checkout.OfferedConsent{ConsentOption: o}
		contact := checkout.ConsentContact(o.Channel, sess.Buyer, sess.FulfillmentContact)
		if contact == "" {
			continue
		}
		for _, r := range rows {
			if r.Channel == o.Channel && r.Contact == contact {
				out[i].Subscribed = r.OptedIn
			}
		}
	}
	return out
}

// storeConsents records the decisions of c that count (checkout.Session.ConsentRecords)
// for the order, in the completion's transaction: they commit with the order or not
// at all.
func (s *Store) storeConsents(ctx context.Context, q *db.Queries, sess *checkout.Session, c checkout.Completion, orderID string, now time.Time) error {
	for _, r := range sess.ConsentRecords(s.consents, c.Consents) {
		if err := q.UpsertMarketingConsent(ctx, db.UpsertMarketingConsentParams{
			Channel: r.Channel, Contact: r.Contact, OptedIn: r.OptedIn,
			CheckoutSessionID: sess.ID, OrderID: orderID, Now: now,
		}); err != nil {
			return fmt.Errorf("store marketing consent: %w", err)
		}
	}
	return nil
}

// insertAttribution stores a (nil: no) affiliate attribution of session id as touch,
// crediting orderID for the last touch. A second claim for the same touch is ignored,
// never refused: attribution never blocks a checkout (AA-RFC §4.3.3).
func insertAttribution(ctx context.Context, q *db.Queries, id string, touch checkout.Touchpoint, a *checkout.Attribution, orderID string, now time.Time) error {
	if a == nil {
		return nil
	}
	raw, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encode attribution: %w", err)
	}
	if err := q.InsertAffiliateAttribution(ctx, db.InsertAffiliateAttributionParams{
		CheckoutSessionID: id, Touch: string(touch), OrderID: nonEmpty(orderID),
		Provider: a.Provider, PublisherID: nonEmpty(a.PublisherID), Attribution: raw, Now: now,
	}); err != nil {
		return fmt.Errorf("store attribution: %w", err)
	}
	return nil
}

// Consents reads the merchant's stored marketing decisions.
type Consents struct {
	pool *pgxpool.Pool
}

// NewConsents returns the consent reader on pool.
func NewConsents(pool *pgxpool.Pool) *Consents {
	return &Consents{pool: pool}
}

// ForContact returns the stored decisions of contact (an email address, compared
// without case, or a phone number) on every channel.
func (c *Consents) ForContact(ctx context.Context, contact string) ([]checkout.StoredConsent, error) {
	contact = strings.TrimSpace(contact)
	rows, err := loadDecisions(ctx, db.New(c.pool), []string{contact, strings.ToLower(contact)})
	if err != nil {
		return nil, err
	}
	out := make([]checkout.StoredConsent, 0, len(rows))
	for _, r := range rows {
		// A phone number is matched as given; the lower-cased form is only an email's.
		if r.Channel != checkout.ChannelEmail && r.Contact != contact {
			continue
		}
		out = append(out, checkout.StoredConsent{
			ConsentRecord:     checkout.ConsentRecord{Channel: r.Channel, Contact: r.Contact, OptedIn: r.OptedIn},
			CheckoutSessionID: r.CheckoutSessionID, OrderID: r.OrderID, UpdatedAt: r.UpdatedAt,
		})
	}
	return out, nil
}
