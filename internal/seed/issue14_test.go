package seed

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/clientsecret"
	"github.com/latchkey/latchkey/internal/masterkey"
	"github.com/latchkey/latchkey/internal/password"
	"github.com/latchkey/latchkey/storage/sqlite"
)

// The seed file's dpop_bound_access_tokens and
// require_pushed_authorization_requests reach the store, and a seed that
// changes them updates the client.
func TestApply_StoresDPoPAndPARSettings(t *testing.T) {
	st, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "seed.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	mk, err := masterkey.Parse("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	a := &Applier{Store: st, Secrets: clientsecret.NewHasher(mk), Password: password.Params{Memory: 64, Time: 1, Threads: 1},
		MACKey: PasswordMACKey(mk), Now: time.Now}
	const doc = `realms:
  - name: acme
    clients:
      - id: app
        redirect_uris: [https://app.example/cb]
        grant_types: [authorization_code, refresh_token]
        dpop_bound_access_tokens: true
        require_pushed_authorization_requests: true
`
	for _, step := range []struct {
		doc       string
		dpop, par bool
	}{
		{doc, true, true},
		{strings.Replace(doc, "dpop_bound_access_tokens: true", "dpop_bound_access_tokens: false", 1), false, true},
		{strings.Replace(doc, "        require_pushed_authorization_requests: true\n", "", 1), true, false},
	} {
		f, err := Parse("seed.yaml", []byte(step.doc))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Apply(t.Context(), f); err != nil {
			t.Fatal(err)
		}
		c, err := st.GetClient(t.Context(), "acme", "app")
		if err != nil {
			t.Fatal(err)
		}
		if c.DPoPBoundAccessTokens != step.dpop || c.RequirePushedAuthorizationRequests != step.par {
			t.Fatalf("stored dpop_bound_access_tokens %v, require_pushed_authorization_requests %v; want %v, %v",
				c.DPoPBoundAccessTokens, c.RequirePushedAuthorizationRequests, step.dpop, step.par)
		}
	}
}
