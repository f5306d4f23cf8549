package e2e

import (
	"net/http"
	"strings"
	"testing"
)

// opqWebSecret is the secret of opqweb, a sign-in client with opaque access tokens
// that opaqueSeed adds to the default seed.
const opqWebSecret = "opqweb-secret-0123456789abcdefghijklmnop"

var opaqueSeed = strings.Replace(defaultSeed, "    users:\n", `      - id: opqweb
        secret: `+opqWebSecret+`
        redirect_uris: [`+callback+`]
        grant_types: [authorization_code, refresh_token]
        scopes: [openid, profile, offline_access]
        access_token_format: opaque
    users:
`, 1)

func userinfoWith(t testing.TB, s *server, tok string) response {
	t.Helper()
	req, err := http.NewRequest("GET", s.userinfoURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	return do(t, req)
}

// An opaque access token carries its issuer: another instance on the same database
// and master key but with another base URL refuses it, as it refuses the first
// one's JWTs.
func TestOpaqueAccessToken_RefusedUnderAnotherIssuer(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		a := start(t, options{db: db, seed: opaqueSeed})
		cc := post(t, a.tokenURL(), "opq:"+opqSecret, form("grant_type", "client_credentials"))
		svcTok := cc.str("access_token")
		if cc.status != 200 || !strings.HasPrefix(svcTok, "lk_at_") {
			t.Fatalf("client credentials = %d %s", cc.status, cc.raw)
		}
		r := a.redeem(t, "opqweb:"+opqWebSecret, newBrowser(t).code(a, "opqweb"))
		userTok := r.str("access_token")
		if r.status != 200 || !strings.HasPrefix(userTok, "lk_at_") {
			t.Fatalf("redeem = %d %s", r.status, r.raw)
		}

		b := start(t, options{db: db, seed: opaqueSeed})
		if a.URL == b.URL {
			t.Fatal("both instances have the same base URL")
		}
		// The other issuer: inactive, 401.
		wantInactive(t, "service token at B", b.introspect(t, svcBasic, svcTok))
		wantInactive(t, "user token at B", b.introspect(t, svcBasic, userTok))
		if u := userinfoWith(t, b, userTok); u.status != 401 {
			t.Fatalf("userinfo at B = %d %s; want 401", u.status, u.raw)
		}
		// B's own tokens work at B, so B is not simply broken.
		own := post(t, b.tokenURL(), "opq:"+opqSecret, form("grant_type", "client_credentials")).str("access_token")
		if in := b.introspect(t, svcBasic, own); in.body["active"] != true || in.str("iss") != b.issuer("acme") {
			t.Fatalf("B's own token at B = %d %s", in.status, in.raw)
		}
		wantInactive(t, "B's token at A", a.introspect(t, svcBasic, own))

		// The issuer: active, with its issuer.
		for what, tok := range map[string]string{"service token": svcTok, "user token": userTok} {
			if in := a.introspect(t, svcBasic, tok); in.body["active"] != true || in.str("iss") != a.issuer("acme") {
				t.Fatalf("%s at A = %d %s", what, in.status, in.raw)
			}
		}
		if u := userinfoWith(t, a, userTok); u.status != 200 || u.str("sub") == "" {
			t.Fatalf("userinfo at A = %d %s", u.status, u.raw)
		}
	})
}
