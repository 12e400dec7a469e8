-- name: GetSessionView :one
-- Everything a response shows of a session, in one statement, so that a GET is one
-- round trip (docs/PERFORMANCE.md, "Round trips"): the row, its lines and discount
-- codes, the 3-D Secure directory server of its latest unused, unexpired vault token,
-- and the catalog that quotes it (its variants, the active fulfillment options, the
-- discounts that may apply, the tax rate of its address), with the stored marketing
-- decisions of its contacts. The parts are those of GetSession, ListLineItems,
-- GetSessionDiscountCodes, LatestSessionTokenAuthentication, ListVariantsByID,
-- ListActiveFulfillmentOptions, ListSessionDiscounts, GetTaxRate and
-- ListMarketingConsents, and must stay in step with them. The parameters those take from
-- the session in Go (normalised codes, the buyer's email, the tax region, the consent
-- contacts) are derived here from the row and returned, so the caller can check them
-- against the Go derivation and load a part again on the odd session where they differ.
-- A completion names its vault token (@token_id; NULL for none), locked just before in
-- its transaction: vault_token is that token's row as a completion checks it (NULL
-- when the owner has no such token). last_attempt_number is LastPaymentAttemptNumber's,
-- which a PSP completion numbers its payment attempt after. row_version is the row's
-- xmin, which LockUnchangedSession checks; catalog_generation is the catalog's
-- (migration 00034), which a write started from this view kept checks
-- (CheckKeptViewCurrent).
-- The variants are looked up by their ids as an array (= ANY), each through the primary
-- key: as a join (IN), the plans of a busy database merged the session's lines with the
-- whole variants index in id order, and read every variant whose id sorts before the
-- session's (15 ms with 20,000 variants; docs/performance-history.md, "Seventh round"); the
-- discounts are looked up the same way, for the reason ListSessionDiscounts gives. The
-- discounts its order redeemed are read only for a session that is no longer open, the
-- only one that can have an order (migration 00033).
-- The sets are json, not jsonb: Go decodes their text into the structs of the per-part
-- queries, and to_json writes that text directly where the jsonb functions build a
-- binary value first and then print it (docs/performance-history.md, "The views' SQL").
-- Each set is an array of its rows' json, printed by array_to_json, not a json_agg: an
-- aggregate's node, and the sort of its ORDER BY, are started at every call, though
-- most sets hold a row or none, while an ARRAY sublink has neither node and takes its
-- order from the index where there is one: the view costs PostgreSQL 10-15% less CPU
-- (docs/performance-history.md, "Twenty-sixth round"). array_to_json of no rows is [].
SELECT sqlc.embed(s),
    array_to_json(ARRAY(SELECT to_json(l)
        FROM line_items l WHERE l.checkout_session_id = s.id ORDER BY l.position))::json AS lines,
    (dc.checkout_session_id IS NOT NULL)::boolean AS discounts_active,
    coalesce(dc.codes, '{}'::text[])::text[] AS discount_codes,
    EXISTS (SELECT 1 FROM vault_tokens t
        WHERE t.checkout_session_id = s.id AND t.owner = s.owner AND t.used_at IS NULL AND t.expires_at > @now
    ) AS has_usable_token,
    (SELECT t.authentication_directory_server FROM vault_tokens t
        WHERE t.checkout_session_id = s.id AND t.owner = s.owner AND t.used_at IS NULL AND t.expires_at > @now
        ORDER BY t.created_at DESC, t.id DESC
        LIMIT 1) AS usable_token_directory_server,
    array_to_json(ARRAY(SELECT to_json(v) FROM variants v
        WHERE v.id = ANY(ARRAY(SELECT l.variant_id FROM line_items l WHERE l.checkout_session_id = s.id))))::json AS variants,
    array_to_json(ARRAY(SELECT to_json(o)
        FROM fulfillment_options o WHERE o.active ORDER BY o.sort_order, o.id))::json AS fulfillment_options,
    p.normalized_codes::text[] AS normalized_codes,
    p.buyer_email::text AS buyer_email,
    array_to_json(ARRAY(SELECT json_build_object('discount', to_json(d), 'redeemed', u.redeemed,
            'buyer_redeemed', u.buyer_redeemed, 'used_by_session', u.used_by_session)
        FROM discounts d
        CROSS JOIN LATERAL discount_usage(d.id, d.usage_limit, d.per_buyer_limit, s.id, p.buyer_email, s.state <> 'open') u
        WHERE d.id = ANY(ARRAY(SELECT i FROM session_discount_ids(coalesce(dc.codes, '{}'), s.id, s.state <> 'open') i))
        ORDER BY d.id))::json AS discounts,
    p.tax_country::text AS tax_country,
    p.tax_region::text AS tax_region,
    coalesce((SELECT r.rate_bps FROM tax_rates r
        WHERE r.country = p.tax_country AND r.region IN (p.tax_region, '')
        ORDER BY r.region DESC
        LIMIT 1), 0)::integer AS tax_rate_bps,
    p.consent_contacts::text[] AS consent_contacts,
    array_to_json(ARRAY(SELECT to_json(m)
        FROM marketing_consents m WHERE m.contact = ANY(p.consent_contacts) ORDER BY m.contact, m.channel))::json AS marketing_consents,
    (SELECT jsonb_build_object('id', t.id, 'max_amount', t.max_amount, 'currency', t.currency,
            'checkout_session_id', t.checkout_session_id, 'merchant_id', t.merchant_id, 'expires_at', t.expires_at,
            'used_at', t.used_at, 'manual_review', t.manual_review,
            'authentication_directory_server', t.authentication_directory_server)
        FROM vault_tokens t WHERE t.id = sqlc.narg(token_id)::text AND t.owner = s.owner)::jsonb AS vault_token,
    (SELECT coalesce(max(a.number), 0) FROM payment_attempts a WHERE a.checkout_session_id = s.id)::integer AS last_attempt_number,
    (s.xmin::text)::bigint AS row_version,
    (SELECT g.generation FROM catalog_generation g)::bigint AS catalog_generation
