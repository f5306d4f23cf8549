package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/latchkey/latchkey/storage"
)

const clientColumns = `realm, id, name, secret_hash, jwks, redirect_uris, post_logout_redirect_uris, grant_types,
	scopes, audiences, third_party, disabled, access_token_ttl, access_token_format, refresh_preset,
	refresh_idle, refresh_absolute, refresh_retry_window, created_at, updated_at,
	pkce_optional, id_token_signed_response_alg, tokens_valid_after, previous_secret_hash, previous_secret_expires_at,
	backchannel_logout_uri, backchannel_logout_session_required, web_origins, refresh_token_format,
	service_account_roles, default_scopes, lean_access_tokens,
	dpop_bound_access_tokens, require_pushed_authorization_requests, token_exchange_audiences`

func scanClient(row scanner) (storage.Client, error) {
	var c storage.Client
	var ttl, idle, absolute, retry int64
	err := row.Scan(&c.Realm, &c.ID, &c.Name, &c.SecretHash, &c.JWKS, &c.RedirectURIs, &c.PostLogoutRedirectURIs,
		&c.GrantTypes, &c.Scopes, &c.Audiences, &c.ThirdParty, &c.Disabled, &ttl, &c.Tokens.AccessTokenFormat,
		&c.Tokens.RefreshPreset, &idle, &absolute, &retry, nt(&c.CreatedAt), nt(&c.UpdatedAt),
		&c.PKCEOptional, &c.IDTokenSignedResponseAlg, nt(&c.TokensValidAfter),
		&c.PreviousSecretHash, nt(&c.PreviousSecretExpiresAt),
		&c.BackchannelLogoutURI, &c.BackchannelLogoutSessionRequired, &c.WebOrigins, &c.Tokens.RefreshTokenFormat,
		&c.ServiceAccountRoles, &c.DefaultScopes, &c.LeanAccessTokens,
		&c.DPoPBoundAccessTokens, &c.RequirePushedAuthorizationRequests, &c.TokenExchangeAudiences)
	c.Tokens.AccessTokenTTL = time.Duration(ttl)
	c.Tokens.RefreshIdle = time.Duration(idle)
	c.Tokens.RefreshAbsolute = time.Duration(absolute)
	c.Tokens.RefreshRetryWindow = time.Duration(retry)
	return c, err
}

// CreateClient stores a new client.
func (s *Store) CreateClient(ctx context.Context, c storage.Client, events ...storage.AuditEvent) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		// A new client has no roles of its own yet: its service-account roles may
		// name realm roles and other clients' roles only.
		c := c
		var err error
		if c.ServiceAccountRoles, err = existingRefs(ctx, tx, c.Realm, c.ServiceAccountRoles, nil); err != nil {
			return err
		}
		if err := insertClient(ctx, tx, c); err != nil {
			return classify(err)
		}
		return appendEvents(ctx, tx, events)
	})
	if err != nil {
		return fmt.Errorf("create client %q in realm %q: %w", c.ID, c.Realm, err)
	}
	return nil
}

