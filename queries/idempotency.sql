-- name: ClaimIdempotencyKey :one
-- Claims a key for a new request (inserted = true), or returns the key's record when it
-- exists (inserted = false), in one round trip: a replay costs a single statement. The
-- statement commits on its own, so a concurrent request sees the claim at once. No row
-- comes back when the key was recorded by a transaction that committed after this
-- statement's snapshot; the caller tries again. The record is looked up first and the
-- insert is tried only without one: a replay then costs PostgreSQL an index lookup, not
-- an insert that finds its conflict (0.069 ms against 0.099 ms a statement, pgbench, one
-- client; docs/performance-history.md, "Third round").
--
-- With @commit_async, a claim that inserts sets synchronous_commit off for its own
-- transaction, so its commit does not wait for the WAL flush (on a durable database,
-- the disk's latency once more per request for nothing): WAL is flushed in order, and
-- every claim's request ends with a commit that does wait, the work with its record,
-- or the release of the key, and flushes the claim with it; a claim lost in a crash
-- belonged to a request whose work had not committed either. Only for a claim whose
-- transaction holds nothing else: one in the work's transaction must not, or the work
-- would commit without waiting too. CASE decides before set_config runs (it is
-- volatile, never folded ahead).
--
-- Every write of the API looks its key up instead (LookupIdempotencyKey) and inserts
-- it with the response in the work's transaction (a PSP completion or a refund through
-- a PSP: its claim, in its first phase's, InsertIdempotencyClaim); its claim is taken
-- on its own only when that cannot settle it (a key in flight, maybe a dead request's).
WITH existing AS (
    SELECT k.request_hash, k.claim_id, k.state, k.response_status, k.response_body, k.claimed_at
    FROM idempotency_keys k
    WHERE k.caller = @caller AND k.method = @method AND k.path = @path AND k.key = @key AND k.api_version = @api_version
), claimed AS (
    INSERT INTO idempotency_keys (caller, method, path, key, api_version, request_hash, claim_id, state, claimed_at)
    SELECT @caller, @method, @path, @key, @api_version, @request_hash, @claim_id, 'in_flight', @now
    WHERE NOT EXISTS (SELECT 1 FROM existing)
      AND CASE WHEN @commit_async::boolean THEN set_config('synchronous_commit', 'off', true) = 'off' ELSE true END
    ON CONFLICT DO NOTHING
    RETURNING request_hash, claim_id, state, response_status, response_body, claimed_at
)
SELECT true AS inserted, c.request_hash, c.claim_id, c.state, c.response_status, c.response_body, c.claimed_at FROM claimed c
UNION ALL
SELECT false AS inserted, e.request_hash, e.claim_id, e.state, e.response_status, e.response_body, e.claimed_at FROM existing e;

-- name: RecoverIdempotencyKey :execrows
-- Takes over a claim whose request died (claimed before @stale_before and never
-- completed). Only one recoverer wins: the claim_id compare is the lock.
UPDATE idempotency_keys SET claim_id = @new_claim_id, claimed_at = @now
WHERE caller = @caller AND method = @method AND path = @path AND key = @key AND api_version = @api_version
  AND state = 'in_flight' AND claim_id = @old_claim_id AND claimed_at < @stale_before;

-- name: CompleteIdempotencyKey :execrows
-- Records the response of a claimed key: its JSON ('completed'), or with @gzipped the
-- gzip of it as it was sent ('completed_gzip', migration 00028).
UPDATE idempotency_keys
SET state = CASE WHEN @gzipped::boolean THEN 'completed_gzip' ELSE 'completed' END,
    response_status = @response_status, response_body = @response_body, completed_at = @now
WHERE caller = @caller AND method = @method AND path = @path AND key = @key AND api_version = @api_version
  AND claim_id = @claim_id AND state = 'in_flight';

-- name: ReleaseIdempotencyKey :exec
DELETE FROM idempotency_keys
WHERE caller = @caller AND method = @method AND path = @path AND key = @key AND api_version = @api_version
  AND claim_id = @claim_id AND state = 'in_flight';

-- name: DeleteIdempotencyKeysBefore :execrows
-- Retention: at most @max_rows keys created before @before, oldest first, skipping those
-- another instance is deleting (every instance runs the job). The caller repeats it
-- until a batch comes back short, as the sweeper's deletes, so a backlog (a first run,
-- a long outage, a shorter IDEMPOTENCY_TTL) is many short transactions, not one that
-- holds every row it deletes and writes all their WAL at once.
DELETE FROM idempotency_keys k
USING (SELECT o.caller, o.method, o.path, o.key, o.api_version FROM idempotency_keys o
    WHERE o.created_at < @before
    ORDER BY o.created_at
    LIMIT @max_rows
    FOR UPDATE SKIP LOCKED) old
WHERE (k.caller, k.method, k.path, k.key, k.api_version) = (old.caller, old.method, old.path, old.key, old.api_version);

-- name: RecordIdempotentResponse :exec
-- CompleteIdempotencyKey for a pipelined transaction, whose COMMIT is sent with it: when
-- the claim is no longer this request's, it fails (SQLSTATE AC409) rather than
-- reporting no row, so the transaction aborts and the COMMIT after it does not apply.
WITH recorded AS (
    UPDATE idempotency_keys
    SET state = CASE WHEN @gzipped::boolean THEN 'completed_gzip' ELSE 'completed' END,
        response_status = @response_status, response_body = @response_body, completed_at = @now
    WHERE caller = @caller AND method = @method AND path = @path AND key = @key AND api_version = @api_version
      AND claim_id = @claim_id AND state = 'in_flight'
    RETURNING 1
)
SELECT raise_idempotency_claim_lost() WHERE NOT EXISTS (SELECT 1 FROM recorded);

-- name: LookupIdempotencyKey :one
-- The key's record, if it has one: what every write of the API sends where
-- ClaimIdempotencyKey was sent before (docs/performance-history.md, "Twenty-third
-- round" to "Twenty-fifth round"). No row: the key is free, and the work's transaction
-- inserts it with its response (InsertIdempotentResponse; a PSP completion or a refund
-- through a PSP, its claim: InsertIdempotencyClaim), holding it first
-- (HoldIdempotencyKey); a delegation does not hold it, as its duplicate waits on the
-- key's index entry for the delegation's one round trip.
SELECT request_hash, claim_id, state, response_status, response_body, claimed_at
FROM idempotency_keys
WHERE caller = @caller AND method = @method AND path = @path AND key = @key AND api_version = @api_version;

-- name: HoldIdempotencyKey :exec
-- Holds a free key for the rest of the transaction, first in it (hold_idempotency_key,
-- migration 00030): a request that finds it held fails (SQLSTATE AC415 for the same
-- body, AC416 for another), and nothing after it applies. The locks are
-- transaction-level, so they work behind PgBouncer in transaction pooling and end with
-- the transaction, however that ends.
SELECT hold_idempotency_key(
    hashtextextended(@caller::text || E'\n' || @method::text || E'\n' || @path::text || E'\n' || @key::text
        || E'\n' || @api_version::text, 0),
    hashtextextended(@caller::text || E'\n' || @method::text || E'\n' || @path::text || E'\n' || @key::text
        || E'\n' || @api_version::text || E'\n' || @request_hash::text, 0));

-- name: InsertIdempotentResponse :exec
-- Records the response of a request that held its free key (HoldIdempotencyKey), last
-- in the work's transaction: a plain INSERT, so that a key recorded or claimed by
-- another request since the look-up fails it (unique_violation on
-- idempotency_keys_pkey), the transaction aborts, and the request answers with what the
-- key holds instead.
INSERT INTO idempotency_keys (caller, method, path, key, api_version, request_hash, claim_id, state, claimed_at,
    response_status, response_body, completed_at)
VALUES (@caller, @method, @path, @key, @api_version, @request_hash, @claim_id,
    CASE WHEN @gzipped::boolean THEN 'completed_gzip' ELSE 'completed' END, @now,
    @response_status, @response_body, @now);

-- name: InsertIdempotencyClaim :exec
-- Claims a free key in the transaction of a work that must keep it claimed after that
-- transaction commits (the first phase of a PSP completion or of a refund through a
-- PSP, whose call to the PSP and record come later, outside it): the key, held first
-- in the transaction (HoldIdempotencyKey), is inserted in_flight with the work, as
-- ClaimIdempotencyKey's claim, and recorded later under @claim_id
-- (RecordIdempotentResponse). A plain INSERT, as InsertIdempotentResponse: a key
-- recorded or claimed by another request since the look-up fails it.
INSERT INTO idempotency_keys (caller, method, path, key, api_version, request_hash, claim_id, state, claimed_at)
VALUES (@caller, @method, @path, @key, @api_version, @request_hash, @claim_id, 'in_flight', @now);
