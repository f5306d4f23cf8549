package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/token"
	"github.com/latchkey/latchkey/internal/web"
	"github.com/latchkey/latchkey/storage"
	"github.com/latchkey/latchkey/storage/sqlite"
)

// fakeTokens takes "rw" and "ro" as admin tokens of master's client "ops".
type fakeTokens struct{ Tokens }

func (fakeTokens) VerifyAccess(_ context.Context, realm, tok string) (*token.AccessClaims, bool, error) {
	scope := map[string]string{"rw": ScopeAdmin, "ro": ScopeAdminRead}[tok]
	if realm != MasterRealm || scope == "" {
		return nil, false, nil
	}
	return &token.AccessClaims{Subject: "ops", ClientID: "ops", Scope: scope}, true, nil
}

func (fakeTokens) Issuer(realm string) string { return "http://x/realms/" + realm }

type unlocks []string

func (u *unlocks) Unlock(_ context.Context, account string) error {
	*u = append(*u, account)
	return nil
}

type usersEnv struct {
	t       *testing.T
	store   *sqlite.Store
	srv     *httptest.Server
	clock   time.Time
	unlocks *unlocks
}

func newUsersEnv(t *testing.T) *usersEnv {
	t.Helper()
	st, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	env := &usersEnv{t: t, store: st, clock: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), unlocks: &unlocks{}}
	for _, name := range []string{"acme", "other"} {
		if err := st.CreateRealm(t.Context(), storage.Realm{Name: name, SigningAlg: "ES256", AccessTokenTTL: time.Minute,
			CreatedAt: env.clock, UpdatedAt: env.clock}); err != nil {
			t.Fatal(err)
		}
	}
	api := New(Config{Store: st, Tokens: fakeTokens{}, Logins: env.unlocks, Now: func() time.Time { return env.clock },
		HashPassword: func(p string) (string, error) { return "hashed:" + p, nil }})
	mux := http.NewServeMux()
	api.Register(mux)
	env.srv = httptest.NewServer(mux)
	t.Cleanup(env.srv.Close)
	return env
}

type reply struct {
	status int
	header http.Header
	raw    string
	body   map[string]any
}

func (e *usersEnv) call(method, path, tok, body string, header ...string) reply {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := reply{status: res.StatusCode, header: res.Header, raw: string(raw)}
	json.Unmarshal(raw, &r.body)
	return r
}

func (e *usersEnv) want(r reply, status int) reply {
	e.t.Helper()
	if r.status != status {
		e.t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
	}
	if status >= 400 && r.header.Get("Content-Type") != "application/problem+json" {
		e.t.Fatalf("error %d not a problem: %q %s", status, r.header.Get("Content-Type"), r.raw)
	}
	return r
}

func (r reply) str(k string) string { s, _ := r.body[k].(string); return s }

func (e *usersEnv) create(username, email string) string {
	e.t.Helper()
	r := e.want(e.call("POST", "/admin/realms/acme/users", "rw",
		`{"username":"`+username+`","email":"`+email+`","password":"a-long-password-1"}`), 201)
	return r.str("id")
}

func (e *usersEnv) events(typ string) []storage.AuditEvent {
	e.t.Helper()
	evs, err := e.store.ListAudit(e.t.Context(), storage.AuditFilter{Realm: "acme", Type: typ})
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}

