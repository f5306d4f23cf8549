package token

import (
	"context"
	"crypto/rand"
	"time"

	"github.com/latchkey/latchkey/internal/keys"
	"github.com/latchkey/latchkey/storage"
)

// TypeLogoutToken is the typ header of logout tokens (OpenID Connect Back-Channel
// Logout 1.0 §2.4), so that no other JWT can pass for one.
const TypeLogoutToken = "logout+jwt"

// EventBackchannelLogout is the one member of a logout token's events claim.
const EventBackchannelLogout = "http://schemas.openid.net/event/backchannel-logout"

// LogoutTokenTTL is a logout token's lifetime: the spec recommends a couple of
// minutes (Back-Channel Logout §2.4); a delivery retried later gets a new token.
const LogoutTokenTTL = 2 * time.Minute

// IssueLogoutToken signs a logout token (Back-Channel Logout 1.0 §2.4) telling
// client that the user's session sessionID ended ("" when the session is not
// known). It is signed like the client's ID tokens, so the client verifies both
// alike, and carries sub always, sid when known, and never a nonce (§2.4).
func (s *Service) IssueLogoutToken(ctx context.Context, client storage.Client, userID, sessionID string) (string, error) {
	alg := client.IDTokenSignedResponseAlg
	if alg == "" {
		alg = keys.RS256
	}
	k, err := s.keys.Signer(ctx, client.Realm, alg)
	if err != nil {
		return "", err
	}
	now := s.now()
	claims := map[string]any{
		"iss": s.Issuer(client.Realm), "sub": userID, "aud": client.ID,
		"iat": now.Unix(), "exp": now.Add(LogoutTokenTTL).Unix(), "jti": rand.Text(),
		"events": map[string]any{EventBackchannelLogout: map[string]any{}},
	}
	if sessionID != "" {
		claims["sid"] = sessionID
	}
	return k.Sign(claims, TypeLogoutToken)
}
