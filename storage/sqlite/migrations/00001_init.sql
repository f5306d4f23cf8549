-- Latchkey's first schema.
--
-- Conventions: times are INTEGER unix microseconds, NULL when not set; durations
-- are INTEGER nanoseconds; lists of strings and string maps are JSON text; hashes
-- and sealed bytes are BLOBs; booleans are INTEGER 0/1. Tables are STRICT so a
-- value of the wrong type is an error, not a silent conversion.
--
-- Only clients, users and signing keys have a foreign key to their realm, because
-- only their contracts promise ErrNotFound for a missing realm. DeleteRealm and
-- DeleteUser remove the rest (sessions, codes, families, tokens) themselves.

-- +goose Up
CREATE TABLE realms (
    name             TEXT NOT NULL PRIMARY KEY,
    display_name     TEXT NOT NULL,
    signing_alg      TEXT NOT NULL,
    access_token_ttl INTEGER NOT NULL,
    created_at       INTEGER,
    updated_at       INTEGER
) STRICT;

CREATE TABLE clients (
    realm                     TEXT NOT NULL REFERENCES realms (name) ON DELETE CASCADE,
    id                        TEXT NOT NULL,
    name                      TEXT NOT NULL,
    secret_hash               TEXT NOT NULL,
    redirect_uris             TEXT NOT NULL,
    post_logout_redirect_uris TEXT NOT NULL,
    grant_types               TEXT NOT NULL,
    scopes                    TEXT NOT NULL,
    audiences                 TEXT NOT NULL,
    third_party               INTEGER NOT NULL,
    disabled                  INTEGER NOT NULL,
    access_token_ttl          INTEGER NOT NULL,
    access_token_format       TEXT NOT NULL,
    refresh_preset            TEXT NOT NULL,
    refresh_idle              INTEGER NOT NULL,
    refresh_absolute          INTEGER NOT NULL,
    refresh_retry_window      INTEGER NOT NULL,
    created_at                INTEGER,
    updated_at                INTEGER,
    PRIMARY KEY (realm, id)
) STRICT;

CREATE TABLE users (
    id                 TEXT NOT NULL PRIMARY KEY,
    realm              TEXT NOT NULL REFERENCES realms (name) ON DELETE CASCADE,
    username           TEXT NOT NULL,
    email              TEXT NOT NULL,
    email_verified     INTEGER NOT NULL,
    name               TEXT NOT NULL,
    password_hash      TEXT NOT NULL,
    disabled           INTEGER NOT NULL,
    tokens_valid_after INTEGER,
    created_at         INTEGER,
    updated_at         INTEGER,
    UNIQUE (realm, username)
) STRICT;

-- Many users may have no email; those that have one must not share it.
CREATE UNIQUE INDEX users_realm_email ON users (realm, email) WHERE email <> '';

CREATE TABLE sessions (
    id              TEXT NOT NULL PRIMARY KEY,
    realm           TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    secret_hash     BLOB,
    auth_time       INTEGER,
    created_at      INTEGER,
    last_seen_at    INTEGER,
    idle_expires_at INTEGER,
    expires_at      INTEGER,
    revoked_at      INTEGER,
    ip              TEXT NOT NULL,
    user_agent      TEXT NOT NULL
) STRICT;

CREATE INDEX sessions_user ON sessions (realm, user_id, created_at);

CREATE TABLE auth_codes (
    hash                  BLOB NOT NULL PRIMARY KEY,
    realm                 TEXT NOT NULL,
    client_id             TEXT NOT NULL,
    user_id               TEXT NOT NULL,
    session_id            TEXT NOT NULL,
    redirect_uri          TEXT NOT NULL,
    scopes                TEXT NOT NULL,
    nonce                 TEXT NOT NULL,
    code_challenge        TEXT NOT NULL,
    code_challenge_method TEXT NOT NULL,
    family_id             TEXT NOT NULL,
    auth_time             INTEGER,
    created_at            INTEGER,
    expires_at            INTEGER,
    consumed_at           INTEGER
) STRICT;

CREATE INDEX auth_codes_user ON auth_codes (realm, user_id);
CREATE INDEX auth_codes_expires ON auth_codes (expires_at);

CREATE TABLE refresh_families (
    id                  TEXT NOT NULL PRIMARY KEY,
    realm               TEXT NOT NULL,
    client_id           TEXT NOT NULL,
    user_id             TEXT NOT NULL,
    session_id          TEXT NOT NULL,
    scopes              TEXT NOT NULL,
    audience            TEXT NOT NULL,
    created_at          INTEGER,
    last_used_at        INTEGER,
    idle_expires_at     INTEGER,
    absolute_expires_at INTEGER,
    revoked_at          INTEGER,
    revoke_reason       TEXT NOT NULL,
    ip                  TEXT NOT NULL,
    user_agent          TEXT NOT NULL
) STRICT;

CREATE INDEX refresh_families_user ON refresh_families (realm, user_id, created_at);
CREATE INDEX refresh_families_session ON refresh_families (session_id);

-- A token is dead when its family is revoked: revocation touches one family row,
-- never the tokens. Tokens go when their family is deleted.
CREATE TABLE refresh_tokens (
    hash           BLOB NOT NULL PRIMARY KEY,
    family_id      TEXT NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    scopes         TEXT NOT NULL,
    issued_at      INTEGER,
    used_at        INTEGER,
    successor_hash BLOB,
    sealed         BLOB
) STRICT;

CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

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

CREATE TABLE denied_jwts (
    realm      TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at INTEGER,
    created_at INTEGER,
    reason     TEXT NOT NULL,
    PRIMARY KEY (realm, jti)
) STRICT;

CREATE INDEX denied_jwts_expires ON denied_jwts (expires_at);

CREATE TABLE signing_keys (
    realm         TEXT NOT NULL REFERENCES realms (name) ON DELETE CASCADE,
    kid           TEXT NOT NULL,
    alg           TEXT NOT NULL,
    private_key   BLOB,
    public_jwk    BLOB,
    created_at    INTEGER,
    sign_from     INTEGER,
    sign_until    INTEGER,
    publish_until INTEGER,
    PRIMARY KEY (realm, kid)
) STRICT;

-- The audit trail outlives what it speaks of: no foreign keys, and deleting a
-- realm or user leaves its events. AUTOINCREMENT keeps IDs increasing, never reused.
CREATE TABLE audit_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    time       INTEGER,
    type       TEXT NOT NULL,
    realm      TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    session_id TEXT NOT NULL,
    family_id  TEXT NOT NULL,
    ip         TEXT NOT NULL,
    user_agent TEXT NOT NULL,
    details    TEXT NOT NULL
) STRICT;

CREATE INDEX audit_events_realm ON audit_events (realm, time);
CREATE INDEX audit_events_user ON audit_events (user_id, time);
CREATE INDEX audit_events_time ON audit_events (time);

-- +goose Down
DROP TABLE audit_events;
DROP TABLE signing_keys;
DROP TABLE denied_jwts;
DROP TABLE access_tokens;
DROP TABLE refresh_tokens;
DROP TABLE refresh_families;
DROP TABLE auth_codes;
DROP TABLE sessions;
DROP TABLE users;
DROP TABLE clients;
DROP TABLE realms;
