-- +goose Up

-- Why a session was canceled: by the agent ('agent') or by the TTL ('expired').
ALTER TABLE checkout_sessions ADD COLUMN cancel_reason text
    CHECK (cancel_reason IN ('agent', 'expired'));
UPDATE checkout_sessions SET cancel_reason = 'agent' WHERE state = 'canceled';
ALTER TABLE checkout_sessions ADD CONSTRAINT checkout_sessions_cancel_reason_state
    CHECK ((state = 'canceled') = (cancel_reason IS NOT NULL));
CREATE INDEX checkout_sessions_open_expiry_idx ON checkout_sessions (expires_at) WHERE state = 'open';

-- Refunds recorded by the merchant; their sum never exceeds the order amount (checked
-- under the order's row lock).
CREATE TABLE refunds (
    id          text PRIMARY KEY,
    order_id    text NOT NULL REFERENCES orders (id),
    type        text NOT NULL CHECK (type IN ('store_credit', 'original_payment')),
    amount      bigint NOT NULL CHECK (amount > 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refunds_order_id_idx ON refunds (order_id);

-- The transactional outbox of order events for the agent platform: written in the
-- transaction that changes the order, delivered at least once by a worker.
CREATE TABLE order_events (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id         text NOT NULL REFERENCES orders (id),
    type             text NOT NULL CHECK (type IN ('order_create', 'order_update')),
    -- The exact JSON body POSTed to WEBHOOK_URL (json, not jsonb: kept byte for byte).
    payload          json NOT NULL,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    CHECK ((status = 'delivered') = (delivered_at IS NOT NULL))
);
CREATE INDEX order_events_pending_idx ON order_events (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX order_events_order_idx ON order_events (order_id, id);

-- +goose Down
DROP TABLE order_events;
DROP TABLE refunds;
DROP INDEX checkout_sessions_open_expiry_idx;
ALTER TABLE checkout_sessions DROP CONSTRAINT checkout_sessions_cancel_reason_state;
ALTER TABLE checkout_sessions DROP COLUMN cancel_reason;
