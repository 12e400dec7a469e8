-- +goose Up

-- Issue 12 (PostgreSQL's CPU): discount_usage (migration 00020) counted with count(*),
-- and each count is an aggregate's node in the plan of every statement that inlines the
-- function: GetSessionView, GetCatalogFor and ListSessionDiscounts. PostgreSQL starts
-- every node of a cached plan at every call, so those nodes cost a view their start
-- even in a session with no discount, where they never run. Three of the four counts are
-- now the cardinality of an ARRAY sublink, which has no aggregate's node; the count is
-- the same. They count what stays small: attempts in flight, and one buyer's
-- redemptions. The usage-limit count keeps count(*): it reads up to the discount's
-- usage limit, and an array would hold every row it read. With the views' sets built
-- as arrays too (queries/views.sql), a session's view costs PostgreSQL 10-15% less CPU,
-- with or without discounts (docs/performance-history.md, "Twenty-sixth round").
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION discount_usage(for_discount text, for_usage_limit integer, for_per_buyer_limit integer,
    for_session text, for_buyer text)
RETURNS TABLE (redeemed integer, buyer_redeemed integer, used_by_session boolean)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT
        (CASE WHEN for_usage_limit IS NULL THEN 0 ELSE
            (SELECT count(*) FROM (SELECT FROM discount_redemptions r WHERE r.discount_id = for_discount
                ORDER BY r.order_id LIMIT for_usage_limit) used)
            + cardinality(ARRAY(SELECT 1 FROM payment_attempts a
                WHERE a.status IN ('pending', 'in_doubt') AND a.checkout_session_id <> for_session
                  AND EXISTS (SELECT 1 FROM payment_attempt_discounts pd
                      WHERE pd.attempt_id = a.id AND pd.discount_id = for_discount OFFSET 0))) END)::integer,
        (CASE WHEN for_per_buyer_limit IS NULL OR for_buyer = '' THEN 0 ELSE
            cardinality(ARRAY(SELECT 1 FROM discount_redemptions r
                WHERE r.discount_id = for_discount AND r.buyer_email = for_buyer))
            + cardinality(ARRAY(SELECT 1 FROM payment_attempt_discounts pd JOIN payment_attempts a ON a.id = pd.attempt_id
                WHERE pd.discount_id = for_discount AND pd.buyer_email = for_buyer
                  AND a.status IN ('pending', 'in_doubt') AND a.checkout_session_id <> for_session)) END)::integer,
        EXISTS (SELECT 1 FROM discount_redemptions r JOIN orders o ON o.id = r.order_id
            WHERE r.discount_id = for_discount AND o.checkout_session_id = for_session)
$$;
-- +goose StatementEnd

-- +goose Down
-- migration 00020's definition.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION discount_usage(for_discount text, for_usage_limit integer, for_per_buyer_limit integer,
    for_session text, for_buyer text)
RETURNS TABLE (redeemed integer, buyer_redeemed integer, used_by_session boolean)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT
        (CASE WHEN for_usage_limit IS NULL THEN 0 ELSE
            (SELECT count(*) FROM (SELECT FROM discount_redemptions r WHERE r.discount_id = for_discount
                ORDER BY r.order_id LIMIT for_usage_limit) used)
            + (SELECT count(*) FROM payment_attempts a
                WHERE a.status IN ('pending', 'in_doubt') AND a.checkout_session_id <> for_session
                  AND EXISTS (SELECT 1 FROM payment_attempt_discounts pd
                      WHERE pd.attempt_id = a.id AND pd.discount_id = for_discount OFFSET 0)) END)::integer,
        (CASE WHEN for_per_buyer_limit IS NULL OR for_buyer = '' THEN 0 ELSE
            (SELECT count(*) FROM discount_redemptions r
                WHERE r.discount_id = for_discount AND r.buyer_email = for_buyer)
            + (SELECT count(*) FROM payment_attempt_discounts pd JOIN payment_attempts a ON a.id = pd.attempt_id
                WHERE pd.discount_id = for_discount AND pd.buyer_email = for_buyer
                  AND a.status IN ('pending', 'in_doubt') AND a.checkout_session_id <> for_session) END)::integer,
        EXISTS (SELECT 1 FROM discount_redemptions r JOIN orders o ON o.id = r.order_id
            WHERE r.discount_id = for_discount AND o.checkout_session_id = for_session)
$$;
-- +goose StatementEnd
