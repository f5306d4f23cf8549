package e2e

import (
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// The users routes of the admin API (issue 11), over HTTP against the binary, on
// both stores. The headline: disabling, a password reset, a logout everywhere and
// a delete end everything the user holds at once, and enabling them later brings
// none of it back.

// usersSeed is adminSeed with opqweb, a sign-in client with opaque access
// tokens (see opaqueSeed).
func usersSeed(t testing.TB) string {
	return strings.Replace(adminSeed(t), "    users:\n", `      - id: opqweb
        secret: `+opqWebSecret+`
        redirect_uris: [`+callback+`]
        grant_types: [authorization_code, refresh_token]
        scopes: [openid, profile, offline_access]
        access_token_format: opaque
    users:
`, 1)
}

const usersPath = "/admin/realms/acme/users"

// userID finds a user's ID by searching for their username.
func userID(t *testing.T, api *adminAs, username string) string {
	t.Helper()
	r := want(t, "search "+username, api.do("GET", usersPath+"?q="+url.QueryEscape(username), nil), 200)
	for _, u := range items(r) {
		if u["username"] == username {
			return u["id"].(string)
		}
	}
	t.Fatalf("no user %s in %s", username, r.raw)
	return ""
}

// holdings is what a signed-in user holds: a browser session, and from it a
// refresh token and JWT access token (client web) and an opaque access token
// and its refresh token (client opqweb).
type holdings struct {
	b                *browser
	jwt, rt          string
	opaque, opaqueRT string
	subject          string // the user's ID, from introspection
}

// signInAs signs in to client in b as username (once per browser; later calls
// ride the session) and returns a fresh authorization code.
func (s *server) signInAs(t *testing.T, b *browser, client, username, pass string) string {
	t.Helper()
	u := s.authURL(client)
	p := b.get(u)
	if p.location == nil {
		p = b.do(b.loginRequest(p, u, "username", username, "password", pass))
	}
	if p.location == nil || p.location.Query().Get("code") == "" {
		t.Fatalf("sign-in of %s at %s: %d %s", username, client, p.status, p.body)
	}
	return p.location.Query().Get("code")
}

func hold(t *testing.T, s *server, username, pass string) holdings {
	t.Helper()
	h := holdings{b: newBrowser(t)}
	r := s.redeem(t, webBasic, s.signInAs(t, h.b, "web", username, pass))
	h.jwt, h.rt = r.str("access_token"), r.str("refresh_token")
	o := s.redeem(t, "opqweb:"+opqWebSecret, s.signInAs(t, h.b, "opqweb", username, pass))
	h.opaque, h.opaqueRT = o.str("access_token"), o.str("refresh_token")
	if h.jwt == "" || h.rt == "" || !strings.HasPrefix(h.opaque, "lk_at_") || h.opaqueRT == "" {
		t.Fatalf("sign-in of %s: %s / %s", username, r.raw, o.raw)
	}
	in := s.introspect(t, webBasic, h.jwt)
	h.subject = in.str("sub")
	if in.body["active"] != true || h.subject == "" {
		t.Fatalf("a fresh access token of %s: %s", username, in.raw)
	}
	return h
}

// wantDead checks that nothing h held works: refresh tokens refused, access tokens
// inactive, the browser asked to sign in again.
func (h holdings) wantDead(t *testing.T, s *server, when string) {
	t.Helper()
	if r := s.refresh(t, webBasic, h.rt); !r.invalidGrant() {
		t.Errorf("%s: refresh: %d %s; want 400 invalid_grant", when, r.status, r.raw)
	}
	if r := s.refresh(t, "opqweb:"+opqWebSecret, h.opaqueRT); !r.invalidGrant() {
		t.Errorf("%s: refresh (opqweb): %d %s; want 400 invalid_grant", when, r.status, r.raw)
	}
	wantInactive(t, when+": JWT access token", s.introspect(t, webBasic, h.jwt))
	wantInactive(t, when+": opaque access token", s.introspect(t, webBasic, h.opaque))
	if p := h.b.get(s.authURL("web")); p.location != nil || !strings.Contains(p.body, `name="password"`) {
		t.Errorf("%s: the browser session still signs in (%d %v); want the login page", when, p.status, p.location)
	}
}

// wantAlive checks that what h holds works; the refresh tokens are rotated.
func (h *holdings) wantAlive(t *testing.T, s *server, when string) {
	t.Helper()
	for _, tok := range []string{h.jwt, h.opaque} {
		if r := s.introspect(t, webBasic, tok); r.body["active"] != true {
			t.Errorf("%s: access token inactive: %s", when, r.raw)
		}
	}
	r := s.refresh(t, webBasic, h.rt)
	if r.status != 200 {
		t.Fatalf("%s: refresh: %d %s", when, r.status, r.raw)
	}
	h.rt = r.str("refresh_token")
	if p := h.b.get(s.authURL("web")); p.location == nil || p.location.Query().Get("code") == "" {
		t.Errorf("%s: the browser session no longer signs in: %d", when, p.status)
	}
}

// afterStamp waits for the second after the user's security stamp: a JWT's iat has
// whole seconds (RFC 7519 §2 NumericDate), so a token issued in the stamp's own
// second counts as issued before it. The binary reads the real clock.
func afterStamp(t *testing.T, stamp string) {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, stamp)
	if err != nil {
		t.Fatalf("stamp %q: %v", stamp, err)
	}
	time.Sleep(time.Until(at.Truncate(time.Second).Add(time.Second)))
}

