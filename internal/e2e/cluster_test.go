package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/latchkey/latchkey/storage/postgres/pgtest"
)

// at once is how soon a change made on one instance must show on the others: the
// follower is woken by the store (LISTEN/NOTIFY) and reads the feed, in a few
// milliseconds; the old polls and cache lifetimes took one or two seconds.
const atOnce = 500 * time.Millisecond

// cluster starts n instances (A, B, C, ...) on one fresh PostgreSQL database,
// whose DSN it returns too. They share A's base URL as their public one, as
// instances behind one load balancer do, so they issue tokens of one issuer.
func cluster(t *testing.T, n int) ([]*server, string) {
	t.Helper()
	dsn := pgtest.DSN(t)
	var out []*server
	for i := range n {
		o := options{db: dsn, seed: adminSeed(t)}
		if i > 0 {
			o.args = []string{"--base-url", out[0].URL}
		}
		out = append(out, start(t, o))
	}
	return out, dsn
}

func appName(i int) string { return "latchkey-" + string(rune('A'+i)) }

// eventually polls cond until it holds, failing the test if it does not within d;
// it says how long it took.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if cond() {
			return time.Since(start)
		}
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (s *server) active(t testing.TB, basic, tok string) bool {
	t.Helper()
	r := s.introspect(t, basic, tok)
	if r.status != 200 {
		t.Fatalf("introspection: %d %s", r.status, r.raw)
	}
	return r.body["active"] == true
}

func (s *server) revoke(t testing.TB, basic, tok string) {
	t.Helper()
	if r := post(t, s.revokeURL(), basic, form("token", tok)); r.status != 200 {
		t.Fatalf("revocation: %d %s", r.status, r.raw)
	}
}

const opqBasic = "opq:" + opqSecret

// warmUp has A make the realm's first signing key (its first token does) and waits
// until the others verify its tokens, which takes them one feed round trip.
func warmUp(t testing.TB, cl []*server) {
	t.Helper()
	tok := ccToken(t.(*testing.T), cl[0], "svc", svcSecret).str("access_token")
	for _, s := range cl[1:] {
		eventually(t, 2*time.Second, "A's first token active at the others", func() bool { return s.active(t, svcBasic, tok) })
	}
}

// An access token, JWT or opaque, revoked at A is inactive at B's and C's
// introspection right after: they learn of it from the change feed, not from a
// poll of the deny-list.
func TestCluster_RevocationAtOneInstanceIsSeenByTheOthersAtOnce(t *testing.T) {
	cl, _ := cluster(t, 3)
	a := cl[0]
	warmUp(t, cl)
	for trial := range 3 {
		for _, c := range []struct{ id, basic string }{{"svc", svcBasic}, {"opq", opqBasic}} {
			tok := ccToken(t, a, c.id, strings.SplitN(c.basic, ":", 2)[1]).str("access_token")
			for _, s := range cl[1:] {
				if !s.active(t, c.basic, tok) { // and now it is in their verified-token caches
					t.Fatalf("trial %d: a fresh %s token is inactive at %s", trial, c.id, s.URL)
				}
			}
			a.revoke(t, c.basic, tok)
			if a.active(t, c.basic, tok) {
				t.Fatalf("trial %d: the revoked %s token is active at the instance that revoked it", trial, c.id)
			}
			for i, s := range cl[1:] {
				took := eventually(t, atOnce, c.id+" token revoked at A, inactive at "+appName(i+1), func() bool {
					return !s.active(t, c.basic, tok)
				})
				t.Logf("trial %d: %s token inactive at %s after %v", trial, c.id, appName(i+1), took)
			}
		}
	}
}

// A client disabled through A's admin API is refused at B's token endpoint at
// once, though B had it cached a moment before.
func TestCluster_ClientDisabledAtOneInstanceIsRefusedByTheOthersAtOnce(t *testing.T) {
	cl, _ := cluster(t, 2)
	a, b := cl[0], cl[1]
	if r := ccToken(t, b, "svc", svcSecret); r.status != 200 {
		t.Fatalf("before: %d %s", r.status, r.raw)
	}
	want(t, "disable at A", root(t, a).do("POST", "/admin/realms/acme/clients/svc/disable", nil), 200)
	eventually(t, atOnce, "a client disabled at A refused at B", func() bool {
		return ccToken(t, b, "svc", svcSecret).status == 401
	})
	r := ccToken(t, b, "svc", svcSecret)
	if r.status != 401 || r.str("error") != "invalid_client" {
		t.Fatalf("a disabled client at B: %d %s", r.status, r.raw)
	}
	// And enabled again, it is served again at once.
	want(t, "enable at A", root(t, a).do("POST", "/admin/realms/acme/clients/svc/enable", nil), 200)
	eventually(t, atOnce, "a client enabled at A served at B", func() bool {
		return ccToken(t, b, "svc", svcSecret).status == 200
	})
}

