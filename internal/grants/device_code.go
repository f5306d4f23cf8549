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

// The token endpoint's answers to a device still waiting (RFC 8628 §3.5).
const (
	AuthorizationPending protocol.Code = "authorization_pending"
	SlowDown             protocol.Code = "slow_down"
	ExpiredToken         protocol.Code = "expired_token"
)

// deviceCode is the device authorization grant's polling (RFC 8628 §3.4): the
// device sends its device code until the user has decided on the verification
// page. An approved grant gives an access token, a refresh token when the
// client may refresh, and an ID token when openid was granted; the family is
// bound to the DPoP key of the poll that redeems it.
type deviceCode struct{ d Deps }

// DeviceCode returns the device_code grant.
func DeviceCode(d Deps) Grant { return deviceCode{d} }

func (deviceCode) Type() string { return DeviceCodeType }

func (g deviceCode) Token(ctx context.Context, req Request) (_ token.Response, err error) {
	code := req.Form.Get("device_code")
	if code == "" {
		return token.Response{}, protocol.New(protocol.InvalidRequest, "device_code is required")
	}
	invalid := protocol.New(protocol.InvalidGrant, "the device code is invalid, used, or not for this client")
	if ident.Token(code) != nil {
		return token.Response{}, invalid
	}
	polled, err := g.d.Tokens.PollDevice(ctx, token.DevicePoll{
		Realm: req.Realm, Client: req.Client, DeviceCode: code, JKT: deviceJKT(req), From: g.d.Caller(req.HTTP),
	})
	if errors.Is(err, token.ErrInvalidDeviceCode) {
		invalid.Cause = err
		return token.Response{}, invalid
	}
	if err != nil {
		return token.Response{}, err
	}
	switch polled.Result {
	case storage.PollPending:
		return token.Response{}, protocol.New(AuthorizationPending, "the user has not decided yet")
	case storage.PollSlowDown:
		return token.Response{}, protocol.New(SlowDown, fmt.Sprintf("poll at most every %d seconds", int(polled.Grant.Interval.Seconds())))
	case storage.PollDenied:
		return token.Response{}, protocol.New(protocol.AccessDenied, "the user denied the request")
	case storage.PollExpired:
		return token.Response{}, protocol.New(ExpiredToken, "the device code has expired: start again")
	case storage.PollApproved:
	default:
		return token.Response{}, fmt.Errorf("device grant: unexpected poll result %v", polled.Result)
	}
	dg := polled.Grant
	// The grant exists from here on: any refusal below must end it too.
	defer func() {
		if err != nil {
			if rerr := g.d.Store.RevokeFamily(ctx, dg.FamilyID, g.d.Now(), "grant refused"); rerr != nil {
				err = errors.Join(err, fmt.Errorf("end refused grant: %w", rerr))
			}
		}
	}()
	user, err := g.d.Store.GetUser(ctx, req.Realm.Name, dg.UserID)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && (user.Disabled ||
		(!user.TokensValidAfter.IsZero() && dg.AuthTime.Before(user.TokensValidAfter)))) {
		return token.Response{}, protocol.New(protocol.InvalidGrant, "the user is no longer active")
	}
	if err != nil {
		return token.Response{}, err
	}
	issued, err := g.d.Tokens.IssueAccessToken(ctx, token.Grant{
		Realm: req.Realm, Client: req.Client, UserID: user.ID, User: &user, AuthTime: dg.AuthTime,
		FamilyID: dg.FamilyID, Scopes: dg.Scopes, Audience: dg.Audience, JKT: req.JKT(),
	})
	if err != nil {
		return token.Response{}, err
	}
	resp := token.Response{AccessToken: issued.Value, TokenType: req.TokenType(), ExpiresIn: int64(issued.ExpiresIn.Seconds()),
		Scope: issued.Scope, RefreshToken: polled.RefreshToken}
	if slices.Contains(dg.Scopes, "openid") {
		resp.IDToken, err = g.d.Tokens.IssueIDToken(ctx, token.IDTokenInput{
			Realm: req.Realm, Client: req.Client, User: user, AuthTime: dg.AuthTime,
			Scopes: dg.Scopes, AccessToken: issued.Value,
		})
		if err != nil {
			return token.Response{}, err
		}
	}
	return resp, nil
}

// deviceJKT is the DPoP key a device's family is bound to: a public client's
// proof's (RFC 9449 §5); a confidential client's refresh tokens are bound to the
// client already.
func deviceJKT(req Request) string {
	if req.Client.Public() {
		return req.JKT()
	}
	return ""
}