// holdings gives the user a session and two families (one born in it).
func (e *usersEnv) holdings(userID, sid string) (born, other string) {
	e.t.Helper()
	ctx, now := e.t.Context(), e.clock
	if err := e.store.CreateSession(ctx, storage.Session{ID: sid, Realm: "acme", UserID: userID, SecretHash: []byte(sid),
		AuthTime: now, CreatedAt: now, LastSeenAt: now, IdleExpiresAt: now.Add(time.Hour), ExpiresAt: now.Add(2 * time.Hour),
		IP: "192.0.2.7", UserAgent: "test-agent"}); err != nil {
		e.t.Fatal(err)
	}
	if err := e.store.CreateClient(ctx, storage.Client{Realm: "acme", ID: "web", GrantTypes: []string{"authorization_code"},
		CreatedAt: now, UpdatedAt: now}); err != nil && !strings.Contains(err.Error(), "exists") {
		e.t.Fatal(err)
	}
	for _, f := range []struct{ id, sid string }{{sid + "-f1", sid}, {sid + "-f2", ""}} {
		if err := e.store.CreateFamily(ctx, storage.Family{ID: f.id, Realm: "acme", ClientID: "web", UserID: userID, SessionID: f.sid,
			Scopes: []string{"openid"}, CreatedAt: now, LastUsedAt: now, IdleExpiresAt: now.Add(time.Hour), AbsoluteExpiresAt: now.Add(time.Hour)},
			storage.RefreshToken{Hash: []byte(f.id), IssuedAt: now}); err != nil {
			e.t.Fatal(err)
		}
	}
	return sid + "-f1", sid + "-f2"
}

func (e *usersEnv) live(userID string) (sessions, families []string) {
	e.t.Helper()
	ss, err := e.store.ListUserSessions(e.t.Context(), "acme", userID, e.clock)
	if err != nil {
		e.t.Fatal(err)
	}
	fs, err := e.store.ListUserFamilies(e.t.Context(), "acme", userID, e.clock)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, s := range ss {
		sessions = append(sessions, s.ID)
	}
	for _, f := range fs {
		families = append(families, f.ID)
	}
	return sessions, families
}

func TestUsers_CreateGetAndConflicts(t *testing.T) {
	e := newUsersEnv(t)
	r := e.want(e.call("POST", "/admin/realms/acme/users", "rw",
		`{"username":" Carol ","email":"Carol@Example.com","name":"Carol","password":"carol-password-1"}`), 201)
	id := r.str("id")
	if id == "" || r.header.Get("Location") != "/admin/realms/acme/users/"+id || r.header.Get("ETag") == "" {
		t.Fatalf("create: id %q, Location %q, ETag %q", id, r.header.Get("Location"), r.header.Get("ETag"))
	}
	if r.str("username") != "carol" || r.str("email") != "carol@example.com" || strings.Contains(r.raw, "password") {
		t.Fatalf("create answered %s", r.raw)
	}
	u, err := e.store.GetUser(t.Context(), "acme", id)
	if err != nil || u.PasswordHash != "hashed:carol-password-1" {
		t.Fatalf("stored %+v, %v", u, err)
	}
	g := e.want(e.call("GET", "/admin/realms/acme/users/"+id, "ro", ""), 200)
	if g.header.Get("ETag") != r.header.Get("ETag") || g.str("id") != id {
		t.Fatalf("get: ETag %q (created %q), %s", g.header.Get("ETag"), r.header.Get("ETag"), g.raw)
	}
	if evs := e.events("admin.user.created"); len(evs) != 1 || evs[0].UserID != id || evs[0].Details["admin_client"] != "ops" {
		t.Fatalf("created events: %+v", evs)
	}

	// A given hash is kept as it is.
	const phc = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXphYmNkZWY"
	h := e.want(e.call("POST", "/admin/realms/acme/users", "rw", `{"username":"dan","password_hash":"`+phc+`"}`), 201)
	if u, _ := e.store.GetUser(t.Context(), "acme", h.str("id")); u.PasswordHash != phc {
		t.Fatalf("password_hash stored as %q", u.PasswordHash)
	}

	for _, c := range []struct {
		body   string
		status int
		field  string
	}{
		{`{"username":"carol","password":"another-password-1"}`, 409, ""},
		{`{"username":"carol2","email":"CAROL@example.com","password":"another-password-1"}`, 409, ""},
		{`{"username":"erin"}`, 400, "password"},
		{`{"username":"erin","password":"short"}`, 400, "password"},
		{`{"username":"erin","password":"another-password-1","password_hash":"` + phc + `"}`, 400, "password_hash"},
		{`{"username":"no spaces allowed","password":"another-password-1"}`, 400, "username"},
		{`{"username":"erin","password":"another-password-1","role":"root"}`, 400, "role"},
	} {
		r := e.want(e.call("POST", "/admin/realms/acme/users", "rw", c.body), c.status)
		if c.field != "" {
			errs, _ := r.body["errors"].([]any)
			if len(errs) == 0 || errs[0].(map[string]any)["field"] != c.field {
				t.Errorf("%s: errors %v, want field %s", c.body, r.body["errors"], c.field)
			}
		}
		if strings.Contains(r.raw, "another-password-1") {
			t.Errorf("%s: the answer repeats the password: %s", c.body, r.raw)
		}
	}
	e.want(e.call("POST", "/admin/realms/nope/users", "rw", `{"username":"x","password":"another-password-1"}`), 404)
	e.want(e.call("GET", "/admin/realms/acme/users/nobody", "ro", ""), 404)
	e.want(e.call("GET", "/admin/realms/other/users/"+id, "ro", ""), 404)
	e.want(e.call("POST", "/admin/realms/acme/users", "ro", `{"username":"x","password":"another-password-1"}`), 403)
}

