package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
)

func newAdminRealmsCmd(af *adminFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "realms", Short: "List, show, create or replace, and delete realms; log a realm out"}
	var limit int
	list := &cobra.Command{
		Use:   "list",
		Short: "List realms (needs a master-realm admin client)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := af.connect(cmd.Context(), cmd)
			if err != nil {
				return err
			}
			p, err := api.list(cmd.Context(), "/admin/realms", nil, limit)
			if err != nil {
				return err
			}
			return printList(af, cmd.OutOrStdout(), p, []string{"NAME", "DISPLAY NAME", "SIGNING ALG", "ACCESS TOKEN TTL", "CREATED"},
				func(r realmRow) []string {
					return []string{r.Name, r.DisplayName, r.SigningAlg, r.AccessTokenTTL, ts(r.CreatedAt)}
				})
		},
	}
	list.Flags().IntVar(&limit, "limit", 0, "list at most this many (0: all)")

	get := &cobra.Command{
		Use:   "get REALM",
		Short: "Show a realm",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := af.connect(cmd.Context(), cmd)
			if err != nil {
				return err
			}
			res, err := api.call(cmd.Context(), http.MethodGet, realmPath(args[0]), nil, nil, nil)
			if err != nil {
				return err
			}
			return af.printObject(cmd.OutOrStdout(), res.body)
		},
	}

	var file string
	put := &cobra.Command{
		Use:   "put REALM -f FILE",
		Short: "Create or replace a realm from a YAML or JSON file (the seed file's realm fields; - for stdin)",
		Long: `Create or replace a realm from a YAML or JSON file holding the seed file's realm
fields (display_name, signing_alg, access_token_ttl, allow_long_access_tokens; not its
clients or users). -f - reads stdin. Creating a realm needs a master-realm admin client.

  printf 'display_name: Shop\n' | latchkey admin realms put shop -f -`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body, err := readRepresentation(cmd, file)
			if err != nil {
				return err
			}
			if err := sameName(body, "name", args[0]); err != nil {
				return err
			}
			api, err := af.connect(cmd.Context(), cmd)
			if err != nil {
				return err
			}
			res, err := api.call(cmd.Context(), http.MethodPut, realmPath(args[0]), nil, body, nil)
			if err != nil {
				return err
			}
			return af.printObject(cmd.OutOrStdout(), res.body)
		},
	}
	put.Flags().StringVarP(&file, "file", "f", "", "the realm's YAML or JSON file, - for stdin (required)")
	put.MarkFlagRequired("file")

	del := &cobra.Command{
		Use:   "delete REALM",
		Short: "Delete a realm and everything in it: clients, users, sessions, tokens, keys",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := af.connect(cmd.Context(), cmd)
			if err != nil {
				return err
			}
			if _, err := api.call(cmd.Context(), http.MethodDelete, realmPath(args[0]), nil, nil, nil); err != nil {
				return err
			}
			return af.done(cmd.OutOrStdout(), "realm %s deleted", args[0])
		},
	}

	logoutAll := &cobra.Command{
		Use:   "logout-all REALM",
		Short: "End every browser session and refresh-token family of a realm",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := af.connect(cmd.Context(), cmd)
			if err != nil {
				return err
			}
			res, err := api.call(cmd.Context(), http.MethodPost, realmPath(args[0], "logout-all"), nil, nil, nil)
			if err != nil {
				return err
			}
			if af.output == "json" {
				return printJSON(cmd.OutOrStdout(), res.body)
			}
			var n struct{ Sessions, Families int64 }
			_ = json.Unmarshal(res.body, &n)
			return af.done(cmd.OutOrStdout(), "realm %s logged out: %d sessions and %d refresh families ended", args[0], n.Sessions, n.Families)
		},
	}
	cmd.AddCommand(list, get, put, del, logoutAll)
	return cmd
}

// readRepresentation reads a YAML or JSON file (- for stdin) holding one object
// of the seed file's representation, and returns it to be sent as JSON exactly as
// the file says: the server applies the defaults and the checks (one path for the
// seed and the API) and names any bad field.
func readRepresentation(cmd *cobra.Command, file string) (map[string]any, error) {
	var b []byte
	var err error
	if file == "-" {
		b, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), 1<<20))
	} else {
		b, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	name := file
	if file == "-" {
		name = "stdin"
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: not one YAML or JSON object: %s", name, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if m == nil {
		m = map[string]any{}
	}
	return m, nil
}

// sameName puts name into body[field], or checks that the file's agrees with it.
func sameName(body map[string]any, field, name string) error {
	if v, ok := body[field]; ok {
		if s, _ := v.(string); s != name {
			return fmt.Errorf("the file's %s is %v, not %s", field, v, name)
		}
	}
	body[field] = name
	return nil
}

// parseSince reads --since: an RFC 3339 time, or a duration before now (1h, 30m).
func parseSince(s string, now time.Time) (string, error) {
	if s == "" {
		return "", nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d).UTC().Format(time.RFC3339), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC().Format(time.RFC3339), nil
	}
	return "", fmt.Errorf("--since must be an RFC 3339 time (2026-01-02T15:04:05Z) or a duration (1h), not %q", s)
}

// realmRow is what a realm's table row shows.
type realmRow struct {
	Name           string `json:"name"`
	DisplayName    string `json:"display_name"`
	SigningAlg     string `json:"signing_alg"`
	AccessTokenTTL string `json:"access_token_ttl"`
	CreatedAt      string `json:"created_at"`
}
