-- Issue 12 (Performance round 2, twelfth round): migration 00023's change for the one
-- table a PSP completion writes besides those of every flow. A completion paid through
-- a PSP (the Stripe gateway) inserts its payment attempt before the charge and settles
-- it after, and each statement rebuilt the table's 13 CHECK constraints. Its rules of
-- one text or number column become domains, as 00023 did for the other tables, for the
-- reasons and in the way 00023's comment gives: created without their rules (no table
-- rewritten, no index rebuilt), the table constraints dropped, the domains' rules added
-- NOT VALID, each lock waiting 5 s at most.
-- Left on the table: the id's, the two over several columns, plan's (jsonb) and
-- status's, which the partial indexes payment_attempts_open_key and
-- payment_attempts_pending_idx name.
--
-- The amount and the currency take 00023's domains, minor_units and currency_code, which
-- already have their rules. Changing a column to a domain with a rule rewrites the table
-- (PostgreSQL checks every row as it copies it), so those two rules are dropped for the
-- change and added back NOT VALID, as they were, in this transaction: no other
-- transaction sees the domains without them, and the rows of every table were proven by
-- the rules, the table's or the domain's, before (TestChecksAsDomainsRewriteNothing
-- holds the file nodes of payment_attempts too).
-- +goose Up
SET LOCAL lock_timeout = '5s';

CREATE DOMAIN nonempty_text AS text;
CREATE DOMAIN positive_count AS integer;
ALTER DOMAIN minor_units DROP CONSTRAINT minor_units_check;
ALTER DOMAIN currency_code DROP CONSTRAINT currency_code_check;

ALTER TABLE payment_attempts
    DROP CONSTRAINT payment_attempts_number_check,
    DROP CONSTRAINT payment_attempts_order_id_check,
    DROP CONSTRAINT payment_attempts_gateway_check,
    DROP CONSTRAINT payment_attempts_idempotency_key_check,
    DROP CONSTRAINT payment_attempts_token_check,
    DROP CONSTRAINT payment_attempts_amount_check,
    DROP CONSTRAINT payment_attempts_currency_check,
    DROP CONSTRAINT payment_attempts_tries_check,
    ALTER number TYPE positive_count,
    ALTER order_id TYPE nonempty_text,
    ALTER gateway TYPE nonempty_text,
    ALTER idempotency_key TYPE nonempty_text,
    ALTER token TYPE nonempty_text,
    ALTER amount TYPE minor_units,
    ALTER currency TYPE currency_code,
    ALTER tries TYPE positive_count;

ALTER DOMAIN minor_units ADD CONSTRAINT minor_units_check CHECK (VALUE >= 0) NOT VALID;
ALTER DOMAIN currency_code ADD CONSTRAINT currency_code_check CHECK (VALUE ~ '^[a-z]{3}$') NOT VALID;
ALTER DOMAIN nonempty_text ADD CONSTRAINT nonempty_text_check CHECK (VALUE <> '') NOT VALID;
ALTER DOMAIN positive_count ADD CONSTRAINT positive_count_check CHECK (VALUE > 0) NOT VALID;

-- +goose Down
SET LOCAL lock_timeout = '5s';

ALTER TABLE payment_attempts
    ALTER number TYPE integer, ALTER order_id TYPE text, ALTER gateway TYPE text,
    ALTER idempotency_key TYPE text, ALTER token TYPE text, ALTER amount TYPE bigint,
    ALTER currency TYPE text, ALTER tries TYPE integer,
    ADD CONSTRAINT payment_attempts_number_check CHECK (number > 0),
    ADD CONSTRAINT payment_attempts_order_id_check CHECK (order_id <> ''),
    ADD CONSTRAINT payment_attempts_gateway_check CHECK (gateway <> ''),
    ADD CONSTRAINT payment_attempts_idempotency_key_check CHECK (idempotency_key <> ''),
    ADD CONSTRAINT payment_attempts_token_check CHECK (token <> ''),
    ADD CONSTRAINT payment_attempts_amount_check CHECK (amount >= 0),
    ADD CONSTRAINT payment_attempts_currency_check CHECK (currency ~ '^[a-z]{3}$'),
    ADD CONSTRAINT payment_attempts_tries_check CHECK (tries > 0);

DROP DOMAIN nonempty_text, positive_count;