// A key retired at A leaves B's JWKS at once, the tokens it signed are inactive at
// B's introspection (though B had verified them), and B signs with another key.
func TestCluster_KeyRetiredAtOneInstanceLeavesTheOthersAtOnce(t *testing.T) {
	cl, _ := cluster(t, 2)
	a, b := cl[0], cl[1]
	tok := ccToken(t, b, "svc", svcSecret).str("access_token")
	kid := jwtKID(t, tok)
	certs := func() string {
		r := do(t, getRequest(b.issuer("acme")+"/protocol/openid-connect/certs"))
		if r.status != 200 {
			t.Fatalf("B's JWKS: %d %s", r.status, r.raw)
		}
		return r.raw
	}
	if !strings.Contains(certs(), kid) || !b.active(t, svcBasic, tok) {
		t.Fatal("before: the key is not published at B, or its token inactive")
	}
	want(t, "retire at A", root(t, a).do("POST", "/admin/realms/acme/keys/"+kid+"/retire", nil), 200)
	eventually(t, atOnce, "a key retired at A gone from B's JWKS", func() bool { return !strings.Contains(certs(), kid) })
	eventually(t, atOnce, "a token of a key retired at A inactive at B", func() bool { return !b.active(t, svcBasic, tok) })
	if next := ccToken(t, b, "svc", svcSecret).str("access_token"); jwtKID(t, next) == kid {
		t.Fatal("B still signs with the retired key")
	}
}

// listeners returns the process IDs of the PostgreSQL backends, of conn's
// database, that s's process is connected to and whose last query was LISTEN.
func listeners(t *testing.T, conn *pgx.Conn, s *server) []int32 {
	t.Helper()
	rows, err := conn.Query(t.Context(), `SELECT pid, client_port FROM pg_stat_activity
		WHERE datname = current_database() AND query ILIKE 'listen%'`)
	if err != nil {
		t.Fatal(err)
	}
	type backend struct {
		PID  int32
		Port int32
	}
	backends, err := pgx.CollectRows(rows, pgx.RowToStructByPos[backend])
	if err != nil {
		t.Fatal(err)
	}
	ports := localPorts(t, s.cmd.Process.Pid)
	var pids []int32
	for _, b := range backends {
		if ports[int(b.Port)] {
			pids = append(pids, b.PID)
		}
	}
	return pids
}

// localPorts returns the local ports of the TCP sockets process pid holds, from
// /proc: its fds name socket inodes, /proc/net/tcp{,6} map inodes to ports.
func localPorts(t *testing.T, pid int) map[int]bool {
	t.Helper()
	inodes := map[string]bool{}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if inode, ok := strings.CutPrefix(link, "socket:["); ok && err == nil {
			inodes[strings.TrimSuffix(inode, "]")] = true
		}
	}
	ports := map[int]bool{}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line) // sl local rem st queues tr retrnsmt uid timeout inode
			if len(f) < 10 || !inodes[f[9]] {
				continue
			}
			_, hexPort, _ := strings.Cut(f[1], ":")
			if port, err := strconv.ParseInt(hexPort, 16, 32); err == nil {
				ports[int(port)] = true
			}
		}
	}
	return ports
}

// After B's LISTEN connection is killed, a revocation at A still reaches B: it
// reconnects and catches up by sequence number; and then listens again.
func TestCluster_RevocationReachesAnInstanceWhoseListenConnectionWasKilled(t *testing.T) {
	cl, dsn := cluster(t, 2)
	a, b := cl[0], cl[1]
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	// B listens from a moment after it is ready: its follower starts with it.
	var pids []int32
	eventually(t, 3*time.Second, "B listening", func() bool {
		pids = listeners(t, conn, b)
		return len(pids) > 0
	})
	if len(pids) != 1 {
		t.Fatalf("B has %d LISTEN connections; want 1", len(pids))
	}
	if _, err := conn.Exec(t.Context(), `SELECT pg_terminate_backend($1)`, pids[0]); err != nil {
		t.Fatal(err)
	}
	tok := ccToken(t, a, "svc", svcSecret).str("access_token")
	a.revoke(t, svcBasic, tok)
	// Within the reconnection, well before the 5 s safety-net poll.
	took := eventually(t, 3*time.Second, "a revocation at A reaching B after B's LISTEN connection was killed", func() bool {
		return !b.active(t, svcBasic, tok)
	})
	t.Logf("reached B after %v", took)
	eventually(t, 3*time.Second, "B listening again", func() bool {
		now := listeners(t, conn, b)
		return len(now) == 1 && !slices.Contains(now, pids[0])
	})
	tok = ccToken(t, a, "svc", svcSecret).str("access_token")
	a.revoke(t, svcBasic, tok)
	eventually(t, atOnce, "a revocation at A reaching B once it listens again", func() bool {
		return !b.active(t, svcBasic, tok)
	})
}

