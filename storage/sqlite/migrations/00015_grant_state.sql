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
    realm      TEXT NOT NULL,
    jkt        TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at INTEGER,
    PRIMARY KEY (realm, jkt, jti)
) STRICT;

CREATE INDEX dpop_proofs_expires ON dpop_proofs (expires_at);

CREATE TABLE pushed_requests (
    hash       BLOB NOT NULL PRIMARY KEY,
    realm      TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    params     BLOB,
    created_at INTEGER,
    expires_at INTEGER,
    used_at    INTEGER
) STRICT;

CREATE INDEX pushed_requests_expires ON pushed_requests (expires_at);

CREATE TABLE device_grants (
    device_code_hash BLOB NOT NULL PRIMARY KEY,
    user_code_hash   BLOB NOT NULL UNIQUE,
    realm            TEXT NOT NULL,
    client_id        TEXT NOT NULL,
    scopes           TEXT NOT NULL,
    audience         TEXT NOT NULL,
    status           TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    session_id       TEXT NOT NULL,
    auth_time        INTEGER,
    family_id        TEXT NOT NULL,
    interval_ns      INTEGER NOT NULL,
    last_polled_at   INTEGER,
    created_at       INTEGER,
    expires_at       INTEGER,
    ip               TEXT NOT NULL,
    user_agent       TEXT NOT NULL
) STRICT;

CREATE INDEX device_grants_expires ON device_grants (expires_at);

-- +goose Down
DROP TABLE device_grants;
DROP TABLE pushed_requests;
DROP TABLE dpop_proofs;
