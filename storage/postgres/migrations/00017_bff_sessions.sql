-- The sessions of `latchkey bff` (issue 15), shared by every BFF instance on
-- the store. id is the hex SHA-256 of the session cookie's value; sealed holds
-- the session's tokens, sealed by the BFF, opaque here. sid and subject let a
-- back-channel logout end every session of an issuer session or of a user.
-- No foreign key: a BFF session belongs to no realm of this store.

-- +goose Up
CREATE TABLE bff_sessions (
    id         text PRIMARY KEY,
    sid        text NOT NULL,
    subject    text NOT NULL,
    sealed     bytea,
    expires_at timestamptz NOT NULL,
    version    bigint NOT NULL
);

CREATE INDEX bff_sessions_sid ON bff_sessions (sid);
CREATE INDEX bff_sessions_subject ON bff_sessions (subject);
CREATE INDEX bff_sessions_expires_at ON bff_sessions (expires_at);

-- +goose Down
DROP TABLE bff_sessions;
