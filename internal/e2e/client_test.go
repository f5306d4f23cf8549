package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	lkclient "github.com/latchkey/latchkey/client"
	"golang.org/x/oauth2"
)

// The Go client against the real server: its clock is the test's, so access
// tokens expire for it when the test says (the server's own clock, which decides
// introspection and the retry window, runs as usual).

// clientClock is a clock the test moves.
type clientClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClientClock() *clientClock { return &clientClock{t: time.Now()} }

func (c *clientClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clientClock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// refreshCounter counts token endpoint requests on their way out.
type refreshCounter struct {
	n    atomic.Int64
	base http.RoundTripper
}

func (c *refreshCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == "POST" && strings.HasSuffix(r.URL.Path, "/protocol/openid-connect/token") {
		c.n.Add(1)
	}
	return c.base.RoundTrip(r)
}

func newRefreshCounter() *refreshCounter {
	return &refreshCounter{base: http.DefaultTransport.(*http.Transport).Clone()}
}

// webSource is a Source for the web client, discovering its token endpoint,
// whose store starts with rt.
func webSource(t *testing.T, s *server, store lkclient.Store, clock *clientClock, rc http.RoundTripper) *lkclient.Source {
	t.Helper()
	src, err := lkclient.New(t.Context(), lkclient.Config{Issuer: s.issuer("acme"), ClientID: "web", ClientSecret: webSecret,
		Store: store, Now: clock.now, HTTPClient: &http.Client{Transport: rc}})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func wantActive(t *testing.T, s *server, basic, what, tok string) {
	t.Helper()
	if in := s.introspect(t, basic, tok); in.status != 200 || in.body["active"] != true {
		t.Fatalf("%s: introspection = %d %s; want active", what, in.status, in.raw)
	}
}

// 100 goroutines asking at once, over five access-token lifetimes: one refresh
// per expiry, every caller the same access token, a valid token returned without
// a request, each access token active and the family never revoked.
func TestClient_HundredCallersShareOneRefreshPerExpiry(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s := start(t, options{db: db})
		_, rt := signIn(t, s, newBrowser(t))
		clock, rc := newClientClock(), newRefreshCounter()
		store := lkclient.NewMemoryStore(&oauth2.Token{RefreshToken: rt})
		src := webSource(t, s, store, clock, rc)

		seen := map[string]bool{}
		for round := 1; round <= 5; round++ {
			var wg sync.WaitGroup
			gate := make(chan struct{})
			got := make([]string, 100)
			errs := make([]error, 100)
			for i := range 100 {
				wg.Go(func() {
					<-gate
					tok, err := src.TokenContext(t.Context())
					if err == nil {
						got[i] = tok.AccessToken
					}
					errs[i] = err
				})
			}
			close(gate)
			wg.Wait()
			for i := range 100 {
				if errs[i] != nil || got[i] != got[0] {
					t.Fatalf("round %d, caller %d: %v, token equal to caller 0's: %v", round, i, errs[i], got[i] == got[0])
				}
			}
			if n := rc.n.Load(); n != int64(round) {
				t.Fatalf("round %d: %d refreshes so far; want %d, one per expiry", round, n, round)
			}
			if seen[got[0]] {
				t.Fatalf("round %d: an access token handed out again after its expiry", round)
			}
			seen[got[0]] = true
			wantActive(t, s, svcBasic, "access token", got[0])

			// Still valid 4 minutes on (5-minute tokens, 10 s margin): no request.
			clock.add(4 * time.Minute)
			if tok, err := src.Token(); err != nil || tok.AccessToken != got[0] || rc.n.Load() != int64(round) {
				t.Fatalf("round %d, still valid: %v, same token %v, %d refreshes", round, err, tok != nil && tok.AccessToken == got[0], rc.n.Load())
			}
			clock.add(time.Minute)
		}
		saved, _ := store.Load(t.Context())
		wantActive(t, s, webBasic, "the newest refresh token", saved.RefreshToken)
		if strings.Contains(s.logs.String(), "reuse") {
			t.Fatalf("the server saw reuse:\n%s", s.logs)
		}
	})
}

