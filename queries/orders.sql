-- name: GetOrder :one
SELECT * FROM orders WHERE id = @id;

-- name: GetOrderForUpdate :one
SELECT * FROM orders WHERE id = @id FOR UPDATE;

-- name: ListOrders :many
-- Newest first, keyset-paginated by (created_at, id): read backwards through
-- orders_created_idx from the cursor, so a page reads its own rows and no others (with
-- a status, those it passes over too). The first page's cursor, without
-- @before_created, lies past every order ('infinity'): the cursor stays one row
-- comparison the index starts at in every plan. With an OR for "no cursor", the generic
-- plan a prepared statement may settle on could not start there, and a page deep in
-- the list read every newer order.
SELECT * FROM orders
WHERE (created_at, id) < (coalesce(sqlc.narg(before_created)::timestamptz, 'infinity'), @before_id::text)
  AND (sqlc.narg(status)::text IS NULL OR status = sqlc.narg(status)::text)
ORDER BY created_at DESC, id DESC
LIMIT @max_rows;

-- name: SetOrderStatus :exec
UPDATE orders SET status = @status, updated_at = @now WHERE id = @id;

-- name: InsertRefund :exec
INSERT INTO refunds (id, order_id, type, amount, description, reason, created_at)
VALUES (@id, @order_id, @type, @amount, @description, @reason, @created_at);

-- name: ListRefunds :many
-- The refunds of the orders @order_ids, each order's oldest first: of one order, or of
-- a page of ListOrders in one round trip rather than one per order.
SELECT * FROM refunds WHERE order_id = ANY(@order_ids::text[]) ORDER BY order_id, created_at, id;

-- name: GetOrderCard :one
-- What the order page may show of the card: brand and last 4, nothing else.
SELECT card_brand, card_last4 FROM vault_tokens WHERE order_id = @order_id;

-- name: InsertOrderEvent :exec
-- Its json parameters are cast, as PostgreSQL would type them anyway, so that they stay
-- json where their columns are domains, or become ones (docs/decisions.md, "Performance
-- round 2").
INSERT INTO order_events (order_id, type, payload, payload_format, created_at, next_attempt_at)
VALUES (@order_id, @type, @payload::json, @payload_format, @now, @now);

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

-- name: ListOrderLineStates :many
-- The lines of an order with what is still on it and what they cost at completion:
-- ORD-RFC's quantity.ordered is the line item's quantity, quantity.current the order
-- line's. The title is the variant's (its id when the variant has since been removed).
SELECT li.id, li.variant_id, li.quantity, li.unit_amount, coalesce(v.title, li.variant_id)::text AS title,
       coalesce(ol.quantity_current, li.quantity)::integer AS quantity_current, ol.subtotal, ol.tax
FROM orders o
JOIN line_items li ON li.checkout_session_id = o.checkout_session_id
LEFT JOIN order_lines ol ON ol.order_id = o.id AND ol.line_item_id = li.id
LEFT JOIN variants v ON v.id = li.variant_id
WHERE o.id = @order_id
ORDER BY li.position;

-- name: InsertOrderLines :exec
-- An order's lines in one statement, whatever their number: each statement costs
-- PostgreSQL its executor start and the CHECK constraints rebuilt (docs/performance-history.md,
-- "Ninth round"). The arrays are the lines' columns, one element per line (unnest in
-- the select list zips arrays of one length).
INSERT INTO order_lines (order_id, line_item_id, quantity_current, subtotal, tax)
SELECT @order_id::text, unnest(@line_item_ids::text[]), unnest(@quantities_current::integer[]),
    unnest(@subtotals::bigint[]), unnest(@taxes::bigint[]);

-- name: SetOrderLinesCurrent :exec
-- The current quantities of an order's lines, one statement for all (InsertOrderLines).
-- Upsert: an order from before the order_lines table may lack the rows.
INSERT INTO order_lines (order_id, line_item_id, quantity_current)
SELECT @order_id::text, unnest(@line_item_ids::text[]), unnest(@quantities_current::integer[])
ON CONFLICT (order_id, line_item_id) DO UPDATE SET quantity_current = EXCLUDED.quantity_current;

