// Package oauth is the protocol edge: the RFC 6749, 7009, 7662 and 8414 endpoints of
// each realm, client authentication, and the one place protocol errors are written.
package oauth

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/latchkey/latchkey/internal/clientsecret"
	"github.com/latchkey/latchkey/internal/dpop"
	"github.com/latchkey/latchkey/internal/grants"
	"github.com/latchkey/latchkey/internal/ident"
	"github.com/latchkey/latchkey/internal/keys"
	"github.com/latchkey/latchkey/internal/masterkey"
	"github.com/latchkey/latchkey/internal/protocol"
	"github.com/latchkey/latchkey/internal/realip"
	"github.com/latchkey/latchkey/internal/token"
	"github.com/latchkey/latchkey/internal/web"
	"github.com/latchkey/latchkey/storage"
)

// Endpoint paths under a realm's issuer, in Keycloak's layout.
const (
	tokenPath      = "/protocol/openid-connect/token"
	introspectPath = tokenPath + "/introspect"
	revokePath     = "/protocol/openid-connect/revoke"
	certsPath      = "/protocol/openid-connect/certs"
	userinfoPath   = "/protocol/openid-connect/userinfo"
	// revocationEventsPath is the revocation feed for resource servers (issue 12).
	revocationEventsPath = "/protocol/openid-connect/revocation-events"
)

// Store is what the protocol edge reads and writes itself.
type Store interface {
	GetRealm(ctx context.Context, name string) (storage.Realm, error)
	GetClient(ctx context.Context, realm, id string) (storage.Client, error)
	ListClients(ctx context.Context, realm string) ([]storage.Client, error)
	UseClientAssertion(ctx context.Context, realm, clientID, jti string, expiresAt time.Time) error
	GetUser(ctx context.Context, realm, id string) (storage.User, error)
	UpdateUser(ctx context.Context, realm, id string, fn func(u *storage.User) ([]storage.AuditEvent, error)) (storage.User, error)
	GetUserByUsername(ctx context.Context, realm, username string) (storage.User, error)
	GetUserByEmail(ctx context.Context, realm, email string) (storage.User, error)
	CreateSession(ctx context.Context, s storage.Session) error
	GetSession(ctx context.Context, id string) (storage.Session, error)
	TouchSession(ctx context.Context, id string, seenAt, idleExpiresAt time.Time) error
	RevokeSession(ctx context.Context, id string, at time.Time) error
	RevokeSessionFamilies(ctx context.Context, sessionID string, at time.Time, reason string) (int64, error)
	RevokeUserSessions(ctx context.Context, realm, userID string, at time.Time) (int64, error)
	GetFamily(ctx context.Context, id string) (storage.Family, error)
	RevokeFamily(ctx context.Context, id string, at time.Time, reason string) error
	ListUserFamilies(ctx context.Context, realm, userID string, now time.Time) ([]storage.Family, error)
	RevokeUserFamilies(ctx context.Context, realm, userID string, at time.Time, reason string) (int64, error)
	GetConsent(ctx context.Context, realm, userID, clientID string) (storage.Consent, error)
	SaveConsent(ctx context.Context, c storage.Consent) error
	AppendAudit(ctx context.Context, e storage.AuditEvent) (int64, error)
	UseDPoPProof(ctx context.Context, realm, jkt, jti string, until time.Time) error
	web.AttemptStore // the client authentication limiter's counts
	storage.PushedRequestStore
}

// Handler serves every realm's OAuth endpoints.
type Handler struct {
	store     Store
	tokens    *token.Service
	keys      *keys.Manager
	secrets   *clientsecret.Hasher
	pages     *web.Pages
	limiter   *web.Limiter
	box       *box
	dummyHash func() string
	log       *slog.Logger
	baseURL   string
	clientIP  *realip.Resolver
	now       func() time.Time

	// clientLimiter throttles failed client authentication (clientAuthLimits).
	clientLimiter *web.Limiter
	// nameKey keys the hash that puts names no user has into the login
	// limiter's buckets (unknownNameAccount).
	nameKey []byte
	obs     Observer // nil: nothing is counted
	events  EventFeed
	// grants are the token endpoint's grant types, built once here.
	grants *grants.Registry
	// userCodes hash the device grant's user codes; codeLimiter throttles wrong
	// ones on the verification page (userCodeLimits).
	userCodes   token.UserCodes
	codeLimiter *web.Limiter
	// nonces are the DPoP server nonces (dpop.go), the same on every instance.
	nonces *dpop.Nonces
}

