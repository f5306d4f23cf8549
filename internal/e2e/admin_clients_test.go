package e2e

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// active asks the admin API whether tok is active in realm acme.
func (a *adminAs) active(tok string) bool {
	a.t.Helper()
	r := want(a.t, "admin introspection", a.do("POST", "/admin/realms/acme/tokens/introspect", map[string]string{"token": tok}), 200)
	return r.body["active"] == true
}

// ccToken tries the client-credentials grant of acme and says how it answered.
func ccToken(t *testing.T, s *server, id, secret string) response {
	return post(t, s.tokenURL(), id+":"+secret, form("grant_type", "client_credentials"))
}

// Clients: list and page, get without the secret, create-or-replace (generated
// secret shown once, kept on replace), If-Match, validation by field path.
func TestAdmin_Clients(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s := startAdmin(t, db)
		a := root(t, s)

		var ids []string
		after := ""
		for range 10 {
			r := want(t, "list clients", a.do("GET", "/admin/realms/acme/clients?limit=2&after="+after, nil), 200)
			for _, it := range items(r) {
				ids = append(ids, it["id"].(string))
				if _, ok := it["secret"]; ok {
					t.Fatalf("a listed client shows its secret: %v", it)
				}
			}
			if after = r.str("next"); after == "" {
				break
			}
		}
		if !slices.Equal(ids, []string{"acme-admin", "opq", "spa", "svc", "web"}) {
			t.Fatalf("clients paged = %v", ids)
		}

		r := want(t, "get web", a.do("GET", "/admin/realms/acme/clients/web", nil), 200)
		if _, ok := r.body["secret"]; ok || r.body["confidential"] != true || r.header.Get("ETag") == "" {
			t.Fatalf("get web: %s", r.raw)
		}
		wantProblem(t, "get unknown", a.do("GET", "/admin/realms/acme/clients/nope", nil), 404)

		// A confidential client created without a secret gets one, shown once.
		r = want(t, "create svc2", a.do("PUT", "/admin/realms/acme/clients/svc2", map[string]any{
			"name": "Service 2", "grant_types": []string{"client_credentials"}, "scopes": []string{"orders:read"}}), 201)
		secret := r.str("secret")
		if len(secret) < 32 || r.body["confidential"] != true {
			t.Fatalf("created svc2: %s", r.raw)
		}
		if r := a.do("GET", "/admin/realms/acme/clients/svc2", nil); r.body["secret"] != nil || r.str("name") != "Service 2" {
			t.Fatalf("get svc2: %s", r.raw)
		}
		want(t, "svc2's token", ccToken(t, s, "svc2", secret), 200)
		// A replace without secret keeps it; with one it is not echoed.
		tag := a.do("GET", "/admin/realms/acme/clients/svc2", nil).header.Get("ETag")
		r = want(t, "replace svc2", a.do("PUT", "/admin/realms/acme/clients/svc2", map[string]any{
			"name": "Service Two", "grant_types": []string{"client_credentials"}, "scopes": []string{"orders:read", "orders:write"}}, "If-Match", tag), 200)
		if r.body["secret"] != nil || r.str("name") != "Service Two" {
			t.Fatalf("replaced svc2: %s", r.raw)
		}
		want(t, "svc2's kept secret", ccToken(t, s, "svc2", secret), 200)
		wantProblem(t, "replace with a stale If-Match", a.do("PUT", "/admin/realms/acme/clients/svc2", map[string]any{
			"grant_types": []string{"client_credentials"}}, "If-Match", tag), 412)
		// A public client: no secret.
		r = want(t, "create spa2", a.do("PUT", "/admin/realms/acme/clients/spa2", map[string]any{
			"grant_types": []string{"authorization_code", "refresh_token"}, "redirect_uris": []string{callback}}), 201)
		if r.body["secret"] != nil || r.body["confidential"] != false {
			t.Fatalf("created spa2: %s", r.raw)
		}
		// Validation by field path.
		r = wantProblem(t, "bad redirect URI", a.do("PUT", "/admin/realms/acme/clients/spa3", map[string]any{
			"grant_types": []string{"authorization_code"}, "redirect_uris": []string{callback, "not a uri#frag"}}), 400)
		if !slices.Contains(fieldErrors(r), "redirect_uris[1]") {
			t.Fatalf("bad redirect URI: %s", r.raw)
		}
		r = wantProblem(t, "short secret", a.bad("PUT", "/admin/realms/acme/clients/spa3", map[string]any{
			"grant_types": []string{"client_credentials"}, "secret": "too-short-0123456789abcdefghijklmnopq"[:10]}), 400)
		if !slices.Contains(fieldErrors(r), "secret") || containsAny(r.raw, "too-short") {
			t.Fatalf("short secret: %s", r.raw)
		}
		wantProblem(t, "id not the path's", a.bad("PUT", "/admin/realms/acme/clients/spa3", map[string]any{"id": "spa4", "grant_types": []string{"client_credentials"}}), 400)
		wantProblem(t, "client in an unknown realm", a.do("PUT", "/admin/realms/nope/clients/x", map[string]any{"grant_types": []string{"client_credentials"}}), 404)

		// Delete: its tokens die with it.
		opqTok := ccToken(t, s, "opq", opqSecret).str("access_token")
		if !a.active(opqTok) {
			t.Fatal("opq's opaque token inactive before the delete")
		}
		want(t, "delete opq", a.do("DELETE", "/admin/realms/acme/clients/opq", nil), 204)
		wantProblem(t, "get deleted", a.do("GET", "/admin/realms/acme/clients/opq", nil), 404)
		if a.active(opqTok) {
			t.Fatal("a deleted client's opaque access token is still active")
		}
		wantProblem(t, "delete again", a.do("DELETE", "/admin/realms/acme/clients/opq", nil), 404)

		r = want(t, "events", a.do("GET", "/admin/realms/acme/events?client=svc2&type=admin.client.created", nil), 200)
		if len(items(r)) != 1 || containsAny(r.raw, secret) {
			t.Fatalf("svc2's creation event: %s", r.raw)
		}
	})
}