func TestUsers_ReplaceWithIfMatch(t *testing.T) {
	e := newUsersEnv(t)
	id := e.create("carol", "carol@example.com")
	e.create("dan", "dan@example.com")
	path := "/admin/realms/acme/users/" + id
	tag := e.want(e.call("GET", path, "ro", ""), 200).header.Get("ETag")

	e.clock = e.clock.Add(time.Second)
	r := e.want(e.call("PUT", path, "rw", `{"username":"carol","email":"c@example.com","name":"Carol C"}`, "If-Match", tag), 200)
	if r.str("email") != "c@example.com" || r.str("name") != "Carol C" || r.header.Get("ETag") == tag {
		t.Fatalf("replace answered %s (ETag %q, was %q)", r.raw, r.header.Get("ETag"), tag)
	}
	// The old tag is stale now.
	e.want(e.call("PUT", path, "rw", `{"username":"carol","name":"Lost update"}`, "If-Match", tag), 412)
	if u, _ := e.store.GetUser(t.Context(), "acme", id); u.Name != "Carol C" {
		t.Fatalf("a 412 changed the user: %+v", u)
	}
	e.want(e.call("PUT", path, "rw", `{"username":"dan"}`), 409)
	e.want(e.call("PUT", path, "rw", `{"username":"carol","password":"sneaky-password-1"}`), 400)
	e.want(e.call("PUT", "/admin/realms/acme/users/nobody", "rw", `{"username":"zed"}`), 404)
	// The password survives a profile replace.
	if u, _ := e.store.GetUser(t.Context(), "acme", id); u.PasswordHash != "hashed:a-long-password-1" {
		t.Fatalf("replace lost the password hash: %q", u.PasswordHash)
	}
}

