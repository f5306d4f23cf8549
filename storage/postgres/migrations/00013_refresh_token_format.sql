-- A client's refresh-token format: opaque (lk_rt_…) or jwt, a signed envelope
-- around the same secret for client libraries (keycloak-js) that decode it.

-- +goose Up
ALTER TABLE clients ADD COLUMN refresh_token_format text NOT NULL DEFAULT 'opaque';

-- +goose Down
ALTER TABLE clients DROP COLUMN refresh_token_format;
