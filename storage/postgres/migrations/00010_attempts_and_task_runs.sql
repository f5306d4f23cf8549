-- State every instance must share (issue 12, item 2).
--
-- attempts holds the failure counts of the login and client-authentication
-- limits, by key (an account, a client, an address): failures, and the attempts
-- in flight (pending, until pending_until) where a limiter keeps those in the
-- store. forget_at is when the row is of no more use (failures forgotten, attempts
-- in flight ended), and the sweep deletes it then. task_runs holds when a periodic task (the sweep) last ran on any instance.

-- +goose Up
CREATE TABLE attempts (
    key           text PRIMARY KEY,
    failures      integer NOT NULL,
    last_failure  timestamptz NOT NULL,
    forget_at     timestamptz NOT NULL,
    pending       integer NOT NULL DEFAULT 0,
    pending_until timestamptz NOT NULL DEFAULT '-infinity'
);
CREATE INDEX attempts_forget_at ON attempts (forget_at);

CREATE TABLE task_runs (
    name     text PRIMARY KEY,
    last_run timestamptz NOT NULL
);

-- +goose Down
DROP TABLE task_runs;
DROP TABLE attempts;
