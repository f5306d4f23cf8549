package grants

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"

	"github.com/latchkey/latchkey/internal/ident"
	"github.com/latchkey/latchkey/internal/protocol"
	"github.com/latchkey/latchkey/internal/token"
)

// tokenExchange is the token exchange grant (RFC 8693): a confidential client
// trades a live token of the realm (its subject) for an access token with another
// audience and at most the same scope, for the subject itself (impersonation) or
// with an actor token's subject acting for it (delegation, the act claim). The
// subject token is checked exactly as introspection checks it, and the new token
// keeps its session and family, so it dies with them. Never a refresh token.
type tokenExchange struct{ d Deps }

// TokenExchange returns the token exchange grant.
func TokenExchange(d Deps) Grant { return tokenExchange{d} }

func (tokenExchange) Type() string { return TokenExchangeType }

// exchangeableTypes are the token types accepted as subject_token_type and
// actor_token_type (RFC 8693 §3). Refresh tokens are not among them: they are
// sent only to the token endpoint by the client they were issued to, to refresh.
var exchangeableTypes = []string{token.TokenTypeAccess, token.TokenTypeIDToken, token.TokenTypeJWT}

func (g tokenExchange) Token(ctx context.Context, req Request) (token.Response, error) {
	form := req.Form
	subject, subjectType := form.Get("subject_token"), form.Get("subject_token_type")
	if subject == "" {
		return token.Response{}, protocol.New(protocol.InvalidRequest, "subject_token is required")
	}
	if subjectType == "" {
		return token.Response{}, protocol.New(protocol.InvalidRequest, "subject_token_type is required")
	}
	if !slices.Contains(exchangeableTypes, subjectType) {
		// Never echoed: descriptions are logged, and a token pasted here must not be.
		return token.Response{}, protocol.New(protocol.InvalidRequest, "subject_token_type is not supported")
	}
	if ident.Token(subject) != nil {
		return token.Response{}, protocol.New(protocol.InvalidRequest, "subject_token is invalid")
	}
	// RFC 8693 §2.1: actor_token_type is required with an actor_token, and must
	// not be sent without one.
	actor, actorType := form.Get("actor_token"), form.Get("actor_token_type")
	switch {
	case actor == "" && actorType != "":
		return token.Response{}, protocol.New(protocol.InvalidRequest, "actor_token_type without actor_token")
	case actor != "" && actorType == "":
		return token.Response{}, protocol.New(protocol.InvalidRequest, "actor_token_type is required with actor_token")
	case actor != "" && !slices.Contains(exchangeableTypes, actorType):
		return token.Response{}, protocol.New(protocol.InvalidRequest, "actor_token_type is not supported")
	case actor != "" && ident.Token(actor) != nil:
		return token.Response{}, protocol.New(protocol.InvalidRequest, "actor_token is invalid")
	}
	if rt := form.Get("requested_token_type"); rt != "" && rt != token.TokenTypeAccess {
		return token.Response{}, protocol.New(protocol.InvalidRequest, "only access tokens are issued: requested_token_type must be "+token.TokenTypeAccess)
	}
	aud, err := exchangeAudience(form, req.Client.ID, req.Client.TokenExchangeAudiences)
	if err != nil {
		return token.Response{}, err
	}

	resp, err := g.d.Tokens.Exchange(ctx, token.ExchangeRequest{
		Realm: req.Realm, Client: req.Client,
		SubjectToken: subject, SubjectTokenType: subjectType, ActorToken: actor, ActorTokenType: actorType,
		Scope: form.Get("scope"), Audience: aud, JKT: req.JKT(), TokenType: req.TokenType(), From: g.d.Caller(req.HTTP),
	})
	// RFC 8693 §2.2.2: a token that is invalid or unacceptable for any reason is
	// invalid_request. The cause is kept for the log.
	switch {
	case errors.Is(err, token.ErrInvalidSubjectToken):
		return token.Response{}, protocol.Wrap(protocol.InvalidRequest, "subject_token is invalid", err)
	case errors.Is(err, token.ErrInvalidActorToken):
		return token.Response{}, protocol.Wrap(protocol.InvalidRequest, "actor_token is invalid", err)
	case errors.Is(err, token.ErrNotForClient):
		return token.Response{}, protocol.Wrap(protocol.InvalidRequest, "the token was not issued to this client", err)
	case errors.Is(err, token.ErrInvalidScope):
		return token.Response{}, protocol.Wrap(protocol.InvalidScope, "an exchange may only narrow the subject token's scope", err)
	}
	return resp, err
}

// exchangeAudience is the new token's audience: every audience and resource
// value (RFC 8693 §2.1, RFC 8707), each of which must be in the client's
// token_exchange_audiences, else invalid_target (§2.2.2); none asked for, the
// exchanging client itself.
func exchangeAudience(form url.Values, clientID string, allowed []string) ([]string, error) {
	var out []string
	for _, res := range form["resource"] {
		u, err := url.Parse(res)
		if err != nil || !u.IsAbs() || strings.Contains(res, "#") {
			return nil, protocol.New(protocol.InvalidTarget, "resource must be an absolute URI without a fragment")
		}
	}
	for _, a := range slices.Concat(form["audience"], form["resource"]) {
		if !slices.Contains(allowed, a) {
			// Never echoed: the value is the client's, and descriptions are logged.
			return nil, protocol.New(protocol.InvalidTarget, "a requested audience is not allowed for this client")
		}
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return []string{clientID}, nil
	}
	return out, nil
}