// dropProxy stands between client and server and loses the answer of chosen
// refreshes after the server has acted on them: "close" hangs up, "502" answers
// Bad Gateway. It keeps the refresh tokens presented and the answers it lost.
type dropProxy struct {
	target string
	drop   map[int]string // refresh number (from 1) → how its answer is lost

	mu        sync.Mutex
	presented []string
	lost      map[int]map[string]any
}

func (p *dropProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	req, _ := http.NewRequestWithContext(r.Context(), r.Method, p.target+r.URL.RequestURI(), bytes.NewReader(body))
	req.Header = r.Header.Clone()
	res, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)

	how := ""
	if f, _ := url.ParseQuery(string(body)); f.Get("grant_type") == "refresh_token" {
		p.mu.Lock()
		p.presented = append(p.presented, f.Get("refresh_token"))
		n := len(p.presented)
		if how = p.drop[n]; how != "" {
			var answer map[string]any
			json.Unmarshal(raw, &answer)
			p.lost[n] = answer
		}
		p.mu.Unlock()
	}
	switch how {
	case "close":
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	case "502":
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	for k, v := range res.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(res.StatusCode)
	w.Write(raw)
}

// A refresh the server performed but whose answer the client never saw (the
// connection hung up; a 502) is retried with the same refresh token inside the
// retry window and gets the rotated result; the family stays live.
func TestClient_LostAnswerRetriedWithTheSameToken(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s := start(t, options{db: db})
		_, rt := signIn(t, s, newBrowser(t))
		p := &dropProxy{target: s.URL, drop: map[int]string{1: "close", 3: "502"}, lost: map[int]map[string]any{}}
		proxy := httptest.NewServer(p)
		defer proxy.Close()

		clock := newClientClock()
		store := lkclient.NewMemoryStore(&oauth2.Token{RefreshToken: rt})
		src, err := lkclient.New(t.Context(), lkclient.Config{TokenURL: proxy.URL + "/realms/acme/protocol/openid-connect/token",
			ClientID: "web", ClientSecret: webSecret, Store: store, Now: clock.now})
		if err != nil {
			t.Fatal(err)
		}
		for _, lost := range []int{1, 3} {
			tok, err := src.Token()
			if err != nil {
				t.Fatalf("refresh %d lost: Token = %v", lost, err)
			}
			p.mu.Lock()
			presented, answer := append([]string(nil), p.presented...), p.lost[lost]
			p.mu.Unlock()
			if len(presented) != lost+1 || presented[lost] != presented[lost-1] {
				t.Fatalf("refresh %d lost: %d refreshes, the retry presented the same token: %v; want one retry with it",
					lost, len(presented), len(presented) > lost && presented[lost] == presented[lost-1])
			}
			if answer["access_token"] == nil || tok.AccessToken != answer["access_token"] || tok.RefreshToken != answer["refresh_token"] {
				t.Fatalf("refresh %d lost: the client did not get the rotated answer the server gave", lost)
			}
			wantActive(t, s, svcBasic, "access token", tok.AccessToken)
			wantActive(t, s, webBasic, "rotated refresh token", tok.RefreshToken)
			clock.add(5 * time.Minute)
		}
		if strings.Contains(s.logs.String(), "reuse") {
			t.Fatalf("the server saw reuse:\n%s", s.logs)
		}
	})
}

// failingStore is a MemoryStore whose Save fails while fail is set.
type failingStore struct {
	*lkclient.MemoryStore
	fail atomic.Bool
}

var errDiskFull = errors.New("disk full")

func (f *failingStore) Save(ctx context.Context, tok *oauth2.Token) error {
	if f.fail.Load() {
		return errDiskFull
	}
	return f.MemoryStore.Save(ctx, tok)
}

