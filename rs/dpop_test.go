package rs

import (
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// thumbprint is the RFC 7638 SHA-256 thumbprint of k's public key, base64url.
func thumbprint(t testing.TB, k jose.JSONWebKey) string {
	t.Helper()
	pub := k.Public()
	sum, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(sum)
}

func ath(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// proof is a DPoP proof (RFC 9449 §4.2) signed by k with its public key in the
// header, for method and url at iat, bound to tok; edit changes its claims.
func proof(t testing.TB, k jose.JSONWebKey, method, url, tok string, iat time.Time, edit ...func(map[string]any)) string {
	t.Helper()
	c := map[string]any{"jti": rand64(), "htm": method, "htu": url, "iat": iat.Unix(), "ath": ath(tok)}
	for _, e := range edit {
		e(c)
	}
	opts := (&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt")
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(k.Algorithm), Key: k.Key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(c)
	jws, err := s.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var (
	jtiMu sync.Mutex
	jtiN  int
)

func rand64() string {
	jtiMu.Lock()
	defer jtiMu.Unlock()
	jtiN++
	return base64.RawURLEncoding.EncodeToString([]byte{byte(jtiN >> 16), byte(jtiN >> 8), byte(jtiN), 7, 7, 7})
}

// dpopReq is GET https://orders.example/orders over TLS with the token under
// scheme and the proofs as DPoP headers.
func dpopReq(method, scheme, tok string, proofs ...string) *http.Request {
	r := httptest.NewRequest(method, "https://orders.example/orders", nil)
	r.Header.Set("Authorization", scheme+" "+tok)
	for _, p := range proofs {
		r.Header.Add("DPoP", p)
	}
	return r
}

const ordersURL = "https://orders.example/orders"

// What a client sees for each DPoP request: the happy path and every refusal.
func TestDPoP_Middleware(t *testing.T) {
	clk := newClock()
	now := clk.Now()
	ec := ecKey(t, "ec-1")
	v := staticValidator(t, clk, ec)
	holder, other := ecKey(t, ""), rsaKey(t, "")
	jkt := thumbprint(t, holder)
	bound := sign(t, ec, "at+jwt", accessClaims(now, func(c map[string]any) { c["cnf"] = map[string]any{"jkt": jkt} }))
	unbound := sign(t, ec, "at+jwt", accessClaims(now))
	x5t := sign(t, ec, "at+jwt", accessClaims(now, func(c map[string]any) { c["cnf"] = map[string]any{"x5t#S256": jkt} }))
	good := func(edit ...func(map[string]any)) string {
		return proof(t, holder, "GET", ordersURL, bound, now, edit...)
	}
	with := func(k string, val any) func(map[string]any) { return func(c map[string]any) { c[k] = val } }
	hsKey := jose.JSONWebKey{Key: []byte("0123456789abcdef0123456789abcdef"), Algorithm: string(jose.HS256)}
	replayed := good()

	var seen *Claims
	h := v.Require("orders:read")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen, _ = ClaimsFrom(r.Context())
		w.WriteHeader(204)
	}))
	write := v.Require("orders:write")(http.NotFoundHandler())

	tests := []struct {
		name   string
		req    *http.Request
		h      http.Handler
		status int
		scheme string // of the challenge
		code   string // error in the challenge and body
		desc   string // part of error_description
	}{
		{"bound token with its proof", dpopReq("GET", "DPoP", bound, good()), h, 204, "", "", ""},
		{"scheme in lower case", dpopReq("GET", "dpop", bound, good()), h, 204, "", "", ""},
		{"unbound token with a proof (RFC 9449 §7.2 forbids only the downgrade)", dpopReq("GET", "DPoP", unbound, proof(t, other, "GET", ordersURL, unbound, now)), h, 204, "", "", ""},
		{"htu with query and default port", dpopReq("GET", "DPoP", bound, good(with("htu", "https://ORDERS.example:443/orders?x=1"))), h, 204, "", "", ""},
		{"iat a little ahead", dpopReq("GET", "DPoP", bound, good(with("iat", now.Add(5*time.Second).Unix()))), h, 204, "", "", ""},
		{"first use of a proof", dpopReq("GET", "DPoP", bound, replayed), h, 204, "", "", ""},

		{"replayed proof", dpopReq("GET", "DPoP", bound, replayed), h, 401, "DPoP", "invalid_dpop_proof", "already used"},
		{"bound token as a bearer token", dpopReq("GET", "Bearer", bound), h, 401, "Bearer", "invalid_token", "bound to a DPoP key"},
		{"bound token as a bearer token with a proof", dpopReq("GET", "Bearer", bound, good()), h, 401, "Bearer", "invalid_token", "bound to a DPoP key"},
		{"no proof", dpopReq("GET", "DPoP", bound), h, 401, "DPoP", "invalid_dpop_proof", "proof is required"},
		{"unbound token without a proof", dpopReq("GET", "DPoP", unbound), h, 401, "DPoP", "invalid_dpop_proof", "proof is required"},
		{"two proofs", dpopReq("GET", "DPoP", bound, good(), good()), h, 401, "DPoP", "invalid_dpop_proof", "more than one"},
		{"another key", dpopReq("GET", "DPoP", bound, proof(t, other, "GET", ordersURL, bound, now)), h, 401, "DPoP", "invalid_token", "key binding"},
		{"ath of another token", dpopReq("GET", "DPoP", bound, good(with("ath", ath(unbound)))), h, 401, "DPoP", "invalid_dpop_proof", "ath"},
		{"no ath", dpopReq("GET", "DPoP", bound, good(func(c map[string]any) { delete(c, "ath") })), h, 401, "DPoP", "invalid_dpop_proof", "ath"},
		{"htm POST on a GET", dpopReq("GET", "DPoP", bound, good(with("htm", "POST"))), h, 401, "DPoP", "invalid_dpop_proof", "htm"},
		{"htm in lower case", dpopReq("GET", "DPoP", bound, good(with("htm", "get"))), h, 401, "DPoP", "invalid_dpop_proof", "htm"},
		{"htu of another host", dpopReq("GET", "DPoP", bound, good(with("htu", "https://evil.example/orders"))), h, 401, "DPoP", "invalid_dpop_proof", "htu"},
		{"htu of another path", dpopReq("GET", "DPoP", bound, good(with("htu", "https://orders.example/admin"))), h, 401, "DPoP", "invalid_dpop_proof", "htu"},
		{"htu over plain http", dpopReq("GET", "DPoP", bound, good(with("htu", "http://orders.example/orders"))), h, 401, "DPoP", "invalid_dpop_proof", "htu"},
		{"stale iat", dpopReq("GET", "DPoP", bound, good(with("iat", now.Add(-2*time.Minute).Unix()))), h, 401, "DPoP", "invalid_dpop_proof", "iat too old"},
		{"iat far ahead", dpopReq("GET", "DPoP", bound, good(with("iat", now.Add(time.Minute).Unix()))), h, 401, "DPoP", "invalid_dpop_proof", "future"},
		{"bad signature", dpopReq("GET", "DPoP", bound, tamper(good())), h, 401, "DPoP", "invalid_dpop_proof", "signature"},
		{"alg none", dpopReq("GET", "DPoP", bound, unsigned(map[string]any{"typ": "dpop+jwt", "alg": "none", "jwk": holder.Public()},
			map[string]any{"jti": "n1", "htm": "GET", "htu": ordersURL, "iat": now.Unix(), "ath": ath(bound)}, "")), h, 401, "DPoP", "invalid_dpop_proof", "alg"},
		{"HS256", dpopReq("GET", "DPoP", bound, proof(t, hsKey, "GET", ordersURL, bound, now)), h, 401, "DPoP", "invalid_dpop_proof", ""},
		{"typ JWT", dpopReq("GET", "DPoP", bound, unsigned(map[string]any{"typ": "JWT", "alg": "ES256", "jwk": holder.Public()},
			map[string]any{"jti": "n2", "htm": "GET", "htu": ordersURL, "iat": now.Unix(), "ath": ath(bound)}, "AAAA")), h, 401, "DPoP", "invalid_dpop_proof", "typ"},
		{"an access token as the proof", dpopReq("GET", "DPoP", bound, bound), h, 401, "DPoP", "invalid_dpop_proof", "typ"},
		{"invalid token with a good proof", dpopReq("GET", "DPoP", tamper(bound), proof(t, holder, "GET", ordersURL, tamper(bound), now)), h, 401, "DPoP", "invalid_token", "bad signature"},
		{"token bound by an mTLS certificate", dpopReq("GET", "DPoP", x5t, proof(t, holder, "GET", ordersURL, x5t, now)), h, 401, "DPoP", "invalid_token", "confirmation"},
		{"bound token without the scope", dpopReq("GET", "DPoP", bound, good()), write, 403, "DPoP", "insufficient_scope", "scope"},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen = nil
			rec := httptest.NewRecorder()
			tt.h.ServeHTTP(rec, tt.req)
			chs := rec.Header().Values("WWW-Authenticate")
			if rec.Code != tt.status {
				t.Fatalf("= %d %q %s; want %d", rec.Code, chs, rec.Body, tt.status)
			}
			if tt.status == 204 {
				if seen == nil || seen.Subject != "user-1" {
					t.Fatalf("claims %+v", seen)
				}
				return
			}
			if len(chs) == 0 || !strings.HasPrefix(chs[0], tt.scheme+` realm="https://orders.example", error="`+tt.code+`"`) {
				t.Fatalf("challenge %q; want %s with error %s", chs, tt.scheme, tt.code)
			}
			var body map[string]string
			json.Unmarshal(rec.Body.Bytes(), &body)
			if body["error"] != tt.code || !strings.Contains(body["error_description"], tt.desc) || !strings.Contains(chs[0], tt.desc) {
				t.Fatalf("body %v, challenge %q; want %s with %q", body, chs, tt.code, tt.desc)
			}
			// RFC 9449 §7.1: a DPoP challenge names the algs; §7.2: a Bearer 401 also
			// offers DPoP, with the error in the Bearer challenge alone.
			algs := `algs="ES256 ES384 RS256 PS256 EdDSA"`
			switch {
			case tt.scheme == "DPoP" && (len(chs) != 1 || !strings.HasSuffix(chs[0], algs)):
				t.Fatalf("DPoP challenge %q; want one, ending with %s", chs, algs)
			case tt.scheme == "Bearer" && (len(chs) != 2 || chs[1] != `DPoP realm="https://orders.example", `+algs):
				t.Fatalf("Bearer challenges %q; want a bare DPoP one after", chs)
			}
			if strings.Contains(rec.Body.String(), bound) || strings.Contains(strings.Join(chs, " "), bound) {
				t.Fatal("the refusal echoes the token")
			}
		})
	}

	// The handler sees the binding.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, dpopReq("GET", "DPoP", bound, good()))
	if rec.Code != 204 || seen.Confirmation == nil || seen.Confirmation.JKT != jkt {
		t.Fatalf("= %d, confirmation %+v", rec.Code, seen.Confirmation)
	}
	// Validate is the bearer path: a bound token is refused there too.
	if _, err := v.Validate(t.Context(), bound); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("Validate of a bound token: %v", err)
	}
	if c, err := v.Validate(t.Context(), unbound); err != nil || c.Confirmation != nil {
		t.Fatalf("Validate of a bearer token: %v %+v", err, c)
	}
}

