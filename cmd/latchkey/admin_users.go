package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/spf13/cobra"
)

// userRow is what a user's table row shows.
type userRow struct {
	ID        string `json:"id"`
	Username  string `json:"username"`
	Email     string `json:"email"`
	Name      string `json:"name"`
	Disabled  bool   `json:"disabled"`
	CreatedAt string `json:"created_at"`
}

// userFields are the fields of UserUpdate: a PUT replaces them all.
type userFields struct {
	Username      string `json:"username"`
	Email         string `json:"email,omitempty"`
	EmailVerified bool   `json:"email_verified"`
	Name          string `json:"name,omitempty"`
	GivenName     string `json:"given_name,omitempty"`
	FamilyName    string `json:"family_name,omitempty"`
	Disabled      bool   `json:"disabled"`
}

// resolveUser finds the ID of the user named by arg: a username (found through
// the search) or else an ID.
func resolveUser(ctx context.Context, api *adminAPI, realm, arg string) (string, error) {
	q := url.Values{"q": {arg}}
	for {
		var p struct {
			Items []userRow `json:"items"`
			Next  string    `json:"next"`
		}
		q.Set("limit", "500")
		if _, err := api.getJSON(ctx, realmPath(realm, "users"), q, &p); err != nil {
			return "", err
		}
		for _, u := range p.Items {
			if u.Username == arg {
				return u.ID, nil
			}
		}
		if p.Next == "" || p.Next == q.Get("after") {
			return arg, nil
		}
		q.Set("after", p.Next)
	}
}

