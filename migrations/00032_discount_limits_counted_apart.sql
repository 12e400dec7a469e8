-- +goose Up

-- Issue 12 (PostgreSQL's CPU): discount_usage's two limit counts (migration 00031) are
-- sub-selects inlined into every statement that reads a session's discounts
-- (GetSessionView, GetCatalogFor, ListSessionDiscounts), and PostgreSQL starts every
-- node of a cached plan at every call: about 30 µs of a view's 150, a fifth, in every
-- session, though only a discount with a usage or per-buyer limit ever runs them. The
-- counts now live in two PL/pgSQL functions, which plan their statements once per
-- connection and start them only when called, and discount_usage calls each only for a
-- discount with its limit, as before it read each count only there. A view without
-- discounts, or with discounts without limits, costs PostgreSQL 9-15% less; a view whose
-- session holds a discount with both limits, 5-7% more: two calls, each starting its
-- statement (docs/performance-history.md, "Twenty-eighth round"). Migration 00020
-- measured PL/pgSQL 0.25 ms slower for a session with three discounts: there the whole
-- of discount_usage was PL/pgSQL, called for every discount.
--
-- What each count holds, and why it reads as it does, is migration 00020's comment on
-- discount_usage. The functions are STABLE, so their statements read the snapshot of
-- the statement that calls them, as the inlined sub-selects did.
--
-- The redemptions' count reads its discount and limit through an OFFSET 0 subquery, as
-- GetCatalogFor reads its parameters, so that its plan does not depend on their values.
-- PL/pgSQL's first plans of a statement see them, and on tables not yet analyzed took
-- a limit of 3 for the whole result and sorted every redemption of the discount
-- (TestReadingASessionsDiscountsDoesNotGrowWithCodesOrOrders).
-- +goose StatementBegin
CREATE FUNCTION discount_redeemed(for_discount text, for_usage_limit integer, for_session text)
RETURNS integer
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
    RETURN (SELECT count(*) FROM (SELECT for_discount AS discount_id, for_usage_limit AS usage_limit OFFSET 0) p
            CROSS JOIN LATERAL (SELECT FROM discount_redemptions r WHERE r.discount_id = p.discount_id
                ORDER BY r.order_id LIMIT p.usage_limit) used)
        + cardinality(ARRAY(SELECT 1 FROM payment_attempts a
            WHERE a.status IN ('pending', 'in_doubt') AND a.checkout_session_id <> for_session
              AND EXISTS (SELECT 1 FROM payment_attempt_discounts pd
                  WHERE pd.attempt_id = a.id AND pd.discount_id = for_discount OFFSET 0)));
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION discount_buyer_redeemed(for_discount text, for_buyer text, for_session text)
RETURNS integer
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
    RETURN cardinality(ARRAY(SELECT 1 FROM discount_redemptions r
            WHERE r.discount_id = for_discount AND r.buyer_email = for_buyer))
        + cardinality(ARRAY(SELECT 1 FROM payment_attempt_discounts pd JOIN payment_attempts a ON a.id = pd.attempt_id
            WHERE pd.discount_id = for_discount AND pd.buyer_email = for_buyer
              AND a.status IN ('pending', 'in_doubt') AND a.checkout_session_id <> for_session));
END
$$;
-- +goose StatementEnd

-- Still a set-returning SQL function, inlined into its callers: only used_by_session's
-- EXISTS, which every discount needs, stays a sub-select of theirs.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION discount_usage(for_discount text, for_usage_limit integer, for_per_buyer_limit integer,
    for_session text, for_buyer text)
RETURNS TABLE (redeemed integer, buyer_redeemed integer, used_by_session boolean)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT
        (CASE WHEN for_usage_limit IS NULL THEN 0 ELSE
            discount_redeemed(for_discount, for_usage_limit, for_session) END)::integer,
        (CASE WHEN for_per_buyer_limit IS NULL OR for_buyer = '' THEN 0 ELSE
            discount_buyer_redeemed(for_discount, for_buyer, for_session) END)::integer,
        EXISTS (SELECT 1 FROM discount_redemptions r JOIN orders o ON o.id = r.order_id
            WHERE r.discount_id = for_discount AND o.checkout_session_id = for_session)
$$;
-- +goose StatementEnd

-- +goose Down
-- migration 00031's definition.
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
DROP FUNCTION discount_buyer_redeemed(text, text, text);
DROP FUNCTION discount_redeemed(text, integer, text);
