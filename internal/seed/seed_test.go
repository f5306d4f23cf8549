package seed

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/registry"
)

func TestParseAcceptsTheDocumentedExample(t *testing.T) {
	f, err := Load("testdata/acme.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Realms) != 1 || f.Realms[0].Name != "acme" || len(f.Realms[0].Clients) != 3 || len(f.Realms[0].Users) != 1 {
		t.Fatalf("parsed %+v", f)
	}
	r := f.Realms[0]
	if r.SigningAlg != "ES256" || time.Duration(r.AccessTokenTTL) != 5*time.Minute {
		t.Errorf("realm defaults: %s %v", r.SigningAlg, time.Duration(r.AccessTokenTTL))
	}
	web, spa, svc := r.Clients[0], r.Clients[1], r.Clients[2]
	if web.RefreshPreset != "web" || time.Duration(web.RefreshIdle) != 24*time.Hour || time.Duration(web.RefreshAbsolute) != 14*24*time.Hour ||
		time.Duration(*web.RefreshRetryWindow) != 10*time.Second || web.AccessTokenFormat != "jwt" {
		t.Errorf("web resolved to %+v", web)
	}
	if spa.RefreshPreset != "spa" || time.Duration(spa.RefreshIdle) != time.Hour || time.Duration(spa.RefreshAbsolute) != 24*time.Hour {
		t.Errorf("spa resolved to %+v", spa)
	}
	if svc.RefreshPreset != "service" || svc.RefreshIdle != 0 {
		t.Errorf("svc resolved to %+v", svc)
	}
	if u := r.Users[0]; u.Username != "alice" || u.Email != "alice@example.com" || u.Password != "alice-password-1" {
		t.Errorf("user %+v", u)
	}
}

func TestParseAcceptsOverridesAndEmptyFiles(t *testing.T) {
	f, err := Parse("s.yaml", []byte(`
realms:
  - name: mobile-apps
    signing_alg: EdDSA
    access_token_ttl: 2h
    allow_long_access_tokens: true
    clients:
      - id: ios
        redirect_uris: [com.example.app:/oauth2redirect]
        grant_types: [authorization_code, refresh_token]
        refresh_preset: mobile
        refresh_idle: 72h
        refresh_retry_window: 0s
        access_token_format: opaque
`))
	if err != nil {
		t.Fatal(err)
	}
	c := f.Realms[0].Clients[0]
	if time.Duration(c.RefreshIdle) != 72*time.Hour || time.Duration(c.RefreshAbsolute) != 90*24*time.Hour || *c.RefreshRetryWindow != 0 {
		t.Fatalf("overrides not kept: %+v", c)
	}
	for _, empty := range []string{"", "# nothing\n", "realms: []\n"} {
		if f, err := Parse("e.yaml", []byte(empty)); err != nil || len(f.Realms) != 0 {
			t.Errorf("Parse(%q) = %+v, %v", empty, f, err)
		}
	}
}

// Each bad file must be refused with the file, the line and the field.
// goodHash has the shape and the default parameters of an argon2id hash.
const goodHash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXo3ODkwMTI"

