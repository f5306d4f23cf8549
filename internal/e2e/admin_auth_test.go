package e2e

import (
	"strings"
	"testing"
	"time"
)

// The admin API's authorization matrix (issue 11 item 3): who may call what, with
// which answer.
func TestAdmin_AuthorizationMatrix(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s := startAdmin(t, db)

		// The document is public; everything else needs a token.
		want(t, "openapi.json", asAdmin(t, s, "").do("GET", "/admin/openapi.json", nil), 200)
		r := wantProblem(t, "no token", asAdmin(t, s, "").do("GET", "/admin/realms/acme", nil), 401)
		if got := r.header.Get("WWW-Authenticate"); got != `Bearer realm="latchkey-admin"` {
			t.Fatalf("no token: WWW-Authenticate %q", got)
		}
		r = wantProblem(t, "garbage token", asAdmin(t, s, "garbage.token.here").do("GET", "/admin/realms/acme", nil), 401)
		if got := r.header.Get("WWW-Authenticate"); got != `Bearer realm="latchkey-admin", error="invalid_token"` {
			t.Fatalf("garbage token: WWW-Authenticate %q", got)
		}

		// A user's access token is no admin credential, whatever it holds.
		b := newBrowser(t)
		userTok := s.redeem(t, webBasic, b.code(s, "web")).str("access_token")
		wantProblem(t, "a user's token", asAdmin(t, s, userTok).do("GET", "/admin/realms/acme", nil), 401)

		// Master's read-write admin: every realm, and the routes across realms.
		rootAdm := root(t, s)
		for _, p := range []string{"/admin/realms", "/admin/realms/acme", "/admin/realms/other/clients", "/admin/realms/master"} {
			want(t, "root GET "+p, rootAdm.do("GET", p, nil), 200)
		}

		// Read-only scope: GET only.
		reader := asAdmin(t, s, clientToken(t, s, "master", "reader", readerSecret, "latchkey:admin:read"))
		want(t, "reader GET", reader.do("GET", "/admin/realms/acme/clients", nil), 200)
		r = wantProblem(t, "reader POST", reader.do("POST", "/admin/realms/acme/clients/svc/revoke-tokens", nil), 403)
		if got := r.header.Get("WWW-Authenticate"); !strings.Contains(got, `error="insufficient_scope"`) {
			t.Fatalf("reader POST: WWW-Authenticate %q", got)
		}
		// A read-write client asking only for the read scope gets read only.
		rootRead := asAdmin(t, s, clientToken(t, s, "master", "root", rootSecret, "latchkey:admin:read"))
		want(t, "root read-only GET", rootRead.do("GET", "/admin/realms/acme", nil), 200)
		wantProblem(t, "root read-only PUT", rootRead.do("PUT", "/admin/realms/acme", map[string]any{"display_name": "x"}), 403)
		// No admin scope at all.
		plain := asAdmin(t, s, clientToken(t, s, "master", "plain", plainSecret, "orders:read"))
		wantProblem(t, "no admin scope", plain.do("GET", "/admin/realms/acme", nil), 403)

		// A realm's own admin client: that realm only, and no routes across realms.
		acmeTok := clientToken(t, s, "acme", "acme-admin", acmeAdminSec, "latchkey:admin")
		acme := asAdmin(t, s, acmeTok)
		want(t, "acme admin on acme", acme.do("GET", "/admin/realms/acme/clients", nil), 200)
		want(t, "acme admin writes acme", acme.do("POST", "/admin/realms/acme/clients/svc/revoke-tokens", nil), 204)
		wantProblem(t, "acme admin on other", acme.do("GET", "/admin/realms/other/clients", nil), 403)
		wantProblem(t, "acme admin on master", acme.do("GET", "/admin/realms/master/clients", nil), 403)
		wantProblem(t, "acme admin lists realms", acme.do("GET", "/admin/realms", nil), 403)
		wantProblem(t, "acme admin creates a realm", acme.do("PUT", "/admin/realms/newrealm", map[string]any{}), 403)
		wantProblem(t, "acme admin deletes its realm", acme.do("DELETE", "/admin/realms/acme", nil), 403)
		other := asAdmin(t, s, clientToken(t, s, "other", "other-admin", otherAdmSec, "latchkey:admin"))
		wantProblem(t, "other's admin on acme", other.do("GET", "/admin/realms/acme", nil), 403)
		want(t, "other's admin on other", other.do("GET", "/admin/realms/other", nil), 200)

		// A disabled admin client's token stops at once, and stays dead when enabled.
		want(t, "disable acme-admin", rootAdm.do("POST", "/admin/realms/acme/clients/acme-admin/disable", nil), 200)
		wantProblem(t, "disabled admin client", acme.do("GET", "/admin/realms/acme", nil), 401)
		want(t, "enable acme-admin", rootAdm.do("POST", "/admin/realms/acme/clients/acme-admin/enable", nil), 200)
		wantProblem(t, "re-enabled admin client's old token", acme.do("GET", "/admin/realms/acme", nil), 401)

		// An expired token (brief's live 1 s).
		brief := asAdmin(t, s, clientToken(t, s, "master", "brief", briefSecret, "latchkey:admin"))
		if r := brief.do("GET", "/admin/realms/acme", nil); r.status == 200 {
			deadline := time.Now().Add(10 * time.Second)
			for r.status == 200 && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond) // the server's clock cannot be moved
				r = brief.do("GET", "/admin/realms/acme", nil)
			}
		}
		wantProblem(t, "expired token", brief.do("GET", "/admin/realms/acme", nil), 401)
	})
}
