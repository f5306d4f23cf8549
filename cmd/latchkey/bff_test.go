package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/latchkey/latchkey/bff"
	"github.com/latchkey/latchkey/rs"
	"github.com/latchkey/latchkey/storage"
)

// Every bad flag is one line on stderr naming what is wrong, and exit code 1,
// before anything listens or is read.
func TestBFF_FlagErrors(t *testing.T) {
	dir := t.TempDir()
	badKey := filepath.Join(dir, "bad.key")
	os.WriteFile(badKey, []byte("too short\n"), 0o600)
	goodKey := filepath.Join(dir, "good.key")
	os.WriteFile(goodKey, []byte("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n"), 0o600)
	base := func(extra ...string) []string {
		return append([]string{"bff", "--issuer", "https://id.example.com/realms/acme", "--client-id", "web",
			"--addr", "127.0.0.1:0", "--external-url", "https://app.example.com", "--key-file", goodKey}, extra...)
	}
	secret := env(envBFFClientSecret, "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t")
	for _, tc := range []struct {
		name   string
		getenv func(string) string
		args   []string
		want   string
	}{
		{"api without =", secret, base("--api", "/api"), `--api "/api": want /PREFIX=UPSTREAM_URL`},
		{"api prefix without slash", secret, base("--api", "api=http://127.0.0.1:3000"), `want /PREFIX=UPSTREAM_URL`},
		{"api upstream not a URL", secret, base("--api", "/api=127.0.0.1:3000"), `is not an http:// or https:// URL`},
		{"api upstream ftp", secret, base("--api", "/api=ftp://files.example.com"), `is not an http:// or https:// URL`},
		{"api over /bff", secret, base("--api", "/bff/x=http://127.0.0.1:3000"), `/bff is the BFF's own`},
		{"api twice", secret, base("--api", "/api=http://127.0.0.1:3000", "--api", "/api/=http://127.0.0.1:4000"), `given twice`},
		{"no secret outside dev", env(), base(), "the client secret is required: set " + envBFFClientSecret},
		{"no key file outside dev", secret, []string{"bff", "--issuer", "https://id.example.com/realms/acme", "--client-id", "web", "--external-url", "https://app.example.com"}, "--key-file is required outside --dev"},
		{"no external url outside dev", secret, []string{"bff", "--issuer", "https://id.example.com/realms/acme", "--client-id", "web", "--key-file", goodKey}, "--external-url is required outside --dev"},
		{"http external url outside dev", secret, base("--external-url", "http://127.0.0.1:9090"), "must be https://"},
		{"no issuer", secret, []string{"bff", "--client-id", "web"}, "--issuer is required"},
		{"http issuer off loopback", secret, base("--issuer", "http://id.example.com/realms/acme"), "the issuer must be https://"},
		{"bad addr", secret, base("--addr", "nowhere"), `--addr "nowhere": want HOST:PORT`},
		{"bad scope", secret, base("--scope", `a"b`), `--scope "a\"b" is not a scope`},
		{"bad store", secret, base("--store", "mysql://x"), `--store "mysql://x": want sqlite:PATH or postgres://`},
		{"app neither URL nor dir", secret, base("--app", filepath.Join(dir, "missing")), "is neither an http(s) URL nor a directory"},
		{"bad key file", secret, base("--key-file", badKey), "--key-file " + badKey + ": must hold 32 bytes as base64 or hex"},
		{"missing key file", secret, base("--key-file", filepath.Join(dir, "none.key")), "does not exist"},
		{"unknown flag", secret, base("--nope"), "unknown flag: --nope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, tc.getenv, tc.args...)
			if code != 1 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "latchkey: ") || !strings.Contains(errOut, tc.want) {
				t.Fatalf("bff = %d %q %q; want 1 and one line saying %q", code, out, errOut, tc.want)
			}
		})
	}
}

// --dev reads demo-bff's secret from serve --dev's credentials file, says what to do
// when there is none, and creates its key file (0600) on first start.
func TestBFF_DevSecretAndKeyFile(t *testing.T) {
	dataDir := t.TempDir()
	getenv := env("LATCHKEY_DATA_DIR", dataDir)
	code, _, errOut := runCLI(t, getenv, "bff", "--dev", "--addr", "127.0.0.1:0")
	if code != 1 || !strings.Contains(errOut, `start "latchkey serve --dev" first`) {
		t.Fatalf("bff --dev without credentials = %d %q", code, errOut)
	}
	os.WriteFile(filepath.Join(dataDir, devCredsFile), []byte(`{"client_secret":"x","user_password":"y"}`), 0o600)
	code, _, errOut = runCLI(t, getenv, "bff", "--dev", "--addr", "127.0.0.1:0")
	if code != 1 || !strings.Contains(errOut, "has no demo-bff secret") {
		t.Fatalf("bff --dev with old credentials = %d %q", code, errOut)
	}
	os.WriteFile(filepath.Join(dataDir, devCredsFile), []byte(`{"client_secret":"x","user_password":"y","bff_client_secret":"z"}`), 0o600)
	// Nothing listens at the issuer: the BFF fails at start, after making its key.
	code, _, errOut = runCLI(t, getenv, "bff", "--dev", "--addr", "127.0.0.1:0", "--issuer", "http://"+freeAddr(t)+"/realms/dev", "--api", "/api=http://127.0.0.1:1")
	if code != 1 || strings.Count(errOut, "\n") != 1 || strings.Contains(errOut, "z\"") {
		t.Fatalf("bff --dev, issuer down = %d %q", code, errOut)
	}
	info, err := os.Stat(filepath.Join(dataDir, bffKeyFile))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v; want mode 0600", info, err)
	}
	k1, err := loadBFFKey(filepath.Join(dataDir, bffKeyFile), false)
	if err != nil || len(k1) != 32 {
		t.Fatalf("key = %d bytes, %v", len(k1), err)
	}
	k2, _ := loadBFFKey(filepath.Join(dataDir, bffKeyFile), true)
	if string(k1) != string(k2) {
		t.Fatal("a second start made another key")
	}
}

