package rs

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// staticValidator checks tokens against one ES256 key and an RS256 key, without an
// issuer to talk to.
func staticValidator(t *testing.T, clk *clock, keys ...jose.JSONWebKey) *Validator {
	t.Helper()
	v, err := New(t.Context(), Options{
		Issuer: testIssuer, Audience: testAudience, Keys: NewStaticKeySet(keys...), DisableFeed: true, Now: clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

func TestValidate_Rules(t *testing.T) {
	clk := newClock()
	now := clk.Now()
	ec, rs := ecKey(t, "ec-1"), rsaKey(t, "rsa-1")
	v := staticValidator(t, clk, ec, rs)

	// An ES384 key that claims the ES256 key's kid: the alg differs from the key's.
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	ec384 := jose.JSONWebKey{Key: p384, KeyID: "ec-1", Algorithm: string(jose.ES384)}
	// The RSA key's kid, signed by the EC key under its own alg ES256.
	ecAsRSA := ec
	ecAsRSA.KeyID = "rsa-1"
	// An HMAC token "signed" with the EC key's kid.
	hsKey := jose.JSONWebKey{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "ec-1", Algorithm: string(jose.HS256)}

	with := func(k string, val any) func(map[string]any) { return func(c map[string]any) { c[k] = val } }
	without := func(k string) func(map[string]any) { return func(c map[string]any) { delete(c, k) } }

	tests := []struct {
		name string
		tok  string
		want string // "" to accept, else the reason
	}{
		{"good ES256", sign(t, ec, "at+jwt", accessClaims(now)), ""},
		{"good RS256", sign(t, rs, "at+jwt", accessClaims(now)), ""},
		{"typ application/at+jwt", sign(t, ec, "application/at+jwt", accessClaims(now)), ""},
		{"aud as an array", sign(t, ec, "at+jwt", accessClaims(now, with("aud", []string{"x", testAudience}))), ""},
		{"exp passed within the leeway", sign(t, ec, "at+jwt", accessClaims(now, with("exp", now.Add(-20*time.Second).Unix()))), ""},
		{"nbf ahead within the leeway", sign(t, ec, "at+jwt", accessClaims(now, with("nbf", now.Add(20*time.Second).Unix()))), ""},

		{"alg none", unsigned(map[string]string{"alg": "none", "kid": "ec-1", "typ": "at+jwt"}, accessClaims(now), ""), "malformed"},
		{"HS256 with the EC key's kid", sign(t, hsKey, "at+jwt", accessClaims(now)), "malformed"},
		{"ES384 header on an ES256 key", sign(t, ec384, "at+jwt", accessClaims(now)), "algorithm is not the key's"},
		{"ES256 header on an RS256 key", sign(t, ecAsRSA, "at+jwt", accessClaims(now)), "algorithm is not the key's"},
		{"unknown kid", sign(t, ecKey(t, "other"), "at+jwt", accessClaims(now)), "unknown key"},
		{"tampered payload", tamper(sign(t, ec, "at+jwt", accessClaims(now))), "bad signature"},
		{"not a JWS", "abc.def", "malformed"},

		{"ID token (typ JWT, aud the client)", sign(t, ec, "JWT", map[string]any{
			"iss": testIssuer, "sub": "user-1", "aud": testAudience, "exp": now.Add(time.Minute).Unix(),
			"iat": now.Unix(), "nonce": "n", "jti": "j", "client_id": "web"}), "typ"},
		{"no typ", sign(t, ec, "", accessClaims(now)), "typ"},
		{"security event token", sign(t, ec, "secevent+jwt", accessClaims(now)), "typ"},

		{"wrong issuer", sign(t, ec, "at+jwt", accessClaims(now, with("iss", "https://evil.example/realms/acme"))), "wrong issuer"},
		{"wrong audience", sign(t, ec, "at+jwt", accessClaims(now, with("aud", "https://other.example"))), "wrong audience"},
		{"no audience", sign(t, ec, "at+jwt", accessClaims(now, without("aud"))), "wrong audience"},
		{"expired past the leeway", sign(t, ec, "at+jwt", accessClaims(now, with("exp", now.Add(-31*time.Second).Unix()))), "expired"},
		{"nbf past the leeway", sign(t, ec, "at+jwt", accessClaims(now, with("nbf", now.Add(31*time.Second).Unix()))), "not yet valid"},
		{"iat in the future", sign(t, ec, "at+jwt", accessClaims(now, with("iat", now.Add(2*time.Minute).Unix()))), "future"},
		{"no exp", sign(t, ec, "at+jwt", accessClaims(now, without("exp"))), "missing"},
		{"no jti", sign(t, ec, "at+jwt", accessClaims(now, without("jti"))), "missing"},
		{"no client_id", sign(t, ec, "at+jwt", accessClaims(now, without("client_id"))), "missing"},
		{"no sub", sign(t, ec, "at+jwt", accessClaims(now, without("sub"))), "missing"},
		{"a refresh token", "lk_rt_" + strings.Repeat("A", 43), "not an access token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := v.Validate(t.Context(), tt.tok)
			if tt.want == "" {
				if err != nil || c.Subject != "user-1" || c.ClientID != "web" || !c.HasScope("orders:read") {
					t.Fatalf("refused: %v %+v", err, c)
				}
				return
			}
			if !errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v; want invalid token, %q", err, tt.want)
			}
		})
	}
}

// tamper flips a character of the payload.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	b := []byte(parts[1])
	if b[5] == 'A' {
		b[5] = 'B'
	} else {
		b[5] = 'A'
	}
	return parts[0] + "." + string(b) + "." + parts[2]
}

