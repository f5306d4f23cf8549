-- The state of the grants of issue 14, shared by every instance on the store.
--
-- dpop_proofs remembers each DPoP proof's jti, per realm and key thumbprint,
-- until it expires, so none is accepted twice (RFC 9449 §11.1).
-- pushed_requests holds pushed authorization requests (RFC 9126) by the hash of
-- their request_uri until used (used_at) or expired.
-- device_grants holds device authorizations (RFC 8628) by the hash of the device
-- code, found by the keyed hash of the user code; interval_ns is the polling
-- interval, which slow_down lengthens.
-- Like client_assertions, none has a foreign key: DeleteRealm removes their rows.

-- +goose Up
CREATE TABLE dpop_proofs (
    realm      text NOT NULL,
    jkt        text NOT NULL,
    jti        text NOT NULL,
    expires_at timestamptz,
    PRIMARY KEY (realm, jkt, jti)
);
CREATE INDEX dpop_proofs_expires_at ON dpop_proofs (expires_at);

CREATE TABLE pushed_requests (
    hash       bytea PRIMARY KEY,
    realm      text NOT NULL,
    client_id  text NOT NULL,
    params     bytea,
    created_at timestamptz,
    expires_at timestamptz,
    used_at    timestamptz
);
CREATE INDEX pushed_requests_expires_at ON pushed_requests (expires_at);

CREATE TABLE device_grants (
    device_code_hash bytea PRIMARY KEY,
    user_code_hash   bytea NOT NULL UNIQUE,
    realm            text NOT NULL,
    client_id        text NOT NULL,
    scopes           text[] NOT NULL,
    audience         text[] NOT NULL,
    status           text NOT NULL,
    user_id          text NOT NULL,
    session_id       text NOT NULL,
    auth_time        timestamptz,
    family_id        text NOT NULL,
    interval_ns      bigint NOT NULL,
    last_polled_at   timestamptz,
    created_at       timestamptz,
    expires_at       timestamptz,
    ip               text NOT NULL,
    user_agent       text NOT NULL
);
CREATE INDEX device_grants_expires_at ON device_grants (expires_at);

-- +goose Down
DROP TABLE device_grants;
DROP TABLE pushed_requests;
DROP TABLE dpop_proofs;
