-- +goose Up

-- Issue 12 (the session view cache, docs/PERFORMANCE.md, "The session view cache"): an
-- instance may keep the view it answered a session's write with, and start the
-- session's next write from it instead of reading the view again. The session row's
-- version (its xmin) says whether the session changed; catalog_generation says whether
-- the catalog that priced the view did. It counts the statements that changed what a
-- view shows of the catalog: the variants (but their stock, which every completion
-- takes, and their updated_at, which no response shows), the fulfillment options, the
-- discounts and the tax rates. A write started from a kept view checks, in its own
-- round trip, that the generation is still the one the view was read at
-- (CheckKeptViewCurrent); any change since sends it back to read the view.
--
-- One row, bumped by statement-level triggers: a catalog import is one bump per table,
-- and the row is written only by the merchant's changes, never by a checkout. The
-- stock a view shows is checked line by line instead (CheckKeptViewCurrent), so a
-- completion's stock never invalidates another session's view. A new column of
-- variants must be listed below or in postgres.variantColumnsOutsideGeneration
-- (TestCatalogGenerationCoversTheVariants holds it).
CREATE TABLE catalog_generation (
    only_row   boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    generation bigint NOT NULL DEFAULT 1
);
INSERT INTO catalog_generation DEFAULT VALUES;

-- +goose StatementBegin
CREATE FUNCTION bump_catalog_generation() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE catalog_generation SET generation = generation + 1;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER variants_catalog_generation
    AFTER INSERT OR DELETE OR UPDATE OF id, product_id, title, price_amount, currency, available,
        availability_status, fulfillment_type
    ON variants FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_generation();
CREATE TRIGGER variants_truncate_catalog_generation
    AFTER TRUNCATE ON variants FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_generation();
CREATE TRIGGER fulfillment_options_catalog_generation
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON fulfillment_options FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_generation();
CREATE TRIGGER discounts_catalog_generation
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON discounts FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_generation();
CREATE TRIGGER tax_rates_catalog_generation
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON tax_rates FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_generation();

-- +goose Down
DROP TRIGGER tax_rates_catalog_generation ON tax_rates;
DROP TRIGGER discounts_catalog_generation ON discounts;
DROP TRIGGER fulfillment_options_catalog_generation ON fulfillment_options;
DROP TRIGGER variants_truncate_catalog_generation ON variants;
DROP TRIGGER variants_catalog_generation ON variants;
DROP FUNCTION bump_catalog_generation();
DROP TABLE catalog_generation;
