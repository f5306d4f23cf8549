package main

import (
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/latchkey/latchkey/internal/token"
	"github.com/latchkey/latchkey/storage"
)

func newSessionsCmd(getenv func(string) string) *cobra.Command {
	var db, dataDir, realm, username string
	cmd := &cobra.Command{
		Use:   "sessions",
		Short: "Show and end a user's sessions (refresh-token families and browser sessions)",
	}
	f := cmd.PersistentFlags()
	storeFlags(f, getenv, &db, &dataDir)
	f.StringVar(&realm, "realm", "", "the realm (required)")
	f.StringVar(&username, "user", "", "the user's username (required)")

	// open resolves the store and the user for a subcommand.
	open := func(cmd *cobra.Command) (storage.Store, storage.User, error) {
		if realm == "" || username == "" {
			return nil, storage.User{}, errors.New("--realm and --user are required")
		}
		st, _, err := openFromFlags(cmd.Context(), db, dataDir)
		if err != nil {
			return nil, storage.User{}, err
		}
		u, err := st.GetUserByUsername(cmd.Context(), realm, username)
		if errors.Is(err, storage.ErrNotFound) {
			err = fmt.Errorf("no user %q in realm %q", username, realm)
		}
		if err != nil {
			st.Close()
			return nil, storage.User{}, err
		}
		return st, u, nil
	}

	list := &cobra.Command{
		Use:   "list",
		Short: "List the user's live sessions and apps",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, u, err := open(cmd)
			if err != nil {
				return err
			}
			defer st.Close()
			now := time.Now()
			families, err := st.ListUserFamilies(cmd.Context(), realm, u.ID, now)
			if err != nil {
				return err
			}
			sessions, err := st.ListUserSessions(cmd.Context(), realm, u.ID, now)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "FAMILY\tCLIENT\tCREATED\tLAST USED\tEXPIRES\tIP\tUSER AGENT")
			for _, f := range families {
				expires := f.IdleExpiresAt
				if f.AbsoluteExpiresAt.Before(expires) {
					expires = f.AbsoluteExpiresAt
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.ID, f.ClientID, stamp(f.CreatedAt), stamp(f.LastUsedAt), stamp(expires), f.IP, f.UserAgent)
			}
			fmt.Fprintln(tw, "\nBROWSER SESSION\tSIGNED IN\tLAST SEEN\tEXPIRES\tIP\tUSER AGENT")
			for _, s := range sessions {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, stamp(s.AuthTime), stamp(s.LastSeenAt), stamp(s.IdleExpiresAt), s.IP, s.UserAgent)
			}
			return tw.Flush()
		},
	}

	var family string
	var all bool
	revoke := &cobra.Command{
		Use:   "revoke",
		Short: "End one app session (--family ID) or all of the user's sessions (--all: log out everywhere)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if (family == "") == !all {
				return errors.New("give exactly one of --family ID and --all")
			}
			st, u, err := open(cmd)
			if err != nil {
				return err
			}
			defer st.Close()
			from := token.Caller{UserAgent: "latchkey sessions revoke"}
			if all {
				if err := token.LogoutEverywhere(cmd.Context(), st, realm, u.ID, time.Now(), from); err != nil {
					return err
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s is signed out everywhere: every session, app and token issued until now is ended\n", u.Username)
				return err
			}
			if err := token.EndFamily(cmd.Context(), st, realm, u.ID, family, time.Now(), from); err != nil {
				if errors.Is(err, token.ErrNotYours) {
					return fmt.Errorf("%s has no session %q", u.Username, family)
				}
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "session %s of %s ended\n", family, u.Username)
			return err
		},
	}
	revoke.Flags().StringVar(&family, "family", "", "the family (app session) to end, as sessions list shows it")
	revoke.Flags().BoolVar(&all, "all", false, "log the user out everywhere")
	cmd.AddCommand(list, revoke)
	return cmd
}
