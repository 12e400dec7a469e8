-- +goose Up

-- Issue 16: completion in phases. A completion paid with a PSP token no longer calls
-- the PSP inside the transaction that locks the session: a short transaction takes the
-- stock and the usage-limited discounts and records a payment attempt, the PSP is
-- called with no lock and no connection held, and a second short transaction writes
-- the order (docs/payments.md, "Completion in phases"). Between the two the session is
-- complete_in_progress: it cannot be updated, canceled or expired.
ALTER TABLE checkout_sessions DROP CONSTRAINT checkout_sessions_state_check;
ALTER TABLE checkout_sessions ADD CONSTRAINT checkout_sessions_state_check
    CHECK (state IN ('open', 'complete_in_progress', 'completed', 'canceled'));

-- One charge of a PSP token, from the transaction that reserved what it pays for to the
-- one that wrote its order (succeeded) or gave the reservation back (failed: the PSP
-- refused; released: the operator gave it up). pending is a charge whose outcome is not
-- known yet: a retry, a stale completion or the recovery job asks the PSP again with
-- the same idempotency_key, which a PSP answers with the first outcome, never a second
-- charge. in_doubt is a pending attempt the PSP could not answer for longer than it
-- keeps idempotency keys: the operator decides, and its stock stays taken.
CREATE TABLE payment_attempts (
    id                   text PRIMARY KEY CHECK (id <> ''),
    -- Only a failed or released attempt can outlive its session's completion: a
    -- canceled session is deleted with them (retention).
    checkout_session_id  text NOT NULL REFERENCES checkout_sessions (id) ON DELETE CASCADE,
    owner                text NOT NULL,
    -- 1 for a session's first attempt; each attempt after a refusal counts on.
    number               integer NOT NULL CHECK (number > 0),
    -- The order the charge pays for, chosen before the charge (the PSP's metadata names
    -- it); the order row exists once the attempt succeeded.
    order_id             text NOT NULL UNIQUE CHECK (order_id <> ''),
    gateway              text NOT NULL CHECK (gateway <> ''),
    -- The PSP's Idempotency-Key: the session id for the first attempt, then
    -- <session id>:<number> (docs/decisions.md).
    idempotency_key      text NOT NULL UNIQUE CHECK (idempotency_key <> ''),
    -- The agent's Idempotency-Key of the completion that made the attempt (NULL: none):
    -- a retry with it resumes the attempt at once, another key waits for it to go stale.
    request_key          text,
    token                text NOT NULL CHECK (token <> ''),
    amount               bigint NOT NULL CHECK (amount >= 0),
    currency             text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    -- The 3-D Secure result the charge carries, kept only while it may be asked again
    -- (pending): the cryptogram must not outlive the authorization.
    authentication       jsonb,
    -- What the order-writing transaction writes: the order as priced when the stock was
    -- taken, the redemptions, and the completion's buyer, notes, consents and attribution.
    plan                 jsonb NOT NULL CHECK (jsonb_typeof(plan) = 'object'),
    status               text NOT NULL DEFAULT 'pending'
                             CHECK (status IN ('pending', 'succeeded', 'failed', 'released', 'in_doubt')),
    psp_reference        text,
    -- The last answer that did not settle the attempt, or why it failed.
    last_error           text,
    tries                integer NOT NULL DEFAULT 1 CHECK (tries > 0),
    created_at           timestamptz NOT NULL,
    -- When a PSP call on the attempt last began: a lease. The attempt is stale, and may
    -- be taken over, once this is older than PAYMENT_ATTEMPT_TIMEOUT.
    attempted_at         timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL,
    UNIQUE (checkout_session_id, number),
    CHECK (status <> 'succeeded' OR psp_reference IS NOT NULL),
    CHECK (status = 'pending' OR authentication IS NULL)
);
-- At most one attempt of a session holds its stock.
CREATE UNIQUE INDEX payment_attempts_open_key ON payment_attempts (checkout_session_id)
    WHERE status IN ('pending', 'in_doubt');
-- The recovery job's scan.
CREATE INDEX payment_attempts_pending_idx ON payment_attempts (attempted_at) WHERE status = 'pending';

-- The usage-limited discounts an open attempt will redeem: counted with the
-- redemptions while the attempt is pending or in_doubt, so that a limit of N still
-- redeems exactly N while charges are in flight.
CREATE TABLE payment_attempt_discounts (
    attempt_id   text NOT NULL REFERENCES payment_attempts (id) ON DELETE CASCADE,
    discount_id  text NOT NULL REFERENCES discounts (id),
    buyer_email  text NOT NULL,
    PRIMARY KEY (attempt_id, discount_id)
);
CREATE INDEX payment_attempt_discounts_discount_idx ON payment_attempt_discounts (discount_id, buyer_email);

-- The gateway that charged an order paid with a PSP token (NULL: a vault token, or an
-- order from before this migration, charged by the mock gateway): its refunds go back
-- through it.
ALTER TABLE orders ADD COLUMN payment_gateway text;

-- A refund through the gateway is recorded pending under the order's lock, sent to the
-- PSP with its id as idempotency key and no lock held, then marked succeeded. request_key
-- is the merchant's Idempotency-Key of the request that made it: a retry with it
-- resumes that refund instead of making another.
ALTER TABLE refunds
    ADD COLUMN status text NOT NULL DEFAULT 'succeeded' CHECK (status IN ('pending', 'succeeded')),
    ADD COLUMN psp_reference text,
    ADD COLUMN request_key text;
CREATE INDEX refunds_pending_idx ON refunds (created_at) WHERE status = 'pending';

-- +goose Down

DROP INDEX refunds_pending_idx;
ALTER TABLE refunds DROP COLUMN request_key, DROP COLUMN psp_reference, DROP COLUMN status;
ALTER TABLE orders DROP COLUMN payment_gateway;
DROP TABLE payment_attempt_discounts;
DROP TABLE payment_attempts;
UPDATE checkout_sessions SET state = 'open' WHERE state = 'complete_in_progress';
ALTER TABLE checkout_sessions DROP CONSTRAINT checkout_sessions_state_check;
ALTER TABLE checkout_sessions ADD CONSTRAINT checkout_sessions_state_check
    CHECK (state IN ('open', 'completed', 'canceled'));
