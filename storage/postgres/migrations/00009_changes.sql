-- The change feed (storage.ChangeFeedStore): revocations and changes to realms,
-- clients and signing keys, recorded in the transaction of the write that makes
-- them. seq comes from a sequence: increasing in the order rows are inserted, not
-- committed, so a reader may meet a gap that an open transaction fills later.

-- +goose Up
CREATE TABLE changes (
    seq       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time      timestamptz,
    realm     text NOT NULL,
    kind      text NOT NULL,
    subject   text NOT NULL,
    user_id   text NOT NULL,
    client_id text NOT NULL,
    until     timestamptz,
    reason    text NOT NULL
);
CREATE INDEX changes_realm_seq ON changes (realm, seq);
CREATE INDEX changes_time ON changes (time);

-- +goose Down
DROP TABLE changes;
