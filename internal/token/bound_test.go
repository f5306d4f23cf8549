package token

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/keys"
	"github.com/latchkey/latchkey/internal/masterkey"
	"github.com/latchkey/latchkey/storage"
	"github.com/latchkey/latchkey/storage/sqlite"
)

// TestIssueAccessToken_CarriesConfirmationAndActor: a grant's DPoP key and actor
// reach the token as cnf.jkt (RFC 9449 §6.1) and act (RFC 8693 §4.1), in a JWT as
// a resource server reads it and in an opaque token as introspection opens it;
// a grant with neither carries neither.
func TestIssueAccessToken_CarriesConfirmationAndActor(t *testing.T) {
	st, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "t.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	mk, err := masterkey.Parse(hex.EncodeToString(bytes.Repeat([]byte{7}, masterkey.Size)))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { return t0 }
	realm := storage.Realm{Name: "acme", SigningAlg: "ES256", AccessTokenTTL: 5 * time.Minute, CreatedAt: t0, UpdatedAt: t0}
	if err := st.CreateRealm(t.Context(), realm); err != nil {
		t.Fatal(err)
	}
	s := NewService(st, keys.NewManager(st, mk, keys.DefaultPolicy, now), NewDenyList(), "https://id.example", now)

	const jkt = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
	act := &Actor{Subject: "svc-b", ClientID: "svc-b", Act: &Actor{Subject: "svc-a"}}
	for _, format := range []string{"jwt", "opaque"} {
		client := storage.Client{Realm: "acme", ID: "app", Tokens: storage.TokenSettings{AccessTokenFormat: format}}
		bound, err := s.IssueAccessToken(t.Context(), Grant{Realm: realm, Client: client, UserID: "u1", JKT: jkt, Act: act})
		if err != nil {
			t.Fatal(err)
		}
		plain, err := s.IssueAccessToken(t.Context(), Grant{Realm: realm, Client: client, UserID: "u1"})
		if err != nil {
			t.Fatal(err)
		}
		got := claimsOf(t, s, format, bound.Value)
		if want := `{"jkt":"` + jkt + `"}`; string(got["cnf"]) != want {
			t.Errorf("%s: cnf = %s, want %s", format, got["cnf"], want)
		}
		if want := `{"sub":"svc-b","client_id":"svc-b","act":{"sub":"svc-a"}}`; string(got["act"]) != want {
			t.Errorf("%s: act = %s, want %s", format, got["act"], want)
		}
		got = claimsOf(t, s, format, plain.Value)
		if _, ok := got["cnf"]; ok {
			t.Errorf("%s: an unbound token has cnf %s", format, got["cnf"])
		}
		if _, ok := got["act"]; ok {
			t.Errorf("%s: a token without an actor has act %s", format, got["act"])
		}
	}
}

// claimsOf returns a token's claims as raw JSON: a JWT's payload as anyone can
// read it, an opaque token's as the service opens it.
func claimsOf(t *testing.T, s *Service, format, tok string) map[string]json.RawMessage {
	t.Helper()
	var payload []byte
	if format == "jwt" {
		parts := strings.Split(tok, ".")
		if len(parts) != 3 {
			t.Fatalf("not a JWS: %d parts", len(parts))
		}
		var err error
		if payload, err = base64.RawURLEncoding.DecodeString(parts[1]); err != nil {
			t.Fatal(err)
		}
	} else {
		c := s.openAccess("acme", tok)
		if c == nil {
			t.Fatal("opaque token does not open")
		}
		var err error
		if payload, err = json.Marshal(c); err != nil {
			t.Fatal(err)
		}
	}
	out := map[string]json.RawMessage{}
	if err := json.Unmarshal(payload, &out); err != nil {
		t.Fatal(err)
	}
	return out
}
