-- Issue 12 (Performance round 2, twelfth round): the CHECK constraints of one text or
-- number column on the tables every flow writes become domains, so that PostgreSQL
-- stops rebuilding them for every statement (docs/performance-history.md, "Twelfth round";
-- docs/decisions.md, "Performance round 2").
--
-- PostgreSQL keeps a table's CHECK constraints as text and, for every INSERT or UPDATE
-- statement, parses each one back into a tree, plans it and compiles it before it checks
-- a row: 14-17% of PostgreSQL's CPU in the flow (sixth round). A domain's constraint is
-- parsed and planned once per connection (the type cache) and checked only where the
-- statement writes a value of the domain: an UPDATE checks the columns it sets, where a
-- table checks all of its constraints. Every writer is held to the same rules as before,
-- with the same SQLSTATE (23514, check_violation) naming the domain's constraint.
--
-- Left as table constraints, on purpose:
-- * those over several columns, which a domain cannot express;
-- * those over jsonb: a client that does not know a domain's type (pgx, unless it loads
--   it; so also the previous release of this server during a rolling deploy) sends a
--   []byte parameter of an unknown type as bytea text ('\x7b…'), which jsonb refuses. A
--   text or number parameter of an unknown type is sent as its text, which the domain's
--   input reads as its base type's, so this server's release before this migration runs
--   unchanged against it;
-- * the ids' (they are the keys other tables reference);
-- * checkout_sessions.state and vault_tokens.card_fingerprint: partial indexes name them,
--   and changing their type would rebuild those indexes, reading the whole table under
--   the lock below.
--
-- How it avoids holding the tables: each domain is created without its constraint, so
-- that changing a column to it is binary-compatible (PostgreSQL rewrites no table and
-- rebuilds no index: TestChecksAsDomainsRewriteNothing); the table constraints are
-- dropped and the domains' added NOT VALID. The ALTER TABLEs take their ACCESS EXCLUSIVE
-- locks for as long as a catalog change takes, not a table scan:
-- * NOT VALID means PostgreSQL did not read the rows to prove them. They were proven by
--   the table constraint each domain replaces, valid until it is dropped in this same
--   transaction, and every value written from here on is checked. `ALTER DOMAIN ...
--   VALIDATE CONSTRAINT` would prove them again, holding writes back for its scan
--   (docs/operations.md, "Running N instances").
-- * A table constraint over several columns, one of which changes type, would be
--   rebuilt and checked against every row by the ALTER TABLE, under its lock. Those four
--   are dropped and added back NOT VALID, under their names, in the same ALTER TABLE;
--   migration 00024 validates them without blocking writes.
-- * An ACCESS EXCLUSIVE lock waits for every transaction already open on its table,
--   and every request that comes after waits behind it. lock_timeout bounds that wait:
--   behind a transaction longer than 5 s (an analyst's open psql session, say), the
--   migration fails whole, the schema stays at 22, the requests go on, and `migrate up`
--   or the next start tries again (TestChecksAsDomainsGiveWayToALongTransaction). The
--   server's own transactions last milliseconds.
-- +goose Up
SET LOCAL lock_timeout = '5s';

CREATE DOMAIN currency_code AS text;
CREATE DOMAIN directory_server AS text;
CREATE DOMAIN session_cancel_reason AS text;
CREATE DOMAIN locale_tag AS text;
CREATE DOMAIN time_zone_name AS text;
CREATE DOMAIN idempotency_key AS text;
CREATE DOMAIN idempotency_key_state AS text;
CREATE DOMAIN recorded_status AS integer;
CREATE DOMAIN card_exp_month AS smallint;
CREATE DOMAIN card_exp_year AS smallint;
CREATE DOMAIN card_funding_type AS text;
CREATE DOMAIN card_last4 AS text;
CREATE DOMAIN card_number_type AS text;
CREATE DOMAIN merchant_identifier AS text;
CREATE DOMAIN allowance_amount AS bigint;
CREATE DOMAIN minor_units AS bigint;
CREATE DOMAIN eci_indicator AS text;
CREATE DOMAIN authentication_outcome AS text;
CREATE DOMAIN authentication_transaction_id AS text;
CREATE DOMAIN authentication_version AS text;
CREATE DOMAIN order_payment_method AS text;
CREATE DOMAIN order_status AS text;
CREATE DOMAIN line_position AS integer;
CREATE DOMAIN line_quantity AS integer;
CREATE DOMAIN quantity_left AS integer;

-- In one ALTER TABLE the drops run first, then the type changes, then the additions.
ALTER TABLE checkout_sessions
    DROP CONSTRAINT checkout_sessions_currency_check,
    DROP CONSTRAINT checkout_sessions_authentication_directory_server_check,
    DROP CONSTRAINT checkout_sessions_cancel_reason_check,
    DROP CONSTRAINT checkout_sessions_locale_check,
    DROP CONSTRAINT checkout_sessions_timezone_check,
    DROP CONSTRAINT checkout_sessions_cancel_reason_state,
    ALTER currency TYPE currency_code,
    ALTER authentication_directory_server TYPE directory_server,
    ALTER cancel_reason TYPE session_cancel_reason,
    ALTER locale TYPE locale_tag,
    ALTER timezone TYPE time_zone_name,
    ADD CONSTRAINT checkout_sessions_cancel_reason_state
        CHECK ((state = 'canceled') = (cancel_reason IS NOT NULL)) NOT VALID;

ALTER TABLE idempotency_keys
    DROP CONSTRAINT idempotency_keys_key_check,
    DROP CONSTRAINT idempotency_keys_state_check,
    DROP CONSTRAINT idempotency_keys_response_status_check,
    DROP CONSTRAINT idempotency_keys_check,
    ALTER key TYPE idempotency_key,
    ALTER state TYPE idempotency_key_state,
    ALTER response_status TYPE recorded_status,
    ADD CONSTRAINT idempotency_keys_check CHECK ((state = 'completed') =
        (response_status IS NOT NULL AND response_body IS NOT NULL AND completed_at IS NOT NULL)) NOT VALID;

ALTER TABLE vault_tokens
    DROP CONSTRAINT vault_tokens_currency_check,
    DROP CONSTRAINT vault_tokens_authentication_directory_server_check,
    DROP CONSTRAINT vault_tokens_card_exp_month_check,
    DROP CONSTRAINT vault_tokens_card_exp_year_check,
    DROP CONSTRAINT vault_tokens_card_funding_type_check,
    DROP CONSTRAINT vault_tokens_card_last4_check,
    DROP CONSTRAINT vault_tokens_card_number_type_check,
    DROP CONSTRAINT vault_tokens_merchant_id_check,
    DROP CONSTRAINT vault_tokens_max_amount_check,
    ALTER currency TYPE currency_code,
    ALTER authentication_directory_server TYPE directory_server,
    ALTER card_exp_month TYPE card_exp_month,
    ALTER card_exp_year TYPE card_exp_year,
    ALTER card_funding_type TYPE card_funding_type,
    ALTER card_last4 TYPE card_last4,
    ALTER card_number_type TYPE card_number_type,
    ALTER merchant_id TYPE merchant_identifier,
    ALTER max_amount TYPE allowance_amount;

ALTER TABLE orders
    DROP CONSTRAINT orders_currency_check,
    DROP CONSTRAINT orders_amount_check,
    DROP CONSTRAINT orders_payment_method_check,
    DROP CONSTRAINT orders_status_check,
    DROP CONSTRAINT orders_authentication_eci_check,
    DROP CONSTRAINT orders_authentication_outcome_check,
    DROP CONSTRAINT orders_authentication_transaction_id_check,
    DROP CONSTRAINT orders_authentication_version_check,
    DROP CONSTRAINT orders_authentication_details,
    ALTER currency TYPE currency_code,
    ALTER amount TYPE minor_units,
    ALTER payment_method TYPE order_payment_method,
    ALTER status TYPE order_status,
    ALTER authentication_eci TYPE eci_indicator,
    ALTER authentication_outcome TYPE authentication_outcome,
    ALTER authentication_transaction_id TYPE authentication_transaction_id,
    ALTER authentication_version TYPE authentication_version,
    ADD CONSTRAINT orders_authentication_details
        CHECK ((authentication_outcome IS NULL) = (authentication_eci IS NULL)) NOT VALID;

ALTER TABLE line_items
    DROP CONSTRAINT line_items_position_check,
    DROP CONSTRAINT line_items_quantity_check,
    DROP CONSTRAINT line_items_unit_amount_check,
    ALTER position TYPE line_position,
    ALTER quantity TYPE line_quantity,
    ALTER unit_amount TYPE minor_units;

ALTER TABLE order_lines
    DROP CONSTRAINT order_lines_quantity_current_check,
    DROP CONSTRAINT order_lines_subtotal_check,
    DROP CONSTRAINT order_lines_tax_check,
    DROP CONSTRAINT order_lines_check,
    ALTER quantity_current TYPE quantity_left,
    ALTER subtotal TYPE minor_units,
    ALTER tax TYPE minor_units,
    ADD CONSTRAINT order_lines_check CHECK ((subtotal IS NULL) = (tax IS NULL)) NOT VALID;

ALTER TABLE order_amounts
    DROP CONSTRAINT order_amounts_subtotal_check,
    DROP CONSTRAINT order_amounts_discount_check,
    DROP CONSTRAINT order_amounts_fulfillment_check,
    DROP CONSTRAINT order_amounts_tax_check,
    ALTER subtotal TYPE minor_units,
    ALTER discount TYPE minor_units,
    ALTER fulfillment TYPE minor_units,
    ALTER tax TYPE minor_units;

-- The rules, word for word those of the table constraints above (NULL passes, as it
-- did there).
ALTER DOMAIN currency_code ADD CONSTRAINT currency_code_check CHECK (VALUE ~ '^[a-z]{3}$') NOT VALID;
ALTER DOMAIN directory_server ADD CONSTRAINT directory_server_check
    CHECK (VALUE IN ('visa', 'mastercard', 'american_express')) NOT VALID;
ALTER DOMAIN session_cancel_reason ADD CONSTRAINT session_cancel_reason_check
    CHECK (VALUE IN ('agent', 'expired')) NOT VALID;
ALTER DOMAIN locale_tag ADD CONSTRAINT locale_tag_check CHECK (length(VALUE) <= 64) NOT VALID;
ALTER DOMAIN time_zone_name ADD CONSTRAINT time_zone_name_check CHECK (length(VALUE) <= 64) NOT VALID;
ALTER DOMAIN idempotency_key ADD CONSTRAINT idempotency_key_check
    CHECK (length(VALUE) BETWEEN 1 AND 255) NOT VALID;
ALTER DOMAIN idempotency_key_state ADD CONSTRAINT idempotency_key_state_check
    CHECK (VALUE IN ('in_flight', 'completed')) NOT VALID;
ALTER DOMAIN recorded_status ADD CONSTRAINT recorded_status_check CHECK (VALUE BETWEEN 200 AND 499) NOT VALID;
ALTER DOMAIN card_exp_month ADD CONSTRAINT card_exp_month_check CHECK (VALUE BETWEEN 1 AND 12) NOT VALID;
ALTER DOMAIN card_exp_year ADD CONSTRAINT card_exp_year_check CHECK (VALUE BETWEEN 2000 AND 2200) NOT VALID;
ALTER DOMAIN card_funding_type ADD CONSTRAINT card_funding_type_check
    CHECK (VALUE IN ('credit', 'debit', 'prepaid')) NOT VALID;
ALTER DOMAIN card_last4 ADD CONSTRAINT card_last4_check CHECK (VALUE ~ '^[0-9]{4}$') NOT VALID;
ALTER DOMAIN card_number_type ADD CONSTRAINT card_number_type_check
    CHECK (VALUE IN ('fpan', 'network_token')) NOT VALID;
ALTER DOMAIN merchant_identifier ADD CONSTRAINT merchant_identifier_check
    CHECK (length(VALUE) BETWEEN 1 AND 256) NOT VALID;
ALTER DOMAIN allowance_amount ADD CONSTRAINT allowance_amount_check CHECK (VALUE > 0) NOT VALID;
ALTER DOMAIN minor_units ADD CONSTRAINT minor_units_check CHECK (VALUE >= 0) NOT VALID;
ALTER DOMAIN eci_indicator ADD CONSTRAINT eci_indicator_check
    CHECK (VALUE IN ('01', '02', '05', '06', '07')) NOT VALID;
ALTER DOMAIN authentication_outcome ADD CONSTRAINT authentication_outcome_check
    CHECK (VALUE IN ('authenticated', 'attempt_acknowledged', 'informational')) NOT VALID;
ALTER DOMAIN authentication_transaction_id ADD CONSTRAINT authentication_transaction_id_check
    CHECK (length(VALUE) <= 256) NOT VALID;
ALTER DOMAIN authentication_version ADD CONSTRAINT authentication_version_check
    CHECK (length(VALUE) <= 16) NOT VALID;
ALTER DOMAIN order_payment_method ADD CONSTRAINT order_payment_method_check
    CHECK (VALUE IN ('vault_token', 'psp_token')) NOT VALID;
ALTER DOMAIN order_status ADD CONSTRAINT order_status_check
    CHECK (VALUE IN ('created', 'manual_review', 'confirmed', 'processing', 'canceled', 'shipped', 'fulfilled')) NOT VALID;
ALTER DOMAIN line_position ADD CONSTRAINT line_position_check CHECK (VALUE >= 0) NOT VALID;
ALTER DOMAIN line_quantity ADD CONSTRAINT line_quantity_check CHECK (VALUE BETWEEN 1 AND 10000) NOT VALID;
ALTER DOMAIN quantity_left ADD CONSTRAINT quantity_left_check CHECK (VALUE >= 0) NOT VALID;

-- +goose Down
-- Back to the base types (no rewrite either way), then the table constraints under
-- their old names; adding them reads each table once. The locks wait as long as Up's.
SET LOCAL lock_timeout = '5s';

ALTER TABLE order_amounts
    ALTER subtotal TYPE bigint, ALTER discount TYPE bigint, ALTER fulfillment TYPE bigint, ALTER tax TYPE bigint,
    ADD CONSTRAINT order_amounts_subtotal_check CHECK (subtotal >= 0),
    ADD CONSTRAINT order_amounts_discount_check CHECK (discount >= 0),
    ADD CONSTRAINT order_amounts_fulfillment_check CHECK (fulfillment >= 0),
    ADD CONSTRAINT order_amounts_tax_check CHECK (tax >= 0);

ALTER TABLE order_lines
    ALTER quantity_current TYPE integer, ALTER subtotal TYPE bigint, ALTER tax TYPE bigint,
    ADD CONSTRAINT order_lines_quantity_current_check CHECK (quantity_current >= 0),
    ADD CONSTRAINT order_lines_subtotal_check CHECK (subtotal >= 0),
    ADD CONSTRAINT order_lines_tax_check CHECK (tax >= 0);

ALTER TABLE line_items
    ALTER position TYPE integer, ALTER quantity TYPE integer, ALTER unit_amount TYPE bigint,
    ADD CONSTRAINT line_items_position_check CHECK (position >= 0),
    ADD CONSTRAINT line_items_quantity_check CHECK (quantity BETWEEN 1 AND 10000),
    ADD CONSTRAINT line_items_unit_amount_check CHECK (unit_amount >= 0);

ALTER TABLE orders
    ALTER currency TYPE text, ALTER amount TYPE bigint, ALTER payment_method TYPE text, ALTER status TYPE text,
    ALTER authentication_eci TYPE text, ALTER authentication_outcome TYPE text,
    ALTER authentication_transaction_id TYPE text, ALTER authentication_version TYPE text,
    ADD CONSTRAINT orders_currency_check CHECK (currency ~ '^[a-z]{3}$'),
    ADD CONSTRAINT orders_amount_check CHECK (amount >= 0),
    ADD CONSTRAINT orders_payment_method_check CHECK (payment_method IN ('vault_token', 'psp_token')),
    ADD CONSTRAINT orders_status_check
        CHECK (status IN ('created', 'manual_review', 'confirmed', 'processing', 'canceled', 'shipped', 'fulfilled')),
    ADD CONSTRAINT orders_authentication_eci_check CHECK (authentication_eci IN ('01', '02', '05', '06', '07')),
    ADD CONSTRAINT orders_authentication_outcome_check
        CHECK (authentication_outcome IN ('authenticated', 'attempt_acknowledged', 'informational')),
    ADD CONSTRAINT orders_authentication_transaction_id_check CHECK (length(authentication_transaction_id) <= 256),
    ADD CONSTRAINT orders_authentication_version_check CHECK (length(authentication_version) <= 16);

ALTER TABLE vault_tokens
    ALTER currency TYPE text, ALTER authentication_directory_server TYPE text,
    ALTER card_exp_month TYPE smallint, ALTER card_exp_year TYPE smallint,
    ALTER card_funding_type TYPE text, ALTER card_last4 TYPE text, ALTER card_number_type TYPE text,
    ALTER merchant_id TYPE text, ALTER max_amount TYPE bigint,
    ADD CONSTRAINT vault_tokens_currency_check CHECK (currency ~ '^[a-z]{3}$'),
    ADD CONSTRAINT vault_tokens_authentication_directory_server_check
        CHECK (authentication_directory_server IN ('visa', 'mastercard', 'american_express')),
    ADD CONSTRAINT vault_tokens_card_exp_month_check CHECK (card_exp_month BETWEEN 1 AND 12),
    ADD CONSTRAINT vault_tokens_card_exp_year_check CHECK (card_exp_year BETWEEN 2000 AND 2200),
    ADD CONSTRAINT vault_tokens_card_funding_type_check CHECK (card_funding_type IN ('credit', 'debit', 'prepaid')),
    ADD CONSTRAINT vault_tokens_card_last4_check CHECK (card_last4 ~ '^[0-9]{4}$'),
    ADD CONSTRAINT vault_tokens_card_number_type_check CHECK (card_number_type IN ('fpan', 'network_token')),
    ADD CONSTRAINT vault_tokens_merchant_id_check CHECK (length(merchant_id) BETWEEN 1 AND 256),
    ADD CONSTRAINT vault_tokens_max_amount_check CHECK (max_amount > 0);

ALTER TABLE idempotency_keys
    ALTER key TYPE text, ALTER state TYPE text, ALTER response_status TYPE integer,
    ADD CONSTRAINT idempotency_keys_key_check CHECK (length(key) BETWEEN 1 AND 255),
    ADD CONSTRAINT idempotency_keys_state_check CHECK (state IN ('in_flight', 'completed')),
    ADD CONSTRAINT idempotency_keys_response_status_check CHECK (response_status BETWEEN 200 AND 499);

ALTER TABLE checkout_sessions
    ALTER currency TYPE text, ALTER authentication_directory_server TYPE text, ALTER cancel_reason TYPE text,
    ALTER locale TYPE text, ALTER timezone TYPE text,
    ADD CONSTRAINT checkout_sessions_currency_check CHECK (currency ~ '^[a-z]{3}$'),
    ADD CONSTRAINT checkout_sessions_authentication_directory_server_check
        CHECK (authentication_directory_server IN ('visa', 'mastercard', 'american_express')),
    ADD CONSTRAINT checkout_sessions_cancel_reason_check CHECK (cancel_reason IN ('agent', 'expired')),
    ADD CONSTRAINT checkout_sessions_locale_check CHECK (length(locale) <= 64),
    ADD CONSTRAINT checkout_sessions_timezone_check CHECK (length(timezone) <= 64);

DROP DOMAIN currency_code, directory_server, session_cancel_reason, locale_tag, time_zone_name,
    idempotency_key, idempotency_key_state, recorded_status, card_exp_month, card_exp_year,
    card_funding_type, card_last4, card_number_type, merchant_identifier, allowance_amount,
    minor_units, eci_indicator, authentication_outcome, authentication_transaction_id,
    authentication_version, order_payment_method, order_status, line_position, line_quantity,
    quantity_left;