FROM checkout_sessions s
LEFT JOIN checkout_session_discounts dc ON dc.checkout_session_id = s.id
CROSS JOIN LATERAL (SELECT
    ARRAY(SELECT upper(btrim(c)) FROM unnest(coalesce(dc.codes, '{}'::text[])) WITH ORDINALITY AS u(c, n) ORDER BY n) AS normalized_codes,
    lower(btrim(coalesce(s.buyer->>'email', ''))) AS buyer_email,
    coalesce(s.fulfillment_address->>'country', '') AS tax_country,
    upper(coalesce(s.fulfillment_address->>'state', '')) AS tax_region,
    array_remove(ARRAY[
        lower(btrim(s.buyer->>'email')), btrim(s.buyer->>'phone_number'),
        lower(btrim(s.fulfillment_contact->>'email')), btrim(s.fulfillment_contact->>'phone_number')
    ], NULL) AS consent_contacts
) p
WHERE s.id = @id AND s.owner = @owner;

-- name: GetCatalogFor :one
-- The catalog a create or an update quotes against, in one statement, with the stored
-- marketing decisions of the contacts it will show: the parts of ListVariantsByID,
-- ListActiveFulfillmentOptions, ListSessionDiscounts, GetTaxRate and
-- ListMarketingConsents, as GetSessionView reads them for a stored session. Without an
-- address, @tax_country is '' and no rate is found (0). @has_order says whether the
-- session may have an order (it is no longer open): only then are the discounts its
-- order redeemed read (migration 00033).
-- Its sets are json arrays, built as GetSessionView's; catalog_generation is
-- GetSessionView's.
-- The parameters are read through the subquery p, which OFFSET 0 keeps from being
-- flattened into the statement, so the planner sees no parameter's value: the plan is
-- the same for every call, and PostgreSQL's plan cache keeps the generic one (planned
-- once per connection). With the values in sight, the plan of a call with no codes or
-- contacts was cheaper than the generic one, and the statement was planned again on
-- every call at about three times the cost of executing it (docs/performance-history.md,
-- "The views' SQL").
SELECT
    array_to_json(ARRAY(SELECT to_json(v) FROM variants v
        WHERE v.id = ANY(p.variant_ids)))::json AS variants,
    array_to_json(ARRAY(SELECT to_json(o)
        FROM fulfillment_options o WHERE o.active ORDER BY o.sort_order, o.id))::json AS fulfillment_options,
    array_to_json(ARRAY(SELECT json_build_object('discount', to_json(d), 'redeemed', u.redeemed,
            'buyer_redeemed', u.buyer_redeemed, 'used_by_session', u.used_by_session)
        FROM discounts d
        CROSS JOIN LATERAL discount_usage(d.id, d.usage_limit, d.per_buyer_limit, p.checkout_session_id, p.buyer_email, p.has_order) u
        WHERE d.id = ANY(ARRAY(SELECT i FROM session_discount_ids(p.codes, p.checkout_session_id, p.has_order) i))
        ORDER BY d.id))::json AS discounts,
    coalesce((SELECT r.rate_bps FROM tax_rates r
        WHERE r.country = p.tax_country AND r.region IN (p.tax_region, '')
        ORDER BY r.region DESC
        LIMIT 1), 0)::integer AS tax_rate_bps,
    array_to_json(ARRAY(SELECT to_json(m)
        FROM marketing_consents m WHERE m.contact = ANY(p.contacts) ORDER BY m.contact, m.channel))::json AS marketing_consents,
    (SELECT g.generation FROM catalog_generation g)::bigint AS catalog_generation