func TestUsers_DisableEndsEverythingAndEnableBringsNothingBack(t *testing.T) {
	e := newUsersEnv(t)
	id := e.create("carol", "carol@example.com")
	e.holdings(id, "s1")
	path := "/admin/realms/acme/users/" + id

	e.clock = e.clock.Add(time.Minute)
	disabledAt := e.clock
	if r := e.want(e.call("POST", path+"/disable", "rw", ""), 200); r.body["disabled"] != true {
		t.Fatalf("disable answered %s", r.raw)
	}
	if s, f := e.live(id); len(s)+len(f) != 0 {
		t.Fatalf("after disable, live sessions %v families %v", s, f)
	}
	evs := e.events("user.disabled")
	if len(evs) != 1 || evs[0].UserID != id || evs[0].Details["admin_client"] != "ops" || evs[0].Details["by"] != "admin" {
		t.Fatalf("user.disabled events: %+v", evs)
	}

	e.clock = e.clock.Add(time.Minute)
	if r := e.want(e.call("POST", path+"/enable", "rw", ""), 200); r.body["disabled"] != false {
		t.Fatalf("enable answered %s", r.raw)
	}
	u, _ := e.store.GetUser(t.Context(), "acme", id)
	if !u.TokensValidAfter.Equal(disabledAt) {
		t.Fatalf("stamp after enable %v, want the disable's %v", u.TokensValidAfter, disabledAt)
	}
	if s, f := e.live(id); len(s)+len(f) != 0 {
		t.Fatalf("after enable, live sessions %v families %v", s, f)
	}
	if evs := e.events("user.enabled"); len(evs) != 1 || evs[0].UserID != id {
		t.Fatalf("user.enabled events: %+v", evs)
	}
	// A PUT that disables does the same.
	e.holdings(id, "s2")
	e.clock = e.clock.Add(time.Minute)
	e.want(e.call("PUT", path, "rw", `{"username":"carol","disabled":true}`), 200)
	if s, f := e.live(id); len(s)+len(f) != 0 {
		t.Fatalf("after PUT disabled, live sessions %v families %v", s, f)
	}
	e.want(e.call("POST", "/admin/realms/acme/users/nobody/disable", "rw", ""), 404)
}

func TestUsers_PasswordEndsSessionsUnlessKept(t *testing.T) {
	e := newUsersEnv(t)
	id := e.create("carol", "carol@example.com")
	path := "/admin/realms/acme/users/" + id + "/password"
	e.holdings(id, "s1")

	e.clock = e.clock.Add(time.Minute)
	e.want(e.call("PUT", path, "rw", `{"password":"kept-password-1","keep_sessions":true}`), 204)
	if s, f := e.live(id); len(s) != 1 || len(f) != 2 {
		t.Fatalf("keep_sessions: live sessions %v families %v", s, f)
	}
	e.clock = e.clock.Add(time.Minute)
	e.want(e.call("PUT", path, "rw", `{"password":"fresh-password-1"}`), 204)
	if s, f := e.live(id); len(s)+len(f) != 0 {
		t.Fatalf("reset: live sessions %v families %v", s, f)
	}
	u, _ := e.store.GetUser(t.Context(), "acme", id)
	if u.PasswordHash != "hashed:fresh-password-1" || !u.TokensValidAfter.Equal(e.clock) {
		t.Fatalf("after reset: hash %q stamp %v", u.PasswordHash, u.TokensValidAfter)
	}
	evs := e.events("user.password_changed")
	if len(evs) != 2 || evs[0].Details["keep_sessions"] != "false" || evs[1].Details["keep_sessions"] != "true" {
		t.Fatalf("password events: %+v", evs)
	}
	for _, ev := range evs {
		if b, _ := json.Marshal(ev); strings.Contains(string(b), "password-1") {
			t.Fatalf("an event holds the password: %s", b)
		}
	}
	r := e.want(e.call("PUT", path, "rw", `{"password":"short"}`), 400)
	if !strings.Contains(r.raw, `"field":"password"`) {
		t.Fatalf("short password: %s", r.raw)
	}
	e.want(e.call("PUT", "/admin/realms/acme/users/nobody/password", "rw", `{"password":"fresh-password-1"}`), 404)
}

