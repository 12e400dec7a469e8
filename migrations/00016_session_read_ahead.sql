-- +goose Up

-- Issue 12 (round trips): an update reads its session in the round trip that claims
-- its Idempotency-Key, before its transaction, and locks the row in the next round trip
-- only if no transaction changed it in between (LockUnchangedSession compares the row
-- version, xmin, with the one the read returned). When one did, this raises: the
-- transaction aborts, the COMMIT queued behind it does not apply, and the update runs
-- again with its session read under the lock. The SQLSTATE is this server's own
-- (postgres.sessionMovedCode), as those of migrations 00014 and 00015.
-- +goose StatementBegin
CREATE FUNCTION raise_session_moved() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'session changed after it was read' USING ERRCODE = 'AC414';
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION raise_session_moved();
