-- name: InsertSession :exec
-- Its json parameters are cast, as PostgreSQL would type them anyway, so that they stay
-- json where their columns are domains, or become ones (docs/decisions.md, "Performance
-- round 2").
INSERT INTO checkout_sessions (id, owner, currency, buyer, fulfillment_address, fulfillment_contact, fulfillment_option_id,
    locale, timezone, metadata, agent_interventions, order_notes, created_at, updated_at, expires_at)
VALUES (@id, @owner, @currency, @buyer::jsonb, @fulfillment_address::jsonb, @fulfillment_contact::jsonb, @fulfillment_option_id,
    sqlc.narg(locale), sqlc.narg(timezone), @metadata::jsonb, @agent_interventions, sqlc.narg(order_notes), @now, @now, @expires_at);

-- name: GetSession :one
-- A session of another owner is not found, so one platform cannot probe another's ids.
SELECT * FROM checkout_sessions WHERE id = @id AND owner = @owner;

-- name: GetSessionForUpdate :one
-- Taken inside the transaction that writes the session, so concurrent updates serialise.
-- Completion depends on it: without it two completions of one session both pass their
-- checks and both charge a PSP token before one of them loses on the unique order
-- (TestCompleteWaitsForTheSessionLock, TestConcurrentPSPCompletesOfOneSessionChargeOnce).
SELECT * FROM checkout_sessions WHERE id = @id AND owner = @owner FOR UPDATE;

-- name: UpdateSession :exec
-- Its json parameters are cast, as PostgreSQL would type them anyway, so that they stay
-- json where their columns are domains, or become ones (docs/decisions.md, "Performance
-- round 2").
UPDATE checkout_sessions
SET currency = @currency,
    buyer = @buyer::jsonb,
    fulfillment_address = @fulfillment_address::jsonb,
    fulfillment_contact = @fulfillment_contact::jsonb,
    fulfillment_option_id = @fulfillment_option_id,
    locale = sqlc.narg(locale),
    timezone = sqlc.narg(timezone),
    metadata = @metadata::jsonb,
    state = @state,
    payment_error = sqlc.narg(payment_error),
    cancel_reason = sqlc.narg(cancel_reason),
    cancel_intent_trace = @cancel_intent_trace::jsonb,
    order_notes = sqlc.narg(order_notes),
    updated_at = @now,
    expires_at = @expires_at
WHERE id = @id;

-- name: DeleteLineItems :exec
DELETE FROM line_items WHERE checkout_session_id = @checkout_session_id;

-- name: ListLineItems :many
SELECT * FROM line_items WHERE checkout_session_id = @checkout_session_id ORDER BY position;

-- name: SetPaymentError :exec
-- Recorded after a declined payment rolled back; only an open session takes it.
UPDATE checkout_sessions SET payment_error = @payment_error WHERE id = @id AND owner = @owner AND state = 'open';

-- name: LatestSessionTokenAuthentication :one
-- The 3-D Secure directory server of the session's latest unused, unexpired vault token
-- (NULL: that card needs no authentication). No row: the session has no such token.
SELECT authentication_directory_server FROM vault_tokens
WHERE checkout_session_id = @checkout_session_id AND owner = @owner AND used_at IS NULL AND expires_at > @now
ORDER BY created_at DESC, id DESC
LIMIT 1;

-- name: SetSessionAuthentication :exec
-- Recorded after a completion the PSP refused for want of 3-D Secure rolled back; only
-- an open session takes it.
UPDATE checkout_sessions SET authentication_directory_server = @directory_server
WHERE id = @id AND owner = @owner AND state = 'open';

-- name: ExpireSessions :execrows
-- The sweeper: open sessions past their expiry become canceled. Safe on several
-- instances at once: a session is expired by whichever gets its row first.
UPDATE checkout_sessions SET state = 'canceled', cancel_reason = 'expired', updated_at = @now
WHERE id IN (
    SELECT id FROM checkout_sessions
    WHERE state = 'open' AND expires_at <= @now
    ORDER BY expires_at
    LIMIT @max_rows
    FOR UPDATE SKIP LOCKED
);

-- name: ExpireSession :execrows
-- Lazy expiry on access: one session, if it is open and past its expiry.
UPDATE checkout_sessions SET state = 'canceled', cancel_reason = 'expired', updated_at = @now
WHERE id = @id AND owner = @owner AND state = 'open' AND expires_at <= @now;

-- name: DeleteCanceledSessions :execrows
-- Retention: canceled sessions (by the agent or by expiry) unchanged since @before go,
-- with their line items (ON DELETE CASCADE). Completed sessions stay with their orders;
-- the NOT EXISTS is the guard should a canceled session ever be referenced by one.
DELETE FROM checkout_sessions
WHERE id IN (
    SELECT s.id FROM checkout_sessions s
    WHERE s.state = 'canceled' AND s.updated_at < @before
      AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.checkout_session_id = s.id)
    ORDER BY s.updated_at
    LIMIT @max_rows
    FOR UPDATE SKIP LOCKED
);

-- name: LockSession :exec
-- GetSessionForUpdate's lock without its row, for a pipelined transaction: sent in the
-- round trip of the statement that reads the session (GetSessionView), which then
-- reads it locked.
SELECT 1 FROM checkout_sessions WHERE id = @id AND owner = @owner FOR UPDATE;

-- name: LockUnchangedSession :exec
-- LockSession for a session read before the transaction (GetSessionView's row_version,
-- its xmin): the row is locked only if no transaction changed it since that read.
-- Otherwise the statement fails (SQLSTATE AC414), the transaction aborts and the COMMIT
-- after it does not apply. A row changed while this waited for its lock is checked in
-- its new version (READ COMMITTED rechecks the condition), so it fails too.
WITH locked AS (
    SELECT 1 FROM checkout_sessions
    WHERE id = @id AND owner = @owner AND (xmin::text)::bigint = @row_version::bigint
    FOR UPDATE
)
SELECT raise_session_moved() WHERE NOT EXISTS (SELECT 1 FROM locked);

-- name: InsertLineItemRows :exec
-- A session's line items in one statement, which a pipeline can carry (a COPY cannot).
INSERT INTO line_items (id, checkout_session_id, position, variant_id, quantity, unit_amount)
-- The arrays are the lines' columns, one element per line (unnest in the select list
-- zips arrays of one length).
SELECT unnest(@ids::text[]), @checkout_session_id::text, unnest(@positions::integer[]), unnest(@variant_ids::text[]),
    unnest(@quantities::integer[]), unnest(@unit_amounts::bigint[]);
