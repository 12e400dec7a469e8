-- name: InsertVaultToken :exec
-- Its json parameters are cast, as PostgreSQL would type them anyway, so that they stay
-- json where their columns are domains, or become ones (docs/decisions.md, "Performance
-- round 2").
INSERT INTO vault_tokens (
    id, owner, checkout_session_id, merchant_id, max_amount, currency, expires_at,
    card_brand, card_funding_type, card_last4, card_exp_month, card_exp_year, card_number_type,
    card_fingerprint, card_virtual, card_wallet_type, billing_address, risk_signals, manual_review,
    metadata, created_at, authentication_directory_server
) VALUES (
    @id, @owner, @checkout_session_id, @merchant_id, @max_amount, @currency, @expires_at,
    @card_brand, @card_funding_type, @card_last4, sqlc.narg(card_exp_month), sqlc.narg(card_exp_year), @card_number_type,
    sqlc.narg(card_fingerprint), @card_virtual, sqlc.narg(card_wallet_type), @billing_address::jsonb, @risk_signals::jsonb, @manual_review,
    @metadata::jsonb, @created_at, sqlc.narg(authentication_directory_server)
);

-- name: GetVaultTokenForUpdate :one
-- Locked after the session row (always session first, then token), inside the
-- completion transaction. For "one token pays at most once" this lock is redundant: a
-- token pays only the session it is bound to, whose FOR UPDATE serialises its
-- completions, MarkVaultTokenUsed only marks a token whose used_at IS NULL, and a
-- session has one order (orders.checkout_session_id UNIQUE); those layers are tested by
-- TestVaultTokenPaysOnceWithoutItsRowLock. It is kept so that a concurrent change of the
-- token row (the sweeper deleting an expired token) is waited for and checked before
-- stock is taken: a clean payment_token_not_found instead of an internal error
-- (TestCompleteWaitsForTheVaultTokenLock).
SELECT * FROM vault_tokens WHERE id = @id AND owner = @owner FOR UPDATE;

-- name: MarkVaultTokenUsed :execrows
UPDATE vault_tokens SET used_at = @used_at, order_id = @order_id WHERE id = @id AND used_at IS NULL;

-- name: InsertOrder :exec
-- Its json parameters are cast, as PostgreSQL would type them anyway, so that they stay
-- json where their columns are domains, or become ones (docs/decisions.md, "Performance
-- round 2").
INSERT INTO orders (id, checkout_session_id, status, amount, currency, permalink_url, payment_method, payment_reference, billing_address,
    authentication_outcome, authentication_eci, authentication_version, authentication_transaction_id, order_notes,
    payment_gateway, created_at, updated_at)
VALUES (@id, @checkout_session_id, @status, @amount, @currency, @permalink_url, @payment_method, @payment_reference, @billing_address::jsonb,
    sqlc.narg(authentication_outcome), sqlc.narg(authentication_eci), sqlc.narg(authentication_version),
    sqlc.narg(authentication_transaction_id), sqlc.narg(order_notes), sqlc.narg(payment_gateway), @now, @now);

-- name: ConsumeVaultToken :exec
-- MarkVaultTokenUsed for a pipelined completion, whose COMMIT is sent with it: a token
-- already used fails (SQLSTATE AC411) rather than reporting no row, so the transaction
-- aborts and the COMMIT after it does not apply.
WITH used AS (
    UPDATE vault_tokens SET used_at = @used_at, order_id = @order_id WHERE id = @id AND used_at IS NULL
    RETURNING 1
)
SELECT raise_vault_token_changed() WHERE NOT EXISTS (SELECT 1 FROM used);

-- name: TakeStock :exec
-- The stock of every line in one statement: never below zero; NULL stock is unlimited,
-- and its row is neither written nor locked (migration 00018). The first line short of
-- stock (or without a variant) fails (SQLSTATE AC410, its position in the arrays as the
-- detail), so the transaction aborts. @variant_ids must be sorted (the lock order of
-- variants).
SELECT take_stock(@variant_ids::text[], @quantities::integer[]);

-- name: LockVaultToken :exec
-- GetVaultTokenForUpdate's lock without its row, for a pipelined completion: sent in
-- the round trip of the statement that reads the token (GetSessionView), which then
-- reads it locked.
SELECT 1 FROM vault_tokens WHERE id = @id AND owner = @owner FOR UPDATE;
