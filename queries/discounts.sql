-- name: InsertDiscount :exec
INSERT INTO discounts (id, code, title, percent_bps, amount_off, currency, scope, item_ids, min_subtotal,
    starts_at, ends_at, usage_limit, per_buyer_limit, stackable, priority, created_at, updated_at)
VALUES (@id, sqlc.narg(code), @title, sqlc.narg(percent_bps), sqlc.narg(amount_off), sqlc.narg(currency), @scope,
    @item_ids, @min_subtotal, sqlc.narg(starts_at), sqlc.narg(ends_at), sqlc.narg(usage_limit),
    sqlc.narg(per_buyer_limit), @stackable, @priority, @now, @now);

-- name: ListDiscounts :many
-- The merchant's view, newest first, with how often each was redeemed.
SELECT sqlc.embed(d), (SELECT count(*) FROM discount_redemptions r WHERE r.discount_id = d.id)::integer AS redeemed
FROM discounts d
ORDER BY d.created_at DESC, d.id;

-- name: GetDiscount :one
SELECT sqlc.embed(d), (SELECT count(*) FROM discount_redemptions r WHERE r.discount_id = d.id)::integer AS redeemed
FROM discounts d WHERE d.id = @id;

-- name: DisableDiscount :execrows
UPDATE discounts SET disabled_at = coalesce(disabled_at, @now), updated_at = @now WHERE id = @id;