// The sample API of --dev refuses a request without a token and greets the holder
// of a valid one.
func TestBFF_SampleAPIRequiresAToken(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwk := jose.JSONWebKey{Key: priv, KeyID: "k1", Algorithm: "ES256", Use: "sig"}
	const iss = "https://id.example.com/realms/dev"
	v, err := rs.New(t.Context(), rs.Options{Issuer: iss, Audience: iss, DisableFeed: true, Keys: rs.NewStaticKeySet(jwk.Public())})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	srv := httptest.NewServer(sampleAPI(v))
	defer srv.Close()

	res, err := http.Get(srv.URL + "/hello")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 401 || !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("no token: %d %q; want 401 with a Bearer challenge", res.StatusCode, res.Header.Get("WWW-Authenticate"))
	}

	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jwk}, (&jose.SignerOptions{}).WithType("at+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	claims, _ := json.Marshal(map[string]any{"iss": iss, "aud": iss, "sub": "u1", "client_id": "demo-bff", "scope": "openid profile",
		"preferred_username": "demo", "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "jti": "j1"})
	jws, err := signer.Sign(claims)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := jws.CompactSerialize()
	req, _ := http.NewRequest("GET", srv.URL+"/hello", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	var body map[string]string
	if res.StatusCode != 200 || json.Unmarshal(b, &body) != nil || body["hello"] != "demo" || body["scope"] != "openid profile" {
		t.Fatalf("with a token: %d %s", res.StatusCode, b)
	}
}

// The adapter gives bff the store's sessions with bff's sentinel, and Update stays
// atomic through it.
func TestBFF_StoreAdapter(t *testing.T) {
	st := openSQLite(t, filepath.Join(t.TempDir(), "bff.db"))
	s := bffSessions{st.(storage.BFFStore).BFFSessions()}
	ctx := t.Context()
	now := time.Now()
	if _, err := s.Get(ctx, "nope", now); !errors.Is(err, bff.ErrSessionNotFound) {
		t.Fatalf("Get of none = %v; want bff.ErrSessionNotFound", err)
	}
	rec := bff.SessionRecord{ID: strings.Repeat("a", 64), SID: "sid1", Subject: "sub1", Sealed: []byte("sealed"), ExpiresAt: now.Add(time.Hour)}
	if err := s.Put(ctx, rec); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, rec.ID, now)
	if err != nil || got.SID != "sid1" || got.Subject != "sub1" || string(got.Sealed) != "sealed" || !got.ExpiresAt.Equal(rec.ExpiresAt.Truncate(time.Microsecond)) && !got.ExpiresAt.Equal(rec.ExpiresAt) {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	// Racing updates each append one byte: none is lost.
	for _, parties := range []int{2, 5, 100} {
		before, _ := s.Get(ctx, rec.ID, now)
		var wg sync.WaitGroup
		for range parties {
			wg.Go(func() {
				if _, err := s.Update(ctx, rec.ID, now, func(r bff.SessionRecord) (bff.SessionRecord, error) {
					r.Sealed = append(r.Sealed, 'x')
					return r, nil
				}); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		after, _ := s.Get(ctx, rec.ID, now)
		if len(after.Sealed) != len(before.Sealed)+parties || after.Version != before.Version+int64(parties) {
			t.Fatalf("%d parties: sealed %d -> %d bytes, version %d -> %d", parties, len(before.Sealed), len(after.Sealed), before.Version, after.Version)
		}
	}
	boom := errors.New("boom")
	if _, err := s.Update(ctx, rec.ID, now, func(bff.SessionRecord) (bff.SessionRecord, error) { return bff.SessionRecord{}, boom }); !errors.Is(err, boom) {
		t.Fatalf("Update with a failing fn = %v", err)
	}
	if _, err := s.Update(ctx, "nope", now, func(r bff.SessionRecord) (bff.SessionRecord, error) { return r, nil }); !errors.Is(err, bff.ErrSessionNotFound) {
		t.Fatalf("Update of none = %v; want bff.ErrSessionNotFound", err)
	}
	if n, err := s.DeleteByIssuerSession(ctx, "sid1"); n != 1 || err != nil {
		t.Fatalf("DeleteByIssuerSession = %d, %v", n, err)
	}
	if _, err := s.Get(ctx, rec.ID, now); !errors.Is(err, bff.ErrSessionNotFound) {
		t.Fatalf("Get after delete = %v", err)
	}
}

// bff --dev beside serve --dev, sessions in a --store: the sample app with a strict
// CSP, signed out at first, and the API refused without a session.
func TestBFF_DevBesideServeDev(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "latchkey-data")
	s := startServe(t, env(), "--dev", "--data-dir", dataDir)
	addr := freeAddr(t)
	storePath := filepath.Join(t.TempDir(), "sessions.db")
	ctx, cancel := context.WithCancel(t.Context())
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"bff", "--dev", "--addr", addr, "--issuer", "http://" + s.addr + "/realms/dev", "--store", "sqlite:" + storePath}, &out, &errb, env("LATCHKEY_DATA_DIR", dataDir))
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("bff exited %d: %s", code, errb.String())
		}
	}()
	base := "http://" + addr
	var res *http.Response
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case code := <-done:
			done <- code
			t.Fatalf("bff exited %d: %s", code, errb.String())
		default:
		}
		if res, err = http.Get(base + "/"); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("bff never answered: %v\n%s", err, errb.String())
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(page), `<script src="/app.js"`) || !strings.Contains(res.Header.Get("Content-Security-Policy"), "script-src 'self'") {
		t.Fatalf("GET / = %d %q\n%s", res.StatusCode, res.Header.Get("Content-Security-Policy"), page)
	}
	// --store opened (and migrated) its database, as serve does.
	if _, err := os.Stat(storePath); err != nil {
		t.Fatalf("--store made no database: %v", err)
	}
	if !strings.Contains(out.String(), "open "+base+"/") {
		t.Errorf("banner: %q", out.String())
	}
	res, err = http.Get(base + "/bff/session")
	if err != nil {
		t.Fatal(err)
	}
	var sess struct {
		SignedIn bool `json:"signed_in"`
	}
	json.NewDecoder(res.Body).Decode(&sess)
	res.Body.Close()
	if res.StatusCode != 200 || sess.SignedIn {
		t.Fatalf("/bff/session = %d signed_in=%v", res.StatusCode, sess.SignedIn)
	}
	req, _ := http.NewRequest("GET", base+"/api/hello", nil)
	req.Header.Set("X-CSRF", "1")
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 401 {
		t.Fatalf("/api/hello signed out = %d; want 401", res.StatusCode)
	}
}

