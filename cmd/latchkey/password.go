package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/latchkey/latchkey/internal/password"
)

func newPasswordCmd(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "password",
		Short: "Work with user passwords",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "hash",
		Short: "Hash a password read from standard input, for a seed file's password_hash",
		Long: `Read one line from standard input (the password; never an argument, so it stays
out of shell history and process lists) and print its argon2id hash in PHC form,
at Latchkey's parameters, for a seed file's password_hash.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
			if err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("read the password: %w", err)
			}
			pw := strings.TrimRight(line, "\r\n")
			if len(pw) < password.MinLen {
				return fmt.Errorf("the password must have at least %d characters (read from standard input)", password.MinLen)
			}
			phc, err := password.Hash(pw, password.Default)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(stdout, phc)
			return err
		},
	})
	return cmd
}
