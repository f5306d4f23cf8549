package grants

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/latchkey/latchkey/internal/ident"
	"github.com/latchkey/latchkey/internal/protocol"
	"github.com/latchkey/latchkey/internal/token"
	"github.com/latchkey/latchkey/storage"
)

// authorizationCode redeems a code (RFC 6749 §4.1.3): an access token for the
// user, an ID token when openid was granted, and a refresh token whenever the
// client may use the refresh_token grant, as Keycloak does: an offline one when
// offline_access was granted, else one bound to the browser session
// (token.SessionBound).
type authorizationCode struct{ d Deps }

// AuthorizationCode returns the authorization_code grant.
func AuthorizationCode(d Deps) Grant { return authorizationCode{d} }

func (authorizationCode) Type() string { return AuthorizationCodeType }

func (g authorizationCode) Token(ctx context.Context, req Request) (_ token.Response, err error) {
	form, client, realm := req.Form, req.Client, req.Realm
	if form.Get("code") == "" {
		return token.Response{}, protocol.New(protocol.InvalidRequest, "code is required")
	}
	if ident.Token(form.Get("code")) != nil {
		return token.Response{}, protocol.New(protocol.InvalidGrant, "the code is invalid, expired, used, or not for this client")
	}
	aud, err := Audience(form["resource"], client, g.d.Tokens.Issuer(realm.Name))
	if err != nil {
		return token.Response{}, err
	}
	// The core's ErrInvalidCode is answered at the edge.
	redeemed, err := g.d.Tokens.RedeemCode(ctx, token.Redemption{
		Realm: realm, Client: client, Code: form.Get("code"), RedirectURI: form.Get("redirect_uri"),
		Verifier: form.Get("code_verifier"), Audience: aud, From: g.d.Caller(req.HTTP), JKT: req.JKT(),
	})
	if err != nil {
		return token.Response{}, err
	}
	code := redeemed.Code
	// The grant exists from here on: any refusal below must end it too.
	defer func() {
		if err != nil {
			err = g.endGrant(ctx, code, err)
		}
	}()
	user, err := g.d.Store.GetUser(ctx, realm.Name, code.UserID)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && user.Disabled) {
		return token.Response{}, protocol.New(protocol.InvalidGrant, "the user is no longer active")
	}
	if err != nil {
		return token.Response{}, err
	}
	sess, err := g.d.Store.GetSession(ctx, code.SessionID)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && !sess.Live(g.d.Now())) {
		return token.Response{}, protocol.New(protocol.InvalidGrant, "the sign-in session has ended")
	}
	if err != nil {
		return token.Response{}, err
	}
	issued, err := g.d.Tokens.IssueAccessToken(ctx, token.Grant{
		Realm: realm, Client: client, UserID: user.ID, User: &user, SessionID: code.SessionID, AuthTime: code.AuthTime,
		FamilyID: code.FamilyID, Scopes: code.Scopes, Audience: aud, JKT: req.JKT(),
	})
	if err != nil {
		return token.Response{}, err
	}
	resp := token.Response{AccessToken: issued.Value, TokenType: req.TokenType(), ExpiresIn: int64(issued.ExpiresIn.Seconds()), Scope: issued.Scope}
	resp.RefreshToken = redeemed.RefreshToken
	if slices.Contains(code.Scopes, "openid") {
		resp.IDToken, err = g.d.Tokens.IssueIDToken(ctx, token.IDTokenInput{
			Realm: realm, Client: client, User: user, SessionID: code.SessionID, AuthTime: code.AuthTime,
			Nonce: code.Nonce, Scopes: code.Scopes, AccessToken: issued.Value,
		})
		if err != nil {
			return token.Response{}, err
		}
	}
	return resp, nil
}

// endGrant revokes the grant a redeemed code started when the token request is
// refused after all, and returns why it was refused.
func (g authorizationCode) endGrant(ctx context.Context, code storage.AuthCode, why error) error {
	if err := g.d.Store.RevokeFamily(ctx, code.FamilyID, g.d.Now(), "grant refused"); err != nil {
		return errors.Join(why, fmt.Errorf("end refused grant: %w", err))
	}
	return why
}