// Disabling a client kills its access tokens (JWT) and refresh tokens at once;
// enabling it brings none back. Deleting one does the same for good.
func TestAdmin_ClientDisableEnableDelete(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s := startAdmin(t, db)
		a := root(t, s)
		b := newBrowser(t)
		tok := s.redeem(t, webBasic, b.code(s, "web"))
		at, rt := tok.str("access_token"), tok.str("refresh_token")
		svcAT := ccToken(t, s, "svc", svcSecret).str("access_token")
		if !a.active(at) || !a.active(rt) || !a.active(svcAT) {
			t.Fatal("tokens inactive before the disable")
		}

		r := want(t, "disable web", a.do("POST", "/admin/realms/acme/clients/web/disable", nil), 200)
		if r.body["disabled"] != true {
			t.Fatalf("disabled web: %s", r.raw)
		}
		if a.active(at) || a.active(rt) {
			t.Fatal("a disabled client's tokens are active")
		}
		if r := s.refresh(t, webBasic, rt); r.status == 200 {
			t.Fatal("a disabled client refreshed")
		}
		want(t, "enable web", a.do("POST", "/admin/realms/acme/clients/web/enable", nil), 200)
		if a.active(at) || a.active(rt) {
			t.Fatal("enabling the client brought its tokens back")
		}
		if r := s.refresh(t, webBasic, rt); !r.invalidGrant() {
			t.Fatalf("refresh after enable: %d %s", r.status, r.raw)
		}

		// revoke-tokens moves the stamp: svc's token dies, the client lives.
		want(t, "revoke svc's tokens", a.do("POST", "/admin/realms/acme/clients/svc/revoke-tokens", nil), 204)
		if a.active(svcAT) {
			t.Fatal("svc's token is active after revoke-tokens")
		}

		// Delete web: a new grant's tokens die with it. (A token from the stamp's
		// own second counts as before it, and the server's clock cannot be moved:
		// the new grant waits for the next second.)
		time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
		b2 := newBrowser(t)
		tok = s.redeem(t, webBasic, b2.code(s, "web"))
		if tok.status != 200 || !a.active(tok.str("access_token")) || !a.active(tok.str("refresh_token")) {
			t.Fatalf("a new grant for the enabled client: %s", tok.raw)
		}
		want(t, "delete web", a.do("DELETE", "/admin/realms/acme/clients/web", nil), 204)
		if a.active(tok.str("access_token")) || a.active(tok.str("refresh_token")) {
			t.Fatal("a deleted client's tokens are active")
		}
		if r := s.refresh(t, webBasic, tok.str("refresh_token")); r.status == 200 {
			t.Fatal("a deleted client refreshed")
		}

		r = want(t, "events", a.do("GET", "/admin/realms/acme/events?client=web&type=client.disabled", nil), 200)
		if ev := items(r); len(ev) != 1 || ev[0]["details"].(map[string]any)["by"] != "admin" || ev[0]["details"].(map[string]any)["admin_client"] != "root" {
			t.Fatalf("client.disabled event: %s", r.raw)
		}
	})
}

