package e2e

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/latchkey/latchkey/storage"
	"github.com/latchkey/latchkey/storage/postgres/pgtest"
)

// Three `latchkey serve` instances on one PostgreSQL database, as a deployment
// behind a load balancer runs them.
func startThree(t *testing.T, seed string) ([]*server, string) {
	t.Helper()
	db := pgtest.DSN(t)
	var out []*server
	for range 3 {
		out = append(out, start(t, options{db: db, seed: seed}))
	}
	return out, db
}

// Wrong passwords for one account spread over three instances lock it after as
// many as on one; the lock holds on every instance; the admin API's unlock on
// one clears it on all; a parallel burst spread over the three gets as many
// password checks, and as many answers that are not 429, as the same attempts
// in sequence.
func TestSharedState_LoginLockAcrossInstances(t *testing.T) {
	ss, db := startThree(t, strings.Replace(usersSeed(t), "    users:\n", `    users:
      - username: bob
        password: bob-password-1
        name: Bob
`, 1))
	b := newBrowser(t)
	urls := []string{ss[0].authURL("web"), ss[1].authURL("web"), ss[2].authURL("web")}
	login := b.get(urls[0])
	for i := range 4 {
		if p := b.do(b.loginRequest(login, urls[i%3], "username", "alice", "password", "wrong-password")); p.status != 401 {
			t.Fatalf("wrong password %d, on instance %d: %d, want 401", i+1, i%3, p.status)
		}
	}
	limitsWantLocked(t, "fifth wrong password, on instance 1", b.do(b.loginRequest(login, urls[1], "username", "alice", "password", "wrong-password")))
	for i, u := range urls {
		p := b.do(b.loginRequest(login, u, "username", "alice", "password", alicePass))
		if p.location != nil {
			t.Fatalf("alice signed in on instance %d while locked", i)
		}
		limitsWantLocked(t, "right password while locked", p)
	}

	api := root(t, ss[0])
	want(t, "unlock on instance 0", api.do("POST", usersPath+"/"+userID(t, api, "alice")+"/unlock", nil), 204)
	for i := 1; i < 3; i++ {
		fresh := newBrowser(t)
		page := fresh.get(urls[i])
		if p := fresh.do(fresh.loginRequest(page, urls[i], "username", "alice", "password", alicePass)); p.location == nil || p.location.Query().Get("code") == "" {
			t.Fatalf("alice after the unlock, on instance %d: %d, want signed in", i, p.status)
		}
	}

	// 30 wrong passwords for bob at once, 10 on each instance: four are told
	// "invalid" and the fifth locks, as one after another; the rest are refused.
	answers := burst(30, func(i int) page {
		return pageOf(b, b.loginRequest(login, urls[i%3], "username", "bob", "password", "wrong-password"))
	})
	invalid := 0
	for _, a := range answers {
		switch a.status {
		case 401:
			invalid++
		case 429:
			limitsWantLocked(t, "burst", a)
		default:
			t.Fatalf("burst answer %d, want 401 or 429", a.status)
		}
	}
	if invalid != 4 {
		t.Errorf("burst over three instances: %d answers 401, want 4 (the fifth failure locks)", invalid)
	}
	for i, u := range urls {
		if p := b.do(b.loginRequest(login, u, "username", "bob", "password", "bob-password-1")); p.status != 429 {
			t.Errorf("bob's right password after the burst, on instance %d: %d, want 429", i, p.status)
		}
	}
	// Each login.failed is a password checked and found wrong.
	events, err := openStore(t, db).ListAudit(t.Context(), storage.AuditFilter{Realm: "acme", Type: "login.failed"})
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, e := range events {
		if e.Details["username"] == "bob" {
			checked++
		}
	}
	if checked != 5 {
		t.Errorf("%d of bob's passwords were checked in the burst over three instances, want 5", checked)
	}
}

// Failed client authentications spread over three instances are throttled as
// on one: the tenth failure locks the client on every instance, and a parallel
// burst gets as many 401s as the same requests in sequence.
func TestSharedState_ClientAuthThrottledAcrossInstances(t *testing.T) {
	ss, _ := startThree(t, "")
	cc := form("grant_type", "client_credentials")
	const wrong = "svc-wrong-0123456789abcdefghijklmnopq"
	for i := range 9 {
		if r := post(t, ss[i%3].tokenURL(), "svc:"+wrong, cc); r.status != 401 {
			t.Fatalf("wrong secret %d, on instance %d: %d %s, want 401", i+1, i%3, r.status, r.raw)
		}
	}
	clientAuthWantThrottled(t, "tenth wrong secret", post(t, ss[0].tokenURL(), "svc:"+wrong, cc))
	for i, s := range ss {
		clientAuthWantThrottled(t, "right secret while locked, instance "+string(rune('0'+i)), post(t, s.tokenURL(), svcBasic, cc))
	}
	if r := post(t, ss[1].tokenURL(), "opq:"+opqSecret, cc); r.status != 200 {
		t.Fatalf("another client while svc is locked: %d %s", r.status, r.raw)
	}

	// 30 wrong secrets for web at once, 10 on each instance: nine 401s and the
	// rest 429, as in sequence.
	answers := burst(30, func(i int) response {
		return clientAuthPost(ss[i%3].tokenURL(), "web:web-wrong-0123456789abcdefghijklmnop", cc)
	})
	unauthorized := 0
	for _, r := range answers {
		switch r.status {
		case 401:
			unauthorized++
		case 429:
			clientAuthWantThrottled(t, "burst", r)
		default:
			t.Fatalf("burst answer %d %s, want 401 or 429", r.status, r.raw)
		}
	}
	if unauthorized != 9 {
		t.Errorf("burst over three instances: %d answers 401, want 9 (the tenth failure locks)", unauthorized)
	}
}

// burst runs n calls of fn at once (released together) and returns the answers.
func burst[T any](n int, fn func(i int) T) []T {
	out := make([]T, n)
	ready := make(chan struct{})
	var wg sync.WaitGroup
	for i := range out {
		wg.Go(func() {
			<-ready
			out[i] = fn(i)
		})
	}
	close(ready)
	wg.Wait()
	return out
}

// pageOf sends a browser's request from any goroutine: a transport error is a
// page with status 0.
func pageOf(b *browser, req *http.Request) page {
	res, err := b.client.Do(req)
	if err != nil {
		return page{}
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	p := page{status: res.StatusCode, body: string(body), header: res.Header}
	if loc, err := res.Location(); err == nil {
		p.location = loc
	}
	return p
}