// EventFeed streams a realm's revocations to an authenticated resource server
// (internal/secevent). Serve returns an error only when it wrote nothing; the
// handler answers it as any protocol error.
type EventFeed interface {
	Serve(w http.ResponseWriter, r *http.Request, realm storage.Realm, client storage.Client) error
}

// Config is what a Handler is built from.
type Config struct {
	Store   Store
	Tokens  *token.Service
	Keys    *keys.Manager
	Secrets *clientsecret.Hasher
	// MasterKey seals the state browser forms carry.
	MasterKey *masterkey.Key
	Pages     *web.Pages
	Limiter   *web.Limiter
	Log       *slog.Logger
	BaseURL   string // the issuer of realm R is BaseURL/realms/R
	// ClientIP resolves the client address for the login limiter, audit events and
	// session records; nil means the TCP peer.
	ClientIP *realip.Resolver
	Now      func() time.Time
	// Observer counts answers for metrics; nil counts nothing.
	Observer Observer
	// RevocationEvents serves the revocation feed; nil: no such endpoint.
	RevocationEvents EventFeed
}

// New returns a Handler.
func New(c Config) *Handler {
	h := &Handler{store: c.Store, tokens: c.Tokens, keys: c.Keys, secrets: c.Secrets,
		pages: c.Pages, limiter: c.Limiter, clientLimiter: web.NewLimiter(c.Store, "client", clientAuthLimits, c.Now),
		box: newBox(c.MasterKey), nameKey: c.MasterKey.Derive("login limiter name buckets"),
		dummyHash: newDummyHash(), log: c.Log, baseURL: strings.TrimSuffix(c.BaseURL, "/"), clientIP: c.ClientIP, now: c.Now, obs: c.Observer,
		events: c.RevocationEvents, nonces: newDPoPNonces(c.MasterKey),
		userCodes: token.NewUserCodes(c.MasterKey.Derive("device user codes")), codeLimiter: web.NewLimiter(c.Store, "usercode", userCodeLimits, c.Now)}
	h.grants = grants.Default(grants.Deps{Tokens: c.Tokens, Store: c.Store, Now: c.Now, Caller: h.caller})
	return h
}

// clientAuthLimits throttle failed client authentication per client and per
// source address (RFC 6749 §10.10). Configured secrets have at least 32
// characters, so guessing one is hopeless anyway; the throttle stops a flood
// and shows it (a client_auth.throttled audit event).
//
// A client's ID is public, so anyone can fail on its behalf and lock it out
// for everyone: the client's lock is short (from 10 s, never over a minute) and
// a success clears its count, so its own traffic gets through again within a
// minute of an attack stopping. The address that fails pays the most: 20
// failures over all clients lock it, doubling up to 15 minutes.
//
// The counts are in the store, shared by every instance. The token endpoint's
// hot path is a client that authenticates right again and again: it writes
// nothing, and reads the counts at most once a second (TrustClean), as clients
// themselves are cached for a second; so a lock made on another instance is
// honoured here within a second, while every failure is counted, or refused,
// by the store at once.
var clientAuthLimits = web.LimiterConfig{
	AccountFailures: 10, // per client
	IPFailures:      20, // per source address
	BaseLock:        10 * time.Second,
	AccountMaxLock:  time.Minute,
	MaxLock:         15 * time.Minute,
	Forget:          15 * time.Minute,
	TrustClean:      time.Second,
}