// A rotated secret is shown once; the old one stops at once, or after the grace
// period the request asks for.
func TestAdmin_ClientSecretRotation(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s := startAdmin(t, db)
		a := root(t, s)

		r := want(t, "rotate svc", a.do("POST", "/admin/realms/acme/clients/svc/secret", nil), 200)
		newSecret := r.str("secret")
		if len(newSecret) < 32 || r.str("previous_secret_expires_at") != "" {
			t.Fatalf("rotated: %s", r.raw)
		}
		if r := ccToken(t, s, "svc", svcSecret); r.status != 401 {
			t.Fatalf("the old secret after a rotation without grace: %d %s", r.status, r.raw)
		}
		want(t, "the new secret", ccToken(t, s, "svc", newSecret), 200)

		r = want(t, "rotate svc with grace", a.do("POST", "/admin/realms/acme/clients/svc/secret", map[string]string{"grace_period": "1h"}), 200)
		newer := r.str("secret")
		if newer == newSecret || r.str("previous_secret_expires_at") == "" {
			t.Fatalf("rotated with grace: %s", r.raw)
		}
		want(t, "the old secret in its grace", ccToken(t, s, "svc", newSecret), 200)
		want(t, "the newest secret", ccToken(t, s, "svc", newer), 200)
		if r := a.do("GET", "/admin/realms/acme/clients/svc", nil); r.str("previous_secret_expires_at") == "" || containsAny(r.raw, newer, newSecret) {
			t.Fatalf("get svc in the grace: %s", r.raw)
		}
		// A rotation without grace ends the grace of the one before.
		r = want(t, "rotate again", a.do("POST", "/admin/realms/acme/clients/svc/secret", map[string]string{}), 200)
		if r := ccToken(t, s, "svc", newSecret); r.status != 401 {
			t.Fatalf("a secret two rotations old: %d", r.status)
		}
		if r := ccToken(t, s, "svc", newer); r.status != 401 {
			t.Fatalf("the secret rotated out without grace: %d", r.status)
		}
		want(t, "the latest secret", ccToken(t, s, "svc", r.str("secret")), 200)

		r = wantProblem(t, "grace over 7 days", a.do("POST", "/admin/realms/acme/clients/svc/secret", map[string]string{"grace_period": "169h"}), 400)
		if !slices.Equal(fieldErrors(r), []string{"grace_period"}) {
			t.Fatalf("grace over 7 days: %s", r.raw)
		}
		wantProblem(t, "public client", a.do("POST", "/admin/realms/acme/clients/spa/secret", nil), 409)
		wantProblem(t, "unknown client", a.do("POST", "/admin/realms/acme/clients/nope/secret", nil), 404)
		r = want(t, "events", a.do("GET", "/admin/realms/acme/events?type=admin.client.secret_rotated", nil), 200)
		if len(items(r)) != 3 || containsAny(r.raw, newSecret, newer) {
			t.Fatalf("rotation events: %s", r.raw)
		}
	})
}

