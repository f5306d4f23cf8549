package main

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/latchkey/latchkey/bff"
	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/logging"
	"github.com/latchkey/latchkey/internal/masterkey"
	"github.com/latchkey/latchkey/rs"
	"github.com/latchkey/latchkey/storage"
)

const (
	envBFFClientSecret = "LATCHKEY_BFF_CLIENT_SECRET"
	defaultBFFAddr     = "127.0.0.1:9090"
	devBFFIssuer       = "http://127.0.0.1:8080/realms/" + devRealm
	bffKeyFile         = "bff.key"
	// bffPurgeEvery is how often expired sessions are deleted from a --store.
	bffPurgeEvery = 5 * time.Minute
)

// bffSample is the sample single-page app of `latchkey bff --dev`: plain HTML and
// a script file (no inline script, so a strict CSP holds), no build step.
//
//go:embed bffsample
var bffSample embed.FS

type bffFlags struct {
	issuer, clientID, clientSecret string
	addr, app, externalURL         string
	apis, scopes                   []string
	keyFile, store                 string
	dev                            bool
}

func newBFFCmd(getenv func(string) string) *cobra.Command {
	var b bffFlags
	cmd := &cobra.Command{
		Use:   "bff",
		Short: "Run a backend-for-frontend: a single-page app and its APIs behind a session cookie, the tokens kept server side",
		Long: `Run a backend-for-frontend (BFF) in front of a single-page app and its APIs. The
browser signs in through GET /bff/login?returnTo=/path (authorization code + PKCE, with
PAR and DPoP when the issuer offers them, as the confidential client --client-id) and
then holds only an HttpOnly, SameSite=Strict session cookie; the tokens stay here,
sealed with the --key-file key. The app calls GET /bff/user, GET /bff/session,
POST /bff/logout, and its APIs under each --api prefix, which are proxied with the
access token attached (refreshed ahead of expiry). Proxied and state-changing requests
must carry the header "X-CSRF: 1" and come from the same origin, else 403. The
issuer's back-channel logout tokens are taken at POST /bff/backchannel-logout.

--app is a URL (proxied) or a directory (served as static files). Sessions live in
memory unless --store names a database (sqlite:PATH or postgres://...), which several
instances behind one load balancer must share, with the same --key-file. Outside
--dev, --external-url (the https:// URL browsers use; TLS ends at a proxy in front)
and --key-file (32 random bytes as base64 or hex: openssl rand -base64 32) are
required. The client secret is read from ` + envBFFClientSecret + ` when
--client-secret is not given (a flag shows in ps).

--dev runs beside "latchkey serve --dev": issuer ` + devBFFIssuer + `, client
demo-bff (its secret from ` + config.DefaultDataDir + `/` + devCredsFile + `), address ` + defaultBFFAddr + `,
a key in ` + config.DefaultDataDir + `/` + bffKeyFile + ` (created on first start), the sample app, and a
sample API at /api that checks the token and greets the user.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if b.clientSecret == "" {
				b.clientSecret = getenv(envBFFClientSecret)
			}
			return runBFF(cmd.Context(), cmd, b, getenv)
		},
	}
	f := cmd.Flags()
	f.StringVar(&b.issuer, "issuer", "", "issuer URL of the realm users sign in at, e.g. https://id.example.com/realms/acme (default with --dev: "+devBFFIssuer+")")
	f.StringVar(&b.clientID, "client-id", "", "the BFF's confidential client at the issuer (default with --dev: "+devBFFClient+")")
	f.StringVar(&b.clientSecret, "client-secret", "", "its secret; visible in ps, so prefer "+envBFFClientSecret)
	f.StringVar(&b.addr, "addr", defaultBFFAddr, "listen address")
	f.StringVar(&b.app, "app", "", "the single-page app: a URL to proxy to or a directory of static files (default with --dev: the sample app)")
	f.StringArrayVar(&b.apis, "api", nil, "PREFIX=UPSTREAM_URL, e.g. /api=http://127.0.0.1:3000: requests under PREFIX go to UPSTREAM_URL with the access token (repeatable; default with --dev: a sample API at /api)")
	f.StringArrayVar(&b.scopes, "scope", nil, "a scope to ask for (repeatable; default openid profile email offline_access)")
	f.StringVar(&b.externalURL, "external-url", "", "the URL browsers reach the BFF at, e.g. https://app.example.com; the redirect URI is it plus /bff/callback (default with --dev: http://ADDR)")
	f.StringVar(&b.keyFile, "key-file", "", "file of the 32-byte key that seals sessions and login state (required outside --dev; with --dev created in "+config.DefaultDataDir+"/"+bffKeyFile+")")
	f.StringVar(&b.store, "store", "", "keep sessions in a database shared by several instances: sqlite:PATH or postgres://... (default: in memory)")
	f.BoolVar(&b.dev, "dev", false, "development mode beside serve --dev: loopback, plain HTTP, the demo-bff client, the sample app and API")
	return cmd
}

// bffSetup is what the flags resolve to before anything listens.
type bffSetup struct {
	cfg        bff.Config
	appURL     *url.URL // --app as a URL, else nil
	appDir     string   // --app as a directory
	sampleAPI  bool     // --dev without --api: serve the sample API at /api
	keyFile    string
	createKey  bool // dev: create the key file if it does not exist
	storeKind  string
	storeDSN   string
	credsFile  string // dev: where serve --dev left the demo-bff secret
	insecureOK bool
}

// resolve checks the flags and fills in dev mode's defaults. It reads no file and
// opens nothing; every failure names its flag.
func (b bffFlags) resolve(getenv func(string) string) (*bffSetup, error) {
	s := &bffSetup{}
	if b.dev {
		dataDir := getenv(config.Env["data-dir"])
		if dataDir == "" {
			dataDir = config.DefaultDataDir
		}
		if b.issuer == "" {
			b.issuer = devBFFIssuer
		}
		if b.clientID == "" {
			b.clientID = devBFFClient
		}
		if b.clientSecret == "" {
			s.credsFile = filepath.Join(dataDir, devCredsFile)
		}
		if b.keyFile == "" {
			b.keyFile, s.createKey = filepath.Join(dataDir, bffKeyFile), true
		}
		if b.externalURL == "" {
			b.externalURL = "http://" + b.addr
		}
		s.sampleAPI = len(b.apis) == 0
	}
	switch {
	case b.issuer == "":
		return nil, errors.New("--issuer is required")
	case b.clientID == "":
		return nil, errors.New("--client-id is required (the BFF's confidential client)")
	case b.clientSecret == "" && s.credsFile == "":
		return nil, errors.New("the client secret is required: set " + envBFFClientSecret + " or --client-secret")
	case b.keyFile == "":
		return nil, errors.New("--key-file is required outside --dev (32 random bytes as base64 or hex: openssl rand -base64 32)")
	case b.externalURL == "":
		return nil, errors.New("--external-url is required outside --dev (the https:// URL browsers reach the BFF at)")
	}
	iss, err := url.Parse(b.issuer)
	if err != nil || iss.Host == "" || iss.User != nil || iss.RawQuery != "" || iss.Fragment != "" {
		return nil, fmt.Errorf("--issuer %q is not an absolute URL", b.issuer)
	}
	if iss.Scheme != "https" && (iss.Scheme != "http" || !isLoopbackHost(iss.Hostname())) {
		return nil, fmt.Errorf("--issuer %q: the issuer must be https:// (plain HTTP only on a loopback address)", b.issuer)
	}
	if _, _, err := net.SplitHostPort(b.addr); err != nil {
		return nil, fmt.Errorf("--addr %q: want HOST:PORT", b.addr)
	}
	ext, err := url.Parse(b.externalURL)
	if err != nil || ext.Host == "" || ext.User != nil || ext.RawQuery != "" || ext.ForceQuery || ext.Fragment != "" || strings.Trim(ext.Path, "/") != "" {
		return nil, fmt.Errorf("--external-url %q is not an origin such as https://app.example.com", b.externalURL)
	}
	switch {
	case ext.Scheme == "https":
	case ext.Scheme == "http" && b.dev && isLoopbackHost(ext.Hostname()):
		// Plain HTTP on loopback in dev only: the cookies lose Secure and __Host-.
		s.insecureOK = true
	default:
		return nil, fmt.Errorf("--external-url %q: must be https:// (plain HTTP only on a loopback address with --dev)", b.externalURL)
	}
	apis, err := parseBFFAPIs(b.apis)
	if err != nil {
		return nil, err
	}
	for _, sc := range b.scopes {
		if !isScopeToken(sc) {
			return nil, fmt.Errorf("--scope %q is not a scope", sc)
		}
	}
	if b.app != "" {
		if u, err := url.Parse(b.app); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
			if u.Host == "" || u.User != nil {
				return nil, fmt.Errorf("--app %q is not a URL with a host", b.app)
			}
			s.appURL = u
		} else if info, err := os.Stat(b.app); err != nil || !info.IsDir() {
			return nil, fmt.Errorf("--app %q is neither an http(s) URL nor a directory", b.app)
		} else {
			s.appDir = b.app
		}
	}
	if b.store != "" {
		switch {
		case strings.HasPrefix(b.store, "postgres://") || strings.HasPrefix(b.store, "postgresql://"):
			s.storeKind, s.storeDSN = "postgres", b.store
		case strings.HasPrefix(b.store, "sqlite:") && len(b.store) > len("sqlite:"):
			s.storeKind, s.storeDSN = "sqlite", strings.TrimPrefix(b.store, "sqlite:")
		default:
			return nil, fmt.Errorf("--store %q: want sqlite:PATH or postgres://...", b.store)
		}
	}
	s.keyFile = b.keyFile
	s.cfg = bff.Config{
		Issuer:       strings.TrimSuffix(b.issuer, "/"),
		ClientID:     b.clientID,
		ClientSecret: b.clientSecret,
		ExternalURL:  strings.TrimSuffix(b.externalURL, "/"),
		Scopes:       b.scopes,
		APIs:         apis,
		Insecure:     s.insecureOK,
	}
	return s, nil
}

// parseBFFAPIs reads the --api flags: PREFIX=UPSTREAM_URL each.
func parseBFFAPIs(flags []string) ([]bff.API, error) {
	var apis []bff.API
	seen := map[string]bool{}
	for _, f := range flags {
		prefix, upstream, ok := strings.Cut(f, "=")
		prefix = strings.TrimSuffix(prefix, "/")
		if !ok || !strings.HasPrefix(prefix, "/") || len(prefix) < 2 || strings.ContainsAny(prefix, "?#% ") ||
			strings.Contains(prefix, "//") || strings.Contains(prefix, "/.") {
			return nil, fmt.Errorf("--api %q: want /PREFIX=UPSTREAM_URL, e.g. /api=http://127.0.0.1:3000", f)
		}
		if prefix == "/bff" || strings.HasPrefix(prefix, "/bff/") {
			return nil, fmt.Errorf("--api %q: /bff is the BFF's own", f)
		}
		if seen[prefix] {
			return nil, fmt.Errorf("--api %q: prefix %s given twice", f, prefix)
		}
		seen[prefix] = true
		u, err := url.Parse(upstream)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("--api %q: %q is not an http:// or https:// URL", f, upstream)
		}
		apis = append(apis, bff.API{Prefix: prefix, Upstream: u})
	}
	return apis, nil
}

// readDevBFFSecret reads demo-bff's secret where serve --dev wrote it.
func readDevBFFSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("no %s: start \"latchkey serve --dev\" first (same directory), or give the secret in %s", path, envBFFClientSecret)
		}
		return "", fmt.Errorf("read demo credentials: %w", err)
	}
	var creds devCredentials
	if err := json.Unmarshal(b, &creds); err != nil || creds.BFFClientSecret == "" {
		return "", fmt.Errorf("%s has no demo-bff secret: restart \"latchkey serve --dev\" to add it", path)
	}
	return creds.BFFClientSecret, nil
}

// loadBFFKey reads the 32-byte key (base64 or hex), in dev creating it on first
// start (mode 0600).
func loadBFFKey(path string, create bool) ([]byte, error) {
	var k *masterkey.Key
	var err error
	if create {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("--key-file: %w", err)
		}
		k, _, err = masterkey.LoadOrCreate(path)
	} else {
		k, err = masterkey.Load(path)
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("--key-file %s does not exist (make one with: openssl rand -base64 32 > %s)", path, path)
		}
		return nil, fmt.Errorf("--key-file %s: must hold 32 bytes as base64 or hex (make one with: openssl rand -base64 32)", path)
	}
	// A key of its own for the BFF, so the file could be shared with nothing else's use.
	return k.Derive("bff sessions"), nil
}

// bffSessions adapts storage's BFF sessions to bff.SessionStore: the same
// methods, with the record type and the not-found sentinel translated.
type bffSessions struct{ s storage.BFFSessionStore }

var _ bff.SessionStore = bffSessions{}

func toBFFRecord(s storage.BFFSession) bff.SessionRecord {
	return bff.SessionRecord{ID: s.ID, SID: s.SID, Subject: s.Subject, Sealed: s.Sealed, ExpiresAt: s.ExpiresAt, Version: s.Version}
}

func fromBFFRecord(r bff.SessionRecord) storage.BFFSession {
	return storage.BFFSession{ID: r.ID, SID: r.SID, Subject: r.Subject, Sealed: r.Sealed, ExpiresAt: r.ExpiresAt, Version: r.Version}
}

func bffErr(err error) error {
	if errors.Is(err, storage.ErrNotFound) {
		return bff.ErrSessionNotFound
	}
	return err
}

func (a bffSessions) Get(ctx context.Context, id string, now time.Time) (bff.SessionRecord, error) {
	s, err := a.s.Get(ctx, id, now)
	if err != nil {
		return bff.SessionRecord{}, bffErr(err)
	}
	return toBFFRecord(s), nil
}

func (a bffSessions) Put(ctx context.Context, rec bff.SessionRecord) error {
	return bffErr(a.s.Put(ctx, fromBFFRecord(rec)))
}

func (a bffSessions) Update(ctx context.Context, id string, now time.Time, fn func(bff.SessionRecord) (bff.SessionRecord, error)) (bff.SessionRecord, error) {
	s, err := a.s.Update(ctx, id, now, func(cur storage.BFFSession) (storage.BFFSession, error) {
		next, err := fn(toBFFRecord(cur))
		if err != nil {
			return storage.BFFSession{}, err
		}
		return fromBFFRecord(next), nil
	})
	if err != nil {
		return bff.SessionRecord{}, bffErr(err)
	}
	return toBFFRecord(s), nil
}

func (a bffSessions) Delete(ctx context.Context, id string) error { return bffErr(a.s.Delete(ctx, id)) }

func (a bffSessions) DeleteByIssuerSession(ctx context.Context, sid string) (int, error) {
	return a.s.DeleteByIssuerSession(ctx, sid)
}

func (a bffSessions) DeleteBySubject(ctx context.Context, sub string) (int, error) {
	return a.s.DeleteBySubject(ctx, sub)
}

func (a bffSessions) Purge(ctx context.Context, now time.Time) (int, error) {
	return a.s.Purge(ctx, now)
}

func runBFF(ctx context.Context, cmd *cobra.Command, b bffFlags, getenv func(string) string) error {
	s, err := b.resolve(getenv)
	if err != nil {
		return err
	}
	if s.credsFile != "" {
		if s.cfg.ClientSecret, err = readDevBFFSecret(s.credsFile); err != nil {
			return err
		}
	}
	if s.cfg.Key, err = loadBFFKey(s.keyFile, s.createKey); err != nil {
		return err
	}
	log := logging.New(cmd.ErrOrStderr(), slog.LevelInfo)
	s.cfg.Logger = log

	ln, err := net.Listen("tcp", b.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", b.addr, err)
	}
	defer ln.Close()

	switch {
	case s.appURL != nil:
		s.cfg.App = appProxy(s.appURL, log)
	case s.appDir != "":
		s.cfg.App = http.FileServer(http.Dir(s.appDir))
	case b.dev:
		sub, _ := fs.Sub(bffSample, "bffsample")
		s.cfg.App = sampleAppHandler(http.FileServerFS(sub))
	}

	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if s.sampleAPI {
		api, stop, err := startSampleAPI(startCtx, s.cfg, log)
		if err != nil {
			return err
		}
		defer stop()
		s.cfg.APIs = []bff.API{{Prefix: "/api", Upstream: api}}
	}

	if s.storeKind != "" {
		st, err := openStore(ctx, config.Options{Backend: s.storeKind, DB: s.storeDSN, SQLiteSync: "full", StoreTimeout: storage.DefaultTimeout})
		if err != nil {
			return err
		}
		defer st.Close()
		bs, ok := st.(storage.BFFStore)
		if !ok {
			return fmt.Errorf("--store: this %s store keeps no BFF sessions", s.storeKind)
		}
		sessions := bffSessions{bs.BFFSessions()}
		s.cfg.Sessions = sessions
		go purgeBFFSessions(ctx, sessions, log)
	}

	h, err := bff.New(startCtx, s.cfg)
	if err != nil {
		return err
	}
	cancel()

	srv, errc := serveSmall(h, ln, log)
	log.Info("bff listening", "addr", ln.Addr().String(), "issuer", s.cfg.Issuer, "client_id", s.cfg.ClientID, "external_url", s.cfg.ExternalURL, "store", s.storeKind)
	if b.dev {
		fmt.Fprintf(cmd.OutOrStdout(), "\nThe BFF is running in dev mode (not for production): open %s/ and sign in as %s.\n\n", s.cfg.ExternalURL, devUser)
	}
	return shutdownOnDone(ctx, srv, errc, log)
}

// purgeBFFSessions deletes expired sessions from the store now and then, until ctx ends.
func purgeBFFSessions(ctx context.Context, s bff.SessionStore, log *slog.Logger) {
	t := time.NewTicker(bffPurgeEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := s.Purge(ctx, time.Now()); err != nil {
				log.Warn("bff: purge expired sessions", "err", err)
			}
		}
	}
}

// appProxy forwards the app's requests to --app. The BFF's own cookies and the
// CSRF header are not the app server's business.
func appProxy(u *url.URL, log *slog.Logger) http.Handler {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Header.Del("Cookie")
			pr.Out.Header.Del("Authorization")
			pr.Out.Header.Del("X-CSRF")
		},
		ModifyResponse: func(res *http.Response) error {
			// The app server must not set cookies that could shadow the BFF's.
			res.Header.Del("Set-Cookie")
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			log.Warn("bff: app server failed", "err", err, "path", r.URL.Path)
			w.WriteHeader(http.StatusBadGateway)
		},
	}
}

// sampleAppHandler serves the sample app with a strict Content-Security-Policy: no
// inline script, nothing from another origin.
func sampleAppHandler(files http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		files.ServeHTTP(w, r)
	})
}

// startSampleAPI runs the dev sample API on a free loopback port: it checks the
// access token with rs, as any API of the realm would, and greets the user.
func startSampleAPI(ctx context.Context, c bff.Config, log *slog.Logger) (*url.URL, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, fmt.Errorf("sample API: %w", err)
	}
	base := "http://" + ln.Addr().String()
	// Access tokens of a client without audiences are for the issuer (see README,
	// Access tokens). The BFF's own client follows the revocation feed.
	v, err := rs.New(ctx, rs.Options{
		Issuer: c.Issuer, Audience: c.Issuer, ClientID: c.ClientID, ClientSecret: c.ClientSecret,
		Logger: log, ExternalURL: base,
	})
	if err != nil {
		ln.Close()
		return nil, nil, fmt.Errorf("sample API: %w", err)
	}
	srv := &http.Server{Handler: sampleAPI(v), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	u, _ := url.Parse(base)
	return u, func() { srv.Close(); v.Close() }, nil
}

// sampleAPI answers every request that carries a valid token with who it is for.
func sampleAPI(v *rs.Validator) http.Handler {
	return v.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := rs.ClaimsFrom(r.Context())
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(map[string]any{"hello": c.Username, "scope": strings.Join(c.Scopes, " "), "path": r.URL.Path})
	}))
}
