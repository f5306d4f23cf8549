package grants

import (
	"context"

	"github.com/latchkey/latchkey/internal/ident"
	"github.com/latchkey/latchkey/internal/protocol"
	"github.com/latchkey/latchkey/internal/token"
)

// refreshToken is the refresh_token grant (RFC 6749 §6), with rotation, reuse
// detection and the retry window in the token core.
type refreshToken struct{ d Deps }

// RefreshToken returns the refresh_token grant.
func RefreshToken(d Deps) Grant { return refreshToken{d} }

func (refreshToken) Type() string { return RefreshTokenType }

func (g refreshToken) Token(ctx context.Context, req Request) (token.Response, error) {
	rt := req.Form.Get("refresh_token")
	if rt == "" {
		return token.Response{}, protocol.New(protocol.InvalidRequest, "refresh_token is required")
	}
	if ident.Token(rt) != nil {
		return token.Response{}, protocol.New(protocol.InvalidGrant, "the refresh token is invalid, expired, revoked or used")
	}
	// The core's ErrInvalidRefreshToken and ErrInvalidScope are answered at the edge.
	return g.d.Tokens.Refresh(ctx, token.RefreshRequest{
		Realm: req.Realm, Client: req.Client, Token: rt, Scope: req.Form.Get("scope"), From: g.d.Caller(req.HTTP),
		JKT: req.JKT(),
	})
}
