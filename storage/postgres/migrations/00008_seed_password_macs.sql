-- Keyed MACs of the plain-text passwords a seed file declared, by user name, so a
-- restart can tell an unchanged declaration without an argon2id hash per user.

-- +goose Up
CREATE TABLE seed_password_macs (
    realm    text  NOT NULL REFERENCES realms (name) ON DELETE CASCADE,
    username text  NOT NULL,
    mac      bytea NOT NULL,
    PRIMARY KEY (realm, username)
);

-- +goose Down
DROP TABLE seed_password_macs;
