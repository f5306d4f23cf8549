package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func newAdminTokensCmd(af *adminFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tokens",
		Short: "Introspect or revoke any token of a realm (read from stdin, never from a flag)",
		Long: `Introspect or revoke any token of a realm: an access token (JWT or opaque) or a
refresh token. The token is read from stdin so that it never shows in ps or in the
shell's history; an access token can also be revoked by its jti.

  printf '%s' "$TOKEN" | latchkey admin tokens introspect --in acme
  latchkey admin tokens revoke --in acme --jti 3f1c...`,
	}
	inFlag(cmd, af)

	introspect := &cobra.Command{
		Use:   "introspect",
		Short: "Show whether the token on stdin is active, and its claims (RFC 7662)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			realm, err := af.targetRealm()
			if err != nil {
				return err
			}
			tok, err := readSecretStdin(cmd, "token")
			if err != nil {
				return err
			}
			api, err := af.connect(cmd.Context(), cmd)
			if err != nil {
				return err
			}
			res, err := api.call(cmd.Context(), http.MethodPost, realmPath(realm, "tokens", "introspect"), nil, map[string]string{"token": strings.TrimSpace(tok)}, nil)
			if err != nil {
				return err
			}
			if af.output == "json" {
				return printJSON(cmd.OutOrStdout(), res.body)
			}
			return printIntrospection(cmd, res.body)
		},
	}

	var jti string
	revoke := &cobra.Command{
		Use:   "revoke [--jti JTI]",
		Short: "Revoke the token on stdin, or an access token by its jti",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			realm, err := af.targetRealm()
			if err != nil {
				return err
			}
			body := map[string]string{"jti": jti}
			if jti == "" {
				tok, err := readSecretStdin(cmd, "token")
				if err != nil {
					return err
				}
				body = map[string]string{"token": strings.TrimSpace(tok)}
			}
			api, err := af.connect(cmd.Context(), cmd)
			if err != nil {
				return err
			}
			if _, err := api.call(cmd.Context(), http.MethodPost, realmPath(realm, "tokens", "revoke"), nil, body, nil); err != nil {
				return err
			}
			return af.done(cmd.OutOrStdout(), "token revoked")
		},
	}
	revoke.Flags().StringVar(&jti, "jti", "", "revoke the access token with this jti instead of reading a token from stdin")
	cmd.AddCommand(introspect, revoke)
	return cmd
}

// printIntrospection shows an RFC 7662 answer as fields, times readable.
func printIntrospection(cmd *cobra.Command, raw []byte) error {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("the API's introspection is not JSON: %v", err)
	}
	active, _ := m["active"].(bool)
	w := cmd.OutOrStdout()
	if !active {
		_, err := fmt.Fprintln(w, "active:  false (revoked, expired, unknown, or not of this realm)")
		return err
	}
	rows := [][]string{{"active:", "true"}}
	for _, k := range []string{"token_type", "client_id", "username", "sub", "scope", "aud", "iss", "jti", "iat", "exp"} {
		v, ok := m[k]
		if !ok {
			continue
		}
		s := fmt.Sprint(v)
		switch x := v.(type) {
		case float64:
			s = time.Unix(int64(x), 0).UTC().Format(time.RFC3339)
		case []any:
			parts := make([]string, len(x))
			for i, p := range x {
				parts[i] = fmt.Sprint(p)
			}
			s = strings.Join(parts, " ")
		}
		rows = append(rows, []string{k + ":", s})
	}
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "%-12s %s\n", r[0], r[1])
	}
	_, err := fmt.Fprint(w, b.String())
	return err
}

// keyRow is what a signing key's table row shows.
type keyRow struct {
	KID          string `json:"kid"`
	Alg          string `json:"alg"`
	Status       string `json:"status"`
	CreatedAt    string `json:"created_at"`
	SignFrom     string `json:"sign_from"`
	SignUntil    string `json:"sign_until"`
	PublishUntil string `json:"publish_until"`
}

