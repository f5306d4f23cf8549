package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
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
	envGateRequireRole  = "LATCHKEY_GATE_REQUIRE_ROLE"
	envGateRoutes       = "LATCHKEY_GATE_ROUTES"
	envGateExternalURL  = "LATCHKEY_GATE_EXTERNAL_URL"
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
	headerRoles    = "X-Auth-Roles"
)

type gateFlags struct {
	issuer, audience, upstream, addr string
	externalURL                      string
	clientID, clientSecret           string
	secretFile                       string
	scopes, roles, routes            []string
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
headers X-Auth-Subject, X-Auth-Client-Id, X-Auth-Scope and X-Auth-Roles (both
space-separated; roles as NAME for a realm role, CLIENT:NAME for a client role, or
CLIENT/NAME and /NAME where a name holds a colon). Those
headers are removed from what the client sends, so the upstream can believe them when
only the gate can reach it.

Every request's token must have each --require-scope and carry each --require-role
(NAME: a realm role; CLIENT:NAME: a role of that client, from realm_access and
resource_access as issued with the roles scope; CLIENT is what precedes the last
colon, and CLIENT/NAME or /NAME, for a realm role, says it when names hold colons). --route 'PATTERN=REQ[,REQ...]' adds
requirements for the requests PATTERN matches, a net/http ServeMux pattern such as
'POST /orders/' or 'GET /orders/{id}/invoice'; REQ is scope:X, role:NAME or
role:CLIENT:NAME. Of several matching patterns the most specific one applies, on top
of the global requirements. With routes, requests are routed as ServeMux routes them:
a path that is not clean (.., //) or a subtree without its trailing slash gets a
redirect to the canonical path, and a path with an encoded slash (%2F, %5C) is refused
with 400, so the upstream never sees a path the patterns did not.

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

DPoP (RFC 9449): a token bound to a key (cnf.jkt) is accepted only with the DPoP
scheme (Authorization: DPoP TOKEN) and a DPoP header holding a proof signed with that
key, for this request's method and URL, at most a minute old, never used before at
this gate, and carrying the token's hash (ath); sent as a Bearer token it is refused.
Unbound tokens may use the DPoP scheme too, with a valid proof. The URL a proof must
name (htu) is --external-url followed by the request's path: set it to the URL
clients use to reach the gate, such as https://api.example.com, whenever a load
balancer or proxy stands in front (the gate itself serves plain HTTP, so without it
the URL is http:// and the Host header the client sent, and every proof made for an
https:// URL is refused). Forwarding headers (X-Forwarded-*) are never believed.
Each gate remembers the proofs it has accepted in memory (bounded; when it is full
of live ones, new proofs get 503 for a moment rather than old ones being forgotten):
several gates behind one load balancer do not share it, so a captured proof could
be used once more at each other gate within its minute.

The Authorization header is forwarded unless --strip-authorization: the token was
issued for this API (its aud), so the upstream may check it again or read claims the
headers do not carry. Strip it when the upstream should never hold tokens. The DPoP
header is never forwarded: the proof has been checked and used up here, and with the
token it would let whoever reads it upstream repeat the request once at another gate
instance (which has not seen its jti) within its minute; without the proof a
DPoP-bound token is useless to them.

The issuer must be https://, except on a loopback address. Every flag can also be set
through its environment variable (--require-scope and --require-role:
space-separated; --route: separated by ";").`,
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
	f.StringVar(&g.externalURL, "external-url", getenv(envGateExternalURL), "the URL clients reach the gate at (behind a proxy or load balancer), e.g. https://api.example.com: DPoP proofs must name it plus the request path (default: http:// and the request's Host) ["+envGateExternalURL+"]")
	f.StringVar(&g.clientID, "client-id", getenv(envGateClientID), "the gate's confidential client at the issuer ["+envGateClientID+"]")
	f.StringVar(&g.clientSecret, "client-secret", "", "its secret; visible in ps, so prefer "+envGateClientSecret+" or --client-secret-file")
	f.StringVar(&g.secretFile, "client-secret-file", "", "a file holding the client's secret")
	f.StringArrayVar(&g.scopes, "require-scope", strings.Fields(getenv(envGateRequireScope)), "a scope every request's token must have (repeatable) ["+envGateRequireScope+"]")
	f.StringArrayVar(&g.roles, "require-role", strings.Fields(getenv(envGateRequireRole)), "a role every request's token must carry: NAME (realm role), CLIENT:NAME or CLIENT/NAME (client role) (repeatable) ["+envGateRequireRole+"]")
	f.StringArrayVar(&g.routes, "route", splitRoutes(getenv(envGateRoutes)), "PATTERN=REQ[,REQ...]: requirements for requests matching a ServeMux pattern; REQ is scope:X, role:NAME or role:CLIENT:NAME (repeatable) ["+envGateRoutes+"]")
	f.BoolVar(&g.stripAuthorization, "strip-authorization", false, "do not forward the Authorization header to the upstream")
	f.StringVar(&g.logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

// splitRoutes reads LATCHKEY_GATE_ROUTES: routes separated by ";".
func splitRoutes(s string) []string {
	var out []string
	for r := range strings.SplitSeq(s, ";") {
		if r = strings.TrimSpace(r); r != "" {
			out = append(out, r)
		}
	}
	return out
}

// gateRoute is one --route: the requests its pattern matches need req on top of
// the global requirements.
type gateRoute struct {
	pattern string
	req     rs.Requirements
}

// parseRoute reads PATTERN=REQ[,REQ...]; the pattern is what precedes the first "=".
func parseRoute(s string) (gateRoute, error) {
	pattern, reqs, ok := strings.Cut(s, "=")
	pattern = strings.TrimSpace(pattern)
	if !ok || pattern == "" || strings.TrimSpace(reqs) == "" {
		return gateRoute{}, fmt.Errorf("--route %q: want PATTERN=REQ[,REQ...]", s)
	}
	r := gateRoute{pattern: pattern}
	for req := range strings.SplitSeq(reqs, ",") {
		req = strings.TrimSpace(req)
		kind, val, _ := strings.Cut(req, ":")
		switch kind {
		case "scope":
			if !isScopeToken(val) {
				return gateRoute{}, fmt.Errorf("--route %q: %q is not a scope", s, val)
			}
			r.req.Scopes = append(r.req.Scopes, val)
		case "role":
			role, err := rs.ParseRole(val)
			if err != nil {
				return gateRoute{}, fmt.Errorf("--route %q: %q is not role:NAME or role:CLIENT:NAME", s, req)
			}
			r.req.Roles = append(r.req.Roles, role)
		default:
			return gateRoute{}, fmt.Errorf("--route %q: %q is not scope:X, role:NAME or role:CLIENT:NAME", s, req)
		}
	}
	return r, nil
}

// isScopeToken: RFC 6749 §3.3 scope-token, minus the quote and backslash that a
// challenge would have to escape.
func isScopeToken(s string) bool {
	return s != "" && !strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r > '~' || r == '"' || r == '\\' })
}

// gateRules are the checked requirements: the global ones and the routes'.
type gateRules struct {
	global rs.Requirements
	routes []gateRoute
}

// check validates the flags, each failure naming its flag.
func (g *gateFlags) check() (upstream *url.URL, rules gateRules, err error) {
	upstream, err = g.checkBasics()
	if err != nil {
		return nil, rules, err
	}
	rules.global.Scopes = g.scopes
	for _, s := range g.roles {
		r, err := rs.ParseRole(s)
		if err != nil {
			return nil, rules, fmt.Errorf("--require-role %q: want NAME, CLIENT:NAME or CLIENT/NAME", s)
		}
		rules.global.Roles = append(rules.global.Roles, r)
	}
	for _, s := range g.routes {
		r, err := parseRoute(s)
		if err != nil {
			return nil, rules, err
		}
		rules.routes = append(rules.routes, r)
	}
	// ServeMux panics on a pattern it cannot parse or that conflicts with another:
	// find out now, as a flag error.
	if _, err := routeMux(rules, func(rs.Requirements) http.Handler { return http.NotFoundHandler() }); err != nil {
		return nil, rules, err
	}
	return upstream, rules, nil
}

// checkBasics validates the flags other than the requirements.
func (g *gateFlags) checkBasics() (upstream *url.URL, err error) {
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
	if g.externalURL != "" {
		u, err := url.Parse(g.externalURL)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil ||
			u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
			return nil, fmt.Errorf("--external-url %q is not an http:// or https:// URL without query or fragment", g.externalURL)
		}
	}
	if _, _, err := net.SplitHostPort(g.addr); err != nil {
		return nil, fmt.Errorf("--addr %q: want HOST:PORT", g.addr)
	}
	for _, s := range g.scopes {
		if !isScopeToken(s) {
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
	upstream, rules, err := g.check()
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
		ClientID: g.clientID, ClientSecret: g.clientSecret, Logger: log, ExternalURL: g.externalURL,
	})
	cancel()
	if err != nil {
		return err
	}
	defer v.Close()

	gate, err := newGate(v, upstream, rules, g.stripAuthorization, log)
	if err != nil {
		return err
	}
	srv, errc := serveSmall(gate, ln, log)
	log.Info("gate listening", "addr", ln.Addr().String(), "issuer", g.issuer, "audience", g.audience, "upstream", upstream.Redacted(), "external_url", g.externalURL)
	return shutdownOnDone(ctx, srv, errc, log)
}

// newGate is the gate's handler: the readiness check, and every other request
// through v's checks to the upstream.
func newGate(v *rs.Validator, upstream *url.URL, rules gateRules, stripAuthorization bool, log *slog.Logger) (http.Handler, error) {
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
			// The proof was checked and used up here; forwarded, it would be one
			// more use of the token for whoever reads it upstream (see the help).
			h.Del("DPoP")
			c, _ := rs.ClaimsFrom(pr.In.Context())
			h.Set(headerSubject, c.Subject)
			h.Set(headerClientID, c.ClientID)
			h.Set(headerScope, strings.Join(c.Scopes, " "))
			h.Set(headerRoles, rolesHeader(c))
			if stripAuthorization {
				h.Del("Authorization")
			}
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			log.Warn("gate: upstream failed", "err", err, "method", r.Method, "path", r.URL.Path)
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	guarded, err := routeMux(rules, func(req rs.Requirements) http.Handler { return v.RequireAll(req)(proxy) })
	if err != nil {
		return nil, err
	}
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
	}), nil
}

// routeMux is the handler that applies the rules: with no routes, the global
// requirements to every request; with routes, a ServeMux whose most specific
// matching pattern picks the route's requirements on top of the global ones, and
// whose catch-all "/" has the global ones alone.
func routeMux(rules gateRules, guard func(rs.Requirements) http.Handler) (h http.Handler, err error) {
	if len(rules.routes) == 0 {
		return guard(rules.global), nil
	}
	mux := http.NewServeMux()
	var pattern string
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("--route %q: %v", pattern, p)
		}
	}()
	for _, r := range rules.routes {
		pattern = r.pattern
		mux.Handle(pattern, guard(rs.Requirements{
			Scopes: slices.Concat(rules.global.Scopes, r.req.Scopes),
			Roles:  slices.Concat(rules.global.Roles, r.req.Roles),
		}))
	}
	// The catch-all, unless a route already is one ("/", "/{path...}"): ServeMux
	// then panics, and that route's requirements cover every request anyway.
	func() {
		defer func() { recover() }()
		mux.Handle("/", guard(rules.global))
	}()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// ServeMux matches a segment holding an encoded slash as one segment, where an
		// upstream that decodes first would see two: refuse what the patterns could
		// misjudge.
		if p := strings.ToLower(r.URL.EscapedPath()); strings.Contains(p, "%2f") || strings.Contains(p, "%5c") {
			http.Error(w, "encoded slash in the path", http.StatusBadRequest)
			return
		}
		mux.ServeHTTP(w, r)
	}), nil
}

// rolesHeader is X-Auth-Roles: the realm roles, then each client's roles by client
// ID, space-separated, each as rs.Role.String writes it (NAME, CLIENT:NAME, or with
// a slash where a name holds a colon). A role that would not read back as itself
// (a space, a quote, a control character) is left out.
func rolesHeader(c *rs.Claims) string {
	var b strings.Builder
	add := func(r rs.Role) {
		if p, err := rs.ParseRole(r.String()); err != nil || p != r {
			return
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(r.String())
	}
	for _, n := range c.RealmRoles {
		add(rs.RealmRole(n))
	}
	for _, client := range slices.Sorted(maps.Keys(c.ClientRoles)) {
		for _, n := range c.ClientRoles[client] {
			add(rs.ClientRole(client, n))
		}
	}
	return b.String()
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
		case "x-auth-subject", "x-auth-client-id", "x-auth-scope", "x-auth-roles":
			delete(h, k)
		}
	}
}

// serveSmall serves h on ln with the timeouts and bounds of Latchkey's small
// servers (gate, bff), returning the server and where Serve's error arrives.
func serveSmall(h http.Handler, ln net.Listener, log *slog.Logger) (*http.Server, <-chan error) {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	return srv, errc
}

// shutdownOnDone waits until ctx ends (then shuts srv down gracefully, giving
// requests in flight 10 s) or until Serve fails.
func shutdownOnDone(ctx context.Context, srv *http.Server, errc <-chan error, log *slog.Logger) error {
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