// A verified token is remembered, but its time checks are not: past exp it fails.
func TestValidate_CachedTokenStillExpires(t *testing.T) {
	clk := newClock()
	ec := ecKey(t, "ec-1")
	v := staticValidator(t, clk, ec)
	tok := sign(t, ec, "at+jwt", accessClaims(clk.Now()))
	for range 2 {
		if _, err := v.Validate(t.Context(), tok); err != nil {
			t.Fatal(err)
		}
	}
	clk.Add(5*time.Minute + DefaultLeeway)
	if _, err := v.Validate(t.Context(), tok); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("expired cached token: %v", err)
	}
}

// The cache never holds more than its bound, whatever is presented.
func TestCache_Bounded(t *testing.T) {
	c := newCache(10)
	now := time.Now()
	for i := range 1000 {
		c.put(tokenKey(string(rune(i))), cacheEntry{until: now.Add(time.Hour)})
	}
	if len(c.m) != 10 {
		t.Fatalf("cache holds %d entries; want 10", len(c.m))
	}
}

// RFC 6750 §3: what a client sees for each kind of request.
func TestMiddleware_RFC6750(t *testing.T) {
	clk := newClock()
	ec := ecKey(t, "ec-1")
	v := staticValidator(t, clk, ec)
	good := sign(t, ec, "at+jwt", accessClaims(clk.Now()))
	var seen *Claims
	h := v.Require("orders:read")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen, _ = ClaimsFrom(r.Context())
		w.WriteHeader(204)
	}))
	write := v.Require("orders:read", "orders:write")(http.NotFoundHandler())

	tests := []struct {
		name      string
		req       func() *http.Request
		h         http.Handler
		status    int
		challenge string
	}{
		{"no credentials", func() *http.Request { return bearerReq("") }, h, 401, `Bearer realm="https://orders.example"`},
		{"another scheme", func() *http.Request {
			r := bearerReq("")
			r.Header.Set("Authorization", "Basic YTpi")
			return r
		}, h, 401, `Bearer realm="https://orders.example"`},
		{"empty bearer", func() *http.Request {
			r := bearerReq("")
			r.Header.Set("Authorization", "Bearer ")
			return r
		}, h, 400, `Bearer realm="https://orders.example", error="invalid_request", error_description="malformed Authorization header"`},
		{"bad characters", func() *http.Request { return bearerReq("a b,c") }, h, 400, `error="invalid_request"`},
		{"two Authorization headers", func() *http.Request {
			r := bearerReq(good)
			r.Header.Add("Authorization", "Bearer "+good)
			return r
		}, h, 400, `error="invalid_request", error_description="more than one Authorization header"`},
		{"token in the query", func() *http.Request { return httptest.NewRequest("GET", "/orders?access_token="+good, nil) }, h, 400, `error="invalid_request"`},
		{"header and query", func() *http.Request {
			r := httptest.NewRequest("GET", "/orders?access_token="+good, nil)
			r.Header.Set("Authorization", "Bearer "+good)
			return r
		}, h, 400, `error="invalid_request"`},
		{"invalid token", func() *http.Request { return bearerReq(tamper(good)) }, h, 401, `Bearer realm="https://orders.example", error="invalid_token", error_description="bad signature"`},
		{"insufficient scope", func() *http.Request { return bearerReq(good) }, write, 403, `Bearer realm="https://orders.example", error="insufficient_scope", error_description="the token lacks a required scope", scope="orders:read orders:write"`},
		{"lower-case scheme", func() *http.Request {
			r := bearerReq("")
			r.Header.Set("Authorization", "bearer "+good)
			return r
		}, h, 204, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			tt.h.ServeHTTP(rec, tt.req())
			got := rec.Header().Get("WWW-Authenticate")
			if rec.Code != tt.status || !strings.Contains(got, tt.challenge) || (tt.challenge == "" && got != "") {
				t.Fatalf("= %d %q; want %d %q", rec.Code, got, tt.status, tt.challenge)
			}
			if tt.status == 401 && tt.name == "no credentials" && got != tt.challenge {
				t.Fatalf("bare challenge = %q; want exactly %q (no error code, §3.1)", got, tt.challenge)
			}
			if tt.status >= 400 && rec.Header().Get("Cache-Control") != "no-store" {
				t.Fatal("no Cache-Control: no-store")
			}
			if strings.Contains(rec.Body.String(), good) {
				t.Fatal("the refusal echoes the token")
			}
		})
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, bearerReq(good))
	if rec.Code != 204 || seen == nil || seen.Subject != "user-1" || seen.SessionID != "sess-1" || seen.KeyID != "ec-1" {
		t.Fatalf("= %d, claims %+v", rec.Code, seen)
	}
}

