-- name: UpsertMarketingConsent :exec
-- A completion's decision replaces the contact's earlier one on that channel.
INSERT INTO marketing_consents (channel, contact, opted_in, checkout_session_id, order_id, updated_at)
VALUES (@channel, @contact, @opted_in, @checkout_session_id, @order_id, @now)
ON CONFLICT (channel, contact) DO UPDATE
SET opted_in = EXCLUDED.opted_in, checkout_session_id = EXCLUDED.checkout_session_id,
    order_id = EXCLUDED.order_id, updated_at = EXCLUDED.updated_at;

-- name: ListMarketingConsents :many
-- The stored decisions of the given contacts, on every channel.
SELECT * FROM marketing_consents WHERE contact = ANY(@contacts::text[]) ORDER BY contact, channel;

-- name: InsertAffiliateAttribution :exec
-- One attribution per session and touch: a later claim for the same touch is ignored
-- (AA-RFC §7.6, the first claim wins) and never blocks the checkout.
-- Its json parameters are cast, as PostgreSQL would type them anyway, so that they stay
-- json where their columns are domains, or become ones (docs/decisions.md, "Performance
-- round 2").
INSERT INTO affiliate_attributions (checkout_session_id, touch, order_id, provider, publisher_id, attribution, created_at)
VALUES (@checkout_session_id, @touch, sqlc.narg(order_id), @provider, sqlc.narg(publisher_id), @attribution::jsonb, @now)
ON CONFLICT (checkout_session_id, touch) DO NOTHING;