func containsAny(s string, subs ...string) bool {
	return slices.ContainsFunc(subs, func(sub string) bool { return sub != "" && strings.Contains(s, sub) })
}

// web_origins through the admin API: set, read back, refused with its field
// path when it is "*" or no origin, and honoured by the token endpoint's CORS.
func TestAdmin_ClientWebOrigins(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s := startAdmin(t, db)
		a := root(t, s)
		origins := []string{"+", "http://127.0.0.1:9998"}
		r := want(t, "create spa3", a.do("PUT", "/admin/realms/acme/clients/spa3", map[string]any{
			"grant_types": []string{"authorization_code"}, "redirect_uris": []string{callback}, "web_origins": origins}), 201)
		if got := strs(r.body["web_origins"]); !slices.Equal(got, origins) {
			t.Fatalf("created spa3: %s", r.raw)
		}
		r = want(t, "get spa3", a.do("GET", "/admin/realms/acme/clients/spa3", nil), 200)
		if got := strs(r.body["web_origins"]); !slices.Equal(got, origins) {
			t.Fatalf("get spa3: %s", r.raw)
		}
		for _, bad := range []string{"*", "https://app.example/path"} {
			r = wantProblem(t, "web origin "+bad, a.bad("PUT", "/admin/realms/acme/clients/spa4", map[string]any{
				"grant_types": []string{"authorization_code"}, "redirect_uris": []string{callback}, "web_origins": []string{bad}}), 400)
			if !slices.Contains(fieldErrors(r), "web_origins[0]") {
				t.Fatalf("web origin %q: %s", bad, r.raw)
			}
		}

		req, _ := http.NewRequest("OPTIONS", s.tokenURL(), nil)
		req.Header.Set("Origin", "http://127.0.0.1:9998")
		req.Header.Set("Access-Control-Request-Method", "POST")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.Header.Get("Access-Control-Allow-Origin") != "http://127.0.0.1:9998" || res.Header.Get("Access-Control-Allow-Credentials") != "true" {
			t.Fatalf("preflight from spa3's web origin: %d %v", res.StatusCode, res.Header)
		}
	})
}

func strs(v any) []string {
	var out []string
	l, _ := v.([]any)
	for _, s := range l {
		out = append(out, s.(string))
	}
	return out
}

func TestAdmin_ClientRefreshTokenFormat(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s := startAdmin(t, db)
		a := root(t, s)
		r := want(t, "create kc", a.do("PUT", "/admin/realms/acme/clients/kc", map[string]any{
			"grant_types": []string{"authorization_code", "refresh_token"}, "redirect_uris": []string{callback},
			"refresh_token_format": "jwt"}), 201)
		if r.body["refresh_token_format"] != "jwt" {
			t.Fatalf("created kc: %s", r.raw)
		}
		if r = want(t, "get kc", a.do("GET", "/admin/realms/acme/clients/kc", nil), 200); r.body["refresh_token_format"] != "jwt" {
			t.Fatalf("get kc: %s", r.raw)
		}
		r = want(t, "create plain", a.do("PUT", "/admin/realms/acme/clients/plain", map[string]any{
			"grant_types": []string{"authorization_code", "refresh_token"}, "redirect_uris": []string{callback}}), 201)
		if r.body["refresh_token_format"] != "opaque" {
			t.Fatalf("created plain: %s", r.raw)
		}
		r = wantProblem(t, "unknown format", a.bad("PUT", "/admin/realms/acme/clients/kc2", map[string]any{
			"grant_types": []string{"authorization_code"}, "redirect_uris": []string{callback}, "refresh_token_format": "paseto"}), 400)
		if !slices.Contains(fieldErrors(r), "refresh_token_format") {
			t.Fatalf("unknown format: %s", r.raw)
		}
	})
}
