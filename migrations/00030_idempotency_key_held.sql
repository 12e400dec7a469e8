-- +goose Up

-- Issue 12 (PostgreSQL's CPU): a request whose look-up found its Idempotency-Key free
-- holds the key with transaction-level advisory locks, taken first in the work's
-- transaction (HoldIdempotencyKey), and inserts the key with its response last
-- (InsertIdempotentResponse), instead of committing an in_flight claim before the work
-- and updating it after (docs/performance-history.md, "Twenty-second round").
--
-- Two locks, on 64-bit hashes: one of the key with the request's body hash, then one of
-- the key. A request with the same body finds the first held: 409 idempotency_in_flight
-- (AC415). One with another body takes the first and finds the second held: the key's
-- conflict (AC416), as when a claim's row showed another hash. Either error aborts the
-- transaction, so nothing queued behind it applies. Two keys that share a hash only
-- answer each other's duplicates while both run; the key's insert, not the locks, keeps
-- the work from committing twice. The SQLSTATEs are this server's own
-- (postgres.keyHeldCode, postgres.keyConflictCode).
-- +goose StatementBegin
CREATE FUNCTION hold_idempotency_key(key_lock bigint, body_lock bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT pg_try_advisory_xact_lock(body_lock) THEN
        RAISE EXCEPTION 'the idempotency key is held by another request in flight' USING ERRCODE = 'AC415';
    END IF;
    IF NOT pg_try_advisory_xact_lock(key_lock) THEN
        RAISE EXCEPTION 'the idempotency key is held by a request with another body' USING ERRCODE = 'AC416';
    END IF;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION hold_idempotency_key(bigint, bigint);
