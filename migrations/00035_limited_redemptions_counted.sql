-- +goose Up

-- Issue 12 (PostgreSQL's CPU): a discount with a usage limit was counted by reading its
-- redemptions, up to the limit (discount_redeemed, migration 00032), in every statement
-- that prices a session it may apply to: each view, each catalog read, each check of a
-- kept view or of a completion (CheckDiscountUsageUnchanged). A shop running "5% off
-- our first 1,000 orders" read up to 1,000 index entries in each, and PostgreSQL spent
-- 1.2-1.8 times as much CPU a request as without the promotion
-- (docs/performance-history.md, "Forty-second round"). The count now lives in
-- discount_redemption_counts, one row per discount with a usage limit, kept by
-- triggers as redemptions are written and deleted, and read through its primary key
-- whatever the count.
--
-- Only a discount with a usage limit has a row. A completion that redeems such a
-- discount holds the discount's row lock already (LockDiscounts or
-- LockCompletionDiscounts; a PSP completion's last phase writes the redemption its
-- first phase reserved under it), so the counter's row costs it no wait of its own. A
-- discount without a limit is not locked by completions, and a counter would make every
-- completion that redeems it wait for the one before, as the stock row of a popular
-- item does.
--
-- A limit set on a discount (or set again after it was removed) counts the discount's
-- redemptions at that moment (count_discount_redemptions). A redemption being written
-- then by a completion that has not committed saw no limit and is not counted: set a
-- limit before a promotion starts, not while its discount is being redeemed
-- (docs/decisions.md). The counts below are taken with the redemptions locked against
-- writes (SHARE), so a deploy that migrates while completions run counts each once.
CREATE TABLE discount_redemption_counts (
    discount_id text PRIMARY KEY REFERENCES discounts (id) ON DELETE CASCADE,
    redeemed    integer NOT NULL CHECK (redeemed >= 0)
);

-- +goose StatementBegin
CREATE FUNCTION count_limited_redemption() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO discount_redemption_counts AS c (discount_id, redeemed)
        SELECT d.id, 1 FROM discounts d WHERE d.id = NEW.discount_id AND d.usage_limit IS NOT NULL
        ON CONFLICT (discount_id) DO UPDATE SET redeemed = c.redeemed + 1;
    ELSE
        UPDATE discount_redemption_counts SET redeemed = redeemed - 1 WHERE discount_id = OLD.discount_id;
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION count_discount_redemptions() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.usage_limit IS NULL THEN
        DELETE FROM discount_redemption_counts WHERE discount_id = NEW.id;
    ELSIF TG_OP = 'INSERT' OR OLD.usage_limit IS NULL THEN
        INSERT INTO discount_redemption_counts AS c (discount_id, redeemed)
        VALUES (NEW.id, (SELECT count(*) FROM discount_redemptions r WHERE r.discount_id = NEW.id))
        ON CONFLICT (discount_id) DO UPDATE SET redeemed = EXCLUDED.redeemed;
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

LOCK TABLE discount_redemptions IN SHARE MODE;

CREATE TRIGGER discount_redemptions_counted
    AFTER INSERT OR DELETE ON discount_redemptions
    FOR EACH ROW EXECUTE FUNCTION count_limited_redemption();
CREATE TRIGGER discounts_redemptions_counted
    AFTER INSERT OR UPDATE OF usage_limit ON discounts
    FOR EACH ROW EXECUTE FUNCTION count_discount_redemptions();

INSERT INTO discount_redemption_counts (discount_id, redeemed)
SELECT d.id, (SELECT count(*) FROM discount_redemptions r WHERE r.discount_id = d.id)
FROM discounts d WHERE d.usage_limit IS NOT NULL;

-- What migration 00032 counted, from the counter: the redemptions up to the limit, and
-- the payment attempts in flight of other sessions that reserved the discount.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION discount_redeemed(for_discount text, for_usage_limit integer, for_session text)
RETURNS integer
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
    RETURN least(coalesce((SELECT c.redeemed FROM discount_redemption_counts c WHERE c.discount_id = for_discount), 0),
            for_usage_limit)
        + cardinality(ARRAY(SELECT 1 FROM payment_attempts a
            WHERE a.status IN ('pending', 'in_doubt') AND a.checkout_session_id <> for_session
              AND EXISTS (SELECT 1 FROM payment_attempt_discounts pd
                  WHERE pd.attempt_id = a.id AND pd.discount_id = for_discount OFFSET 0)));
END
$$;
-- +goose StatementEnd

-- +goose Down
-- migration 00032's definition.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION discount_redeemed(for_discount text, for_usage_limit integer, for_session text)
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
DROP TRIGGER discounts_redemptions_counted ON discounts;
DROP TRIGGER discount_redemptions_counted ON discount_redemptions;
DROP FUNCTION count_discount_redemptions();
DROP FUNCTION count_limited_redemption();
DROP TABLE discount_redemption_counts;