func TestUsers_SessionsFamiliesAndLogout(t *testing.T) {
	e := newUsersEnv(t)
	id := e.create("carol", "carol@example.com")
	other := e.create("dan", "dan@example.com")
	born, apart := e.holdings(id, "s1")
	e.holdings(id, "s2")
	otherBorn, _ := e.holdings(other, "s3")
	base := "/admin/realms/acme/users/" + id

	r := e.want(e.call("GET", base+"/sessions", "ro", ""), 200)
	var list struct {
		Sessions []map[string]any `json:"sessions"`
		Families []map[string]any `json:"families"`
	}
	json.Unmarshal([]byte(r.raw), &list)
	if len(list.Sessions) != 2 || len(list.Families) != 4 || list.Sessions[0]["ip"] != "192.0.2.7" ||
		list.Families[0]["client_id"] != "web" || strings.Contains(r.raw, "secret") {
		t.Fatalf("sessions: %s", r.raw)
	}

	// Not this user's: 404, and nothing ends.
	e.want(e.call("DELETE", base+"/sessions/s3", "rw", ""), 404)
	e.want(e.call("DELETE", base+"/families/"+otherBorn, "rw", ""), 404)
	e.want(e.call("DELETE", base+"/sessions/nope", "rw", ""), 404)
	if s, f := e.live(other); len(s) != 1 || len(f) != 2 {
		t.Fatalf("dan's holdings after 404s: %v %v", s, f)
	}

	e.want(e.call("DELETE", base+"/sessions/s1", "rw", ""), 204)
	s, f := e.live(id)
	if !slices.Equal(s, []string{"s2"}) || slices.Contains(f, born) || !slices.Contains(f, apart) || len(f) != 3 {
		t.Fatalf("after ending s1: sessions %v families %v", s, f)
	}
	e.want(e.call("DELETE", base+"/families/"+apart, "rw", ""), 204)
	if _, f := e.live(id); slices.Contains(f, apart) || len(f) != 2 {
		t.Fatalf("after ending %s: families %v", apart, f)
	}
	if evs := e.events("session.ended"); len(evs) != 1 || evs[0].SessionID != "s1" || evs[0].Details["admin_client"] != "ops" {
		t.Fatalf("session.ended: %+v", evs)
	}
	if evs := e.events("refresh_family.revoked"); len(evs) != 1 || evs[0].FamilyID != apart {
		t.Fatalf("refresh_family.revoked: %+v", evs)
	}

	e.clock = e.clock.Add(time.Minute)
	e.want(e.call("POST", base+"/logout", "rw", ""), 204)
	if s, f := e.live(id); len(s)+len(f) != 0 {
		t.Fatalf("after logout: %v %v", s, f)
	}
	if s, f := e.live(other); len(s) != 1 || len(f) != 2 {
		t.Fatalf("dan's holdings after carol's logout: %v %v", s, f)
	}
	if u, _ := e.store.GetUser(t.Context(), "acme", id); !u.TokensValidAfter.Equal(e.clock) {
		t.Fatalf("logout stamp %v, want %v", u.TokensValidAfter, e.clock)
	}
	if evs := e.events("user.logout_everywhere"); len(evs) != 1 || evs[0].UserID != id {
		t.Fatalf("logout events: %+v", evs)
	}
	e.want(e.call("POST", "/admin/realms/acme/users/nobody/logout", "rw", ""), 404)
	e.want(e.call("GET", "/admin/realms/acme/users/nobody/sessions", "ro", ""), 404)
}

func TestUsers_DeleteAndUnlock(t *testing.T) {
	e := newUsersEnv(t)
	id := e.create("carol", "carol@example.com")
	e.holdings(id, "s1")
	base := "/admin/realms/acme/users/" + id

	e.want(e.call("POST", base+"/unlock", "rw", ""), 204)
	if !slices.Equal(*e.unlocks, []string{web.UserAccount("acme", id)}) {
		t.Fatalf("unlocked %v", *e.unlocks)
	}
	e.want(e.call("POST", "/admin/realms/acme/users/nobody/unlock", "rw", ""), 404)

	e.want(e.call("DELETE", base, "rw", ""), 204)
	e.want(e.call("GET", base, "ro", ""), 404)
	e.want(e.call("DELETE", base, "rw", ""), 404)
	if s, f := e.live(id); len(s)+len(f) != 0 {
		t.Fatalf("after delete: %v %v", s, f)
	}
	if evs := e.events("user.deleted"); len(evs) != 1 || evs[0].UserID != id {
		t.Fatalf("user.deleted: %+v", evs)
	}
	again := e.create("carol", "carol@example.com")
	if again == id {
		t.Fatal("the username came back with the deleted user's ID")
	}
}

