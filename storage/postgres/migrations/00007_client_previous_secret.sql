-- A client's previous secret, accepted until its expiry: a rotation's grace, so
-- the client's instances can move to the new secret one by one. And an index for the audit trail's pages of one client.

-- +goose Up
ALTER TABLE clients ADD COLUMN previous_secret_hash text NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN previous_secret_expires_at timestamptz;
CREATE INDEX audit_events_client ON audit_events (client_id, id);

-- +goose Down
DROP INDEX audit_events_client;
ALTER TABLE clients DROP COLUMN previous_secret_expires_at;
ALTER TABLE clients DROP COLUMN previous_secret_hash;
