package rs

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Every rule of the feed contract's table, on the claims it names.
func TestRevocations_Rules(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	until := now.Add(time.Hour).Unix()
	iat := now.Add(-time.Minute)
	tok := &Claims{ID: "j1", Subject: "u1", ClientID: "web", SessionID: "s1", FamilyID: "f1", IssuedAt: iat}
	service := &Claims{ID: "j2", Subject: "svc", ClientID: "svc", IssuedAt: iat} // client credentials: no sid, no fid
	before := func(d time.Duration) int64 { return iat.Add(d).Unix() }

	tests := []struct {
		name     string
		typ      string
		payload  map[string]any
		claims   *Claims
		revoked  bool
		keysSaid bool
	}{
		{"token revoked", eventTokenRevoked, map[string]any{"jti": "j1", "until": until}, tok, true, false},
		{"another token revoked", eventTokenRevoked, map[string]any{"jti": "j9", "until": until}, tok, false, false},
		{"subject revoked after iat", eventSubjectRevoked, map[string]any{"sub": "u1", "revoked_before": before(time.Second), "reason": "disabled", "until": until}, tok, true, false},
		{"subject revoked at iat", eventSubjectRevoked, map[string]any{"sub": "u1", "revoked_before": before(0), "until": until}, tok, false, false},
		{"session ended", eventSessionEnded, map[string]any{"sid": "s1", "sub": "u1", "until": until}, tok, true, false},
		{"family revoked", eventFamilyRevoked, map[string]any{"fid": "f1", "sub": "u1", "client_id": "web", "until": until}, tok, true, false},
		{"another family", eventFamilyRevoked, map[string]any{"fid": "f2", "until": until}, tok, false, false},
		{"client revoked", eventClientRevoked, map[string]any{"client_id": "svc", "revoked_before": before(time.Second), "until": until}, service, true, false},
		{"client revoked before iat", eventClientRevoked, map[string]any{"client_id": "svc", "revoked_before": before(-time.Second), "until": until}, service, false, false},
		{"realm logout: user token", eventRealmLogout, map[string]any{"revoked_before": before(time.Second), "until": until}, tok, true, false},
		{"realm logout: service token lives", eventRealmLogout, map[string]any{"revoked_before": before(time.Second), "until": until}, service, false, false},
		{"past its until", eventTokenRevoked, map[string]any{"jti": "j1", "until": now.Add(-time.Minute).Unix()}, tok, false, false},
		{"keys changed", eventKeysChanged, map[string]any{"kid": "k", "until": until}, tok, false, true},
		{"unknown type", "urn:example:other", map[string]any{"jti": "j1", "until": until}, tok, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRevocations(0)
			raw, _ := json.Marshal(tt.payload)
			keys, err := r.apply(tt.typ, raw, now)
			if err != nil || keys != tt.keysSaid {
				t.Fatalf("apply = %v, %v", keys, err)
			}
			if got := r.revoked(tt.claims, now); got != tt.revoked {
				t.Fatalf("revoked = %v; want %v", got, tt.revoked)
			}
		})
	}
}

// The feed: nothing is accepted before its first synced (fail closed); its snapshot
// revokes; a dropped stream is resumed with the cursor and what was missed applies.
func TestFeed_SyncRevokeReconnect(t *testing.T) {
	k := ecKey(t, "k")
	is := newIssuer(t, k)
	revokedTok := accessClaims(time.Now(), func(c map[string]any) { c["iss"] = is.URL })
	laterTok := accessClaims(time.Now(), func(c map[string]any) { c["iss"] = is.URL; c["fid"] = "fam-late" })
	good := accessClaims(time.Now(), func(c map[string]any) { c["iss"] = is.URL })

	release := make(chan struct{})
	cursors := make(chan string, 10)
	var conns atomic.Int32
	is.feed = func(w http.ResponseWriter, r *http.Request) {
		if id, secret, _ := r.BasicAuth(); id != "orders-api" || secret != "orders-secret" {
			w.WriteHeader(401)
			return
		}
		conn := conns.Add(1)
		cursors <- r.Header.Get("Last-Event-ID")
		w.Header().Set("Content-Type", "text/event-stream")
		switch conn {
		case 1: // the snapshot, held back until the test has seen requests wait
			<-release
			sse(w, "set", "7", is.set(t, k, "orders-api", eventTokenRevoked, map[string]any{"jti": revokedTok["jti"], "until": revokedTok["exp"]}))
			sse(w, "synced", "7", "{}")
			fmtPing(w)
			return // the server drops the stream
		case 2:
			sse(w, "set", "8", is.set(t, k, "orders-api", eventFamilyRevoked, map[string]any{"fid": "fam-late", "until": laterTok["exp"]}))
			sse(w, "synced", "8", "{}")
			<-r.Context().Done()
		default:
			<-r.Context().Done()
		}
	}
	v, err := New(t.Context(), Options{Issuer: is.URL, Audience: testAudience, ClientID: "orders-api", ClientSecret: "orders-secret",
		SyncWait: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	h := v.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	serve := func(claims map[string]any) int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, bearerReq(sign(t, k, "at+jwt", claims)))
		return rec.Code
	}

	// Not yet synced: a good token waits, then 503.
	if c := serve(good); c != 503 {
		t.Fatalf("before sync = %d; want 503", c)
	}
	close(release)
	<-v.Synced()
	must(t, serve(good) == 204, "good token after sync")
	must(t, serve(revokedTok) == 401, "token revoked in the snapshot accepted")

	// The server dropped the stream; the receiver came back with its cursor.
	must(t, <-cursors == "", "first connection sent a cursor")
	must(t, <-cursors == "7", "reconnection did not send cursor 7")
	deadline := time.Now().Add(5 * time.Second)
	for serve(laterTok) != 401 {
		if time.Now().After(deadline) {
			t.Fatal("the event sent after reconnecting never applied")
		}
		time.Sleep(10 * time.Millisecond)
	}
	must(t, serve(good) == 204, "good token after reconnect")
}

