package oauth

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/latchkey/latchkey/internal/clientsecret"
	"github.com/latchkey/latchkey/internal/keys"
	"github.com/latchkey/latchkey/internal/logging"
	"github.com/latchkey/latchkey/internal/masterkey"
	"github.com/latchkey/latchkey/internal/metrics"
	"github.com/latchkey/latchkey/internal/password"
	"github.com/latchkey/latchkey/internal/protocol"
	"github.com/latchkey/latchkey/internal/seed"
	"github.com/latchkey/latchkey/internal/server"
	"github.com/latchkey/latchkey/internal/storecache"
	"github.com/latchkey/latchkey/internal/token"
	"github.com/latchkey/latchkey/internal/web"
	"github.com/latchkey/latchkey/storage"
	"github.com/latchkey/latchkey/storage/postgres"
	"github.com/latchkey/latchkey/storage/postgres/pgtest"
	"github.com/latchkey/latchkey/storage/sqlite"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// clientKey is the private_key_jwt client's key pair.
var clientPub, clientPriv, _ = ed25519.GenerateKey(rand.Reader)

func seedYAML() string {
	jwk, _ := json.Marshal(jose.JSONWebKey{Key: clientPub, KeyID: "pk-1", Algorithm: "EdDSA", Use: "sig"})
	return fmt.Sprintf(`
realms:
  - name: acme
    clients:
      - id: svc
        secret: svc-secret-123-0123456789abcdefghijklmnop
        grant_types: [client_credentials]
        scopes: [orders:read, orders:write]
        audiences: [https://api.example/orders, https://api.example/billing]
      - id: svc2
        secret: svc2-secret-456-0123456789abcdefghijklmnop
        grant_types: [client_credentials]
        scopes: [orders:read]
      - id: opq
        secret: opq-secret-789-0123456789abcdefghijklmnop
        grant_types: [client_credentials]
        scopes: [orders:read]
        access_token_format: opaque
      - id: pk
        jwks: {"keys": [%s]}
        grant_types: [client_credentials]
        scopes: [orders:read]
      - id: spa
        redirect_uris: [http://127.0.0.1:9999/cb, http://127.0.0.1:9999/other]
        post_logout_redirect_uris: [http://127.0.0.1:9999/bye]
        web_origins: [+, http://127.0.0.1:9998]
        grant_types: [authorization_code, refresh_token]
        scopes: [openid, profile, offline_access]
      - id: strict
        secret: strict-secret-111-0123456789abcdefghijklmnop
        redirect_uris: [http://127.0.0.1:9999/cb]
        grant_types: [authorization_code, refresh_token]
        scopes: [openid, offline_access]
        refresh_retry_window: 0s
      - id: kcrt
        secret: kcrt-secret-222-0123456789abcdefghijklmnop
        redirect_uris: [http://127.0.0.1:9999/cb]
        grant_types: [authorization_code, refresh_token]
        scopes: [openid, profile, offline_access]
        refresh_token_format: jwt
      - id: mob
        secret: mob-secret-333-0123456789abcdefghijklmnop
        redirect_uris: [http://127.0.0.1:9999/cb]
        post_logout_redirect_uris: [http://127.0.0.1:9999/bye]
        grant_types: [authorization_code, refresh_token]
        scopes: [openid, profile, offline_access]
        refresh_idle: 960h
        refresh_absolute: 2160h
        refresh_token_format: jwt
      - id: third
        name: Third Party App
        secret: third-secret-321-0123456789abcdefghijklmnop
        third_party: true
        redirect_uris: [http://127.0.0.1:9999/cb]
        grant_types: [authorization_code]
        scopes: [openid, email]
      - id: off
        secret: off-secret-000-0123456789abcdefghijklmnop
        grant_types: [client_credentials]
        disabled: true
      - id: web
        name: Web App
        secret: web-secret-123-0123456789abcdefghijklmnop
        redirect_uris: [http://127.0.0.1:9999/cb]
        post_logout_redirect_uris: [http://127.0.0.1:9999/bye]
        web_origins: [http://127.0.0.1:9997]
        grant_types: [authorization_code, refresh_token]
        scopes: [openid, profile, email, offline_access]
    users:
      - username: alice
        password: alice-password-1
        email: alice@example.com
        email_verified: true
        name: Alice Liddell
      - username: bob
        password: bob-password-22
        disabled: true
  - name: ed
    signing_alg: EdDSA
    clients:
      - id: svc
        secret: svc-secret-123-0123456789abcdefghijklmnop
        grant_types: [client_credentials]
        scopes: [orders:read]
  - name: rs
    signing_alg: RS256
    access_token_ttl: 2m
    clients:
      - id: svc
        secret: svc-secret-123-0123456789abcdefghijklmnop
        grant_types: [client_credentials]
        scopes: [orders:read]
`, jwk)
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// instance is one Latchkey instance serving over httptest.
type instance struct {
	url     string
	handler http.Handler
	store   storage.Store
	tokens  *token.Service
	keys    *keys.Manager
	clock   *clock
	logs    *bytes.Buffer
	logMu   *sync.Mutex
}

func (i *instance) issuer(realm string) string { return i.url + "/realms/" + realm }

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

var masterKey, _ = masterkey.Parse(hex.EncodeToString(bytes.Repeat([]byte{7}, 32)))

// newInstance starts an instance on store; the first instance of a store seeds it.
func newInstance(t testing.TB, store storage.Store, clk *clock, seedIt bool) *instance {
	return newInstanceBehind(t, store, clk, seedIt, "", slog.LevelDebug)
}

// newInstanceBehind starts an instance whose public base URL is baseURL, as when
// several instances stand behind one load balancer ("" for its own address).
func newInstanceBehind(t testing.TB, store storage.Store, clk *clock, seedIt bool, baseURL string, level slog.Level) *instance {
	t.Helper()
	return newInstanceObserved(t, store, clk, seedIt, baseURL, level, nil)
}

// newInstanceObserved is newInstanceBehind with metrics, as serve --metrics-addr
// wires them, when met is set.
func newInstanceObserved(t testing.TB, store storage.Store, clk *clock, seedIt bool, baseURL string, level slog.Level, met *metrics.Metrics) *instance {
	t.Helper()
	if met != nil {
		store = met.Store(store)
	}
	inst := &instance{store: store, clock: clk, logs: &bytes.Buffer{}, logMu: &sync.Mutex{}}
	log := logging.New(lockedWriter{inst.logMu, inst.logs}, level)
	secrets := clientsecret.NewHasher(masterKey)
	if seedIt {
		f, err := seed.Parse("test.yaml", []byte(seedYAML()))
		if err != nil {
			t.Fatal(err)
		}
		a := &seed.Applier{Store: store, Secrets: secrets, Password: password.Params{Memory: 64, Time: 1, Threads: 1}, Now: clk.Now}
		if _, err := a.Apply(t.Context(), f); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewUnstartedServer(nil)
	inst.url = "http://" + srv.Listener.Addr().String()
	if baseURL == "" {
		baseURL = inst.url
	}
	// As serve does: realms and clients cached for a second in front of the store.
	cached := storecache.New(store, time.Second, clk.Now)
	inst.keys = keys.NewManager(cached, masterKey, keys.DefaultPolicy, clk.Now)
	inst.tokens = token.NewService(cached, inst.keys, token.NewDenyList(), baseURL, clk.Now)
	pages, err := web.NewPages()
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Store: cached, Tokens: inst.tokens, Keys: inst.keys, Secrets: secrets, MasterKey: masterKey,
		Pages: pages, Limiter: web.NewLimiter(store, "login", web.LimiterConfig{InFlightInStore: true}, clk.Now), Log: log, BaseURL: baseURL, Now: clk.Now}
	if met != nil {
		inst.tokens.Observe(met)
		cfg.Observer = met
	}
	routes := server.New(log, store, New(cfg))
	if met != nil {
		routes.Instrument(met)
	}
	inst.handler = routes.Handler()
	srv.Config.Handler = inst.handler
	srv.Start()
	t.Cleanup(srv.Close)
	return inst
}

// backends runs fn against a fresh SQLite store and a fresh PostgreSQL database.
func backends(t *testing.T, fn func(t *testing.T, open func() storage.Store)) {
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "latchkey.db")
		fn(t, func() storage.Store {
			st, err := sqlite.Open(t.Context(), sqlite.Config{Path: path})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		})
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := pgtest.DSN(t)
		fn(t, func() storage.Store {
			st, err := postgres.Open(t.Context(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		})
	})
}

