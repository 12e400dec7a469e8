package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/db"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
)

// Carts are kept by the session Store, with the session TTL: a cart lives that long
// after its last change. Each write is one transaction holding the cart's row lock, and
// records the response of an Idempotency-Key in that transaction, as session writes do.

// cartClock is the time of a cart write, at PostgreSQL's precision, so that the
// response of a write shows the times a later read of the cart does.
func (s *Store) cartClock() time.Time { return s.now().Truncate(time.Microsecond) }

// CreateCart validates ch, prices it against the catalog and stores a new cart owned by
// owner.
func (s *Store) CreateCart(ctx context.Context, owner string, ch checkout.CartChanges) (checkout.CartView, error) {
	if err := ch.Validate(); err != nil {
		return checkout.CartView{}, err
	}
	return withRecordedTxV(ctx, s.pool, s.cartClock, func(q *db.Queries, now time.Time) (checkout.CartView, error) {
		c := &checkout.Cart{ID: checkout.NewID("cart_"), Owner: owner}
		return s.saveCart(ctx, q, c, ch, now, func(buyer []byte) error {
			return q.InsertCart(ctx, db.InsertCartParams{
				ID: c.ID, Owner: owner, Currency: c.Currency, Buyer: buyer, Locale: nonEmpty(c.Locale),
				Now: now, ExpiresAt: c.ExpiresAt,
			})
		})
	})
}

// GetCart returns owner's cart id priced from the current catalog.
func (s *Store) GetCart(ctx context.Context, owner, id string) (checkout.CartView, error) {
	q := db.New(s.pool)
	c, err := loadCart(ctx, q, owner, id, false, s.now())
	if err != nil {
		return checkout.CartView{}, err
	}
	cat, err := loadCatalog(ctx, q, nil, cartVariantIDs(c, nil))
	if err != nil {
		return checkout.CartView{}, err
	}
	return checkout.PriceCart(c, cat), nil
}

// ReplaceCart validates ch and replaces the items and buyer of the locked cart.
func (s *Store) ReplaceCart(ctx context.Context, owner, id string, ch checkout.CartChanges) (checkout.CartView, error) {
	if err := ch.Validate(); err != nil {
		return checkout.CartView{}, err
	}
	return withRecordedTxV(ctx, s.pool, s.cartClock, func(q *db.Queries, now time.Time) (checkout.CartView, error) {
		c, err := loadCart(ctx, q, owner, id, true, now)
		if err != nil {
			return checkout.CartView{}, err
		}
		return s.saveCart(ctx, q, c, ch, now, func(buyer []byte) error {
			if err := q.UpdateCart(ctx, db.UpdateCartParams{
				ID: c.ID, Currency: c.Currency, Buyer: buyer, Locale: nonEmpty(c.Locale), Now: now, ExpiresAt: c.ExpiresAt,
			}); err != nil {
				return err
			}
			return q.DeleteCartItems(ctx, c.ID)
		})
	})
}

// CancelCart deletes owner's cart id and returns the state it had (CART-RFC §4.5).
func (s *Store) CancelCart(ctx context.Context, owner, id string) (checkout.CartView, error) {
	return withRecordedTxV(ctx, s.pool, s.cartClock, func(q *db.Queries, now time.Time) (checkout.CartView, error) {
		c, err := loadCart(ctx, q, owner, id, true, now)
		if err != nil {
			return checkout.CartView{}, err
		}
		cat, err := loadCatalog(ctx, q, nil, cartVariantIDs(c, nil))
		if err != nil {
			return checkout.CartView{}, err
		}
		if err := q.DeleteCart(ctx, c.ID); err != nil {
			return checkout.CartView{}, fmt.Errorf("delete cart: %w", err)
		}
		return checkout.PriceCart(c, cat), nil
	})
}

// saveCart applies ch to c against the variants they name, writes the cart row with
// write (given the buyer column; it leaves the cart without items) and then its items,
// and returns the cart priced.
func (s *Store) saveCart(ctx context.Context, q *db.Queries, c *checkout.Cart, ch checkout.CartChanges, now time.Time,
	write func(buyer []byte) error,
) (checkout.CartView, error) {
	cat, err := loadCatalog(ctx, q, nil, cartVariantIDs(c, ch.Items))
	if err != nil {
		return checkout.CartView{}, err
	}
	if err := c.Replace(ch, cat, now, s.ttl); err != nil {
		return checkout.CartView{}, err
	}
	buyer, err := cartBuyer(c)
	if err != nil {
		return checkout.CartView{}, err
	}
	if err := write(buyer); err != nil {
		return checkout.CartView{}, fmt.Errorf("write cart: %w", err)
	}
	if err := insertCartLines(ctx, q, c); err != nil {
		return checkout.CartView{}, err
	}
	return checkout.PriceCart(c, cat), nil
}

// cartVariantIDs lists the variants of c's lines and of the requested items.
func cartVariantIDs(c *checkout.Cart, items []checkout.ItemRequest) []string {
	ids := make([]string, 0, len(c.Lines)+len(items))
	for _, l := range c.Lines {
		ids = append(ids, l.VariantID)
	}
	for _, it := range items {
		ids = append(ids, it.ID)
	}
	return ids
}

// loadCart reads owner's unexpired cart id with its lines; forUpdate locks it until the
// transaction ends.
func loadCart(ctx context.Context, q *db.Queries, owner, id string, forUpdate bool, now time.Time) (*checkout.Cart, error) {
	var row db.Cart
	var err error
	if forUpdate {
		row, err = q.GetCartForUpdate(ctx, db.GetCartForUpdateParams{ID: id, Owner: owner, Now: now})
	} else {
		row, err = q.GetCart(ctx, db.GetCartParams{ID: id, Owner: owner, Now: now})
	}
	if isNoRows(err) {
		return nil, checkout.ErrCartNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("load cart: %w", err)
	}
	c := &checkout.Cart{
		ID: row.ID, Owner: row.Owner, Currency: row.Currency,
		CreatedAt: row.CreatedAt, UpdatedAt: row.UpdatedAt, ExpiresAt: row.ExpiresAt,
	}
	if row.Locale != nil {
		c.Locale = *row.Locale
	}
	if err := decodeColumns(id, jsonColumn(row.Buyer, &c.Buyer, "buyer")); err != nil {
		return nil, err
	}
	lines, err := q.ListCartItems(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("load cart items: %w", err)
	}
	c.Lines = make([]checkout.Line, len(lines))
	for i, l := range lines {
		c.Lines[i] = checkout.Line{ID: l.ID, VariantID: l.VariantID, Quantity: int(l.Quantity), UnitAmount: l.UnitAmount}
	}
	return c, nil
}

// cartBuyer is the buyer column of c (nil: SQL NULL).
func cartBuyer(c *checkout.Cart) ([]byte, error) {
	if c.Buyer == nil {
		return nil, nil
	}
	b, err := json.Marshal(c.Buyer)
	if err != nil {
		return nil, fmt.Errorf("encode buyer: %w", err)
	}
	return b, nil
}

func insertCartLines(ctx context.Context, q *db.Queries, c *checkout.Cart) error {
	rows := make([]db.InsertCartItemsParams, len(c.Lines))
	for i, l := range c.Lines {
		rows[i] = db.InsertCartItemsParams{
			ID: l.ID, CartID: c.ID, Position: int32(i),
			VariantID: l.VariantID, Quantity: int32(l.Quantity), UnitAmount: l.UnitAmount,
		}
	}
	if _, err := q.InsertCartItems(ctx, rows); err != nil {
		return fmt.Errorf("insert cart items: %w", err)
	}
	return nil
}
