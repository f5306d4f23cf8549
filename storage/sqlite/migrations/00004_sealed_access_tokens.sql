-- Opaque access tokens are sealed (encrypted claims) instead of stored: the
-- access_tokens table has nothing left to hold. Tokens issued before this
-- migration stop working at once; they lived five minutes by default. Their
-- revocation goes on the deny-list with the JWTs', by jti.

-- +goose Up
DROP TABLE access_tokens;

-- +goose Down
CREATE TABLE access_tokens (
    hash       BLOB NOT NULL PRIMARY KEY,
    realm      TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    session_id TEXT NOT NULL,
    family_id  TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    audience   TEXT NOT NULL,
    issued_at  INTEGER,
    expires_at INTEGER,
    revoked_at INTEGER
) STRICT;

CREATE INDEX access_tokens_user ON access_tokens (realm, user_id);
CREATE INDEX access_tokens_expires ON access_tokens (expires_at);
