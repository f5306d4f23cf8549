package token

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/latchkey/latchkey/storage"
)

// Token exchange refusals (RFC 8693 §2.2.2), answered by the grant. None of them
// says more than which token was refused, nor echoes it.
var (
	// ErrInvalidSubjectToken: the subject_token is not a live token of the realm of
	// the type given, exactly as introspection would say.
	ErrInvalidSubjectToken = errors.New("subject_token is invalid")
	// ErrInvalidActorToken: the same, for the actor_token.
	ErrInvalidActorToken = errors.New("actor_token is invalid")
	// ErrNotForClient: the token was neither issued to the exchanging client nor
	// names it in its audience.
	ErrNotForClient = errors.New("the token was not issued to this client")
)

// ExchangeRequest is a token exchange (RFC 8693) from an authenticated
// confidential client, its parameters already checked by the grant: the token
// types are known ones, the audience is within the client's policy.
type ExchangeRequest struct {
	Realm            storage.Realm
	Client           storage.Client
	SubjectToken     string
	SubjectTokenType string // TokenTypeAccess, TokenTypeIDToken or TokenTypeJWT
	// ActorToken is empty for impersonation; set, the exchange is a delegation.
	ActorToken     string
	ActorTokenType string
	Scope          string   // "" keeps the subject token's scopes
	Audience       []string // the new token's aud, never empty
	JKT            string   // the DPoP key the new token is bound to; "" for none
	TokenType      string   // "Bearer" or "DPoP", as the response says
	From           Caller
}

// presented is a live token of the realm as an exchange reads it: what it says
// of whom it stands for and where it came from.
type presented struct {
	subject  string // sub
	clientID string // client_id of an access token, azp of an ID token
	userID   string // "" for a client's own token (client credentials)
	aud      []string
	scopes   []string
	session  string
	family   string
	authTime time.Time
	expiry   time.Time
	act      *Actor
}

// forClient reports whether the token may be exchanged by client: it was issued
// to it, or names it in its audience.
func (p *presented) forClient(client string) bool {
	return p.clientID == client || slices.Contains(p.aud, client)
}

// Exchange issues an access token for another token (RFC 8693): the subject
// token's user, session and grant, for the exchanging client and the audience
// asked for, no longer-lived than the subject token, acting for the actor when
// there is one. The new token keeps the subject's sid and fid, so ending that
// session or family ends it at introspection too. Never a refresh token.
func (s *Service) Exchange(ctx context.Context, req ExchangeRequest) (Response, error) {
	sub, err := s.exchangeable(ctx, req.Realm.Name, req.SubjectToken, req.SubjectTokenType)
	if err != nil {
		return Response{}, err
	}
	if sub == nil {
		return Response{}, ErrInvalidSubjectToken
	}
	if !sub.forClient(req.Client.ID) {
		return Response{}, fmt.Errorf("%w: subject token of client %q", ErrNotForClient, sub.clientID)
	}
	// A client's own token names the client as its subject: only that client can
	// keep it so, for a token issued to another client_id would stand for a user
	// of that name (and is dead at introspection).
	if sub.userID == "" && sub.clientID != req.Client.ID {
		return Response{}, fmt.Errorf("%w: another client's own token", ErrNotForClient)
	}

	// Delegation (RFC 8693 §4.1): the actor becomes the outermost act, over any
	// actor the subject token already names. Impersonation adds none, but keeps
	// the subject's: a delegated token exchanged again stays delegated.
	act := sub.act
	if req.ActorToken != "" {
		actor, err := s.exchangeable(ctx, req.Realm.Name, req.ActorToken, req.ActorTokenType)
		if err != nil {
			return Response{}, err
		}
		if actor == nil {
			return Response{}, ErrInvalidActorToken
		}
		if !actor.forClient(req.Client.ID) {
			return Response{}, fmt.Errorf("%w: actor token of client %q", ErrNotForClient, actor.clientID)
		}
		act = &Actor{Subject: actor.subject, ClientID: actor.clientID, Act: sub.act}
	}

	// RFC 8693 §2.1 leaves scope to the server: it may only narrow the subject's.
	scopes, err := narrow(req.Scope, sub.scopes)
	if err != nil {
		return Response{}, err
	}

	var user *storage.User
	if sub.userID != "" {
		u, err := s.store.GetUser(ctx, req.Realm.Name, sub.userID)
		if errors.Is(err, storage.ErrNotFound) {
			return Response{}, ErrInvalidSubjectToken // deleted since it was checked
		}
		if err != nil {
			return Response{}, fmt.Errorf("exchange: %w", err)
		}
		user = &u
	}

	// The new token expires with the subject token at the latest: it must not
	// outlive what it was exchanged for.
	client := req.Client
	ttl := TTL(req.Realm, client)
	if left := sub.expiry.Sub(s.now()); left < ttl {
		ttl = left
	}
	if ttl <= 0 {
		return Response{}, ErrInvalidSubjectToken
	}
	client.Tokens.AccessTokenTTL = ttl

	issued, err := s.IssueAccessToken(ctx, Grant{
		Realm: req.Realm, Client: client, UserID: sub.userID, User: user, SessionID: sub.session,
		AuthTime: sub.authTime, FamilyID: sub.family, Scopes: scopes, Audience: req.Audience,
		JKT: req.JKT, Act: act,
	})
	if err != nil {
		return Response{}, err
	}

	event := storage.AuditEvent{
		Time: s.now().UTC().Truncate(time.Microsecond), Type: "token.exchanged", Realm: req.Realm.Name,
		ClientID: req.Client.ID, UserID: sub.userID, SessionID: sub.session, FamilyID: sub.family,
		IP: req.From.IP, UserAgent: req.From.UserAgent,
		Details: map[string]string{
			"subject_token_type": req.SubjectTokenType,
			"subject_client_id":  sub.clientID,
			"audience":           strings.Join(req.Audience, " "),
			"scope":              issued.Scope,
		},
	}
	if req.ActorToken != "" {
		event.Details["actor_sub"], event.Details["actor_client_id"] = act.Subject, act.ClientID
	}
	if _, err := s.store.AppendAudit(ctx, event); err != nil {
		return Response{}, fmt.Errorf("exchange: audit: %w", err)
	}
	return Response{
		AccessToken: issued.Value, IssuedTokenType: TokenTypeAccess, TokenType: req.TokenType,
		ExpiresIn: int64(issued.ExpiresIn.Seconds()), Scope: issued.Scope,
	}, nil
}

