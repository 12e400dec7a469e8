-- +goose Up

-- Idempotency-Key records are scoped by API version too (issue 9): the stored response
-- body is in the wire format of the version that produced it, so a key sent under
-- another version must not replay it. The same key under another version is a separate
-- record and a fresh execution, which then meets the domain's own state (a second
-- complete of a completed session is refused by the domain).
--
-- Every row so far was written by 2025-09-29. The default stays, so that an instance
-- still running the previous release during a rolling deploy (it does not name the
-- column, and serves only 2025-09-29) keeps working.
ALTER TABLE idempotency_keys ADD COLUMN api_version text NOT NULL DEFAULT '2025-09-29';
-- The /admin API has no API version: its records have '' (see withIdempotency), so a
-- merchant's retry across this migration still replays.
UPDATE idempotency_keys SET api_version = '' WHERE path LIKE '/admin/%';
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys ADD PRIMARY KEY (caller, method, path, key, api_version);

-- +goose Down
-- Only 2025-09-29 and the unversioned /admin records fit the old key; a '' record with a
-- 2025-09-29 twin (written by an old instance during a rolling deploy) goes too.
DELETE FROM idempotency_keys WHERE api_version NOT IN ('2025-09-29', '');
DELETE FROM idempotency_keys k WHERE k.api_version = '' AND EXISTS (
    SELECT 1 FROM idempotency_keys o
    WHERE o.caller = k.caller AND o.method = k.method AND o.path = k.path AND o.key = k.key
      AND o.api_version = '2025-09-29');
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys DROP COLUMN api_version;
ALTER TABLE idempotency_keys ADD PRIMARY KEY (caller, method, path, key);
