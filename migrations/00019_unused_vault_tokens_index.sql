-- +goose NO TRANSACTION
-- +goose Up

-- Issue 12 (what grows with use): every SWEEP_INTERVAL, on every instance, the sweeper
-- deletes the unused vault tokens past their allowance (DeleteExpiredVaultTokens). No
-- index served it, so it read the whole table, where used tokens stay with their
-- orders: a scan that grew with every order ever taken. The index holds only the
-- unused tokens (those delegated within a token's lifetime, plus the expired ones the
-- sweep is about to delete), so the sweep reads those and no others. A token leaves the
-- index when a completion uses it: that update already writes new index entries (it
-- sets the indexed order_id), so the index costs a delegation one entry and a
-- completion nothing (docs/PERFORMANCE.md, "Seventh round").
--
-- Built CONCURRENTLY (hence no transaction), as migration 00017's indexes: a plain
-- CREATE INDEX would hold back every delegation and completion while it builds.
CREATE INDEX CONCURRENTLY IF NOT EXISTS vault_tokens_unused_idx ON vault_tokens (expires_at) WHERE used_at IS NULL;

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS vault_tokens_unused_idx;
