-- +goose Up

-- Issue 10: marketing consent (MC-RFC), affiliate attribution (AA-RFC) and order notes.

-- The buyer's notes for the order (at most 5000 characters, checked by the domain),
-- kept with the session while it is open and copied to the order at completion.
ALTER TABLE checkout_sessions ADD COLUMN order_notes text;
ALTER TABLE orders ADD COLUMN order_notes text;

-- The latest marketing decision of a contact on a channel: contact is the email address
-- (lower case) for email, the phone number for sms and whatsapp. Consent belongs to the
-- merchant and the buyer, not to the agent platform that carried it, so it is not kept
-- per owner. The session and order that set it are the audit trail of the decision.
CREATE TABLE marketing_consents (
    channel             text NOT NULL,
    contact             text NOT NULL,
    opted_in            boolean NOT NULL,
    checkout_session_id text NOT NULL REFERENCES checkout_sessions (id),
    order_id            text NOT NULL REFERENCES orders (id),
    updated_at          timestamptz NOT NULL,
    PRIMARY KEY (channel, contact)
);

-- Affiliate attribution, write-only (AA-RFC §4.3.4): the first touch given at
-- creation, the last touch at completion (with the order it credits). One of each per
-- session: the first claim stands (§7.6).
CREATE TABLE affiliate_attributions (
    checkout_session_id text NOT NULL REFERENCES checkout_sessions (id) ON DELETE CASCADE,
    touch               text NOT NULL CHECK (touch IN ('first', 'last')),
    order_id            text REFERENCES orders (id),
    provider            text NOT NULL,
    publisher_id        text,
    attribution         jsonb NOT NULL,
    created_at          timestamptz NOT NULL,
    PRIMARY KEY (checkout_session_id, touch),
    CHECK ((touch = 'last') = (order_id IS NOT NULL))
);

-- +goose Down
DROP TABLE affiliate_attributions;
DROP TABLE marketing_consents;
ALTER TABLE orders DROP COLUMN order_notes;
ALTER TABLE checkout_sessions DROP COLUMN order_notes;
