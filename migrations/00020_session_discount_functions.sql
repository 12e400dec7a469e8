-- +goose Up

-- Issue 12: one definition of how a session's discounts are found and counted, for the
-- three statements that read them (GetSessionView, GetCatalogFor, ListSessionDiscounts;
-- docs/performance-history.md, "Seventh round"), which each carried a copy.

-- The discounts that may price session for_session with its codes for_codes: those the
-- codes name, in any state (so a disabled or expired code is rejected with its reason),
-- the enabled automatic ones, and those the session's order used (so a completed
-- session shows what it was paid with). The codes are compared as discounts store
-- theirs (trimmed, upper case), as GetSessionView normalises a session's: the caller
-- passes them as stored or normalised already. Each part is found through its own
-- index: an OR of the three cannot use them, and scanned every discount. A discount may
-- come twice; callers test membership. A set-returning SQL function, so PostgreSQL
-- inlines it into the statement that calls it and plans it there; it would not with a
-- sub-select among its arguments, hence the codes are normalised here.
-- +goose StatementBegin
CREATE FUNCTION session_discount_ids(for_codes text[], for_session text) RETURNS SETOF text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT c.id FROM discounts c WHERE c.code = ANY(ARRAY(SELECT upper(btrim(x)) FROM unnest(for_codes) x))
    UNION ALL SELECT a.id FROM discounts a WHERE a.code IS NULL AND a.disabled_at IS NULL
    UNION ALL SELECT r.discount_id FROM discount_redemptions r JOIN orders o ON o.id = r.order_id
        WHERE o.checkout_session_id = for_session
$$;
-- +goose StatementEnd

-- What pricing session for_session for buyer for_buyer (lower-cased; '' for none) needs
-- to know of the use of discount for_discount, whose limits are for_usage_limit and
-- for_per_buyer_limit:
--
-- * redeemed: its orders, with the redemptions reserved by other sessions' payment
--   attempts still in flight (pending or in doubt), which become redemptions when their
--   order is written;
-- * buyer_redeemed: the same for the buyer;
-- * used_by_session: whether the session's order used it.
--
-- A session's own reservation does not count against it: while its charge is in flight
-- it shows the discounts it is paying with. Pricing only compares a count with its
-- limit, so a count is read only where it can reach one, and no further: redeemed is 0
-- without a usage limit and stops at the limit (ORDER BY order_id keeps the planner on
-- the primary key, which the limit then cuts short, where a sequential scan would read
-- the whole table); buyer_redeemed is 0 without a per-buyer limit or a buyer. The
-- attempts in flight are counted from the open ones (payment_attempts_open_key), each
-- asked whether it holds the discount; OFFSET 0 keeps the planner from turning that
-- EXISTS into a join that starts from every attempt ever made with the discount.
--
-- A set-returning SQL function of one row, called LATERAL for each discount: PostgreSQL
-- inlines it, so the statement is planned as if the expressions were written in it
-- (measured: PL/pgSQL, which plans its statements apart, read a session with three
-- discounts 0.25 ms slower).
-- +goose StatementBegin
CREATE FUNCTION discount_usage(for_discount text, for_usage_limit integer, for_per_buyer_limit integer,
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

-- +goose Down
DROP FUNCTION discount_usage(text, integer, integer, text, text);
DROP FUNCTION session_discount_ids(text[], text);
