package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/latchkey/latchkey/storage"
)

const clientCols = `realm, id, name, secret_hash, jwks, redirect_uris, post_logout_redirect_uris, grant_types,
	scopes, audiences, third_party, disabled, pkce_optional, id_token_signed_response_alg,
	access_token_ttl, access_token_format, refresh_preset, refresh_idle, refresh_absolute, refresh_retry_window,
	created_at, updated_at, tokens_valid_after, previous_secret_hash, previous_secret_expires_at,
	backchannel_logout_uri, backchannel_logout_session_required, web_origins, refresh_token_format,
	service_account_roles, default_scopes, lean_access_tokens,
	dpop_bound_access_tokens, require_pushed_authorization_requests, token_exchange_audiences`

func scanClient(row rowScanner) (storage.Client, error) {
	var c storage.Client
	err := row.Scan(&c.Realm, &c.ID, &c.Name, &c.SecretHash, &c.JWKS,
		jsonCol{&c.RedirectURIs}, jsonCol{&c.PostLogoutRedirectURIs}, jsonCol{&c.GrantTypes},
		jsonCol{&c.Scopes}, jsonCol{&c.Audiences}, &c.ThirdParty, &c.Disabled,
		&c.PKCEOptional, &c.IDTokenSignedResponseAlg, &c.Tokens.AccessTokenTTL, &c.Tokens.AccessTokenFormat, &c.Tokens.RefreshPreset,
		&c.Tokens.RefreshIdle, &c.Tokens.RefreshAbsolute, &c.Tokens.RefreshRetryWindow,
		timeCol{&c.CreatedAt}, timeCol{&c.UpdatedAt}, timeCol{&c.TokensValidAfter},
		&c.PreviousSecretHash, timeCol{&c.PreviousSecretExpiresAt},
		&c.BackchannelLogoutURI, &c.BackchannelLogoutSessionRequired, jsonCol{&c.WebOrigins}, &c.Tokens.RefreshTokenFormat,
		jsonCol{&c.ServiceAccountRoles}, jsonCol{&c.DefaultScopes}, &c.LeanAccessTokens,
		&c.DPoPBoundAccessTokens, &c.RequirePushedAuthorizationRequests, jsonCol{&c.TokenExchangeAudiences})
	return c, err
}

func clientName(realm, id string) string { return fmt.Sprintf("client %q in realm %q", id, realm) }

func (s *Store) CreateClient(ctx context.Context, c storage.Client, events ...storage.AuditEvent) error {
	return s.inTx(ctx, func(ctx context.Context, tx *stmtTx) error {
		// A new client has no roles of its own yet: its service-account roles may
		// name realm roles and other clients' roles only.
		var err error
		if c.ServiceAccountRoles, err = existingRefs(ctx, tx, c.Realm, c.ServiceAccountRoles, nil); err != nil {
			return err
		}
		if err := createClient(ctx, tx, c); err != nil {
			return err
		}
		return appendEvents(ctx, tx, events)
	})
}

func createClient(ctx context.Context, tx *stmtTx, c storage.Client) error {
	if err := insertClient(ctx, tx, c); err != nil {
		return err
	}
	return recordClientChanged(ctx, tx, c.Realm, c.ID, storage.Updated(c.CreatedAt, c.UpdatedAt))
}

// recordClientChanged records a ChangeClientChanged in the caller's transaction.
func recordClientChanged(ctx context.Context, tx *stmtTx, realm, id string, at time.Time) error {
	return recordChange(ctx, tx, storage.Change{Time: at, Realm: realm, Kind: storage.ChangeClientChanged,
		Subject: id, ClientID: id})
}

