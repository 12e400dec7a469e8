-- Issue 12 (Performance round 2, sixteenth round): an idempotency record may keep its
-- response as it was sent, gzip-compressed for an agent that accepted gzip, so that a
-- replay to such an agent sends the stored bytes instead of compressing the same body
-- again (docs/performance-history.md, "Sixteenth round"; docs/decisions.md, "Performance round
-- 2").
--
-- Such a record is in a state of its own, 'completed_gzip', rather than 'completed'
-- with a column naming the encoding: the previous release reads only the state, and
-- would replay the compressed bytes as JSON. To that release a key whose state is not
-- 'completed' is in flight, so during a rolling deploy it answers a retry of such a key
-- with 409 idempotency_in_flight and Retry-After, and the retry that reaches a new
-- instance gets the replay. Records in 'completed' keep their JSON and replay as before.
--
-- The domain's rule is widened and the table's rule over several columns is rewritten
-- to hold for both completed states. Both are added NOT VALID, so that no statement
-- here reads the table under its ACCESS EXCLUSIVE lock: every row was proven by the
-- rules they replace, which accept less. Migration 00029 validates the table's rule
-- without blocking writes. lock_timeout bounds the wait for the lock as in 00023.
-- +goose Up
SET LOCAL lock_timeout = '5s';

ALTER DOMAIN idempotency_key_state DROP CONSTRAINT idempotency_key_state_check;
ALTER DOMAIN idempotency_key_state ADD CONSTRAINT idempotency_key_state_check
    CHECK (VALUE IN ('in_flight', 'completed', 'completed_gzip')) NOT VALID;

ALTER TABLE idempotency_keys
    DROP CONSTRAINT idempotency_keys_check,
    ADD CONSTRAINT idempotency_keys_check CHECK ((state <> 'in_flight') =
        (response_status IS NOT NULL AND response_body IS NOT NULL AND completed_at IS NOT NULL)) NOT VALID;

-- +goose Down
-- A compressed response cannot be turned back into JSON in SQL, and the previous
-- release cannot read it: those records are dropped, and a retry of one of their keys
-- runs afresh (a completion's retry is then refused by its completed session).
SET LOCAL lock_timeout = '5s';

DELETE FROM idempotency_keys WHERE state = 'completed_gzip';

ALTER TABLE idempotency_keys
    DROP CONSTRAINT idempotency_keys_check,
    ADD CONSTRAINT idempotency_keys_check CHECK ((state = 'completed') =
        (response_status IS NOT NULL AND response_body IS NOT NULL AND completed_at IS NOT NULL)) NOT VALID;

ALTER DOMAIN idempotency_key_state DROP CONSTRAINT idempotency_key_state_check;
ALTER DOMAIN idempotency_key_state ADD CONSTRAINT idempotency_key_state_check
    CHECK (VALUE IN ('in_flight', 'completed')) NOT VALID;