func TestAdminUsers_DisableEndsEverythingAndEnableBringsNothingBack(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s := start(t, options{db: db, seed: usersSeed(t)})
		api := root(t, s)
		alice := hold(t, s, "alice", alicePass)
		id := userID(t, api, "alice")
		if id != alice.subject {
			t.Fatalf("alice's ID %s, her tokens' sub %s", id, alice.subject)
		}
		path := usersPath + "/" + id

		d := want(t, "disable", api.do("POST", path+"/disable", nil), 200)
		if d.body["disabled"] != true {
			t.Fatalf("disable answered %s", d.raw)
		}
		alice.wantDead(t, s, "disabled")
		want(t, "enable", api.do("POST", path+"/enable", nil), 200)
		alice.wantDead(t, s, "disabled, then enabled")

		// She signs in again, and what she gets now works.
		afterStamp(t, d.str("updated_at"))
		again := hold(t, s, "alice", alicePass)
		again.wantAlive(t, s, "signed in after enabling")

		ev := want(t, "events", api.do("GET", "/admin/realms/acme/events?type=user.disabled", nil), 200)
		items, _ := ev.body["items"].([]any)
		if len(items) != 1 || !strings.Contains(ev.raw, id) || !strings.Contains(ev.raw, `"admin_client":"root"`) {
			t.Errorf("user.disabled events: %s; want one naming alice and the admin client root", ev.raw)
		}
		// And the log pipeline sees them (issue 11 item 7).
		for _, typ := range []string{"user.disabled", "user.enabled"} {
			if !strings.Contains(s.logs.String(), "msg=audit") || !strings.Contains(s.logs.String(), "type="+typ+" realm=acme user_id="+id) {
				t.Errorf("no audit line of %s in the log", typ)
			}
		}
	})
}

func TestAdminUsers_PasswordResetEndsSessionsUnlessKept(t *testing.T) {
	const kept, fresh = "alice-password-kept", "alice-password-fresh"
	stores(t, func(t *testing.T, db string) {
		s := start(t, options{db: db, seed: usersSeed(t)})
		api := root(t, s)
		alice := hold(t, s, "alice", alicePass)
		path := usersPath + "/" + alice.subject

		want(t, "password, keep_sessions", api.do("PUT", path+"/password", `{"password":"`+kept+`","keep_sessions":true}`), 204)
		alice.wantAlive(t, s, "new password with keep_sessions")

		want(t, "password", api.do("PUT", path+"/password", `{"password":"`+fresh+`"}`), 204)
		alice.wantDead(t, s, "new password")
		u := want(t, "get", api.do("GET", path, nil), 200)

		// The old passwords no longer sign in; the new one does.
		for _, old := range []string{alicePass, kept} {
			b := newBrowser(t)
			login := s.authURL("web")
			if p := b.do(b.loginRequest(b.get(login), login, "username", "alice", "password", old)); p.location != nil || p.status != 401 {
				t.Errorf("sign-in with an old password: %d %v; want 401", p.status, p.location)
			}
		}
		afterStamp(t, u.str("updated_at"))
		withNew := hold(t, s, "alice", fresh)
		withNew.wantAlive(t, s, "signed in with the new password")

		ev := want(t, "events", api.do("GET", "/admin/realms/acme/events?type=user.password_changed", nil), 200)
		if items, _ := ev.body["items"].([]any); len(items) != 2 {
			t.Errorf("user.password_changed events: %s; want two", ev.raw)
		}
		for _, secret := range []string{kept, fresh, "argon2"} {
			if strings.Contains(ev.raw, secret) || strings.Contains(s.logs.String(), secret) {
				t.Errorf("%q is in the events or the log", secret)
			}
		}
	})
}

