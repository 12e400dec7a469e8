-- name: InsertCart :exec
-- Its json parameters are cast, as PostgreSQL would type them anyway, so that they stay
-- json where their columns are domains, or become ones (docs/decisions.md, "Performance
-- round 2").
INSERT INTO carts (id, owner, currency, buyer, locale, created_at, updated_at, expires_at)
VALUES (@id, @owner, @currency, @buyer::jsonb, sqlc.narg(locale), @now, @now, @expires_at);

-- name: GetCartForUpdate :one
-- A cart of another owner, or one past its expiry, is not found (CART-RFC §4.3: 404 for
-- expired carts). The lock serialises replacements and cancels of one cart.
SELECT * FROM carts WHERE id = @id AND owner = @owner AND expires_at > @now FOR UPDATE;

-- name: GetCart :one
SELECT * FROM carts WHERE id = @id AND owner = @owner AND expires_at > @now;

-- name: UpdateCart :exec
-- Its json parameters are cast, as PostgreSQL would type them anyway, so that they stay
-- json where their columns are domains, or become ones (docs/decisions.md, "Performance
-- round 2").
UPDATE carts
SET currency = @currency,
    buyer = @buyer::jsonb,
    locale = sqlc.narg(locale),
    updated_at = @now,
    expires_at = @expires_at
WHERE id = @id;

-- name: DeleteCart :exec
-- Cancel: the cart and its items (ON DELETE CASCADE) go at once.
DELETE FROM carts WHERE id = @id;

-- name: DeleteCartItems :exec
DELETE FROM cart_items WHERE cart_id = @cart_id;

-- name: InsertCartItemRows :exec
-- A cart's items in one statement, which a pipeline can carry (a COPY cannot); the
-- arrays are the items' columns, one element per item (InsertLineItemRows).
INSERT INTO cart_items (id, cart_id, position, variant_id, quantity, unit_amount)
SELECT unnest(@ids::text[]), @cart_id::text, unnest(@positions::integer[]), unnest(@variant_ids::text[]),
    unnest(@quantities::integer[]), unnest(@unit_amounts::bigint[]);

-- name: ListCartItems :many
SELECT * FROM cart_items WHERE cart_id = @cart_id ORDER BY position;

-- name: ListCartVariants :many
-- The variants of a cart's items, read in the round trip that reads the items
-- (readCart): ListVariantsByID would need the items first.
SELECT v.* FROM variants v WHERE v.id IN (SELECT ci.variant_id FROM cart_items ci WHERE ci.cart_id = @cart_id);

-- name: DeleteExpiredCarts :execrows
-- Retention: expired carts are already not found; the sweeper deletes them in batches.
DELETE FROM carts
WHERE id IN (
    SELECT c.id FROM carts c WHERE c.expires_at <= @now
    ORDER BY c.expires_at
    LIMIT @max_rows
    FOR UPDATE SKIP LOCKED
);
