-- +goose Up

-- Issue 12 (the hot item): a completion took the stock of an unlimited variant too.
-- `stock_quantity - n` is NULL again, but the UPDATE still locked the row and wrote a new
-- version of it, so every completion of a best seller queued on that row's lock until
-- its COMMIT, and paid for a row version and its WAL, to change nothing. Now only stock
-- that is counted is taken; an unlimited variant's row is read, never locked.
--
-- take_variant_stock takes quantity units of variant's stock: true when they were taken
-- or the stock is unlimited, false when it is short or there is no such variant. Each
-- statement of a function reads a fresh snapshot (READ COMMITTED), so a stock a merchant
-- sets while it runs is seen by the next statement: the UPDATE finds the row unlimited
-- (NULL >= n is not true), the SELECT then sees the new number, and the loop takes it.
-- A completion that read the stock as unlimited before the merchant's change committed
-- sells as if it had committed first.
-- +goose StatementBegin
CREATE FUNCTION take_variant_stock(variant text, quantity integer) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    stock integer;
BEGIN
    LOOP
        UPDATE variants SET stock_quantity = stock_quantity - quantity
        WHERE id = variant AND stock_quantity >= quantity;
        IF FOUND THEN
            RETURN true;
        END IF;
        SELECT v.stock_quantity INTO stock FROM variants v WHERE v.id = variant;
        IF NOT FOUND OR stock < quantity THEN
            RETURN false;
        END IF;
        IF stock IS NULL THEN
            RETURN true;
        END IF;
        -- Enough stock now: it was set between the two statements. Take it.
    END LOOP;
END
$$;
-- +goose StatementEnd

-- take_stock is migration 00015's, each line taken by take_variant_stock.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION take_stock(variant_ids text[], quantities integer[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. coalesce(array_length(variant_ids, 1), 0) LOOP
        IF NOT take_variant_stock(variant_ids[i], quantities[i]) THEN
            RAISE EXCEPTION 'variant % is short of stock', variant_ids[i]
                USING ERRCODE = 'AC410', DETAIL = i::text;
        END IF;
    END LOOP;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION take_stock(variant_ids text[], quantities integer[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. coalesce(array_length(variant_ids, 1), 0) LOOP
        UPDATE variants SET stock_quantity = stock_quantity - quantities[i]
        WHERE id = variant_ids[i] AND (stock_quantity IS NULL OR stock_quantity >= quantities[i]);
        IF NOT FOUND THEN
            RAISE EXCEPTION 'variant % is short of stock', variant_ids[i]
                USING ERRCODE = 'AC410', DETAIL = i::text;
        END IF;
    END LOOP;
END
$$;
-- +goose StatementEnd
DROP FUNCTION take_variant_stock(text, integer);
