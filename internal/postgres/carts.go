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

// CreateCart validates ch, prices it against the catalog and stores a new cart owned by
// owner: a pipelinedTx of two round trips (the variants and the fulfillment options,
// outside the transaction, with the request's idempotency claim riding ahead of them;
// the cart, its items, the record and COMMIT).
func (s *Store) CreateCart(ctx context.Context, owner string, ch checkout.CartChanges) (checkout.CartView, error) {
	if err := ch.Validate(); err != nil {
		return checkout.CartView{}, err
	}
	return withRiddenRecordedTx(ctx, s.pool, s.now, func(tx *pipelinedTx, now time.Time) (checkout.CartView, error) {
		tx.readOutside()
		c := &checkout.Cart{ID: checkout.NewID("cart_"), Owner: owner}
		var cat catalogRows
		if err := tx.readAll(cat.reads(ctx, itemIDs(ch.Items))); err != nil {
			return checkout.CartView{}, err
		}
		deferred := tx.deferred()
		return s.saveCart(ctx, deferred, c, ch, cat.catalog(), now, func(buyer []byte) error {
			return deferred.InsertCart(ctx, db.InsertCartParams{
				ID: c.ID, Owner: owner, Currency: c.Currency, Buyer: buyer, Locale: nonEmpty(c.Locale),
				Now: now, ExpiresAt: c.ExpiresAt,
			})
		})
	})
}

// GetCart returns owner's cart id priced from the current catalog, read in one round
// trip (readCart) outside any transaction.
func (s *Store) GetCart(ctx context.Context, owner, id string) (checkout.CartView, error) {
	return withPipelinedTx(ctx, s.pool, s.now, func(tx *pipelinedTx, now time.Time) (checkout.CartView, error) {
		tx.readOutside()
		c, cat, err := readCart(ctx, tx, owner, id, false, now, nil)
		if err != nil {
			return checkout.CartView{}, err
		}
		return checkout.PriceCart(c, cat), nil
	})
}

// ReplaceCart validates ch and replaces the items and buyer of the locked cart: after
// the key's look-up, a pipelinedTx of two round trips (the key found free held, readCart
// with the cart locked; the writes, the key with its response and COMMIT).
func (s *Store) ReplaceCart(ctx context.Context, owner, id string, ch checkout.CartChanges) (checkout.CartView, error) {
	if err := ch.Validate(); err != nil {
		return checkout.CartView{}, err
	}
	return withPipelinedRecordedTx(ctx, s.pool, s.now, func(tx *pipelinedTx, now time.Time) (checkout.CartView, error) {
		c, cat, err := readCart(ctx, tx, owner, id, true, now, itemIDs(ch.Items))
		if err != nil {
			return checkout.CartView{}, err
		}
		deferred := tx.deferred()
		return s.saveCart(ctx, deferred, c, ch, cat, now, func(buyer []byte) error {
			if err := deferred.UpdateCart(ctx, db.UpdateCartParams{
				ID: c.ID, Currency: c.Currency, Buyer: buyer, Locale: nonEmpty(c.Locale), Now: now, ExpiresAt: c.ExpiresAt,
			}); err != nil {
				return err
			}
			return deferred.DeleteCartItems(ctx, c.ID)
		})
	})
}

// CancelCart deletes owner's cart id and returns the state it had (CART-RFC §4.5): after
// the key's look-up, a pipelinedTx of two round trips (the key found free held, readCart
// with the cart locked; the delete, the key with its response and COMMIT).
func (s *Store) CancelCart(ctx context.Context, owner, id string) (checkout.CartView, error) {
	return withPipelinedRecordedTx(ctx, s.pool, s.now, func(tx *pipelinedTx, now time.Time) (checkout.CartView, error) {
		c, cat, err := readCart(ctx, tx, owner, id, true, now, nil)
		if err != nil {
			return checkout.CartView{}, err
		}
		if err := tx.deferred().DeleteCart(ctx, c.ID); err != nil {
			return checkout.CartView{}, fmt.Errorf("delete cart: %w", err)
		}
		return checkout.PriceCart(c, cat), nil
	})
}

