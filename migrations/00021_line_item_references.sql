-- +goose NO TRANSACTION
-- +goose Up

-- Issue 12 (what grows with use): removing a session's lines read every order ever
-- taken (docs/performance-history.md, "Eighth round"). An update that sets a session's items
-- deletes its lines and writes them again (DeleteLineItems), and the retention sweep
-- deletes canceled sessions with their lines (DeleteCanceledSessions, ON DELETE
-- CASCADE). For every row deleted, PostgreSQL checks each foreign key that references
-- it, by looking the row's key up in the referencing table. These referencing columns
-- had no index of their own (order_lines, refund_lines and fulfillment_lines lead
-- their primary keys with the order, refund or fulfilment; order_cancellations with
-- the cancellation's id), so each check read the whole table or index: every line of
-- every order, refund, fulfilment and cancellation for each line removed, and every
-- marketing decision for each session removed.
--
-- The lookups always find nothing (a session with an order is never changed or swept),
-- but PostgreSQL cannot know that. An index each makes them a probe. They cost a
-- completion one index entry (its order lines) and a refund, a fulfilment, a
-- cancellation or a marketing decision one each; the other foreign keys without an
-- index reference rows the server never deletes (orders, variants, fulfillment
-- options: TestEveryForeignKeyTheServerDeletesThroughIsIndexed).
--
-- Built CONCURRENTLY (hence no transaction), as migration 00017's indexes: a plain
-- CREATE INDEX would hold back every completion while it builds.
CREATE INDEX CONCURRENTLY IF NOT EXISTS order_lines_line_item_idx ON order_lines (line_item_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS refund_lines_line_item_idx ON refund_lines (line_item_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS fulfillment_lines_line_item_idx ON fulfillment_lines (line_item_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS order_cancellations_line_item_idx ON order_cancellations (line_item_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS marketing_consents_session_idx ON marketing_consents (checkout_session_id);

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS marketing_consents_session_idx;
DROP INDEX CONCURRENTLY IF EXISTS order_cancellations_line_item_idx;
DROP INDEX CONCURRENTLY IF EXISTS fulfillment_lines_line_item_idx;
DROP INDEX CONCURRENTLY IF EXISTS refund_lines_line_item_idx;
DROP INDEX CONCURRENTLY IF EXISTS order_lines_line_item_idx;
