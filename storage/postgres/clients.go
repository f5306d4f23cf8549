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
	pkce_optional, id_token_signed_response_alg, tokens_valid_after`

func scanClient(row scanner) (storage.Client, error) {
	var c storage.Client
	var ttl, idle, absolute, retry int64
	err := row.Scan(&c.Realm, &c.ID, &c.Name, &c.SecretHash, &c.JWKS, &c.RedirectURIs, &c.PostLogoutRedirectURIs,
		&c.GrantTypes, &c.Scopes, &c.Audiences, &c.ThirdParty, &c.Disabled, &ttl, &c.Tokens.AccessTokenFormat,
		&c.Tokens.RefreshPreset, &idle, &absolute, &retry, nt(&c.CreatedAt), nt(&c.UpdatedAt),
		&c.PKCEOptional, &c.IDTokenSignedResponseAlg, nt(&c.TokensValidAfter))
	c.Tokens.AccessTokenTTL = time.Duration(ttl)
	c.Tokens.RefreshIdle = time.Duration(idle)
	c.Tokens.RefreshAbsolute = time.Duration(absolute)
	c.Tokens.RefreshRetryWindow = time.Duration(retry)
	return c, err
}

// CreateClient stores a new client.
func (s *Store) CreateClient(ctx context.Context, c storage.Client) error {
	if err := insertClient(ctx, s.pool, c); err != nil {
		return fmt.Errorf("create client %q in realm %q: %w", c.ID, c.Realm, classify(err))
	}
	return nil
}

func insertClient(ctx context.Context, q querier, c storage.Client) error {
	_, err := q.Exec(ctx, `INSERT INTO clients (`+clientColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)`,
		c.Realm, c.ID, c.Name, c.SecretHash, bytesOrNull(c.JWKS), list(c.RedirectURIs), list(c.PostLogoutRedirectURIs),
		list(c.GrantTypes), list(c.Scopes), list(c.Audiences), c.ThirdParty, c.Disabled,
		int64(c.Tokens.AccessTokenTTL), c.Tokens.AccessTokenFormat, c.Tokens.RefreshPreset,
		int64(c.Tokens.RefreshIdle), int64(c.Tokens.RefreshAbsolute), int64(c.Tokens.RefreshRetryWindow),
		ts(c.CreatedAt), ts(c.UpdatedAt), c.PKCEOptional, c.IDTokenSignedResponseAlg, ts(c.TokensValidAfter))
	return err
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

// UpdateClient replaces every field but Realm, ID and CreatedAt.
func (s *Store) UpdateClient(ctx context.Context, c storage.Client) error {
	n, err := updateClient(ctx, s.pool, c)
	if err != nil {
		return fmt.Errorf("update client %q in realm %q: %w", c.ID, c.Realm, classify(err))
	}
	if n == 0 {
		return fmt.Errorf("update client %q in realm %q: %w", c.ID, c.Realm, storage.ErrNotFound)
	}
	return nil
}

func updateClient(ctx context.Context, q querier, c storage.Client) (int64, error) {
	tag, err := q.Exec(ctx, `
		UPDATE clients SET name = $3, secret_hash = $4, redirect_uris = $5, post_logout_redirect_uris = $6,
			grant_types = $7, scopes = $8, audiences = $9, third_party = $10, disabled = $11,
			access_token_ttl = $12, access_token_format = $13, refresh_preset = $14, refresh_idle = $15,
			refresh_absolute = $16, refresh_retry_window = $17, updated_at = $18, jwks = $19,
			pkce_optional = $20, id_token_signed_response_alg = $21
		WHERE realm = $1 AND id = $2`,
		c.Realm, c.ID, c.Name, c.SecretHash, list(c.RedirectURIs), list(c.PostLogoutRedirectURIs),
		list(c.GrantTypes), list(c.Scopes), list(c.Audiences), c.ThirdParty, c.Disabled,
		int64(c.Tokens.AccessTokenTTL), c.Tokens.AccessTokenFormat, c.Tokens.RefreshPreset,
		int64(c.Tokens.RefreshIdle), int64(c.Tokens.RefreshAbsolute), int64(c.Tokens.RefreshRetryWindow),
		ts(c.UpdatedAt), bytesOrNull(c.JWKS), c.PKCEOptional, c.IDTokenSignedResponseAlg)
	return tag.RowsAffected(), err
}

// DeleteClient deletes the client.
func (s *Store) DeleteClient(ctx context.Context, realm, id string) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM clients WHERE realm = $1 AND id = $2`, realm, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return storage.ErrNotFound
		}
		// A client registered later under the same ID must not inherit the consents.
		_, err = tx.Exec(ctx, `DELETE FROM consents WHERE realm = $1 AND client_id = $2`, realm, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete client %q in realm %q: %w", id, realm, err)
	}
	return nil
}