func TestAdminUsers_DeleteEndsEverythingAndTheNameCanBeUsedAgain(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s := start(t, options{db: db, seed: usersSeed(t)})
		api := root(t, s)
		alice := hold(t, s, "alice", alicePass)
		path := usersPath + "/" + alice.subject

		want(t, "delete", api.do("DELETE", path, nil), 204)
		alice.wantDead(t, s, "deleted")
		wantProblem(t, "get deleted", api.do("GET", path, nil), 404)
		wantProblem(t, "delete again", api.do("DELETE", path, nil), 404)

		c := want(t, "create again", api.do("POST", usersPath,
			`{"username":"alice","email":"alice@example.com","password":"alice-password-new"}`), 201)
		if c.str("id") == alice.subject || c.header.Get("Location") != usersPath+"/"+c.str("id") {
			t.Fatalf("the new alice: %s (Location %q); the old one was %s", c.raw, c.header.Get("Location"), alice.subject)
		}
		again := hold(t, s, "alice", "alice-password-new")
		if again.subject != c.str("id") {
			t.Errorf("the new alice's tokens have sub %s, want %s", again.subject, c.str("id"))
		}
		again.wantAlive(t, s, "the new alice")
		// The old alice's tokens do not come back with her name.
		wantInactive(t, "the deleted alice's JWT", s.introspect(t, webBasic, alice.jwt))
		wantInactive(t, "the deleted alice's opaque token", s.introspect(t, webBasic, alice.opaque))
		if r := s.refresh(t, webBasic, alice.rt); !r.invalidGrant() {
			t.Errorf("the deleted alice's refresh token: %d %s", r.status, r.raw)
		}
	})
}

