-- A client's security stamp: every token issued to it before is dead, so
-- enabling a disabled client brings none of its old tokens back.

-- +goose Up
ALTER TABLE clients ADD COLUMN tokens_valid_after INTEGER;

-- +goose Down
ALTER TABLE clients DROP COLUMN tokens_valid_after;