func newAdminUsersCmd(af *adminFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "users",
		Short: "Manage a realm's users, their passwords and their sessions",
		Long: `Manage a realm's users, their passwords and their sessions. USER is a username or a
user ID. Passwords are read from stdin (--password-stdin), never from a flag:

  read -rs PW && printf '%s' "$PW" | latchkey admin users set-password alice --in acme --password-stdin`,
	}
	inFlag(cmd, af)

	// withUser runs fn with the API, the realm and the ID of args[0].
	withUser := func(fn func(cmd *cobra.Command, api *adminAPI, realm, id string, args []string) error) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			realm, api, err := af.realmAPI(cmd)
			if err != nil {
				return err
			}
			id, err := resolveUser(cmd.Context(), api, realm, args[0])
			if err != nil {
				return err
			}
			return fn(cmd, api, realm, id, args)
		}
	}
	// action is a command USER that sends one request and shows the user, or says it is done.
	action := func(use, short, method, segment, doneMsg string) *cobra.Command {
		return &cobra.Command{
			Use:   use + " USER",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: withUser(func(cmd *cobra.Command, api *adminAPI, realm, id string, args []string) error {
				segments := []string{"users", id}
				if segment != "" {
					segments = append(segments, segment)
				}
				res, err := api.call(cmd.Context(), method, realmPath(realm, segments...), nil, nil, nil)
				if err != nil {
					return err
				}
				if af.output == "json" && len(res.body) > 0 {
					return printJSON(cmd.OutOrStdout(), res.body)
				}
				return af.done(cmd.OutOrStdout(), "user %s %s", args[0], doneMsg)
			}),
		}
	}

	var q string
	var limit int
	list := &cobra.Command{
		Use:   "list [--q TEXT]",
		Short: "List the realm's users, or those whose username, email or name contains --q",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			realm, api, err := af.realmAPI(cmd)
			if err != nil {
				return err
			}
			var query url.Values
			if q != "" {
				query = url.Values{"q": {q}}
			}
			p, err := api.list(cmd.Context(), realmPath(realm, "users"), query, limit)
			if err != nil {
				return err
			}
			return printList(af, cmd.OutOrStdout(), p, []string{"USERNAME", "ID", "EMAIL", "NAME", "DISABLED", "CREATED"},
				func(u userRow) []string {
					return []string{u.Username, u.ID, u.Email, u.Name, yesNo(u.Disabled), ts(u.CreatedAt)}
				})
		},
	}
	list.Flags().StringVar(&q, "q", "", "only users whose username, email or name contains this (ignoring case)")
	list.Flags().IntVar(&limit, "limit", 0, "list at most this many (0: all)")

	get := &cobra.Command{
		Use:   "get USER",
		Short: "Show a user",
		Args:  cobra.ExactArgs(1),
		RunE: withUser(func(cmd *cobra.Command, api *adminAPI, realm, id string, args []string) error {
			res, err := api.call(cmd.Context(), http.MethodGet, realmPath(realm, "users", id), nil, nil, nil)
			if err != nil {
				return err
			}
			return af.printObject(cmd.OutOrStdout(), res.body)
		}),
	}

	var nu userFields
	var passwordStdin, hashStdin bool
	create := &cobra.Command{
		Use:   "create --username NAME [--email E] [--name N] --password-stdin|--password-hash-stdin",
		Short: "Create a user with a password (or an argon2id hash from 'latchkey password hash') read from stdin",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			realm, err := af.targetRealm()
			if err != nil {
				return err
			}
			body := map[string]any{"username": nu.Username}
			if nu.Email != "" {
				body["email"] = nu.Email
			}
			if nu.Name != "" {
				body["name"] = nu.Name
			}
			if nu.GivenName != "" {
				body["given_name"] = nu.GivenName
			}
			if nu.FamilyName != "" {
				body["family_name"] = nu.FamilyName
			}
			if nu.EmailVerified {
				body["email_verified"] = true
			}
			if nu.Disabled {
				body["disabled"] = true
			}
			switch {
			case passwordStdin == hashStdin:
				return errors.New("give one of --password-stdin and --password-hash-stdin: a user needs a password")
			case passwordStdin:
				pw, err := readSecretStdin(cmd, "password")
				if err != nil {
					return err
				}
				body["password"] = pw
			case hashStdin:
				phc, err := readSecretStdin(cmd, "password hash")
				if err != nil {
					return err
				}
				body["password_hash"] = strings.TrimSpace(phc)
			}
			api, err := af.connect(cmd.Context(), cmd)
			if err != nil {
				return err
			}
			res, err := api.call(cmd.Context(), http.MethodPost, realmPath(realm, "users"), nil, body, nil)
			if err != nil {
				return err
			}
			return af.printObject(cmd.OutOrStdout(), res.body)
		},
	}
	create.Flags().StringVar(&nu.Username, "username", "", "the username (required)")
	create.Flags().StringVar(&nu.Email, "email", "", "the email address")
	create.Flags().StringVar(&nu.Name, "name", "", "the full name")
	create.Flags().StringVar(&nu.GivenName, "given-name", "", "the given (first) name")
	create.Flags().StringVar(&nu.FamilyName, "family-name", "", "the family (last) name")
	create.Flags().BoolVar(&nu.EmailVerified, "email-verified", false, "mark the email address verified")
	create.Flags().BoolVar(&nu.Disabled, "disabled", false, "create the user disabled")
	create.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from stdin")
	create.Flags().BoolVar(&hashStdin, "password-hash-stdin", false, "read an argon2id PHC string (from 'latchkey password hash') from stdin instead")
	create.MarkFlagRequired("username")

	var upd userFields
	update := &cobra.Command{
		Use:   "update USER [--username NEW] [--email E] [--name N] [--given-name G] [--family-name F] [--email-verified=BOOL]",
		Short: "Change a user's username, email or names (only the flags given)",
		Args:  cobra.ExactArgs(1),
		RunE: withUser(func(cmd *cobra.Command, api *adminAPI, realm, id string, args []string) error {
			f := cmd.Flags()
			if !f.Changed("username") && !f.Changed("email") && !f.Changed("name") && !f.Changed("email-verified") &&
				!f.Changed("given-name") && !f.Changed("family-name") {
				return errors.New("nothing to change: give --username, --email, --name, --given-name, --family-name or --email-verified")
			}
			path := realmPath(realm, "users", id)
			var cur userFields
			got, err := api.getJSON(cmd.Context(), path, nil, &cur)
			if err != nil {
				return err
			}
			if f.Changed("username") {
				cur.Username = upd.Username
			}
			if f.Changed("email") {
				cur.Email = upd.Email
			}
			if f.Changed("name") {
				cur.Name = upd.Name
			}
			if f.Changed("email-verified") {
				cur.EmailVerified = upd.EmailVerified
			}
			// given_name and family_name are kept by a PUT without them: an
			// empty one is sent as such, to clear it.
			body := map[string]any{"username": cur.Username, "email_verified": cur.EmailVerified, "disabled": cur.Disabled}
			if cur.Email != "" {
				body["email"] = cur.Email
			}
			if cur.Name != "" {
				body["name"] = cur.Name
			}
			if f.Changed("given-name") {
				body["given_name"] = upd.GivenName
			}
			if f.Changed("family-name") {
				body["family_name"] = upd.FamilyName
			}
			// If-Match: a change made by someone else between our read and write is not lost.
			var h http.Header
			if etag := got.header.Get("ETag"); etag != "" {
				h = http.Header{"If-Match": {etag}}
			}
			res, err := api.call(cmd.Context(), http.MethodPut, path, nil, body, h)
			if err != nil {
				if isStatus(err, http.StatusPreconditionFailed) {
					return fmt.Errorf("user %s changed while this update ran; run it again", args[0])
				}
				return err
			}
			return af.printObject(cmd.OutOrStdout(), res.body)
		}),
	}
	update.Flags().StringVar(&upd.Username, "username", "", "the new username")
	update.Flags().StringVar(&upd.Email, "email", "", "the new email address")
	update.Flags().StringVar(&upd.Name, "name", "", "the new full name")
	update.Flags().StringVar(&upd.GivenName, "given-name", "", "the new given (first) name")
	update.Flags().StringVar(&upd.FamilyName, "family-name", "", "the new family (last) name")
	update.Flags().BoolVar(&upd.EmailVerified, "email-verified", false, "whether the email address is verified")

	var keepSessions, pwStdin bool
	setPassword := &cobra.Command{
		Use:   "set-password USER --password-stdin [--keep-sessions]",
		Short: "Set a user's password, read from stdin; ends the user's sessions and tokens unless --keep-sessions",
		Args:  cobra.ExactArgs(1),
		RunE: withUser(func(cmd *cobra.Command, api *adminAPI, realm, id string, args []string) error {
			if !pwStdin {
				return errors.New("--password-stdin is required: a password is never taken from a flag")
			}
			pw, err := readSecretStdin(cmd, "password")
			if err != nil {
				return err
			}
			body := map[string]any{"password": pw}
			if keepSessions {
				body["keep_sessions"] = true
			}
			if _, err := api.call(cmd.Context(), http.MethodPut, realmPath(realm, "users", id, "password"), nil, body, nil); err != nil {
				return err
			}
			if keepSessions {
				return af.done(cmd.OutOrStdout(), "password of user %s set; sessions kept", args[0])
			}
			return af.done(cmd.OutOrStdout(), "password of user %s set; their sessions and tokens ended", args[0])
		}),
	}
	setPassword.Flags().BoolVar(&pwStdin, "password-stdin", false, "read the new password from stdin (required)")
	setPassword.Flags().BoolVar(&keepSessions, "keep-sessions", false, "keep the user's sessions and tokens")

	sessions := &cobra.Command{
		Use:   "sessions USER",
		Short: "List a user's browser sessions and refresh-token families (apps)",
		Args:  cobra.ExactArgs(1),
		RunE: withUser(func(cmd *cobra.Command, api *adminAPI, realm, id string, args []string) error {
			res, err := api.call(cmd.Context(), http.MethodGet, realmPath(realm, "users", id, "sessions"), nil, nil, nil)
			if err != nil {
				return err
			}
			if af.output == "json" {
				return printJSON(cmd.OutOrStdout(), res.body)
			}
			return printSessions(cmd.OutOrStdout(), res.body)
		}),
	}

	// endOne deletes one session or family of the user.
	endOne := func(use, short, kind, what string) *cobra.Command {
		return &cobra.Command{
			Use:   use + " USER " + strings.ToUpper(what),
			Short: short,
			Args:  cobra.ExactArgs(2),
			RunE: withUser(func(cmd *cobra.Command, api *adminAPI, realm, id string, args []string) error {
				if _, err := api.call(cmd.Context(), http.MethodDelete, realmPath(realm, "users", id, kind, args[1]), nil, nil, nil); err != nil {
					return err
				}
				return af.done(cmd.OutOrStdout(), "%s %s of user %s ended", what, args[1], args[0])
			}),
		}
	}

	cmd.AddCommand(list, get, create, update,
		action("delete", "Delete a user; everything they hold is revoked", http.MethodDelete, "", "deleted"),
		action("disable", "Disable a user: their sessions and tokens end, and stay ended if enabled again", http.MethodPost, "disable", "disabled"),
		action("enable", "Enable a user (their old sessions and tokens stay dead)", http.MethodPost, "enable", "enabled"),
		setPassword,
		action("unlock", "Clear a user's login locks (failed-password lockouts)", http.MethodPost, "unlock", "unlocked"),
		sessions,
		endOne("end-session", "End one browser session of a user (by its ID from 'sessions')", "sessions", "session"),
		endOne("end-family", "End one refresh-token family of a user (by its ID from 'sessions')", "families", "family"),
		action("logout", "Log a user out everywhere: every session and refresh family ends", http.MethodPost, "logout", "logged out everywhere"),
	)
	return cmd
}

