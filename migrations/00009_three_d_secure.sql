-- +goose Up

-- Issue 10, 3-D Secure. What the server keeps of an authentication, and never the
-- cryptogram (an authentication value, as secret as a CVC for the one payment):
--   vault_tokens.authentication_directory_server
--       the 3-D Secure directory server of a delegated card that requires
--       authentication (NULL: it does not); the open session the token is bound to shows
--       authentication_required while the token is its latest, unused one
--   checkout_sessions.authentication_directory_server
--       the same, learnt at completion from the payment service provider for a PSP
--       token (only the charge tells), so that the session then shows the metadata
--       the agent needs to authenticate
--   orders.authentication_*
--       the outcome of the authentication that paid the order, its ECI, 3-D Secure
--       version and directory server transaction id (NULL: none was needed)
ALTER TABLE vault_tokens
    ADD COLUMN authentication_directory_server text
        CHECK (authentication_directory_server IN ('visa', 'mastercard', 'american_express'));

ALTER TABLE checkout_sessions
    ADD COLUMN authentication_directory_server text
        CHECK (authentication_directory_server IN ('visa', 'mastercard', 'american_express'));

ALTER TABLE orders
    ADD COLUMN authentication_outcome text
        CHECK (authentication_outcome IN ('authenticated', 'attempt_acknowledged', 'informational')),
    ADD COLUMN authentication_eci text CHECK (authentication_eci IN ('01', '02', '05', '06', '07')),
    ADD COLUMN authentication_version text CHECK (length(authentication_version) <= 16),
    ADD COLUMN authentication_transaction_id text CHECK (length(authentication_transaction_id) <= 256),
    ADD CONSTRAINT orders_authentication_details
        CHECK ((authentication_outcome IS NULL) = (authentication_eci IS NULL));

-- +goose Down

ALTER TABLE orders
    DROP CONSTRAINT orders_authentication_details,
    DROP COLUMN authentication_transaction_id,
    DROP COLUMN authentication_version,
    DROP COLUMN authentication_eci,
    DROP COLUMN authentication_outcome;

ALTER TABLE checkout_sessions DROP COLUMN authentication_directory_server;

ALTER TABLE vault_tokens DROP COLUMN authentication_directory_server;