// A SET that does not verify (wrong audience, wrong typ, wrong key) is not applied,
// and the cursor does not move past it.
func TestFeed_RefusesBadSETs(t *testing.T) {
	k := ecKey(t, "k")
	is := newIssuer(t, k)
	tok := accessClaims(time.Now(), func(c map[string]any) { c["iss"] = is.URL })
	payload := map[string]any{"jti": tok["jti"], "until": tok["exp"]}
	bad := []string{
		is.set(t, k, "another-client", eventTokenRevoked, payload),
		sign(t, k, "at+jwt", map[string]any{"iss": is.URL, "aud": "orders-api", "events": map[string]any{eventTokenRevoked: payload}}),
		is.set(t, ecKey(t, "k"), "orders-api", eventTokenRevoked, payload), // same kid, another key
	}
	cursors := make(chan string, 10)
	var conns atomic.Int32
	is.feed = func(w http.ResponseWriter, r *http.Request) {
		cursors <- r.Header.Get("Last-Event-ID")
		w.Header().Set("Content-Type", "text/event-stream")
		sse(w, "synced", "1", "{}")
		if conn := int(conns.Add(1)) - 1; conn < len(bad) {
			sse(w, "set", "2", bad[conn])
		}
		<-r.Context().Done()
	}
	v, err := New(t.Context(), Options{Issuer: is.URL, Audience: testAudience, ClientID: "orders-api", ClientSecret: "orders-secret"})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	<-cursors
	for range bad {
		must(t, <-cursors == "1", "the cursor moved past a bad SET")
	}
	_, err = v.Validate(t.Context(), sign(t, k, "at+jwt", tok))
	must(t, err == nil, "a bad SET revoked a token: %v", err)
}

func fmtPing(w http.ResponseWriter) {
	w.Write([]byte(": ping\n\n"))
	w.(http.Flusher).Flush()
}

// The package is for other programs: it imports only the standard library, go-jose
// and internal/dpop, which itself imports only those two (its own test says so)
// (conventions, "Guard the public surfaces").
func TestDeps_OnlyStdAndGoJose(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		var ee *exec.ExitError
		errors.As(err, &ee)
		t.Fatalf("go list: %v %s", err, ee.Stderr)
	}
	for _, p := range strings.Fields(string(out)) {
		if p != "github.com/latchkey/latchkey/rs" && p != "github.com/latchkey/latchkey/internal/dpop" &&
			!strings.HasPrefix(p, "github.com/go-jose/go-jose/v4") {
			t.Errorf("rs depends on %s", p)
		}
	}
}

// keys-changed: the JWKS is fetched again at once (no rate limit), and a token whose
// key is no longer published is dead even though it was verified and remembered.
func TestFeed_KeysChanged(t *testing.T) {
	old, fresh := ecKey(t, "old"), ecKey(t, "new")
	is := newIssuer(t, old)
	send := make(chan string, 1)
	is.feed = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		sse(w, "synced", "1", "{}")
		for {
			select {
			case set := <-send:
				sse(w, "set", "2", set)
			case <-r.Context().Done():
				return
			}
		}
	}
	v, err := New(t.Context(), Options{Issuer: is.URL, Audience: testAudience, ClientID: "orders-api", ClientSecret: "orders-secret"})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	<-v.Synced()
	tok := sign(t, old, "at+jwt", accessClaims(time.Now(), func(c map[string]any) { c["iss"] = is.URL }))
	if _, err := v.Validate(t.Context(), tok); err != nil {
		t.Fatal(err)
	}

	is.mu.Lock()
	is.keys = []jose.JSONWebKey{fresh} // old retired: no longer published
	is.mu.Unlock()
	fetches := is.jwksFetches.Load()
	send <- is.set(t, old, "orders-api", eventKeysChanged, map[string]any{"kid": "new", "until": time.Now().Add(time.Hour).Unix()})
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := v.Validate(t.Context(), tok)
		if errors.Is(err, ErrInvalidToken) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a token of a retired key is still accepted: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	must(t, is.jwksFetches.Load() == fetches+1, "JWKS fetches after keys-changed: %d; want one more than %d", is.jwksFetches.Load(), fetches)
	_, err = v.Validate(t.Context(), sign(t, fresh, "at+jwt", accessClaims(time.Now(), func(c map[string]any) { c["iss"] = is.URL })))
	must(t, err == nil, "a token of the new key: %v", err)
}

// A stream that goes silent for longer than the server's pings allow is given up, so
// the feed reconnects instead of waiting forever on a dead connection.
func TestFeed_SilentStreamIsDropped(t *testing.T) {
	is := newIssuer(t, ecKey(t, "k"))
	is.feed = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		sse(w, "synced", "5", "{}")
		<-r.Context().Done() // then nothing, not even a ping
	}
	v := &Validator{o: Options{ClientID: "orders-api", ClientSecret: "orders-secret", HTTPClient: http.DefaultClient}}
	f := newFeed(v, is.URL+"/events")
	f.idle = 500 * time.Millisecond
	done := make(chan error, 1)
	go func() { _, err := f.follow(t.Context()); done <- err }()
	select {
	case err := <-done:
		must(t, err != nil && f.cursor == "5", "follow = %v, cursor %q", err, f.cursor)
	case <-time.After(5 * time.Second):
		t.Fatal("a silent stream was never given up")
	}
}
