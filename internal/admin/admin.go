// Package admin is Latchkey's admin REST API under /admin/: realms, clients,
// roles, users, sessions, tokens, signing keys and audit events, as JSON, with RFC 9457
// problem details, cursor pages, ETags, and callers authenticated by Latchkey's own
// client-credentials access tokens. It depends on storage, registry and the token
// and key services, not on the OAuth edge.
package admin

import (
	"context"
	_ "embed"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/latchkey/latchkey/internal/clientsecret"
	"github.com/latchkey/latchkey/internal/ident"
	"github.com/latchkey/latchkey/internal/token"
	"github.com/latchkey/latchkey/storage"
)

// Store is what the admin API reads and changes.
type Store interface {
	storage.RealmStore
	storage.ClientStore
	storage.UserStore
	storage.SessionStore
	storage.RefreshStore
	storage.SigningKeyStore
	storage.AuditStore
	storage.RoleStore
}

// Tokens is the token service: checking admin callers' tokens and handling any
// token of a realm.
type Tokens interface {
	VerifyAccess(ctx context.Context, realm, tok string) (*token.AccessClaims, bool, error)
	IntrospectAny(ctx context.Context, realm storage.Realm, tok string) (token.Introspection, error)
	RevokeAny(ctx context.Context, realm storage.Realm, tok string, event storage.AuditEvent) (bool, error)
	DenyJTI(ctx context.Context, realm, jti string, until time.Time, event storage.AuditEvent) error
	ForgetVerified()
	Issuer(realm string) string
}

// Keys is the signing-key manager.
type Keys interface {
	Rotate(ctx context.Context, realm, alg string) ([]storage.SigningKey, error)
	Retire(ctx context.Context, realm, kid string, events ...storage.AuditEvent) (storage.SigningKey, error)
	Forget(realm string)
}

// Config is what the API runs on.
type Config struct {
	Store   Store // the cached store, so this instance sees its own changes at once
	Tokens  Tokens
	Keys    Keys
	Secrets *clientsecret.Hasher
	// HashPassword hashes a new user password (argon2id).
	HashPassword func(password string) (string, error)
	// Logins is the login limiter whose locks the unlock route clears (on every
	// instance: its counts are in the store); nil: nothing to clear.
	Logins interface {
		Unlock(ctx context.Context, account string) error
	}
	// ClientIP is the caller's address, for audit events.
	ClientIP func(r *http.Request) string
	// AllowPlainHTTP lets a client have a plain-http back-channel logout URI (to
	// a loopback address): the server runs in dev mode or with --insecure-http.
	AllowPlainHTTP bool
	Log            *slog.Logger
	Now            func() time.Time
}

// API is the admin API's handlers.
type API struct {
	Config
}

// MasterRealm is the management realm: its admin clients administer every realm.
const MasterRealm = "master"

// Admin scopes (issue 11): read-write, and read-only (GET only).
const (
	ScopeAdmin     = "latchkey:admin"
	ScopeAdminRead = "latchkey:admin:read"
)

// New returns the API.
func New(c Config) *API {
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.ClientIP == nil {
		c.ClientIP = func(r *http.Request) string { return "" }
	}
	return &API{Config: c}
}

//go:embed openapi.json
var openapiJSON []byte

// OpenAPI returns the API's OpenAPI 3.1 document.
func OpenAPI() []byte { return openapiJSON }

// handlerFunc is an admin handler: it answers, or returns the error to answer with.
type handlerFunc func(w http.ResponseWriter, r *http.Request, c *caller) error

// Register adds the admin routes to mux, under /admin/.
func (a *API) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /admin/openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(openapiJSON)
	})
	mux.HandleFunc("/admin/", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, notFound("no such admin route"))
	})
	for _, rt := range a.routes() {
		mux.Handle(rt.pattern, a.route(rt.pattern, rt.fn))
	}
}

// adminRoute is one authenticated route: "METHOD /path" and its handler.
type adminRoute struct {
	pattern string
	fn      handlerFunc
}

