-- Keyed MACs of the plain-text passwords a seed file declared, by user name, so a
-- restart can tell an unchanged declaration without an argon2id hash per user.

-- +goose Up
CREATE TABLE seed_password_macs (
    realm    TEXT NOT NULL REFERENCES realms (name) ON DELETE CASCADE,
    username TEXT NOT NULL,
    mac      BLOB NOT NULL,
    PRIMARY KEY (realm, username)
) WITHOUT ROWID;

-- +goose Down
DROP TABLE seed_password_macs;
