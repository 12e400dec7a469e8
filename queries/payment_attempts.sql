-- name: InsertPaymentAttempt :exec
-- Its json parameters are cast, as PostgreSQL would type them anyway, so that they stay
-- json where their columns are domains, or become ones (docs/decisions.md, "Performance
-- round 2").
INSERT INTO payment_attempts (id, checkout_session_id, owner, number, order_id, gateway, idempotency_key, request_key,
    token, amount, currency, authentication, plan, created_at, attempted_at, updated_at)
VALUES (@id, @checkout_session_id, @owner, @number, @order_id, @gateway, @idempotency_key, sqlc.narg(request_key),
    @token, @amount, @currency, @authentication::jsonb, @plan::jsonb, @now, @now, @now);

-- name: InsertPaymentAttemptDiscount :exec
INSERT INTO payment_attempt_discounts (attempt_id, discount_id, buyer_email) VALUES (@attempt_id, @discount_id, @buyer_email);

-- name: LastPaymentAttemptNumber :one
-- The number of the session's latest attempt (0: none yet), read under the session's
-- row lock.
SELECT coalesce(max(number), 0)::integer FROM payment_attempts WHERE checkout_session_id = @checkout_session_id;

-- name: GetLatestPaymentAttempt :one
-- The session's latest attempt, locked: taken after the session row, always.
SELECT * FROM payment_attempts WHERE checkout_session_id = @checkout_session_id
ORDER BY number DESC LIMIT 1 FOR UPDATE;

-- name: GetPaymentAttempt :one
SELECT * FROM payment_attempts WHERE id = @id;

-- name: LeasePaymentAttempt :execrows
-- Takes a pending attempt for one more PSP call: when it is stale (its last call began
-- before @stale_before), or when the caller is the completion that made it (a retry
-- with its Idempotency-Key, which the idempotency layer lets run only once at a time).
-- A concurrent taker updates no row.
UPDATE payment_attempts SET attempted_at = @now, updated_at = @now, tries = tries + 1
WHERE id = @id AND status = 'pending'
  AND (attempted_at < @stale_before OR request_key = sqlc.narg(request_key)::text);

-- name: ClaimStalePaymentAttempts :many
-- The recovery job: pending attempts whose last PSP call began before @stale_before,
-- leased to this run in one statement (SKIP LOCKED: two instances never take one).
UPDATE payment_attempts SET attempted_at = @now, updated_at = @now, tries = tries + 1
WHERE id IN (
    SELECT p.id FROM payment_attempts p
    WHERE p.status = 'pending' AND p.attempted_at < @stale_before
    ORDER BY p.attempted_at
    LIMIT @max_rows
    FOR UPDATE SKIP LOCKED
)
RETURNING *;

-- name: SettlePaymentAttempt :execrows
-- Ends an open attempt: the authentication it carried goes with it.
UPDATE payment_attempts
SET status = @status, psp_reference = sqlc.narg(psp_reference), last_error = sqlc.narg(last_error),
    authentication = NULL, updated_at = @now
WHERE id = @id AND status IN ('pending', 'in_doubt');

-- name: NotePaymentAttemptError :exec
-- A PSP call that settled nothing (the outcome is still in doubt).
UPDATE payment_attempts SET last_error = @last_error, updated_at = @now WHERE id = @id AND status = 'pending';

-- name: ListPaymentAttempts :many
-- The operator's listing, newest first; @status '' lists every status.
SELECT * FROM payment_attempts
WHERE @status::text = '' OR status = @status::text
ORDER BY created_at DESC, id
LIMIT @max_rows;

-- name: SetSessionState :execrows
-- Moves a session between open and complete_in_progress, under its row lock. Its
-- updated_at stays: a refused charge gives the session back exactly as it was.
UPDATE checkout_sessions SET state = @state WHERE id = @id AND state = @from_state;

-- name: GetOrderPayment :one
SELECT id, currency, payment_method, payment_reference, payment_gateway FROM orders WHERE id = @id;

-- name: SetRefundPending :exec
UPDATE refunds SET status = 'pending', request_key = sqlc.narg(request_key) WHERE id = @id;

-- name: GetPendingRefund :one
-- An order's refund still waiting for the PSP, read under the order's row lock.
SELECT * FROM refunds WHERE order_id = @order_id AND status = 'pending' ORDER BY created_at, id LIMIT 1;

-- name: MarkRefundSucceeded :execrows
UPDATE refunds SET status = 'succeeded', psp_reference = @psp_reference WHERE id = @id AND status = 'pending';

-- name: DeletePendingRefund :exec
-- A refund the PSP refused, with its lines; nothing when another caller settled it
-- first. Both tables in one statement: the foreign key of refund_lines is checked at
-- its end, when neither row is left.
WITH refund AS (
    DELETE FROM refunds WHERE id = @id AND status = 'pending' RETURNING id
)
DELETE FROM refund_lines WHERE refund_id IN (SELECT id FROM refund);

-- name: ListStalePendingRefunds :many
-- The recovery job: refunds still pending since before @stale_before.
SELECT order_id, id FROM refunds WHERE status = 'pending' AND created_at < @stale_before
ORDER BY created_at LIMIT @max_rows;

-- name: MoveSessionState :exec
-- SetSessionState for a pipelined transaction, whose COMMIT is sent with it: a session
-- not in @from_state fails (SQLSTATE AC412) rather than reporting no row, so the
-- transaction aborts and the COMMIT after it does not apply.
WITH moved AS (
    UPDATE checkout_sessions SET state = @state WHERE id = @id AND state = @from_state
    RETURNING 1
)
SELECT raise_session_changed() WHERE NOT EXISTS (SELECT 1 FROM moved);

-- name: SettleOpenPaymentAttempt :exec
-- SettlePaymentAttempt for a pipelined transaction, whose COMMIT is sent with it: an
-- attempt no longer open fails (SQLSTATE AC413) rather than reporting no row, so the
-- transaction aborts and the COMMIT after it does not apply.
WITH settled AS (
    UPDATE payment_attempts
    SET status = @status, psp_reference = sqlc.narg(psp_reference), last_error = sqlc.narg(last_error),
        authentication = NULL, updated_at = @now
    WHERE id = @id AND status IN ('pending', 'in_doubt')
    RETURNING 1
)
SELECT raise_payment_attempt_settled() WHERE NOT EXISTS (SELECT 1 FROM settled);