-- name: ListSessionDiscounts :many
-- What prices a session: the discounts its codes name, in any state (so a disabled or
-- expired code is rejected with its reason), the enabled automatic discounts, and
-- those the session's order used (so a completed session shows what it was paid with).
-- redeemed counts all orders, buyer_redeemed those of @buyer_email, each with the
-- redemptions reserved by other sessions' payment attempts still in flight (pending or
-- in doubt), which become redemptions when their order is written. A session's own
-- reservation does not count against it: while its charge is in flight it shows the
-- discounts it is paying with.
--
-- Pricing only compares a count with its limit, so a count is read only where it can
-- reach one, and no further: redeemed is 0 for a discount without a usage limit and
-- stops at the limit (ORDER BY order_id keeps the planner on the primary key, which
-- the limit then cuts short, where a sequential scan would read the whole table);
-- buyer_redeemed is 0 without a per-buyer limit or a buyer. The attempts in flight are
-- counted from the open ones (payment_attempts_open_key), each asked whether it holds
-- the discount; OFFSET 0 keeps the planner from turning that EXISTS into a join that
-- starts from every attempt ever made with the discount, failed ones included. The
-- discounts are found through their indexes, each part on its own (an OR with the
-- order's part cannot use them, and scanned every discount). A session's view then
-- costs the same whatever the number of codes, of orders and of attempts that used them
-- (docs/PERFORMANCE.md, "Seventh round").
-- GetSessionView and GetCatalogFor read the discounts the same way.
SELECT sqlc.embed(d),
    (CASE WHEN d.usage_limit IS NULL THEN 0 ELSE
        (SELECT count(*) FROM (SELECT FROM discount_redemptions r WHERE r.discount_id = d.id
            ORDER BY r.order_id LIMIT d.usage_limit) r)
        + (SELECT count(*) FROM payment_attempts a
            WHERE a.status IN ('pending', 'in_doubt') AND a.checkout_session_id <> @checkout_session_id::text
              AND EXISTS (SELECT 1 FROM payment_attempt_discounts pd WHERE pd.attempt_id = a.id AND pd.discount_id = d.id OFFSET 0)) END)::integer AS redeemed,
    (CASE WHEN d.per_buyer_limit IS NULL OR @buyer_email::text = '' THEN 0 ELSE
        (SELECT count(*) FROM discount_redemptions r
            WHERE r.discount_id = d.id AND r.buyer_email = @buyer_email::text)
        + (SELECT count(*) FROM payment_attempt_discounts pd JOIN payment_attempts a ON a.id = pd.attempt_id
            WHERE pd.discount_id = d.id AND pd.buyer_email = @buyer_email::text
              AND a.status IN ('pending', 'in_doubt') AND a.checkout_session_id <> @checkout_session_id::text) END)::integer AS buyer_redeemed,
    EXISTS (SELECT 1 FROM discount_redemptions r JOIN orders o ON o.id = r.order_id
        WHERE r.discount_id = d.id AND o.checkout_session_id = @checkout_session_id::text) AS used_by_session
FROM discounts d
WHERE d.id IN (SELECT c.id FROM discounts c WHERE c.code = ANY(@codes::text[])
    UNION ALL SELECT a.id FROM discounts a WHERE a.code IS NULL AND a.disabled_at IS NULL
    UNION ALL SELECT r.discount_id FROM discount_redemptions r JOIN orders o ON o.id = r.order_id
        WHERE o.checkout_session_id = @checkout_session_id::text)
ORDER BY d.id;

-- name: LockDiscounts :many
-- Taken in the completion's transaction, after the session row and before the vault
-- token, on the discounts with a usage limit that the order uses, in id order (so
-- concurrent completions cannot deadlock): the redemptions are then counted and
-- written while no other completion can, and a limit of N redeems exactly N.
SELECT id FROM discounts WHERE id = ANY(@ids::text[]) ORDER BY id FOR UPDATE;

-- name: InsertRedemption :exec
INSERT INTO discount_redemptions (discount_id, order_id, buyer_email, amount, created_at)
VALUES (@discount_id, @order_id, @buyer_email, @amount, @now);

-- name: GetSessionDiscountCodes :one
SELECT codes FROM checkout_session_discounts WHERE checkout_session_id = @checkout_session_id;

-- name: UpsertSessionDiscountCodes :exec
INSERT INTO checkout_session_discounts (checkout_session_id, codes) VALUES (@checkout_session_id, @codes)
ON CONFLICT (checkout_session_id) DO UPDATE SET codes = EXCLUDED.codes;

-- name: UpsertDiscount :exec
-- An import replaces the definition of a discount it names by id; whether it is
-- disabled, and its redemptions, stay.
INSERT INTO discounts (id, code, title, percent_bps, amount_off, currency, scope, item_ids, min_subtotal,
    starts_at, ends_at, usage_limit, per_buyer_limit, stackable, priority, created_at, updated_at)
VALUES (@id, sqlc.narg(code), @title, sqlc.narg(percent_bps), sqlc.narg(amount_off), sqlc.narg(currency), @scope,
    @item_ids, @min_subtotal, sqlc.narg(starts_at), sqlc.narg(ends_at), sqlc.narg(usage_limit),
    sqlc.narg(per_buyer_limit), @stackable, @priority, @now, @now)
ON CONFLICT (id) DO UPDATE SET
    code = EXCLUDED.code, title = EXCLUDED.title, percent_bps = EXCLUDED.percent_bps,
    amount_off = EXCLUDED.amount_off, currency = EXCLUDED.currency, scope = EXCLUDED.scope,
    item_ids = EXCLUDED.item_ids, min_subtotal = EXCLUDED.min_subtotal, starts_at = EXCLUDED.starts_at,
    ends_at = EXCLUDED.ends_at, usage_limit = EXCLUDED.usage_limit, per_buyer_limit = EXCLUDED.per_buyer_limit,
    stackable = EXCLUDED.stackable, priority = EXCLUDED.priority, updated_at = EXCLUDED.updated_at;

-- name: LockCompletionDiscounts :exec
-- LockDiscounts for a completion that reads its session and locks in one round trip,
-- before the quote says which discounts apply: it locks, in id order, every discount
-- with a usage limit that could apply to session @checkout_session_id, locked just
-- before (the ones its codes name, as GetSessionView normalises them, and the enabled
-- automatic ones). The discounts a quote applies are among those.
SELECT d.id FROM discounts d
WHERE (d.usage_limit IS NOT NULL OR d.per_buyer_limit IS NOT NULL)
    AND (d.code = ANY(ARRAY(SELECT upper(btrim(c)) FROM checkout_session_discounts dc, unnest(dc.codes) AS c
            WHERE dc.checkout_session_id = @checkout_session_id))
        OR (d.code IS NULL AND d.disabled_at IS NULL))
ORDER BY d.id
FOR UPDATE OF d;
