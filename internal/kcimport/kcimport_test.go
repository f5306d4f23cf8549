package kcimport

import (
	"bytes"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/internal/password"
)

func fixture(t testing.TB) *Result {
	t.Helper()
	f, err := os.Open("testdata/realm-export.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	e, err := Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Translate(e)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *Result) client(id string) (Client, bool) {
	for _, c := range r.Clients {
		if c.ID == id {
			return c, true
		}
	}
	return Client{}, false
}

func (r *Result) user(name string) (User, bool) {
	for _, u := range r.Users {
		if u.Username == name {
			return u, true
		}
	}
	return User{}, false
}

// The single-page app of the keycloak-js test: what that test relies on.
func TestFixturePublicClient(t *testing.T) {
	r := fixture(t)
	if r.Realm.Name != "acme" || r.Realm.DisplayName != "Acme" || r.Realm.SigningAlg != "RS256" {
		t.Errorf("realm = %+v", r.Realm)
	}
	c, ok := r.client("acme-spa")
	if !ok {
		t.Fatal("acme-spa not imported")
	}
	switch {
	case c.Confidential():
		t.Error("acme-spa is confidential; Keycloak says publicClient")
	case !slices.Equal(c.RedirectURIs, []string{"http://localhost:3000/app.html"}):
		t.Errorf("redirect URIs = %q", c.RedirectURIs)
	case !slices.Equal(c.PostLogoutRedirectURIs, []string{"http://localhost:3000/app.html"}):
		t.Errorf("post-logout redirect URIs = %q", c.PostLogoutRedirectURIs)
	case !slices.Equal(c.GrantTypes, []string{"authorization_code", "refresh_token"}):
		t.Errorf("grant types = %q", c.GrantTypes)
	case !slices.Equal(c.WebOrigins, []string{"+"}):
		t.Errorf("web origins = %q", c.WebOrigins)
	case c.RefreshTokenFormat != "jwt":
		t.Errorf("refresh token format = %q; keycloak-js decodes refresh tokens", c.RefreshTokenFormat)
	case c.PKCEOptional:
		t.Error("PKCE optional for a public client")
	}
	for _, s := range []string{"openid", "profile", "email", "roles", "offline_access"} {
		if !slices.Contains(c.Scopes, s) {
			t.Errorf("scopes %q lack %s", c.Scopes, s)
		}
	}
	if !slices.Equal(c.DefaultScopes, []string{"profile", "roles", "email"}) {
		t.Errorf("default scopes = %q", c.DefaultScopes)
	}
}

func TestFixtureConfidentialClients(t *testing.T) {
	r := fixture(t)
	api, ok := r.client("acme-api")
	if !ok {
		t.Fatal("acme-api not imported")
	}
	if api.Secret != "Qm9vY2F0LWFjbWUtYXBpLXNlY3JldC0wMQ" || !slices.Equal(api.GrantTypes, []string{"client_credentials"}) {
		t.Errorf("acme-api: grant types %q, secret kept: %v", api.GrantTypes, api.Secret != "")
	}
	if !slices.Equal(api.ServiceAccountRoles, []RoleRef{{Name: "default-roles-acme"}, {ClientID: "acme-api", Name: "read"}}) {
		t.Errorf("acme-api service account roles = %+v", api.ServiceAccountRoles)
	}
	if !slices.Contains(api.Scopes, "acme:api") || !slices.Contains(api.DefaultScopes, "acme:api") {
		t.Errorf("acme-api scopes %q / default %q lack its custom scope acme:api", api.Scopes, api.DefaultScopes)
	}
	if api.AccessTokenTTL.String() != "10m0s" {
		t.Errorf("acme-api access token TTL = %v; access.token.lifespan says 600 s", api.AccessTokenTTL)
	}
	web, ok := r.client("acme-web")
	if !ok {
		t.Fatal("acme-web not imported")
	}
	// A relative redirect URI is resolved against rootUrl; the wildcard is left out.
	if !slices.Equal(web.RedirectURIs, []string{"https://app.acme.test/callback"}) {
		t.Errorf("acme-web redirect URIs = %q", web.RedirectURIs)
	}
	// "+" is the redirect URIs, as in Keycloak.
	if !slices.Equal(web.PostLogoutRedirectURIs, []string{"https://app.acme.test/callback", "https://app.acme.test/bye"}) {
		t.Errorf("acme-web post-logout = %q", web.PostLogoutRedirectURIs)
	}
	if !web.PKCEOptional || web.BackchannelLogoutURI != "https://app.acme.test/backchannel" || !web.BackchannelLogoutSessionRequired {
		t.Errorf("acme-web: pkce optional %v, backchannel %q %v", web.PKCEOptional, web.BackchannelLogoutURI, web.BackchannelLogoutSessionRequired)
	}
	for _, id := range []string{"acme-legacy", "https://sp.acme.test/saml", "account", "realm-management", "admin-cli"} {
		if _, ok := r.client(id); ok {
			t.Errorf("client %s imported", id)
		}
	}
}

func TestFixtureRoles(t *testing.T) {
	r := fixture(t)
	var names []string
	for _, ro := range r.Roles {
		names = append(names, ro.ClientID+":"+ro.Name)
	}
	want := []string{":offline_access", ":uma_authorization", ":default-roles-acme", ":user", ":editor", "acme-api:read", "acme-api:write", "acme-spa:viewer"}
	if !slices.Equal(names, want) {
		t.Errorf("roles = %q; want %q", names, want)
	}
	for _, ro := range r.Roles {
		if ro.Name == "editor" && !slices.Equal(ro.Composites, []RoleRef{{Name: "user"}, {ClientID: "acme-api", Name: "read"}}) {
			t.Errorf("editor composites = %+v", ro.Composites)
		}
	}
}

func TestFixtureUsers(t *testing.T) {
	r := fixture(t)
	if len(r.Users) != 3 {
		t.Errorf("%d users; want alice, bob and carol (not the service account)", len(r.Users))
	}
	for _, tc := range []struct {
		name, password, scheme string
		roles                  []RoleRef
	}{
		{"alice", "alice-Secret-42", "$pbkdf2-sha512$i=210000,l=64$", []RoleRef{{Name: "user"}, {Name: "editor"}, {ClientID: "acme-spa", Name: "viewer"}}},
		// bob's group /staff/writers: its own role and its parent /staff's.
		{"bob", "bob-Secret-42", "$pbkdf2-sha256$i=27500,l=32$", []RoleRef{{Name: "default-roles-acme"}, {Name: "user"}, {ClientID: "acme-api", Name: "write"}}},
		{"carol", "carol-Secret-42", "$argon2id$v=19$m=7168,t=5,p=1$", []RoleRef{{Name: "default-roles-acme"}, {Name: "user"}, {ClientID: "acme-api", Name: "read"}}},
	} {
		u, ok := r.user(tc.name)
		if !ok {
			t.Errorf("%s not imported", tc.name)
			continue
		}
		if !strings.HasPrefix(u.PasswordHash, tc.scheme) {
			t.Errorf("%s hash = %q; want %s...", tc.name, u.PasswordHash, tc.scheme)
		}
		for pw, want := range map[string]bool{tc.password: true, tc.password + "!": false} {
			if ok, err := password.Verify(pw, u.PasswordHash); ok != want || err != nil {
				t.Errorf("%s: Verify(%q) = %v, %v; want %v", tc.name, pw, ok, err, want)
			}
		}
		if !slices.Equal(u.Roles, tc.roles) {
			t.Errorf("%s roles = %+v; want %+v", tc.name, u.Roles, tc.roles)
		}
	}
	alice, _ := r.user("alice")
	if alice.ID != "5b6f1e8a-3c2d-4e7f-9a1b-2c3d4e5f6a7b" || alice.Email != "alice@example.com" || !alice.EmailVerified ||
		alice.GivenName != "Alice" || alice.FamilyName != "Liddell" || alice.Name != "Alice Liddell" {
		t.Errorf("alice = %+v", alice)
	}
}

// Everything left out is listed, one line each, with the JSON path it is at.
func TestFixtureProblemsNameEverythingLeftOut(t *testing.T) {
	r := fixture(t)
	var lines []string
	for _, p := range r.Problems {
		lines = append(lines, p.String())
	}
	all := strings.Join(lines, "\n")
	for _, want := range []string{
		`$.clients[10]: client "https://sp.acme.test/saml" is a SAML client`,
		`$.identityProviders[0]: identity provider "google"`,
		`$.users[2].credentials[1]: user "carol": one-time password (OTP) credential`,
		`$.users[2].federatedIdentities[0]:`,
		`$.users[1].requiredActions[0]: user "bob": required action VERIFY_EMAIL`,
		`$.clients[8].redirectUris[1]: client "acme-web": wildcard redirect URI "https://app.acme.test/*"`,
		`$.clients[8].directAccessGrantsEnabled:`,
		`$.clients[8].protocolMappers[0]: client "acme-web": protocol mapper "department" (oidc-usermodel-attribute-mapper)`,
		`$.clients[9].secret: client "acme-legacy": its secret has 11 characters`,
		`$.roles.client["acme-legacy"]:`,
		`$.roles.realm[2].composites.client.account:`,
		`$.clientScopes[13].protocolMappers[0]: protocol mapper "acme-api audience" (oidc-audience-mapper)`,
		`$.components["org.keycloak.keys.KeyProvider"]: signing keys are not imported`,
		`$.groups: 2 groups are not kept`,
		`client scope "address" is not offered`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no problem line %q in:\n%s", want, all)
		}
	}
	if strings.Contains(all, "tooShort123") || strings.Contains(all, "Qm9vY2F0") || strings.Contains(all, "JBSWY3DP") {
		t.Error("a secret is in the problem lines")
	}
	if strings.Count(all, `client scope "address"`) != 1 {
		t.Error("a built-in scope's line is repeated for each client")
	}
}

