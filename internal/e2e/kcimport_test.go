package e2e

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/storage"
)

// importKeycloak runs `latchkey import keycloak` on db and returns its stdout,
// stderr and exit code.
func importKeycloak(t *testing.T, db string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(binary(t), append([]string{"import", "keycloak", "--db", db, "--data-dir", t.TempDir()}, args...)...)
	cmd.Env = []string{"LATCHKEY_MASTER_KEY=" + masterKey, "PATH=" + os.Getenv("PATH")}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

// The realm export of internal/kcimport/testdata, with the single-page app's
// origin made the test browser's stopping point.
func keycloakExport(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../kcimport/testdata/realm-export.json")
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(t.TempDir(), "realm-export.json")
	if err := os.WriteFile(name, bytes.ReplaceAll(b, []byte("http://localhost:3000"), []byte("http://127.0.0.1:9999")), 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

const spaRedirect = "http://127.0.0.1:9999/app.html"

func TestImportKeycloakRealmThenSignIn(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		export := keycloakExport(t)

		// A bad file: one line on stderr, a non-zero exit, nothing stored.
		bad := filepath.Join(t.TempDir(), "bad.json")
		os.WriteFile(bad, []byte(`{"realm": "acme", "clients": {}}`), 0o600)
		if out, errOut, code := importKeycloak(t, db, bad); code == 0 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 ||
			!strings.Contains(errOut, "bad.json: realm export: clients") {
			t.Fatalf("bad export: exit %d, stdout %q, stderr %q", code, out, errOut)
		}

		// --dry-run writes nothing.
		if out, errOut, code := importKeycloak(t, db, "--dry-run", export); code != 0 || !strings.Contains(out, "dry run: nothing written") {
			t.Fatalf("dry run: exit %d\n%s%s", code, out, errOut)
		}

		out, errOut, code := importKeycloak(t, db, export)
		if code != 0 {
			t.Fatalf("import: exit %d\n%s%s", code, out, errOut)
		}
		for _, want := range []string{
			"realm acme: 3 clients, 8 roles, 3 users (",
			": 15 created, 0 updated, 0 unchanged)",
			`  $.clients[10]: client "https://sp.acme.test/saml" is a SAML client: not imported`,
			`  $.identityProviders[0]: identity provider "google"`,
			`  $.users[2].credentials[1]: user "carol": one-time password (OTP) credential "Phone" is not imported`,
		} {
			if !strings.Contains(out, want) {
				t.Errorf("import output lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "Qm9vY2F0") || strings.Contains(errOut, "Qm9vY2F0") {
			t.Error("the import printed a client secret")
		}

		// Importing again changes nothing.
		if out, _, code := importKeycloak(t, db, export); code != 0 || !strings.Contains(out, ": 0 created, 0 updated, 15 unchanged)") {
			t.Fatalf("re-import: exit %d\n%s", code, out)
		}

		s := start(t, options{db: db, seed: "realms:\n  - name: other\n"})
		st := openStore(t, db)
		alice, err := st.GetUserByUsername(t.Context(), "acme", "alice")
		if err != nil {
			t.Fatal(err)
		}
		if alice.ID != "5b6f1e8a-3c2d-4e7f-9a1b-2c3d4e5f6a7b" || alice.GivenName != "Alice" || alice.FamilyName != "Liddell" ||
			!strings.HasPrefix(alice.PasswordHash, "$pbkdf2-sha512$i=210000,l=64$") {
			t.Fatalf("imported alice = %+v", alice)
		}
		if want := []storage.RoleRef{{Name: "user"}, {Name: "editor"}, {ClientID: "acme-spa", Name: "viewer"}}; !slices.Equal(alice.Roles, want) {
			t.Errorf("alice's roles = %+v; want %+v", alice.Roles, want)
		}
		api, err := st.GetClient(t.Context(), "acme", "acme-api")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(api.ServiceAccountRoles, []storage.RoleRef{{Name: "default-roles-acme"}, {ClientID: "acme-api", Name: "read"}}) {
			t.Errorf("acme-api service account roles = %+v", api.ServiceAccountRoles)
		}

		// alice signs in to the single-page app with her Keycloak password.
		b := newBrowser(t)
		u := s.authURL("acme-spa", "redirect_uri", spaRedirect, "scope", "openid profile email roles offline_access")
		p := b.get(u)
		p = b.do(b.loginRequest(p, u, "username", "alice", "password", "alice-Secret-42"))
		code2 := ""
		if p.location != nil {
			code2 = p.location.Query().Get("code")
		}
		if code2 == "" {
			t.Fatalf("alice's sign-in: %d %v\n%s", p.status, p.location, p.body)
		}
		r := post(t, s.tokenURL(), "", form("grant_type", "authorization_code", "code", code2, "redirect_uri", spaRedirect,
			"code_verifier", verifier, "client_id", "acme-spa"))
		if r.status != 200 || r.str("refresh_token") == "" || strings.Count(r.str("refresh_token"), ".") != 2 {
			t.Fatalf("redeem: %d %v; want tokens, the refresh token a JWT as keycloak-js wants", r.status, r.body)
		}
		if sub := claimsOf(t, r.str("id_token"))["sub"]; sub != alice.ID {
			t.Errorf("id_token sub = %v; want Keycloak's user ID %s", sub, alice.ID)
		}
		if scope := r.str("scope"); !strings.Contains(scope, "roles") || !strings.Contains(scope, "offline_access") {
			t.Errorf("granted scope = %q", scope)
		}

		// Her hash is now argon2id, and her tokens live on.
		after, err := st.GetUserByUsername(t.Context(), "acme", "alice")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(after.PasswordHash, "$argon2id$") || !after.TokensValidAfter.Equal(alice.TokensValidAfter) {
			t.Fatalf("after sign-in: hash %.20s..., stamp %v (was %v)", after.PasswordHash, after.TokensValidAfter, alice.TokensValidAfter)
		}
		if r := post(t, s.tokenURL(), "", form("grant_type", "refresh_token", "refresh_token", r.str("refresh_token"), "client_id", "acme-spa")); r.status != 200 {
			t.Fatalf("refresh after the rehash: %d %v", r.status, r.body)
		}

		// The service account: its secret imported, hashed as the seed's are.
		if r := post(t, s.tokenURL(), "acme-api:Qm9vY2F0LWFjbWUtYXBpLXNlY3JldC0wMQ", form("grant_type", "client_credentials")); r.status != 200 {
			t.Fatalf("acme-api client credentials: %d %v", r.status, r.body)
		}

		// Importing again keeps alice's new hash (and so her sessions), and says so.
		out, _, code = importKeycloak(t, db, export)
		if code != 0 || !strings.Contains(out, `$.users[0].credentials: user "alice" already has another password in Latchkey: kept`) {
			t.Fatalf("re-import after the rehash: exit %d\n%s", code, out)
		}
		if again, _ := st.GetUserByUsername(t.Context(), "acme", "alice"); again.PasswordHash != after.PasswordHash {
			t.Fatal("re-import replaced alice's rehashed password")
		}
		if r := newBrowser(t).get(u); r.status != 200 {
			t.Fatalf("login page after re-import: %d", r.status)
		}
	})
}