func TestAdminUsers_SessionsFamiliesAndLogoutEverywhere(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s := start(t, options{db: db, seed: usersSeed(t)})
		api := root(t, s)
		want(t, "create bob", api.do("POST", usersPath, `{"username":"bob","password":"bob-password-1"}`), 201)
		alice := hold(t, s, "alice", alicePass)
		bob := hold(t, s, "bob", "bob-password-1")
		base := usersPath + "/" + alice.subject

		var list struct {
			Sessions []struct {
				ID        string `json:"id"`
				IP        string `json:"ip"`
				UserAgent string `json:"user_agent"`
			} `json:"sessions"`
			Families []struct {
				ID        string `json:"id"`
				ClientID  string `json:"client_id"`
				SessionID string `json:"session_id"`
			} `json:"families"`
		}
		r := want(t, "sessions", api.do("GET", base+"/sessions", nil), 200)
		json.Unmarshal([]byte(r.raw), &list)
		if len(list.Sessions) != 1 || list.Sessions[0].IP != "127.0.0.1" || len(list.Families) != 2 {
			t.Fatalf("alice's sessions: %s; want one session from 127.0.0.1 and two families", r.raw)
		}
		sid := list.Sessions[0].ID
		var webFamily string
		for _, f := range list.Families {
			if f.SessionID != sid {
				t.Errorf("family %s born in %q, want %s", f.ID, f.SessionID, sid)
			}
			if f.ClientID == "web" {
				webFamily = f.ID
			}
		}
		bobList := want(t, "bob's sessions", api.do("GET", usersPath+"/"+bob.subject+"/sessions", nil), 200)
		var bobs struct {
			Sessions []struct{ ID string } `json:"sessions"`
			Families []struct{ ID string } `json:"families"`
		}
		json.Unmarshal([]byte(bobList.raw), &bobs)
		if len(bobs.Sessions) != 1 || len(bobs.Families) != 2 {
			t.Fatalf("bob's sessions: %s", bobList.raw)
		}

		// Bob's session and family are not alice's to end.
		wantProblem(t, "bob's session under alice", api.do("DELETE", base+"/sessions/"+bobs.Sessions[0].ID, nil), 404)
		wantProblem(t, "bob's family under alice", api.do("DELETE", base+"/families/"+bobs.Families[0].ID, nil), 404)
		wantProblem(t, "no such session", api.do("DELETE", base+"/sessions/nope", nil), 404)
		bob.wantAlive(t, s, "bob, after the 404s")

		// One family: its refresh and access tokens end; the other lives.
		want(t, "end web family", api.do("DELETE", base+"/families/"+webFamily, nil), 204)
		if r := s.refresh(t, webBasic, alice.rt); !r.invalidGrant() {
			t.Errorf("refresh of an ended family: %d %s", r.status, r.raw)
		}
		wantInactive(t, "JWT of an ended family", s.introspect(t, webBasic, alice.jwt))
		if r := s.refresh(t, "opqweb:"+opqWebSecret, alice.opaqueRT); r.status != 200 {
			t.Fatalf("refresh of the other family: %d %s", r.status, r.raw)
		} else {
			alice.opaqueRT, alice.opaque = r.str("refresh_token"), r.str("access_token")
		}

		// The session: the browser signs in again, and the families born in it end.
		want(t, "end session", api.do("DELETE", base+"/sessions/"+sid, nil), 204)
		alice.wantDead(t, s, "session ended")
		r = want(t, "sessions after", api.do("GET", base+"/sessions", nil), 200)
		if !strings.Contains(r.raw, `"sessions":[]`) || !strings.Contains(r.raw, `"families":[]`) {
			t.Errorf("alice's sessions after ending them: %s", r.raw)
		}

		// Logout everywhere: bob loses everything; one call.
		want(t, "logout bob", api.do("POST", usersPath+"/"+bob.subject+"/logout", nil), 204)
		bob.wantDead(t, s, "logged out everywhere")
		wantProblem(t, "logout nobody", api.do("POST", usersPath+"/nobody/logout", nil), 404)

		for _, typ := range []string{"session.ended", "refresh_family.revoked", "user.logout_everywhere"} {
			ev := want(t, typ, api.do("GET", "/admin/realms/acme/events?type="+typ, nil), 200)
			if items, _ := ev.body["items"].([]any); len(items) == 0 || !strings.Contains(ev.raw, `"admin_client":"root"`) {
				t.Errorf("%s events: %s; want one naming the admin client", typ, ev.raw)
			}
		}
	})
}

func TestAdminUsers_UnlockClearsALoginLock(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s := start(t, options{db: db, seed: usersSeed(t)})
		api := root(t, s)
		id := userID(t, api, "alice")
		b := newBrowser(t)
		u := s.authURL("web")
		login := b.get(u)
		var last page
		for range 5 {
			last = b.do(b.loginRequest(login, u, "username", "alice", "password", "wrong-password"))
		}
		if last.status != 429 {
			t.Fatalf("fifth wrong password: %d; want 429 (locked)", last.status)
		}
		if p := b.do(b.loginRequest(login, u, "username", "alice", "password", alicePass)); p.location != nil {
			t.Fatal("alice signed in while locked")
		}
		want(t, "unlock", api.do("POST", usersPath+"/"+id+"/unlock", nil), 204)
		if p := b.do(b.loginRequest(login, u, "username", "alice", "password", alicePass)); p.location == nil || p.location.Query().Get("code") == "" {
			t.Fatalf("sign-in after unlock: %d", p.status)
		}
		wantProblem(t, "unlock nobody", api.do("POST", usersPath+"/nobody/unlock", nil), 404)
	})
}

