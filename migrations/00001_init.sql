-- +goose Up

-- Catalog: products group the variants an agent buys. A checkout item id is a variant id.
CREATE TABLE products (
    id          text PRIMARY KEY CHECK (id <> '' AND length(id) <= 256),
    title       text NOT NULL DEFAULT '',
    url         text,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE variants (
    id                  text PRIMARY KEY CHECK (id <> '' AND length(id) <= 256),
    product_id          text NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    title               text NOT NULL CHECK (title <> ''),
    -- Minor units; the cap keeps price * quantity * lines far inside int64.
    price_amount        bigint NOT NULL CHECK (price_amount BETWEEN 0 AND 100000000000),
    currency            text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    available           boolean NOT NULL DEFAULT true,
    availability_status text NOT NULL DEFAULT 'in_stock',
    fulfillment_type    text NOT NULL DEFAULT 'shipping' CHECK (fulfillment_type IN ('shipping', 'digital')),
    -- NULL means unlimited stock.
    stock_quantity      integer CHECK (stock_quantity >= 0),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX variants_product_id_idx ON variants (product_id);

-- Tax rates by country and region (ISO 3166-1 alpha-2 country, region as the address
-- "state"). region '' is the country-wide fallback. Rates are basis points (825 = 8.25%).
CREATE TABLE tax_rates (
    country   text NOT NULL CHECK (country ~ '^[A-Z]{2}$'),
    region    text NOT NULL DEFAULT '' CHECK (region = upper(region)),
    rate_bps  integer NOT NULL CHECK (rate_bps BETWEEN 0 AND 10000),
    PRIMARY KEY (country, region)
);

CREATE TABLE fulfillment_options (
    id                 text PRIMARY KEY CHECK (id <> '' AND length(id) <= 256),
    type               text NOT NULL CHECK (type IN ('shipping', 'digital')),
    title              text NOT NULL CHECK (title <> ''),
    subtitle           text NOT NULL DEFAULT '',
    carrier            text NOT NULL DEFAULT '',
    amount             bigint NOT NULL CHECK (amount BETWEEN 0 AND 100000000000),
    currency           text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    -- Delivery window in whole days from the moment the option is quoted.
    min_delivery_days  integer CHECK (min_delivery_days >= 0),
    max_delivery_days  integer CHECK (max_delivery_days >= 0),
    taxable            boolean NOT NULL DEFAULT false,
    active             boolean NOT NULL DEFAULT true,
    sort_order         integer NOT NULL DEFAULT 0,
    CHECK (min_delivery_days IS NULL OR max_delivery_days IS NULL OR min_delivery_days <= max_delivery_days),
    CHECK (type = 'shipping' OR carrier = '')
);

-- A checkout session. Its lifecycle is stored in state; the ACP status
-- (ready_for_payment, not_ready_for_payment, ...) is derived from the session and the
-- catalog at read time and never stored.
CREATE TABLE checkout_sessions (
    id                     text PRIMARY KEY CHECK (id <> ''),
    state                  text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'completed', 'canceled')),
    currency               text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    buyer                  jsonb CHECK (buyer IS NULL OR (jsonb_typeof(buyer) = 'object'
                               AND buyer ?& ARRAY['first_name', 'last_name', 'email'])),
    fulfillment_address    jsonb CHECK (fulfillment_address IS NULL OR (jsonb_typeof(fulfillment_address) = 'object'
                               AND fulfillment_address ?& ARRAY['name', 'line_one', 'city', 'state', 'country', 'postal_code'])),
    fulfillment_option_id  text REFERENCES fulfillment_options (id),
    -- Why the last payment attempt was declined; shown as a payment_declined message
    -- until the session changes.
    payment_error          text,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    expires_at             timestamptz NOT NULL,
    CHECK (updated_at >= created_at)
);

CREATE TABLE line_items (
    id                   text PRIMARY KEY CHECK (id <> ''),
    checkout_session_id  text NOT NULL REFERENCES checkout_sessions (id) ON DELETE CASCADE,
    position             integer NOT NULL CHECK (position >= 0),
    variant_id           text NOT NULL REFERENCES variants (id),
    quantity             integer NOT NULL CHECK (quantity BETWEEN 1 AND 10000),
    -- The unit price quoted when the item was put in the session, in the session currency.
    unit_amount          bigint NOT NULL CHECK (unit_amount >= 0),
    UNIQUE (checkout_session_id, position),
    UNIQUE (checkout_session_id, variant_id)
);

