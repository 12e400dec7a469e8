-- +goose NO TRANSACTION
-- +goose Up

-- Migration 00028 rewrote idempotency_keys_check for the records kept compressed and
-- added it NOT VALID, so that its ALTER TABLE would not read every key under an ACCESS
-- EXCLUSIVE lock. It is validated here, as 00024 did for 00023's: VALIDATE CONSTRAINT
-- takes a SHARE UPDATE EXCLUSIVE lock, which lets reads and writes go on while it reads
-- the table.
ALTER TABLE idempotency_keys VALIDATE CONSTRAINT idempotency_keys_check;

-- +goose Down
-- A validated constraint stays valid: 00028's down adds the previous rule back.
SELECT 1;
