-- +goose Up

-- Issue 10: carts (rfc.cart.md), the baskets an agent builds before a checkout session.
-- A cart has no lifecycle: it exists until it expires (expires_at, pushed back by every
-- replacement) or is canceled, which deletes it. An expired cart is not found; the
-- sweeper deletes it later. What a cart costs is derived at read time, like a session's.
CREATE TABLE carts (
    id          text PRIMARY KEY CHECK (id <> ''),
    -- The agent platform's identity ('' on a server without API keys); no other sees it.
    owner       text NOT NULL DEFAULT '',
    currency    text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    buyer       jsonb CHECK (buyer IS NULL OR (jsonb_typeof(buyer) = 'object' AND buyer ? 'email')),
    locale      text CHECK (length(locale) <= 64),
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    CHECK (updated_at >= created_at)
);
CREATE INDEX carts_expires_at_idx ON carts (expires_at);

CREATE TABLE cart_items (
    id          text PRIMARY KEY CHECK (id <> ''),
    cart_id     text NOT NULL REFERENCES carts (id) ON DELETE CASCADE,
    position    integer NOT NULL CHECK (position >= 0),
    variant_id  text NOT NULL REFERENCES variants (id),
    quantity    integer NOT NULL CHECK (quantity BETWEEN 1 AND 10000),
    -- The unit price quoted when the item was put in the cart, as for line_items.
    unit_amount bigint NOT NULL CHECK (unit_amount >= 0),
    UNIQUE (cart_id, position),
    UNIQUE (cart_id, variant_id)
);

-- +goose Down

DROP TABLE cart_items;
DROP TABLE carts;
