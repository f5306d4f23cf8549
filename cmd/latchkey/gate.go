package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/latchkey/latchkey/internal/logging"
	"github.com/latchkey/latchkey/rs"
)

// Environment variables of `latchkey gate`; a flag given on the command line wins.
const (
	envGateIssuer       = "LATCHKEY_GATE_ISSUER"
	envGateAudience     = "LATCHKEY_GATE_AUDIENCE"
	envGateUpstream     = "LATCHKEY_GATE_UPSTREAM"
	envGateAddr         = "LATCHKEY_GATE_ADDR"
	envGateClientID     = "LATCHKEY_GATE_CLIENT_ID"
	envGateClientSecret = "LATCHKEY_GATE_CLIENT_SECRET"
	envGateRequireScope = "LATCHKEY_GATE_REQUIRE_SCOPE"
	defaultGateAddr     = "127.0.0.1:8081"
	// gateReadyPath answers 200 once the revocation feed has caught up, else 503.
	// A dotted first segment, so it is unlikely to hide an upstream route.
	gateReadyPath = "/.latchkey-gate/ready"
)

// The headers the gate tells the upstream who called with. Any the client sends are
// removed first.
const (
	headerSubject  = "X-Auth-Subject"
	headerClientID = "X-Auth-Client-Id"
	headerScope    = "X-Auth-Scope"
)

type gateFlags struct {
	issuer, audience, upstream, addr string
	clientID, clientSecret           string
	secretFile                       string
	scopes                           []string
	stripAuthorization               bool
	logLevel                         string
}

