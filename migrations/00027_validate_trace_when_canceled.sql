-- +goose NO TRANSACTION
-- +goose Up

-- Migration 00026 dropped checkout_sessions_trace_when_canceled, a rule over two
-- columns one of which it changed to a domain, and added it back NOT VALID, so that its
-- ALTER TABLE would not read every session under an ACCESS EXCLUSIVE lock. It is
-- validated here, as 00024 did for 00023's: VALIDATE CONSTRAINT takes a SHARE UPDATE
-- EXCLUSIVE lock, which lets reads and writes go on while it reads the table.
ALTER TABLE checkout_sessions VALIDATE CONSTRAINT checkout_sessions_trace_when_canceled;

-- +goose Down
-- A validated constraint stays valid: 00026's down changes the column back, which
-- rebuilds the constraint and checks it against every row.
SELECT 1;
