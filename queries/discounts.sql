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
-- What prices a session: the discounts that may apply to it (session_discount_ids),
-- each with what pricing needs to know of its use (discount_usage; migration 00020,
-- which says what each count holds, 00032, which counts the limits apart, in
-- PL/pgSQL, and 00035, which reads a limited discount's redemptions from their
-- counter). @has_order says whether the session may have an order (it is no longer
-- open): only then are the discounts its order redeemed read (migration 00033).
-- GetSessionView and GetCatalogFor read the discounts through the same two functions.
-- The ids are an array (= ANY), so each discount is read through the primary key: as
-- a join (IN), the generic plan a prepared statement settles on hashed the ids and read
-- every discount, and with thousands of them its cost crossed jit_above_cost, so every
-- call also compiled it (0.15 s with 20,000 codes; docs/performance-history.md,
-- "Seventh round").
SELECT sqlc.embed(d), u.redeemed::integer AS redeemed, u.buyer_redeemed::integer AS buyer_redeemed,
    u.used_by_session::boolean AS used_by_session
FROM discounts d
CROSS JOIN LATERAL discount_usage(d.id, d.usage_limit, d.per_buyer_limit, @checkout_session_id::text, @buyer_email::text,
    @has_order::boolean) u
WHERE d.id = ANY(ARRAY(SELECT i FROM session_discount_ids(@codes::text[], @checkout_session_id::text, @has_order::boolean) i))
ORDER BY d.id;

-- name: LockDiscounts :exec
-- Taken in the completion's transaction, after the session row and before the vault
-- token, on the discounts with a usage limit that the order uses (@ids), in id order
-- (so concurrent completions cannot deadlock): the redemptions are then counted and
-- written while no other completion can, and a limit of N redeems exactly N. A
-- completion that read its view ahead of its locks (completeReadAhead) defers it to its
-- writes' round trip, once its quote says what it redeems. A limited discount the quote
-- does not apply (used up, or for this buyer) is not locked: the completion writes
-- nothing of it, and CheckDiscountUsageUnchanged, sent next, checks it at its
-- snapshot. So once a promotion is used up, the completions that no longer get it stop
-- queueing on its row.
SELECT FROM discounts WHERE id = ANY(@ids::text[]) ORDER BY id FOR UPDATE;

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

-- name: CheckDiscountUsageUnchanged :exec
-- Checks, in the transaction of a write that priced session @checkout_session_id from
-- a view read before it (read ahead, or kept by the session view cache), that each
-- usage-limited discount the view read (@discount_ids[i]) still stands where the view
-- had it: whether its usage limit is reached (@used_up[i]), and its per-buyer limit
-- for @buyer_email, the email the view counted (@buyer_used_up[i]). Pricing reads the
-- counts only through those two comparisons (checkout's eligibility), so other
-- sessions' redemptions leave the view current until one of them reaches a limit.
-- Otherwise it fails (SQLSTATE AC414, as LockUnchangedSession), the transaction
-- aborts, and the write runs again from a view read under its locks. A completion
-- sends it after LockDiscounts: PostgreSQL gives each statement of a READ
-- COMMITTED transaction a snapshot of its own, taken once the locks before it were
-- granted, so the counts are those of every completion that held the discounts first,
-- and a limit of N still redeems exactly N. The counts are discount_usage's, as the
-- views read them (migrations 00032 and 00035).
SELECT raise_session_moved()
WHERE EXISTS (SELECT 1
    FROM (SELECT unnest(@discount_ids::text[]) AS id, unnest(@used_up::boolean[]) AS used_up,
        unnest(@buyer_used_up::boolean[]) AS buyer_used_up) r
    LEFT JOIN discounts d ON d.id = r.id
    LEFT JOIN LATERAL discount_usage(d.id, d.usage_limit, d.per_buyer_limit, @checkout_session_id::text,
        @buyer_email::text, false) u ON true
    WHERE d.id IS NULL
        OR (d.usage_limit IS NOT NULL AND u.redeemed >= d.usage_limit) IS DISTINCT FROM r.used_up
        OR (d.per_buyer_limit IS NOT NULL AND @buyer_email::text <> '' AND u.buyer_redeemed >= d.per_buyer_limit)
            IS DISTINCT FROM r.buyer_used_up);

-- name: ListBuyerRedemptions :many
-- What an update that sets the buyer of open session @checkout_session_id needs of its
-- discounts beside the session's view, which counted them for the buyer stored: for
-- each discount with a per-buyer limit that may apply to it (session_discount_ids, for
-- its stored codes, as GetSessionView reads them), the redemptions of the new buyer
-- @buyer_email (lower-cased and trimmed, as the view derives it; never ''), as
-- discount_usage counts them (migration 00032). Read along with the view, or alone
-- beside a kept one, so that such an update needs no catalog read of its own
-- (GetCatalogFor, a round trip after the view).
-- The codes come through a join, as GetSessionView's: PostgreSQL inlines
-- session_discount_ids only when no argument is a sub-select, and called as a function
-- it plans its body again at every call (0.24 ms of execution against 0.07).
SELECT d.id, discount_buyer_redeemed(d.id, p.buyer_email, p.checkout_session_id)::integer AS buyer_redeemed
FROM (SELECT @checkout_session_id::text AS checkout_session_id, @buyer_email::text AS buyer_email OFFSET 0) p
LEFT JOIN checkout_session_discounts dc ON dc.checkout_session_id = p.checkout_session_id
JOIN discounts d ON d.id = ANY(ARRAY(SELECT i FROM session_discount_ids(coalesce(dc.codes, '{}'), p.checkout_session_id, false) i))
WHERE d.per_buyer_limit IS NOT NULL
ORDER BY d.id;
