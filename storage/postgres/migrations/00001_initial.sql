-- The first Latchkey schema. Conventions: a zero time is NULL, durations are
-- bigint nanoseconds, lists are text[], hashes and sealed bytes are bytea.

-- +goose Up
CREATE TABLE realms (
    name             text PRIMARY KEY,
    display_name     text NOT NULL,
    signing_alg      text NOT NULL,
    access_token_ttl bigint NOT NULL,
    created_at       timestamptz,
    updated_at       timestamptz
);

CREATE TABLE clients (
    realm                     text NOT NULL REFERENCES realms (name) ON DELETE CASCADE,
    id                        text NOT NULL,
    name                      text NOT NULL,
    secret_hash               text NOT NULL,
    redirect_uris             text[] NOT NULL,
    post_logout_redirect_uris text[] NOT NULL,
    grant_types               text[] NOT NULL,
    scopes                    text[] NOT NULL,
    audiences                 text[] NOT NULL,
    third_party               boolean NOT NULL,
    disabled                  boolean NOT NULL,
    access_token_ttl          bigint NOT NULL,
    access_token_format       text NOT NULL,
    refresh_preset            text NOT NULL,
    refresh_idle              bigint NOT NULL,
    refresh_absolute          bigint NOT NULL,
    refresh_retry_window      bigint NOT NULL,
    created_at                timestamptz,
    updated_at                timestamptz,
    PRIMARY KEY (realm, id)
);

CREATE TABLE users (
    id                 text PRIMARY KEY,
    realm              text NOT NULL REFERENCES realms (name) ON DELETE CASCADE,
    username           text NOT NULL,
    email              text NOT NULL,
    email_verified     boolean NOT NULL,
    name               text NOT NULL,
    password_hash      text NOT NULL,
    disabled           boolean NOT NULL,
    tokens_valid_after timestamptz,
    created_at         timestamptz,
    updated_at         timestamptz,
    UNIQUE (realm, username)
);
-- Emails are unique within a realm only when set.
CREATE UNIQUE INDEX users_realm_email ON users (realm, email) WHERE email <> '';

-- Sessions, codes, families and tokens carry no foreign keys to users or
-- clients: the contracts do not make their creation fail for a missing one.
-- DeleteRealm and DeleteUser remove them explicitly.
CREATE TABLE sessions (
    id              text PRIMARY KEY,
    realm           text NOT NULL,
    user_id         text NOT NULL,
    secret_hash     bytea,
    auth_time       timestamptz,
    created_at      timestamptz,
    last_seen_at    timestamptz,
    idle_expires_at timestamptz,
    expires_at      timestamptz,
    revoked_at      timestamptz,
    ip              text NOT NULL,
    user_agent      text NOT NULL
);
CREATE INDEX sessions_user ON sessions (realm, user_id);
CREATE INDEX sessions_idle_expires_at ON sessions (idle_expires_at);
CREATE INDEX sessions_expires_at ON sessions (expires_at);
CREATE INDEX sessions_revoked_at ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;

CREATE TABLE auth_codes (
    hash                  bytea PRIMARY KEY,
    realm                 text NOT NULL,
    client_id             text NOT NULL,
    user_id               text NOT NULL,
    session_id            text NOT NULL,
    redirect_uri          text NOT NULL,
    scopes                text[] NOT NULL,
    nonce                 text NOT NULL,
    code_challenge        text NOT NULL,
    code_challenge_method text NOT NULL,
    family_id             text NOT NULL,
    auth_time             timestamptz,
    created_at            timestamptz,
    expires_at            timestamptz,
    consumed_at           timestamptz
);
CREATE INDEX auth_codes_expires_at ON auth_codes (expires_at);

CREATE TABLE refresh_families (
    id                  text PRIMARY KEY,
    realm               text NOT NULL,
    client_id           text NOT NULL,
    user_id             text NOT NULL,
    session_id          text NOT NULL,
    scopes              text[] NOT NULL,
    audience            text[] NOT NULL,
    created_at          timestamptz,
    last_used_at        timestamptz,
    idle_expires_at     timestamptz,
    absolute_expires_at timestamptz,
    revoked_at          timestamptz,
    revoke_reason       text NOT NULL,
    ip                  text NOT NULL,
    user_agent          text NOT NULL
);
CREATE INDEX refresh_families_user ON refresh_families (realm, user_id);
CREATE INDEX refresh_families_session ON refresh_families (session_id) WHERE session_id <> '';
CREATE INDEX refresh_families_idle_expires_at ON refresh_families (idle_expires_at);
CREATE INDEX refresh_families_absolute_expires_at ON refresh_families (absolute_expires_at);
CREATE INDEX refresh_families_revoked_at ON refresh_families (revoked_at) WHERE revoked_at IS NOT NULL;

-- A token is dead when its family is revoked; it has no revoked flag of its own.
CREATE TABLE refresh_tokens (
    hash           bytea PRIMARY KEY,
    family_id      text NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    scopes         text[] NOT NULL,
    issued_at      timestamptz,
    used_at        timestamptz,
    successor_hash bytea,
    sealed         bytea
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

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

CREATE TABLE denied_jwts (
    realm      text NOT NULL,
    jti        text NOT NULL,
    expires_at timestamptz,
    created_at timestamptz,
    reason     text NOT NULL,
    PRIMARY KEY (realm, jti)
);
CREATE INDEX denied_jwts_expires_at ON denied_jwts (expires_at);

CREATE TABLE signing_keys (
    realm         text NOT NULL REFERENCES realms (name) ON DELETE CASCADE,
    kid           text NOT NULL,
    alg           text NOT NULL,
    private_key   bytea,
    public_jwk    bytea,
    created_at    timestamptz,
    sign_from     timestamptz,
    sign_until    timestamptz,
    publish_until timestamptz,
    PRIMARY KEY (realm, kid)
);

-- The audit trail outlives what it mentions: no foreign keys, kept on DeleteRealm.
CREATE TABLE audit_events (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time       timestamptz,
    type       text NOT NULL,
    realm      text NOT NULL,
    client_id  text NOT NULL,
    user_id    text NOT NULL,
    session_id text NOT NULL,
    family_id  text NOT NULL,
    ip         text NOT NULL,
    user_agent text NOT NULL,
    details    jsonb
);
CREATE INDEX audit_events_time ON audit_events (time);
CREATE INDEX audit_events_realm_time ON audit_events (realm, time);

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