// On SQLite (one instance), the follower runs too: a revocation is inactive at
// once on the instance, and a disabled client is refused at once.
func TestCluster_SQLiteSingleInstanceAppliesItsOwnChanges(t *testing.T) {
	s := startAdmin(t, "")
	for _, c := range []struct{ id, basic string }{{"svc", svcBasic}, {"opq", opqBasic}} {
		tok := ccToken(t, s, c.id, strings.SplitN(c.basic, ":", 2)[1]).str("access_token")
		if !s.active(t, c.basic, tok) {
			t.Fatalf("a fresh %s token is inactive", c.id)
		}
		s.revoke(t, c.basic, tok)
		if s.active(t, c.basic, tok) {
			t.Fatalf("a revoked %s token is active", c.id)
		}
	}
	want(t, "disable", root(t, s).do("POST", "/admin/realms/acme/clients/svc/disable", nil), 200)
	if r := ccToken(t, s, "svc", svcSecret); r.status != 401 {
		t.Fatalf("a disabled client: %d %s", r.status, r.raw)
	}
}

var clusterTrials = flag.Int("cluster-trials", 0, "run TestMeasure_ClusterRevocationPropagation with this many revocations (0: skip)")

// TestMeasure_ClusterRevocationPropagation measures, on three instances sharing one
// PostgreSQL database, how long a revocation answered at A takes to show as
// inactive at B's introspection (B polled without pause). It prints the figures and
// asserts no timing: go test ./internal/e2e -run TestMeasure_Cluster -cluster-trials 300 -v
func TestMeasure_ClusterRevocationPropagation(t *testing.T) {
	if *clusterTrials <= 0 {
		t.Skip("a measurement: run with -cluster-trials N")
	}
	cl, _ := cluster(t, 3)
	a, b := cl[0], cl[1]
	warmUp(t, cl)
	// One introspection at B, for comparison: the floor of what the poll can see,
	// and how noisy the machine is.
	var sinceAnswer, sinceRequest, oneIntrospection []time.Duration
	for trial := range *clusterTrials {
		c := []struct{ id, secret, basic string }{{"svc", svcSecret, svcBasic}, {"opq", opqSecret, opqBasic}}[trial%2]
		tok := ccToken(t, a, c.id, c.secret).str("access_token")
		t0 := time.Now()
		if !b.active(t, c.basic, tok) {
			t.Fatal("a fresh token is inactive at B")
		}
		oneIntrospection = append(oneIntrospection, time.Since(t0))
		t0 = time.Now()
		a.revoke(t, c.basic, tok)
		t1 := time.Now()
		for b.active(t, c.basic, tok) {
			if time.Since(t1) > 10*time.Second {
				t.Fatal("a revocation at A never reached B")
			}
		}
		t2 := time.Now()
		sinceAnswer, sinceRequest = append(sinceAnswer, t2.Sub(t1)), append(sinceRequest, t2.Sub(t0))
	}
	for _, m := range []struct {
		what string
		d    []time.Duration
	}{{"revoked at A, inactive at B, from A's revocation answer", sinceAnswer}, {"revoked at A, inactive at B, from A's revocation request", sinceRequest},
		{"for comparison, one introspection at B", oneIntrospection}} {
		fmt.Printf("%d trials (JWT and opaque alternating), %s: %s\n", len(m.d), m.what, quantiles(m.d))
	}
}

// quantiles are the p50, p90, p99 and max of the measurements d, which it sorts.
func quantiles(d []time.Duration) string {
	slices.Sort(d)
	q := func(p float64) time.Duration { return d[int(p*float64(len(d)-1))].Round(10 * time.Microsecond) }
	return fmt.Sprintf("p50 %v  p90 %v  p99 %v  max %v", q(0.5), q(0.9), q(0.99), q(1))
}
