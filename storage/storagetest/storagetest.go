// Package storagetest is the conformance suite every storage backend runs unchanged.
package storagetest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/storage"
)

// Run runs the whole suite. newStore must return a fresh, empty, migrated store and
// close it when the test ends.
func Run(t *testing.T, newStore func(t *testing.T) storage.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s storage.Store)
	}{
		{"Ready", testReady},
		{"Realms", testRealms},
		{"Clients", testClients},
		{"Users", testUsers},
		{"DeleteRealmCascades", testDeleteRealmCascades},
		{"Sessions", testSessions},
		{"PurgeKeepsSessionsOfLiveFamilies", testPurgeKeepsSessionsOfLiveFamilies},
		{"AuthCodes", testAuthCodes},
		{"AuthCodeConsumedOnceUnderRace", testAuthCodeRace},
		{"AuthCodesPerSession", testAuthCodesPerSession},
		{"RefreshFamilies", testRefreshFamilies},
		{"RefreshRotation", testRefreshRotation},
		{"RefreshRotatedOnceUnderRace", testRefreshRace},
		{"FailedRotationUndoesOnlyItself", testFailedRotationUndoesOnlyItself},
		{"RevokeManyFamilies", testRevokeManyFamilies},
		{"PurgeFamilies", testPurgeFamilies},
		{"DenyList", testDenyList},
		{"SigningKeys", testSigningKeys},
		{"Audit", testAudit},
		{"ClientAssertions", testClientAssertions},
		{"Consents", testConsents},
		{"Sweep", testSweep},
		{"Seed", testSeed},
		{"SeedIsAllOrNothing", testSeedAllOrNothing},
		{"SeedDisablesAUserForGood", testSeedDisablesForGood},
		{"SeedDisablesAClientForGood", testSeedDisablesClientForGood},
		{"SeedPasswordMACs", testSeedPasswordMACs},
		{"Exclusive", testExclusive},
		{"SessionClients", testSessionClients},
		{"BackchannelCursor", testBackchannelCursor},
		{"SessionsRevokedAt", testSessionsRevokedAt},
	}
	for _, tc := range slices.Concat(tests, adminTests, changeTests, attemptTests, roleTests, grantTests, bffTests) {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

// t0 is the suite's "now": microsecond precision, as stores keep.
var t0 = time.Date(2026, 11, 22, 10, 0, 0, 123456000, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

func ctx(t *testing.T) context.Context { return t.Context() }

func randBytes(t *testing.T) []byte {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// putRealm, putClient and putUser store the entity as it is given, through the
// updater, which finds it by its key.
func putRealm(c context.Context, s storage.Store, r storage.Realm) error {
	_, err := s.UpdateRealm(c, r.Name, func(p *storage.Realm) ([]storage.AuditEvent, error) { *p = r; return nil, nil })
	return err
}

func putClient(c context.Context, s storage.Store, cl storage.Client) error {
	_, err := s.UpdateClient(c, cl.Realm, cl.ID, func(p *storage.Client) ([]storage.AuditEvent, error) { *p = cl; return nil, nil })
	return err
}

func putUser(c context.Context, s storage.Store, u storage.User) error {
	_, err := s.UpdateUser(c, u.Realm, u.ID, func(p *storage.User) ([]storage.AuditEvent, error) { *p = u; return nil, nil })
	return err
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

func wantErr(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error = %v, want %v", err, want)
	}
}

func wantCount(t *testing.T, what string, got int64, err error, want int64) {
	t.Helper()
	must(t, err)
	if got != want {
		t.Fatalf("%s = %d, want %d", what, got, want)
	}
}

// same fails the test unless got and want are equal, treating nil and empty
// slices and maps alike and comparing times as instants.
func same(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(normalize(reflect.ValueOf(got)), normalize(reflect.ValueOf(want))) {
		t.Fatalf("%s:\n got  %+v\n want %+v", what, got, want)
	}
}

var timeType = reflect.TypeFor[time.Time]()

// normalize turns v into plain values fit for reflect.DeepEqual.
func normalize(v reflect.Value) any {
	if !v.IsValid() {
		return nil
	}
	if v.Type() == timeType {
		tm := v.Interface().(time.Time)
		if tm.IsZero() {
			return "zero-time"
		}
		return tm.UTC().Format(time.RFC3339Nano)
	}
	switch v.Kind() {
	case reflect.Slice:
		if v.Len() == 0 {
			return nil
		}
		out := make([]any, v.Len())
		for i := range out {
			out[i] = normalize(v.Index(i))
		}
		return out
	case reflect.Map:
		if v.Len() == 0 {
			return nil
		}
		out := map[any]any{}
		for _, k := range v.MapKeys() {
			out[k.Interface()] = normalize(v.MapIndex(k))
		}
		return out
	case reflect.Struct:
		out := map[string]any{}
		for i := range v.NumField() {
			out[v.Type().Field(i).Name] = normalize(v.Field(i))
		}
		return out
	default:
		return v.Interface()
	}
}

// Fixtures.

func mkRealm(t *testing.T, s storage.Store, name string) storage.Realm {
	t.Helper()
	r := storage.Realm{Name: name, DisplayName: "Realm " + name, SigningAlg: "ES256",
		AccessTokenTTL: 5 * time.Minute, CreatedAt: t0, UpdatedAt: t0}
	must(t, s.CreateRealm(ctx(t), r))
	return r
}

func newClient(realm, id string) storage.Client {
	return storage.Client{
		Realm: realm, ID: id, Name: "Client " + id,
		SecretHash:             "v1$" + id,
		RedirectURIs:           []string{"https://app.example/cb", "http://127.0.0.1:9999/cb"},
		PostLogoutRedirectURIs: []string{"https://app.example/bye"},
		GrantTypes:             []string{"authorization_code", "refresh_token"},
		Scopes:                 []string{"openid", "profile", "offline_access"},
		Audiences:              []string{"https://api.example"},
		BackchannelLogoutURI:   "https://app.example/backchannel-logout",
		WebOrigins:             []string{"+", "https://web.example", "http://localhost:3000"},
		Tokens: storage.TokenSettings{
			AccessTokenTTL: 2 * time.Minute, AccessTokenFormat: "jwt", RefreshPreset: "web",
			RefreshIdle: 24 * time.Hour, RefreshAbsolute: 14 * 24 * time.Hour, RefreshRetryWindow: 10 * time.Second,
			RefreshTokenFormat: "opaque",
		},
		CreatedAt: t0, UpdatedAt: t0,
	}
}

func newUser(realm, username string) storage.User {
	return storage.User{
		Realm: realm, ID: realm + "-" + username, Username: username,
		Email: username + "@example.com", EmailVerified: true, Name: "User " + username,
		PasswordHash: "$argon2id$v=19$m=65536,t=1,p=2$c2FsdA$aGFzaA", CreatedAt: t0, UpdatedAt: t0,
	}
}

func mkUser(t *testing.T, s storage.Store, realm, username string) storage.User {
	t.Helper()
	u := newUser(realm, username)
	must(t, s.CreateUser(ctx(t), u))
	return u
}

func newSession(realm, userID, id string) storage.Session {
	return storage.Session{
		ID: id, Realm: realm, UserID: userID, SecretHash: []byte("secret-hash-" + id),
		AuthTime: t0, CreatedAt: t0, LastSeenAt: t0,
		IdleExpiresAt: at(time.Hour), ExpiresAt: at(10 * time.Hour),
		IP: "192.0.2.1", UserAgent: "test-agent",
	}
}

func newFamily(realm, clientID, userID, sessionID, id string) storage.Family {
	return storage.Family{
		ID: id, Realm: realm, ClientID: clientID, UserID: userID, SessionID: sessionID,
		Scopes: []string{"openid", "offline_access"}, Audience: []string{"https://api.example"},
		CreatedAt: t0, LastUsedAt: t0, IdleExpiresAt: at(time.Hour), AbsoluteExpiresAt: at(24 * time.Hour),
		IP: "192.0.2.1", UserAgent: "test-agent",
		// Bound to a DPoP key, so every path that stores a family must keep it.
		JKT: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I",
	}
}

func newConsent(realm, userID, clientID string) storage.Consent {
	return storage.Consent{Realm: realm, UserID: userID, ClientID: clientID,
		Scopes: []string{"openid", "profile"}, CreatedAt: t0, UpdatedAt: t0}
}

// mkFamily creates realm r's family id for a fresh client and user, and returns it with its first token.
func mkFamily(t *testing.T, s storage.Store, realm, id string) (storage.Family, storage.RefreshToken) {
	t.Helper()
	f := newFamily(realm, "web", realm+"-alice", "", id)
	tok := storage.RefreshToken{Hash: randBytes(t), FamilyID: f.ID, Scopes: f.Scopes, IssuedAt: t0}
	must(t, s.CreateFamily(ctx(t), f, tok))
	return f, tok
}

// setupRealm makes a realm with client "web" and user "alice".
func setupRealm(t *testing.T, s storage.Store, name string) {
	t.Helper()
	mkRealm(t, s, name)
	must(t, s.CreateClient(ctx(t), newClient(name, "web")))
	mkUser(t, s, name, "alice")
}

func testReady(t *testing.T, s storage.Store) {
	must(t, s.Ready(ctx(t)))
}

func testRealms(t *testing.T, s storage.Store) {
	c := ctx(t)
	_, err := s.GetRealm(c, "acme")
	wantErr(t, err, storage.ErrNotFound)

	acme := mkRealm(t, s, "acme")
	mkRealm(t, s, "beta")
	wantErr(t, s.CreateRealm(c, acme), storage.ErrConflict)

	got, err := s.GetRealm(c, "acme")
	must(t, err)
	same(t, "GetRealm", got, acme)

	list, err := s.ListRealms(c)
	must(t, err)
	if len(list) != 2 || list[0].Name != "acme" || list[1].Name != "beta" {
		t.Fatalf("ListRealms = %+v, want acme, beta", list)
	}

	acme.DisplayName, acme.SigningAlg, acme.AccessTokenTTL, acme.UpdatedAt = "ACME", "EdDSA", time.Minute, at(time.Minute)
	must(t, putRealm(c, s, acme))
	got, err = s.GetRealm(c, "acme")
	must(t, err)
	same(t, "updated realm", got, acme)

	wantErr(t, putRealm(c, s, storage.Realm{Name: "nope"}), storage.ErrNotFound)
	must(t, s.DeleteRealm(c, "beta"))
	wantErr(t, s.DeleteRealm(c, "beta"), storage.ErrNotFound)
	_, err = s.GetRealm(c, "beta")
	wantErr(t, err, storage.ErrNotFound)
}

func testClients(t *testing.T, s storage.Store) {
	c := ctx(t)
	mkRealm(t, s, "acme")
	mkRealm(t, s, "other")

	web := newClient("acme", "web")
	must(t, s.CreateClient(c, web))
	wantErr(t, s.CreateClient(c, web), storage.ErrConflict)
	// Client IDs are unique per realm, not globally.
	must(t, s.CreateClient(c, newClient("other", "web")))
	wantErr(t, s.CreateClient(c, newClient("missing", "web")), storage.ErrNotFound)

	spa := newClient("acme", "spa")
	spa.SecretHash = ""
	spa.Audiences, spa.PostLogoutRedirectURIs = nil, nil
	spa.ThirdParty = true
	spa.IDTokenSignedResponseAlg = "ES256"
	spa.BackchannelLogoutSessionRequired = true
	spa.WebOrigins = nil // unset: the redirect URIs' origins
	spa.Tokens.RefreshTokenFormat = "jwt"
	spa.DPoPBoundAccessTokens = true
	spa.RequirePushedAuthorizationRequests = true
	must(t, s.CreateClient(c, spa))
	svc := newClient("acme", "svc")
	svc.RedirectURIs, svc.GrantTypes, svc.Scopes = nil, []string{"client_credentials"}, []string{"orders:read", "orders:write"}
	svc.Tokens = storage.TokenSettings{AccessTokenFormat: "opaque", RefreshPreset: "service"}
	svc.GrantTypes = append(svc.GrantTypes, "urn:ietf:params:oauth:grant-type:token-exchange")
	svc.TokenExchangeAudiences = []string{"https://api.example", "orders"}
	must(t, s.CreateClient(c, svc))
	pk := newClient("acme", "pk")
	pk.SecretHash = ""
	pk.JWKS = []byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"k1"}]}`)
	must(t, s.CreateClient(c, pk))

	for _, want := range []storage.Client{web, spa, svc, pk} {
		got, err := s.GetClient(c, "acme", want.ID)
		must(t, err)
		same(t, "GetClient "+want.ID, got, want)
	}
	got, err := s.GetClient(c, "acme", "spa")
	must(t, err)
	if !got.Public() {
		t.Fatal("a client with no secret must be public")
	}
	if got, _ := s.GetClient(c, "acme", "pk"); got.Public() {
		t.Fatal("a client with keys is confidential")
	}
	must(t, s.DeleteClient(c, "acme", "pk"))
	_, err = s.GetClient(c, "acme", "nope")
	wantErr(t, err, storage.ErrNotFound)
	_, err = s.GetClient(c, "nope", "web")
	wantErr(t, err, storage.ErrNotFound)

	list, err := s.ListClients(c, "acme")
	must(t, err)
	if len(list) != 3 || list[0].ID != "spa" || list[1].ID != "svc" || list[2].ID != "web" {
		t.Fatalf("ListClients = %+v, want spa, svc, web", list)
	}

	web.RedirectURIs = []string{"https://new.example/cb"}
	web.Scopes = append(web.Scopes, "email")
	web.WebOrigins = []string{"https://new.example"}
	web.Disabled = true
	web.PKCEOptional = true
	web.IDTokenSignedResponseAlg = "EdDSA"
	web.Tokens.RefreshRetryWindow = 0
	web.Tokens.RefreshTokenFormat = "jwt"
	web.DPoPBoundAccessTokens = true
	web.RequirePushedAuthorizationRequests = true
	web.TokenExchangeAudiences = []string{"https://api.example"}
	web.UpdatedAt = at(time.Hour)
	web.PreviousSecretHash, web.PreviousSecretExpiresAt = "old-hash", at(2*time.Hour)
	web.CreatedAt = at(time.Hour) // CreatedAt is not updatable
	updated, err := s.UpdateClient(c, "acme", "web", func(p *storage.Client) ([]storage.AuditEvent, error) {
		*p = web
		return nil, nil
	})
	must(t, err)
	got, err = s.GetClient(c, "acme", "web")
	must(t, err)
	// Disabling it moved its security stamp to the update's time.
	web.CreatedAt, web.TokensValidAfter = t0, at(time.Hour)
	same(t, "updated client", got, web)
	same(t, "UpdateClient's result", updated, web)
	wantErr(t, putClient(c, s, newClient("acme", "nope")), storage.ErrNotFound)

	must(t, s.DeleteClient(c, "acme", "web"))
	wantErr(t, s.DeleteClient(c, "acme", "web"), storage.ErrNotFound)
	// The other realm's client of the same ID is untouched.
	_, err = s.GetClient(c, "other", "web")
	must(t, err)
}

func testUsers(t *testing.T, s storage.Store) {
	c := ctx(t)
	mkRealm(t, s, "acme")
	mkRealm(t, s, "other")

	alice := newUser("acme", "alice")
	alice.TokensValidAfter = at(-time.Hour)
	must(t, s.CreateUser(c, alice))
	wantErr(t, s.CreateUser(c, alice), storage.ErrConflict)

	dupName := newUser("acme", "alice")
	dupName.ID, dupName.Email = "another-id", "another@example.com"
	wantErr(t, s.CreateUser(c, dupName), storage.ErrConflict)
	dupEmail := newUser("acme", "alicia")
	dupEmail.Email = alice.Email
	wantErr(t, s.CreateUser(c, dupEmail), storage.ErrConflict)
	wantErr(t, s.CreateUser(c, newUser("missing", "alice")), storage.ErrNotFound)

	// The same username and email in another realm are fine; so are several users without email.
	must(t, s.CreateUser(c, newUser("other", "alice")))
	for _, name := range []string{"noemail1", "noemail2"} {
		u := newUser("acme", name)
		u.Email = ""
		must(t, s.CreateUser(c, u))
	}

	got, err := s.GetUser(c, "acme", alice.ID)
	must(t, err)
	same(t, "GetUser", got, alice)
	got, err = s.GetUserByUsername(c, "acme", "alice")
	must(t, err)
	same(t, "GetUserByUsername", got, alice)
	got, err = s.GetUserByEmail(c, "acme", "alice@example.com")
	must(t, err)
	same(t, "GetUserByEmail", got, alice)
	_, err = s.GetUser(c, "other", alice.ID)
	wantErr(t, err, storage.ErrNotFound)
	_, err = s.GetUserByUsername(c, "acme", "bob")
	wantErr(t, err, storage.ErrNotFound)
	_, err = s.GetUserByEmail(c, "acme", "")
	wantErr(t, err, storage.ErrNotFound)

	list, err := s.ListUsers(c, "acme", storage.UserQuery{})
	must(t, err)
	if len(list) != 3 || list[0].Username != "alice" || list[2].Username != "noemail2" {
		t.Fatalf("ListUsers = %+v, want alice, noemail1, noemail2", list)
	}

	alice.Disabled = true
	alice.TokensValidAfter = at(time.Minute)
	alice.Email = "alice@new.example"
	alice.UpdatedAt = at(time.Minute)
	must(t, putUser(c, s, alice))
	got, err = s.GetUser(c, "acme", alice.ID)
	must(t, err)
	same(t, "updated user", got, alice)

	taken := list[1]
	taken.Username = "alice"
	wantErr(t, putUser(c, s, taken), storage.ErrConflict)
	wantErr(t, putUser(c, s, newUser("acme", "ghost")), storage.ErrNotFound)

	must(t, s.DeleteUser(c, "acme", alice.ID))
	wantErr(t, s.DeleteUser(c, "acme", alice.ID), storage.ErrNotFound)
	_, err = s.GetUserByUsername(c, "acme", "alice")
	wantErr(t, err, storage.ErrNotFound)
}

func testDeleteRealmCascades(t *testing.T, s storage.Store) {
	c := ctx(t)
	setupRealm(t, s, "acme")
	setupRealm(t, s, "keep")
	for _, realm := range []string{"acme", "keep"} {
		must(t, s.CreateSession(c, newSession(realm, realm+"-alice", realm+"-sid")))
		mkFamily(t, s, realm, realm+"-fam")
		must(t, s.SaveConsent(c, newConsent(realm, realm+"-alice", "web")))
	}

	must(t, s.DeleteRealm(c, "acme"))
	_, err := s.GetClient(c, "acme", "web")
	wantErr(t, err, storage.ErrNotFound)
	_, err = s.GetUser(c, "acme", "acme-alice")
	wantErr(t, err, storage.ErrNotFound)
	_, err = s.GetSession(c, "acme-sid")
	wantErr(t, err, storage.ErrNotFound)
	_, err = s.GetFamily(c, "acme-fam")
	wantErr(t, err, storage.ErrNotFound)
	_, err = s.GetConsent(c, "acme", "acme-alice", "web")
	wantErr(t, err, storage.ErrNotFound)

	_, err = s.GetSession(c, "keep-sid")
	must(t, err)
	_, err = s.GetFamily(c, "keep-fam")
	must(t, err)
	_, err = s.GetConsent(c, "keep", "keep-alice", "web")
	must(t, err)

	// Deleting a user takes everything they hold with them.
	code := newCode(t, "keep")
	must(t, s.CreateAuthCode(c, code, 0))
	must(t, s.DeleteUser(c, "keep", "keep-alice"))
	_, err = redeem(c, s, code.Hash, t0)
	wantErr(t, err, storage.ErrNotFound)
	_, err = s.GetSession(c, "keep-sid")
	wantErr(t, err, storage.ErrNotFound)
	_, err = s.GetFamily(c, "keep-fam")
	wantErr(t, err, storage.ErrNotFound)
	_, err = s.GetConsent(c, "keep", "keep-alice", "web")
	wantErr(t, err, storage.ErrNotFound)
}

func testSessions(t *testing.T, s storage.Store) {
	c := ctx(t)
	setupRealm(t, s, "acme")
	mkUser(t, s, "acme", "bob")

	a := newSession("acme", "acme-alice", "sid-a")
	must(t, s.CreateSession(c, a))
	wantErr(t, s.CreateSession(c, a), storage.ErrConflict)
	got, err := s.GetSession(c, "sid-a")
	must(t, err)
	same(t, "GetSession", got, a)
	if !got.Live(at(time.Minute)) || got.Live(at(time.Hour)) {
		t.Fatal("Session.Live must end at the idle expiry")
	}
	_, err = s.GetSession(c, "nope")
	wantErr(t, err, storage.ErrNotFound)

	must(t, s.TouchSession(c, "sid-a", at(50*time.Minute), at(110*time.Minute)))
	got, err = s.GetSession(c, "sid-a")
	must(t, err)
	if !got.LastSeenAt.Equal(at(50*time.Minute)) || !got.IdleExpiresAt.Equal(at(110*time.Minute)) {
		t.Fatalf("TouchSession did not move LastSeenAt/IdleExpiresAt: %+v", got)
	}
	wantErr(t, s.TouchSession(c, "nope", t0, t0), storage.ErrNotFound)

	b := newSession("acme", "acme-alice", "sid-b")
	b.CreatedAt = at(time.Second)
	must(t, s.CreateSession(c, b))
	expired := newSession("acme", "acme-alice", "sid-expired")
	expired.IdleExpiresAt = at(-time.Second)
	must(t, s.CreateSession(c, expired))
	must(t, s.CreateSession(c, newSession("acme", "acme-bob", "sid-bob")))

	list, err := s.ListUserSessions(c, "acme", "acme-alice", t0)
	must(t, err)
	if len(list) != 2 || list[0].ID != "sid-a" || list[1].ID != "sid-b" {
		t.Fatalf("ListUserSessions = %+v, want sid-a, sid-b", list)
	}

	must(t, s.RevokeSession(c, "sid-b", at(time.Minute)))
	must(t, s.RevokeSession(c, "sid-b", at(2*time.Minute)))
	got, err = s.GetSession(c, "sid-b")
	must(t, err)
	if !got.RevokedAt.Equal(at(time.Minute)) {
		t.Fatalf("RevokedAt = %v, want the first revocation %v", got.RevokedAt, at(time.Minute))
	}
	wantErr(t, s.RevokeSession(c, "nope", t0), storage.ErrNotFound)
	list, err = s.ListUserSessions(c, "acme", "acme-alice", t0)
	must(t, err)
	if len(list) != 1 || list[0].ID != "sid-a" {
		t.Fatalf("ListUserSessions after revoke = %+v, want sid-a", list)
	}

	n, err := s.RevokeUserSessions(c, "acme", "acme-alice", at(3*time.Minute))
	wantCount(t, "RevokeUserSessions", n, err, 2) // sid-a and sid-expired; sid-b was revoked already
	list, err = s.ListUserSessions(c, "acme", "acme-alice", t0)
	must(t, err)
	if len(list) != 0 {
		t.Fatalf("ListUserSessions after log-out-everywhere = %+v, want none", list)
	}
	if list, err := s.ListUserSessions(c, "acme", "acme-bob", t0); err != nil || len(list) != 1 {
		t.Fatalf("bob's sessions = %+v, %v; want his one session untouched", list, err)
	}

	// Purge: revoked at 1m and 3m, expired at -1s; bob's idles out at 1h.
	n, err = s.PurgeSessions(c, at(2*time.Minute))
	wantCount(t, "PurgeSessions(2m)", n, err, 2) // sid-expired, sid-b
	n, err = s.PurgeSessions(c, at(2*time.Hour))
	wantCount(t, "PurgeSessions(2h)", n, err, 2) // sid-a, sid-bob
	_, err = s.GetSession(c, "sid-bob")
	wantErr(t, err, storage.ErrNotFound)
}

// testPurgeKeepsSessionsOfLiveFamilies: an expired session stays while a refresh
// family born in it is unrevoked and unexpired (an offline family outlives its
// session's expiry, and a logout of the session must still end it); a revoked
// session, or one whose families are all revoked or expired, goes.
func testPurgeKeepsSessionsOfLiveFamilies(t *testing.T, s storage.Store) {
	c := ctx(t)
	setupRealm(t, s, "acme")
	session := func(id string, revoked bool) {
		sess := newSession("acme", "acme-alice", id) // idles out at 1h
		must(t, s.CreateSession(c, sess))
		if revoked {
			must(t, s.RevokeSession(c, id, at(time.Minute)))
		}
	}
	family := func(id, sid string, absolute time.Time, revoked bool) {
		f := newFamily("acme", "web", "acme-alice", sid, id)
		f.IdleExpiresAt, f.AbsoluteExpiresAt = absolute, absolute
		must(t, s.CreateFamily(c, f, storage.RefreshToken{Hash: randBytes(t), IssuedAt: t0}))
		if revoked {
			must(t, s.RevokeFamily(c, id, at(time.Minute), "test"))
		}
	}
	session("sid-offline", false) // its offline family lives for 48h
	family("fam-offline", "sid-offline", at(48*time.Hour), false)
	family("fam-offline-spent", "sid-offline", at(30*time.Minute), false)
	session("sid-revoked-family", false)
	family("fam-revoked", "sid-revoked-family", at(48*time.Hour), true)
	session("sid-expired-family", false)
	family("fam-expired", "sid-expired-family", at(30*time.Minute), false)
	session("sid-logged-out", true) // a logout ends a session whatever its families
	family("fam-of-logged-out", "sid-logged-out", at(48*time.Hour), false)
	session("sid-alone", false)

	n, err := s.PurgeSessions(c, at(2*time.Hour))
	wantCount(t, "PurgeSessions(2h)", n, err, 4)
	got, err := s.GetSession(c, "sid-offline")
	must(t, err)
	if got.Live(at(2 * time.Hour)) {
		t.Fatal("the kept session must still read as expired")
	}
	for _, id := range []string{"sid-revoked-family", "sid-expired-family", "sid-logged-out", "sid-alone"} {
		_, err := s.GetSession(c, id)
		wantErr(t, err, storage.ErrNotFound)
	}

	// The sweep agrees: families first, then the sessions no kept family needs.
	res, err := s.Sweep(c, at(3*time.Hour), 0)
	must(t, err)
	if res.Sessions != 0 {
		t.Fatalf("Sweep purged %d sessions, want 0: sid-offline's family is live", res.Sessions)
	}
	_, err = s.GetSession(c, "sid-offline")
	must(t, err)

	// A logout of the kept session still finds it; its families can then go.
	n, err = s.RevokeSessionFamilies(c, "sid-offline", at(4*time.Hour), "logout")
	wantCount(t, "RevokeSessionFamilies", n, err, 1)
	res, err = s.Sweep(c, at(5*time.Hour), 0)
	must(t, err)
	if res.Sessions != 1 {
		t.Fatalf("Sweep after the family's revocation purged %d sessions, want sid-offline", res.Sessions)
	}
	_, err = s.GetSession(c, "sid-offline")
	wantErr(t, err, storage.ErrNotFound)
}

func newCode(t *testing.T, realm string) storage.AuthCode {
	return storage.AuthCode{
		Hash: randBytes(t), Realm: realm, ClientID: "web", UserID: realm + "-alice", SessionID: "sid-1",
		RedirectURI: "https://app.example/cb", Scopes: []string{"openid", "profile"}, Nonce: "n-0S6",
		CodeChallenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", CodeChallengeMethod: "S256",
		FamilyID: "fam-" + hex.EncodeToString(randBytes(t)[:8]), IP: "192.0.2.1", UserAgent: "test-agent",
		AuthTime: t0, CreatedAt: t0, ExpiresAt: at(time.Minute),
	}
}

// redeem redeems a code with a start that makes the code's family, as the token
// service would.
func redeem(c context.Context, s storage.Store, hash []byte, now time.Time) (storage.AuthCode, error) {
	return s.RedeemAuthCode(c, hash, now, grantOf(now))
}

func grantOf(now time.Time) storage.StartGrant {
	return func(code storage.AuthCode) (storage.Family, storage.RefreshToken, error) {
		f := newFamily(code.Realm, code.ClientID, code.UserID, code.SessionID, code.FamilyID)
		f.CreatedAt, f.LastUsedAt = now, now
		f.IP, f.UserAgent = code.IP, code.UserAgent
		hash := sha256.Sum256(code.Hash) // a stand-in for a fresh token's hash
		return f, storage.RefreshToken{Hash: hash[:], Scopes: code.Scopes, IssuedAt: now}, nil
	}
}

func testAuthCodes(t *testing.T, s storage.Store) {
	c := ctx(t)
	setupRealm(t, s, "acme")

	code := newCode(t, "acme")
	must(t, s.CreateAuthCode(c, code, 0))
	wantErr(t, s.CreateAuthCode(c, code, 0), storage.ErrConflict)

	got, err := redeem(c, s, code.Hash, at(time.Second))
	must(t, err)
	code.ConsumedAt = at(time.Second)
	same(t, "consumed code", got, code)
	// The grant exists as soon as the code is spent, with what start made of it.
	fam, err := s.GetFamily(c, code.FamilyID)
	must(t, err)
	wantFam, wantFirst, _ := grantOf(at(time.Second))(code)
	same(t, "family started by the code", fam, wantFam)
	first, err := s.GetRefreshToken(c, wantFirst.Hash)
	must(t, err)
	wantFirst.FamilyID = code.FamilyID
	same(t, "first refresh token of the grant", first, wantFirst)

	// A replay comes back with the code, and start is not called.
	got, err = s.RedeemAuthCode(c, code.Hash, at(2*time.Second), func(storage.AuthCode) (storage.Family, storage.RefreshToken, error) {
		t.Error("start called for a replayed code")
		return storage.Family{}, storage.RefreshToken{}, errors.New("no")
	})
	wantErr(t, err, storage.ErrAlreadyUsed)
	same(t, "code on second redemption", got, code)

	_, err = redeem(c, s, randBytes(t), t0)
	wantErr(t, err, storage.ErrNotFound)

	late := newCode(t, "acme")
	must(t, s.CreateAuthCode(c, late, 0))
	_, err = redeem(c, s, late.Hash, late.ExpiresAt)
	wantErr(t, err, storage.ErrNotFound)

	// A refusal keeps the code spent and starts no grant.
	refused := newCode(t, "acme")
	must(t, s.CreateAuthCode(c, refused, 0))
	errWrongVerifier := errors.New("wrong verifier")
	got, err = s.RedeemAuthCode(c, refused.Hash, at(time.Second), func(storage.AuthCode) (storage.Family, storage.RefreshToken, error) {
		return storage.Family{}, storage.RefreshToken{}, errWrongVerifier
	})
	if !errors.Is(err, errWrongVerifier) {
		t.Fatalf("refused redemption: err = %v, want start's error", err)
	}
	refused.ConsumedAt = at(time.Second)
	same(t, "refused code", got, refused)
	_, err = s.GetFamily(c, refused.FamilyID)
	wantErr(t, err, storage.ErrNotFound)
	_, err = redeem(c, s, refused.Hash, at(2*time.Second))
	wantErr(t, err, storage.ErrAlreadyUsed)

	// A grant that cannot be stored leaves the code as it was.
	clash := newCode(t, "acme")
	clash.FamilyID = code.FamilyID
	must(t, s.CreateAuthCode(c, clash, 0))
	_, err = redeem(c, s, clash.Hash, at(time.Second))
	wantErr(t, err, storage.ErrConflict)
	clash.FamilyID = "fam-clash-retry"
	_, err = s.RedeemAuthCode(c, clash.Hash, at(time.Second), func(code storage.AuthCode) (storage.Family, storage.RefreshToken, error) {
		code.FamilyID = clash.FamilyID
		return grantOf(at(time.Second))(code)
	})
	must(t, err)

	fresh := newCode(t, "acme")
	fresh.ExpiresAt = at(time.Hour)
	must(t, s.CreateAuthCode(c, fresh, 0))

	// code, late, refused and clash expire at 1m; late was never consumed, so it
	// goes as soon as it expired; the spent ones are kept for the grace, to tell a
	// replay from garbage. fresh expires at 1h.
	n, err := s.PurgeAuthCodes(c, at(time.Minute), time.Minute)
	wantCount(t, "PurgeAuthCodes(1m, grace 1m)", n, err, 0)
	n, err = s.PurgeAuthCodes(c, at(90*time.Second), time.Minute)
	wantCount(t, "PurgeAuthCodes(90s, grace 1m)", n, err, 1)
	_, err = redeem(c, s, code.Hash, t0)
	wantErr(t, err, storage.ErrAlreadyUsed)
	n, err = s.PurgeAuthCodes(c, at(3*time.Minute), time.Minute)
	wantCount(t, "PurgeAuthCodes(3m, grace 1m)", n, err, 3)
	_, err = redeem(c, s, code.Hash, t0)
	wantErr(t, err, storage.ErrNotFound)
	_, err = redeem(c, s, fresh.Hash, at(2*time.Minute))
	must(t, err)
}

// testAuthCodesPerSession: a session holds at most keep codes not yet consumed;
// a new one evicts the oldest. Spent codes and other sessions' codes stay.
func testAuthCodesPerSession(t *testing.T, s storage.Store) {
	c := ctx(t)
	setupRealm(t, s, "acme")
	const keep = 3

	spent := newCode(t, "acme")
	must(t, s.CreateAuthCode(c, spent, keep))
	_, err := redeem(c, s, spent.Hash, at(time.Second))
	must(t, err)
	other := newCode(t, "acme")
	other.SessionID = "sid-other"
	must(t, s.CreateAuthCode(c, other, keep))

	var codes []storage.AuthCode
	for i := range 2 * keep {
		code := newCode(t, "acme")
		code.CreatedAt = at(time.Duration(i+1) * time.Millisecond)
		must(t, s.CreateAuthCode(c, code, keep))
		codes = append(codes, code)
	}
	for i, code := range codes {
		_, err := redeem(c, s, code.Hash, at(time.Second))
		if i < len(codes)-keep {
			wantErr(t, err, storage.ErrNotFound)
		} else {
			must(t, err)
		}
	}
	_, err = redeem(c, s, spent.Hash, at(2*time.Second))
	wantErr(t, err, storage.ErrAlreadyUsed)
	_, err = redeem(c, s, other.Hash, at(time.Second))
	must(t, err)
}

const racers = 50

// race runs fn from racers goroutines released at once and returns their errors.
func race(fn func(i int) error) []error {
	errs := make([]error, racers)
	start := make(chan struct{})
	done := make(chan struct{})
	for i := range racers {
		go func() {
			defer func() { done <- struct{}{} }()
			<-start
			errs[i] = fn(i)
		}()
	}
	close(start)
	for range racers {
		<-done
	}
	return errs
}

func testAuthCodeRace(t *testing.T, s storage.Store) {
	c := ctx(t)
	setupRealm(t, s, "acme")
	code := newCode(t, "acme")
	must(t, s.CreateAuthCode(c, code, 0))

	errs := race(func(int) error {
		_, err := redeem(c, s, code.Hash, at(time.Second))
		return err
	})
	won, used := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case errors.Is(err, storage.ErrAlreadyUsed):
			used++
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	if won != 1 || used != racers-1 {
		t.Fatalf("of %d redemptions %d succeeded and %d saw ErrAlreadyUsed; want exactly 1 and %d", racers, won, used, racers-1)
	}
}

func testRefreshFamilies(t *testing.T, s storage.Store) {
	c := ctx(t)
	setupRealm(t, s, "acme")

	f := newFamily("acme", "web", "acme-alice", "sid-1", "fam-1")
	first := storage.RefreshToken{Hash: randBytes(t), Scopes: f.Scopes, IssuedAt: t0}
	must(t, s.CreateFamily(c, f, first))
	wantErr(t, s.CreateFamily(c, f, storage.RefreshToken{Hash: randBytes(t), IssuedAt: t0}), storage.ErrConflict)
	// The token hash is unique too, and a failed CreateFamily leaves no family behind.
	other := newFamily("acme", "web", "acme-alice", "", "fam-other")
	wantErr(t, s.CreateFamily(c, other, first), storage.ErrConflict)
	_, err := s.GetFamily(c, "fam-other")
	wantErr(t, err, storage.ErrNotFound)

	got, err := s.GetFamily(c, "fam-1")
	must(t, err)
	same(t, "GetFamily", got, f)
	tok, err := s.GetRefreshToken(c, first.Hash)
	must(t, err)
	first.FamilyID = "fam-1"
	same(t, "GetRefreshToken", tok, first)
	_, err = s.GetFamily(c, "nope")
	wantErr(t, err, storage.ErrNotFound)
	_, err = s.GetRefreshToken(c, randBytes(t))
	wantErr(t, err, storage.ErrNotFound)

	if !got.Live(at(59*time.Minute)) || got.Live(at(time.Hour)) {
		t.Fatal("Family.Live must end at the idle expiry")
	}

	must(t, s.RevokeFamily(c, "fam-1", at(time.Minute), "logout"))
	must(t, s.RevokeFamily(c, "fam-1", at(2*time.Minute), "reuse"))
	got, err = s.GetFamily(c, "fam-1")
	must(t, err)
	if !got.RevokedAt.Equal(at(time.Minute)) || got.RevokeReason != "logout" {
		t.Fatalf("revoked family = %+v, want the first revocation (1m, logout)", got)
	}
	wantErr(t, s.RevokeFamily(c, "nope", t0, "x"), storage.ErrNotFound)
}

// A rotation that fails part-way (its parent marked, then its child's hash taken)
// leaves nothing behind, while rotations running beside it, which a backend may
// commit in the same transaction, all stand.
func testFailedRotationUndoesOnlyItself(t *testing.T, s storage.Store) {
	c := ctx(t)
	setupRealm(t, s, "acme")
	_, taken := mkFamily(t, s, "acme", "fam-taken")
	const n = 40
	parents := make([]storage.RefreshToken, n)
	children := make([]storage.RefreshToken, n)
	for i := range n {
		_, parents[i] = mkFamily(t, s, "acme", fmt.Sprintf("fam-%02d", i))
		children[i] = storage.RefreshToken{Hash: randBytes(t), IssuedAt: at(time.Minute)}
		if i%4 == 0 {
			children[i].Hash = taken.Hash // collides with another family's token
		}
	}
	use := storage.FamilyUse{At: at(time.Minute), IdleExpiresAt: at(2 * time.Hour)}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, errs[i] = s.RotateRefreshToken(c, parents[i].Hash, children[i], []byte("sealed"), use)
		})
	}
	wg.Wait()
	for i := range n {
		got, err := s.GetRefreshToken(c, parents[i].Hash)
		must(t, err)
		fam, err := s.GetFamily(c, fmt.Sprintf("fam-%02d", i))
		must(t, err)
		if i%4 == 0 {
			wantErr(t, errs[i], storage.ErrConflict)
			if !got.UsedAt.IsZero() || got.SuccessorHash != nil || !fam.LastUsedAt.Equal(t0) {
				t.Fatalf("rotation %d failed but left its parent %+v and family %+v changed", i, got, fam)
			}
			continue
		}
		must(t, errs[i])
		if !got.UsedAt.Equal(use.At) || !fam.LastUsedAt.Equal(use.At) {
			t.Fatalf("rotation %d succeeded but its parent %+v or family %+v is not marked", i, got, fam)
		}
		if _, err := s.GetRefreshToken(c, children[i].Hash); err != nil {
			t.Fatalf("rotation %d succeeded but its child is not stored: %v", i, err)
		}
	}
	// The family whose token the failures collided with is untouched.
	got, err := s.GetRefreshToken(c, taken.Hash)
	must(t, err)
	if got.FamilyID != "fam-taken" || !got.UsedAt.IsZero() {
		t.Fatalf("the colliding token is now %+v", got)
	}
}

func testRefreshRotation(t *testing.T, s storage.Store) {
	c := ctx(t)
	setupRealm(t, s, "acme")
	f, parent := mkFamily(t, s, "acme", "fam-1")

	child := storage.RefreshToken{Hash: randBytes(t), Scopes: []string{"openid"}, IssuedAt: at(time.Minute)}
	use := storage.FamilyUse{At: at(time.Minute), IdleExpiresAt: at(61 * time.Minute), IP: "198.51.100.7", UserAgent: "app/2"}
	sealed := []byte("sealed successor response")
	_, err := s.RotateRefreshToken(c, parent.Hash, child, sealed, use)
	must(t, err)

	gotParent, err := s.GetRefreshToken(c, parent.Hash)
	must(t, err)
	want := parent
	want.UsedAt, want.SuccessorHash, want.Sealed = use.At, child.Hash, sealed
	same(t, "rotated parent", gotParent, want)
	gotChild, err := s.GetRefreshToken(c, child.Hash)
	must(t, err)
	child.FamilyID = "fam-1"
	same(t, "child", gotChild, child)

	gotFam, err := s.GetFamily(c, "fam-1")
	must(t, err)
	f.LastUsedAt, f.IdleExpiresAt, f.IP, f.UserAgent = use.At, use.IdleExpiresAt, use.IP, use.UserAgent
	same(t, "family after rotation (absolute expiry unchanged)", gotFam, f)

	// The parent again: already used, and by which successor.
	again := storage.RefreshToken{Hash: randBytes(t), IssuedAt: at(2 * time.Minute)}
	stood, err := s.RotateRefreshToken(c, parent.Hash, again, []byte("other"), storage.FamilyUse{At: at(2 * time.Minute), IdleExpiresAt: at(time.Hour)})
	wantErr(t, err, storage.ErrAlreadyUsed)
	same(t, "parent as it stands", stood, want)
	_, err = s.GetRefreshToken(c, again.Hash)
	wantErr(t, err, storage.ErrNotFound)

	_, err = s.RotateRefreshToken(c, randBytes(t), storage.RefreshToken{Hash: randBytes(t), IssuedAt: t0}, nil, use)
	wantErr(t, err, storage.ErrNotFound)

	// A revoked family rotates no more: not the live child, not the used parent.
	must(t, s.RevokeFamily(c, "fam-1", at(3*time.Minute), "reuse"))
	next := storage.RefreshToken{Hash: randBytes(t), IssuedAt: at(4 * time.Minute)}
	_, err = s.RotateRefreshToken(c, child.Hash, next, nil, storage.FamilyUse{At: at(4 * time.Minute), IdleExpiresAt: at(time.Hour)})
	wantErr(t, err, storage.ErrRevoked)
	_, err = s.RotateRefreshToken(c, parent.Hash, next, nil, storage.FamilyUse{At: at(4 * time.Minute), IdleExpiresAt: at(time.Hour)})
	wantErr(t, err, storage.ErrRevoked)
	_, err = s.GetRefreshToken(c, next.Hash)
	wantErr(t, err, storage.ErrNotFound)
}

func testRefreshRace(t *testing.T, s storage.Store) {
	c := ctx(t)
	setupRealm(t, s, "acme")
	_, parent := mkFamily(t, s, "acme", "fam-1")

	children := make([][]byte, racers)
	for i := range children {
		children[i] = randBytes(t)
	}
	stood := make([]storage.RefreshToken, racers)
	errs := race(func(i int) error {
		child := storage.RefreshToken{Hash: children[i], IssuedAt: at(time.Second)}
		use := storage.FamilyUse{At: at(time.Second), IdleExpiresAt: at(time.Hour)}
		var err error
		stood[i], err = s.RotateRefreshToken(c, parent.Hash, child, fmt.Appendf(nil, "response %d", i), use)
		return err
	})

	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("rotations %d and %d both succeeded", winner, i)
			}
			winner = i
		case !errors.Is(err, storage.ErrAlreadyUsed):
			t.Fatalf("rotation %d: unexpected error %v", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no rotation succeeded")
	}
	for i, err := range errs {
		if err == nil {
			continue
		}
		if !reflect.DeepEqual(stood[i].SuccessorHash, children[winner]) || string(stood[i].Sealed) != fmt.Sprintf("response %d", winner) {
			t.Fatalf("loser %d was told successor %x, want the winner's %x", i, stood[i].SuccessorHash, children[winner])
		}
	}
	for i, h := range children {
		_, err := s.GetRefreshToken(c, h)
		if i == winner {
			must(t, err)
		} else {
			wantErr(t, err, storage.ErrNotFound)
		}
	}
}

func testRevokeManyFamilies(t *testing.T, s storage.Store) {
	c := ctx(t)
	setupRealm(t, s, "acme")
	mkUser(t, s, "acme", "bob")
	create := func(id, user, sid string, created time.Time) {
		f := newFamily("acme", "web", user, sid, id)
		f.CreatedAt = created
		must(t, s.CreateFamily(c, f, storage.RefreshToken{Hash: randBytes(t), IssuedAt: created}))
	}
	create("f1", "acme-alice", "sid-1", t0)
	create("f2", "acme-alice", "sid-2", at(time.Second))
	create("f3", "acme-alice", "sid-1", at(2*time.Second))
	create("fb", "acme-bob", "sid-b", t0)
	expired := newFamily("acme", "web", "acme-alice", "", "f-expired")
	expired.AbsoluteExpiresAt = at(-time.Second)
	must(t, s.CreateFamily(c, expired, storage.RefreshToken{Hash: randBytes(t), IssuedAt: t0}))

	ids := func(list []storage.Family) []string {
		var out []string
		for _, f := range list {
			out = append(out, f.ID)
		}
		return out
	}
	list, err := s.ListUserFamilies(c, "acme", "acme-alice", t0)
	must(t, err)
	same(t, "live families", ids(list), []string{"f1", "f2", "f3"})

	n, err := s.RevokeSessionFamilies(c, "sid-1", at(time.Minute), "logout")
	wantCount(t, "RevokeSessionFamilies", n, err, 2)
	list, err = s.ListUserFamilies(c, "acme", "acme-alice", t0)
	must(t, err)
	same(t, "live families after session logout", ids(list), []string{"f2"})

	n, err = s.RevokeUserFamilies(c, "acme", "acme-alice", at(2*time.Minute), "logout-everywhere")
	wantCount(t, "RevokeUserFamilies", n, err, 2) // f2 and f-expired
	list, err = s.ListUserFamilies(c, "acme", "acme-alice", t0)
	must(t, err)
	same(t, "live families after logout everywhere", ids(list), []string(nil))
	f1, err := s.GetFamily(c, "f1")
	must(t, err)
	if f1.RevokeReason != "logout" {
		t.Fatalf("f1 revoke reason = %q, want the first one, logout", f1.RevokeReason)
	}
	list, err = s.ListUserFamilies(c, "acme", "acme-bob", t0)
	must(t, err)
	same(t, "bob's families", ids(list), []string{"fb"})
}

func testPurgeFamilies(t *testing.T, s storage.Store) {
	c := ctx(t)
	setupRealm(t, s, "acme")
	_, idleTok := mkFamily(t, s, "acme", "idle") // idles out at 1h
	abs := newFamily("acme", "web", "acme-alice", "", "absolute")
	abs.IdleExpiresAt, abs.AbsoluteExpiresAt = at(48*time.Hour), at(30*time.Minute)
	must(t, s.CreateFamily(c, abs, storage.RefreshToken{Hash: randBytes(t), IssuedAt: t0}))
	_, revTok := mkFamily(t, s, "acme", "revoked")
	must(t, s.RevokeFamily(c, "revoked", at(time.Minute), "test"))
	live := newFamily("acme", "web", "acme-alice", "", "live")
	live.IdleExpiresAt, live.AbsoluteExpiresAt = at(48*time.Hour), at(48*time.Hour)
	must(t, s.CreateFamily(c, live, storage.RefreshToken{Hash: randBytes(t), IssuedAt: t0}))

	n, err := s.PurgeFamilies(c, at(time.Minute))
	wantCount(t, "PurgeFamilies(1m)", n, err, 0)
	n, err = s.PurgeFamilies(c, at(2*time.Minute))
	wantCount(t, "PurgeFamilies(2m)", n, err, 1) // revoked
	n, err = s.PurgeFamilies(c, at(2*time.Hour))
	wantCount(t, "PurgeFamilies(2h)", n, err, 2) // absolute, idle

	for _, id := range []string{"idle", "absolute", "revoked"} {
		_, err := s.GetFamily(c, id)
		wantErr(t, err, storage.ErrNotFound)
	}
	for _, h := range [][]byte{idleTok.Hash, revTok.Hash} {
		_, err := s.GetRefreshToken(c, h)
		wantErr(t, err, storage.ErrNotFound) // tokens go with their family
	}
	_, err = s.GetFamily(c, "live")
	must(t, err)
}

func testDenyList(t *testing.T, s storage.Store) {
	c := ctx(t)
	mkRealm(t, s, "acme")
	mkRealm(t, s, "other")

	d1 := storage.DeniedJWT{Realm: "acme", JTI: "jti-1", ExpiresAt: at(5 * time.Minute), CreatedAt: t0, Reason: "revoked"}
	d2 := storage.DeniedJWT{Realm: "acme", JTI: "jti-2", ExpiresAt: at(time.Hour), CreatedAt: t0, Reason: "emergency"}
	must(t, s.DenyJWT(c, d1))
	must(t, s.DenyJWT(c, d2))
	again := d1
	again.Reason, again.CreatedAt = "later", at(time.Minute)
	must(t, s.DenyJWT(c, again)) // idempotent: keeps the first

	for _, tc := range []struct {
		realm, jti string
		want       bool
	}{{"acme", "jti-1", true}, {"acme", "jti-2", true}, {"acme", "jti-3", false}, {"other", "jti-1", false}} {
		got, err := s.IsJWTDenied(c, tc.realm, tc.jti)
		must(t, err)
		if got != tc.want {
			t.Fatalf("IsJWTDenied(%s, %s) = %v, want %v", tc.realm, tc.jti, got, tc.want)
		}
	}

	list, err := s.ListDeniedJWTs(c, "acme", t0)
	must(t, err)
	same(t, "deny-list", list, []storage.DeniedJWT{d1, d2})
	list, err = s.ListDeniedJWTs(c, "acme", at(10*time.Minute))
	must(t, err)
	same(t, "deny-list without expired entries", list, []storage.DeniedJWT{d2})

	n, err := s.PurgeDeniedJWTs(c, at(5*time.Minute))
	wantCount(t, "PurgeDeniedJWTs(5m)", n, err, 0)
	n, err = s.PurgeDeniedJWTs(c, at(6*time.Minute))
	wantCount(t, "PurgeDeniedJWTs(6m)", n, err, 1)
	denied, err := s.IsJWTDenied(c, "acme", "jti-1")
	must(t, err)
	if denied {
		t.Fatal("a purged entry is still denied")
	}
}

func testSigningKeys(t *testing.T, s storage.Store) {
	c := ctx(t)
	mkRealm(t, s, "acme")

	k1 := storage.SigningKey{Realm: "acme", KID: "k1", Alg: "ES256", PrivateKey: []byte("sealed-1"),
		PublicJWK: []byte(`{"kty":"EC","kid":"k1"}`), CreatedAt: t0, SignFrom: at(time.Hour)}
	k2 := storage.SigningKey{Realm: "acme", KID: "k0", Alg: "RS256", PrivateKey: []byte("sealed-2"),
		PublicJWK: []byte(`{"kty":"RSA","kid":"k0"}`), CreatedAt: at(time.Minute), SignFrom: at(time.Minute)}
	must(t, s.CreateSigningKey(c, k1))
	must(t, s.CreateSigningKey(c, k2))
	wantErr(t, s.CreateSigningKey(c, k1), storage.ErrConflict)
	missing := k1
	missing.Realm = "missing"
	wantErr(t, s.CreateSigningKey(c, missing), storage.ErrNotFound)

	list, err := s.ListSigningKeys(c, "acme")
	must(t, err)
	same(t, "ListSigningKeys", list, []storage.SigningKey{k1, k2})

	must(t, s.RetireSigningKey(c, "acme", "k1", at(2*time.Hour), at(3*time.Hour)))
	wantErr(t, s.RetireSigningKey(c, "acme", "nope", t0, t0), storage.ErrNotFound)
	list, err = s.ListSigningKeys(c, "acme")
	must(t, err)
	k1.SignUntil, k1.PublishUntil = at(2*time.Hour), at(3*time.Hour)
	same(t, "retired key", list[0], k1)

	n, err := s.PurgeSigningKeys(c, at(3*time.Hour))
	wantCount(t, "PurgeSigningKeys(3h)", n, err, 0)
	n, err = s.PurgeSigningKeys(c, at(4*time.Hour))
	wantCount(t, "PurgeSigningKeys(4h)", n, err, 1) // k2 has no PublishUntil and stays
	list, err = s.ListSigningKeys(c, "acme")
	must(t, err)
	same(t, "keys after purge", list, []storage.SigningKey{k2})
}

func testAudit(t *testing.T, s storage.Store) {
	c := ctx(t)
	mkRealm(t, s, "acme")

	events := []storage.AuditEvent{
		{Time: t0, Type: "login.failed", Realm: "acme", UserID: "u1", IP: "192.0.2.1", UserAgent: "ua"},
		{Time: at(time.Second), Type: "refresh_token.reuse_detected", Realm: "acme", ClientID: "web", UserID: "u1",
			SessionID: "sid-1", FamilyID: "fam-1", IP: "192.0.2.2", UserAgent: "ua2", Details: map[string]string{"reason": "reuse"}},
		{Time: at(2 * time.Second), Type: "login.failed", Realm: "other", UserID: "u2"},
	}
	var last int64
	for i := range events {
		id, err := s.AppendAudit(c, events[i])
		must(t, err)
		if id <= last {
			t.Fatalf("audit IDs must increase: got %d after %d", id, last)
		}
		events[i].ID, last = id, id
	}

	all, err := s.ListAudit(c, storage.AuditFilter{})
	must(t, err)
	same(t, "all events, newest first", all, []storage.AuditEvent{events[2], events[1], events[0]})
	got, err := s.ListAudit(c, storage.AuditFilter{Realm: "acme"})
	must(t, err)
	same(t, "acme's events", got, []storage.AuditEvent{events[1], events[0]})
	got, err = s.ListAudit(c, storage.AuditFilter{Type: "login.failed", UserID: "u1"})
	must(t, err)
	same(t, "u1's failed logins", got, []storage.AuditEvent{events[0]})
	got, err = s.ListAudit(c, storage.AuditFilter{Since: at(time.Second)})
	must(t, err)
	same(t, "events since 1s", got, []storage.AuditEvent{events[2], events[1]})
	got, err = s.ListAudit(c, storage.AuditFilter{Limit: 1})
	must(t, err)
	same(t, "newest event", got, []storage.AuditEvent{events[2]})
}

func seedFixture() storage.Seed {
	realm := storage.Realm{Name: "acme", DisplayName: "ACME", SigningAlg: "ES256", AccessTokenTTL: 5 * time.Minute, CreatedAt: t0, UpdatedAt: t0}
	svc := newClient("acme", "svc")
	svc.GrantTypes = []string{"client_credentials"}
	return storage.Seed{Realms: []storage.SeedRealm{{
		Realm:   realm,
		Clients: []storage.Client{newClient("acme", "web"), svc},
		Users:   []storage.User{newUser("acme", "alice"), newUser("acme", "bob")},
	}}}
}

func testSeed(t *testing.T, s storage.Store) {
	c := ctx(t)
	seed := seedFixture()

	res, err := s.ApplySeed(c, seed)
	must(t, err)
	same(t, "first apply", res, storage.SeedResult{Created: 5})
	alice, err := s.GetUserByUsername(c, "acme", "alice")
	must(t, err)
	same(t, "seeded user", alice, seed.Realms[0].Users[0])

	// Someone logs alice out everywhere; a later seed must not undo that.
	alice.TokensValidAfter = at(time.Minute)
	must(t, putUser(c, s, alice))

	// The same seed again, even with later timestamps and fresh user IDs, changes nothing.
	again := seedFixture()
	again.Realms[0].Realm.UpdatedAt = at(time.Hour)
	for i := range again.Realms[0].Clients {
		again.Realms[0].Clients[i].CreatedAt, again.Realms[0].Clients[i].UpdatedAt = at(time.Hour), at(time.Hour)
	}
	for i := range again.Realms[0].Users {
		u := &again.Realms[0].Users[i]
		u.ID, u.CreatedAt, u.UpdatedAt = "new-id-"+u.Username, at(time.Hour), at(time.Hour)
	}
	res, err = s.ApplySeed(c, again)
	must(t, err)
	same(t, "second apply", res, storage.SeedResult{Unchanged: 5})
	web, err := s.GetClient(c, "acme", "web")
	must(t, err)
	if !web.UpdatedAt.Equal(t0) {
		t.Fatalf("an unchanged client's UpdatedAt moved to %v", web.UpdatedAt)
	}

	// Changed entries are updated; new ones created; users keep their identity.
	again.Realms[0].Clients[0].RedirectURIs = []string{"https://changed.example/cb"}
	again.Realms[0].Users[0].Email = "alice@changed.example"
	again.Realms[0].Users = append(again.Realms[0].Users, newUser("acme", "carol"))
	res, err = s.ApplySeed(c, again)
	must(t, err)
	same(t, "third apply", res, storage.SeedResult{Created: 1, Updated: 2, Unchanged: 3})

	web, err = s.GetClient(c, "acme", "web")
	must(t, err)
	same(t, "updated redirect URIs", web.RedirectURIs, []string{"https://changed.example/cb"})
	if !web.CreatedAt.Equal(t0) || !web.UpdatedAt.Equal(at(time.Hour)) {
		t.Fatalf("updated client times = %v / %v, want created %v, updated %v", web.CreatedAt, web.UpdatedAt, t0, at(time.Hour))
	}
	got, err := s.GetUserByUsername(c, "acme", "alice")
	must(t, err)
	if got.ID != alice.ID || !got.CreatedAt.Equal(t0) || !got.TokensValidAfter.Equal(at(time.Minute)) || got.Email != "alice@changed.example" {
		t.Fatalf("updated user = %+v; want ID %s, CreatedAt %v, TokensValidAfter kept, new email", got, alice.ID, t0)
	}
	_, err = s.GetUserByUsername(c, "acme", "carol")
	must(t, err)
}

func testSeedAllOrNothing(t *testing.T, s storage.Store) {
	c := ctx(t)
	mkRealm(t, s, "existing")
	seed := seedFixture()
	// A second realm whose users clash on email: the whole seed must fail.
	bad := storage.SeedRealm{Realm: storage.Realm{Name: "beta", SigningAlg: "ES256", AccessTokenTTL: time.Minute, CreatedAt: t0, UpdatedAt: t0}}
	u1, u2 := newUser("beta", "one"), newUser("beta", "two")
	u2.Email = u1.Email
	bad.Users = []storage.User{u1, u2}
	seed.Realms = append(seed.Realms, bad)

	_, err := s.ApplySeed(c, seed)
	if err == nil {
		t.Fatal("a seed with clashing emails applied")
	}
	realms, err := s.ListRealms(c)
	must(t, err)
	if len(realms) != 1 || realms[0].Name != "existing" {
		t.Fatalf("realms after a failed seed = %+v, want only the one that was there", realms)
	}
}

func testSeedDisablesForGood(t *testing.T, s storage.Store) {
	c := ctx(t)
	disabled := func() []storage.AuditEvent {
		t.Helper()
		ev, err := s.ListAudit(c, storage.AuditFilter{Type: "user.disabled"})
		must(t, err)
		return ev
	}
	seed := seedFixture()
	carol := newUser("acme", "carol")
	carol.Disabled = true // created disabled: nothing was turned off
	seed.Realms[0].Users = append(seed.Realms[0].Users, carol)
	_, err := s.ApplySeed(c, seed)
	must(t, err)
	same(t, "events after creating users", len(disabled()), 0)

	// Disabling alice, in a seed that fails as a whole, writes no event.
	seed.Realms[0].Users[0].Disabled = true
	seed.Realms[0].Users[0].UpdatedAt = at(time.Hour)
	bad := seedFixture()
	bad.Realms[0].Realm.Name = "beta"
	bad.Realms[0].Users[1].Realm, bad.Realms[0].Users[1].Email = "beta", bad.Realms[0].Users[0].Email
	failing := storage.Seed{Realms: append(seed.Realms[:1:1], bad.Realms[0])}
	if _, err := s.ApplySeed(c, failing); err == nil {
		t.Fatal("a seed with clashing emails applied")
	}
	same(t, "events after a failed seed", len(disabled()), 0)

	// What alice holds when she is disabled.
	alice, err := s.GetUserByUsername(c, "acme", "alice")
	must(t, err)
	sess := newSession("acme", alice.ID, "alice-sid")
	must(t, s.CreateSession(c, sess))
	fam := newFamily("acme", "web", alice.ID, sess.ID, "alice-fam")
	must(t, s.CreateFamily(c, fam, storage.RefreshToken{Hash: randBytes(t), IssuedAt: t0}))

	res, err := s.ApplySeed(c, seed)
	must(t, err)
	same(t, "disabling apply", res, storage.SeedResult{Updated: 1, Unchanged: 5, Audit: disabled()})
	same(t, "user.disabled events", disabled(), []storage.AuditEvent{{ID: disabled()[0].ID, Time: at(time.Hour),
		Type: "user.disabled", Realm: "acme", UserID: alice.ID, Details: map[string]string{"by": "seed"}}})
	// Disabled for good, in the same transaction: the stamp moved, and what she
	// held is ended.
	endedForGood := func(what string) {
		t.Helper()
		alice, err := s.GetUserByUsername(c, "acme", "alice")
		must(t, err)
		same(t, what+": alice's TokensValidAfter", alice.TokensValidAfter, at(time.Hour))
		got, err := s.GetSession(c, sess.ID)
		must(t, err)
		same(t, what+": alice's session revoked at", got.RevokedAt, at(time.Hour))
		f, err := s.GetFamily(c, fam.ID)
		must(t, err)
		same(t, what+": alice's family revoked", []any{f.RevokedAt, f.RevokeReason}, []any{at(time.Hour), storage.ReasonUserDisabled})
	}
	endedForGood("after disabling")

	// The same seed again: alice stays disabled, and nothing more is written.
	_, err = s.ApplySeed(c, seed)
	must(t, err)
	same(t, "events after the same seed again", len(disabled()), 1)

	// Enabled again: nothing she held comes back.
	seed.Realms[0].Users[0].Disabled = false
	seed.Realms[0].Users[0].UpdatedAt = at(2 * time.Hour)
	_, err = s.ApplySeed(c, seed)
	must(t, err)
	endedForGood("after enabling again")

	// A new password ends what she held since, in the same way.
	sess2 := newSession("acme", alice.ID, "alice-sid-2")
	must(t, s.CreateSession(c, sess2))
	fam2 := newFamily("acme", "web", alice.ID, sess2.ID, "alice-fam-2")
	must(t, s.CreateFamily(c, fam2, storage.RefreshToken{Hash: randBytes(t), IssuedAt: at(2 * time.Hour)}))
	seed.Realms[0].Users[0].PasswordHash = "$argon2id$v=19$m=19456,t=2,p=1$bmV3LXNhbHQ$bmV3LWhhc2g"
	seed.Realms[0].Users[0].UpdatedAt = at(3 * time.Hour)
	res, err = s.ApplySeed(c, seed)
	must(t, err)
	passwordApply := res
	alice, err = s.GetUserByUsername(c, "acme", "alice")
	must(t, err)
	same(t, "TokensValidAfter after the new password", alice.TokensValidAfter, at(3*time.Hour))
	got, err := s.GetSession(c, sess2.ID)
	must(t, err)
	same(t, "session revoked by the new password", got.RevokedAt, at(3*time.Hour))
	f, err := s.GetFamily(c, fam2.ID)
	must(t, err)
	same(t, "family revoked by the new password", []any{f.RevokedAt, f.RevokeReason}, []any{at(3 * time.Hour), storage.ReasonPasswordChanged})
	ev, err := s.ListAudit(c, storage.AuditFilter{Type: "user.password_changed"})
	must(t, err)
	if len(ev) != 1 {
		t.Fatalf("user.password_changed events = %+v, want one", ev)
	}
	same(t, "user.password_changed events", ev, []storage.AuditEvent{{ID: ev[0].ID, Time: at(3 * time.Hour),
		Type: "user.password_changed", Realm: "acme", UserID: alice.ID, Details: map[string]string{"by": "seed"}}})
	same(t, "password apply", passwordApply, storage.SeedResult{Updated: 1, Unchanged: 5, Audit: ev})
}

// A client the seed disables keeps nothing: its stamp moves and its refresh
// families end, in the seed's transaction, and enabling it again brings none
// of that back. Other clients' families are untouched.
func testSeedDisablesClientForGood(t *testing.T, s storage.Store) {
	c := ctx(t)
	seed := seedFixture()
	_, err := s.ApplySeed(c, seed)
	must(t, err)
	alice, err := s.GetUserByUsername(c, "acme", "alice")
	must(t, err)
	webFam := newFamily("acme", "web", alice.ID, "", "web-fam")
	must(t, s.CreateFamily(c, webFam, storage.RefreshToken{Hash: randBytes(t), IssuedAt: t0}))
	svcFam := newFamily("acme", "svc", alice.ID, "", "svc-fam")
	must(t, s.CreateFamily(c, svcFam, storage.RefreshToken{Hash: randBytes(t), IssuedAt: t0}))

	seed.Realms[0].Clients[0].Disabled = true
	seed.Realms[0].Clients[0].UpdatedAt = at(time.Hour)
	res, err := s.ApplySeed(c, seed)
	must(t, err)
	disablingApply := res
	endedForGood := func(what string) {
		t.Helper()
		web, err := s.GetClient(c, "acme", "web")
		must(t, err)
		same(t, what+": web's TokensValidAfter", web.TokensValidAfter, at(time.Hour))
		f, err := s.GetFamily(c, webFam.ID)
		must(t, err)
		same(t, what+": web's family revoked", []any{f.RevokedAt, f.RevokeReason}, []any{at(time.Hour), storage.ReasonClientDisabled})
		f, err = s.GetFamily(c, svcFam.ID)
		must(t, err)
		same(t, what+": svc's family revoked at", f.RevokedAt, time.Time{})
	}
	endedForGood("after disabling")
	ev, err := s.ListAudit(c, storage.AuditFilter{Type: "client.disabled"})
	must(t, err)
	if len(ev) != 1 {
		t.Fatalf("client.disabled events = %+v, want one", ev)
	}
	same(t, "client.disabled event", ev, []storage.AuditEvent{{ID: ev[0].ID, Time: at(time.Hour),
		Type: "client.disabled", Realm: "acme", ClientID: "web", Details: map[string]string{"by": "seed"}}})
	same(t, "disabling apply", disablingApply, storage.SeedResult{Updated: 1, Unchanged: 4, Audit: ev})

	seed.Realms[0].Clients[0].Disabled = false
	seed.Realms[0].Clients[0].UpdatedAt = at(2 * time.Hour)
	_, err = s.ApplySeed(c, seed)
	must(t, err)
	endedForGood("after enabling again")
	// An update through the store keeps the stamp too: it is state.
	web, err := s.GetClient(c, "acme", "web")
	must(t, err)
	web.Name, web.TokensValidAfter = "Renamed", time.Time{}
	must(t, putClient(c, s, web))
	endedForGood("after UpdateClient")
}

func testClientAssertions(t *testing.T, s storage.Store) {
	c := ctx(t)
	setupRealm(t, s, "acme")
	mkRealm(t, s, "other")

	must(t, s.UseClientAssertion(c, "acme", "web", "jti-1", at(time.Minute)))
	wantErr(t, s.UseClientAssertion(c, "acme", "web", "jti-1", at(time.Minute)), storage.ErrAlreadyUsed)
	// A jti is the client's own: another client, or realm, may use the same value.
	must(t, s.UseClientAssertion(c, "acme", "svc", "jti-1", at(time.Minute)))
	must(t, s.UseClientAssertion(c, "other", "web", "jti-1", at(time.Minute)))
	must(t, s.UseClientAssertion(c, "acme", "web", "jti-2", at(time.Hour)))

	errs := race(func(int) error { return s.UseClientAssertion(c, "acme", "web", "jti-race", at(time.Minute)) })
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, storage.ErrAlreadyUsed):
			t.Fatalf("unexpected error: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d of %d concurrent uses of one jti succeeded, want 1", won, racers)
	}

	n, err := s.PurgeClientAssertions(c, at(time.Minute))
	wantCount(t, "PurgeClientAssertions(1m)", n, err, 0)
	n, err = s.PurgeClientAssertions(c, at(2*time.Minute))
	wantCount(t, "PurgeClientAssertions(2m)", n, err, 4)
	// Once purged (after its expiry) the entry is gone; jti-2 is still remembered.
	must(t, s.UseClientAssertion(c, "acme", "web", "jti-1", at(3*time.Minute)))
	wantErr(t, s.UseClientAssertion(c, "acme", "web", "jti-2", at(time.Hour)), storage.ErrAlreadyUsed)
}

func testConsents(t *testing.T, s storage.Store) {
	c := ctx(t)
	setupRealm(t, s, "acme")
	setupRealm(t, s, "other")
	mkUser(t, s, "acme", "bob")

	_, err := s.GetConsent(c, "acme", "acme-alice", "web")
	wantErr(t, err, storage.ErrNotFound)

	web := newConsent("acme", "acme-alice", "web")
	must(t, s.SaveConsent(c, web))
	got, err := s.GetConsent(c, "acme", "acme-alice", "web")
	must(t, err)
	same(t, "GetConsent", got, web)

	// Saving again replaces the scopes and UpdatedAt; the consent keeps its CreatedAt.
	again := web
	again.Scopes = []string{"openid", "email", "offline_access"}
	again.CreatedAt, again.UpdatedAt = at(time.Hour), at(time.Hour)
	must(t, s.SaveConsent(c, again))
	got, err = s.GetConsent(c, "acme", "acme-alice", "web")
	must(t, err)
	web.Scopes, web.UpdatedAt = again.Scopes, again.UpdatedAt
	same(t, "saved again", got, web)

	// A consent is one user's, for one client, in one realm.
	spa := newConsent("acme", "acme-alice", "spa")
	spa.Scopes = []string{"openid"}
	bob := newConsent("acme", "acme-bob", "web")
	bob.Scopes = []string{"email"}
	elsewhere := newConsent("other", "other-alice", "web")
	for _, cs := range []storage.Consent{spa, bob, elsewhere} {
		must(t, s.SaveConsent(c, cs))
	}
	for _, want := range []storage.Consent{web, spa, bob, elsewhere} {
		got, err := s.GetConsent(c, want.Realm, want.UserID, want.ClientID)
		must(t, err)
		same(t, "GetConsent "+want.Realm+"/"+want.UserID+"/"+want.ClientID, got, want)
	}
	_, err = s.GetConsent(c, "other", "acme-alice", "web")
	wantErr(t, err, storage.ErrNotFound)

	list, err := s.ListUserConsents(c, "acme", "acme-alice")
	must(t, err)
	same(t, "alice's consents, by client ID", list, []storage.Consent{spa, web})
	list, err = s.ListUserConsents(c, "acme", "acme-bob")
	must(t, err)
	same(t, "bob's consents", list, []storage.Consent{bob})
	list, err = s.ListUserConsents(c, "acme", "nobody")
	must(t, err)
	same(t, "consents of a user with none", list, []storage.Consent(nil))

	must(t, s.DeleteConsent(c, "acme", "acme-alice", "web"))
	_, err = s.GetConsent(c, "acme", "acme-alice", "web")
	wantErr(t, err, storage.ErrNotFound)
	wantErr(t, s.DeleteConsent(c, "acme", "acme-alice", "web"), storage.ErrNotFound)
	list, err = s.ListUserConsents(c, "acme", "acme-alice")
	must(t, err)
	same(t, "alice's consents after a delete", list, []storage.Consent{spa})
	_, err = s.GetConsent(c, "other", "other-alice", "web")
	must(t, err)

	// Deleting a user takes their consents, and no one else's.
	must(t, s.DeleteUser(c, "acme", "acme-bob"))
	_, err = s.GetConsent(c, "acme", "acme-bob", "web")
	wantErr(t, err, storage.ErrNotFound)
	list, err = s.ListUserConsents(c, "acme", "acme-alice")
	must(t, err)
	same(t, "alice's consents after bob's deletion", list, []storage.Consent{spa})

	// Deleting a client takes the consents given to it: a client registered later
	// under the same ID starts with none.
	must(t, s.CreateClient(c, newClient("acme", "spa")))
	must(t, s.DeleteClient(c, "acme", "spa"))
	_, err = s.GetConsent(c, "acme", "acme-alice", "spa")
	wantErr(t, err, storage.ErrNotFound)
}

func testSweep(t *testing.T, s storage.Store) {
	c := ctx(t)
	setupRealm(t, s, "acme")
	const n = 20 // rows of each kind
	sweepAt, soon, later := at(time.Hour), at(30*time.Minute), at(2*time.Hour)

	// Each row's fate at the sweep follows from its index. As with the Purge*
	// methods, what ends exactly at the sweep time stays: only what expired or
	// was revoked strictly before it goes.
	//
	// expiry is for the kinds with one expiry: i%4 == 0 is dead (5 of 20).
	expiry := func(i int) (time.Time, bool) {
		switch i % 4 {
		case 0:
			return soon, true
		case 1:
			return sweepAt, false
		}
		return later, false
	}
	// lifeOf is for families and sessions, which end at an idle or an absolute
	// expiry or on revocation: i%8 of 0, 3 and 4 are dead (8 of 20).
	type life struct {
		idle, absolute, revoked time.Time
		dead                    bool
	}
	lifeOf := func(i int) life {
		switch i % 8 {
		case 0:
			return life{idle: soon, absolute: later, dead: true}
		case 1:
			return life{idle: sweepAt, absolute: later}
		case 3:
			return life{idle: later, absolute: later, revoked: at(10 * time.Minute), dead: true}
		case 4:
			return life{idle: later, absolute: soon, dead: true}
		case 5:
			return life{idle: later, absolute: sweepAt}
		case 7:
			return life{idle: later, absolute: later, revoked: sweepAt}
		}
		return life{idle: later, absolute: later}
	}

	// reads reads each row back after the sweeps: nil if it is there,
	// storage.ErrNotFound if it is gone.
	type read struct {
		what string
		dead bool
		get  func() error
	}
	var reads []read

	for i := range n {
		l := lifeOf(i)
		f := newFamily("acme", "web", "acme-alice", "", fmt.Sprintf("fam-%02d", i))
		f.IdleExpiresAt, f.AbsoluteExpiresAt = l.idle, l.absolute
		first := storage.RefreshToken{Hash: randBytes(t), Scopes: f.Scopes, IssuedAt: t0}
		must(t, s.CreateFamily(c, f, first))
		second := storage.RefreshToken{Hash: randBytes(t), Scopes: f.Scopes, IssuedAt: at(time.Minute)}
		_, err := s.RotateRefreshToken(c, first.Hash, second, []byte("sealed"),
			storage.FamilyUse{At: at(time.Minute), IdleExpiresAt: l.idle})
		must(t, err)
		if !l.revoked.IsZero() {
			must(t, s.RevokeFamily(c, f.ID, l.revoked, "test"))
		}
		reads = append(reads, read{"family " + f.ID, l.dead, func() error { _, err := s.GetFamily(c, f.ID); return err }})
		for j, tok := range []storage.RefreshToken{first, second} {
			reads = append(reads, read{fmt.Sprintf("refresh token %d of family %s", j, f.ID), l.dead,
				func() error { _, err := s.GetRefreshToken(c, tok.Hash); return err }})
		}

		sess := newSession("acme", "acme-alice", fmt.Sprintf("sid-%02d", i))
		sess.IdleExpiresAt, sess.ExpiresAt = l.idle, l.absolute
		must(t, s.CreateSession(c, sess))
		if !l.revoked.IsZero() {
			must(t, s.RevokeSession(c, sess.ID, l.revoked))
		}
		reads = append(reads, read{"session " + sess.ID, l.dead, func() error { _, err := s.GetSession(c, sess.ID); return err }})

		exp, dead := expiry(i)
		code := newCode(t, "acme")
		code.ExpiresAt = exp
		if i%2 == 0 {
			code.ConsumedAt = at(time.Minute) // consumed or not, a code goes when it expires
		}
		must(t, s.CreateAuthCode(c, code, 0))
		reads = append(reads, read{fmt.Sprintf("authorization code %d", i), dead, func() error {
			_, err := redeem(c, s, code.Hash, t0)
			if errors.Is(err, storage.ErrAlreadyUsed) {
				return nil // a consumed code that is still there
			}
			return err
		}})

		jti := fmt.Sprintf("jti-%02d", i)
		must(t, s.DenyJWT(c, storage.DeniedJWT{Realm: "acme", JTI: jti, ExpiresAt: exp, CreatedAt: t0, Reason: "revoked"}))
		reads = append(reads, read{"deny-list entry " + jti, dead, func() error {
			denied, err := s.IsJWTDenied(c, "acme", jti)
			if err == nil && !denied {
				err = storage.ErrNotFound
			}
			return err
		}})

		assertion := fmt.Sprintf("assertion-%02d", i)
		must(t, s.UseClientAssertion(c, "acme", "web", assertion, exp))
		reads = append(reads, read{"client assertion " + assertion, dead, func() error {
			// Using it again fails while it is remembered, and succeeds once it is forgotten.
			switch err := s.UseClientAssertion(c, "acme", "web", assertion, exp); {
			case err == nil:
				return storage.ErrNotFound
			case errors.Is(err, storage.ErrAlreadyUsed):
				return nil
			default:
				return err
			}
		}})

		proof := fmt.Sprintf("proof-%02d", i)
		must(t, s.UseDPoPProof(c, "acme", "jkt", proof, exp))
		reads = append(reads, read{"DPoP proof " + proof, dead, func() error {
			switch err := s.UseDPoPProof(c, "acme", "jkt", proof, exp); {
			case err == nil:
				return storage.ErrNotFound
			case errors.Is(err, storage.ErrAlreadyUsed):
				return nil
			default:
				return err
			}
		}})

		pushed := newPushed(t, "acme")
		pushed.ExpiresAt = exp
		must(t, s.CreatePushedRequest(c, pushed))
		if i%2 == 0 {
			_, err := s.UsePushedRequest(c, pushed.Hash, t0) // used or not, a request goes when it expires
			must(t, err)
		}
		reads = append(reads, read{fmt.Sprintf("pushed request %d", i), dead, func() error {
			_, err := s.UsePushedRequest(c, pushed.Hash, t0)
			if errors.Is(err, storage.ErrAlreadyUsed) {
				return nil
			}
			return err
		}})

		device := newDevice(t, "acme")
		device.ExpiresAt = exp
		must(t, s.CreateDeviceGrant(c, device))
		reads = append(reads, read{fmt.Sprintf("device grant %d", i), dead, func() error {
			_, _, err := s.PollDeviceGrant(c, device.DeviceCodeHash, t0, noStart(t))
			return err
		}})
	}

	counts, err := s.Count(c)
	must(t, err)
	same(t, "Count before the sweep", counts, storage.Counts{Families: n, RefreshTokens: 2 * n, Sessions: n,
		AuthCodes: n, DeniedJWTs: n, ClientAssertions: n, DPoPProofs: n, PushedRequests: n, DeviceGrants: n})

	res, err := s.Sweep(c, sweepAt, 0)
	must(t, err)
	same(t, "Sweep", res, storage.SweepResult{Families: 8, Sessions: 8, AuthCodes: 5,
		DeniedJWTs: 5, ClientAssertions: 5, DPoPProofs: 5, PushedRequests: 5, DeviceGrants: 5})
	live := storage.Counts{Families: 12, RefreshTokens: 24, Sessions: 12, AuthCodes: 15,
		DeniedJWTs: 15, ClientAssertions: 15, DPoPProofs: 15, PushedRequests: 15, DeviceGrants: 15}
	counts, err = s.Count(c)
	must(t, err)
	same(t, "Count after the sweep", counts, live)

	res, err = s.Sweep(c, sweepAt, 0)
	must(t, err)
	same(t, "second Sweep", res, storage.SweepResult{})
	counts, err = s.Count(c)
	must(t, err)
	same(t, "Count after the second sweep", counts, live)

	// Last, as reading codes consumes them and reading a forgotten assertion uses it again.
	for _, r := range reads {
		err := r.get()
		switch {
		case r.dead && !errors.Is(err, storage.ErrNotFound):
			t.Errorf("%s, dead at the sweep: read gives %v, want %v", r.what, err, storage.ErrNotFound)
		case !r.dead && err != nil:
			t.Errorf("%s, live at the sweep: %v", r.what, err)
		}
	}
}
