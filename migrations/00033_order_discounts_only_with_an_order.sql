-- +goose Up

-- Issue 12 (PostgreSQL's CPU): two parts of the discounts a session's statements read
-- concern only its order: session_discount_ids' third branch (the discounts the
-- session's order redeemed, so that a completed session shows what it was paid with)
-- and discount_usage's used_by_session. Inlined, each is a join whose nodes PostgreSQL
-- starts at every call, though only a session that is no longer open can have an order
-- (a completion writes it and completes the session in one transaction), and every
-- view of a checkout's flow is of an open session. Without them, such a view costs
-- PostgreSQL 8-11% less; a completed session's, which calls order_discount_ids, 5% more
-- with three discounts (docs/performance-history.md, "Twenty-eighth round").
--
-- Both functions gain a last argument, for_has_order: whether the session may have an
-- order (its state is not open). Without one, neither part is read; with one, the
-- order's discounts come from order_discount_ids, a PL/pgSQL function whose statement is
-- planned once per connection and started only when called. A view of a completed
-- session then calls it once for the selection and once for each discount found.
-- The signatures without the argument stay for the instances of the release before
-- during a rolling upgrade, as wrappers that pass true (their order's discounts always
-- read, as before), so that each function has one definition; a later release drops
-- them.
-- +goose StatementBegin
CREATE FUNCTION order_discount_ids(for_session text) RETURNS text[]
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
    RETURN ARRAY(SELECT r.discount_id FROM discount_redemptions r JOIN orders o ON o.id = r.order_id
        WHERE o.checkout_session_id = for_session);
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION session_discount_ids(for_codes text[], for_session text, for_has_order boolean) RETURNS SETOF text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT c.id FROM discounts c WHERE c.code = ANY(ARRAY(SELECT upper(btrim(x)) FROM unnest(for_codes) x))
    UNION ALL SELECT a.id FROM discounts a WHERE a.code IS NULL AND a.disabled_at IS NULL
    UNION ALL SELECT unnest(CASE WHEN for_has_order THEN order_discount_ids(for_session) END)
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION discount_usage(for_discount text, for_usage_limit integer, for_per_buyer_limit integer,
    for_session text, for_buyer text, for_has_order boolean)
RETURNS TABLE (redeemed integer, buyer_redeemed integer, used_by_session boolean)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT
        (CASE WHEN for_usage_limit IS NULL THEN 0 ELSE
            discount_redeemed(for_discount, for_usage_limit, for_session) END)::integer,
        (CASE WHEN for_per_buyer_limit IS NULL OR for_buyer = '' THEN 0 ELSE
            discount_buyer_redeemed(for_discount, for_buyer, for_session) END)::integer,
        CASE WHEN for_has_order THEN for_discount = ANY(order_discount_ids(for_session)) ELSE false END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION session_discount_ids(for_codes text[], for_session text) RETURNS SETOF text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT i FROM session_discount_ids(for_codes, for_session, true) i
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION discount_usage(for_discount text, for_usage_limit integer, for_per_buyer_limit integer,
    for_session text, for_buyer text)
RETURNS TABLE (redeemed integer, buyer_redeemed integer, used_by_session boolean)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT * FROM discount_usage(for_discount, for_usage_limit, for_per_buyer_limit, for_session, for_buyer, true)
$$;
-- +goose StatementEnd

-- +goose Down
-- The signatures without the argument as 00020 and 00032 left them, then the new ones
-- dropped.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION session_discount_ids(for_codes text[], for_session text) RETURNS SETOF text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT c.id FROM discounts c WHERE c.code = ANY(ARRAY(SELECT upper(btrim(x)) FROM unnest(for_codes) x))
    UNION ALL SELECT a.id FROM discounts a WHERE a.code IS NULL AND a.disabled_at IS NULL
    UNION ALL SELECT r.discount_id FROM discount_redemptions r JOIN orders o ON o.id = r.order_id
        WHERE o.checkout_session_id = for_session
$$;
-- +goose StatementEnd

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
DROP FUNCTION discount_usage(text, integer, integer, text, text, boolean);
DROP FUNCTION session_discount_ids(text[], text, boolean);
DROP FUNCTION order_discount_ids(text);
