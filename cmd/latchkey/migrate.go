package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/latchkey/latchkey/internal/config"
)

func newMigrateCmd(getenv func(string) string) *cobra.Command {
	var db, dataDir string
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply database migrations and exit (serve also applies them at start)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, o, err := openFromFlags(cmd.Context(), db, dataDir)
			if err != nil {
				return err
			}
			defer st.Close()
			if err := st.Ready(cmd.Context()); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s database %s is at the current schema\n", o.Backend, displayDB(o))
			return err
		},
	}
	storeFlags(cmd.Flags(), getenv, &db, &dataDir)
	return cmd
}

// displayDB names the database without any password in it.
func displayDB(o config.Options) string {
	return oneLine(o.DB)
}