// Without credentials the client is offered both schemes, DPoP with its algs and
// no error (RFC 9449 §7.2, Figure 17); the Bearer challenge is as before.
func TestDPoP_BareChallengeOffersBothSchemes(t *testing.T) {
	v := staticValidator(t, newClock(), ecKey(t, "ec-1"))
	rec := httptest.NewRecorder()
	v.Handler(http.NotFoundHandler()).ServeHTTP(rec, httptest.NewRequest("GET", "/orders", nil))
	chs := rec.Header().Values("WWW-Authenticate")
	if rec.Code != 401 || len(chs) != 2 || chs[0] != `Bearer realm="https://orders.example"` ||
		chs[1] != `DPoP realm="https://orders.example", algs="ES256 ES384 RS256 PS256 EdDSA"` {
		t.Fatalf("= %d %q", rec.Code, chs)
	}
}

// htu is checked against ExternalURL when it is set (behind a proxy), else against
// the request's own scheme and Host.
func TestDPoP_RequestURL(t *testing.T) {
	clk := newClock()
	now := clk.Now()
	ec, holder := ecKey(t, "ec-1"), ecKey(t, "")
	bound := sign(t, ec, "at+jwt", accessClaims(now, func(c map[string]any) { c["cnf"] = map[string]any{"jkt": thumbprint(t, holder)} }))
	behind, err := New(t.Context(), Options{Issuer: testIssuer, Audience: testAudience, Keys: NewStaticKeySet(ec), DisableFeed: true,
		Now: clk.Now, ExternalURL: "https://api.example.com/v1/"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(behind.Close)
	direct := staticValidator(t, clk, ec)

	// What the server behind the proxy receives: plain HTTP, an internal host, the
	// path without the proxy's prefix.
	internal := func(htu string) *http.Request {
		r := httptest.NewRequest("GET", "http://10.0.0.7:8080/orders", nil)
		r.TLS = nil
		r.Header.Set("Authorization", "DPoP "+bound)
		r.Header.Set("DPoP", proof(t, holder, "GET", htu, bound, now))
		r.Header.Set("X-Forwarded-Host", "evil.example")
		return r
	}
	overTLS := func(host, htu string) *http.Request {
		r := httptest.NewRequest("GET", "https://"+host+"/orders", nil)
		r.TLS = &tls.ConnectionState{}
		r.Header.Set("Authorization", "DPoP "+bound)
		r.Header.Set("DPoP", proof(t, holder, "GET", htu, bound, now))
		return r
	}
	for _, tt := range []struct {
		name   string
		v      *Validator
		req    *http.Request
		status int
	}{
		{"external URL", behind, internal("https://api.example.com/v1/orders"), 204},
		{"the internal URL behind a proxy", behind, internal("http://10.0.0.7:8080/orders"), 401},
		{"the forwarded host", behind, internal("https://evil.example/v1/orders"), 401},
		{"external URL without the prefix", behind, internal("https://api.example.com/orders"), 401},
		{"TLS and Host", direct, overTLS("orders.example", "https://orders.example/orders"), 204},
		{"TLS and Host, proof for http", direct, overTLS("orders.example", "http://orders.example/orders"), 401},
		{"plain HTTP", direct, internal("http://10.0.0.7:8080/orders"), 204},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			tt.v.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })).ServeHTTP(rec, tt.req)
			if rec.Code != tt.status {
				t.Fatalf("= %d %q; want %d", rec.Code, rec.Header().Values("WWW-Authenticate"), tt.status)
			}
			if tt.status == 401 && !strings.Contains(rec.Header().Get("WWW-Authenticate"), `error="invalid_dpop_proof", error_description="htu`) {
				t.Fatalf("challenge %q", rec.Header().Get("WWW-Authenticate"))
			}
		})
	}
	for _, bad := range []string{"api.example.com", "ftp://api.example.com", "https://api.example.com/?q", "https://u@api.example.com", "https://api.example.com/#f"} {
		if _, err := New(t.Context(), Options{Issuer: testIssuer, Audience: testAudience, Keys: NewStaticKeySet(ec), DisableFeed: true, ExternalURL: bad}); err == nil {
			t.Errorf("ExternalURL %q accepted", bad)
		}
	}
}