func newAdminKeysCmd(af *adminFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "List, rotate and retire a realm's signing keys"}
	inFlag(cmd, af)
	header := []string{"KID", "ALG", "STATUS", "CREATED", "SIGNS FROM", "SIGNS UNTIL", "PUBLISHED UNTIL"}
	row := func(k keyRow) []string {
		return []string{k.KID, k.Alg, k.Status, ts(k.CreatedAt), ts(k.SignFrom), ts(k.SignUntil), ts(k.PublishUntil)}
	}
	keysOf := func(raw []byte) (page, error) {
		var p page
		if err := json.Unmarshal(raw, &p); err != nil {
			return page{}, fmt.Errorf("the API's key list is not the expected JSON: %v", err)
		}
		return p, nil
	}

	list := &cobra.Command{
		Use:   "list",
		Short: "List the realm's signing keys: next (published, not signing yet), active, retiring, retired",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			realm, api, err := af.realmAPI(cmd)
			if err != nil {
				return err
			}
			res, err := api.call(cmd.Context(), http.MethodGet, realmPath(realm, "keys"), nil, nil, nil)
			if err != nil {
				return err
			}
			p, err := keysOf(res.body)
			if err != nil {
				return err
			}
			return printList(af, cmd.OutOrStdout(), p, header, row)
		},
	}

	var alg string
	rotate := &cobra.Command{
		Use:   "rotate [--alg ES256|EdDSA|RS256]",
		Short: "Make new signing keys: published at once, signing after the publish lead",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if alg != "" && !slices.Contains([]string{"ES256", "EdDSA", "RS256"}, alg) {
				return fmt.Errorf("--alg must be ES256, EdDSA or RS256, not %q", alg)
			}
			realm, api, err := af.realmAPI(cmd)
			if err != nil {
				return err
			}
			body := map[string]string{}
			if alg != "" {
				body["alg"] = alg
			}
			res, err := api.call(cmd.Context(), http.MethodPost, realmPath(realm, "keys", "rotate"), nil, body, nil)
			if err != nil {
				return err
			}
			p, err := keysOf(res.body)
			if err != nil {
				return err
			}
			return printList(af, cmd.OutOrStdout(), p, header, row)
		},
	}
	rotate.Flags().StringVar(&alg, "alg", "", "also start signing with this algorithm")

	retire := &cobra.Command{
		Use:   "retire KID",
		Short: "Retire a (compromised) key: it stops signing and leaves the JWKS at once; tokens it signed become inactive",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			realm, api, err := af.realmAPI(cmd)
			if err != nil {
				return err
			}
			res, err := api.call(cmd.Context(), http.MethodPost, realmPath(realm, "keys", args[0], "retire"), nil, nil, nil)
			if err != nil {
				return err
			}
			if af.output == "json" {
				return printJSON(cmd.OutOrStdout(), res.body)
			}
			var k keyRow
			if err := json.Unmarshal(res.body, &k); err != nil {
				return fmt.Errorf("the API's key is not the expected JSON: %v", err)
			}
			return printTable(cmd.OutOrStdout(), header, [][]string{row(k)})
		},
	}
	cmd.AddCommand(list, rotate, retire)
	return cmd
}

// eventRow is what an audit event's table row shows.
type eventRow struct {
	ID       int64             `json:"id"`
	Time     string            `json:"time"`
	Type     string            `json:"type"`
	ClientID string            `json:"client_id"`
	UserID   string            `json:"user_id"`
	IP       string            `json:"ip"`
	Details  map[string]string `json:"details"`
}

func newAdminEventsCmd(af *adminFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "events", Short: "Read a realm's audit events"}
	inFlag(cmd, af)
	var typ, user, client, since string
	var limit int
	list := &cobra.Command{
		Use:   "list [--type T] [--user USER] [--client ID] [--since 1h|TIME] [--limit N]",
		Short: "List audit events, newest first (the latest 100 unless --limit says otherwise)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 0 {
				return errors.New("--limit must be 0 (all) or more")
			}
			from, err := parseSince(since, time.Now())
			if err != nil {
				return err
			}
			realm, api, err := af.realmAPI(cmd)
			if err != nil {
				return err
			}
			q := url.Values{}
			if typ != "" {
				q.Set("type", typ)
			}
			if client != "" {
				q.Set("client", client)
			}
			if from != "" {
				q.Set("since", from)
			}
			if user != "" {
				// A username of a user who still exists, else an ID (a deleted user's events).
				id, err := resolveUser(cmd.Context(), api, realm, user)
				if err != nil {
					return err
				}
				q.Set("user", id)
			}
			p, err := api.list(cmd.Context(), realmPath(realm, "events"), q, limit)
			if err != nil {
				return err
			}
			return printList(af, cmd.OutOrStdout(), p, []string{"TIME", "TYPE", "CLIENT", "USER", "IP", "DETAILS"},
				func(e eventRow) []string {
					keys := make([]string, 0, len(e.Details))
					for k := range e.Details {
						keys = append(keys, k)
					}
					slices.Sort(keys)
					details := make([]string, len(keys))
					for i, k := range keys {
						details[i] = k + "=" + e.Details[k]
					}
					return []string{ts(e.Time), e.Type, e.ClientID, e.UserID, e.IP, strings.Join(details, " ")}
				})
		},
	}
	f := list.Flags()
	f.StringVar(&typ, "type", "", "only events of this type (e.g. login.failed)")
	f.StringVar(&user, "user", "", "only events of this user (username or ID)")
	f.StringVar(&client, "client", "", "only events of this client ID")
	f.StringVar(&since, "since", "", "only events at or after this RFC 3339 time, or this long ago (1h, 30m)")
	f.IntVar(&limit, "limit", 100, "list at most this many, newest first (0: all)")
	cmd.AddCommand(list)
	return cmd
}