// start is the common case: one seeded instance on each backend.
func start(t *testing.T, fn func(t *testing.T, inst *instance)) {
	backends(t, func(t *testing.T, open func() storage.Store) {
		fn(t, newInstance(t, open(), &clock{t: time.Now().Truncate(time.Second)}, true))
	})
}

type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

// post sends a form; basic is "id:secret" or "".
func post(t *testing.T, endpoint, basic string, form url.Values) response {
	t.Helper()
	req, _ := http.NewRequest("POST", endpoint, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id, secret, ok := strings.Cut(basic, ":"); ok {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) response {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := response{status: res.StatusCode, header: res.Header, raw: string(raw)}
	json.Unmarshal(raw, &r.body)
	return r
}

func form(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v
}

func (i *instance) tokenURL(realm string) string      { return i.issuer(realm) + tokenPath }
func (i *instance) introspectURL(realm string) string { return i.issuer(realm) + introspectPath }
func (i *instance) revokeURL(realm string) string     { return i.issuer(realm) + revokePath }

// clientCredentials gets a token, failing the test unless it is issued.
func (i *instance) clientCredentials(t *testing.T, realm, basic string, extra ...string) response {
	t.Helper()
	r := post(t, i.tokenURL(realm), basic, form(append([]string{"grant_type", "client_credentials"}, extra...)...))
	if r.status != 200 {
		t.Fatalf("client_credentials = %d %s", r.status, r.raw)
	}
	return r
}

func (i *instance) introspect(t *testing.T, realm, tok string) response {
	t.Helper()
	return post(t, i.introspectURL(realm), "svc:svc-secret-123-0123456789abcdefghijklmnop", form("token", tok))
}

func wantInactive(t *testing.T, r response) {
	t.Helper()
	if r.status != 200 || strings.TrimSpace(r.raw) != `{"active":false}` {
		t.Fatalf("introspection = %d %s; want exactly {\"active\":false}", r.status, r.raw)
	}
}

func wantError(t *testing.T, r response, status int, code protocol.Code) {
	t.Helper()
	if r.status != status || r.body["error"] != string(code) {
		t.Fatalf("got %d %s; want %d %s", r.status, r.raw, status, code)
	}
	if r.header.Get("Content-Type") != "application/json" || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("error headers %v", r.header)
	}
}

// fetchJWKS gets a realm's JWKS the way a resource server does.
func fetchJWKS(t *testing.T, inst *instance, realm string) jose.JSONWebKeySet {
	t.Helper()
	d := do(t, mustReq(t, "GET", inst.issuer(realm)+"/.well-known/openid-configuration"))
	res := do(t, mustReq(t, "GET", d.body["jwks_uri"].(string)))
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(res.raw), &set); err != nil {
		t.Fatal(err)
	}
	return set
}

func mustReq(t *testing.T, method, u string) *http.Request {
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// verifyLocally checks a JWT access token with go-jose and the JWKS alone, as an API
// validating tokens locally would, and returns its header typ and claims.
func verifyLocally(t *testing.T, set jose.JSONWebKeySet, jwt string) (string, map[string]any) {
	t.Helper()
	jws, err := jose.ParseSignedCompact(jwt, []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA, jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	h := jws.Signatures[0].Protected
	ks := set.Key(h.KeyID)
	if len(ks) != 1 || ks[0].Algorithm != h.Algorithm {
		t.Fatalf("kid %s not in JWKS with alg %s", h.KeyID, h.Algorithm)
	}
	payload, err := jws.Verify(ks[0])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	json.Unmarshal(payload, &claims)
	typ, _ := h.ExtraHeaders[jose.HeaderType].(string)
	return typ, claims
}