FROM (SELECT @variant_ids::text[] AS variant_ids, @checkout_session_id::text AS checkout_session_id,
    @buyer_email::text AS buyer_email, @codes::text[] AS codes, @tax_country::text AS tax_country,
    @tax_region::text AS tax_region, @contacts::text[] AS contacts, @has_order::boolean AS has_order
    OFFSET 0) p;

-- name: CheckKeptViewCurrent :exec
-- Checks, in the transaction of a write started from a view this instance kept (the
-- session view cache, docs/PERFORMANCE.md), after LockUnchangedSession locked the
-- session unchanged, that what the view showed of the rest of the database is still
-- so: the catalog's generation is the one the view was read at (@catalog_generation,
-- migration 00034); no vault token of the session carries a 3-D Secure directory server
-- (a kept view has none, and delegate_payment stores tokens without writing the
-- session); each line's stock, as the write priced it (@stocks[i], -1 for
-- unlimited), still gives the same answer for its quantity (@quantities[i]): enough
-- for both, or the same count; a completion's kept vault token (@token_id, '' for
-- none) still has the expiry and the allowance it was kept with (its use and its
-- deletion, ConsumeVaultToken raises on); and the stored marketing decisions of the
-- view's contacts (@consent_contacts, none when the merchant offers no consents) are
-- the ones it was read with (@seen_channels[i], @seen_contacts[i], @seen_opted_in[i]),
-- which other sessions' completions change: as many rows, each as seen (a row is one
-- per channel and contact, its primary key). Otherwise it fails (SQLSTATE AC414, as
-- LockUnchangedSession), the transaction aborts, and the write runs again from a view
-- read under the session's lock.
SELECT raise_session_moved()
WHERE (SELECT g.generation FROM catalog_generation g) <> @catalog_generation::bigint
    OR EXISTS (SELECT 1 FROM vault_tokens t
        WHERE t.checkout_session_id = @checkout_session_id::text AND t.authentication_directory_server IS NOT NULL)
    OR EXISTS (SELECT 1
        FROM (SELECT unnest(@variant_ids::text[]) AS variant_id, unnest(@quantities::integer[]) AS quantity,
            unnest(@stocks::integer[]) AS stock) r
        LEFT JOIN variants v ON v.id = r.variant_id
        WHERE NOT (v.stock_quantity IS NOT DISTINCT FROM nullif(r.stock, -1)
            OR (coalesce(v.stock_quantity >= r.quantity, true) AND (r.stock = -1 OR r.stock >= r.quantity))))
    OR (@token_id::text <> '' AND NOT EXISTS (SELECT 1 FROM vault_tokens t
        WHERE t.id = @token_id::text AND t.expires_at = @token_expires_at::timestamptz AND t.max_amount = @token_max_amount::bigint))
    OR (cardinality(@consent_contacts::text[]) > 0 AND (
        (SELECT count(*) FROM marketing_consents m WHERE m.contact = ANY(@consent_contacts::text[]))
            <> cardinality(@seen_channels::text[])
        OR EXISTS (SELECT 1
            FROM (SELECT unnest(@seen_channels::text[]) AS channel, unnest(@seen_contacts::text[]) AS contact,
                unnest(@seen_opted_in::boolean[]) AS opted_in) r
            LEFT JOIN marketing_consents m ON m.channel = r.channel AND m.contact = r.contact
            WHERE m.opted_in IS DISTINCT FROM r.opted_in)));

-- name: SessionRowVersion :one
-- The version of the session row (its xmin, as GetSessionView's row_version), read
-- along after a write to it, in its transaction: the version the write leaves, which
-- the view the write answered with is kept under.
SELECT (xmin::text)::bigint AS row_version FROM checkout_sessions WHERE id = @id;
