-- +goose NO TRANSACTION
-- +goose Up

-- Issue 12 (what grows with use): two statements read whole tables that keep every
-- order ever taken (docs/performance-history.md, "Seventh round").
--
-- * The sweep of expired vault tokens (DeleteExpiredVaultTokens), every
--   SWEEP_INTERVAL on every instance, read every token, where used tokens stay with
--   their orders. This index holds only the unused ones (delegated within a token's
--   lifetime, plus the expired ones the sweep is about to delete), so the sweep reads
--   those. A token leaves it when a completion uses it: that update already writes new
--   index entries (it sets the indexed order_id), so the index costs a delegation one
--   entry and a completion nothing.
-- * The order list (ListOrders: the order API's list and `orders list`), newest first
--   and paginated by (created_at, id), sorted every order for every page. Read
--   backwards through this index from the page's cursor, a page reads its own rows.
--   It costs a completion one index entry.
--
-- Built CONCURRENTLY (hence no transaction), as migration 00017's indexes: a plain
-- CREATE INDEX would hold back every delegation and completion while it builds.
CREATE INDEX CONCURRENTLY IF NOT EXISTS vault_tokens_unused_idx ON vault_tokens (expires_at) WHERE used_at IS NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_created_idx ON orders (created_at, id);

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS orders_created_idx;
DROP INDEX CONCURRENTLY IF EXISTS vault_tokens_unused_idx;
