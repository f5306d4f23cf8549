package e2e

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/latchkey/latchkey/storage"
)

// limitsSeed is the default seed with a second user, bob.
const limitsSeed = defaultSeed + `      - username: bob
        password: bob-password-1
        email: bob@example.com
        name: Bob
`

// limitsTypedPassword is what a user types into the username field by mistake.
const limitsTypedPassword = "Tr0ub4dor-and-3-typed-here"

// The login limits hold under a burst, one lock covers a user's username and email,
// lock answers are 429 with Retry-After, and a failed sign-in is audited with the
// typed name only when it names an account.
func TestLoginLimits(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s := start(t, options{db: db, seed: limitsSeed})
		u := s.authURL("web")

		// Five wrong passwords for bob lock him, under his username...
		b := newBrowser(t)
		login := b.get(u)
		var last page
		for range 5 {
			last = b.do(b.loginRequest(login, u, "username", "bob", "password", "wrong-password"))
		}
		limitsWantLocked(t, "fifth failure for bob", last)
		// ... and under his email: one account, one lock.
		p := b.do(b.loginRequest(login, u, "username", "bob@example.com", "password", "bob-password-1"))
		if p.location != nil {
			t.Errorf("bob signed in by email while his username was locked: %v", p.location)
		} else {
			limitsWantLocked(t, "bob by email", p)
		}

		// A password typed into the username field.
		if p := b.do(b.loginRequest(login, u, "username", limitsTypedPassword, "password", "anything-at-all")); p.status != 401 {
			t.Fatalf("unknown name: %d, want 401", p.status)
		}

		// 100 simultaneous wrong passwords for alice from one address: no more are
		// checked than the limit lets through in sequence.
		answers := limitsBurst(t, b, login, u, 100, "alice", "wrong-password")
		checked, noRetryAfter := 0, 0
		for _, a := range answers {
			switch {
			case a.status == 429:
				if n, err := strconv.Atoi(a.header.Get("Retry-After")); err != nil || n < 1 {
					noRetryAfter++
				}
			case a.status == 401:
				checked++
			default:
				t.Fatalf("burst answer %d, want 401 or 429", a.status)
			}
		}
		if noRetryAfter > 0 {
			t.Errorf("burst: %d answers 429 without Retry-After", noRetryAfter)
		}
		if checked > 5 {
			t.Errorf("burst: %d answers were not 429; at most 5 passwords may be checked", checked)
		}
		// Now the right password does not sign in, however it is sent.
		for _, a := range limitsBurst(t, b, login, u, 10, "alice", alicePass) {
			if a.location != nil {
				t.Fatalf("alice signed in right after the burst: %v", a.location)
			}
			if a.status != 429 {
				t.Fatalf("right password after the burst: %d, want 429", a.status)
			}
			limitsWantRetryAfter(t, "right password after the burst", a.header)
		}

		s.stop()
		st := openStore(t, db)
		alice, err := st.GetUserByUsername(t.Context(), "acme", "alice")
		if err != nil {
			t.Fatal(err)
		}
		events, err := st.ListAudit(t.Context(), storage.AuditFilter{Realm: "acme", Type: "login.failed"})
		if err != nil {
			t.Fatal(err)
		}
		aliceChecks, bobByName := 0, 0
		for _, e := range events {
			for _, v := range append([]string{e.UserID, e.ClientID, e.UserAgent}, limitsValues(e.Details)...) {
				if strings.Contains(strings.ToLower(v), strings.ToLower(limitsTypedPassword)) {
					t.Errorf("login.failed event %d holds the name typed: %+v", e.ID, e)
				}
			}
			switch {
			case e.UserID == alice.ID:
				aliceChecks++
			case e.Details["username"] == "bob":
				bobByName++
			}
		}
		// Each login.failed is a password checked and found wrong.
		if aliceChecks == 0 || aliceChecks > 5 {
			t.Errorf("%d passwords of alice were checked in the burst, want 1 to 5", aliceChecks)
		}
		if bobByName != 5 {
			t.Errorf("%d login.failed events name bob, want 5 (a typed name that names an account is kept)", bobByName)
		}
	})
}

// limitsWantLocked checks a login page refused for a lock: 429, Retry-After, the message.
func limitsWantLocked(t *testing.T, what string, p page) {
	t.Helper()
	if p.status != 429 || !strings.Contains(p.body, "Too many failed attempts") {
		t.Errorf("%s: %d, want 429 with the lock message:\n%s", what, p.status, p.body)
	}
	limitsWantRetryAfter(t, what, p.header)
}

func limitsWantRetryAfter(t *testing.T, what string, h http.Header) {
	t.Helper()
	if n, err := strconv.Atoi(h.Get("Retry-After")); err != nil || n < 1 {
		t.Errorf("%s: Retry-After %q, want whole seconds", what, h.Get("Retry-After"))
	}
}

// limitsBurst posts n sign-ins of name and password from the login page at once
// (released together once all are ready) and returns the answers.
func limitsBurst(t *testing.T, b *browser, login page, authURL string, n int, name, password string) []page {
	t.Helper()
	reqs := make([]*http.Request, n)
	for i := range reqs {
		reqs[i] = b.loginRequest(login, authURL, "username", name, "password", password)
	}
	answers := make([]page, n)
	errs := make([]error, n)
	ready := make(chan struct{})
	var wg sync.WaitGroup
	for i, req := range reqs {
		wg.Go(func() {
			<-ready
			res, err := b.client.Do(req)
			if err != nil {
				errs[i] = err
				return
			}
			defer res.Body.Close()
			body, _ := io.ReadAll(res.Body)
			answers[i] = page{status: res.StatusCode, body: string(body), header: res.Header}
			if loc, err := res.Location(); err == nil {
				answers[i].location = loc
			}
		})
	}
	close(ready)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return answers
}

func limitsValues(m map[string]string) []string {
	var out []string
	for k, v := range m {
		out = append(out, k, v)
	}
	return out
}

// Counting attempts in flight must not refuse honest ones: more simultaneous
// sign-ins with the right password than an account has failures left queue
// behind those being checked, and every one of them signs in.
func TestLoginLimits_HonestConcurrentSignInsAreNotRefused(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s := start(t, options{db: db})
		const n = 12 // more than the account's 5, fewer than the address's 20
		browsers := make([]*browser, n)
		reqs := make([]*http.Request, n)
		for i := range n {
			browsers[i] = newBrowser(t)
			u := s.authURL("web")
			reqs[i] = browsers[i].loginRequest(browsers[i].get(u), u, "username", "alice", "password", alicePass)
		}
		pages := make([]page, n)
		var wg sync.WaitGroup
		gate := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-gate
				pages[i] = browsers[i].do(reqs[i])
			})
		}
		close(gate)
		wg.Wait()
		for i, p := range pages {
			if p.location == nil || p.location.Query().Get("code") == "" {
				t.Errorf("sign-in %d of %d simultaneous, right password: %d (Retry-After %q); want a redirect with a code",
					i+1, n, p.status, p.header.Get("Retry-After"))
			}
		}
	})
}
