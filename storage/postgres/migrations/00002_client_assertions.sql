-- Clients that authenticate with private_key_jwt (RFC 7523).
--
-- clients.jwks is the client's JWK Set as JSON, NULL when it has none.
-- client_assertions remembers each assertion ID a client used until it expires, so
-- none is accepted twice (RFC 7523 §3). Like the deny-list it has no foreign key:
-- DeleteRealm removes its rows.

-- +goose Up
ALTER TABLE clients ADD COLUMN jwks bytea;

CREATE TABLE client_assertions (
    realm      text NOT NULL,
    client_id  text NOT NULL,
    jti        text NOT NULL,
    expires_at timestamptz,
    PRIMARY KEY (realm, client_id, jti)
);
CREATE INDEX client_assertions_expires_at ON client_assertions (expires_at);

-- +goose Down
DROP TABLE client_assertions;
ALTER TABLE clients DROP COLUMN jwks;
