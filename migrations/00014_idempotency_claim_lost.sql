-- +goose Up

-- Issue 12 (round trips): a write and the record of its idempotent response go to the
-- server in one pipeline with the COMMIT, so the record cannot be checked in Go before
-- committing as CompleteIdempotencyKey's row count is. RecordIdempotentResponse calls
-- this instead when the claim is no longer the request's (another request took it over,
-- presuming this one dead): the error aborts the transaction, and the COMMIT queued
-- behind it does not apply. The SQLSTATE is this server's own (postgres.errClaimLost).
-- +goose StatementBegin
CREATE FUNCTION raise_idempotency_claim_lost() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the idempotency claim was taken over by another request' USING ERRCODE = 'AC409';
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION raise_idempotency_claim_lost();
