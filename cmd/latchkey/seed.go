package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/latchkey/latchkey/internal/seed"
)

func newSeedCmd(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "seed",
		Short: "Work with seed files",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "check FILE",
		Short: "Validate a seed file without starting (or touching any database)",
		Long: `Validate a seed file exactly as serve --seed would, and say what it holds.
Exits non-zero with the first error (file:line: field: message) if it is not valid.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := seed.Load(args[0])
			if err != nil {
				return err
			}
			var clients, users, roles int
			for _, r := range f.Realms {
				clients += len(r.Clients)
				users += len(r.Users)
				roles += len(r.Roles)
				for _, c := range r.Clients {
					roles += len(c.Roles)
				}
			}
			for _, w := range f.Warnings() {
				if _, err := fmt.Fprintf(stdout, "warning: %s\n", w); err != nil {
					return err
				}
			}
			_, err = fmt.Fprintf(stdout, "%s: valid: %d realms, %d clients, %d users, %d roles\n", args[0], len(f.Realms), clients, users, roles)
			return err
		},
	})
	return cmd
}
