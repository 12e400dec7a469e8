-- +goose Up

-- Issue 12 (round trips): a vault-token completion sends its writes, the record of its
-- idempotent response and the COMMIT in one pipeline, with the stock taken last so that
-- the hot variant rows stay locked for one statement's time. A guarded write whose row
-- count Go used to check cannot be checked before the COMMIT, so these raise instead:
-- the error aborts the transaction, and the COMMIT queued behind it does not apply (as
-- raise_idempotency_claim_lost, migration 00014). The SQLSTATEs are this server's own.

-- take_stock decrements the stock of variant_ids[i] by quantities[i], in the order
-- given (the caller sorts by variant id, so that concurrent completions lock variant
-- rows in one order), never below zero; NULL stock is unlimited. The first short one
-- raises AC410 with its position in the arrays (1-based) as the DETAIL, from which the
-- caller names the line that sold out (postgres.takeStockLast).
-- +goose StatementBegin
CREATE FUNCTION take_stock(variant_ids text[], quantities integer[]) RETURNS void
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

-- raise_vault_token_changed is the failure of ConsumeVaultToken: the token was used
-- already, which its row lock, taken earlier in the same transaction, rules out.
-- +goose StatementBegin
CREATE FUNCTION raise_vault_token_changed() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'vault token changed under its row lock' USING ERRCODE = 'AC411';
END
$$;
-- +goose StatementEnd

-- raise_session_changed is the failure of MoveSessionState: the session was not in the
-- state its row lock, taken earlier in the same transaction, showed.
-- +goose StatementBegin
CREATE FUNCTION raise_session_changed() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'session changed under its row lock' USING ERRCODE = 'AC412';
END
$$;
-- +goose StatementEnd

-- raise_payment_attempt_settled is the failure of SettleOpenPaymentAttempt: the attempt
-- was no longer open, which its row lock, taken earlier in the same transaction, rules
-- out.
-- +goose StatementBegin
CREATE FUNCTION raise_payment_attempt_settled() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'payment attempt settled under its row lock' USING ERRCODE = 'AC413';
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION raise_payment_attempt_settled();
DROP FUNCTION raise_session_changed();
DROP FUNCTION raise_vault_token_changed();
DROP FUNCTION take_stock(text[], integer[]);