// routes are every authenticated route (the OpenAPI document lists each).
func (a *API) routes() []adminRoute {
	var rs []adminRoute
	h := func(pattern string, fn handlerFunc) { rs = append(rs, adminRoute{pattern, fn}) }

	h("GET /admin/realms", a.listRealms)
	h("GET /admin/realms/{realm}", a.getRealm)
	h("PUT /admin/realms/{realm}", a.putRealm)
	h("DELETE /admin/realms/{realm}", a.deleteRealm)
	h("POST /admin/realms/{realm}/logout-all", a.logoutRealm)

	h("GET /admin/realms/{realm}/clients", a.listClients)
	h("GET /admin/realms/{realm}/clients/{client}", a.getClient)
	h("PUT /admin/realms/{realm}/clients/{client}", a.putClient)
	h("DELETE /admin/realms/{realm}/clients/{client}", a.deleteClient)
	h("POST /admin/realms/{realm}/clients/{client}/disable", a.disableClient)
	h("POST /admin/realms/{realm}/clients/{client}/enable", a.enableClient)
	h("POST /admin/realms/{realm}/clients/{client}/secret", a.rotateSecret)
	h("POST /admin/realms/{realm}/clients/{client}/revoke-tokens", a.revokeClientTokens)

	h("POST /admin/realms/{realm}/tokens/introspect", a.introspectToken)
	h("POST /admin/realms/{realm}/tokens/revoke", a.revokeToken)

	h("GET /admin/realms/{realm}/keys", a.listKeys)
	h("POST /admin/realms/{realm}/keys/rotate", a.rotateKeys)
	h("POST /admin/realms/{realm}/keys/{kid}/retire", a.retireKey)

	h("GET /admin/realms/{realm}/events", a.listEvents)

	a.registerUsers(h)
	a.registerRoles(h)
	return rs
}

// route authenticates and authorizes the caller for the route, runs fn, and
// answers any error it returns as a problem. A GET needs a read or read-write admin
// token, anything else a read-write one; a route under /admin/realms/{realm} needs
// a token of that realm or of master, any other a token of master.
func (a *API) route(pattern string, fn handlerFunc) http.Handler {
	write := !strings.HasPrefix(pattern, "GET ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				a.Log.Error("admin: panic", "route", pattern, "panic", v)
				writeProblem(w, problem(http.StatusInternalServerError, "", "internal error"))
			}
		}()
		c, err := a.authenticate(r, r.PathValue("realm"), write)
		if err == nil {
			err = checkPathIDs(r)
		}
		if err == nil {
			err = fn(w, r, c)
		}
		if err != nil {
			p, internal := problemOf(err)
			if internal {
				a.Log.Error("admin: request failed", "route", pattern, "err", err)
			}
			writeProblem(w, p)
		}
	})
}

// checkPathIDs bounds the identifiers in the path before they reach a cache, a
// store or a log: one no entity can have is simply not found.
func checkPathIDs(r *http.Request) error {
	if v := r.PathValue("realm"); v != "" && ident.Realm(v) != nil {
		return notFound("no such realm")
	}
	if v := r.PathValue("client"); v != "" && ident.ClientID(v) != nil {
		return notFound("no such client")
	}
	if v := r.PathValue("role"); v != "" && ident.Role(v) != nil {
		return notFound("no such role")
	}
	for _, name := range []string{"user", "session", "family", "kid"} {
		if v := r.PathValue(name); v != "" && (len(v) > maxPathID || ident.Token(v) != nil) {
			return notFound("no such %s", name)
		}
	}
	return nil
}

// maxPathID bounds the IDs of users, sessions, families and keys in a path.
const maxPathID = 255

// event is an audit event of a change the caller made to realm, naming them.
func (c *caller) event(typ, realm string, at time.Time) storage.AuditEvent {
	return storage.AuditEvent{Time: at, Type: typ, Realm: realm, IP: c.ip, UserAgent: c.userAgent,
		Details: map[string]string{"admin_client": c.clientID, "admin_realm": c.realm}}
}

// byAdmin names the caller on a security event (user.disabled, client.disabled, ...).
func (c *caller) byAdmin(e storage.AuditEvent) storage.AuditEvent {
	if e.Details == nil {
		e.Details = map[string]string{}
	}
	e.Details["by"] = "admin"
	e.Details["admin_client"] = c.clientID
	e.Details["admin_realm"] = c.realm
	e.IP, e.UserAgent = c.ip, c.userAgent
	return e
}

// now is the time of a change, as stores keep it.
func (a *API) now() time.Time { return a.Now().UTC().Truncate(time.Microsecond) }
