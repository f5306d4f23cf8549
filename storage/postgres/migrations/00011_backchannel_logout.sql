-- OpenID Connect Back-Channel Logout 1.0: where a client takes logout tokens,
-- which clients each browser session was used with, and how far the delivery has
-- read the change feed.

-- +goose Up
ALTER TABLE clients ADD COLUMN backchannel_logout_uri text NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN backchannel_logout_session_required boolean NOT NULL DEFAULT false;

-- No foreign key to sessions: a deleted user's sessions go at once, and their
-- clients must still be told. Rows of sessions gone are swept after a grace.
CREATE TABLE session_clients (
    session_id  text NOT NULL,
    realm       text NOT NULL,
    client_id   text NOT NULL,
    recorded_at timestamptz NOT NULL,
    PRIMARY KEY (session_id, realm, client_id)
);
CREATE INDEX session_clients_recorded_at ON session_clients (recorded_at);

CREATE TABLE backchannel_cursor (
    id  integer PRIMARY KEY CHECK (id = 1),
    seq bigint NOT NULL
);

-- +goose Down
DROP TABLE backchannel_cursor;
DROP TABLE session_clients;
ALTER TABLE clients DROP COLUMN backchannel_logout_session_required;
ALTER TABLE clients DROP COLUMN backchannel_logout_uri;
