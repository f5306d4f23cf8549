-- Issue 14's client settings and the DPoP binding of refresh families.
--
-- clients.dpop_bound_access_tokens: the client must send a DPoP proof at the
-- token endpoint (RFC 9449 §5.2). clients.require_pushed_authorization_requests:
-- its authorization requests must come through PAR (RFC 9126 §6).
-- clients.token_exchange_audiences: the audiences it may ask for in a token
-- exchange (RFC 8693 §2.1); a text array.
-- refresh_families.jkt: the RFC 7638 thumbprint of the DPoP key the family's
-- refresh tokens are bound to (RFC 9449 §5); '' when unbound.

-- +goose Up
ALTER TABLE clients ADD COLUMN dpop_bound_access_tokens boolean NOT NULL DEFAULT false;
ALTER TABLE clients ADD COLUMN require_pushed_authorization_requests boolean NOT NULL DEFAULT false;
ALTER TABLE clients ADD COLUMN token_exchange_audiences text[] NOT NULL DEFAULT '{}';
ALTER TABLE refresh_families ADD COLUMN jkt text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE refresh_families DROP COLUMN jkt;
ALTER TABLE clients DROP COLUMN token_exchange_audiences;
ALTER TABLE clients DROP COLUMN require_pushed_authorization_requests;
ALTER TABLE clients DROP COLUMN dpop_bound_access_tokens;
