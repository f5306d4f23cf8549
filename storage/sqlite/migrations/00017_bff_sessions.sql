-- The sessions of `latchkey bff` (issue 15), shared by every BFF instance on
-- the store. id is the hex SHA-256 of the session cookie's value; sealed holds
-- the session's tokens, sealed by the BFF, opaque here. sid and subject let a
-- back-channel logout end every session of an issuer session or of a user.
-- No foreign key: a BFF session belongs to no realm of this store.

-- +goose Up
CREATE TABLE bff_sessions (
    id         TEXT NOT NULL PRIMARY KEY,
    sid        TEXT NOT NULL,
    subject    TEXT NOT NULL,
    sealed     BLOB,
    expires_at INTEGER NOT NULL,
    version    INTEGER NOT NULL
) STRICT;

CREATE INDEX bff_sessions_sid ON bff_sessions (sid);
CREATE INDEX bff_sessions_subject ON bff_sessions (subject);
CREATE INDEX bff_sessions_expires ON bff_sessions (expires_at);

-- +goose Down
DROP TABLE bff_sessions;
