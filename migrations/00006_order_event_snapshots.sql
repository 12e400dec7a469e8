-- +goose Up

-- Issue 9: the outbox keeps a snapshot of the order, and the webhook body is encoded at
-- send time in the platform's WEBHOOK_API_VERSION. payload_format says what a row's
-- payload holds:
--   'acp-2025-09-29'  the exact 2025-09-29 body, sent byte for byte (every row written
--                     before this migration, and any row an instance still running the
--                     previous release writes during a rolling upgrade: the default);
--   'snapshot-v1'     a versionless snapshot ({"snapshot_version":1,"type",
--                     "occurred_at","order":{…}}) that the worker encodes when it sends.
ALTER TABLE order_events
    ADD COLUMN payload_format text NOT NULL DEFAULT 'acp-2025-09-29'
        CHECK (payload_format IN ('acp-2025-09-29', 'snapshot-v1'));

-- +goose Down

-- The previous release sends payload as it is, so snapshot rows are turned back into
-- 2025-09-29 bodies (the same JSON; only the whitespace differs from Go's encoding).
UPDATE order_events e SET payload = json_build_object(
    'type', e.payload->>'type',
    'data', json_build_object(
        'type', 'order',
        'checkout_session_id', e.payload->'order'->>'checkout_session_id',
        'permalink_url', e.payload->'order'->>'permalink_url',
        'status', e.payload->'order'->>'status',
        'refunds', coalesce((
            SELECT json_agg(json_build_object('type', r.value->>'type', 'amount', (r.value->>'amount')::bigint) ORDER BY r.n)
            FROM json_array_elements(e.payload->'order'->'refunds') WITH ORDINALITY AS r (value, n)
        ), '[]'::json)))
WHERE e.payload_format = 'snapshot-v1';
ALTER TABLE order_events DROP COLUMN payload_format;