// A proof is accepted once, whatever number of parties send it at the same time;
// proofs refused before their signature was checked never reach the replay cache.
func TestDPoP_ReplayRace(t *testing.T) {
	for _, n := range []int{2, 5, 100} {
		clk := newClock()
		ec, holder := ecKey(t, "ec-1"), ecKey(t, "")
		v := staticValidator(t, clk, ec)
		bound := sign(t, ec, "at+jwt", accessClaims(clk.Now(), func(c map[string]any) { c["cnf"] = map[string]any{"jkt": thumbprint(t, holder)} }))
		p := proof(t, holder, "GET", ordersURL, bound, clk.Now())
		h := v.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
		var wg sync.WaitGroup
		var mu sync.Mutex
		codes := map[int]int{}
		start := make(chan struct{})
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, dpopReq("GET", "DPoP", bound, p))
				mu.Lock()
				codes[rec.Code]++
				mu.Unlock()
			}()
		}
		close(start)
		wg.Wait()
		if codes[204] != 1 || codes[401] != n-1 {
			t.Fatalf("%d parties: %v; want one 204", n, codes)
		}
	}
}

// A tampered proof, or one signed by another key than the token's, does not use
// up its jti: the genuine proof with that jti is still accepted.
func TestDPoP_RefusedProofsDoNotEnterTheReplayCache(t *testing.T) {
	clk := newClock()
	now := clk.Now()
	ec, holder, thief := ecKey(t, "ec-1"), ecKey(t, ""), ecKey(t, "")
	v := staticValidator(t, clk, ec)
	bound := sign(t, ec, "at+jwt", accessClaims(now, func(c map[string]any) { c["cnf"] = map[string]any{"jkt": thumbprint(t, holder)} }))
	h := v.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	jti := func(c map[string]any) { c["jti"] = "the-jti" }
	for _, p := range []string{
		tamper(proof(t, holder, "GET", ordersURL, bound, now, jti)),
		proof(t, thief, "GET", ordersURL, bound, now, jti),
		proof(t, holder, "POST", ordersURL, bound, now, jti),
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, dpopReq("GET", "DPoP", bound, p))
		if rec.Code != 401 {
			t.Fatalf("bad proof = %d", rec.Code)
		}
	}
	if n := len(v.replay.seen); n != 0 {
		t.Fatalf("the replay cache holds %d entries after refused proofs", n)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, dpopReq("GET", "DPoP", bound, proof(t, holder, "GET", ordersURL, bound, now, jti)))
	if rec.Code != 204 {
		t.Fatalf("genuine proof = %d %q", rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
}

// The replay cache never holds more than its bound: when every entry is live a new
// proof is refused (503, retry later) rather than an old one forgotten, and room
// comes back as proofs grow too old to pass the iat check.
func TestDPoP_ReplayCacheBounded(t *testing.T) {
	clk := newClock()
	ec, holder := ecKey(t, "ec-1"), ecKey(t, "")
	v, err := New(t.Context(), Options{Issuer: testIssuer, Audience: testAudience, Keys: NewStaticKeySet(ec), DisableFeed: true,
		Now: clk.Now, DPoPReplayCacheSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	bound := sign(t, ec, "at+jwt", accessClaims(clk.Now(), func(c map[string]any) {
		c["cnf"] = map[string]any{"jkt": thumbprint(t, holder)}
		c["exp"] = clk.Now().Add(time.Hour).Unix()
	}))
	h := v.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	call := func() *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, dpopReq("GET", "DPoP", bound, proof(t, holder, "GET", ordersURL, bound, clk.Now())))
		return rec
	}
	for i := range 3 {
		if rec := call(); rec.Code != 204 {
			t.Fatalf("proof %d = %d", i, rec.Code)
		}
		clk.Add(time.Second)
	}
	if rec := call(); rec.Code != 503 || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("a full cache = %d; want 503 with Retry-After", rec.Code)
	}
	if len(v.replay.seen) != 3 || len(v.replay.queue)-v.replay.head != 3 {
		t.Fatalf("cache holds %d/%d", len(v.replay.seen), len(v.replay.queue)-v.replay.head)
	}
	// The first proof is past DefaultMaxAge + 2×leeway: its room is free again.
	clk.Add(78 * time.Second)
	if rec := call(); rec.Code != 204 {
		t.Fatalf("after the first expired = %d", rec.Code)
	}
	if len(v.replay.seen) > 3 {
		t.Fatalf("cache holds %d", len(v.replay.seen))
	}
	if _, err := New(t.Context(), Options{Issuer: testIssuer, Audience: testAudience, Keys: NewStaticKeySet(ec), DisableFeed: true,
		DPoPReplayCacheSize: -1}); err == nil {
		t.Fatal("a negative replay cache size was accepted")
	}
}