// When the rotated token cannot be saved, Token hands out nothing and returns the
// store's error; once the store works the next Token saves it without another
// request. A process that exited instead still holds the spent token, and a new
// Source gets the same answer from it within the retry window: no reuse.
func TestClient_SaveFailureHandsOutNothingAndRecovers(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s := start(t, options{db: db})
		_, rt := signIn(t, s, newBrowser(t))
		clock, rc := newClientClock(), newRefreshCounter()
		store := &failingStore{MemoryStore: lkclient.NewMemoryStore(&oauth2.Token{RefreshToken: rt})}
		src := webSource(t, s, store, clock, rc)

		store.fail.Store(true)
		if tok, err := src.Token(); tok != nil || !errors.Is(err, lkclient.ErrNotSaved) || !errors.Is(err, errDiskFull) {
			t.Fatalf("Token with a failing store: a token handed out %v, %v; want none and ErrNotSaved wrapping the store's error", tok != nil, err)
		}
		if saved, _ := store.Load(t.Context()); saved.RefreshToken != rt {
			t.Fatal("the store lost the spent token it held")
		}

		// A restarted process, reading the same store, within the retry window.
		restarted := webSource(t, s, lkclient.NewMemoryStore(&oauth2.Token{RefreshToken: rt}), newClientClock(), rc)
		again, err := restarted.Token()
		if err != nil {
			t.Fatalf("a new Source on the spent token within the window: %v", err)
		}

		store.fail.Store(false)
		tok, err := src.Token()
		if err != nil || tok.AccessToken != again.AccessToken || tok.RefreshToken != again.RefreshToken {
			t.Fatalf("Token once the store works = %v; want the rotated answer the retry got too", err)
		}
		if saved, _ := store.Load(t.Context()); saved.RefreshToken != tok.RefreshToken {
			t.Fatal("the rotated token was not saved")
		}
		if n := rc.n.Load(); n != 2 {
			t.Fatalf("%d refreshes; want 2 (the first, and the restarted Source's retry)", n)
		}
		wantActive(t, s, svcBasic, "access token", tok.AccessToken)
		wantActive(t, s, webBasic, "rotated refresh token", tok.RefreshToken)
		// And it goes on: the next expiry rotates again.
		clock.add(5 * time.Minute)
		next, err := src.Token()
		if err != nil || next.RefreshToken == tok.RefreshToken {
			t.Fatalf("the next refresh: %v", err)
		}
		wantActive(t, s, webBasic, "the next refresh token", next.RefreshToken)
	})
}

// A revoked family: Token returns invalid_grant with its RFC 6749 §5.2 fields,
// the store is cleared, and nothing more is sent.
func TestClient_RevokedFamilyIsFinal(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s := start(t, options{db: db})
		_, rt := signIn(t, s, newBrowser(t))
		clock, rc := newClientClock(), newRefreshCounter()
		store := lkclient.NewMemoryStore(&oauth2.Token{RefreshToken: rt})
		src := webSource(t, s, store, clock, rc)
		tok, err := src.Token()
		if err != nil {
			t.Fatal(err)
		}
		if rv := post(t, s.revokeURL(), webBasic, form("token", tok.RefreshToken)); rv.status != 200 {
			t.Fatalf("revoke = %d %s", rv.status, rv.raw)
		}
		clock.add(5 * time.Minute)
		for range 3 {
			_, err := src.Token()
			var e *lkclient.Error
			if !errors.Is(err, lkclient.ErrInvalidGrant) || !errors.As(err, &e) || e.StatusCode != 400 || e.Code != "invalid_grant" || e.Description == "" {
				t.Fatalf("Token after revocation = %#v; want an invalid_grant *lkclient.Error", err)
			}
		}
		if n := rc.n.Load(); n != 2 {
			t.Fatalf("%d refreshes; want 2: none after invalid_grant", n)
		}
		if saved, _ := store.Load(t.Context()); saved != nil {
			t.Fatal("the store still holds the dead token")
		}
	})
}
