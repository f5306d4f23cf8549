package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/latchkey/latchkey/rs"
)

// gateUnderTest is a gate over a static key in front of an upstream that records
// the headers it gets.
func gateUnderTest(t testing.TB, strip bool, scopes ...string) (http.Handler, func(claims map[string]any) string, chan http.Header) {
	t.Helper()
	return gateWithRules(t, strip, gateRules{global: rs.Requirements{Scopes: scopes}})
}

// gateWithRules is gateUnderTest with global requirements and routes.
func gateWithRules(t testing.TB, strip bool, rules gateRules, edit ...func(*rs.Options)) (http.Handler, func(claims map[string]any) string, chan http.Header) {
	t.Helper()
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	key := jose.JSONWebKey{Key: priv, KeyID: "k1", Algorithm: "ES256", Use: "sig"}
	o := rs.Options{Issuer: "https://id.example/realms/acme", Audience: "https://api.example",
		Keys: rs.NewStaticKeySet(key), DisableFeed: true}
	for _, e := range edit {
		e(&o)
	}
	v, err := rs.New(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	seen := make(chan http.Header, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Clone()
		w.WriteHeader(204)
	}))
	t.Cleanup(up.Close)
	u, _ := url.Parse(up.URL)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: priv},
		(&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	mint := func(claims map[string]any) string {
		now := time.Now()
		c := map[string]any{"iss": "https://id.example/realms/acme", "aud": "https://api.example", "sub": "alice-id",
			"client_id": "web", "scope": "orders:read profile", "jti": rand.Text(), "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}
		for k, v := range claims {
			c[k] = v
		}
		b, _ := json.Marshal(c)
		jws, _ := signer.Sign(b)
		s, _ := jws.CompactSerialize()
		return s
	}
	h, err := newGate(v, u, rules, strip, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return h, mint, seen
}

// The upstream hears who called from the gate alone: forged X-Auth-* headers in any
// spelling are removed, a Connection header cannot remove the gate's own, and the
// Authorization header is forwarded (or stripped on request).
func TestGate_ForwardsClaimsAndStripsForgedHeaders(t *testing.T) {
	for _, strip := range []bool{false, true} {
		h, mint, seen := gateUnderTest(t, strip, "orders:read")
		tok := mint(nil)
		req := httptest.NewRequest("GET", "/orders", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("X-Auth-Subject", "admin")
		req.Header["x-auth-client-id"] = []string{"evil"}
		req.Header["X_Auth_Scope"] = []string{"orders:write"}
		req.Header["X-AUTH-SUBJECT"] = []string{"root"}
		req.Header.Set("Connection", "X-Auth-Subject, X-Auth-Scope")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 204 {
			t.Fatalf("gate = %d %s", rec.Code, rec.Body)
		}
		got := <-seen
		if got.Get("X-Auth-Subject") != "alice-id" || got.Get("X-Auth-Client-Id") != "web" || got.Get("X-Auth-Scope") != "orders:read profile" {
			t.Fatalf("upstream saw %v", got)
		}
		for k, vals := range got {
			n := strings.ToLower(strings.ReplaceAll(k, "_", "-"))
			if strings.HasPrefix(n, "x-auth-") && (len(vals) != 1 || k != http.CanonicalHeaderKey(k)) {
				t.Fatalf("a forged header reached the upstream: %s: %v", k, vals)
			}
		}
		if fwd := got.Get("Authorization"); (fwd == "Bearer "+tok) == strip {
			t.Fatalf("strip=%v, upstream Authorization = %q", strip, fwd)
		}
	}
}

// The gate's refusals are rs's: no token 401, missing scope 403, nothing reaches the
// upstream; the readiness path answers without a token.
func TestGate_Refusals(t *testing.T) {
	h, mint, seen := gateUnderTest(t, false, "orders:write")
	for _, tt := range []struct {
		auth   string
		status int
	}{
		{"", 401},
		{"Bearer " + mint(nil), 403},
		{"Bearer " + mint(map[string]any{"aud": "https://other.example"}), 401},
	} {
		req := httptest.NewRequest("GET", "/orders", nil)
		if tt.auth != "" {
			req.Header.Set("Authorization", tt.auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tt.status || !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Bearer ") {
			t.Fatalf("= %d %q; want %d", rec.Code, rec.Header().Get("WWW-Authenticate"), tt.status)
		}
	}
	select {
	case hdr := <-seen:
		t.Fatalf("a refused request reached the upstream: %v", hdr)
	default:
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", gateReadyPath, nil))
	if rec.Code != 200 {
		t.Fatalf("ready = %d", rec.Code)
	}
}

// Bad flags: one line naming the flag, exit 1.
func TestGate_BadFlags(t *testing.T) {
	base := []string{"gate", "--issuer", "https://id.example/realms/acme", "--audience", "https://api.example",
		"--upstream", "http://127.0.0.1:9", "--client-id", "gate"}
	secret := env(envGateClientSecret, "gate-secret-0123456789abcdefghijklmnop")
	for _, tt := range []struct {
		env  func(string) string
		args []string
		want string
	}{
		{env(), base, envGateClientSecret},
		{secret, []string{"gate"}, "--issuer is required"},
		{secret, append(base, "--issuer", "http://id.example/realms/acme"), "must be https://"},
		{secret, append(base, "--upstream", "ftp://x"), "--upstream"},
		{secret, append(base, "--addr", "nope"), "--addr"},
		{secret, append(base, "--external-url", "ftp://api.example"), `--external-url "ftp://api.example" is not`},
		{secret, append(base, "--external-url", "https://api.example/?x=1"), `--external-url "https://api.example/?x=1" is not`},
		{secret, append(base, "--require-scope", "a b"), "--require-scope"},
		{secret, append(base, "--nope"), "unknown flag"},
	} {
		code, _, stderr := runCLI(t, tt.env, tt.args...)
		if code != 1 || !strings.Contains(stderr, tt.want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%v: exit %d, %q; want 1 line with %q", tt.args, code, stderr, tt.want)
		}
	}
}

// The gate's cost per request with a warm token, the upstream on loopback (see
// BENCHMARKS.md, "The gate", for the same measured across processes).
func BenchmarkGate_WarmToken(b *testing.B) {
	h, mint, seen := gateUnderTest(b, false)
	go func() {
		for range seen {
		}
	}()
	srv := httptest.NewServer(h)
	defer srv.Close()
	tok := mint(nil)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("GET", srv.URL+"/orders", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			res, err := hc.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
	})
}

// Routes add requirements by ServeMux pattern on top of the global ones: the most
// specific matching pattern wins; a refused request never reaches the upstream;
// the upstream hears the token's roles in X-Auth-Roles, never the client's.
func TestGate_RouteRequirements(t *testing.T) {
	var rules gateRules
	for _, s := range []string{
		"POST /orders/=role:orders-api:write",
		"/admin/=role:admin, scope:orders:admin",
		"GET /orders/{id}/invoice=scope:billing",
	} {
		r, err := parseRoute(s)
		if err != nil {
			t.Fatal(err)
		}
		rules.routes = append(rules.routes, r)
	}
	rules.global.Roles = []rs.Role{rs.RealmRole("user")}
	h, mint, seen := gateWithRules(t, false, rules)
	roles := func(realm []string, clients map[string][]string, scope string) string {
		c := map[string]any{"realm_access": map[string]any{"roles": realm}, "scope": scope}
		ra := map[string]any{}
		for k, v := range clients {
			ra[k] = map[string]any{"roles": v}
		}
		c["resource_access"] = ra
		return mint(c)
	}
	user := roles([]string{"user"}, nil, "orders:read")
	writer := roles([]string{"user"}, map[string][]string{"orders-api": {"write"}}, "orders:read")
	writerNoUser := roles(nil, map[string][]string{"orders-api": {"write"}}, "orders:read")
	admin := roles([]string{"user", "admin"}, nil, "orders:admin")
	adminNoScope := roles([]string{"user", "admin"}, nil, "orders:read")
	billing := roles([]string{"user"}, nil, "billing")
	for _, tt := range []struct {
		method, path, tok string
		status            int
		desc              string
	}{
		{"GET", "/orders/1", user, 204, ""},
		{"GET", "/orders/1", writerNoUser, 403, "realm role user"},
		{"POST", "/orders/", user, 403, "client role orders-api:write"},
		{"POST", "/orders/7/lines", user, 403, "client role orders-api:write"},
		{"POST", "/orders/", writer, 204, ""},
		{"POST", "/orders/", writerNoUser, 403, "realm role user"}, // global still applies
		{"GET", "/admin/users", roles([]string{"user"}, nil, "orders:admin"), 403, "realm role admin"},
		{"GET", "/admin/users", adminNoScope, 403, "required scope"},
		{"GET", "/admin/users", admin, 204, ""},
		{"GET", "/orders/7/invoice", user, 403, "required scope"},
		{"GET", "/orders/7/invoice", billing, 204, ""},
		{"POST", "/other", user, 204, ""},
		// Not clean, or a subtree without its slash: redirected, never proxied.
		{"GET", "/orders/../admin/users", user, 307, ""},
		{"GET", "/admin", user, 307, ""},
		// An encoded slash would put /admin/users past the /admin/ pattern.
		{"GET", "/admin%2Fusers", user, 400, ""},
		{"GET", "/x%5cadmin", user, 400, ""},
	} {
		req := httptest.NewRequest(tt.method, tt.path, nil)
		req.Header.Set("Authorization", "Bearer "+tt.tok)
		req.Header.Set("X-Auth-Roles", "admin")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		ch := rec.Header().Get("WWW-Authenticate")
		if rec.Code != tt.status || (tt.status == 403 && !strings.Contains(ch, tt.desc)) {
			t.Fatalf("%s %s = %d %q; want %d %q", tt.method, tt.path, rec.Code, ch, tt.status, tt.desc)
		}
		select {
		case got := <-seen:
			if tt.status != 204 {
				t.Fatalf("%s %s: a refused request reached the upstream", tt.method, tt.path)
			}
			if tt.tok == user && got.Get("X-Auth-Roles") != "user" {
				t.Fatalf("X-Auth-Roles = %q", got.Values("X-Auth-Roles"))
			}
		default:
			if tt.status == 204 {
				t.Fatalf("%s %s: not proxied", tt.method, tt.path)
			}
		}
	}
	req := httptest.NewRequest("GET", "/x", nil)
	req.Header.Set("Authorization", "Bearer "+roles([]string{"user", "a b", "ops", "orders:read"}, map[string][]string{"z": {"r"}, "orders-api": {"write", "w:x"}}, ""))
	h.ServeHTTP(httptest.NewRecorder(), req)
	// Each reads back with rs.ParseRole; one with a space could not, and is left out.
	if got := (<-seen).Values("X-Auth-Roles"); len(got) != 1 || got[0] != "user ops /orders:read orders-api:write orders-api/w:x z:r" {
		t.Fatalf("X-Auth-Roles = %q", got)
	}
}

func TestGate_BadRequirementFlags(t *testing.T) {
	base := []string{"gate", "--issuer", "https://id.example/realms/acme", "--audience", "https://api.example",
		"--upstream", "http://127.0.0.1:9", "--client-id", "gate"}
	secret := env(envGateClientSecret, "gate-secret-0123456789abcdefghijklmnop")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--require-role", "a b"}, `--require-role "a b"`},
		{[]string{"--require-role", "api:"}, `--require-role "api:"`},
		{[]string{"--route", "/orders/"}, "want PATTERN=REQ"},
		{[]string{"--route", "/orders/="}, "want PATTERN=REQ"},
		{[]string{"--route", "/orders/=admin"}, `"admin" is not scope:X`},
		{[]string{"--route", "/orders/=role:"}, `"role:" is not role:NAME`},
		{[]string{"--route", "/orders/=scope:"}, `"" is not a scope`},
		{[]string{"--route", "/a/=scope:x", "--route", "/a/=scope:y"}, `--route "/a/"`},
		{[]string{"--route", "GET /a/{x}/{x}=scope:x"}, `--route "GET /a/{x}/{x}"`},
	} {
		code, _, stderr := runCLI(t, secret, append(base, tt.args...)...)
		if code != 1 || !strings.Contains(stderr, tt.want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%v: exit %d, %q; want 1 line with %q", tt.args, code, stderr, tt.want)
		}
	}
	// A route that is itself a catch-all stands in for the gate's own.
	for _, catchAll := range []string{"/=role:admin", "/{path...}=role:admin"} {
		r, _ := parseRoute(catchAll)
		h, mint, _ := gateWithRules(t, false, gateRules{routes: []gateRoute{r}})
		req := httptest.NewRequest("GET", "/anything", nil)
		req.Header.Set("Authorization", "Bearer "+mint(nil))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 403 || !strings.Contains(rec.Header().Get("WWW-Authenticate"), "realm role admin") {
			t.Fatalf("%s: = %d %q", catchAll, rec.Code, rec.Header().Get("WWW-Authenticate"))
		}
	}
	// The environment holds routes separated by ";".
	if got := splitRoutes(" POST /orders/=role:w ; ;/admin/=role:admin"); len(got) != 2 || got[0] != "POST /orders/=role:w" || got[1] != "/admin/=role:admin" {
		t.Fatalf("splitRoutes = %q", got)
	}
}

// dpopProof is a DPoP proof (RFC 9449 §4.2) by k for method and htu, bound to tok.
func dpopProof(t testing.TB, k *ecdsa.PrivateKey, method, htu, tok string) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k}, (&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(tok))
	b, _ := json.Marshal(map[string]any{"jti": rand.Text(), "htm": method, "htu": htu, "iat": time.Now().Unix(),
		"ath": base64.RawURLEncoding.EncodeToString(sum[:])})
	jws, err := s.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := jws.CompactSerialize()
	return out
}

// A DPoP-bound token passes the gate with a proof naming --external-url and the
// path; the upstream gets the token but never the proof. As a bearer token, or
// with a proof naming the URL the gate itself was reached at, it is refused.
func TestGate_DPoP(t *testing.T) {
	h, mint, seen := gateWithRules(t, false, gateRules{}, func(o *rs.Options) { o.ExternalURL = "https://api.example.com" })
	holder, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub := jose.JSONWebKey{Key: holder.Public()}
	sum, _ := pub.Thumbprint(crypto.SHA256)
	tok := mint(map[string]any{"cnf": map[string]any{"jkt": base64.RawURLEncoding.EncodeToString(sum)}})
	for _, tt := range []struct {
		name, scheme, htu string
		status            int
		code              string
	}{
		{"proof of the external URL", "DPoP", "https://api.example.com/orders", 204, ""},
		{"bearer", "Bearer", "https://api.example.com/orders", 401, "invalid_token"},
		{"proof of the URL the gate saw", "DPoP", "http://example.com/orders", 401, "invalid_dpop_proof"},
	} {
		req := httptest.NewRequest("GET", "/orders", nil)
		req.Header.Set("Authorization", tt.scheme+" "+tok)
		req.Header.Set("DPoP", dpopProof(t, holder, "GET", tt.htu, tok))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tt.status || (tt.code != "" && !strings.Contains(rec.Header().Get("WWW-Authenticate"), `error="`+tt.code+`"`)) {
			t.Fatalf("%s: %d %q; want %d %s", tt.name, rec.Code, rec.Header().Get("WWW-Authenticate"), tt.status, tt.code)
		}
		if tt.status != 204 {
			continue
		}
		got := <-seen
		if got.Get("X-Auth-Subject") != "alice-id" || got.Get("Authorization") != "DPoP "+tok || got.Values("DPoP") != nil {
			t.Fatalf("%s: upstream saw Authorization %q, DPoP %q", tt.name, got.Get("Authorization"), got.Values("DPoP"))
		}
	}
	select {
	case hdr := <-seen:
		t.Fatalf("a refused request reached the upstream: %v", hdr)
	default:
	}
}