func TestUsers_SearchAndPages(t *testing.T) {
	e := newUsersEnv(t)
	for _, n := range []string{"erin", "carol", "alice", "bob", "dan"} {
		e.create(n, n+"@example.com")
	}
	e.want(e.call("PUT", "/admin/realms/acme/users/"+e.userID("bob"), "rw", `{"username":"bob","name":"Bobby Carolson"}`), 200)

	var got []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("pages never end")
		}
		r := e.want(e.call("GET", "/admin/realms/acme/users?limit=2&after="+after, "ro", ""), 200)
		for _, it := range r.body["items"].([]any) {
			got = append(got, it.(map[string]any)["username"].(string))
		}
		if after = r.str("next"); after == "" {
			break
		}
	}
	if !slices.Equal(got, []string{"alice", "bob", "carol", "dan", "erin"}) {
		t.Fatalf("pages gave %v", got)
	}
	r := e.want(e.call("GET", "/admin/realms/acme/users?q=CAROL", "ro", ""), 200)
	if items := r.body["items"].([]any); len(items) != 2 || r.str("next") != "" {
		t.Fatalf("q=CAROL: %s", r.raw)
	}
	// A search pages too: q and after together (bob lost his email to the PUT).
	p1 := e.want(e.call("GET", "/admin/realms/acme/users?q=example&limit=1", "ro", ""), 200)
	p2 := e.want(e.call("GET", "/admin/realms/acme/users?q=example&limit=5&after="+p1.str("next"), "ro", ""), 200)
	if p1.str("next") != "alice" || len(p2.body["items"].([]any)) != 3 || p2.str("next") != "" {
		t.Fatalf("search pages: %s then %s", p1.raw, p2.raw)
	}
	e.want(e.call("GET", "/admin/realms/acme/users?limit=0", "ro", ""), 400)
	e.want(e.call("GET", "/admin/realms/acme/users?q="+strings.Repeat("x", 300), "ro", ""), 400)
	e.want(e.call("GET", "/admin/realms/nope/users", "ro", ""), 404)
}

func (e *usersEnv) userID(username string) string {
	e.t.Helper()
	u, err := e.store.GetUserByUsername(e.t.Context(), "acme", username)
	if err != nil {
		e.t.Fatal(err)
	}
	return u.ID
}

// Of concurrent replaces holding the same ETag, exactly one wins: If-Match is
// checked inside the store's transaction, so no update is lost.
func TestUsers_ConcurrentReplacesWithOneETag(t *testing.T) {
	e := newUsersEnv(t)
	id := e.create("carol", "carol@example.com")
	path := "/admin/realms/acme/users/" + id
	tag := e.want(e.call("GET", path, "ro", ""), 200).header.Get("ETag")
	const n = 10
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			req, _ := http.NewRequest("PUT", e.srv.URL+path, strings.NewReader(fmt.Sprintf(`{"username":"carol","name":"writer %d"}`, i)))
			req.Header.Set("Authorization", "Bearer rw")
			req.Header.Set("If-Match", tag)
			if res, err := http.DefaultClient.Do(req); err == nil {
				statuses[i] = res.StatusCode
				res.Body.Close()
			}
		})
	}
	wg.Wait()
	won := slices.Index(statuses, 200)
	if won < 0 || slices.Index(statuses[won+1:], 200) >= 0 {
		t.Fatalf("statuses %v: want exactly one 200", statuses)
	}
	for _, s := range statuses {
		if s != 200 && s != 412 {
			t.Fatalf("statuses %v: want one 200 and the rest 412", statuses)
		}
	}
	if u, _ := e.store.GetUser(t.Context(), "acme", id); u.Name != fmt.Sprintf("writer %d", won) {
		t.Fatalf("stored name %q, but writer %d won", u.Name, won)
	}
}
