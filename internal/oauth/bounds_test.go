package oauth

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/ident"
	"github.com/latchkey/latchkey/internal/protocol"
	"github.com/latchkey/latchkey/storage"
)

// guardStore records every lookup by a name that no realm, client or account can
// have: the edge must refuse those before asking the store (or its cache).
type guardStore struct {
	storage.Store
	mu  sync.Mutex
	bad []string
}

func (g *guardStore) check(kind string, err error, name string) {
	if err != nil {
		g.mu.Lock()
		g.bad = append(g.bad, kind+" "+name[:min(len(name), 40)])
		g.mu.Unlock()
	}
}

func (g *guardStore) GetRealm(ctx context.Context, name string) (storage.Realm, error) {
	g.check("realm", ident.Realm(name), name)
	return g.Store.GetRealm(ctx, name)
}

func (g *guardStore) GetClient(ctx context.Context, realm, id string) (storage.Client, error) {
	g.check("client", ident.ClientID(id), id)
	return g.Store.GetClient(ctx, realm, id)
}

func (g *guardStore) GetUserByUsername(ctx context.Context, realm, name string) (storage.User, error) {
	g.check("username", ident.LoginName(name), name)
	return g.Store.GetUserByUsername(ctx, realm, name)
}

func (g *guardStore) GetUserByEmail(ctx context.Context, realm, email string) (storage.User, error) {
	g.check("email", ident.LoginName(email), email)
	return g.Store.GetUserByEmail(ctx, realm, email)
}

// Malformed realm names and client IDs, wherever a request carries them, get the
// answer an unknown one gets, and never reach the store.
func TestMalformedNamesAreRefusedBeforeAnyLookup(t *testing.T) {
	backends(t, func(t *testing.T, open func() storage.Store) {
		g := &guardStore{Store: open()}
		inst := newInstance(t, g, &clock{t: time.Now().Truncate(time.Second)}, true)
		long := strings.Repeat("x", 5000)
		for _, name := range []string{long, "web\n", "a b", "wéb", "web/../svc"} {
			// A realm in the path.
			r := do(t, mustReq(t, "GET", inst.issuer(url.PathEscape(name))+"/.well-known/openid-configuration"))
			wantError(t, r, http.StatusNotFound, protocol.NotFound)
			// A client in the form, in Basic, and in a client assertion's iss.
			wantError(t, post(t, inst.tokenURL("acme"), "", form("grant_type", "client_credentials", "client_id", name, "client_secret", "x")), 401, protocol.InvalidClient)
			wantError(t, post(t, inst.tokenURL("acme"), name+":x", form("grant_type", "client_credentials")), 401, protocol.InvalidClient)
			wantError(t, post(t, inst.tokenURL("acme"), "", form("grant_type", "client_credentials", "client_assertion_type", assertionType,
				"client_assertion", assertion(t, map[string]any{"iss": name, "sub": name, "aud": inst.tokenURL("acme"), "jti": "j",
					"exp": time.Now().Add(time.Minute).Unix()}, "pk-1"))), 401, protocol.InvalidClient)
			wantError(t, post(t, inst.revokeURL("acme"), "", form("client_id", name, "token", "t")), 401, protocol.InvalidClient)
			// A client in the authorization request, and in a logout request.
			if p := newBrowser(t).get(authURL(inst, "acme", "client_id", name)); p.status != 400 || !strings.Contains(p.body, "Unknown application") {
				t.Fatalf("authorization request of client %.40q = %d; want the 400 error page", name, p.status)
			}
			logout := inst.issuer("acme") + logoutPath + "?" + url.Values{"client_id": {name}, "post_logout_redirect_uri": {"http://127.0.0.1:9999/bye"}}.Encode()
			if p := newBrowser(t).get(logout); p.status != 400 {
				t.Fatalf("logout for client %.40q = %d; want the 400 error page", name, p.status)
			}
		}
		// An account name in the login form.
		b := newBrowser(t)
		u := authURL(inst, "acme", "client_id", "spa")
		if p := b.submit(b.get(u), u, "username", long+"@example.com", "password", "alice-password-1"); p.status != http.StatusUnauthorized {
			t.Fatalf("login with a 5000-character name = %d; want 401", p.status)
		}
		// Basic credentials whose halves are not form-encoded are malformed, not looked up.
		req, _ := http.NewRequest("POST", inst.tokenURL("acme"), strings.NewReader("grant_type=client_credentials"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("%zz:x")))
		wantError(t, do(t, req), 401, protocol.InvalidClient)
		if len(g.bad) > 0 {
			t.Fatalf("malformed names reached the store: %q", g.bad)
		}
	})
}
