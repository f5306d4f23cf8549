-- Roles (issue 13): realm roles (client_id '') and client roles, composites as
-- JSON lists of references ({"client_id": ..., "name": ...}); users' direct role
-- mappings and names (OIDC given_name, family_name); clients' service-account
-- roles, default scopes and lean access tokens.
--
-- A client role has no foreign key to its client (a realm role has no client):
-- DeleteClient removes the client's roles and the references to them itself.

-- +goose Up
CREATE TABLE roles (
    realm       TEXT NOT NULL REFERENCES realms (name) ON DELETE CASCADE,
    client_id   TEXT NOT NULL,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    composites  TEXT NOT NULL,
    created_at  INTEGER,
    updated_at  INTEGER,
    PRIMARY KEY (realm, client_id, name)
) STRICT;

ALTER TABLE users ADD COLUMN given_name TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN family_name TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN roles TEXT NOT NULL DEFAULT '[]';
ALTER TABLE clients ADD COLUMN service_account_roles TEXT NOT NULL DEFAULT '[]';
ALTER TABLE clients ADD COLUMN default_scopes TEXT NOT NULL DEFAULT '[]';
ALTER TABLE clients ADD COLUMN lean_access_tokens INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE clients DROP COLUMN lean_access_tokens;
ALTER TABLE clients DROP COLUMN default_scopes;
ALTER TABLE clients DROP COLUMN service_account_roles;
ALTER TABLE users DROP COLUMN roles;
ALTER TABLE users DROP COLUMN family_name;
ALTER TABLE users DROP COLUMN given_name;
DROP TABLE roles;