// A user may be given a password hash instead of a password: kept as it is.
func TestParseAcceptsAPasswordHash(t *testing.T) {
	f, err := Parse("seed.yaml", []byte("realms:\n  - name: acme\n    users:\n      - username: bob\n        password_hash: "+goodHash+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if u := f.Realms[0].Users[0]; u.PasswordHash != goodHash || u.Password != "" {
		t.Fatalf("user = %+v", u)
	}
}

func TestParseRefusesBadFilesNamingFileLineAndField(t *testing.T) {
	base, _ := os.ReadFile("testdata/acme.yaml")
	edit := func(old, new string) string {
		if !strings.Contains(string(base), old) {
			t.Fatalf("fixture lacks %q", old)
		}
		return strings.Replace(string(base), old, new, 1)
	}
	cases := []struct {
		name, yaml, want string
	}{
		{"bad YAML", edit("scopes: [orders:read, orders:write]", "scopes: [orders:read, orders:write"), "did not find expected ',' or ']'"},
		{"tab-indented YAML", "realms:\n\t- name: x\n", "seed.yaml:2: "},
		{"unknown grant type", edit("grant_types: [client_credentials]", "grant_types: [client_credentials, password]"),
			`seed.yaml:15: realms[0].clients[2].grant_types[1]: grant type "password" is not offered`},
		{"made-up grant type", edit("grant_types: [client_credentials]", "grant_types: [device_magic]"),
			`seed.yaml:15: realms[0].clients[2].grant_types[0]: unknown grant type "device_magic"`},
		{"relative redirect URI", edit("redirect_uris: [http://127.0.0.1:9999/cb]\n        grant_types: [authorization_code, refresh_token]\n        scopes: [openid, profile, offline_access]", "redirect_uris: [/cb]\n        grant_types: [authorization_code, refresh_token]\n        scopes: [openid, profile, offline_access]"),
			`seed.yaml:10: realms[0].clients[1].redirect_uris[0]: "/cb" is not an absolute URI`},
		{"redirect URI with fragment", edit("redirect_uris: [http://127.0.0.1:9999/cb]", "redirect_uris: [http://127.0.0.1:9999/cb#x]"),
			`seed.yaml:6: realms[0].clients[0].redirect_uris[0]: "http://127.0.0.1:9999/cb#x" must not have a fragment`},
		{"duplicate client id", edit("- id: spa", "- id: web"), `seed.yaml:9: realms[0].clients[1].id: duplicate client id "web"`},
		{"duplicate realm", string(base) + "  - name: acme\n", `seed.yaml:21: realms[1].name: duplicate realm "acme"`},
		{"duplicate username", string(base) + "      - username: ALICE\n        password: another-password\n", `seed.yaml:21: realms[0].users[1].username: duplicate username "alice"`},
		{"duplicate email", string(base) + "      - username: alicia\n        password: another-password\n        email: Alice@example.com\n", `seed.yaml:23: realms[0].users[1].email: duplicate email "alice@example.com"`},
		{"unknown field", edit("scopes: [orders:read, orders:write]", "scopes: [orders:read, orders:write]\n        colour: blue"),
			`seed.yaml:17: realms[0].clients[2]: unknown field "colour"`},
		{"duplicate key", edit("secret: svc-secret-123-0123456789abcdefghijklmnop", "secret: svc-secret-123-0123456789abcdefghijklmnop\n        secret: again"), `seed.yaml:15: `},
		{"bad duration", edit("- name: acme", "- name: acme\n    access_token_ttl: five minutes"), `seed.yaml:3: "five minutes" is not a duration`},
		{"too long access tokens", edit("- name: acme", "- name: acme\n    access_token_ttl: 2h"), `seed.yaml:3: realms[0].access_token_ttl: access_token_ttl 2h0m0s is over 1h0m0s`},
		{"bad bool", edit("- id: svc", "- id: svc\n        third_party: perhaps"), `seed.yaml:14: cannot unmarshal`},
		{"password and password_hash", string(base) + "        password_hash: " + goodHash + "\n", `realms[0].users[0].password_hash: give password or password_hash, not both`},
		{"malformed password_hash", string(base) + "      - username: bob\n        password_hash: $2y$10$notargon\n", `realms[0].users[1].password_hash: password: malformed argon2id hash`},
		{"weak password_hash", string(base) + "      - username: bob\n        password_hash: " + strings.Replace(goodHash, "m=19456,t=2", "m=64,t=1", 1) + "\n", `realms[0].users[1].password_hash: password: hash weaker than`},
		{"ruinous password_hash", string(base) + "      - username: bob\n        password_hash: " + strings.Replace(goodHash, "m=19456", "m=4194304", 1) + "\n", `realms[0].users[1].password_hash: password: hash costlier than`},
		{"missing client id", edit("- id: svc\n", "- name: no-id\n"), `seed.yaml:13: realms[0].clients[2].id: client id "" must be`},
		{"client credentials without secret", edit("        secret: svc-secret-123-0123456789abcdefghijklmnop\n", ""), `seed.yaml:14: realms[0].clients[2].grant_types: client_credentials needs a confidential client`},
		{"short password", edit("password: alice-password-1", "password: short"), `seed.yaml:19: realms[0].users[0].password: password must have at least 8`},
		{"bad realm name", edit("- name: acme", "- name: Acme Corp"), `seed.yaml:2: realms[0].name: realm name "Acme Corp"`},
		{"realm name too long", edit("- name: acme", "- name: "+strings.Repeat("a", 64)), `seed.yaml:2: realms[0].name: realm name "aaaa`},
		{"client id too long", edit("- id: svc", "- id: "+strings.Repeat("s", 129)), `seed.yaml:13: realms[0].clients[2].id: client id "ssss`},
		{"email too long to sign in with", edit("email: alice@example.com", "email: "+strings.Repeat("a", 64)+"@"+strings.Repeat("b.", 95)+"com"),
			`seed.yaml:20: realms[0].users[0].email: email "aaaa`},
		{"unknown preset", edit("- id: svc", "- id: svc\n        refresh_preset: forever"), `seed.yaml:14: realms[0].clients[2].refresh_preset: unknown refresh_preset "forever"`},
		{"scope with space", edit("scopes: [orders:read, orders:write]", `scopes: ["orders read"]`), `seed.yaml:16: realms[0].clients[2].scopes[0]: "orders read" is not a scope token`},
		{"list where a map belongs", "realms:\n  - name: acme\n    clients:\n      id: web\n", `seed.yaml:4: realms[0].clients: must be a list`},
		{"private key in jwks", edit("secret: svc-secret-123-0123456789abcdefghijklmnop", `jwks: {"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}]}`),
			`seed.yaml:14: realms[0].clients[2].jwks: jwks must hold public keys only`},
		{"jwks not a set", edit("secret: svc-secret-123-0123456789abcdefghijklmnop", `jwks: [1, 2]`), `seed.yaml:14: jwks must be a JWK Set`},
		{"public client without PKCE", edit("      - id: spa                       # public: no secret\n", "      - id: spa\n        pkce_optional: true\n"),
			`seed.yaml:10: realms[0].clients[1].pkce_optional: public clients must use PKCE`},
		{"unknown ID token alg", edit("- id: svc", "- id: svc\n        id_token_signed_response_alg: HS256"),
			`seed.yaml:14: realms[0].clients[2].id_token_signed_response_alg: unknown id_token_signed_response_alg "HS256"`},
		{"short client secret", edit("secret: svc-secret-123-0123456789abcdefghijklmnop", "secret: svc-secret-123-0123456789abcd"),
			`seed.yaml:14: realms[0].clients[2].secret: client "svc": secret must have at least 32 characters`},
		{"one-character client secret", edit("secret: svc-secret-123-0123456789abcdefghijklmnop", `secret: "1"`),
			`seed.yaml:14: realms[0].clients[2].secret: client "svc": secret must have at least 32 characters`},
		{"token exchange audiences without the grant", edit("- id: svc", "- id: svc\n        token_exchange_audiences: [orders-api]"),
			`seed.yaml:14: realms[0].clients[2].token_exchange_audiences: token_exchange_audiences are for token exchange`},
		{"pushed requests without authorization_code", edit("- id: svc", "- id: svc\n        require_pushed_authorization_requests: true"),
			`seed.yaml:14: realms[0].clients[2].require_pushed_authorization_requests: require_pushed_authorization_requests is about authorization requests`},
		{"dpop setting not a bool", edit("- id: svc", "- id: svc\n        dpop_bound_access_tokens: perhaps"), `seed.yaml:14: cannot unmarshal`},
		{"secret is echoed nowhere", edit("secret: web-secret-123-0123456789abcdefghijklmnop", "secret: [web-secret-123-0123456789abcdefghijklmnop]"), `seed.yaml:5: `},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("seed.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.HasPrefix(err.Error(), tc.want) && !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %q\nwant it to contain %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "seed.yaml:") {
				t.Fatalf("error %q does not start with the file and line", err)
			}
			if strings.ContainsAny(err.Error(), "\n") {
				t.Fatalf("error %q is more than one line", err)
			}
			var se *Error
			if !errors.As(err, &se) || se.Line == 0 {
				t.Fatalf("error %q carries no line", err)
			}
			for _, secret := range []string{"web-secret-123-0123456789abcdefghijklmnop", "svc-secret-123-0123456789abcd", "alice-password-1"} {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("error %q echoes a secret", err)
				}
			}
		})
	}
}

func TestParseKeepsAClientJWKSAsJSON(t *testing.T) {
	f, err := Parse("s.yaml", []byte(`
realms:
  - name: acme
    clients:
      - id: pk
        jwks:
          keys:
            - {kty: OKP, crv: Ed25519, x: 11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo, kid: k1}
        grant_types: [client_credentials]
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(f.Realms[0].Clients[0].JWKS); !strings.Contains(got, `"kid":"k1"`) || !strings.HasPrefix(got, `{"keys":[`) {
		t.Fatalf("JWKS = %s", got)
	}
}

func TestWarningsNameForcedLongLivedTokens(t *testing.T) {
	f, err := Parse("s.yaml", []byte("realms:\n  - name: acme\n    access_token_ttl: 2h\n    allow_long_access_tokens: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	if w := f.Warnings(); len(w) != 1 || !strings.Contains(w[0], "realm acme issues access tokens for 2h0m0s") {
		t.Fatalf("Warnings() = %q", w)
	}
	if w := (&File{Realms: []Realm{{Realm: registry.Realm{Name: "x", AccessTokenTTL: registry.Duration(time.Hour)}}}}).Warnings(); len(w) != 0 {
		t.Fatalf("an hour is not long-lived: %q", w)
	}
}
