-- Opaque access tokens are sealed (encrypted claims) instead of stored: the
-- access_tokens table has nothing left to hold. Tokens issued before this
-- migration stop working at once; they lived five minutes by default. Their
-- revocation goes on the deny-list with the JWTs', by jti.

-- +goose Up
DROP TABLE access_tokens;

-- +goose Down
CREATE TABLE access_tokens (
    hash       bytea PRIMARY KEY,
    realm      text NOT NULL,
    client_id  text NOT NULL,
    user_id    text NOT NULL,
    session_id text NOT NULL,
    family_id  text NOT NULL,
    scopes     text[] NOT NULL,
    audience   text[] NOT NULL,
    issued_at  timestamptz,
    expires_at timestamptz,
    revoked_at timestamptz
);
CREATE INDEX access_tokens_expires_at ON access_tokens (expires_at);
