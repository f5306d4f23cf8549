package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/latchkey/latchkey/internal/admin"
	"github.com/latchkey/latchkey/internal/clientsecret"
	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/registry"
	"github.com/latchkey/latchkey/storage"
)

// newAdminBootstrapCmd is the one-time, offline start of a production
// installation's administration: it makes realm master (if missing) and an admin
// client in it, whose client-credentials tokens administer every realm through the
// admin API. There is no static admin password anywhere: this client's secret,
// printed once, is the way in.
func newAdminBootstrapCmd(getenv func(string) string) *cobra.Command {
	var db, dataDir, keyFile, name, baseURL string
	cmd := &cobra.Command{
		Use:   "bootstrap",
		Short: "Create realm master and an admin client in it (once, with direct access to the store)",
		Long: `Create realm master (if it does not exist) and an admin client in it, holding the
scopes latchkey:admin and latchkey:admin:read, and print its client ID, its secret
(shown this once: keep it in a secret manager) and the token URL its
client-credentials tokens come from. Refuses if the client exists already.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			st, o, err := openFromFlags(ctx, db, dataDir)
			if err != nil {
				return err
			}
			defer st.Close()
			mk, err := config.LoadMasterKey(getenv(config.Env["master-key"]), keyFile, o.DataDir)
			if err != nil {
				return err
			}
			now := time.Now().UTC().Truncate(time.Microsecond)
			by := map[string]string{"by": "bootstrap"}
			realm := registry.Realm{Name: admin.MasterRealm, DisplayName: "Latchkey management realm"}
			if err := registry.CheckRealm(&realm); err != nil {
				return err
			}
			err = st.CreateRealm(ctx, realm.StoredRealm(now), storage.AuditEvent{Time: now, Type: "admin.realm.created", Realm: admin.MasterRealm, Details: by})
			if err != nil && !errors.Is(err, storage.ErrConflict) {
				return err
			}
			secret := clientsecret.Generate()
			cl := registry.Client{ID: name, Name: "Latchkey admin (every realm)", Secret: secret,
				GrantTypes: []string{"client_credentials"}, Scopes: []string{admin.ScopeAdmin, admin.ScopeAdminRead}}
			if err := registry.CheckClient(&cl); err != nil {
				return fmt.Errorf("--name: %w", err)
			}
			stored := cl.StoredClient(admin.MasterRealm, clientsecret.NewHasher(mk).Hash(admin.MasterRealm, name, secret), now)
			err = st.CreateClient(ctx, stored, storage.AuditEvent{Time: now, Type: "admin.client.created", Realm: admin.MasterRealm, ClientID: name, Details: by})
			if errors.Is(err, storage.ErrConflict) {
				return fmt.Errorf("admin client %q already exists in realm %s: rotate its secret through the admin API, or pick another --name", name, admin.MasterRealm)
			}
			if err != nil {
				return err
			}
			tokenURL := strings.TrimSuffix(baseURL, "/") + "/realms/" + admin.MasterRealm + "/protocol/openid-connect/token"
			fmt.Fprintf(cmd.OutOrStdout(), "admin_client_id      %s\nadmin_client_secret  %s\nadmin_token_url      %s\n\nThe secret is shown this once. Get a token with the client_credentials grant, scope %s (or %s to read only).\n",
				name, secret, tokenURL, admin.ScopeAdmin, admin.ScopeAdminRead)
			return nil
		},
	}
	f := cmd.Flags()
	storeFlags(f, getenv, &db, &dataDir)
	stringFlag(f, getenv, &keyFile, "master-key-file", "file holding the master key")
	stringFlag(f, getenv, &baseURL, "base-url", "public URL of the server, for the token URL printed")
	f.StringVar(&name, "name", "latchkey-admin", "the admin client's ID")
	return cmd
}
