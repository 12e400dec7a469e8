-- +goose NO TRANSACTION
-- +goose Up

-- Migration 00023 dropped and added back NOT VALID the four table constraints over
-- several columns whose types it changed, so that its ALTER TABLEs would not read every
-- row under an ACCESS EXCLUSIVE lock. Each is validated here in a transaction of its
-- own (hence NO TRANSACTION): VALIDATE CONSTRAINT takes a SHARE UPDATE EXCLUSIVE lock,
-- which lets reads and writes go on while it reads the table.
ALTER TABLE checkout_sessions VALIDATE CONSTRAINT checkout_sessions_cancel_reason_state;
ALTER TABLE idempotency_keys VALIDATE CONSTRAINT idempotency_keys_check;
ALTER TABLE orders VALIDATE CONSTRAINT orders_authentication_details;
ALTER TABLE order_lines VALIDATE CONSTRAINT order_lines_check;

-- +goose Down
-- A validated constraint stays valid: 00023's down drops and adds them back.
SELECT 1;
