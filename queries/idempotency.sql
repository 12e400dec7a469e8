-- name: ClaimIdempotencyKey :one
-- Claims a key for a new request. Returns nothing when the key is already recorded; the
-- statement commits on its own, so a concurrent request sees the claim at once.
INSERT INTO idempotency_keys (caller, method, path, key, request_hash, claim_id, state, claimed_at)
VALUES (@caller, @method, @path, @key, @request_hash, @claim_id, 'in_flight', @now)
ON CONFLICT DO NOTHING
RETURNING claim_id;

-- name: GetIdempotencyKey :one
SELECT * FROM idempotency_keys
WHERE caller = @caller AND method = @method AND path = @path AND key = @key;

-- name: RecoverIdempotencyKey :execrows
-- Takes over a claim whose request died (claimed before @stale_before and never
-- completed). Only one recoverer wins: the claim_id compare is the lock.
UPDATE idempotency_keys SET claim_id = @new_claim_id, claimed_at = @now
WHERE caller = @caller AND method = @method AND path = @path AND key = @key
  AND state = 'in_flight' AND claim_id = @old_claim_id AND claimed_at < @stale_before;

-- name: CompleteIdempotencyKey :execrows
UPDATE idempotency_keys
SET state = 'completed', response_status = @response_status, response_body = @response_body, completed_at = @now
WHERE caller = @caller AND method = @method AND path = @path AND key = @key
  AND claim_id = @claim_id AND state = 'in_flight';

-- name: ReleaseIdempotencyKey :exec
DELETE FROM idempotency_keys
WHERE caller = @caller AND method = @method AND path = @path AND key = @key
  AND claim_id = @claim_id AND state = 'in_flight';

-- name: DeleteIdempotencyKeysBefore :execrows
DELETE FROM idempotency_keys WHERE created_at < @before;
