-- +goose Up

-- Issue 9: what a 2026-04-17 agent tells about a session, kept so that every version
-- reads the same session back.
--   fulfillment_contact  the recipient named apart from the address (fulfillment_details
--                        name, phone_number, email)
--   locale, timezone     the buyer's, as the agent gave them
--   metadata             the agent's own data, shown back to it
--   agent_interventions  the interventions (3ds, ...) the agent supports; the session
--                        offers their intersection with the merchant's
--   cancel_intent_trace  why the agent's buyer left (reason_code, trace_summary,
--                        metadata); the merchant's, never shown to agents
ALTER TABLE checkout_sessions
    ADD COLUMN fulfillment_contact jsonb
        CHECK (fulfillment_contact IS NULL OR jsonb_typeof(fulfillment_contact) = 'object'),
    ADD COLUMN locale text CHECK (length(locale) <= 64),
    ADD COLUMN timezone text CHECK (length(timezone) <= 64),
    ADD COLUMN metadata jsonb CHECK (metadata IS NULL OR jsonb_typeof(metadata) = 'object'),
    ADD COLUMN agent_interventions text[] NOT NULL DEFAULT '{}',
    ADD COLUMN cancel_intent_trace jsonb
        CHECK (cancel_intent_trace IS NULL OR (jsonb_typeof(cancel_intent_trace) = 'object'
            AND cancel_intent_trace ? 'reason_code')),
    ADD CONSTRAINT checkout_sessions_trace_when_canceled
        CHECK (cancel_intent_trace IS NULL OR state = 'canceled');

-- +goose Down

ALTER TABLE checkout_sessions
    DROP CONSTRAINT checkout_sessions_trace_when_canceled,
    DROP COLUMN cancel_intent_trace,
    DROP COLUMN agent_interventions,
    DROP COLUMN metadata,
    DROP COLUMN timezone,
    DROP COLUMN locale,
    DROP COLUMN fulfillment_contact;
