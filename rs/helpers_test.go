package rs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

const (
	testIssuer   = "https://id.example/realms/acme"
	testAudience = "https://orders.example"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Unix(1_800_000_000, 0)} }

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func ecKey(t testing.TB, kid string) jose.JSONWebKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return jose.JSONWebKey{Key: priv, KeyID: kid, Algorithm: string(jose.ES256), Use: "sig"}
}

func rsaKey(t testing.TB, kid string) jose.JSONWebKey {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return jose.JSONWebKey{Key: priv, KeyID: kid, Algorithm: string(jose.RS256), Use: "sig"}
}

// sign makes a compact JWS of claims with k, with typ (none when empty) and k's kid.
func sign(t testing.TB, k jose.JSONWebKey, typ string, claims any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithHeader("kid", k.KeyID)
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(k.Algorithm), Key: k.Key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(claims)
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

// unsigned is a JWS with the given header and claims and a junk signature.
func unsigned(header, claims any, sig string) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding
	return enc.EncodeToString(h) + "." + enc.EncodeToString(c) + "." + sig
}

// accessClaims are a good access token's claims at now.
func accessClaims(now time.Time, edit ...func(map[string]any)) map[string]any {
	c := map[string]any{
		"iss": testIssuer, "sub": "user-1", "aud": testAudience, "client_id": "web",
		"exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(), "jti": rand.Text(),
		"scope": "orders:read profile", "sid": "sess-1", "fid": "fam-1",
	}
	for _, e := range edit {
		e(c)
	}
	return c
}

// issuer is a stand-in authorization server: discovery, JWKS, introspection and the
// revocation feed, counting what it is asked.
type issuer struct {
	t   testing.TB
	srv *httptest.Server
	URL string

	mu         sync.Mutex
	keys       []jose.JSONWebKey
	jwksGate   chan struct{} // when set, the JWKS answer waits for it
	introspect func(tok string) map[string]any

	jwksFetches, introspections, feedConnects atomic.Int64
	feed                                      func(w http.ResponseWriter, r *http.Request)
}

func newIssuer(t testing.TB, keys ...jose.JSONWebKey) *issuer {
	is := &issuer{t: t, keys: keys}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{
			"issuer": is.URL, "jwks_uri": is.URL + "/certs", "introspection_endpoint": is.URL + "/introspect",
			"revocation_events_endpoint": is.URL + "/events",
		})
	})
	mux.HandleFunc("GET /certs", func(w http.ResponseWriter, r *http.Request) {
		is.jwksFetches.Add(1)
		is.mu.Lock()
		gate := is.jwksGate
		var set jose.JSONWebKeySet
		for _, k := range is.keys {
			set.Keys = append(set.Keys, k.Public())
		}
		is.mu.Unlock()
		if gate != nil {
			<-gate
		}
		json.NewEncoder(w).Encode(set)
	})
	mux.HandleFunc("POST /introspect", func(w http.ResponseWriter, r *http.Request) {
		is.introspections.Add(1)
		id, secret, _ := r.BasicAuth()
		if id != "orders-api" || secret != "orders-secret" {
			w.WriteHeader(401)
			return
		}
		json.NewEncoder(w).Encode(is.introspect(r.PostFormValue("token")))
	})
	mux.HandleFunc("GET /events", func(w http.ResponseWriter, r *http.Request) {
		is.feedConnects.Add(1)
		is.feed(w, r)
	})
	is.srv = httptest.NewServer(mux)
	is.URL = is.srv.URL
	t.Cleanup(is.srv.Close)
	return is
}

func (is *issuer) publish(k jose.JSONWebKey) {
	is.mu.Lock()
	is.keys = append(is.keys, k)
	is.mu.Unlock()
}

// set is a Security Event Token from this issuer to aud.
func (is *issuer) set(t testing.TB, k jose.JSONWebKey, aud, typ string, payload map[string]any) string {
	return sign(t, k, "secevent+jwt", map[string]any{
		"iss": is.URL, "aud": aud, "iat": time.Now().Unix(), "jti": rand.Text(),
		"events": map[string]any{typ: payload},
	})
}

// sse writes one Server-Sent Event and flushes it.
func sse(w http.ResponseWriter, event, id, data string) {
	fmt.Fprintf(w, "event: %s\nid: %s\ndata: %s\n\n", event, id, data)
	w.(http.Flusher).Flush()
}

func bearerReq(tok string) *http.Request {
	r := httptest.NewRequest("GET", "/orders", nil)
	if tok != "" {
		r.Header.Set("Authorization", "Bearer "+tok)
	}
	return r
}

func must(t testing.TB, ok bool, format string, args ...any) {
	t.Helper()
	if !ok {
		t.Fatalf(format, args...)
	}
}

var _ = strings.TrimSpace