// saveCart applies ch to c against cat, writes the cart row with write (given the buyer
// column; it leaves the cart without items) and then its items through q, and returns
// the cart priced.
func (s *Store) saveCart(ctx context.Context, q *db.Queries, c *checkout.Cart, ch checkout.CartChanges, cat checkout.Catalog, now time.Time,
	write func(buyer []byte) error,
) (checkout.CartView, error) {
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

// itemIDs are the variant ids of the requested items.
func itemIDs(items []checkout.ItemRequest) []string {
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = it.ID
	}
	return ids
}

// readCart reads owner's unexpired cart id in one round trip of tx: the cart row (locked
// until the transaction ends when forUpdate), its items, the variants of its items and
// of extra, and the active fulfillment options.
func readCart(ctx context.Context, tx *pipelinedTx, owner, id string, forUpdate bool, now time.Time, extra []string) (*checkout.Cart, checkout.Catalog, error) {
	var row db.Cart
	var rowErr error
	var items []db.CartItem
	var cat catalogRows
	reads := []func(q *db.Queries) error{
		func(q *db.Queries) error {
			if forUpdate {
				row, rowErr = q.GetCartForUpdate(ctx, db.GetCartForUpdateParams{ID: id, Owner: owner, Now: now})
			} else {
				row, rowErr = q.GetCart(ctx, db.GetCartParams{ID: id, Owner: owner, Now: now})
			}
			if rowErr != nil && !isNoRows(rowErr) {
				return fmt.Errorf("load cart: %w", rowErr)
			}
			return nil // no such cart: answered once the round trip is back
		},
		func(q *db.Queries) (err error) {
			items, err = q.ListCartItems(ctx, id)
			return wrapErr(err, "load cart items")
		},
	}
	reads = append(append(reads, func(q *db.Queries) (err error) {
		cat.ofCart, err = q.ListCartVariants(ctx, id)
		return wrapErr(err, "load cart variants")
	}), cat.reads(ctx, extra)...)
	if err := tx.readAll(reads); err != nil {
		return nil, checkout.Catalog{}, err
	}
	if isNoRows(rowErr) {
		return nil, checkout.Catalog{}, checkout.ErrCartNotFound
	}
	c := &checkout.Cart{
		ID: row.ID, Owner: row.Owner, Currency: row.Currency,
		CreatedAt: row.CreatedAt, UpdatedAt: row.UpdatedAt, ExpiresAt: row.ExpiresAt,
	}
	if row.Locale != nil {
		c.Locale = *row.Locale
	}
	if err := decodeColumns(id, jsonColumn(row.Buyer, &c.Buyer, "buyer")); err != nil {
		return nil, checkout.Catalog{}, err
	}
	c.Lines = make([]checkout.Line, len(items))
	for i, l := range items {
		c.Lines[i] = checkout.Line{ID: l.ID, VariantID: l.VariantID, Quantity: int(l.Quantity), UnitAmount: l.UnitAmount}
	}
	return c, cat.catalog(), nil
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

// insertCartLines writes c's lines as its items, in one statement whatever their number.
func insertCartLines(ctx context.Context, q *db.Queries, c *checkout.Cart) error {
	p := db.InsertCartItemRowsParams{
		CartID: c.ID, Ids: make([]string, len(c.Lines)), Positions: make([]int32, len(c.Lines)),
		VariantIds: make([]string, len(c.Lines)), Quantities: make([]int32, len(c.Lines)), UnitAmounts: make([]int64, len(c.Lines)),
	}
	for i, l := range c.Lines {
		p.Ids[i], p.Positions[i], p.VariantIds[i], p.Quantities[i], p.UnitAmounts[i] = l.ID, int32(i), l.VariantID, int32(l.Quantity), l.UnitAmount
	}
	if err := q.InsertCartItemRows(ctx, p); err != nil {
		return fmt.Errorf("insert cart items: %w", err)
	}
	return nil
}