func insertClient(ctx context.Context, q querier, c storage.Client) error {
	_, err := q.Exec(ctx, `INSERT INTO clients (`+clientColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33, $34, $35)`,
		c.Realm, c.ID, c.Name, c.SecretHash, bytesOrNull(c.JWKS), list(c.RedirectURIs), list(c.PostLogoutRedirectURIs),
		list(c.GrantTypes), list(c.Scopes), list(c.Audiences), c.ThirdParty, c.Disabled,
		int64(c.Tokens.AccessTokenTTL), c.Tokens.AccessTokenFormat, c.Tokens.RefreshPreset,
		int64(c.Tokens.RefreshIdle), int64(c.Tokens.RefreshAbsolute), int64(c.Tokens.RefreshRetryWindow),
		ts(c.CreatedAt), ts(c.UpdatedAt), c.PKCEOptional, c.IDTokenSignedResponseAlg, ts(c.TokensValidAfter),
		c.PreviousSecretHash, ts(c.PreviousSecretExpiresAt),
		c.BackchannelLogoutURI, c.BackchannelLogoutSessionRequired, list(c.WebOrigins), c.Tokens.RefreshTokenFormat,
		refsJSON(c.ServiceAccountRoles), list(c.DefaultScopes), c.LeanAccessTokens,
		c.DPoPBoundAccessTokens, c.RequirePushedAuthorizationRequests, list(c.TokenExchangeAudiences))
	if err != nil {
		return err
	}
	return recordClientChanged(ctx, q, c.Realm, c.ID, storage.Updated(c.CreatedAt, c.UpdatedAt))
}

// recordClientChanged records a ChangeClientChanged through q.
func recordClientChanged(ctx context.Context, q querier, realm, id string, at time.Time) error {
	return recordChange(ctx, q, storage.Change{Time: at, Realm: realm, Kind: storage.ChangeClientChanged, Subject: id, ClientID: id})
}

// GetClient returns the client.
func (s *Store) GetClient(ctx context.Context, realm, id string) (storage.Client, error) {
	c, err := getClient(ctx, s.pool, realm, id)
	if err != nil {
		return storage.Client{}, fmt.Errorf("client %q in realm %q: %w", id, realm, notFound(err))
	}
	return c, nil
}

func getClient(ctx context.Context, q querier, realm, id string) (storage.Client, error) {
	return scanClient(q.QueryRow(ctx, `SELECT `+clientColumns+` FROM clients WHERE realm = $1 AND id = $2`, realm, id))
}

// ListClients returns the realm's clients ordered by ID.
func (s *Store) ListClients(ctx context.Context, realm string) ([]storage.Client, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+clientColumns+` FROM clients WHERE realm = $1 ORDER BY id`, realm)
	if err != nil {
		return nil, fmt.Errorf("list clients of realm %q: %w", realm, err)
	}
	clients, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.Client, error) { return scanClient(row) })
	if err != nil {
		return nil, fmt.Errorf("list clients of realm %q: %w", realm, err)
	}
	return clients, nil
}

// UpdateClient locks the client's row (SELECT ... FOR UPDATE) for the read, so
// a concurrent update waits for this one and then reads what it wrote.
func (s *Store) UpdateClient(ctx context.Context, realm, id string, fn func(c *storage.Client) ([]storage.AuditEvent, error)) (storage.Client, error) {
	var out storage.Client
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		old, err := scanClient(tx.QueryRow(ctx, `SELECT `+clientColumns+` FROM clients WHERE realm = $1 AND id = $2 FOR UPDATE`, realm, id))
		if err != nil {
			return notFound(err)
		}
		c := old
		events, err := fn(&c)
		if err != nil {
			return errFn{err}
		}
		c.Realm, c.ID, c.CreatedAt = old.Realm, old.ID, old.CreatedAt
		reason := storage.ClientRevocation(old, &c)
		if c.ServiceAccountRoles, err = existingRefs(ctx, tx, realm, c.ServiceAccountRoles, old.ServiceAccountRoles); err != nil {
			return err
		}
		if _, err := updateClient(ctx, tx, c); err != nil {
			return classify(err)
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
		return storage.Client{}, wrapUpdate(err, "update client %q in realm %q", id, realm)
	}
	return out, nil
}

// updateClient replaces every column but the keys and created_at, and records
// the change.
func updateClient(ctx context.Context, q querier, c storage.Client) (int64, error) {
	tag, err := q.Exec(ctx, `
		UPDATE clients SET name = $3, secret_hash = $4, redirect_uris = $5, post_logout_redirect_uris = $6,
			grant_types = $7, scopes = $8, audiences = $9, third_party = $10, disabled = $11,
			access_token_ttl = $12, access_token_format = $13, refresh_preset = $14, refresh_idle = $15,
			refresh_absolute = $16, refresh_retry_window = $17, updated_at = $18, jwks = $19,
			pkce_optional = $20, id_token_signed_response_alg = $21, tokens_valid_after = $22,
			previous_secret_hash = $23, previous_secret_expires_at = $24,
			backchannel_logout_uri = $25, backchannel_logout_session_required = $26, web_origins = $27, refresh_token_format = $28,
			service_account_roles = $29, default_scopes = $30, lean_access_tokens = $31,
			dpop_bound_access_tokens = $32, require_pushed_authorization_requests = $33, token_exchange_audiences = $34
		WHERE realm = $1 AND id = $2`,
		c.Realm, c.ID, c.Name, c.SecretHash, list(c.RedirectURIs), list(c.PostLogoutRedirectURIs),
		list(c.GrantTypes), list(c.Scopes), list(c.Audiences), c.ThirdParty, c.Disabled,
		int64(c.Tokens.AccessTokenTTL), c.Tokens.AccessTokenFormat, c.Tokens.RefreshPreset,
		int64(c.Tokens.RefreshIdle), int64(c.Tokens.RefreshAbsolute), int64(c.Tokens.RefreshRetryWindow),
		ts(c.UpdatedAt), bytesOrNull(c.JWKS), c.PKCEOptional, c.IDTokenSignedResponseAlg, ts(c.TokensValidAfter),
		c.PreviousSecretHash, ts(c.PreviousSecretExpiresAt),
		c.BackchannelLogoutURI, c.BackchannelLogoutSessionRequired, list(c.WebOrigins), c.Tokens.RefreshTokenFormat,
		refsJSON(c.ServiceAccountRoles), list(c.DefaultScopes), c.LeanAccessTokens,
		c.DPoPBoundAccessTokens, c.RequirePushedAuthorizationRequests, list(c.TokenExchangeAudiences))
	if err != nil || tag.RowsAffected() == 0 {
		return 0, err
	}
	return tag.RowsAffected(), recordClientChanged(ctx, q, c.Realm, c.ID, c.UpdatedAt)
}

// revokeClientFamilies revokes a client's live families, for endAndRecord: args
// realm, client ID, at, reason.
const revokeClientFamilies = `UPDATE refresh_families SET revoked_at = $3, revoke_reason = $4
	WHERE realm = $1 AND client_id = $2 AND revoked_at IS NULL RETURNING ` + familyEnded

// deleteClientCodes deletes a client's codes not yet redeemed: args realm, client ID.
const deleteClientCodes = `DELETE FROM auth_codes WHERE realm = $1 AND client_id = $2 AND consumed_at IS NULL`

// endClientGrants ends all a client holds, in the caller's transaction, at its
// security stamp: its refresh families are revoked for reason, and its codes not
// yet redeemed are deleted. The stamp's move and every family revoked are recorded.
func endClientGrants(ctx context.Context, q querier, realm, id string, at time.Time, reason string) error {
	if err := recordClientRevoked(ctx, q, realm, id, at, reason); err != nil {
		return err
	}
	if _, err := endAndRecord(ctx, q, storage.ChangeFamilyRevoked, at, reason, revokeClientFamilies, realm, id, ts(at), reason); err != nil {
		return fmt.Errorf("revoke refresh families of client %q in realm %q: %w", id, realm, err)
	}
	if _, err := q.Exec(ctx, deleteClientCodes, realm, id); err != nil {
		return fmt.Errorf("delete codes of client %q in realm %q: %w", id, realm, err)
	}
	return nil
}

// DeleteClient deletes the client with its refresh families (whose tokens go by
// foreign-key cascade), codes and consents, in one transaction.
func (s *Store) DeleteClient(ctx context.Context, realm, id string, events ...storage.AuditEvent) error {
	at := storage.DeletionTime(events)
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM clients WHERE realm = $1 AND id = $2`, realm, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return storage.ErrNotFound
		}
		// The client's end, and that of every family still live, are recorded.
		if err := recordClientChanged(ctx, tx, realm, id, at); err != nil {
			return err
		}
		if err := recordClientRevoked(ctx, tx, realm, id, at, storage.ReasonDeleted); err != nil {
			return err
		}
		if _, err := endAndRecord(ctx, tx, storage.ChangeFamilyRevoked, at, storage.ReasonDeleted,
			`DELETE FROM refresh_families WHERE realm = $1 AND client_id = $2 RETURNING realm, id, user_id, client_id, revoked_at`,
			realm, id); err != nil {
			return fmt.Errorf("deleting refresh families: %w", err)
		}
		// A client registered later under the same ID must not inherit the consents.
		for _, table := range []string{"auth_codes", "consents", "pushed_requests", "device_grants"} {
			// table comes from the fixed list above, never from input.
			if _, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE realm = $1 AND client_id = $2`, realm, id); err != nil {
				return fmt.Errorf("deleting %s: %w", table, err)
			}
		}
		// Its roles too, with every reference to them (a client registered later
		// under the same ID must not inherit them either).
		if err := deleteClientRoles(ctx, tx, realm, id, at); err != nil {
			return err
		}
		return appendEvents(ctx, tx, events)
	})
	if err != nil {
		return fmt.Errorf("delete client %q in realm %q: %w", id, realm, err)
	}
	return nil
}

// recordClientRevoked records a ChangeClientRevoked through q.
func recordClientRevoked(ctx context.Context, q querier, realm, id string, at time.Time, reason string) error {
	return recordChange(ctx, q, storage.Change{Time: at, Realm: realm, Kind: storage.ChangeClientRevoked,
		Subject: id, ClientID: id, Reason: reason})
}
