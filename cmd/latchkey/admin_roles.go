package main

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/spf13/cobra"
)

// roleRow is what a role's table row shows.
type roleRow struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Composites  struct {
		Realm  []string            `json:"realm"`
		Client map[string][]string `json:"client"`
	} `json:"composites"`
}

// compositeNames writes a role's composites as create's --composite takes them:
// NAME for a realm role, CLIENT/NAME for a client role.
func (r roleRow) compositeNames() string {
	names := slices.Clone(r.Composites.Realm)
	for _, client := range slices.Sorted(maps.Keys(r.Composites.Client)) {
		for _, n := range r.Composites.Client[client] {
			names = append(names, client+"/"+n)
		}
	}
	return strings.Join(names, ",")
}

func newAdminRolesCmd(af *adminFlags) *cobra.Command {
	var clientID string
	cmd := &cobra.Command{
		Use:   "roles",
		Short: "List, show, create and delete a realm's roles, or a client's (--client)",
		Long: `List, show, create and delete a realm's roles, or with --client ID that client's
roles. A composite role includes the roles it names: --composite NAME for a realm
role, --composite CLIENT/NAME for a client role. Deleting a role takes it from every
user, client and composite role that names it.

  latchkey admin roles create editor --in acme --composite user --composite api/read`,
	}
	inFlag(cmd, af)
	cmd.PersistentFlags().StringVar(&clientID, "client", "", "the client whose roles these are (default: the realm's roles)")

	// path is the roles collection's path, with segments after it.
	path := func(realm string, segments ...string) string {
		base := []string{"roles"}
		if clientID != "" {
			base = []string{"clients", clientID, "roles"}
		}
		return realmPath(realm, append(base, segments...)...)
	}
	// owner names whose roles these are, for messages.
	owner := func(realm string) string {
		if clientID != "" {
			return fmt.Sprintf("client %s of realm %s", clientID, realm)
		}
		return "realm " + realm
	}

	var limit int
	list := &cobra.Command{
		Use:   "list",
		Short: "List the roles",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			realm, api, err := af.realmAPI(cmd)
			if err != nil {
				return err
			}
			p, err := api.list(cmd.Context(), path(realm), nil, limit)
			if err != nil {
				return err
			}
			return printList(af, cmd.OutOrStdout(), p, []string{"NAME", "DESCRIPTION", "COMPOSITES"},
				func(r roleRow) []string { return []string{r.Name, r.Description, r.compositeNames()} })
		},
	}
	list.Flags().IntVar(&limit, "limit", 0, "list at most this many (0: all)")

	get := &cobra.Command{
		Use:   "get ROLE",
		Short: "Show a role",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			realm, api, err := af.realmAPI(cmd)
			if err != nil {
				return err
			}
			res, err := api.call(cmd.Context(), http.MethodGet, path(realm, args[0]), nil, nil, nil)
			if err != nil {
				return err
			}
			return af.printObject(cmd.OutOrStdout(), res.body)
		},
	}

	var description string
	var composites []string
	create := &cobra.Command{
		Use:   "create ROLE [--description TEXT] [--composite NAME|CLIENT/NAME]...",
		Short: "Create a role",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			realm, err := af.targetRealm()
			if err != nil {
				return err
			}
			body := map[string]any{"name": args[0]}
			if description != "" {
				body["description"] = description
			}
			realmRoles, clientRoles := []string{}, map[string][]string{}
			for _, c := range composites {
				client, name, isClient := strings.Cut(c, "/")
				switch {
				case !isClient:
					realmRoles = append(realmRoles, c)
				case client == "" || name == "":
					return fmt.Errorf("--composite %q: write NAME for a realm role or CLIENT/NAME for a client role", c)
				default:
					clientRoles[client] = append(clientRoles[client], name)
				}
			}
			if len(composites) > 0 {
				comp := map[string]any{}
				if len(realmRoles) > 0 {
					comp["realm"] = realmRoles
				}
				if len(clientRoles) > 0 {
					comp["client"] = clientRoles
				}
				body["composites"] = comp
			}
			api, err := af.connect(cmd.Context(), cmd)
			if err != nil {
				return err
			}
			res, err := api.call(cmd.Context(), http.MethodPost, path(realm), nil, body, nil)
			if err != nil {
				return err
			}
			return af.printObject(cmd.OutOrStdout(), res.body)
		},
	}
	create.Flags().StringVar(&description, "description", "", "what the role is for")
	create.Flags().StringArrayVar(&composites, "composite", nil, "a role this one includes: NAME (a realm role) or CLIENT/NAME (a client role); repeatable")

	del := &cobra.Command{
		Use:   "delete ROLE",
		Short: "Delete a role; every user, client and composite role that names it loses it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			realm, api, err := af.realmAPI(cmd)
			if err != nil {
				return err
			}
			if _, err := api.call(cmd.Context(), http.MethodDelete, path(realm, args[0]), nil, nil, nil); err != nil {
				return err
			}
			return af.done(cmd.OutOrStdout(), "role %s of %s deleted", args[0], owner(realm))
		},
	}

	cmd.AddCommand(list, get, create, del)
	return cmd
}