// An unknown kid refetches the JWKS once for 100 concurrent requests; made-up kids
// then cause no fetch until the rate limit allows one.
func TestRemoteKeys_UnknownKidSingleFlight(t *testing.T) {
	clk := newClock()
	old := ecKey(t, "old")
	is := newIssuer(t, old)
	v, err := New(t.Context(), Options{Issuer: is.URL, Audience: testAudience, DisableFeed: true, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	must(t, is.jwksFetches.Load() == 1, "fetches at start = %d", is.jwksFetches.Load())

	// A new key is published; tokens signed with it arrive together.
	clk.Add(minKeysRefetch)
	fresh := ecKey(t, "new")
	is.publish(fresh)
	gate := make(chan struct{})
	is.mu.Lock()
	is.jwksGate = gate
	is.mu.Unlock()
	claims := accessClaims(clk.Now(), func(c map[string]any) { c["iss"] = is.URL })
	tok := sign(t, fresh, "at+jwt", claims)
	h := v.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))

	const n = 100
	var started, done sync.WaitGroup
	codes := make([]int, n)
	started.Add(n)
	done.Add(n)
	for i := range n {
		go func() {
			defer done.Done()
			started.Done()
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, bearerReq(tok))
			codes[i] = rec.Code
		}()
	}
	started.Wait()
	close(gate)
	done.Wait()
	for i, c := range codes {
		must(t, c == 204, "request %d = %d", i, c)
	}
	must(t, is.jwksFetches.Load() == 2, "fetches after 100 requests with a new kid = %d; want 2", is.jwksFetches.Load())

	// Garbage kids within the rate limit: refused without a fetch.
	for i := range 50 {
		bad := sign(t, ecKey(t, "garbage-"+string(rune('a'+i%26))), "at+jwt", claims)
		_, err := v.Validate(t.Context(), bad)
		must(t, errors.Is(err, ErrInvalidToken), "garbage kid: %v", err)
	}
	must(t, is.jwksFetches.Load() == 2, "fetches after garbage kids = %d; want 2", is.jwksFetches.Load())
	clk.Add(minKeysRefetch)
	v.Validate(t.Context(), sign(t, ecKey(t, "garbage"), "at+jwt", claims))
	must(t, is.jwksFetches.Load() == 3, "fetches once the limit allows = %d; want 3", is.jwksFetches.Load())
}