// An opaque token whose introspection names a DPoP key is held to it as a JWT is.
func TestDPoP_IntrospectedTokenBound(t *testing.T) {
	clk := newClock()
	holder := ecKey(t, "")
	is := newIssuer(t, ecKey(t, "k"))
	is.introspect = func(tok string) map[string]any {
		return map[string]any{"active": true, "iss": is.URL, "aud": testAudience, "sub": "svc", "client_id": "svc",
			"scope": "orders:read", "exp": clk.Now().Add(time.Minute).Unix(), "iat": clk.Now().Unix(), "jti": "j1",
			"token_type": "DPoP", "cnf": map[string]any{"jkt": thumbprint(t, holder)}}
	}
	v, err := New(t.Context(), Options{Issuer: is.URL, Audience: testAudience, ClientID: "orders-api", ClientSecret: "orders-secret",
		DisableFeed: true, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	h := v.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	const tok = "lk_at_bound"
	for _, tt := range []struct {
		req    *http.Request
		status int
	}{
		{dpopReq("GET", "Bearer", tok), 401},
		{dpopReq("GET", "DPoP", tok), 401},
		{dpopReq("GET", "DPoP", tok, proof(t, ecKey(t, ""), "GET", ordersURL, tok, clk.Now())), 401},
		{dpopReq("GET", "DPoP", tok, proof(t, holder, "GET", ordersURL, tok, clk.Now())), 204},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, tt.req)
		if rec.Code != tt.status {
			t.Fatalf("%s = %d %q; want %d", tt.req.Header.Get("Authorization")[:6], rec.Code, rec.Header().Get("WWW-Authenticate"), tt.status)
		}
	}
}
