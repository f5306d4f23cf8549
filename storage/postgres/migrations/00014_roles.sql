-- Roles (issue 13): realm roles (client_id '') and client roles, composites as
-- jsonb lists of references ({"client_id": ..., "name": ...}); users' direct role
-- mappings and names (OIDC given_name, family_name); clients' service-account
-- roles, default scopes and lean access tokens.
--
-- A client role has no foreign key to its client (a realm role has no client):
-- DeleteClient removes the client's roles and the references to them itself.
-- The GIN index serves DeleteRole's search for the users that name a role (@>).

-- +goose Up
CREATE TABLE roles (
    realm       text NOT NULL REFERENCES realms (name) ON DELETE CASCADE,
    client_id   text NOT NULL,
    name        text NOT NULL,
    description text NOT NULL,
    composites  jsonb NOT NULL,
    created_at  timestamptz,
    updated_at  timestamptz,
    PRIMARY KEY (realm, client_id, name)
);

ALTER TABLE users ADD COLUMN given_name text NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN family_name text NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN roles jsonb NOT NULL DEFAULT '[]';
ALTER TABLE clients ADD COLUMN service_account_roles jsonb NOT NULL DEFAULT '[]';
ALTER TABLE clients ADD COLUMN default_scopes text[] NOT NULL DEFAULT '{}';
ALTER TABLE clients ADD COLUMN lean_access_tokens boolean NOT NULL DEFAULT false;

CREATE INDEX users_roles ON users USING gin (roles jsonb_path_ops);

-- +goose Down
DROP INDEX users_roles;
ALTER TABLE clients DROP COLUMN lean_access_tokens;
ALTER TABLE clients DROP COLUMN default_scopes;
ALTER TABLE clients DROP COLUMN service_account_roles;
ALTER TABLE users DROP COLUMN roles;
ALTER TABLE users DROP COLUMN family_name;
ALTER TABLE users DROP COLUMN given_name;
DROP TABLE roles;
