-- put_back_stock is take_stock's reverse, for a cancellation that frees units of several
-- lines (and a PSP payment that failed after its stock was taken): it adds quantities[i]
-- to the stock of variant_ids[i], in the order given (the caller sorts by variant id, so
-- that it locks variant rows in the order completions do), in one statement however
-- many lines there are. A variant without counted stock (NULL) stays unlimited, and its
-- row is neither written nor locked.
-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION put_back_stock(variant_ids text[], quantities integer[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. coalesce(array_length(variant_ids, 1), 0) LOOP
        UPDATE variants SET stock_quantity = stock_quantity + quantities[i], updated_at = now()
        WHERE id = variant_ids[i] AND stock_quantity IS NOT NULL;
    END LOOP;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION put_back_stock(text[], integer[]);
