-- The change feed (storage.ChangeFeedStore): revocations and changes to realms,
-- clients and signing keys, recorded in the transaction of the write that makes
-- them. AUTOINCREMENT so a seq is never reused, even after the newest rows are purged.

-- +goose Up
CREATE TABLE changes (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    time      INTEGER,
    realm     TEXT NOT NULL,
    kind      TEXT NOT NULL,
    subject   TEXT NOT NULL,
    user_id   TEXT NOT NULL,
    client_id TEXT NOT NULL,
    until     INTEGER,
    reason    TEXT NOT NULL
) STRICT;
CREATE INDEX changes_realm_seq ON changes (realm, seq);
CREATE INDEX changes_time ON changes (time);

-- +goose Down
DROP TABLE changes;
