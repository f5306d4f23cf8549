package e2e

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/storage/postgres/pgtest"
)

var gateDisableTrials = flag.Int("gate-disable-trials", 0, "run TestMeasure_GateRefusesUserDisabledAtAnotherInstance with this many users (0: skip)")

// TestMeasure_GateRefusesUserDisabledAtAnotherInstance measures (issue 12) how long a
// user disabled through instance A's admin API takes to be refused by a `latchkey
// gate` that follows instance B: A and B share one PostgreSQL database and one public
// URL, a proxy standing for the load balancer, which sends the gate to B only. The
// path is A's commit → NOTIFY → B's follower → B's revocation feed → the gate.
// Each trial signs a fresh user in (a code flow at A; a fresh user, as a token issued
// in the second of a disable stamp counts as before it), sees the gate accept the
// JWT, disables the user at A and calls the gate without pause until it answers 401.
// It prints the figures and asserts no timing, save that every refusal comes within
// 10 s:
//
//	go test -count=1 ./internal/e2e -run TestMeasure_GateRefuses -gate-disable-trials 200 -v
func TestMeasure_GateRefusesUserDisabledAtAnotherInstance(t *testing.T) {
	if *gateDisableTrials <= 0 {
		t.Skip("a measurement: run with -gate-disable-trials N")
	}
	loadBefore := loadAvg(t)
	p := listenProxy(t)
	dsn := pgtest.DSN(t)
	o := options{db: dsn, seed: rsSeed(t), args: []string{"--base-url", p.URL}}
	a := start(t, o)
	b := start(t, o)
	p.forwardTo(b)
	gate := startGate(t, p.issuer(), standIn(t))
	admin := root(t, a)
	// The disable itself goes without the OpenAPI check, whose validation of A's
	// answer would otherwise be timed too.
	unchecked := &adminAs{t: t, s: a, token: admin.token, http: client}

	const pass = "trial-password-1"
	ids := make([]string, *gateDisableTrials)
	for i := range ids {
		r := want(t, "create a user", admin.do("POST", usersPath, fmt.Sprintf(`{"username":"user%04d","password":%q}`, i, pass)), 201)
		ids[i] = r.str("id")
	}

	// One warm call to the gate, for comparison: the floor of what the poll can see.
	var sinceAnswer, sinceRequest, oneCall []time.Duration
	for i, id := range ids {
		username := fmt.Sprintf("user%04d", i)
		tok := a.redeem(t, webBasic, a.signInAs(t, newBrowser(t), "web", username, pass)).str("access_token")
		if sub := claimsOf(t, tok)["sub"]; sub != id {
			t.Fatalf("trial %d: the token's sub is %v, the user %s", i, sub, id)
		}
		// The first token of the realm is signed with a key B may not have published
		// yet; the gate fetches B's JWKS again for it.
		eventually(t, 5*time.Second, "the gate accepts a fresh token", func() bool {
			st, _, body := call(t, "GET", gate+"/me", tok)
			return st == 200 && body["sub"] == id
		})
		t0 := time.Now()
		if st, ch, _ := call(t, "GET", gate+"/me", tok); st != 200 {
			t.Fatalf("trial %d: the gate refused a live token: %d %q", i, st, ch)
		}
		oneCall = append(oneCall, time.Since(t0))

		t0 = time.Now()
		want(t, "disable at A", unchecked.do("POST", usersPath+"/"+id+"/disable", nil), 200)
		t1 := time.Now()
		for {
			st, ch, _ := call(t, "GET", gate+"/me", tok)
			if st == 401 && strings.Contains(ch, `error="invalid_token"`) {
				break
			}
			if st != 200 {
				t.Fatalf("trial %d: the gate answered %d %q", i, st, ch)
			}
			if time.Since(t1) > 10*time.Second {
				t.Fatalf("trial %d: a user disabled at A still passes the gate after 10 s", i)
			}
		}
		t2 := time.Now()
		sinceAnswer, sinceRequest = append(sinceAnswer, t2.Sub(t1)), append(sinceRequest, t2.Sub(t0))
	}
	fmt.Printf("load average (1, 5, 15 min) before: %s, after: %s\n", loadBefore, loadAvg(t))
	for _, m := range []struct {
		what string
		d    []time.Duration
	}{{"disabled at A, refused by the gate following B, from A's admin answer", sinceAnswer},
		{"disabled at A, refused by the gate following B, from A's admin request", sinceRequest},
		{"for comparison, one call through the gate with a live token", oneCall}} {
		fmt.Printf("%d trials, %s: %s\n", len(m.d), m.what, quantiles(m.d))
	}
}

// loadAvg is the machine's load average over 1, 5 and 15 minutes (proc(5)).
func loadAvg(t *testing.T) string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}
