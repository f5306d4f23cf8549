-- A client's web origins: the origins whose pages may call the token, userinfo,
-- revocation, logout and account endpoints with credentials (CORS). An empty
-- list means the origins of the client's redirect URIs.

-- +goose Up
ALTER TABLE clients ADD COLUMN web_origins text[] NOT NULL DEFAULT '{}';

-- +goose Down
ALTER TABLE clients DROP COLUMN web_origins;