func TestAdminUsers_CreateSearchPagesAndProblems(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s := start(t, options{db: db, seed: usersSeed(t)})
		api := root(t, s)
		for _, n := range []string{"erin", "carol", "bob", "dan"} {
			r := want(t, "create "+n, api.do("POST", usersPath,
				`{"username":"`+n+`","email":"`+n+`@example.com","name":"`+strings.ToUpper(n)+` Example","password":"`+n+`-password-1"}`), 201)
			if strings.Contains(r.raw, "password") || r.header.Get("ETag") == "" {
				t.Fatalf("create %s answered %s (ETag %q)", n, r.raw, r.header.Get("ETag"))
			}
		}
		// Pages of two, by username.
		var got []string
		after := ""
		for range 5 {
			r := want(t, "page", api.do("GET", usersPath+"?limit=2&after="+url.QueryEscape(after), nil), 200)
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
		// Search: username, email or name, any case.
		for q, wantNames := range map[string][]string{"AR": {"carol"}, "example.com": {"alice", "bob", "carol", "dan", "erin"}, "liddell": {"alice"}, "zzz": nil} {
			r := want(t, "search "+q, api.do("GET", usersPath+"?q="+url.QueryEscape(q), nil), 200)
			var names []string
			for _, it := range r.body["items"].([]any) {
				names = append(names, it.(map[string]any)["username"].(string))
			}
			if !slices.Equal(names, wantNames) {
				t.Errorf("q=%s gave %v, want %v", q, names, wantNames)
			}
		}

		// Replace with If-Match; a stale tag is 412 and changes nothing.
		id := userID(t, api, "carol")
		path := usersPath + "/" + id
		g := want(t, "get carol", api.do("GET", path, nil), 200)
		tag := g.header.Get("ETag")
		p := want(t, "replace carol", api.do("PUT", path, `{"username":"carol","email":"carol@example.org","name":"Carol C","email_verified":true}`, "If-Match", tag), 200)
		if p.str("email") != "carol@example.org" || p.body["email_verified"] != true || p.header.Get("ETag") == tag {
			t.Fatalf("replace answered %s (ETag %q)", p.raw, p.header.Get("ETag"))
		}
		wantProblem(t, "stale If-Match", api.do("PUT", path, `{"username":"carol","name":"Lost"}`, "If-Match", tag), 412)
		if g := want(t, "get carol", api.do("GET", path, nil), 200); g.str("name") != "Carol C" {
			t.Fatalf("a 412 changed carol: %s", g.raw)
		}
		// The password did not change with the profile.
		hold(t, s, "carol", "carol-password-1")

		// Problems.
		wantProblem(t, "taken username", api.do("POST", usersPath, `{"username":"carol","password":"another-password-1"}`), 409)
		wantProblem(t, "taken email", api.do("POST", usersPath, `{"username":"carol2","email":"Alice@Example.com","password":"another-password-1"}`), 409)
		wantProblem(t, "rename onto bob", api.do("PUT", path, `{"username":"bob"}`), 409)
		bad := wantProblem(t, "no password", api.do("POST", usersPath, `{"username":"frank"}`), 400)
		if !slices.Contains(fieldErrors(bad), "password") {
			t.Errorf("no password: %s; want errors naming password", bad.raw)
		}
		bad = wantProblem(t, "bad email", api.do("POST", usersPath, `{"username":"frank","email":"not an email","password":"another-password-1"}`), 400)
		if !slices.Contains(fieldErrors(bad), "email") {
			t.Errorf("bad email: %s; want errors naming email", bad.raw)
		}
		bad = wantProblem(t, "short password", api.do("PUT", path+"/password", `{"password":"short"}`), 400)
		if strings.Contains(bad.raw, "short\"") {
			t.Errorf("the problem repeats the password: %s", bad.raw)
		}
		wantProblem(t, "password in a profile replace", api.bad("PUT", path, `{"username":"carol","password":"another-password-1"}`), 400)
		wantProblem(t, "no such user", api.do("GET", usersPath+"/nobody", nil), 404)
		wantProblem(t, "no such realm", api.do("GET", "/admin/realms/nope/users", nil), 404)
		wantProblem(t, "bad limit", api.bad("GET", usersPath+"?limit=0", nil), 400)

		// A read-only admin reads users and sessions, and changes nothing.
		reader := asAdmin(t, s, clientToken(t, s, "master", "reader", readerSecret, "latchkey:admin:read"))
		want(t, "reader lists", reader.do("GET", usersPath, nil), 200)
		want(t, "reader reads sessions", reader.do("GET", path+"/sessions", nil), 200)
		wantProblem(t, "reader disables", reader.do("POST", path+"/disable", nil), 403)
		wantProblem(t, "reader creates", reader.do("POST", usersPath, `{"username":"frank","password":"another-password-1"}`), 403)
		if g := want(t, "get carol", api.do("GET", path, nil), 200); g.body["disabled"] != false {
			t.Fatalf("a reader disabled carol: %s", g.raw)
		}
	})
}
