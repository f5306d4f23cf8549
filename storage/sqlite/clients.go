package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/latchkey/latchkey/storage"
)

const clientCols = `realm, id, name, secret_hash, jwks, redirect_uris, post_logout_redirect_uris, grant_types,
	scopes, audiences, third_party, disabled, pkce_optional, id_token_signed_response_alg,
	access_token_ttl, access_token_format, refresh_preset, refresh_idle, refresh_absolute, refresh_retry_window,
	created_at, updated_at, tokens_valid_after`

func scanClient(row rowScanner) (storage.Client, error) {
	var c storage.Client
	err := row.Scan(&c.Realm, &c.ID, &c.Name, &c.SecretHash, &c.JWKS,
		jsonCol{&c.RedirectURIs}, jsonCol{&c.PostLogoutRedirectURIs}, jsonCol{&c.GrantTypes},
		jsonCol{&c.Scopes}, jsonCol{&c.Audiences}, &c.ThirdParty, &c.Disabled,
		&c.PKCEOptional, &c.IDTokenSignedResponseAlg, &c.Tokens.AccessTokenTTL, &c.Tokens.AccessTokenFormat, &c.Tokens.RefreshPreset,
		&c.Tokens.RefreshIdle, &c.Tokens.RefreshAbsolute, &c.Tokens.RefreshRetryWindow,
		timeCol{&c.CreatedAt}, timeCol{&c.UpdatedAt}, timeCol{&c.TokensValidAfter})
	return c, err
}

func clientName(realm, id string) string { return fmt.Sprintf("client %q in realm %q", id, realm) }

func (s *Store) CreateClient(ctx context.Context, c storage.Client) error {
	return s.inTx(ctx, func(ctx context.Context, tx *stmtTx) error { return createClient(ctx, tx, c) })
}

func createClient(ctx context.Context, tx *stmtTx, c storage.Client) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO clients (`+clientCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.Realm, c.ID, c.Name, c.SecretHash, blob(c.JWKS),
		jsonText(c.RedirectURIs), jsonText(c.PostLogoutRedirectURIs), jsonText(c.GrantTypes),
		jsonText(c.Scopes), jsonText(c.Audiences), c.ThirdParty, c.Disabled,
		c.PKCEOptional, c.IDTokenSignedResponseAlg, int64(c.Tokens.AccessTokenTTL), c.Tokens.AccessTokenFormat, c.Tokens.RefreshPreset,
		int64(c.Tokens.RefreshIdle), int64(c.Tokens.RefreshAbsolute), int64(c.Tokens.RefreshRetryWindow),
		micros(c.CreatedAt), micros(c.UpdatedAt), micros(c.TokensValidAfter))
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

func (s *Store) UpdateClient(ctx context.Context, c storage.Client) error {
	return s.inTx(ctx, func(ctx context.Context, tx *stmtTx) error { return updateClient(ctx, tx, c) })
}

func updateClient(ctx context.Context, tx *stmtTx, c storage.Client) error {
	res, err := tx.ExecContext(ctx, `UPDATE clients SET name = ?, secret_hash = ?, jwks = ?, redirect_uris = ?,
		post_logout_redirect_uris = ?, grant_types = ?, scopes = ?, audiences = ?, third_party = ?, disabled = ?,
		pkce_optional = ?, id_token_signed_response_alg = ?, access_token_ttl = ?, access_token_format = ?, refresh_preset = ?, refresh_idle = ?, refresh_absolute = ?,
		refresh_retry_window = ?, updated_at = ?
		WHERE realm = ? AND id = ?`,
		c.Name, c.SecretHash, blob(c.JWKS), jsonText(c.RedirectURIs),
		jsonText(c.PostLogoutRedirectURIs), jsonText(c.GrantTypes), jsonText(c.Scopes), jsonText(c.Audiences),
		c.ThirdParty, c.Disabled, c.PKCEOptional, c.IDTokenSignedResponseAlg,
		int64(c.Tokens.AccessTokenTTL), c.Tokens.AccessTokenFormat, c.Tokens.RefreshPreset,
		int64(c.Tokens.RefreshIdle), int64(c.Tokens.RefreshAbsolute), int64(c.Tokens.RefreshRetryWindow),
		micros(c.UpdatedAt), c.Realm, c.ID)
	return mustChange(res, err, clientName(c.Realm, c.ID))
}

func (s *Store) DeleteClient(ctx context.Context, realm, id string) error {
	return s.inTx(ctx, func(ctx context.Context, tx *stmtTx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM clients WHERE realm = ? AND id = ?`, realm, id)
		if err := mustChange(res, err, clientName(realm, id)); err != nil {
			return err
		}
		// A client registered later under the same ID must not inherit the consents.
		_, err = tx.ExecContext(ctx, `DELETE FROM consents WHERE realm = ? AND client_id = ?`, realm, id)
		return err
	})
}