func TestPHC(t *testing.T) {
	pbkdf2 := func(alg, data string) CredentialRep {
		return CredentialRep{Type: "password",
			SecretData:     `{"value":"mfP5aeQPN4o1ANUYtqULUmFePe6YKqH2/LJdetQL5lCGSjRuiZQBp5lHM82Ogf56JxDv/lFIZBrHjhTQv9dRJg==","salt":"MDEyMzQ1Njc4OWFiY2RlZg==","additionalParameters":{}}`,
			CredentialData: `{"hashIterations":1000,"algorithm":"` + alg + `","additionalParameters":{` + data + `}}`}
	}
	argon := func(params string) CredentialRep {
		return CredentialRep{Type: "password",
			SecretData:     `{"value":"/jn63YCMs8iqcemhrADYY74VS0QzwFrOmvQshm6hx+I=","salt":"a2V5Y2xvYWstc2FsdC0xNg==","additionalParameters":{}}`,
			CredentialData: `{"hashIterations":5,"algorithm":"argon2","additionalParameters":{` + params + `}}`}
	}
	const good = `"hashLength":["32"],"memory":["7168"],"type":["id"],"version":["1.3"],"parallelism":["1"]`
	for _, tc := range []struct {
		name string
		cr   CredentialRep
		want string // the PHC string, or the start of the error
		pw   string
	}{
		// An older Keycloak's pbkdf2-sha256 hash: 512 bits, which l says.
		{"pbkdf2-sha256 512 bits", pbkdf2("pbkdf2-sha256", ""), "$pbkdf2-sha256$i=1000,l=64$MDEyMzQ1Njc4OWFiY2RlZg$mfP5aeQPN4o1ANUYtqULUmFePe6YKqH2/LJdetQL5lCGSjRuiZQBp5lHM82Ogf56JxDv/lFIZBrHjhTQv9dRJg", "dave-Secret-42"},
		{"flat (Keycloak < 12)", CredentialRep{Type: "password", Algorithm: "pbkdf2-sha256", HashIterations: 1000,
			HashedSaltedValue: "mfP5aeQPN4o1ANUYtqULUmFePe6YKqH2/LJdetQL5lCGSjRuiZQBp5lHM82Ogf56JxDv/lFIZBrHjhTQv9dRJg==", Salt: "MDEyMzQ1Njc4OWFiY2RlZg=="},
			"$pbkdf2-sha256$i=1000,l=64$MDEyMzQ1Njc4OWFiY2RlZg$mfP5aeQPN4o1ANUYtqULUmFePe6YKqH2/LJdetQL5lCGSjRuiZQBp5lHM82Ogf56JxDv/lFIZBrHjhTQv9dRJg", "dave-Secret-42"},
		{"argon2id", argon(good), "$argon2id$v=19$m=7168,t=5,p=1$a2V5Y2xvYWstc2FsdC0xNg$/jn63YCMs8iqcemhrADYY74VS0QzwFrOmvQshm6hx+I", "carol-Secret-42"},
		{"argon2d", argon(strings.Replace(good, `["id"]`, `["d"]`, 1)), `argon2 type "d" is not offered`, ""},
		{"argon2 1.0", argon(strings.Replace(good, `["1.3"]`, `["1.0"]`, 1)), `argon2 version "1.0" is not offered`, ""},
		{"argon2 length", argon(strings.Replace(good, `["32"]`, `["64"]`, 1)), "argon2 hashLength 64 is not the hash's length 32", ""},
		{"pbkdf2 sha1", pbkdf2("pbkdf2", ""), `algorithm "pbkdf2" is not offered`, ""},
		{"bcrypt", pbkdf2("bcrypt", ""), `algorithm "bcrypt" is not offered`, ""},
		{"secretData", CredentialRep{Type: "password", SecretData: "{", CredentialData: "{}"}, "secretData is not JSON", ""},
	} {
		got, err := PHC(tc.cr)
		switch {
		case tc.pw == "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)):
			t.Errorf("%s: PHC = %q, %v; want error %q", tc.name, got, err, tc.want)
		case tc.pw != "" && (err != nil || got != tc.want):
			t.Errorf("%s: PHC = %q, %v; want %q", tc.name, got, err, tc.want)
		case tc.pw != "":
			if ok, err := password.Verify(tc.pw, got); !ok || err != nil {
				t.Errorf("%s: %q does not verify %q: %v", tc.name, got, tc.pw, err)
			}
		}
	}
}

