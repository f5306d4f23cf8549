package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// endpoint is a token endpoint whose answers the test writes; it counts requests
// and records the refresh tokens presented.
type endpoint struct {
	mu        sync.Mutex
	presented []string
	answer    func(n int, w http.ResponseWriter, r *http.Request)
}

func (e *endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	e.mu.Lock()
	e.presented = append(e.presented, r.PostForm.Get("refresh_token"))
	n := len(e.presented)
	e.mu.Unlock()
	e.answer(n, w, r)
}

func (e *endpoint) requests() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.presented...)
}

func oauthError(w http.ResponseWriter, status int, code, desc, uri string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc, "error_uri": uri})
}

func rotated(w http.ResponseWriter, n int) {
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"access_token":"at-%d","token_type":"Bearer","expires_in":300,"refresh_token":"lk_rt_%d"}`, n, n)
}

func newSource(t *testing.T, e *endpoint, clock *fakeClock, store Store, secret string) *Source {
	t.Helper()
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	s, err := New(t.Context(), Config{TokenURL: srv.URL + "/token", ClientID: "a b", ClientSecret: secret, Store: store, Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// invalid_grant is final: the error carries the RFC 6749 §5.2 fields, the store
// is cleared, and no request follows.
func TestSource_InvalidGrantIsFinal(t *testing.T) {
	e := &endpoint{answer: func(_ int, w http.ResponseWriter, _ *http.Request) {
		oauthError(w, 400, "invalid_grant", "refresh token reused; its family is revoked", "https://example.com/why")
	}}
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	store := NewMemoryStore(&oauth2.Token{RefreshToken: "lk_rt_0"})
	s := newSource(t, e, clock, store, "secret")
	for range 3 {
		_, err := s.Token()
		var oe *Error
		if !errors.Is(err, ErrInvalidGrant) || !errors.As(err, &oe) || oe.StatusCode != 400 ||
			oe.Description != "refresh token reused; its family is revoked" || oe.URI != "https://example.com/why" {
			t.Fatalf("Token error = %#v; want invalid_grant with its fields", err)
		}
	}
	if n := len(e.requests()); n != 1 {
		t.Fatalf("%d requests; want 1", n)
	}
	if tok, _ := store.Load(t.Context()); tok != nil {
		t.Fatalf("store still holds %+v", tok)
	}
}

// A lost answer is retried with the same refresh token while the retry budget
// (three quarters of the window) lasts since the first send, and never after:
// the token is then forgotten and nothing more is sent.
func TestSource_LostAnswerRetriedOnlyInsideTheWindow(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	e := &endpoint{answer: func(_ int, w http.ResponseWriter, _ *http.Request) {
		clock.add(3 * time.Second) // each attempt takes 3 s of the 10 s window
		oauthError(w, 502, "bad_gateway", "", "")
	}}
	store := NewMemoryStore(&oauth2.Token{RefreshToken: "lk_rt_0"})
	s := newSource(t, e, clock, store, "secret")
	_, err := s.Token()
	if !errors.Is(err, ErrAnswerLost) {
		t.Fatalf("Token error = %v; want ErrAnswerLost", err)
	}
	// Sent at 0 s, 3 s and 6 s (+ backoff); the next would start at 9 s, past 7.5 s.
	got := e.requests()
	if len(got) != 3 {
		t.Fatalf("%d requests (%v); want 3", len(got), got)
	}
	for _, rt := range got {
		if rt != "lk_rt_0" {
			t.Fatalf("presented %v; want the same token every time", got)
		}
	}
	if _, err := s.Token(); !errors.Is(err, ErrAnswerLost) || len(e.requests()) != 3 {
		t.Fatalf("after the window: %v, %d requests; want ErrAnswerLost and none sent", err, len(e.requests()))
	}
	if tok, _ := store.Load(t.Context()); tok != nil {
		t.Fatalf("store still holds %+v", tok)
	}
}

// A retry refused for another reason (here invalid_client) ends the call but not
// the doubt: the next call keeps the first send's deadline instead of starting a
// new window, and past it sends nothing.
func TestSource_LostAnswerDeadlineOutlivesTheCall(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	e := &endpoint{answer: func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			oauthError(w, 504, "gateway_timeout", "", "")
			return
		}
		oauthError(w, 401, "invalid_client", "", "")
	}}
	store := NewMemoryStore(&oauth2.Token{RefreshToken: "lk_rt_0"})
	s := newSource(t, e, clock, store, "secret")
	if _, err := s.Token(); !errors.Is(err, ErrInvalidClient) {
		t.Fatalf("Token error = %v; want invalid_client", err)
	}
	clock.add(8 * time.Second) // past 7.5 s since the first send
	if _, err := s.Token(); !errors.Is(err, ErrAnswerLost) {
		t.Fatalf("Token error = %v; want ErrAnswerLost", err)
	}
	if n := len(e.requests()); n != 2 {
		t.Fatalf("%d requests; want 2: nothing after the window", n)
	}
}

// A request that never left (nothing listens) puts nothing in doubt, even with
// no retry window at all: the token is kept and the next call tries again.
func TestSource_UndeliveredRequestKeepsTheToken(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.Listener.Addr().String()
	srv.Close() // connections refused
	store := NewMemoryStore(&oauth2.Token{RefreshToken: "lk_rt_0"})
	s, err := New(t.Context(), Config{TokenURL: "http://" + addr + "/token", ClientID: "c", Store: store, RetryWindow: -1})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := s.Token(); err == nil || errors.Is(err, ErrAnswerLost) {
			t.Fatalf("Token error = %v; want a connection error, not ErrAnswerLost", err)
		}
	}
	if tok, _ := store.Load(t.Context()); tok == nil || tok.RefreshToken != "lk_rt_0" {
		t.Fatalf("store holds %+v; want the token kept", tok)
	}
}

// Client authentication: client_secret_basic with the id and secret
// form-urlencoded first (RFC 6749 §2.3.1); a public client sends client_id.
func TestSource_ClientAuthentication(t *testing.T) {
	for _, secret := range []string{"s3cr:t+", ""} {
		var user, pass, formID string
		var basic bool
		e := &endpoint{answer: func(n int, w http.ResponseWriter, r *http.Request) {
			user, pass, basic = r.BasicAuth()
			formID = r.PostForm.Get("client_id")
			rotated(w, n)
		}}
		clock := &fakeClock{t: time.Unix(1e9, 0)}
		s := newSource(t, e, clock, NewMemoryStore(&oauth2.Token{RefreshToken: "lk_rt_0"}), secret)
		tok, err := s.Token()
		if err != nil || tok.AccessToken != "at-1" || tok.RefreshToken != "lk_rt_1" || !tok.Expiry.Equal(clock.now().Add(300*time.Second)) {
			t.Fatalf("Token = %+v, %v", tok, err)
		}
		if secret != "" && (!basic || user != "a+b" || pass != "s3cr%3At%2B" || formID != "") {
			t.Fatalf("confidential: basic %v %q %q, client_id %q", basic, user, pass, formID)
		}
		if secret == "" && (basic || formID != "a b") {
			t.Fatalf("public: basic %v, client_id %q", basic, formID)
		}
	}
}

// Plain http only on loopback: secrets and refresh tokens never go in the clear.
func TestNew_RefusesPlainHTTPOffLoopback(t *testing.T) {
	for u, ok := range map[string]bool{"https://idp.example/token": true, "http://127.0.0.1:8080/token": true,
		"http://localhost/token": true, "http://[::1]/token": true, "http://idp.example/token": false, "token": false} {
		_, err := New(t.Context(), Config{TokenURL: u, ClientID: "c"})
		if (err == nil) != ok {
			t.Errorf("New(%s) = %v; want ok %v", u, err, ok)
		}
	}
}

// A 200 that cannot be read is a lost answer too: the server acted on it, so
// the same token is sent again and the retry's answer taken.
func TestSource_UnreadableAnswerRetried(t *testing.T) {
	e := &endpoint{answer: func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			w.Write([]byte(`{"access_tok`))
			return
		}
		rotated(w, n)
	}}
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	s := newSource(t, e, clock, NewMemoryStore(&oauth2.Token{RefreshToken: "lk_rt_0"}), "secret")
	tok, err := s.Token()
	if got := e.requests(); err != nil || tok.RefreshToken != "lk_rt_2" || len(got) != 2 || got[1] != "lk_rt_0" {
		t.Fatalf("Token = %v; requests %v; want a retry with lk_rt_0", err, got)
	}
}

// Discovery takes the token endpoint only from a document naming the issuer
// asked for (OpenID Connect Discovery §4.3).
func TestNew_DiscoveryChecksTheIssuer(t *testing.T) {
	var issuer string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/realms/a/.well-known/openid-configuration" {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"issuer": issuer, "token_endpoint": "http://127.0.0.1/realms/a/token"})
	}))
	defer srv.Close()
	issuer = srv.URL + "/realms/a"
	if _, err := New(t.Context(), Config{Issuer: srv.URL + "/realms/a", ClientID: "c"}); err != nil {
		t.Fatalf("matching issuer: %v", err)
	}
	issuer = srv.URL + "/realms/b"
	if _, err := New(t.Context(), Config{Issuer: srv.URL + "/realms/a", ClientID: "c"}); err == nil {
		t.Fatal("a document naming another issuer was accepted")
	}
}
