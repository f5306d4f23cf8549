package main

import (
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/keys"
	"github.com/latchkey/latchkey/storage"
)

func newKeysCmd(getenv func(string) string) *cobra.Command {
	var db, dataDir, keyFile, realm string
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Show and rotate realms' signing keys",
	}
	f := cmd.PersistentFlags()
	storeFlags(f, getenv, &db, &dataDir)
	stringFlag(f, getenv, &keyFile, "master-key-file", "file holding the master key")
	f.StringVar(&realm, "realm", "", "the realm (required)")

	// open resolves the store, the key manager and the realm for a subcommand.
	open := func(cmd *cobra.Command) (storage.Store, *keys.Manager, storage.Realm, error) {
		if realm == "" {
			return nil, nil, storage.Realm{}, errors.New("--realm is required")
		}
		st, o, err := openFromFlags(cmd.Context(), db, dataDir)
		if err != nil {
			return nil, nil, storage.Realm{}, err
		}
		mk, err := config.LoadMasterKey(getenv(config.Env["master-key"]), keyFile, o.DataDir)
		if err != nil {
			st.Close()
			return nil, nil, storage.Realm{}, err
		}
		r, err := st.GetRealm(cmd.Context(), realm)
		if errors.Is(err, storage.ErrNotFound) {
			err = fmt.Errorf("realm %q not found", realm)
		}
		if err != nil {
			st.Close()
			return nil, nil, storage.Realm{}, err
		}
		return st, keys.NewManager(st, mk, keys.DefaultPolicy, time.Now), r, nil
	}

	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Publish a new signing key now; it starts signing one JWKS cache lifetime later",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, km, r, err := open(cmd)
			if err != nil {
				return err
			}
			defer st.Close()
			alg := r.SigningAlg
			if alg == "" {
				alg = keys.ES256
			}
			made, err := km.Rotate(cmd.Context(), r.Name, alg)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for _, k := range made {
				fmt.Fprintf(out, "realm %s: new %s key %s published now, signs from %s\n", r.Name, k.Alg, k.KID, k.SignFrom.Local().Format(time.RFC3339))
			}
			fmt.Fprintln(out, "Keys it replaces stop signing then and stay published until every token they signed has expired.")
			return nil
		},
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List a realm's signing keys and their publication and signing periods",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, _, r, err := open(cmd)
			if err != nil {
				return err
			}
			defer st.Close()
			ks, err := st.ListSigningKeys(cmd.Context(), r.Name)
			if err != nil {
				return err
			}
			return printKeys(cmd.OutOrStdout(), ks)
		},
	}
	cmd.AddCommand(rotate, list)
	return cmd
}

func printKeys(w io.Writer, ks []storage.SigningKey) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KID\tALG\tPUBLISHED\tSIGNS FROM\tSIGNS UNTIL\tPUBLISHED UNTIL")
	for _, k := range ks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.KID, k.Alg, stamp(k.CreatedAt), stamp(k.SignFrom), stamp(k.SignUntil), stamp(k.PublishUntil))
	}
	return tw.Flush()
}