func TestParseRefuses(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"empty", "", "realm export is empty"},
		{"not JSON", "realm: acme", "realm export is not JSON"},
		{"two values", `{"realm":"a"} {"realm":"b"}`, "more than one JSON value"},
		{"no realm", `{"users":[]}`, `no "realm" name`},
		{"wrong type", `{"realm":"a","clients":{}}`, "realm export: clients: want []kcimport.ClientRep"},
		{"too large", `{"realm":"acme","displayName":"` + strings.Repeat("x", 200) + `"}`, "larger than 100 bytes"},
	} {
		_, err := parse(strings.NewReader(tc.in), 100)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v; want %q", tc.name, err, tc.want)
		}
	}
}

func TestTranslateRefusesABadRealmName(t *testing.T) {
	if _, err := Translate(&Export{Realm: "Acme Corp"}); err == nil || !strings.Contains(err.Error(), `realm "Acme Corp" cannot be imported`) {
		t.Errorf("err = %v", err)
	}
}

func TestDuplicateEmailsKeepTheFirst(t *testing.T) {
	r, err := Translate(&Export{Realm: "acme", Users: []UserRep{
		{Username: "a", Email: "same@example.com"}, {Username: "b", Email: "Same@example.com"}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Users) != 2 || r.Users[0].Email != "same@example.com" || r.Users[1].Email != "" {
		t.Errorf("users = %+v", r.Users)
	}
	if !slices.ContainsFunc(r.Problems, func(p Problem) bool { return p.Path == "$.users[1].email" }) {
		t.Errorf("problems = %v", r.Problems)
	}
}

func FuzzTranslate(f *testing.F) {
	// Small seeds: the fuzzer minimises every new input it finds, which takes
	// long on one the size of the fixture.
	f.Add([]byte(`{"realm":"acme","roles":{"realm":[{"name":"user"},{"name":"editor","composites":{"realm":["user"],"client":{"spa":["viewer"],"account":["view-profile"]}}}],"client":{"spa":[{"name":"viewer"}]}}}`))
	f.Add([]byte(`{"realm":"acme","clients":[{"clientId":"spa","publicClient":true,"redirectUris":["/cb","https://a/*"],"rootUrl":"https://a","webOrigins":["+","*"],"attributes":{"post.logout.redirect.uris":"+##https://a/bye"}}]}`))
	f.Add([]byte(`{"realm":"acme","clients":[{"clientId":"api","secret":"0123456789abcdef0123456789abcdef","serviceAccountsEnabled":true,"standardFlowEnabled":false}],"users":[{"username":"service-account-api","serviceAccountClientId":"api","realmRoles":["x"]}]}`))
	f.Add([]byte(`{"realm":"acme","groups":[{"name":"g","realmRoles":["user"],"subGroups":[{"name":"h","clientRoles":{"spa":["viewer"]}}]}],"users":[{"username":"u","groups":["/g/h"],"credentials":[{"type":"password","secretData":"{\"value\":\"mfP5aeQPN4o1ANUYtqULUmFePe6YKqH2/LJdetQL5lA=\",\"salt\":\"MDEy\"}","credentialData":"{\"hashIterations\":1000,\"algorithm\":\"pbkdf2-sha256\"}"},{"type":"otp"}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := parse(bytes.NewReader(data), 1<<20)
		if err != nil {
			return
		}
		r, err := Translate(e)
		if err != nil {
			return
		}
		for _, p := range r.Problems {
			if !strings.HasPrefix(p.Path, "$") || strings.ContainsAny(p.String(), "\n\r") {
				t.Fatalf("problem %q", p)
			}
		}
		for _, u := range r.Users {
			if u.PasswordHash != "" && password.CheckImported(u.PasswordHash) != nil {
				t.Fatalf("user %q has a hash password.CheckImported refuses", u.Username)
			}
		}
	})
}

func TestDuplicatesAreListedNotImported(t *testing.T) {
	r, err := Translate(&Export{Realm: "acme",
		Roles: RolesRep{Realm: []RoleRep{{Name: "user"}, {Name: "user"}}},
		Clients: []ClientRep{
			{ClientID: "spa", PublicClient: true, RedirectURIs: []string{"https://a.test/cb"}},
			{ClientID: "spa", PublicClient: true, RedirectURIs: []string{"https://b.test/cb"}},
		},
		Users: []UserRep{{Username: "Bob"}, {Username: "bob"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Roles) != 1 || len(r.Clients) != 1 || len(r.Users) != 1 || r.Clients[0].RedirectURIs[0] != "https://a.test/cb" {
		t.Errorf("roles %d, clients %+v, users %d; want one each, the first", len(r.Roles), r.Clients, len(r.Users))
	}
	var paths []string
	for _, p := range r.Problems {
		paths = append(paths, p.Path)
	}
	for _, want := range []string{"$.roles.realm[1]", "$.clients[1]", "$.users[1]"} {
		if !slices.Contains(paths, want) {
			t.Errorf("no problem at %s in %q", want, paths)
		}
	}
}

// Latchkey's role names are those of client IDs: a Keycloak role named
// otherwise is listed, and so is every mapping to it.
func TestRoleNamesLatchkeyCannotKeep(t *testing.T) {
	r, err := Translate(&Export{Realm: "acme",
		Roles: RolesRep{Realm: []RoleRep{{Name: "Project Manager"}, {Name: "user"}}},
		Users: []UserRep{{Username: "bob", RealmRoles: []string{"Project Manager", "user"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Roles) != 1 || !slices.Equal(r.Users[0].Roles, []RoleRef{{Name: "user"}}) {
		t.Errorf("roles %+v, bob's %+v", r.Roles, r.Users[0].Roles)
	}
	var lines []string
	for _, p := range r.Problems {
		lines = append(lines, p.String())
	}
	all := strings.Join(lines, "\n")
	if !strings.Contains(all, `$.roles.realm[0]: role name "Project Manager": must be`) ||
		!strings.Contains(all, `$.users[0].realmRoles[0]: user "bob": unknown realm role "Project Manager" not kept`) {
		t.Errorf("problems:\n%s", all)
	}
}

// A client whose redirect URIs are all wildcards keeps its roles: confidential,
// it is imported disabled; public, it cannot be, and both are listed.
func TestWildcardOnlyClients(t *testing.T) {
	r, err := Translate(&Export{Realm: "acme",
		Clients: []ClientRep{
			{ClientID: "web", Secret: "0123456789abcdef0123456789abcdef", RedirectURIs: []string{"https://a.test/*"}},
			{ClientID: "spa", PublicClient: true, RedirectURIs: []string{"*"}},
		},
		Roles: RolesRep{Client: map[string][]RoleRep{"web": {{Name: "admin"}}, "spa": {{Name: "viewer"}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	web, ok := r.client("web")
	if !ok || !web.Disabled || !slices.Equal(web.GrantTypes, []string{"client_credentials"}) || len(r.Roles) != 1 {
		t.Errorf("web = %+v (imported %v), roles %+v", web, ok, r.Roles)
	}
	if _, ok := r.client("spa"); ok {
		t.Error("spa imported without a redirect URI")
	}
	var lines []string
	for _, p := range r.Problems {
		lines = append(lines, p.String())
	}
	all := strings.Join(lines, "\n")
	for _, want := range []string{
		`$.clients[0].redirectUris[0]: client "web": wildcard redirect URI "https://a.test/*" is not imported`,
		`$.clients[0].redirectUris: client "web": no exact redirect URI`,
		`$.clients[0]: client "web" has no flow Latchkey can offer`,
		`$.clients[1]: client "spa" has no flow Latchkey offers and no credentials: not imported`,
		`$.roles.client.spa: the 1 roles of client "spa" are not imported`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no line %q in:\n%s", want, all)
		}
	}
}

// A hash that would make each sign-in burn the CPU is refused at import, and
// the user listed: they are imported without a password.
func TestCostlyHashIsListed(t *testing.T) {
	r, err := Translate(&Export{Realm: "acme", Users: []UserRep{{Username: "mallory", Credentials: []CredentialRep{{Type: "password",
		SecretData:     `{"value":"mfP5aeQPN4o1ANUYtqULUmFePe6YKqH2/LJdetQL5lA=","salt":"MDEyMzQ1Njc4OWFiY2RlZg=="}`,
		CredentialData: `{"hashIterations":100000000,"algorithm":"pbkdf2-sha256"}`}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Users) != 1 || r.Users[0].PasswordHash != "" {
		t.Fatalf("users = %+v; want mallory without a password", r.Users)
	}
	if len(r.Problems) != 1 || r.Problems[0].Path != "$.users[0].credentials[0]" ||
		!strings.Contains(r.Problems[0].Msg, "password not imported: password: hash costlier than a sign-in can afford: 100000000 iterations") {
		t.Errorf("problems = %v", r.Problems)
	}
}

// Keycloak's switches for the device grant, token exchange, DPoP and PAR become
// the same settings here, so such clients move over working; CIBA is listed.
func TestIssue14ClientAttributes(t *testing.T) {
	export := `{"realm":"acme","clients":[
	 {"clientId":"tv","publicClient":true,"standardFlowEnabled":false,"attributes":{"oauth2.device.authorization.grant.enabled":"true","dpop.bound.access.tokens":"true"}},
	 {"clientId":"gw","secret":"0123456789abcdef0123456789abcdef","redirectUris":["https://gw.acme.test/cb"],"attributes":{"standard.token.exchange.enabled":"true","require.pushed.authorization.requests":"true","oidc.ciba.grant.enabled":"true"}},
	 {"clientId":"spa","publicClient":true,"redirectUris":["https://spa.acme.test/cb"],"attributes":{"standard.token.exchange.enabled":"true"}}]}`
	e, err := Parse(strings.NewReader(export))
	if err != nil {
		t.Fatal(err)
	}
	r, err := Translate(e)
	if err != nil {
		t.Fatal(err)
	}
	tv, ok := r.client("tv")
	if !ok || !slices.Equal(tv.GrantTypes, []string{"urn:ietf:params:oauth:grant-type:device_code", "refresh_token"}) || !tv.DPoPBoundAccessTokens {
		t.Errorf("tv imported %v: grant types %q, dpop %v", ok, tv.GrantTypes, tv.DPoPBoundAccessTokens)
	}
	gw, ok := r.client("gw")
	if !ok || !slices.Contains(gw.GrantTypes, "urn:ietf:params:oauth:grant-type:token-exchange") || !gw.RequirePushedAuthorizationRequests {
		t.Errorf("gw imported %v: grant types %q, par %v", ok, gw.GrantTypes, gw.RequirePushedAuthorizationRequests)
	}
	spa, ok := r.client("spa")
	if !ok || slices.Contains(spa.GrantTypes, "urn:ietf:params:oauth:grant-type:token-exchange") {
		t.Errorf("spa imported %v: grant types %q", ok, spa.GrantTypes)
	}
	var all []string
	for _, p := range r.Problems {
		all = append(all, p.String())
	}
	for _, want := range []string{
		`$.clients[1].attributes["oidc.ciba.grant.enabled"]: client "gw": CIBA is not offered`,
		`$.clients[1].attributes["standard.token.exchange.enabled"]: client "gw": token exchange imported without audiences`,
		`$.clients[2].attributes["standard.token.exchange.enabled"]: client "spa": token exchange is not offered to public clients`,
	} {
		if !slices.ContainsFunc(all, func(l string) bool { return strings.HasPrefix(l, want) }) {
			t.Errorf("no problem line %q in:\n%s", want, strings.Join(all, "\n"))
		}
	}
}
