package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/storage"
)

// Failed client authentication is throttled per client and per source address
// (RFC 6749 §10.10) at every endpoint that authenticates clients.
func TestClientAuth_Throttled(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s := start(t, options{db: db})
		const wrong = "svc-wrong-0123456789abcdefghijklmnopq"
		cc := form("grant_type", "client_credentials")

		// 30 wrong secrets for svc at once: at most 10 are checked (401), the
		// rest are throttled.
		answers := make([]response, 30)
		ready := make(chan struct{})
		var wg sync.WaitGroup
		for i := range answers {
			wg.Go(func() {
				<-ready
				answers[i] = clientAuthPost(s.tokenURL(), "svc:"+wrong, cc)
			})
		}
		close(ready)
		wg.Wait()
		checked := 0
		for _, r := range answers {
			switch r.status {
			case 401:
				checked++
			case 429:
				clientAuthWantThrottled(t, "burst", r)
			default:
				t.Fatalf("burst answer %d %s, want 401 or 429", r.status, r.raw)
			}
		}
		if checked > 10 {
			t.Errorf("%d wrong secrets answered 401, want at most the limit of 10", checked)
		}
		if checked == len(answers) {
			t.Fatal("no wrong secret was throttled")
		}

		// The right secret is refused during the lock too, at every endpoint.
		clientAuthWantThrottled(t, "right secret at the token endpoint", post(t, s.tokenURL(), svcBasic, cc))
		clientAuthWantThrottled(t, "right secret at introspection", s.introspect(t, svcBasic, "x"))
		clientAuthWantThrottled(t, "right secret at revocation", post(t, s.revokeURL(), svcBasic, form("token", "x")))
		clientAuthWantThrottled(t, "right secret in the form", post(t, s.tokenURL(), "",
			form("grant_type", "client_credentials", "client_id", "svc", "client_secret", svcSecret)))

		// Another client from the same address is not locked by svc's lock...
		if r := post(t, s.tokenURL(), "opq:"+opqSecret, cc); r.status != 200 {
			t.Fatalf("opq while svc is locked: %d %s", r.status, r.raw)
		}
		// ... until the address itself has failed 20 times, over all clients.
		for i := 0; i < 30; i++ {
			r := post(t, s.tokenURL(), "web:web-wrong-0123456789abcdefghijklmnop", cc)
			if r.status == 429 {
				break
			}
			if r.status != 401 {
				t.Fatalf("wrong secret for web: %d %s", r.status, r.raw)
			}
		}
		clientAuthWantThrottled(t, "opq from a locked address", post(t, s.tokenURL(), "opq:"+opqSecret, cc))

		s.stop()
		st := openStore(t, db)
		events, err := st.ListAudit(context.Background(), storage.AuditFilter{Realm: "acme", Type: "client_auth.throttled"})
		if err != nil {
			t.Fatal(err)
		}
		svcLocked := false
		for _, e := range events {
			svcLocked = svcLocked || e.ClientID == "svc"
			for _, v := range append([]string{e.ClientID, e.UserAgent, e.IP}, limitsValues(e.Details)...) {
				if strings.Contains(v, "wrong") || strings.Contains(v, "secret") {
					t.Errorf("client_auth.throttled event holds a secret: %+v", e)
				}
			}
		}
		if !svcLocked {
			t.Errorf("no client_auth.throttled event for svc in %+v", events)
		}
	})
}

// A seed with a short client secret stops serve with one line naming the client.
func TestClientAuth_ShortSeedSecretRefused(t *testing.T) {
	bin := binary(t)
	seedFile := filepath.Join(t.TempDir(), "seed.yaml")
	seed := strings.Replace(defaultSeed, "secret: "+svcSecret, `secret: "1"`, 1)
	if err := os.WriteFile(seedFile, []byte(seed), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "serve", "--insecure-http", "--addr", freeAddr(t), "--base-url", "http://127.0.0.1:1",
		"--db", filepath.Join(t.TempDir(), "latchkey.db"), "--data-dir", t.TempDir(), "--seed", seedFile)
	cmd.Env = []string{"LATCHKEY_MASTER_KEY=" + masterKey, "PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	if err == nil || ctx.Err() != nil {
		t.Fatalf("serve with secret \"1\": err %v (context %v), want a non-zero exit:\n%s", err, ctx.Err(), out)
	}
	msg := strings.TrimSpace(string(out))
	if strings.Contains(msg, "\n") || !strings.Contains(msg, `client "svc"`) || !strings.Contains(msg, "at least 32 characters") {
		t.Fatalf("serve said %q; want one line naming client \"svc\" and the 32-character minimum", msg)
	}
}

// clientAuthWantThrottled checks a throttled client authentication: 429,
// Retry-After, and an RFC 6749 invalid_client body.
func clientAuthWantThrottled(t *testing.T, what string, r response) {
	t.Helper()
	if r.status != 429 || r.str("error") != "invalid_client" || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("%s: %d %s, want 429 invalid_client JSON", what, r.status, r.raw)
	}
	limitsWantRetryAfter(t, what, r.header)
}

// clientAuthPost is post for goroutines: a transport error is a 0 status with
// the error as the body.
func clientAuthPost(endpoint, basic string, f url.Values) response {
	req, _ := http.NewRequest("POST", endpoint, strings.NewReader(f.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id, secret, ok := strings.Cut(basic, ":"); ok {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	res, err := client.Do(req)
	if err != nil {
		return response{raw: err.Error()}
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := response{status: res.StatusCode, header: res.Header, raw: string(raw)}
	json.Unmarshal(raw, &r.body)
	return r
}
