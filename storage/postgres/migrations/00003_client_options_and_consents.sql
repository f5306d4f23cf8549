-- Per-client PKCE and ID token options, and the consents users give.
--
-- clients.pkce_optional lets a confidential client skip PKCE;
-- clients.id_token_signed_response_alg is the alg of its ID tokens, '' for the
-- default. Existing clients get the defaults, which is how they behaved before.
--
-- consents holds one row per (realm, user, client): the scopes the user let the
-- client have. Like sessions it has no foreign keys: SaveConsent does not promise
-- ErrNotFound for a missing user or client, and DeleteUser and DeleteRealm remove
-- the rows themselves. The primary key also serves listing a user's consents by
-- client ID and deleting them all.

-- +goose Up
ALTER TABLE clients
    ADD COLUMN pkce_optional boolean NOT NULL DEFAULT false,
    ADD COLUMN id_token_signed_response_alg text NOT NULL DEFAULT '';

CREATE TABLE consents (
    realm      text NOT NULL,
    user_id    text NOT NULL,
    client_id  text NOT NULL,
    scopes     text[] NOT NULL,
    created_at timestamptz,
    updated_at timestamptz,
    PRIMARY KEY (realm, user_id, client_id)
);

-- +goose Down
DROP TABLE consents;
ALTER TABLE clients
    DROP COLUMN id_token_signed_response_alg,
    DROP COLUMN pkce_optional;