func insertClient(ctx context.Context, tx *stmtTx, c storage.Client) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO clients (`+clientCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.Realm, c.ID, c.Name, c.SecretHash, blob(c.JWKS),
		jsonText(c.RedirectURIs), jsonText(c.PostLogoutRedirectURIs), jsonText(c.GrantTypes),
		jsonText(c.Scopes), jsonText(c.Audiences), c.ThirdParty, c.Disabled,
		c.PKCEOptional, c.IDTokenSignedResponseAlg, int64(c.Tokens.AccessTokenTTL), c.Tokens.AccessTokenFormat, c.Tokens.RefreshPreset,
		int64(c.Tokens.RefreshIdle), int64(c.Tokens.RefreshAbsolute), int64(c.Tokens.RefreshRetryWindow),
		micros(c.CreatedAt), micros(c.UpdatedAt), micros(c.TokensValidAfter),
		c.PreviousSecretHash, micros(c.PreviousSecretExpiresAt),
		c.BackchannelLogoutURI, c.BackchannelLogoutSessionRequired, jsonText(c.WebOrigins), c.Tokens.RefreshTokenFormat,
		refsText(c.ServiceAccountRoles), jsonText(c.DefaultScopes), c.LeanAccessTokens,
		c.DPoPBoundAccessTokens, c.RequirePushedAuthorizationRequests, jsonText(c.TokenExchangeAudiences))
	return mapWriteError(err, clientName(c.Realm, c.ID))
}

func (s *Store) GetClient(ctx context.Context, realm, id string) (storage.Client, error) {
	return getClient(ctx, s.reader, realm, id)
}

func getClient(ctx context.Context, q querier, realm, id string) (storage.Client, error) {
	c, err := scanClient(q.QueryRowContext(ctx, `SELECT `+clientCols+` FROM clients WHERE realm = ? AND id = ?`, realm, id))
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("%s: %w", clientName(realm, id), storage.ErrNotFound)
	}
	return c, err
}

func (s *Store) ListClients(ctx context.Context, realm string) ([]storage.Client, error) {
	return list(ctx, s.reader, scanClient, `SELECT `+clientCols+` FROM clients WHERE realm = ? ORDER BY id`, realm)
}

// UpdateClient runs fn in the writer's transaction: nothing else writes between
// its read and its write.
func (s *Store) UpdateClient(ctx context.Context, realm, id string, fn func(c *storage.Client) ([]storage.AuditEvent, error)) (storage.Client, error) {
	var out storage.Client
	err := s.inTx(ctx, func(ctx context.Context, tx *stmtTx) error {
		old, err := getClient(ctx, tx, realm, id)
		if err != nil {
			return err
		}
		c := old
		events, err := fn(&c)
		if err != nil {
			return err
		}
		c.Realm, c.ID, c.CreatedAt = old.Realm, old.ID, old.CreatedAt
		reason := storage.ClientRevocation(old, &c)
		if c.ServiceAccountRoles, err = existingRefs(ctx, tx, realm, c.ServiceAccountRoles, old.ServiceAccountRoles); err != nil {
			return err
		}
		if err := updateClient(ctx, tx, c); err != nil {
			return err
		}
		if reason != "" {
			if err := endClientGrants(ctx, tx, realm, id, c.TokensValidAfter, reason); err != nil {
				return err
			}
		}
		out = c
		return appendEvents(ctx, tx, events)
	})
	if err != nil {
		return storage.Client{}, err
	}
	return out, nil
}

// updateClient replaces every column but the keys and created_at, and records
// the change.
func updateClient(ctx context.Context, tx *stmtTx, c storage.Client) error {
	res, err := tx.ExecContext(ctx, `UPDATE clients SET name = ?, secret_hash = ?, jwks = ?, redirect_uris = ?,
		post_logout_redirect_uris = ?, grant_types = ?, scopes = ?, audiences = ?, third_party = ?, disabled = ?,
		pkce_optional = ?, id_token_signed_response_alg = ?, access_token_ttl = ?, access_token_format = ?, refresh_preset = ?, refresh_idle = ?, refresh_absolute = ?,
		refresh_retry_window = ?, updated_at = ?, tokens_valid_after = ?, previous_secret_hash = ?, previous_secret_expires_at = ?,
		backchannel_logout_uri = ?, backchannel_logout_session_required = ?, web_origins = ?, refresh_token_format = ?,
		service_account_roles = ?, default_scopes = ?, lean_access_tokens = ?,
		dpop_bound_access_tokens = ?, require_pushed_authorization_requests = ?, token_exchange_audiences = ?
		WHERE realm = ? AND id = ?`,
		c.Name, c.SecretHash, blob(c.JWKS), jsonText(c.RedirectURIs),
		jsonText(c.PostLogoutRedirectURIs), jsonText(c.GrantTypes), jsonText(c.Scopes), jsonText(c.Audiences),
		c.ThirdParty, c.Disabled, c.PKCEOptional, c.IDTokenSignedResponseAlg,
		int64(c.Tokens.AccessTokenTTL), c.Tokens.AccessTokenFormat, c.Tokens.RefreshPreset,
		int64(c.Tokens.RefreshIdle), int64(c.Tokens.RefreshAbsolute), int64(c.Tokens.RefreshRetryWindow),
		micros(c.UpdatedAt), micros(c.TokensValidAfter), c.PreviousSecretHash, micros(c.PreviousSecretExpiresAt),
		c.BackchannelLogoutURI, c.BackchannelLogoutSessionRequired, jsonText(c.WebOrigins), c.Tokens.RefreshTokenFormat,
		refsText(c.ServiceAccountRoles), jsonText(c.DefaultScopes), c.LeanAccessTokens,
		c.DPoPBoundAccessTokens, c.RequirePushedAuthorizationRequests, jsonText(c.TokenExchangeAudiences),
		c.Realm, c.ID)
	if err := mustChange(res, err, clientName(c.Realm, c.ID)); err != nil {
		return err
	}
	return recordClientChanged(ctx, tx, c.Realm, c.ID, c.UpdatedAt)
}

// revokeClientFamilies revokes a client's live families: args at, reason, realm, client ID.
const revokeClientFamilies = `UPDATE refresh_families SET revoked_at = ?, revoke_reason = ?
	WHERE realm = ? AND client_id = ? AND revoked_at IS NULL`

// deleteClientCodes deletes a client's codes not yet redeemed: args realm, client ID.
const deleteClientCodes = `DELETE FROM auth_codes WHERE realm = ? AND client_id = ? AND consumed_at IS NULL`

// endClientGrants ends all a client holds, in the caller's transaction, at its
// security stamp: its refresh families are revoked for reason, and its codes not
// yet redeemed are deleted. The stamp's move and every family revoked are
// recorded in the change feed.
func endClientGrants(ctx context.Context, tx *stmtTx, realm, id string, at time.Time, reason string) error {
	if err := recordClientEnds(ctx, tx, realm, id, at, reason); err != nil {
		return fmt.Errorf("end what %s holds: %w", clientName(realm, id), err)
	}
	if _, err := tx.ExecContext(ctx, revokeClientFamilies, micros(at), reason, realm, id); err != nil {
		return fmt.Errorf("end what %s holds: %w", clientName(realm, id), err)
	}
	if _, err := tx.ExecContext(ctx, deleteClientCodes, realm, id); err != nil {
		return fmt.Errorf("end what %s holds: %w", clientName(realm, id), err)
	}
	return nil
}

// recordClientEnds records a ChangeClientRevoked and the revocation of the
// client's families not yet revoked, before the caller ends them.
func recordClientEnds(ctx context.Context, tx *stmtTx, realm, id string, at time.Time, reason string) error {
	if err := recordChange(ctx, tx, storage.Change{Time: at, Realm: realm, Kind: storage.ChangeClientRevoked,
		Subject: id, ClientID: id, Reason: reason}); err != nil {
		return err
	}
	return recordRevokedFamilies(ctx, tx, at, reason, `realm = ? AND client_id = ?`, realm, id)
}

func (s *Store) DeleteClient(ctx context.Context, realm, id string, events ...storage.AuditEvent) error {
	at := storage.DeletionTime(events)
	return s.inTx(ctx, func(ctx context.Context, tx *stmtTx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM clients WHERE realm = ? AND id = ?`, realm, id)
		if err := mustChange(res, err, clientName(realm, id)); err != nil {
			return err
		}
		if err := recordClientChanged(ctx, tx, realm, id, at); err != nil {
			return err
		}
		if err := recordClientEnds(ctx, tx, realm, id, at, storage.ReasonDeleted); err != nil {
			return err
		}
		// What was issued to the client goes with it: its refresh families (their
		// tokens follow), its codes, and the consents, which a client registered
		// later under the same ID must not inherit.
		for _, table := range []string{"refresh_families", "auth_codes", "consents", "pushed_requests", "device_grants"} {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE realm = ? AND client_id = ?`, realm, id); err != nil {
				return fmt.Errorf("%s: deleting %s: %w", clientName(realm, id), table, err)
			}
		}
		// Its roles too, with every reference to them (a client registered later
		// under the same ID must not inherit them either).
		if err := deleteClientRoles(ctx, tx, realm, id, at); err != nil {
			return fmt.Errorf("%s: %w", clientName(realm, id), err)
		}
		return appendEvents(ctx, tx, events)
	})
}