// printSessions shows a user's sessions and families as two tables.
func printSessions(w io.Writer, raw []byte) error {
	var s struct {
		Sessions []struct {
			ID        string `json:"id"`
			CreatedAt string `json:"created_at"`
			LastSeen  string `json:"last_seen_at"`
			ExpiresAt string `json:"expires_at"`
			IP        string `json:"ip"`
			UserAgent string `json:"user_agent"`
		} `json:"sessions"`
		Families []struct {
			ID        string   `json:"id"`
			ClientID  string   `json:"client_id"`
			SessionID string   `json:"session_id"`
			Scopes    []string `json:"scopes"`
			CreatedAt string   `json:"created_at"`
			LastUsed  string   `json:"last_used_at"`
			IP        string   `json:"ip"`
			UserAgent string   `json:"user_agent"`
		} `json:"families"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return fmt.Errorf("the API's sessions are not the expected JSON: %v", err)
	}
	fmt.Fprintf(w, "Browser sessions (%d):\n", len(s.Sessions))
	var rows [][]string
	for _, x := range s.Sessions {
		rows = append(rows, []string{x.ID, ts(x.CreatedAt), ts(x.LastSeen), ts(x.ExpiresAt), x.IP, x.UserAgent})
	}
	if err := printTable(w, []string{"SESSION", "CREATED", "LAST SEEN", "EXPIRES", "IP", "DEVICE"}, rows); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nRefresh-token families (%d):\n", len(s.Families))
	rows = nil
	for _, x := range s.Families {
		rows = append(rows, []string{x.ID, x.ClientID, x.SessionID, strings.Join(x.Scopes, " "), ts(x.CreatedAt), ts(x.LastUsed), x.IP, x.UserAgent})
	}
	return printTable(w, []string{"FAMILY", "CLIENT", "SESSION", "SCOPES", "CREATED", "LAST USED", "IP", "DEVICE"}, rows)
}