-- name: InsertOrderAmounts :exec
INSERT INTO order_amounts (order_id, subtotal, discount, fulfillment, tax)
VALUES (@order_id, @subtotal, @discount, @fulfillment, @tax);

-- name: GetOrderAmounts :one
SELECT * FROM order_amounts WHERE order_id = @order_id;

-- name: PutBackStock :exec
-- Puts quantities[i] units of variant_ids[i] back, in one statement for all lines; a
-- variant without tracked stock stays unlimited (put_back_stock, migration 00022).
-- @variant_ids must be sorted (the lock order of variants).
SELECT put_back_stock(@variant_ids::text[], @quantities::integer[]);

-- name: ListFulfillments :many
SELECT * FROM fulfillments WHERE order_id = @order_id ORDER BY created_at, id;

-- name: ListFulfillmentLines :many
SELECT fl.* FROM fulfillment_lines fl JOIN fulfillments f ON f.id = fl.fulfillment_id
WHERE f.order_id = @order_id ORDER BY fl.fulfillment_id, fl.position;

-- name: ListFulfillmentEvents :many
SELECT e.id, e.fulfillment_id, e.type, e.occurred_at, e.description, e.location
FROM fulfillment_events e JOIN fulfillments f ON f.id = e.fulfillment_id
WHERE f.order_id = @order_id ORDER BY e.fulfillment_id, e.occurred_at, e.seq;

-- name: InsertFulfillment :exec
-- Its json parameters are cast, as PostgreSQL would type them anyway, so that they stay
-- json where their columns are domains, or become ones (docs/decisions.md, "Performance
-- round 2").
INSERT INTO fulfillments (id, order_id, type, status, carrier, tracking_number, tracking_url, description, destination,
    delivery_earliest, delivery_latest, access_url, license_key, access_expires_at, created_at, updated_at)
VALUES (@id, @order_id, @type, @status, @carrier, @tracking_number, @tracking_url, @description, @destination::jsonb,
    @delivery_earliest, @delivery_latest, @access_url, @license_key, @access_expires_at, @now, @now);

-- name: InsertFulfillmentLines :exec
-- A fulfilment's lines in one statement, whatever their number (InsertOrderLines).
INSERT INTO fulfillment_lines (fulfillment_id, line_item_id, position, quantity)
SELECT @fulfillment_id::text, unnest(@line_item_ids::text[]), unnest(@positions::integer[]), unnest(@quantities::integer[]);

-- name: SetFulfillmentStatus :exec
UPDATE fulfillments SET status = @status, updated_at = @now WHERE id = @id;

-- name: InsertFulfillmentEvent :exec
INSERT INTO fulfillment_events (id, fulfillment_id, type, occurred_at, description, location)
VALUES (@id, @fulfillment_id, @type, @occurred_at, @description, @location);

-- name: InsertRefundLines :exec
-- A refund's lines in one statement, whatever their number (InsertOrderLines).
INSERT INTO refund_lines (refund_id, line_item_id, position, quantity)
SELECT @refund_id::text, unnest(@line_item_ids::text[]), unnest(@positions::integer[]), unnest(@quantities::integer[]);

-- name: ListRefundLines :many
SELECT rl.* FROM refund_lines rl JOIN refunds r ON r.id = rl.refund_id
WHERE r.order_id = @order_id ORDER BY rl.refund_id, rl.position;

-- name: InsertCancellation :exec
-- A cancellation, one row per line, in one statement whatever their number
-- (InsertOrderLines).
INSERT INTO order_cancellations (id, order_id, line_item_id, position, quantity, description, reason, created_at)
SELECT @id::text, @order_id::text, unnest(@line_item_ids::text[]), unnest(@positions::integer[]), unnest(@quantities::integer[]),
    sqlc.narg(description)::text, sqlc.narg(reason)::text, @created_at::timestamptz;

-- name: ListCancellations :many
SELECT * FROM order_cancellations WHERE order_id = @order_id ORDER BY created_at, id, position;
