-- +goose Up

-- Issue 10: discounts (the discount extension, DISC-RFC). A discount is a code the
-- buyer enters or, without a code, an automatic one. Exactly one of percent_bps and
-- amount_off is set; amount_off is in minor units of currency. Codes are unique
-- case-insensitively (stored upper-case). Disabling keeps the row: redemptions refer to
-- it and a disabled code is then rejected as invalid.
CREATE TABLE discounts (
    id               text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,64}$'),
    code             text CHECK (code ~ '^[A-Z0-9_-]{1,64}$'),
    title            text NOT NULL CHECK (title <> '' AND length(title) <= 200),
    percent_bps      integer CHECK (percent_bps BETWEEN 1 AND 10000),
    amount_off       bigint CHECK (amount_off BETWEEN 1 AND 1000000000000),
    currency         text CHECK (currency ~ '^[a-z]{3}$'),
    scope            text NOT NULL DEFAULT 'order' CHECK (scope IN ('order', 'items', 'fulfillment')),
    -- The variants a discount of scope items applies to ('{}': all).
    item_ids         text[] NOT NULL DEFAULT '{}',
    min_subtotal     bigint NOT NULL DEFAULT 0 CHECK (min_subtotal >= 0),
    starts_at        timestamptz,
    ends_at          timestamptz,
    usage_limit      integer CHECK (usage_limit > 0),
    per_buyer_limit  integer CHECK (per_buyer_limit > 0),
    stackable        boolean NOT NULL DEFAULT true,
    priority         integer NOT NULL DEFAULT 100 CHECK (priority > 0),
    disabled_at      timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((percent_bps IS NULL) <> (amount_off IS NULL)),
    CHECK (amount_off IS NULL OR currency IS NOT NULL),
    CHECK (item_ids = '{}' OR scope = 'items'),
    CHECK (starts_at IS NULL OR ends_at IS NULL OR ends_at > starts_at)
);
CREATE UNIQUE INDEX discounts_code_key ON discounts (code) WHERE code IS NOT NULL;
-- Every pricing reads the enabled automatic discounts.
CREATE INDEX discounts_automatic_idx ON discounts (id) WHERE code IS NULL AND disabled_at IS NULL;

-- One row per discount an order used, written in the completion's transaction while
-- the discount row is locked: the usage limits count these rows. buyer_email is
-- lower-cased, for the per-buyer limit.
CREATE TABLE discount_redemptions (
    discount_id          text NOT NULL REFERENCES discounts (id),
    order_id             text NOT NULL REFERENCES orders (id),
    buyer_email          text NOT NULL,
    amount               bigint NOT NULL CHECK (amount >= 0),
    created_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (discount_id, order_id)
);
CREATE INDEX discount_redemptions_buyer_idx ON discount_redemptions (discount_id, buyer_email);

-- The discount extension of a session: a row exists when the agent declared the
-- extension on create, and holds the codes as the agent last sent them.
CREATE TABLE checkout_session_discounts (
    checkout_session_id  text PRIMARY KEY REFERENCES checkout_sessions (id) ON DELETE CASCADE,
    codes                text[] NOT NULL DEFAULT '{}' CHECK (cardinality(codes) <= 20)
);

-- +goose Down

DROP TABLE checkout_session_discounts;
DROP TABLE discount_redemptions;
DROP TABLE discounts;
