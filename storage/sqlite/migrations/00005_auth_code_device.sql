-- A code remembers the browser it was issued to (the grant's device), and codes
-- are found by session, to bound how many one browser holds unredeemed.

-- +goose Up
ALTER TABLE auth_codes ADD COLUMN ip TEXT NOT NULL DEFAULT '';
ALTER TABLE auth_codes ADD COLUMN user_agent TEXT NOT NULL DEFAULT '';
CREATE INDEX auth_codes_session ON auth_codes (session_id, created_at);

-- +goose Down
DROP INDEX auth_codes_session;
ALTER TABLE auth_codes DROP COLUMN user_agent;
ALTER TABLE auth_codes DROP COLUMN ip;
