package checkout

import (
	"context"
	"time"
)

// Cart is a basket an agent builds before purchase intent (CART-RFC): items, an
// optional buyer, and the currency of its items. It has no lifecycle: it exists until it
// expires or is canceled. Its prices are estimates, derived like a session's (PriceCart).
type Cart struct {
	ID string
	// Owner is the identity of the agent platform that created the cart, as for sessions.
	Owner    string
	Currency string
	Buyer    *Buyer
	// Locale is the buyer's (BCP 47), as the agent gave it on create ("": not given).
	Locale    string
	Lines     []Line
	CreatedAt time.Time
	UpdatedAt time.Time
	ExpiresAt time.Time
}

// CartChanges is a create or a full replacement of a cart: the items and the buyer (nil:
// none; a replacement without one removes it). Locale is only given on create.
type CartChanges struct {
	Items  []ItemRequest
	Buyer  *Buyer
	Locale *string
}

// CartView is a cart with its estimated quote: the priced lines, the totals and the
// messages about its items (unavailable ones are reported, never dropped).
type CartView struct {
	Cart     *Cart
	Lines    []PricedLine
	Totals   Totals
	Messages []Message
}

// CartService serves carts to the transports. owner is the caller's identity; a cart
// of another owner, an expired or a canceled one is not found (ErrCartNotFound).
type CartService interface {
	CreateCart(ctx context.Context, owner string, ch CartChanges) (CartView, error)
	GetCart(ctx context.Context, owner, id string) (CartView, error)
	// ReplaceCart replaces the items and the buyer and refreshes the expiry.
	ReplaceCart(ctx context.Context, owner, id string, ch CartChanges) (CartView, error)
	// CancelCart deletes the cart and returns its final state.
	CancelCart(ctx context.Context, owner, id string) (CartView, error)
}

// ErrCartNotFound is returned for a cart that does not exist, expired, was canceled or
// is another owner's.
var ErrCartNotFound = &Error{Kind: KindNotFound, Code: "not_found", Message: "Cart not found or has expired."}

// Validate checks the shape of a cart create or replacement: items are required, and
// are checked as a session's are.
func (ch *CartChanges) Validate() error {
	sc := ch.sessionChanges()
	if err := sc.Validate(true); err != nil {
		return err
	}
	ch.Buyer = sc.Buyer
	return nil
}

// sessionChanges is ch as the changes of a session: a cart is stored and priced as a
// session without fulfillment, so validation, line ids and unit price quoting, the
// currency of the items and pricing are the session's (Session.Apply, Price). The buyer
// is replaced as a whole (a replacement without one clears it).
func (ch CartChanges) sessionChanges() Changes {
	return Changes{Items: ch.Items, Buyer: ch.Buyer, Locale: ch.Locale, Clear: Clear{Buyer: ch.Buyer == nil}}
}

// session is the open session c is priced and changed as.
func (c *Cart) session() *Session {
	return &Session{
		ID: c.ID, Owner: c.Owner, State: StateOpen, Currency: c.Currency, Buyer: c.Buyer,
		Locale: c.Locale, Lines: c.Lines, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt, ExpiresAt: c.ExpiresAt,
	}
}

// Replace applies a validated create or replacement: the items (priced from cat now;
// every id must be in cat.Variants, an unknown one is refused) and the buyer, and
// pushes the expiry to now+ttl (CART-RFC §4.4: refresh expires_at on update).
func (c *Cart) Replace(ch CartChanges, cat Catalog, now time.Time, ttl time.Duration) error {
	s := c.session()
	if err := s.Apply(ch.sessionChanges(), cat, now, ttl); err != nil {
		return err
	}
	c.Currency, c.Buyer, c.Locale, c.Lines = s.Currency, s.Buyer, s.Locale, s.Lines
	c.CreatedAt, c.UpdatedAt, c.ExpiresAt = s.CreatedAt, s.UpdatedAt, s.ExpiresAt
	return nil
}

// PriceCart derives the estimated quote of c from the catalog, with Price: the totals
// of its items without fulfillment (none is chosen in a cart) and without tax (a cart
// has no address; CART-RFC allows omitting it). Only the messages about its items are
// kept: what a session still lacks (an address, a fulfillment option) is no concern of a
// cart.
func PriceCart(c *Cart, cat Catalog) CartView {
	q := Price(c.session(), Catalog{Variants: cat.Variants}, c.UpdatedAt)
	v := CartView{Cart: c, Lines: q.Lines, Totals: q.Totals, Messages: []Message{}}
	for _, m := range q.Messages {
		if segs := m.Field.Segments(); len(segs) > 0 && segs[0].Name == FieldLines {
			v.Messages = append(v.Messages, m)
		}
	}
	return v
}

// TotalEntries lists the cart's estimated totals as every version shows them: a
// session's entries without tax, which a cart cannot know (it has no address; CART-RFC
// §9 lets it be omitted, and a 0 would read as tax-free) and without fulfillment, which
// a cart never has.
func (v CartView) TotalEntries() []TotalEntry {
	out := []TotalEntry{}
	for _, e := range v.Totals.Entries() {
		if e.Type != "tax" {
			out = append(out, e)
		}
	}
	return out
}