// The sample app runs under script-src 'self': no inline script, no inline handler,
// and its calls carry X-CSRF: 1.
func TestBFF_SampleAppIsCSPFriendly(t *testing.T) {
	page, err := bffSample.ReadFile("bffsample/index.html")
	if err != nil {
		t.Fatal(err)
	}
	inline := regexp.MustCompile(`(?i)<script(\s[^>]*)?>\s*[^<\s]|\son[a-z]+\s*=|javascript:|<style`)
	if m := inline.Find(page); m != nil {
		t.Fatalf("index.html has inline script or style: %q", m)
	}
	js, err := bffSample.ReadFile("bffsample/app.js")
	if err != nil || !strings.Contains(string(js), `"X-CSRF": "1"`) || !strings.Contains(string(js), `"/bff/logout", { method: "POST"`) {
		t.Fatalf("app.js does not send X-CSRF: 1 or POST /bff/logout: %v", err)
	}
}

// --app as a URL: the app server sees neither the BFF's cookie nor the CSRF header,
// and cannot set a cookie through the BFF.
func TestBFF_AppProxyKeepsCookiesAway(t *testing.T) {
	var got http.Header
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		http.SetCookie(w, &http.Cookie{Name: "bff_session", Value: "x"})
		io.WriteString(w, "app")
	}))
	defer app.Close()
	u, _ := url.Parse(app.URL)
	front := httptest.NewServer(appProxy(u, slog.New(slog.DiscardHandler)))
	defer front.Close()
	req, _ := http.NewRequest("GET", front.URL+"/index.html", nil)
	req.Header.Set("Cookie", "bff_session=secret-session-value")
	req.Header.Set("X-CSRF", "1")
	req.Header.Set("Authorization", "Bearer nope")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(b) != "app" || res.Header.Get("Set-Cookie") != "" {
		t.Fatalf("GET through the app proxy = %d %q, Set-Cookie %q", res.StatusCode, b, res.Header.Get("Set-Cookie"))
	}
	if got.Get("Cookie") != "" || got.Get("X-Csrf") != "" || got.Get("Authorization") != "" {
		t.Fatalf("the app server saw %v", got)
	}
}
