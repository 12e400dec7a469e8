-- name: ListVariantsByID :many
SELECT * FROM variants WHERE id = ANY(@ids::text[]);

-- name: ListActiveFulfillmentOptions :many
SELECT * FROM fulfillment_options WHERE active ORDER BY sort_order, id;

-- name: GetTaxRate :one
-- The region's own rate wins over the country-wide one (region '').
SELECT rate_bps FROM tax_rates
WHERE country = @country AND region IN (@region, '')
ORDER BY region DESC
LIMIT 1;

-- name: UpsertProducts :batchexec
INSERT INTO products (id, title, url, updated_at)
VALUES (@id, @title, @url, now())
ON CONFLICT (id) DO UPDATE SET title = EXCLUDED.title, url = EXCLUDED.url, updated_at = now();

-- name: UpsertVariants :batchexec
-- Stock is not part of a feed: an import leaves stock_quantity as it was.
INSERT INTO variants (id, product_id, title, price_amount, currency, available, availability_status, fulfillment_type, updated_at)
VALUES (@id, @product_id, @title, @price_amount, @currency, @available, @availability_status, @fulfillment_type, now())
ON CONFLICT (id) DO UPDATE SET
    product_id = EXCLUDED.product_id,
    title = EXCLUDED.title,
    price_amount = EXCLUDED.price_amount,
    currency = EXCLUDED.currency,
    available = EXCLUDED.available,
    availability_status = EXCLUDED.availability_status,
    fulfillment_type = EXCLUDED.fulfillment_type,
    updated_at = now();

-- name: SetVariantStock :execrows
UPDATE variants SET stock_quantity = sqlc.narg(stock_quantity), updated_at = now() WHERE id = @id;
