package grants_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/dpop"
	"github.com/latchkey/latchkey/internal/grants"
	"github.com/latchkey/latchkey/internal/keys"
	"github.com/latchkey/latchkey/internal/masterkey"
	"github.com/latchkey/latchkey/internal/token"
	"github.com/latchkey/latchkey/storage"
	"github.com/latchkey/latchkey/storage/sqlite"
)

// A token exchange that came with a DPoP proof (the token endpoint's shared phase
// sets Request.DPoP) issues a token bound to the proof's key: cnf.jkt and
// token_type DPoP (RFC 9449 §5, §6.1); without one, a Bearer token with no cnf.
func TestTokenExchange_DPoPProofBindsTheToken(t *testing.T) {
	st, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "t.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	mk, err := masterkey.Parse(hex.EncodeToString(bytes.Repeat([]byte{7}, masterkey.Size)))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().UTC().Truncate(time.Second)
	now := func() time.Time { return t0 }
	realm := storage.Realm{Name: "acme", SigningAlg: "ES256", CreatedAt: t0, UpdatedAt: t0}
	client := storage.Client{Realm: "acme", ID: "xchg", SecretHash: "h", GrantTypes: []string{grants.ClientCredentialsType, grants.TokenExchangeType},
		Scopes: []string{"orders:read"}, TokenExchangeAudiences: []string{"https://api.example/orders"}, CreatedAt: t0, UpdatedAt: t0}
	if err := st.CreateRealm(t.Context(), realm); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateClient(t.Context(), client); err != nil {
		t.Fatal(err)
	}
	tokens := token.NewService(st, keys.NewManager(st, mk, keys.DefaultPolicy, now), token.NewDenyList(), "https://id.example", now)
	g := grants.TokenExchange(grants.Deps{Tokens: tokens, Store: st, Now: now, Caller: func(*http.Request) token.Caller { return token.Caller{} }})

	subject, err := tokens.IssueAccessToken(t.Context(), token.Grant{Realm: realm, Client: client, Scopes: []string{"orders:read"}, Audience: []string{"https://id.example/realms/acme"}})
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{"subject_token": {subject.Value}, "subject_token_type": {token.TokenTypeAccess}, "audience": {"https://api.example/orders"}}
	const jkt = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"

	for _, proof := range []*dpop.Proof{{JKT: jkt}, nil} {
		resp, err := g.Token(t.Context(), grants.Request{Realm: realm, Client: client, Form: form, DPoP: proof})
		if err != nil {
			t.Fatal(err)
		}
		payload, err := base64.RawURLEncoding.DecodeString(strings.Split(resp.AccessToken, ".")[1])
		if err != nil {
			t.Fatal(err)
		}
		var c struct {
			Cnf *token.Confirmation `json:"cnf"`
			Aud string              `json:"aud"`
		}
		if err := json.Unmarshal(payload, &c); err != nil {
			t.Fatal(err)
		}
		wantType, wantCnf := "Bearer", (*token.Confirmation)(nil)
		if proof != nil {
			wantType, wantCnf = "DPoP", &token.Confirmation{JKT: jkt}
		}
		if resp.TokenType != wantType || resp.IssuedTokenType != token.TokenTypeAccess || resp.RefreshToken != "" ||
			c.Aud != "https://api.example/orders" || (c.Cnf == nil) != (wantCnf == nil) || (c.Cnf != nil && *c.Cnf != *wantCnf) {
			t.Errorf("proof %v: response %+v, claims %s", proof != nil, resp, payload)
		}
	}
}
