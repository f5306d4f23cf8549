package main

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/latchkey/latchkey/internal/admin"
	"github.com/latchkey/latchkey/internal/clientsecret"
	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/seed"
)

// Dev mode's realm, clients and user.
const (
	devRealm        = "dev"
	devClient       = "demo-web"
	devPublicClient = "demo-spa"
	devUser         = "demo"
	devRedirectURI  = "http://127.0.0.1:9999/cb"
	devCredsFile    = "dev-credentials.json"
	devAdminClient  = "latchkey-admin"
	// The client `latchkey bff --dev` signs in as, at its default address.
	devBFFClient = "demo-bff"
	devBFFURL    = "http://127.0.0.1:9090"
)

// devCredentials are generated on the first dev start and kept in the data
// directory (0600), so later starts print and seed the same ones.
type devCredentials struct {
	ClientSecret string `json:"client_secret"`
	UserPassword string `json:"user_password"`
	// The admin client of realm master, which administers every realm (issue 11).
	AdminClientID     string `json:"admin_client_id"`
	AdminClientSecret string `json:"admin_client_secret"`
	AdminTokenURL     string `json:"admin_token_url"`
	// The confidential client of `latchkey bff --dev` (issue 15), which reads it here.
	BFFClientSecret string `json:"bff_client_secret"`
}

type devSetup struct {
	creds devCredentials
	seed  *seed.File
}

func loadDevSetup(o config.Options) (*devSetup, error) {
	path := filepath.Join(o.DataDir, devCredsFile)
	var creds devCredentials
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &creds); err != nil || creds.ClientSecret == "" || creds.UserPassword == "" {
			return nil, fmt.Errorf("%s is damaged: delete it to get new demo credentials", path)
		}
	case errors.Is(err, fs.ErrNotExist):
		creds = devCredentials{ClientSecret: clientsecret.Generate(), UserPassword: rand.Text()}
	default:
		return nil, fmt.Errorf("read demo credentials: %w", err)
	}
	// A file from before the admin API lacks the admin client: add it, keep the rest.
	tokenURL := o.Issuer(admin.MasterRealm) + "/protocol/openid-connect/token"
	if creds.AdminClientID == "" || creds.AdminClientSecret == "" || creds.AdminTokenURL != tokenURL || creds.BFFClientSecret == "" || err != nil {
		if creds.AdminClientID == "" || creds.AdminClientSecret == "" {
			creds.AdminClientID, creds.AdminClientSecret = devAdminClient, clientsecret.Generate()
		}
		if creds.BFFClientSecret == "" {
			creds.BFFClientSecret = clientsecret.Generate()
		}
		creds.AdminTokenURL = tokenURL
		b, _ := json.MarshalIndent(creds, "", "  ")
		if err := os.WriteFile(path, append(b, '\n'), 0o600); err != nil {
			return nil, fmt.Errorf("write demo credentials: %w", err)
		}
	}

	// The dev realm goes through the same parser and checks as any seed file.
	yaml := fmt.Sprintf(`realms:
  - name: %s
    display_name: Latchkey dev realm
    clients:
      - id: %s
        name: Demo web app (confidential)
        secret: %q
        redirect_uris: [%s]
        post_logout_redirect_uris: [http://127.0.0.1:9999/]
        grant_types: [authorization_code, refresh_token, client_credentials]
        scopes: [openid, profile, email, offline_access]
      - id: %s
        name: Demo single-page app (public)
        redirect_uris: [%s]
        post_logout_redirect_uris: [http://127.0.0.1:9999/]
        grant_types: [authorization_code, refresh_token]
        scopes: [openid, profile, email, offline_access]
      - id: %s
        name: Demo backend-for-frontend (latchkey bff --dev)
        secret: %q
        redirect_uris: [%s/bff/callback]
        backchannel_logout_uri: %s/bff/backchannel-logout
        grant_types: [authorization_code, refresh_token]
        scopes: [openid, profile, email, offline_access]
    users:
      - username: %s
        password: %q
        email: demo@example.com
        email_verified: true
        name: Demo User
  - name: %s
    display_name: Latchkey management realm
    clients:
      - id: %s
        name: Latchkey admin (every realm)
        secret: %q
        grant_types: [client_credentials]
        scopes: [%s, %s]
`, devRealm, devClient, creds.ClientSecret, devRedirectURI, devPublicClient, devRedirectURI,
		devBFFClient, creds.BFFClientSecret, devBFFURL, devBFFURL, devUser, creds.UserPassword,
		admin.MasterRealm, creds.AdminClientID, creds.AdminClientSecret, admin.ScopeAdmin, admin.ScopeAdminRead)
	f, err := seed.Parse("dev realm", []byte(yaml))
	if err != nil {
		return nil, err
	}
	return &devSetup{creds: creds, seed: f}, nil
}

// printBanner tells the developer where the server is and how to use it. Printing
// the demo credentials is the point of dev mode; they go to stdout, never to the log.
func (d *devSetup) printBanner(w io.Writer, o config.Options) {
	issuer := o.Issuer(devRealm)
	fmt.Fprintf(w, `
Latchkey is running in dev mode (not for production).

  issuer          %s
  discovery       %s/.well-known/openid-configuration
  data            %s (SQLite unless --db says otherwise)

  client          %s   secret: %s   (confidential; redirect URI %s)
  public client   %s   (PKCE; redirect URI %s)
  bff client      %s   secret: %s   (run "latchkey bff --dev", open %s/)
  user            %s       password: %s

  admin client    %s   secret: %s
                  (realm master: administers every realm at %s/admin/)
  admin token     %s   (client_credentials, scope %s)

`, issuer, issuer, o.DataDir, devClient, d.creds.ClientSecret, devRedirectURI, devPublicClient, devRedirectURI,
		devBFFClient, d.creds.BFFClientSecret, devBFFURL, devUser, d.creds.UserPassword,
		d.creds.AdminClientID, d.creds.AdminClientSecret, o.BaseURL, d.creds.AdminTokenURL, admin.ScopeAdmin)
}