CREATE TABLE orders (
    id                   text PRIMARY KEY CHECK (id <> ''),
    -- One order per session: the last line of defence against a double charge.
    checkout_session_id  text NOT NULL UNIQUE REFERENCES checkout_sessions (id),
    status               text NOT NULL DEFAULT 'created'
                             CHECK (status IN ('created', 'manual_review', 'confirmed', 'canceled', 'shipped', 'fulfilled')),
    amount               bigint NOT NULL CHECK (amount >= 0),
    currency             text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    permalink_url        text NOT NULL,
    -- How it was paid: a vault token of ours (payment_reference = vt_...) or a PSP
    -- token charged through the gateway (payment_reference = the PSP's charge id).
    payment_method       text NOT NULL CHECK (payment_method IN ('vault_token', 'psp_token')),
    payment_reference    text NOT NULL,
    billing_address      jsonb CHECK (billing_address IS NULL OR jsonb_typeof(billing_address) = 'object'),
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

-- Delegated payment tokens (vt_...). Never holds a full card number or a CVC.
CREATE TABLE vault_tokens (
    id                   text PRIMARY KEY CHECK (id LIKE 'vt\_%'),
    checkout_session_id  text NOT NULL,
    merchant_id          text NOT NULL CHECK (length(merchant_id) BETWEEN 1 AND 256),
    max_amount           bigint NOT NULL CHECK (max_amount > 0),
    currency             text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    expires_at           timestamptz NOT NULL,
    used_at              timestamptz,
    -- The order the token paid; set together with used_at, so a token pays at most once.
    order_id             text UNIQUE REFERENCES orders (id),
    -- What may be kept of a card (PCI DSS 3.3, 3.5): brand, funding, last 4, expiry and a
    -- keyed HMAC fingerprint (NULL without CARD_FINGERPRINT_KEY).
    card_brand           text NOT NULL,
    card_funding_type    text NOT NULL CHECK (card_funding_type IN ('credit', 'debit', 'prepaid')),
    card_last4           text NOT NULL CHECK (card_last4 ~ '^[0-9]{4}$'),
    card_exp_month       smallint CHECK (card_exp_month BETWEEN 1 AND 12),
    card_exp_year        smallint CHECK (card_exp_year BETWEEN 2000 AND 2200),
    card_number_type     text NOT NULL CHECK (card_number_type IN ('fpan', 'network_token')),
    card_fingerprint     text CHECK (card_fingerprint ~ '^[0-9a-f]{64}$'),
    card_virtual         boolean NOT NULL DEFAULT false,
    card_wallet_type     text,
    billing_address      jsonb CHECK (billing_address IS NULL OR jsonb_typeof(billing_address) = 'object'),
    risk_signals         jsonb NOT NULL CHECK (jsonb_typeof(risk_signals) = 'array'),
    manual_review        boolean NOT NULL DEFAULT false,
    metadata             jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    created_at           timestamptz NOT NULL DEFAULT now(),
    CHECK ((used_at IS NULL) = (order_id IS NULL))
);
CREATE INDEX vault_tokens_card_fingerprint_idx ON vault_tokens (card_fingerprint) WHERE card_fingerprint IS NOT NULL;
CREATE INDEX vault_tokens_checkout_session_id_idx ON vault_tokens (checkout_session_id);

-- A fresh database can sell to the US straight away; merchants edit these rows.
INSERT INTO fulfillment_options (id, type, title, subtitle, carrier, amount, currency, min_delivery_days, max_delivery_days, sort_order) VALUES
    ('standard_shipping', 'shipping', 'Standard', 'Arrives in 5-7 business days', 'USPS', 500, 'usd', 5, 7, 10),
    ('express_shipping', 'shipping', 'Express', 'Arrives in 1-2 business days', 'UPS', 1500, 'usd', 1, 2, 20),
    ('digital', 'digital', 'Digital delivery', 'Delivered by email right after payment', '', 0, 'usd', 0, 0, 30);

INSERT INTO tax_rates (country, region, rate_bps) VALUES
    ('US', '', 0),
    ('US', 'CA', 725),
    ('US', 'NY', 400),
    ('US', 'TX', 625),
    ('US', 'WA', 650);

-- +goose Down
DROP TABLE vault_tokens;
DROP TABLE orders;
DROP TABLE line_items;
DROP TABLE checkout_sessions;
DROP TABLE fulfillment_options;
DROP TABLE tax_rates;
DROP TABLE variants;
DROP TABLE products;
