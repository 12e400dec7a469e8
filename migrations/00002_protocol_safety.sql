-- +goose Up

-- The agent platform (API key identity) that created a session or a vault token. Another
-- platform cannot see or use it. '' is the open server without API_KEYS.
ALTER TABLE checkout_sessions ADD COLUMN owner text NOT NULL DEFAULT '';
ALTER TABLE vault_tokens ADD COLUMN owner text NOT NULL DEFAULT '';

-- Idempotency-Key records, scoped to (caller, method, path, key). A row is claimed
-- (in_flight) before the request runs and completed with the response it gave;
-- 5xx responses are never stored (the claim is deleted so a retry runs again).
CREATE TABLE idempotency_keys (
    caller           text NOT NULL,
    method           text NOT NULL,
    path             text NOT NULL,
    key              text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash     text NOT NULL,
    -- Identifies the execution that holds the claim, so a claim recovered after a
    -- crash is not completed by the request it was taken from.
    claim_id         text NOT NULL,
    state            text NOT NULL CHECK (state IN ('in_flight', 'completed')),
    response_status  integer CHECK (response_status BETWEEN 200 AND 499),
    response_body    bytea,
    claimed_at       timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz,
    PRIMARY KEY (caller, method, path, key),
    CHECK ((state = 'completed') = (response_status IS NOT NULL AND response_body IS NOT NULL AND completed_at IS NOT NULL))
);
CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);

-- +goose Down
DROP TABLE idempotency_keys;
ALTER TABLE vault_tokens DROP COLUMN owner;
ALTER TABLE checkout_sessions DROP COLUMN owner;
