-- +goose NO TRANSACTION
-- +goose Up

-- Issue 12 (PostgreSQL CPU per request): two lookups of the one-statement views
-- (GetSessionView, GetCatalogFor) and of the per-part queries had no index to use, so
-- each scanned the whole table on every create, update, completion and GET, at a cost
-- that grows with every order (docs/performance-history.md, "The views' SQL"):
--
-- * the stored marketing decisions of a session's contacts (contact = ANY(...)): the
--   primary key is (channel, contact), which a lookup by contact cannot use;
-- * the discounts an order of the session redeemed (discount_redemptions joined to the
--   session's order by order_id): the primary key is (discount_id, order_id).
--
-- Built CONCURRENTLY (hence no transaction): a plain CREATE INDEX would hold back every
-- completion's writes to these tables while it builds.
CREATE INDEX CONCURRENTLY IF NOT EXISTS marketing_consents_contact_idx ON marketing_consents (contact);
CREATE INDEX CONCURRENTLY IF NOT EXISTS discount_redemptions_order_idx ON discount_redemptions (order_id);

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS discount_redemptions_order_idx;
DROP INDEX CONCURRENTLY IF EXISTS marketing_consents_contact_idx;
