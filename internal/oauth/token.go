package oauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/latchkey/latchkey/internal/ident"
	"github.com/latchkey/latchkey/internal/token"
	"github.com/latchkey/latchkey/storage"
)

// clientRequest reads a POSTed form and authenticates its client, answering the
// error itself when either fails.
func (h *Handler) clientRequest(w http.ResponseWriter, r *http.Request, realm storage.Realm, allowPublic bool) (url.Values, storage.Client, bool) {
	form, err := parseForm(w, r)
	if err != nil {
		h.writeError(w, r, err)
		return nil, storage.Client{}, false
	}
	client, err := h.authenticateClient(r, form, realm, allowPublic)
	if err != nil {
		h.writeError(w, r, err)
		return nil, storage.Client{}, false
	}
	return form, client, true
}

// required answers invalid_request when a required parameter is missing.
func (h *Handler) required(w http.ResponseWriter, r *http.Request, name, value string) bool {
	if value == "" {
		h.writeError(w, r, newError(InvalidRequest, name+" is required"))
		return false
	}
	return true
}

// token serves the token endpoint.
func (h *Handler) token(w http.ResponseWriter, r *http.Request, realm storage.Realm) {
	grantType, resp, err := h.grant(w, r, realm)
	if h.obs != nil {
		h.obs.TokenRequest(grantLabel(grantType), outcome(err))
	}
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// grant authenticates the client and runs the grant it asks for, returning the
// grant_type sent (once the form could be read) and the response or why not.
func (h *Handler) grant(w http.ResponseWriter, r *http.Request, realm storage.Realm) (string, token.Response, error) {
	form, err := parseForm(w, r)
	if err != nil {
		return "", token.Response{}, err
	}
	grantType := form.Get("grant_type")
	client, err := h.authenticateClient(r, form, realm, true)
	if err != nil {
		return grantType, token.Response{}, err
	}
	corsClient(w, r, client)
	var resp token.Response
	switch grantType {
	case "":
		err = newError(InvalidRequest, "grant_type is required")
	case "client_credentials":
		resp, err = h.clientCredentials(r, realm, client, form)
	case "authorization_code":
		resp, err = h.authorizationCode(r, realm, client, form)
	case "refresh_token":
		// The token service counts what a refresh hands out: a retry answered
		// again hands out nothing new.
		resp, err = h.refresh(r, realm, client, form)
		return grantType, resp, err
	default:
		// Never echoed: descriptions are logged, and a secret pasted here must not be.
		err = newError(UnsupportedGrantType, "the grant_type is not supported")
	}
	if err == nil {
		h.tokens.Delivered(client, resp)
	}
	return grantType, resp, err
}

// clientCredentials is the client credentials grant (RFC 6749 §4.4): an access
// token for the client itself, and never a refresh token.
func (h *Handler) clientCredentials(r *http.Request, realm storage.Realm, client storage.Client, form url.Values) (token.Response, error) {
	if client.Public() {
		return token.Response{}, newError(UnauthorizedClient, "public clients cannot use client_credentials")
	}
	if !slices.Contains(client.GrantTypes, "client_credentials") {
		return token.Response{}, newError(UnauthorizedClient, "client may not use client_credentials")
	}
	scopes, err := grantedScopes(form.Get("scope"), client)
	if err != nil {
		return token.Response{}, err
	}
	audience, err := audience(form["resource"], client, h.tokens.Issuer(realm.Name))
	if err != nil {
		return token.Response{}, err
	}
	issued, err := h.tokens.IssueAccessToken(r.Context(), token.Grant{Realm: realm, Client: client, Scopes: scopes, Audience: audience})
	if err != nil {
		return token.Response{}, err
	}
	return token.Response{
		AccessToken: issued.Value, TokenType: "Bearer",
		ExpiresIn: int64(issued.ExpiresIn.Seconds()), Scope: issued.Scope,
	}, nil
}

// authorizationCode redeems a code (RFC 6749 §4.1.3): an access token for the user,
// an ID token when openid was granted, and a refresh token whenever the client may
// use the refresh_token grant, as Keycloak does: an offline one when offline_access
// was granted, else one bound to the browser session (token.SessionBound).
func (h *Handler) authorizationCode(r *http.Request, realm storage.Realm, client storage.Client, form url.Values) (_ token.Response, err error) {
	if !slices.Contains(client.GrantTypes, "authorization_code") {
		return token.Response{}, newError(UnauthorizedClient, "client may not use authorization_code")
	}
	if form.Get("code") == "" {
		return token.Response{}, newError(InvalidRequest, "code is required")
	}
	if ident.Token(form.Get("code")) != nil {
		return token.Response{}, newError(InvalidGrant, "the code is invalid, expired, used, or not for this client")
	}
	ctx := r.Context()
	aud, err := audience(form["resource"], client, h.tokens.Issuer(realm.Name))
	if err != nil {
		return token.Response{}, err
	}
	redeemed, err := h.tokens.RedeemCode(ctx, token.Redemption{
		Realm: realm, Client: client, Code: form.Get("code"), RedirectURI: form.Get("redirect_uri"),
		Verifier: form.Get("code_verifier"), Audience: aud, From: h.caller(r),
	})
	if err != nil {
		return token.Response{}, err
	}
	code := redeemed.Code
	// The grant exists from here on: any refusal below must end it too.
	defer func() {
		if err != nil {
			err = h.endGrant(ctx, code, err)
		}
	}()
	user, err := h.store.GetUser(ctx, realm.Name, code.UserID)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && user.Disabled) {
		return token.Response{}, newError(InvalidGrant, "the user is no longer active")
	}
	if err != nil {
		return token.Response{}, err
	}
	sess, err := h.store.GetSession(ctx, code.SessionID)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && !sess.Live(h.now())) {
		return token.Response{}, newError(InvalidGrant, "the sign-in session has ended")
	}
	if err != nil {
		return token.Response{}, err
	}
	issued, err := h.tokens.IssueAccessToken(ctx, token.Grant{
		Realm: realm, Client: client, UserID: user.ID, User: &user, SessionID: code.SessionID, AuthTime: code.AuthTime,
		FamilyID: code.FamilyID, Scopes: code.Scopes, Audience: aud,
	})
	if err != nil {
		return token.Response{}, err
	}
	resp := token.Response{AccessToken: issued.Value, TokenType: "Bearer", ExpiresIn: int64(issued.ExpiresIn.Seconds()), Scope: issued.Scope}
	resp.RefreshToken = redeemed.RefreshToken
	if slices.Contains(code.Scopes, "openid") {
		resp.IDToken, err = h.tokens.IssueIDToken(ctx, token.IDTokenInput{
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
func (h *Handler) endGrant(ctx context.Context, code storage.AuthCode, why error) error {
	if err := h.store.RevokeFamily(ctx, code.FamilyID, h.now(), "grant refused"); err != nil {
		return errors.Join(why, fmt.Errorf("end refused grant: %w", err))
	}
	return why
}

// refresh is the refresh_token grant (RFC 6749 §6), with rotation.
func (h *Handler) refresh(r *http.Request, realm storage.Realm, client storage.Client, form url.Values) (token.Response, error) {
	if !slices.Contains(client.GrantTypes, "refresh_token") {
		return token.Response{}, newError(UnauthorizedClient, "client may not use refresh_token")
	}
	if form.Get("refresh_token") == "" {
		return token.Response{}, newError(InvalidRequest, "refresh_token is required")
	}
	if ident.Token(form.Get("refresh_token")) != nil {
		return token.Response{}, newError(InvalidGrant, "the refresh token is invalid, expired, revoked or used")
	}
	// The core's ErrInvalidRefreshToken and ErrInvalidScope are answered by wireError.
	return h.tokens.Refresh(r.Context(), token.RefreshRequest{
		Realm: realm, Client: client, Token: form.Get("refresh_token"), Scope: form.Get("scope"), From: h.caller(r),
	})
}

// grantedScopes checks a requested scope against what the client may have: its
// scopes, and its default scopes, which a client may always be granted (Keycloak's
// default client scopes). No scope requested means all of the client's scopes (RFC
// 6749 §3.3 lets the server pick a default).
func grantedScopes(requested string, client storage.Client) ([]string, error) {
	if requested == "" {
		return slices.Clone(client.Scopes), nil
	}
	defaults := client.EffectiveDefaultScopes()
	allowed := func(s string) bool { return slices.Contains(client.Scopes, s) || slices.Contains(defaults, s) }
	var out []string
	for _, s := range strings.Split(requested, " ") {
		if s == "" {
			continue // tolerate doubled spaces
		}
		if !token.IsScopeToken(s) {
			return nil, newError(InvalidScope, "malformed scope")
		}
		if !allowed(s) {
			return nil, newError(InvalidScope, "a requested scope is not allowed for this client")
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, newError(InvalidScope, "malformed scope")
	}
	return out, nil
}

// audience picks the token's audience: the requested resources (RFC 8707), each of
// which the client must be allowed; else the client's configured audiences; else the
// realm's issuer as the default resource (RFC 9068 §3). Never the client ID: that is
// an ID token's audience, and a client library that forgets to check typ would
// otherwise take an access token for an ID token.
func audience(resources []string, client storage.Client, issuer string) ([]string, error) {
	if len(resources) == 0 {
		if len(client.Audiences) > 0 {
			return slices.Clone(client.Audiences), nil
		}
		return []string{issuer}, nil
	}
	var out []string
	for _, res := range resources {
		u, err := url.Parse(res)
		if err != nil || !u.IsAbs() || u.Fragment != "" || strings.Contains(res, "#") {
			return nil, newError(InvalidTarget, "resource must be an absolute URI without a fragment")
		}
		if !slices.Contains(client.Audiences, res) {
			return nil, newError(InvalidTarget, "a requested resource is not allowed for this client")
		}
		if !slices.Contains(out, res) {
			out = append(out, res)
		}
	}
	return out, nil
}

// introspect serves RFC 7662 introspection to authenticated confidential clients.
func (h *Handler) introspect(w http.ResponseWriter, r *http.Request, realm storage.Realm) {
	form, client, ok := h.clientRequest(w, r, realm, false)
	tok := form.Get("token")
	if !ok || !h.required(w, r, "token", tok) {
		return
	}
	if ident.Token(tok) != nil {
		h.introspected(false)
		writeJSON(w, http.StatusOK, token.Introspection{}) // what no token is: inactive
		return
	}
	// token_type_hint is only a hint (RFC 7662 §2.1): the token's prefix says what it is.
	res, err := h.tokens.Introspect(r.Context(), realm, client.ID, tok)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.introspected(res.Active)
	writeJSON(w, http.StatusOK, res)
}

func (h *Handler) introspected(active bool) {
	if h.obs != nil {
		h.obs.Introspected(active)
	}
}

// revoke serves RFC 7009 revocation. Public clients identify themselves by client_id.
func (h *Handler) revoke(w http.ResponseWriter, r *http.Request, realm storage.Realm) {
	form, client, ok := h.clientRequest(w, r, realm, true)
	if !ok {
		return
	}
	corsClient(w, r, client)
	tok := form.Get("token")
	if !h.required(w, r, "token", tok) {
		return
	}
	// token_type_hint is only a hint (RFC 7009 §2.1): every type is tried anyway.
	// What no token is needs no revoking (RFC 7009 §2.2: an invalid token is no error).
	var err error
	if ident.Token(tok) == nil {
		err = h.tokens.Revoke(r.Context(), realm, client, tok, h.caller(r))
	}
	// token.ErrNotOwner (RFC 7009 §2.1) is answered by wireError.
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(http.StatusOK)
}
