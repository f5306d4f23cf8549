package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/latchkey/latchkey/internal/config"
)

// Environment variables of `latchkey admin`.
const (
	envAdminServer       = "LATCHKEY_ADMIN_SERVER"
	envAdminClientID     = "LATCHKEY_ADMIN_CLIENT_ID"
	envAdminClientSecret = "LATCHKEY_ADMIN_CLIENT_SECRET"
	defaultAdminServer   = "http://127.0.0.1:8080"
	managementRealm      = "master"
)

// adminFlags are the persistent flags of `latchkey admin`, read by every subcommand.
type adminFlags struct {
	server, clientID, clientSecret, secretFile, tokenRealm, output string
	in                                                             string
	insecureHTTP                                                   bool
	getenv                                                         func(string) string
}

func newAdminCmd(getenv func(string) string) *cobra.Command {
	af := &adminFlags{getenv: getenv}
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "Administer a running Latchkey over its admin API (realms, clients, users, sessions, tokens, keys, events)",
		Long: `Administer a running Latchkey over its admin REST API (/admin/realms/...).

The CLI signs in with the client-credentials grant of an admin client (one holding the
scope latchkey:admin, or latchkey:admin:read for reading only) at
SERVER/realms/REALM/protocol/openid-connect/token, REALM being --realm (default master:
a master-realm admin client administers every realm; a client of realm R only R).

Credentials, first found wins:
  --client-id, and --client-secret-file FILE or --client-secret
  LATCHKEY_ADMIN_CLIENT_ID and LATCHKEY_ADMIN_CLIENT_SECRET
  ./latchkey-data/dev-credentials.json (or $LATCHKEY_DATA_DIR/...), written by
  'latchkey serve --dev': its admin_client_id, admin_client_secret and admin_token_url
Prefer the environment variable or the file to --client-secret: a flag shows in ps.

Commands that work inside a realm take it as --in REALM; without --in, the realm of a
realm-scoped admin client (--realm other than master) is used. An ID that begins with
"-" (signing-key and session IDs may) goes after --:  keys retire --in acme -- -Zx3...

Output is a table, or the API's JSON with -o json. Errors are one line on stderr and a
non-zero exit status. Secrets the API returns once (a rotated client secret) go to
stdout and nowhere else; passwords are read from stdin, never from a flag.

'latchkey admin bootstrap' is the exception: run once on a new installation, it
works on the store directly and creates the first admin client.`,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if af.output != "table" && af.output != "json" {
				return fmt.Errorf("-o must be table or json, not %q", af.output)
			}
			return nil
		},
	}
	f := cmd.PersistentFlags()
	server := getenv(envAdminServer)
	if server == "" {
		server = defaultAdminServer
	}
	f.StringVar(&af.server, "server", server, "base URL of the Latchkey server ["+envAdminServer+"]")
	f.StringVar(&af.clientID, "client-id", getenv(envAdminClientID), "the admin client's ID ["+envAdminClientID+"]")
	f.StringVar(&af.clientSecret, "client-secret", "", "the admin client's secret; visible in ps, so prefer "+envAdminClientSecret+" or --client-secret-file")
	f.StringVar(&af.secretFile, "client-secret-file", "", "a file holding the admin client's secret")
	f.StringVar(&af.tokenRealm, "realm", managementRealm, "the realm of the admin client, where it gets its token")
	f.StringVarP(&af.output, "output", "o", "table", "output format: table or json")
	f.BoolVar(&af.insecureHTTP, "insecure-http", false, "allow a plain http:// --server that is not a loopback address (the secret and tokens cross the network in clear)")
	cmd.AddCommand(
		newAdminRealmsCmd(af),
		newAdminClientsCmd(af),
		newAdminUsersCmd(af),
		newAdminRolesCmd(af),
		newAdminTokensCmd(af),
		newAdminKeysCmd(af),
		newAdminEventsCmd(af),
		newAdminBootstrapCmd(getenv),
	)
	return cmd
}

// inFlag adds --in REALM to a command whose subcommands work inside one realm.
func inFlag(cmd *cobra.Command, af *adminFlags) {
	cmd.PersistentFlags().StringVar(&af.in, "in", "", "the realm to administer (default: --realm, unless that is master)")
}

// targetRealm is the realm a realm-scoped command works in.
func (af *adminFlags) targetRealm() (string, error) {
	if af.in != "" {
		return af.in, nil
	}
	if af.tokenRealm != "" && af.tokenRealm != managementRealm {
		return af.tokenRealm, nil
	}
	return "", errors.New("--in REALM is required: the realm to administer")
}

// devAdminCredentials are the admin fields of the dev credentials file that
// `serve --dev` writes.
type devAdminCredentials struct {
	ClientID     string `json:"admin_client_id"`
	ClientSecret string `json:"admin_client_secret"`
	TokenURL     string `json:"admin_token_url"`
}

