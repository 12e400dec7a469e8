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
-- xmin, which LockUnchangedSession checks.
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
    (s.xmin::text)::bigint AS row_version
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
-- Its sets are json arrays, built as GetSessionView's.
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
        FROM marketing_consents m WHERE m.contact = ANY(p.contacts) ORDER BY m.contact, m.channel))::json AS marketing_consents
FROM (SELECT @variant_ids::text[] AS variant_ids, @checkout_session_id::text AS checkout_session_id,
    @buyer_email::text AS buyer_email, @codes::text[] AS codes, @tax_country::text AS tax_country,
    @tax_region::text AS tax_region, @contacts::text[] AS contacts, @has_order::boolean AS has_order
    OFFSET 0) p;
