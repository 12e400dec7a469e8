-- name: GetOrder :one
SELECT * FROM orders WHERE id = @id;

-- name: GetOrderForUpdate :one
SELECT * FROM orders WHERE id = @id FOR UPDATE;

-- name: ListOrders :many
-- Newest first, keyset-paginated by (created_at, id).
SELECT * FROM orders
WHERE (sqlc.narg(before_created)::timestamptz IS NULL OR (created_at, id) < (sqlc.narg(before_created)::timestamptz, @before_id::text))
  AND (sqlc.narg(status)::text IS NULL OR status = sqlc.narg(status)::text)
ORDER BY created_at DESC, id DESC
LIMIT @max_rows;

-- name: SetOrderStatus :exec
UPDATE orders SET status = @status, updated_at = @now WHERE id = @id;

-- name: InsertRefund :exec
INSERT INTO refunds (id, order_id, type, amount, created_at) VALUES (@id, @order_id, @type, @amount, @created_at);

-- name: ListRefunds :many
SELECT * FROM refunds WHERE order_id = @order_id ORDER BY created_at, id;

-- name: RestockSession :exec
-- Puts a canceled order's items back; variants without tracked stock stay unlimited.
UPDATE variants v SET stock_quantity = v.stock_quantity + li.quantity, updated_at = now()
FROM line_items li
WHERE li.checkout_session_id = @checkout_session_id AND li.variant_id = v.id AND v.stock_quantity IS NOT NULL;

-- name: ListOrderLines :many
SELECT li.variant_id, li.quantity, li.unit_amount, coalesce(v.title, li.variant_id)::text AS title
FROM line_items li LEFT JOIN variants v ON v.id = li.variant_id
WHERE li.checkout_session_id = @checkout_session_id
ORDER BY li.position;

-- name: GetOrderCard :one
-- What the order page may show of the card: brand and last 4, nothing else.
SELECT card_brand, card_last4 FROM vault_tokens WHERE order_id = @order_id;

-- name: InsertOrderEvent :exec
INSERT INTO order_events (order_id, type, payload, created_at, next_attempt_at)
VALUES (@order_id, @type, @payload, @now, @now);

-- name: NextOrderEvent :one
-- The next event due, skipping rows another worker holds. An event waits while an
-- earlier event of the same order is still pending, so one order's events arrive in order.
SELECT e.* FROM order_events e
WHERE e.status = 'pending' AND e.next_attempt_at <= @now
  AND NOT EXISTS (
      SELECT 1 FROM order_events p
      WHERE p.order_id = e.order_id AND p.id < e.id AND p.status = 'pending'
  )
ORDER BY e.next_attempt_at, e.id
LIMIT 1
FOR UPDATE SKIP LOCKED;

-- name: MarkOrderEventDelivered :exec
UPDATE order_events SET status = 'delivered', attempts = attempts + 1, delivered_at = @now, last_error = NULL WHERE id = @id;

-- name: MarkOrderEventFailed :exec
UPDATE order_events SET attempts = attempts + 1, last_error = @last_error, next_attempt_at = @next_attempt_at,
    status = CASE WHEN @dead::boolean THEN 'dead' ELSE 'pending' END
WHERE id = @id;

-- name: CountPendingOrderEvents :one
SELECT count(*) FROM order_events WHERE status = 'pending';

-- name: DeleteExpiredVaultTokens :execrows
-- Unused tokens past their allowance can never pay; used ones stay with their order.
DELETE FROM vault_tokens WHERE used_at IS NULL AND expires_at < @before;