// realmAPI is the realm a command works on and a connection to the admin API,
// the prologue of every realm-scoped command.
func (af *adminFlags) realmAPI(cmd *cobra.Command) (string, *adminAPI, error) {
	realm, err := af.targetRealm()
	if err != nil {
		return "", nil, err
	}
	api, err := af.connect(cmd.Context(), cmd)
	return realm, api, err
}

// connect resolves the server and credentials and returns an API client whose
// requests carry an access token of the client-credentials grant.
func (af *adminFlags) connect(ctx context.Context, cmd *cobra.Command) (*adminAPI, error) {
	server := strings.TrimRight(af.server, "/")
	serverSet := cmd.Flags().Changed("server") || af.getenv(envAdminServer) != ""
	if err := checkServerURL(server, af.insecureHTTP); err != nil {
		return nil, err
	}
	id, secret := af.clientID, af.clientSecret
	if secret == "" && af.secretFile != "" {
		b, err := os.ReadFile(af.secretFile)
		if err != nil {
			return nil, fmt.Errorf("read --client-secret-file: %w", err)
		}
		secret = strings.TrimSpace(string(b))
	}
	if secret == "" {
		secret = af.getenv(envAdminClientSecret)
	}
	tokenURL := server + "/realms/" + url.PathEscape(af.tokenRealm) + "/protocol/openid-connect/token"
	if id == "" && secret == "" {
		dev, path, err := af.readDevCredentials()
		if err != nil {
			return nil, err
		}
		if dev == nil {
			return nil, errors.New("no admin credentials: set --client-id and " + envAdminClientSecret + " (or --client-secret-file), or run 'latchkey serve --dev' here")
		}
		id, secret = dev.ClientID, dev.ClientSecret
		// The dev server may listen elsewhere than the default; its file says where.
		if !serverSet && dev.TokenURL != "" {
			u, err := url.Parse(dev.TokenURL)
			if err != nil || u.Host == "" {
				return nil, fmt.Errorf("%s: admin_token_url is not a URL", path)
			}
			server = u.Scheme + "://" + u.Host
			tokenURL = server + "/realms/" + url.PathEscape(af.tokenRealm) + "/protocol/openid-connect/token"
			if !cmd.Flags().Changed("realm") {
				tokenURL = dev.TokenURL
			}
		}
	}
	if id == "" || secret == "" {
		return nil, errors.New("incomplete admin credentials: give both a client ID (--client-id, " + envAdminClientID + ") and a secret (" + envAdminClientSecret + ", --client-secret-file or --client-secret)")
	}
	cc := clientcredentials.Config{
		ClientID: id, ClientSecret: secret, TokenURL: tokenURL,
		// One way only: auto-detection retries a refused secret in the body, a second
		// failed attempt that counts against the client's throttle.
		AuthStyle: oauth2.AuthStyleInHeader,
	}
	base := &http.Client{Timeout: 30 * time.Second}
	tctx := context.WithValue(ctx, oauth2.HTTPClient, base)
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &oauth2.Transport{Source: cc.TokenSource(tctx), Base: http.DefaultTransport}}
	return &adminAPI{base: server, http: hc, tokenURL: tokenURL}, nil
}

// checkServerURL refuses a server the client secret and admin tokens should not
// be sent to: not http(s), or plain http to another machine (unless allowed).
func checkServerURL(server string, insecureHTTP bool) error {
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--server must be an http:// or https:// URL, not %q", server)
	}
	if u.Scheme == "http" && !insecureHTTP {
		host := u.Hostname()
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("--server %s is plain http to another machine: the admin secret and tokens would cross the network in clear; use https:// (or --insecure-http)", server)
		}
	}
	return nil
}

// readDevCredentials reads the admin client of a dev server started in this
// directory (or LATCHKEY_DATA_DIR); nil when there is none.
func (af *adminFlags) readDevCredentials() (*devAdminCredentials, string, error) {
	dir := af.getenv(config.Env["data-dir"])
	if dir == "" {
		dir = config.DefaultDataDir
	}
	path := filepath.Join(dir, devCredsFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, path, nil
	}
	if err != nil {
		return nil, path, fmt.Errorf("read %s: %w", path, err)
	}
	var d devAdminCredentials
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, path, fmt.Errorf("%s is not JSON", path)
	}
	if d.ClientID == "" || d.ClientSecret == "" {
		return nil, path, nil
	}
	return &d, path, nil
}

// readSecretStdin reads a password (or a token) from stdin: everything up to EOF
// or the first line end, so both `printf %s "$PW" |` and a typed line work.
func readSecretStdin(cmd *cobra.Command, what string) (string, error) {
	r := bufio.NewReader(io.LimitReader(cmd.InOrStdin(), 1<<16))
	line, err := r.ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read %s from stdin: %w", what, err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", fmt.Errorf("no %s on stdin", what)
	}
	return line, nil
}
