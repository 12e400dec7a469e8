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
-- The rows are locked in id order first, the order completions take stock in, so a
-- cancel and a checkout of the same items cannot deadlock.
WITH locked AS (
    SELECT v.id FROM variants v
    WHERE v.id IN (SELECT variant_id FROM line_items WHERE checkout_session_id = @checkout_session_id)
      AND v.stock_quantity IS NOT NULL
    ORDER BY v.id
    FOR UPDATE
)
UPDATE variants v SET stock_quantity = v.stock_quantity + li.quantity, updated_at = now()
FROM line_items li, locked
WHERE li.checkout_session_id = @checkout_session_id AND li.variant_id = v.id AND v.id = locked.id;

-- name: ListOrderLines :many
-- What an order bought: its session's lines in their order. The title is the variant's
-- (its id when the variant has since been removed from the catalog).
SELECT li.id, li.variant_id, li.quantity, li.unit_amount, coalesce(v.title, li.variant_id)::text AS title
FROM line_items li LEFT JOIN variants v ON v.id = li.variant_id
WHERE li.checkout_session_id = @checkout_session_id
ORDER BY li.position;

-- name: GetOrderCard :one
-- What the order page may show of the card: brand and last 4, nothing else.
SELECT card_brand, card_last4 FROM vault_tokens WHERE order_id = @order_id;

-- name: InsertOrderEvent :exec
INSERT INTO order_events (order_id, type, payload, payload_format, created_at, next_attempt_at)
VALUES (@order_id, @type, @payload, @payload_format, @now, @now);

-- name: ClaimOrderEvent :one
-- Leases the next due event: its next_attempt_at moves to @lease_until, so no other
-- worker takes it while it is being sent, and nothing is locked during the send. An
-- event waits while an earlier event of the same order is still pending (leased ones
-- included), so one order's events arrive in order. A worker that dies mid-send lets
-- the lease run out, and the event is sent again.
UPDATE order_events e SET next_attempt_at = @lease_until
FROM (
    SELECT c.id FROM order_events c
    WHERE c.status = 'pending' AND c.next_attempt_at <= @now
      AND NOT EXISTS (
          SELECT 1 FROM order_events p
          WHERE p.order_id = c.order_id AND p.id < c.id AND p.status = 'pending'
      )
    ORDER BY c.next_attempt_at, c.id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
) next
WHERE e.id = next.id
RETURNING e.*;

-- name: MarkOrderEventDelivered :execrows
-- Only the lease holder records (attempts unchanged since the claim).
UPDATE order_events SET status = 'delivered', attempts = attempts + 1, delivered_at = @now, last_error = NULL
WHERE id = @id AND attempts = @attempts AND status = 'pending';

-- name: MarkOrderEventFailed :execrows
UPDATE order_events SET attempts = attempts + 1, last_error = @last_error, next_attempt_at = @next_attempt_at,
    status = CASE WHEN @dead::boolean THEN 'dead' ELSE 'pending' END
WHERE id = @id AND attempts = @attempts AND status = 'pending';

-- name: CountPendingOrderEvents :one
SELECT count(*) FROM order_events WHERE status = 'pending';

-- name: DeleteExpiredVaultTokens :execrows
-- Unused tokens past their allowance (or, for tokens stored before the lifetime cap,
-- created longer than the maximum lifetime ago) can never pay; used ones stay with
-- their order.
DELETE FROM vault_tokens
WHERE used_at IS NULL AND (expires_at < @expired_before OR created_at < @created_before);

-- name: DeleteFinishedOrderEvents :execrows
-- Retention: delivered and dead events created before @before. Pending ones always stay.
DELETE FROM order_events
WHERE id IN (
    SELECT e.id FROM order_events e
    WHERE e.status IN ('delivered', 'dead') AND e.created_at < @before
    ORDER BY e.created_at
    LIMIT @max_rows
    FOR UPDATE SKIP LOCKED
);
