-- +goose Up

-- Issue 10: the order as ORD-RFC models it. An order's lines keep what was ordered
-- (line_items, frozen at completion) and what is still on the order (quantity_current,
-- lowered by cancellations); fulfilments say how many units of which line left or
-- reached the buyer, so quantity.fulfilled is counted from them, never guessed from
-- the order status.

-- What each line cost at completion, and how many units are still on the order. tax and
-- subtotal are NULL for orders completed before this migration (they were not kept):
-- those orders can only be refunded by an explicit amount.
CREATE TABLE order_lines (
    order_id          text NOT NULL REFERENCES orders (id),
    line_item_id      text NOT NULL REFERENCES line_items (id),
    quantity_current  integer NOT NULL CHECK (quantity_current >= 0),
    subtotal          bigint CHECK (subtotal >= 0),
    tax               bigint CHECK (tax >= 0),
    PRIMARY KEY (order_id, line_item_id),
    CHECK ((subtotal IS NULL) = (tax IS NULL))
);

-- The order's totals at completion (ORD-RFC §4.6: total is the original charge; orders
-- has its amount). Orders from before this migration have no row.
CREATE TABLE order_amounts (
    order_id     text PRIMARY KEY REFERENCES orders (id),
    subtotal     bigint NOT NULL CHECK (subtotal >= 0),
    discount     bigint NOT NULL CHECK (discount >= 0),
    fulfillment  bigint NOT NULL CHECK (fulfillment >= 0),
    tax          bigint NOT NULL CHECK (tax >= 0)
);

-- processing: some units are on their way but not all (derived from the fulfilments).
ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check
    CHECK (status IN ('created', 'manual_review', 'confirmed', 'processing', 'canceled', 'shipped', 'fulfilled'));

CREATE TABLE fulfillments (
    id                  text PRIMARY KEY CHECK (id <> ''),
    order_id            text NOT NULL REFERENCES orders (id),
    type                text NOT NULL CHECK (type IN ('shipping', 'pickup', 'digital')),
    -- ORD-RFC §4.3: only the statuses that apply to the type.
    status              text NOT NULL CHECK (
        status IN ('pending', 'processing', 'delivered', 'failed', 'canceled')
        OR (type = 'shipping' AND status IN ('shipped', 'in_transit', 'out_for_delivery'))
        OR (type = 'pickup' AND status = 'ready_for_pickup')),
    carrier             text CHECK (carrier IS NULL OR type = 'shipping'),
    tracking_number     text CHECK (tracking_number IS NULL OR type = 'shipping'),
    tracking_url        text CHECK (tracking_url IS NULL OR type = 'shipping'),
    description         text,
    destination         jsonb CHECK (destination IS NULL OR jsonb_typeof(destination) = 'object'),
    delivery_earliest   timestamptz,
    delivery_latest     timestamptz,
    access_url          text CHECK (access_url IS NULL OR type = 'digital'),
    license_key         text CHECK (license_key IS NULL OR type = 'digital'),
    access_expires_at   timestamptz CHECK (access_expires_at IS NULL OR type = 'digital'),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK ((delivery_earliest IS NULL) = (delivery_latest IS NULL) AND delivery_earliest <= delivery_latest)
);
CREATE INDEX fulfillments_order_idx ON fulfillments (order_id, created_at, id);

-- Which units a fulfilment carries. Their sum per line over the fulfilments that are not
-- canceled never exceeds the line's quantity_current (checked under the order's row lock).
CREATE TABLE fulfillment_lines (
    fulfillment_id  text NOT NULL REFERENCES fulfillments (id),
    line_item_id    text NOT NULL REFERENCES line_items (id),
    position        integer NOT NULL CHECK (position >= 0),
    quantity        integer NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (fulfillment_id, line_item_id)
);

-- The append-only history of a fulfilment (ORD-RFC §4.4).
CREATE TABLE fulfillment_events (
    id              text PRIMARY KEY CHECK (id <> ''),
    fulfillment_id  text NOT NULL REFERENCES fulfillments (id),
    type            text NOT NULL CHECK (type IN ('processing', 'shipped', 'in_transit', 'out_for_delivery',
                        'ready_for_pickup', 'delivered', 'failed_attempt', 'returned_to_sender', 'canceled', 'undeliverable')),
    occurred_at     timestamptz NOT NULL,
    description     text,
    location        text,
    -- The order events were recorded in, which breaks ties of occurred_at.
    seq             bigint GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX fulfillment_events_fulfillment_idx ON fulfillment_events (fulfillment_id, occurred_at, seq);

-- A refund may name the units it is for, and says why.
ALTER TABLE refunds ADD COLUMN description text, ADD COLUMN reason text;
CREATE TABLE refund_lines (
    refund_id     text NOT NULL REFERENCES refunds (id),
    line_item_id  text NOT NULL REFERENCES line_items (id),
    position      integer NOT NULL CHECK (position >= 0),
    quantity      integer NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (refund_id, line_item_id)
);

-- Units taken off an order (quantity_current lowered): one row per line of one
-- cancellation, which shows as an adjustment of type cancellation.
CREATE TABLE order_cancellations (
    id            text NOT NULL CHECK (id <> ''),
    order_id      text NOT NULL REFERENCES orders (id),
    line_item_id  text NOT NULL REFERENCES line_items (id),
    position      integer NOT NULL CHECK (position >= 0),
    quantity      integer NOT NULL CHECK (quantity > 0),
    description   text,
    reason        text,
    created_at    timestamptz NOT NULL,
    PRIMARY KEY (id, line_item_id)
);
CREATE INDEX order_cancellations_order_idx ON order_cancellations (order_id, created_at, id);

-- Existing orders: every line still on the order, except on canceled orders (what the
-- Order showed until now); a shipped or fulfilled order gets the one fulfilment it had
-- implicitly, so its quantities stay what they were.
INSERT INTO order_lines (order_id, line_item_id, quantity_current)
SELECT o.id, li.id, CASE WHEN o.status = 'canceled' THEN 0 ELSE li.quantity END
FROM orders o JOIN line_items li ON li.checkout_session_id = o.checkout_session_id;
INSERT INTO fulfillments (id, order_id, type, status, created_at, updated_at)
SELECT 'ful_' || o.id, o.id, 'shipping', CASE WHEN o.status = 'fulfilled' THEN 'delivered' ELSE 'shipped' END,
       o.updated_at, o.updated_at
FROM orders o WHERE o.status IN ('shipped', 'fulfilled');
INSERT INTO fulfillment_lines (fulfillment_id, line_item_id, position, quantity)
SELECT 'ful_' || o.id, li.id, li.position, li.quantity
FROM orders o JOIN line_items li ON li.checkout_session_id = o.checkout_session_id
WHERE o.status IN ('shipped', 'fulfilled');

-- +goose Down

-- An order that is processing had units on their way: the previous release knows it as
-- confirmed (it had no partial shipments).
UPDATE orders SET status = 'confirmed' WHERE status = 'processing';
ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check
    CHECK (status IN ('created', 'manual_review', 'confirmed', 'canceled', 'shipped', 'fulfilled'));
DROP TABLE order_cancellations;
DROP TABLE refund_lines;
ALTER TABLE refunds DROP COLUMN reason, DROP COLUMN description;
DROP TABLE fulfillment_events;
DROP TABLE fulfillment_lines;
DROP TABLE fulfillments;
DROP TABLE order_amounts;
DROP TABLE order_lines;