func newGateCmd(getenv func(string) string) *cobra.Command {
	var g gateFlags
	cmd := &cobra.Command{
		Use:   "gate",
		Short: "Run a reverse proxy that lets through only requests with a valid access token",
		Long: `Run a reverse proxy in front of an API that accepts only requests with a valid access
token of ISSUER for AUDIENCE, and forwards them to UPSTREAM with the caller in the
headers X-Auth-Subject, X-Auth-Client-Id and X-Auth-Scope (space-separated). Those
headers are removed from what the client sends, so the upstream can believe them when
only the gate can reach it.

JWT access tokens are checked locally (signature with the key's own alg, typ at+jwt,
iss, aud, exp/nbf/iat within 30 s); the authorization server is only asked for its
discovery document and keys at start and on an unknown key, and the gate follows the
realm's revocation feed, so a revoked token, user, session or grant is refused within
about a second. Opaque tokens are introspected, each answer reused for 5 s. The gate
authenticates at the feed and at introspection as a confidential client
(--client-id and its secret, from ` + envGateClientSecret + ` or --client-secret-file;
--client-secret shows in ps).

Until the feed has first caught up, requests wait up to 5 s and then get 503 (the gate
fails closed); GET ` + gateReadyPath + ` answers 200 once it has.

The Authorization header is forwarded unless --strip-authorization: the token was
issued for this API (its aud), so the upstream may check it again or read claims the
headers do not carry. Strip it when the upstream should never hold tokens.

The issuer must be https://, except on a loopback address. Every flag can also be set
through its environment variable (--require-scope: space-separated).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if g.clientSecret == "" && g.secretFile != "" {
				b, err := os.ReadFile(g.secretFile)
				if err != nil {
					return fmt.Errorf("read --client-secret-file: %w", err)
				}
				g.clientSecret = strings.TrimSpace(string(b))
			}
			if g.clientSecret == "" {
				g.clientSecret = getenv(envGateClientSecret)
			}
			return runGate(cmd.Context(), cmd, g)
		},
	}
	f := cmd.Flags()
	addr := getenv(envGateAddr)
	if addr == "" {
		addr = defaultGateAddr
	}
	f.StringVar(&g.issuer, "issuer", getenv(envGateIssuer), "issuer URL of the realm whose tokens are accepted, e.g. https://id.example.com/realms/acme ["+envGateIssuer+"]")
	f.StringVar(&g.audience, "audience", getenv(envGateAudience), "this API's identifier; a token's aud must contain it ["+envGateAudience+"]")
	f.StringVar(&g.upstream, "upstream", getenv(envGateUpstream), "URL of the API behind the gate ["+envGateUpstream+"]")
	f.StringVar(&g.addr, "addr", addr, "listen address ["+envGateAddr+"]")
	f.StringVar(&g.clientID, "client-id", getenv(envGateClientID), "the gate's confidential client at the issuer ["+envGateClientID+"]")
	f.StringVar(&g.clientSecret, "client-secret", "", "its secret; visible in ps, so prefer "+envGateClientSecret+" or --client-secret-file")
	f.StringVar(&g.secretFile, "client-secret-file", "", "a file holding the client's secret")
	f.StringArrayVar(&g.scopes, "require-scope", strings.Fields(getenv(envGateRequireScope)), "a scope every request's token must have (repeatable) ["+envGateRequireScope+"]")
	f.BoolVar(&g.stripAuthorization, "strip-authorization", false, "do not forward the Authorization header to the upstream")
	f.StringVar(&g.logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

// check validates the flags, each failure naming its flag.
func (g *gateFlags) check() (upstream *url.URL, err error) {
	switch {
	case g.issuer == "":
		return nil, errors.New("--issuer is required")
	case g.audience == "":
		return nil, errors.New("--audience is required")
	case g.upstream == "":
		return nil, errors.New("--upstream is required")
	case g.clientID == "":
		return nil, errors.New("--client-id is required (the gate's confidential client, for the revocation feed)")
	case g.clientSecret == "":
		return nil, errors.New("the client secret is required: set " + envGateClientSecret + " or --client-secret-file")
	}
	iss, err := url.Parse(g.issuer)
	if err != nil || iss.Host == "" || iss.RawQuery != "" || iss.Fragment != "" {
		return nil, fmt.Errorf("--issuer %q is not an absolute URL", g.issuer)
	}
	if iss.Scheme != "https" && (iss.Scheme != "http" || !isLoopbackHost(iss.Hostname())) {
		return nil, fmt.Errorf("--issuer %q: the issuer must be https:// (plain HTTP only on a loopback address)", g.issuer)
	}
	up, err := url.Parse(g.upstream)
	if err != nil || up.Host == "" || (up.Scheme != "http" && up.Scheme != "https") {
		return nil, fmt.Errorf("--upstream %q is not an http:// or https:// URL", g.upstream)
	}
	if _, _, err := net.SplitHostPort(g.addr); err != nil {
		return nil, fmt.Errorf("--addr %q: want HOST:PORT", g.addr)
	}
	for _, s := range g.scopes {
		if s == "" || strings.ContainsAny(s, " \"\\") {
			return nil, fmt.Errorf("--require-scope %q is not a scope", s)
		}
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(g.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", g.logLevel)
	}
	return up, nil
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func runGate(ctx context.Context, cmd *cobra.Command, g gateFlags) error {
	upstream, err := g.check()
	if err != nil {
		return err
	}
	log := logging.New(cmd.ErrOrStderr(), logLevel(g.logLevel))
	ln, err := net.Listen("tcp", g.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", g.addr, err)
	}
	defer ln.Close()
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	v, err := rs.New(startCtx, rs.Options{
		Issuer: strings.TrimSuffix(g.issuer, "/"), Audience: g.audience,
		ClientID: g.clientID, ClientSecret: g.clientSecret, Logger: log,
	})
	cancel()
	if err != nil {
		return err
	}
	defer v.Close()

	srv := &http.Server{
		Handler:           newGate(v, upstream, g.scopes, g.stripAuthorization, log),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("gate listening", "addr", ln.Addr().String(), "issuer", g.issuer, "audience", g.audience, "upstream", upstream.Redacted())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, stop := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer stop()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// newGate is the gate's handler: the readiness check, and every other request
// through v's checks to the upstream.
func newGate(v *rs.Validator, upstream *url.URL, scopes []string, stripAuthorization bool, log *slog.Logger) http.Handler {
	// http.DefaultTransport keeps 2 idle connections per host: under concurrent load
	// the gate would open a new connection to the upstream for most requests.
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 256
	proxy := &httputil.ReverseProxy{
		Transport:  transport,
		BufferPool: newBufferPool(),
		// Rewrite, not Director: it runs after the proxy has removed the hop-by-hop
		// headers, so a client's "Connection: X-Auth-Subject" cannot remove what the
		// gate sets below.
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(upstream)
			pr.SetXForwarded()
			h := pr.Out.Header
			stripAuthHeaders(h)
			c, _ := rs.ClaimsFrom(pr.In.Context())
			h.Set(headerSubject, c.Subject)
			h.Set(headerClientID, c.ClientID)
			h.Set(headerScope, strings.Join(c.Scopes, " "))
			if stripAuthorization {
				h.Del("Authorization")
			}
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			log.Warn("gate: upstream failed", "err", err, "method", r.Method, "path", r.URL.Path)
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	guarded := v.Require(scopes...)(proxy)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == gateReadyPath && (r.Method == "GET" || r.Method == "HEAD") {
			w.Header().Set("Cache-Control", "no-store")
			select {
			case <-v.Synced():
				w.WriteHeader(http.StatusOK)
			default:
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			return
		}
		guarded.ServeHTTP(w, r)
	})
}

// bufferPool lends the proxy its copy buffers; without one it allocates (and the
// collector clears) 32 KiB per request.
type bufferPool struct{ pool sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{pool: sync.Pool{New: func() any { return new([32 << 10]byte) }}}
}

func (p *bufferPool) Get() []byte  { return p.pool.Get().(*[32 << 10]byte)[:] }
func (p *bufferPool) Put(b []byte) { p.pool.Put((*[32 << 10]byte)(b)) }

// stripAuthHeaders removes every header an upstream might read as one of the gate's,
// in any case and with "_" for "-" (servers behind CGI-like conventions fold both to
// HTTP_X_AUTH_SUBJECT).
func stripAuthHeaders(h http.Header) {
	for k := range h {
		switch strings.ToLower(strings.ReplaceAll(k, "_", "-")) {
		case "x-auth-subject", "x-auth-client-id", "x-auth-scope":
			delete(h, k)
		}
	}
}