// Register adds the endpoints to mux.
func (h *Handler) Register(mux *http.ServeMux) {
	realm := "/realms/{realm}"
	mux.HandleFunc(realm+tokenPath, h.withRealm(h.corsByClient(h.token)))
	mux.HandleFunc(realm+parPath, h.withRealm(h.corsByClient(h.par)))
	mux.HandleFunc(realm+introspectPath, h.withRealm(h.introspect))
	mux.HandleFunc(realm+revokePath, h.withRealm(h.corsByClient(h.revoke)))
	mux.HandleFunc("GET "+realm+certsPath, h.withRealm(h.certs))
	mux.HandleFunc(realm+userinfoPath, h.withRealm(h.corsRealm(h.userinfo)))
	if h.events != nil {
		mux.HandleFunc("GET "+realm+revocationEventsPath, h.withRealm(h.revocationEvents))
	}

	// Browser endpoints. Cross-origin POSTs are refused outright (Sec-Fetch-Site and
	// Origin checks), on top of each form's CSRF value.
	browser := http.NewCrossOriginProtection()
	mux.HandleFunc(realm+authPath, h.withRealm(h.authorize))
	mux.HandleFunc("POST "+realm+deviceAuthPath, h.withRealm(h.deviceAuthorization))
	mux.HandleFunc("GET "+realm+devicePath, h.withRealm(h.devicePage))
	mux.Handle("POST "+realm+devicePath, browser.Handler(h.withRealm(h.deviceSubmit)))
	mux.Handle("POST "+realm+loginPath, browser.Handler(h.withRealm(h.login)))
	mux.Handle("POST "+realm+consentPath, browser.Handler(h.withRealm(h.consent)))
	mux.HandleFunc(realm+logoutPath, h.withRealm(h.corsRealm(h.logout)))
	mux.Handle("POST "+realm+logoutConfirmPath, browser.Handler(h.withRealm(h.logoutConfirm)))
	// The account page for browsers, and its JSON for a Bearer token (with CORS
	// for the realm's web origins, preflight included: see account).
	mux.HandleFunc("GET "+realm+accountPath, h.withRealm(h.account))
	mux.HandleFunc("OPTIONS "+realm+accountPath, h.withRealm(h.account))
	h.registerFramePages(mux, realm)
	mux.Handle("POST "+realm+accountLogoutPath, browser.Handler(h.withRealm(h.accountLogout)))
	mux.Handle("POST "+realm+accountEndPath, browser.Handler(h.withRealm(h.accountEnd)))
	mux.Handle("POST "+realm+accountEverywherePath, browser.Handler(h.withRealm(h.accountEverywhere)))
	mux.Handle("GET /static/", web.Static())
	mux.HandleFunc("GET "+realm+"/.well-known/openid-configuration", h.withRealm(h.discovery))
	mux.HandleFunc("GET "+realm+"/.well-known/oauth-authorization-server", h.withRealm(h.discovery))
	// RFC 8414 §3.1 puts the well-known segment before the issuer's path.
	mux.HandleFunc("GET /.well-known/oauth-authorization-server"+realm, h.withRealm(h.discovery))
}

type realmHandler func(w http.ResponseWriter, r *http.Request, realm storage.Realm)

// withRealm resolves the realm in the path, answering 404 for an unknown one.
func (h *Handler) withRealm(next realmHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		realm, err := h.getRealm(r.Context(), r.PathValue("realm"))
		if errors.Is(err, storage.ErrNotFound) {
			h.writeError(w, r, protocol.New(NotFound, "realm not found"))
			return
		}
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		next(w, r, realm)
	}
}

// getRealm looks up the realm a request's path names. A name no realm can have is
// not found without a lookup, so it reaches no cache, store or log.
func (h *Handler) getRealm(ctx context.Context, name string) (storage.Realm, error) {
	if ident.Realm(name) != nil {
		return storage.Realm{}, storage.ErrNotFound
	}
	return h.store.GetRealm(ctx, name)
}

// caller says who sent a request, for the login limiter, audit events and session
// records: the client address comes from the trusted proxies' headers, if any.
func (h *Handler) caller(r *http.Request) token.Caller {
	return token.Caller{IP: h.clientIP.ClientIP(r), UserAgent: r.UserAgent()}
}
