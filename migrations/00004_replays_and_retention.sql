-- +goose Up

-- Signed requests already seen (issue 15, item 3). The digest is SHA-256 of the
-- verified signature, which covers the timestamp and the body; a row only needs to live
-- as long as its timestamp is inside the signature window, after which the timestamp
-- check refuses the request anyway and the sweeper deletes the row.
CREATE TABLE signature_replays (
    digest      bytea PRIMARY KEY CHECK (length(digest) = 32),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX signature_replays_expires_at_idx ON signature_replays (expires_at);

-- The retention job deletes canceled sessions and finished order events by age; these
-- partial indexes keep its statements from scanning the rows that stay.
CREATE INDEX checkout_sessions_canceled_idx ON checkout_sessions (updated_at) WHERE state = 'canceled';
CREATE INDEX order_events_finished_idx ON order_events (created_at) WHERE status IN ('delivered', 'dead');

-- +goose Down
DROP INDEX order_events_finished_idx;
DROP INDEX checkout_sessions_canceled_idx;
DROP TABLE signature_replays;
