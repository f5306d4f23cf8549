package grants

import (
	"context"

	"github.com/latchkey/latchkey/internal/token"
)

// clientCredentials is the client credentials grant (RFC 6749 §4.4): an access
// token for the client itself, and never a refresh token. Only confidential
// clients may use it (the spec's Confidential, checked by the token endpoint).
type clientCredentials struct{ d Deps }

// ClientCredentials returns the client_credentials grant.
func ClientCredentials(d Deps) Grant { return clientCredentials{d} }

func (clientCredentials) Type() string { return ClientCredentialsType }

func (g clientCredentials) Token(ctx context.Context, req Request) (token.Response, error) {
	scopes, err := Scopes(req.Form.Get("scope"), req.Client)
	if err != nil {
		return token.Response{}, err
	}
	aud, err := Audience(req.Form["resource"], req.Client, g.d.Tokens.Issuer(req.Realm.Name))
	if err != nil {
		return token.Response{}, err
	}
	issued, err := g.d.Tokens.IssueAccessToken(ctx, token.Grant{Realm: req.Realm, Client: req.Client, Scopes: scopes, Audience: aud, JKT: req.JKT()})
	if err != nil {
		return token.Response{}, err
	}
	return token.Response{
		AccessToken: issued.Value, TokenType: req.TokenType(),
		ExpiresIn: int64(issued.ExpiresIn.Seconds()), Scope: issued.Scope,
	}, nil
}
