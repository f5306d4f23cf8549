package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// maxSecretGrace is the API's longest grace for a rotated-out secret.
const maxSecretGrace = 168 * time.Hour

// clientRow is what a client's table row shows.
type clientRow struct {
	ID           string   `json:"id"`
	Name         string   `json:"name"`
	Confidential bool     `json:"confidential"`
	Disabled     bool     `json:"disabled"`
	GrantTypes   []string `json:"grant_types"`
	Format       string   `json:"access_token_format"`
}

func newAdminClientsCmd(af *adminFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "clients", Short: "Manage a realm's clients: list, show, create or replace, delete, disable, enable, rotate secrets, revoke tokens"}
	inFlag(cmd, af)

	// simple is a command ID that POSTs or DELETEs one path and shows the answer.
	simple := func(use, short, method, action string, printBody bool) *cobra.Command {
		return &cobra.Command{
			Use:   use + " CLIENT",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				realm, api, err := af.realmAPI(cmd)
				if err != nil {
					return err
				}
				segments := []string{"clients", args[0]}
				if action != "" {
					segments = append(segments, action)
				}
				res, err := api.call(cmd.Context(), method, realmPath(realm, segments...), nil, nil, nil)
				if err != nil {
					return err
				}
				if printBody && af.output == "json" {
					return printJSON(cmd.OutOrStdout(), res.body)
				}
				verb := action + "d"
				switch action {
				case "":
					verb = "deleted"
				case "revoke-tokens":
					verb = "has no live tokens now"
				}
				return af.done(cmd.OutOrStdout(), "client %s %s", args[0], verb)
			},
		}
	}

	var limit int
	list := &cobra.Command{
		Use:   "list",
		Short: "List the realm's clients",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			realm, api, err := af.realmAPI(cmd)
			if err != nil {
				return err
			}
			p, err := api.list(cmd.Context(), realmPath(realm, "clients"), nil, limit)
			if err != nil {
				return err
			}
			return printList(af, cmd.OutOrStdout(), p, []string{"ID", "NAME", "TYPE", "GRANT TYPES", "TOKENS", "DISABLED"},
				func(c clientRow) []string {
					kind := "public"
					if c.Confidential {
						kind = "confidential"
					}
					format := c.Format
					if format == "" {
						format = "jwt"
					}
					return []string{c.ID, c.Name, kind, strings.Join(c.GrantTypes, ","), format, yesNo(c.Disabled)}
				})
		},
	}
	list.Flags().IntVar(&limit, "limit", 0, "list at most this many (0: all)")

	get := &cobra.Command{
		Use:   "get CLIENT",
		Short: "Show a client (never its secret)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			realm, api, err := af.realmAPI(cmd)
			if err != nil {
				return err
			}
			res, err := api.call(cmd.Context(), http.MethodGet, realmPath(realm, "clients", args[0]), nil, nil, nil)
			if err != nil {
				return err
			}
			return af.printObject(cmd.OutOrStdout(), res.body)
		},
	}

	var file string
	var dpopBound, requirePAR bool
	var exchangeAudiences []string
	put := &cobra.Command{
		Use:   "put [CLIENT] -f FILE",
		Short: "Create or replace a client from a YAML or JSON file (the seed file's client representation; - for stdin)",
		Long: `Create or replace a client from a YAML or JSON file holding one client as the seed
file writes it (id, name, redirect_uris, grant_types, scopes, ...). CLIENT defaults to
the file's id. -f - reads stdin.

A client given neither secret nor jwks is confidential with a generated secret when it
says confidential: true (the default for client_credentials clients), else public. A
generated secret is printed this once. Replacing a client without a secret keeps its
stored secret (unless the file says confidential: false).

--dpop-bound-access-tokens, --require-pushed-authorization-requests and
--token-exchange-audience (repeatable) set those settings over what the file says.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			realm, err := af.targetRealm()
			if err != nil {
				return err
			}
			body, err := readRepresentation(cmd, file)
			if err != nil {
				return err
			}
			id, _ := body["id"].(string)
			if len(args) == 1 {
				id = args[0]
			}
			if id == "" {
				return fmt.Errorf("no client ID: give CLIENT or an id in %s", file)
			}
			if err := sameName(body, "id", id); err != nil {
				return err
			}
			// The flags given override the file's settings; the others leave them be.
			f := cmd.Flags()
			if f.Changed("dpop-bound-access-tokens") {
				body["dpop_bound_access_tokens"] = dpopBound
			}
			if f.Changed("require-pushed-authorization-requests") {
				body["require_pushed_authorization_requests"] = requirePAR
			}
			if f.Changed("token-exchange-audience") {
				body["token_exchange_audiences"] = exchangeAudiences
			}
			api, err := af.connect(cmd.Context(), cmd)
			if err != nil {
				return err
			}
			res, err := api.call(cmd.Context(), http.MethodPut, realmPath(realm, "clients", id), nil, body, nil)
			if err != nil {
				return err
			}
			var c struct {
				Secret string `json:"secret"`
			}
			_ = json.Unmarshal(res.body, &c)
			if c.Secret != "" && af.output != "json" {
				fmt.Fprintln(cmd.ErrOrStderr(), "The generated secret below is shown this once: store it now.")
			}
			return af.printObject(cmd.OutOrStdout(), res.body)
		},
	}
	put.Flags().StringVarP(&file, "file", "f", "", "the client's YAML or JSON file, - for stdin (required)")
	put.MarkFlagRequired("file")
	put.Flags().BoolVar(&dpopBound, "dpop-bound-access-tokens", false, "require a DPoP proof at the token endpoint, so the client's tokens are bound to its key (RFC 9449)")
	put.Flags().BoolVar(&requirePAR, "require-pushed-authorization-requests", false, "take the client's authorization requests only through PAR (RFC 9126)")
	put.Flags().StringArrayVar(&exchangeAudiences, "token-exchange-audience", nil, "an audience the client may ask for in a token exchange (RFC 8693); repeatable")

	var grace time.Duration
	rotate := &cobra.Command{
		Use:   "rotate-secret CLIENT [--grace 1h]",
		Short: "Give a client a new secret, printed once; the old one stops at once or after --grace",
		Long: `Give a client a new generated secret. It is printed to stdout this once (and kept
only as a hash), so capture it: NEW=$(latchkey admin clients rotate-secret web --in acme).
The old secret stops working at once, or after --grace (at most 168h) so that the
client's deployments can move to the new one.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if grace < 0 || grace > maxSecretGrace {
				return fmt.Errorf("--grace must be between 0 and %s", maxSecretGrace)
			}
			realm, api, err := af.realmAPI(cmd)
			if err != nil {
				return err
			}
			body := map[string]any{}
			if grace > 0 {
				body["grace_period"] = grace.String()
			}
			res, err := api.call(cmd.Context(), http.MethodPost, realmPath(realm, "clients", args[0], "secret"), nil, body, nil)
			if err != nil {
				return err
			}
			if af.output == "json" {
				return printJSON(cmd.OutOrStdout(), res.body)
			}
			var s struct {
				Secret          string `json:"secret"`
				PreviousExpires string `json:"previous_secret_expires_at"`
			}
			if err := json.Unmarshal(res.body, &s); err != nil || s.Secret == "" {
				return fmt.Errorf("the API's answer holds no secret")
			}
			// The secret alone on stdout, so $(...) captures exactly it; the notes go to stderr.
			if s.PreviousExpires != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "New secret of client %s below, shown this once. The old secret works until %s.\n", args[0], ts(s.PreviousExpires))
			} else {
				fmt.Fprintf(cmd.ErrOrStderr(), "New secret of client %s below, shown this once. The old secret no longer works.\n", args[0])
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), s.Secret)
			return err
		},
	}
	rotate.Flags().DurationVar(&grace, "grace", 0, "how long the old secret keeps working (e.g. 1h; at most 168h; default: it stops at once)")

	cmd.AddCommand(list, get, put,
		simple("delete", "Delete a client; every token issued to it dies with it", http.MethodDelete, "", false),
		simple("disable", "Disable a client: its tokens stop working, its refresh tokens are refused", http.MethodPost, "disable", true),
		simple("enable", "Enable a client again (its old tokens stay dead)", http.MethodPost, "enable", true),
		rotate,
		simple("revoke-tokens", "Revoke every token issued to a client", http.MethodPost, "revoke-tokens", false),
	)
	return cmd
}
