-- Per-client PKCE and ID token options, and the consents users give.
--
-- clients.pkce_optional lets a confidential client skip PKCE (0/1);
-- clients.id_token_signed_response_alg is the alg of its ID tokens, '' for the
-- default. Existing clients get the defaults, which is how they behaved before.
--
-- consents holds one row per (realm, user, client): the scopes the user let the
-- client have, as JSON text. Like sessions it has no foreign keys: SaveConsent
-- does not promise ErrNotFound for a missing user or client, and DeleteUser and
-- DeleteRealm remove the rows themselves. The primary key also serves listing a
-- user's consents by client ID and deleting them all.

-- +goose Up
ALTER TABLE clients ADD COLUMN pkce_optional INTEGER NOT NULL DEFAULT 0;
ALTER TABLE clients ADD COLUMN id_token_signed_response_alg TEXT NOT NULL DEFAULT '';

CREATE TABLE consents (
    realm      TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    created_at INTEGER,
    updated_at INTEGER,
    PRIMARY KEY (realm, user_id, client_id)
) STRICT;

-- +goose Down
DROP TABLE consents;
ALTER TABLE clients DROP COLUMN id_token_signed_response_alg;
ALTER TABLE clients DROP COLUMN pkce_optional;
