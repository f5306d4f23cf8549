package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/latchkey/latchkey/internal/clientsecret"
	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/kcimport"
)

// newImportCmd is `latchkey import`: realms from other servers, offline, into the
// store, as migrate reaches it.
func newImportCmd(getenv func(string) string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "import",
		Short: "Import realms from another server's export",
	}
	cmd.AddCommand(newImportKeycloakCmd(getenv))
	return cmd
}

func newImportKeycloakCmd(getenv func(string) string) *cobra.Command {
	var db, dataDir, keyFile string
	var dryRun, replacePasswords bool
	cmd := &cobra.Command{
		Use:   "keycloak REALM-EXPORT.json",
		Short: "Import a Keycloak realm export: realm, clients, roles and users with their passwords",
		Long: `Import a Keycloak realm export (kc.sh export --realm NAME --file FILE --users
realm_file, or the admin console's realm export) into the store, in one
transaction, with direct access to the store as migrate has: the realm, its
OpenID Connect clients (redirect URIs, web origins, secrets, flows, post-logout
redirect URIs), realm and client roles with their composites, users with their
password hashes as they are (pbkdf2-sha256, pbkdf2-sha512, argon2: rehashed with
argon2id at each user's next sign-in), their role mappings (groups' roles given
directly) and service accounts' roles.

Everything that is not imported, or not as it was, is listed, one line each
with its JSON path in the export. Importing the same export again changes
nothing. A user already stored keeps their password unless --replace-passwords.
With --dry-run the export is only read and checked: nothing is opened or written.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			out := cmd.OutOrStdout()
			res, err := readExport(args[0])
			if err != nil {
				return err
			}
			if dryRun {
				printImport(out, res, nil, "dry run: nothing written")
				return nil
			}
			st, o, err := openFromFlags(ctx, db, dataDir)
			if err != nil {
				return err
			}
			defer st.Close()
			if err := st.Ready(ctx); err != nil {
				return err
			}
			mk, err := config.LoadMasterKey(getenv(config.Env["master-key"]), keyFile, o.DataDir)
			if err != nil {
				return err
			}
			seed, kept, err := res.Seed(ctx, kcimport.SeedOptions{Secrets: clientsecret.NewHasher(mk), Now: time.Now(),
				Lookup: st.GetUserByUsername, ReplacePasswords: replacePasswords})
			if err != nil {
				return err
			}
			applied, err := st.ApplySeed(ctx, seed)
			if err != nil {
				return fmt.Errorf("import realm %s: %w", res.Realm.Name, err)
			}
			printImport(out, res, kept, fmt.Sprintf("%s database %s: %d created, %d updated, %d unchanged",
				o.Backend, displayDB(o), applied.Created, applied.Updated, applied.Unchanged))
			return nil
		},
	}
	f := cmd.Flags()
	storeFlags(f, getenv, &db, &dataDir)
	stringFlag(f, getenv, &keyFile, "master-key-file", "file holding the master key (client secrets are hashed under it)")
	f.BoolVar(&dryRun, "dry-run", false, "read and check the export, print what would be imported and what not; touch no store")
	f.BoolVar(&replacePasswords, "replace-passwords", false, "give users already stored the export's password hash (ends their sessions and tokens)")
	return cmd
}

// readExport reads and translates the export, with errors on one line naming the file.
func readExport(name string) (*kcimport.Result, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	e, err := kcimport.Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	res, err := kcimport.Translate(e)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return res, nil
}

// printImport says what the import holds, then every problem, one a line.
func printImport(w io.Writer, res *kcimport.Result, extra []kcimport.Problem, outcome string) {
	fmt.Fprintf(w, "realm %s: %d clients, %d roles, %d users (%s)\n", res.Realm.Name, len(res.Clients), len(res.Roles), len(res.Users), outcome)
	problems := append(append([]kcimport.Problem(nil), res.Problems...), extra...)
	if len(problems) == 0 {
		fmt.Fprintln(w, "everything was imported")
		return
	}
	fmt.Fprintf(w, "not imported, or not as it was (%d):\n", len(problems))
	for _, p := range problems {
		fmt.Fprintf(w, "  %s\n", p)
	}
}