// Opaque tokens are introspected with the API's credentials, and the answer reused
// for a few seconds, never past exp.
func TestIntrospection_CachedBriefly(t *testing.T) {
	clk := newClock()
	is := newIssuer(t, ecKey(t, "k"))
	exp := clk.Now().Add(8 * time.Second)
	active := true
	is.introspect = func(tok string) map[string]any {
		if tok != "lk_at_good" || !active {
			return map[string]any{"active": false}
		}
		return map[string]any{"active": true, "iss": is.URL, "aud": testAudience, "sub": "svc", "client_id": "svc",
			"scope": "orders:read", "exp": exp.Unix(), "iat": clk.Now().Unix(), "jti": "j1", "token_type": "Bearer"}
	}
	v, err := New(t.Context(), Options{Issuer: is.URL, Audience: testAudience, ClientID: "orders-api", ClientSecret: "orders-secret",
		DisableFeed: true, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	for range 3 {
		c, err := v.Validate(t.Context(), "lk_at_good")
		must(t, err == nil && c.Subject == "svc", "validate: %v", err)
	}
	must(t, is.introspections.Load() == 1, "introspections = %d; want 1", is.introspections.Load())
	_, err = v.Validate(t.Context(), "lk_at_bad")
	must(t, errors.Is(err, ErrInvalidToken), "inactive: %v", err)

	// Revoked at the issuer: seen once the short cache lapses.
	active = false
	clk.Add(DefaultIntrospectTTL)
	_, err = v.Validate(t.Context(), "lk_at_good")
	must(t, errors.Is(err, ErrInvalidToken), "after revocation: %v", err)
	must(t, is.introspections.Load() == 3, "introspections = %d; want 3", is.introspections.Load())
}

// Wrong client credentials at introspection are a failure to check, not a bad token.
func TestIntrospection_Unavailable(t *testing.T) {
	is := newIssuer(t, ecKey(t, "k"))
	v, err := New(t.Context(), Options{Issuer: is.URL, Audience: testAudience, ClientID: "orders-api", ClientSecret: "wrong",
		DisableFeed: true})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	rec := httptest.NewRecorder()
	v.Handler(http.NotFoundHandler()).ServeHTTP(rec, bearerReq("lk_at_x"))
	must(t, rec.Code == 503 && rec.Header().Get("Retry-After") != "", "= %d", rec.Code)
}

func TestNew_RefusesBadOptions(t *testing.T) {
	for _, o := range []Options{
		{Audience: "a", DisableFeed: true},
		{Issuer: "i", DisableFeed: true},
		{Issuer: "i", Audience: "a"}, // a feed needs credentials
		{Issuer: "i", Audience: "a", DisableFeed: true, Keys: NewStaticKeySet(), Leeway: time.Hour},
	} {
		if _, err := New(context.Background(), o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}