// exchangeable returns what tok says when it is a live token of the realm of the
// type typ (RFC 8693 §3), checked exactly as introspection checks it; nil when it
// is not. Refresh tokens are of no type it accepts. Only a store failure is an
// error.
func (s *Service) exchangeable(ctx context.Context, realm, tok, typ string) (*presented, error) {
	jws := strings.Count(tok, ".") == 2
	switch typ {
	case TokenTypeAccess:
		return s.exchangeableAccess(ctx, realm, tok)
	case TokenTypeIDToken:
		return s.exchangeableIDToken(ctx, realm, tok)
	case TokenTypeJWT:
		// Either kind of JWT, by its header's typ, which only picks the path: each
		// path verifies the typ with the signature.
		switch t := unverifiedTyp(tok); {
		case !jws:
			return nil, nil // an opaque token is no JWT
		case strings.EqualFold(t, TypeAccessJWT) || strings.EqualFold(t, "application/"+TypeAccessJWT):
			return s.exchangeableAccess(ctx, realm, tok)
		case t == TypeIDToken:
			return s.exchangeableIDToken(ctx, realm, tok)
		}
	}
	return nil, nil
}

// exchangeableAccess is an access token, JWT or opaque, active as introspection
// would say (VerifyAccess).
func (s *Service) exchangeableAccess(ctx context.Context, realm, tok string) (*presented, error) {
	c, _, live, err := s.verifyAccess(ctx, realm, tok)
	if err != nil || !live {
		return nil, err
	}
	p := &presented{
		subject: c.Subject, clientID: c.ClientID, userID: c.Subject, aud: c.Audience,
		scopes: strings.Fields(c.Scope), session: c.SessionID, family: c.FamilyID,
		expiry: time.Unix(c.Expiry, 0), act: c.Act,
	}
	if c.Subject == c.ClientID {
		p.userID = "" // client credentials: the client is the subject
	}
	if c.AuthTime != 0 {
		p.authTime = time.Unix(c.AuthTime, 0)
	}
	return p, nil
}

// exchangeableIDToken is an ID token of the realm whose signature, typ and iss
// hold (verifyIDToken, as for logout hints), unexpired, standing on a client, user and session
// that are live by introspection's rules (subjectLive).
func (s *Service) exchangeableIDToken(ctx context.Context, realm, tok string) (*presented, error) {
	c, ok, err := s.verifyIDToken(ctx, realm, tok)
	if err != nil {
		return nil, err
	}
	now := s.now()
	if !ok || !now.Before(time.Unix(c.Expiry, 0)) || time.Unix(c.IssuedAt, 0).After(now.Add(Leeway)) {
		return nil, nil
	}
	client := c.AuthorizedParty
	if client == "" && len(c.Audience) == 1 {
		client = c.Audience[0]
	}
	if client == "" {
		return nil, nil
	}
	_, live, err := s.subjectLive(ctx, realm, client, c.Subject, c.SessionID, "", time.Unix(c.IssuedAt, 0))
	if err != nil || !live {
		return nil, err
	}
	// An ID token carries no scope claim. It was issued for openid, and its
	// claims show which of profile and email were granted too (UserClaims): no
	// more can be read from it.
	scopes := []string{"openid"}
	if c.PreferredUsername != "" {
		scopes = append(scopes, "profile")
	}
	if c.Email != "" {
		scopes = append(scopes, "email")
	}
	p := &presented{
		subject: c.Subject, clientID: client, userID: c.Subject, aud: c.Audience, scopes: scopes,
		session: c.SessionID, expiry: time.Unix(c.Expiry, 0),
	}
	if c.AuthTime != 0 {
		p.authTime = time.Unix(c.AuthTime, 0)
	}
	return p, nil
}
