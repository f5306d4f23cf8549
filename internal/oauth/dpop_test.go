package oauth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/latchkey/latchkey/internal/dpop"
	"github.com/latchkey/latchkey/storage"
)

// dpopKey is a client's DPoP key pair.
type dpopKey struct {
	signer jose.Signer
	jkt    string
}

func newDPoPKey(t *testing.T) dpopKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k},
		(&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	jkt, err := dpop.Thumbprint(jose.JSONWebKey{Key: &k.PublicKey})
	if err != nil {
		t.Fatal(err)
	}
	return dpopKey{signer: s, jkt: jkt}
}

// proofOpts change a proof from the one the request calls for.
type proofOpts struct {
	iat   time.Time
	nonce string
	token string // the access token: ath
	jti   string
}

// proof signs a DPoP proof for method and u at the instance's time.
func (k dpopKey) proof(t *testing.T, inst *instance, method, u string, o proofOpts) string {
	t.Helper()
	if o.iat.IsZero() {
		o.iat = inst.clock.Now()
	}
	if o.jti == "" {
		o.jti = rand.Text()
	}
	claims := map[string]any{"jti": o.jti, "htm": method, "htu": u, "iat": o.iat.Unix()}
	if o.nonce != "" {
		claims["nonce"] = o.nonce
	}
	if o.token != "" {
		sum := sha256.Sum256([]byte(o.token))
		claims["ath"] = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	payload, _ := json.Marshal(claims)
	jws, err := k.signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// postDPoP posts a form to the token endpoint with a DPoP header (none when proof is "").
func postDPoP(t *testing.T, endpoint, basic string, f url.Values, proof string) response {
	t.Helper()
	req, _ := http.NewRequest("POST", endpoint, strings.NewReader(f.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id, secret, ok := strings.Cut(basic, ":"); ok {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	if proof != "" {
		req.Header.Set("DPoP", proof)
	}
	return do(t, req)
}

// nonceOf asks the token endpoint for a DPoP nonce the way a client learns it:
// a proof without one is refused with use_dpop_nonce and the nonce to use.
func nonceOf(t *testing.T, inst *instance, k dpopKey) string {
	t.Helper()
	r := postDPoP(t, inst.tokenURL("acme"), svcBasic, form("grant_type", "client_credentials"),
		k.proof(t, inst, "POST", inst.tokenURL("acme"), proofOpts{}))
	if r.status != 400 || str(r, "error") != "use_dpop_nonce" || r.header.Get("DPoP-Nonce") == "" {
		t.Fatalf("first proof = %d %s nonce %q, want 400 use_dpop_nonce with a DPoP-Nonce", r.status, r.raw, r.header.Get("DPoP-Nonce"))
	}
	return r.header.Get("DPoP-Nonce")
}

// dpopToken gets a DPoP-bound client_credentials token for basic.
func dpopToken(t *testing.T, inst *instance, k dpopKey, basic string) response {
	t.Helper()
	nonce := nonceOf(t, inst, k)
	r := postDPoP(t, inst.tokenURL("acme"), basic, form("grant_type", "client_credentials"),
		k.proof(t, inst, "POST", inst.tokenURL("acme"), proofOpts{nonce: nonce}))
	if r.status != 200 {
		t.Fatalf("token with a proof = %d %s", r.status, r.raw)
	}
	return r
}

func wantDPoPError(t *testing.T, r response, status int, code string) {
	t.Helper()
	if r.status != status || str(r, "error") != code {
		t.Fatalf("got %d %s, want %d %s", r.status, r.raw, status, code)
	}
}

func cnfJKT(m map[string]any) string {
	cnf, _ := m["cnf"].(map[string]any)
	s, _ := cnf["jkt"].(string)
	return s
}

func TestDPoP_NonceDanceBindsTheToken(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		k := newDPoPKey(t)
		for _, c := range []struct{ name, basic string }{{"JWT", svcBasic}, {"opaque", "opq:opq-secret-789-0123456789abcdefghijklmnop"}} {
			t.Run(c.name, func(t *testing.T) {
				nonce := nonceOf(t, inst, k)
				r := postDPoP(t, inst.tokenURL("acme"), c.basic, form("grant_type", "client_credentials"),
					k.proof(t, inst, "POST", inst.tokenURL("acme"), proofOpts{nonce: nonce}))
				if r.status != 200 || str(r, "token_type") != "DPoP" {
					t.Fatalf("token = %d %s, want 200 token_type DPoP", r.status, r.raw)
				}
				// RFC 9449 §8: every answer to a DPoP request carries a fresh nonce.
				if r.header.Get("DPoP-Nonce") == "" {
					t.Error("no DPoP-Nonce on the success")
				}
				at := str(r, "access_token")
				if c.name == "JWT" {
					if got := cnfJKT(claimsOf(t, inst, at)); got != k.jkt {
						t.Errorf("cnf.jkt %q, want %q", got, k.jkt)
					}
				}
				in := postDPoP(t, inst.introspectURL("acme"), svcBasic, form("token", at), "")
				if in.body["active"] != true || str(in, "token_type") != "DPoP" || cnfJKT(in.body) != k.jkt {
					t.Errorf("introspection %s, want active, token_type DPoP, cnf.jkt %s", in.raw, k.jkt)
				}
				// Without a proof the same client still gets a bearer token, without cnf.
				b := postDPoP(t, inst.tokenURL("acme"), c.basic, form("grant_type", "client_credentials"), "")
				if b.status != 200 || str(b, "token_type") != "Bearer" || b.header.Get("DPoP-Nonce") != "" {
					t.Fatalf("token without a proof = %d %s nonce %q", b.status, b.raw, b.header.Get("DPoP-Nonce"))
				}
				in = postDPoP(t, inst.introspectURL("acme"), svcBasic, form("token", str(b, "access_token")), "")
				if str(in, "token_type") != "Bearer" || in.body["cnf"] != nil {
					t.Errorf("bearer introspection %s", in.raw)
				}
			})
		}
	})
}

func TestDPoP_TokenEndpointRefusesBadProofs(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		k := newDPoPKey(t)
		nonce := nonceOf(t, inst, k)
		u := inst.tokenURL("acme")
		good := k.proof(t, inst, "POST", u, proofOpts{nonce: nonce})
		for _, c := range []struct {
			name, proof, code string
		}{
			{"wrong htu", k.proof(t, inst, "POST", inst.issuer("acme")+userinfoPath, proofOpts{nonce: nonce}), "invalid_dpop_proof"},
			{"another realm's htu", k.proof(t, inst, "POST", inst.tokenURL("ed"), proofOpts{nonce: nonce}), "invalid_dpop_proof"},
			{"wrong htm", k.proof(t, inst, "GET", u, proofOpts{nonce: nonce}), "invalid_dpop_proof"},
			{"too old", k.proof(t, inst, "POST", u, proofOpts{nonce: nonce, iat: inst.clock.Now().Add(-5 * time.Minute)}), "invalid_dpop_proof"},
			{"from the future", k.proof(t, inst, "POST", u, proofOpts{nonce: nonce, iat: inst.clock.Now().Add(5 * time.Minute)}), "invalid_dpop_proof"},
			{"bad signature", good[:len(good)-4] + flip(good[len(good)-4:]), "invalid_dpop_proof"},
			{"not a JWT", "not-a-proof", "invalid_dpop_proof"},
			{"a made-up nonce", k.proof(t, inst, "POST", u, proofOpts{nonce: "made-up"}), "use_dpop_nonce"},
		} {
			t.Run(c.name, func(t *testing.T) {
				r := postDPoP(t, u, svcBasic, form("grant_type", "client_credentials"), c.proof)
				wantDPoPError(t, r, 400, c.code)
				if r.header.Get("DPoP-Nonce") == "" {
					t.Error("no DPoP-Nonce on the refusal")
				}
			})
		}
		// The good proof still works once, and only once (§11.1).
		if r := postDPoP(t, u, svcBasic, form("grant_type", "client_credentials"), good); r.status != 200 {
			t.Fatalf("good proof = %d %s", r.status, r.raw)
		}
		wantDPoPError(t, postDPoP(t, u, svcBasic, form("grant_type", "client_credentials"), good), 400, "invalid_dpop_proof")
		// Two DPoP headers (§4.3 1).
		req, _ := http.NewRequest("POST", u, strings.NewReader("grant_type=client_credentials"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("svc", "svc-secret-123-0123456789abcdefghijklmnop")
		req.Header.Add("DPoP", k.proof(t, inst, "POST", u, proofOpts{nonce: nonce}))
		req.Header.Add("DPoP", k.proof(t, inst, "POST", u, proofOpts{nonce: nonce}))
		wantDPoPError(t, do(t, req), 400, "invalid_dpop_proof")
		// A nonce outlives its window once, then it is stale (§8): the clock moves.
		inst.clock.Add(2*dpopNonceWindow + time.Second)
		wantDPoPError(t, postDPoP(t, u, svcBasic, form("grant_type", "client_credentials"),
			k.proof(t, inst, "POST", u, proofOpts{nonce: nonce})), 400, "use_dpop_nonce")
	})
}

// flip changes the last characters of a signature so it no longer verifies.
func flip(s string) string {
	b := []byte(s)
	for i := range b {
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
	}
	return string(b)
}

// TestDPoP_HTUIsTheIssuersNeverTheHost: behind a load balancer the proof names
// the public URL; one naming the instance's own address (its Host) is refused.
func TestDPoP_HTUIsTheIssuersNeverTheHost(t *testing.T) {
	backends(t, func(t *testing.T, open func() storage.Store) {
		clk := &clock{t: time.Now().Truncate(time.Second)}
		inst := newInstanceBehind(t, open(), clk, true, "https://id.example", 0)
		k := newDPoPKey(t)
		public := "https://id.example/realms/acme" + tokenPath
		first := postDPoP(t, inst.tokenURL("acme"), svcBasic, form("grant_type", "client_credentials"),
			k.proof(t, inst, "POST", public, proofOpts{}))
		wantDPoPError(t, first, 400, "use_dpop_nonce")
		nonce := first.header.Get("DPoP-Nonce")
		wantDPoPError(t, postDPoP(t, inst.tokenURL("acme"), svcBasic, form("grant_type", "client_credentials"),
			k.proof(t, inst, "POST", inst.tokenURL("acme"), proofOpts{nonce: nonce})), 400, "invalid_dpop_proof")
		if r := postDPoP(t, inst.tokenURL("acme"), svcBasic, form("grant_type", "client_credentials"),
			k.proof(t, inst, "POST", public, proofOpts{nonce: nonce})); r.status != 200 || str(r, "token_type") != "DPoP" {
			t.Fatalf("proof for the issuer's URL = %d %s", r.status, r.raw)
		}
	})
}

// TestDPoP_ReplayRefusedAcrossInstances: a nonce from one instance works at
// another, and a proof used at one is refused at the other (RFC 9449 §11.1).
func TestDPoP_ReplayRefusedAcrossInstances(t *testing.T) {
	backends(t, func(t *testing.T, open func() storage.Store) {
		st := open()
		clk := &clock{t: time.Now().Truncate(time.Second)}
		a := newInstanceBehind(t, st, clk, true, "https://id.example", 0)
		b := newInstanceBehind(t, st, clk, false, "https://id.example", 0)
		k := newDPoPKey(t)
		public := "https://id.example/realms/acme" + tokenPath
		first := postDPoP(t, a.tokenURL("acme"), svcBasic, form("grant_type", "client_credentials"), k.proof(t, a, "POST", public, proofOpts{}))
		wantDPoPError(t, first, 400, "use_dpop_nonce")
		p := k.proof(t, a, "POST", public, proofOpts{nonce: first.header.Get("DPoP-Nonce")})
		if r := postDPoP(t, b.tokenURL("acme"), svcBasic, form("grant_type", "client_credentials"), p); r.status != 200 {
			t.Fatalf("A's nonce at B = %d %s", r.status, r.raw)
		}
		wantDPoPError(t, postDPoP(t, a.tokenURL("acme"), svcBasic, form("grant_type", "client_credentials"), p), 400, "invalid_dpop_proof")
	})
}

// TestDPoP_ProofUsedOnceUnderRace: one proof sent by many parties at once is
// accepted exactly once, on both stores.
func TestDPoP_ProofUsedOnceUnderRace(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		k := newDPoPKey(t)
		nonce := nonceOf(t, inst, k)
		for _, n := range []int{2, 5, 100} {
			t.Run(fmt.Sprint(n), func(t *testing.T) {
				for trial := range 3 {
					p := k.proof(t, inst, "POST", inst.tokenURL("acme"), proofOpts{nonce: nonce})
					var ok, replayed atomic.Int32
					var wg sync.WaitGroup
					startLine := make(chan struct{})
					for range n {
						wg.Go(func() {
							<-startLine
							r := postDPoP(t, inst.tokenURL("acme"), svcBasic, form("grant_type", "client_credentials"), p)
							switch {
							case r.status == 200:
								ok.Add(1)
							case r.status == 400 && str(r, "error") == "invalid_dpop_proof":
								replayed.Add(1)
							default:
								t.Errorf("trial %d: %d %s", trial, r.status, r.raw)
							}
						})
					}
					close(startLine)
					wg.Wait()
					if ok.Load() != 1 || replayed.Load() != int32(n-1) {
						t.Fatalf("trial %d: %d accepted, %d refused as replays; want 1 and %d", trial, ok.Load(), replayed.Load(), n-1)
					}
				}
			})
		}
	})
}

// signInCode signs alice in with the client and returns the code.
func signInCode(t *testing.T, inst *instance, b *browser, clientID, scope string) string {
	t.Helper()
	u := authURL(inst, "acme", "client_id", clientID, "scope", scope)
	var loc *url.URL
	if p := b.get(u); p.location != nil {
		loc = p.location
	} else {
		loc = b.submit(p, u, "username", "alice", "password", "alice-password-1").location
	}
	if loc == nil || loc.Query().Get("code") == "" {
		t.Fatalf("no code: %v", loc)
	}
	return loc.Query().Get("code")
}

// dpopRedeem redeems a code of the public spa client with a proof of k.
func dpopRedeem(t *testing.T, inst *instance, k dpopKey, nonce, code string) response {
	t.Helper()
	return postDPoP(t, inst.tokenURL("acme"), "", form("grant_type", "authorization_code", "code", code,
		"redirect_uri", callback, "code_verifier", verifier, "client_id", "spa"),
		k.proof(t, inst, "POST", inst.tokenURL("acme"), proofOpts{nonce: nonce}))
}

func dpopRefresh(t *testing.T, inst *instance, k *dpopKey, nonce, rt string) response {
	t.Helper()
	proof := ""
	if k != nil {
		proof = k.proof(t, inst, "POST", inst.tokenURL("acme"), proofOpts{nonce: nonce})
	}
	return postDPoP(t, inst.tokenURL("acme"), "", form("grant_type", "refresh_token", "refresh_token", rt, "client_id", "spa"), proof)
}

// TestDPoP_PublicClientRefreshBoundToKey: a public client that redeemed its code
// with a proof has its refresh tokens bound to that key (RFC 9449 §5). Another
// key, or none, gets invalid_grant, and nothing rotates and nothing is revoked:
// the holder of the key refreshes on, and an honest retry still works.
func TestDPoP_PublicClientRefreshBoundToKey(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		k, other := newDPoPKey(t), newDPoPKey(t)
		nonce := nonceOf(t, inst, k)
		r := dpopRedeem(t, inst, k, nonce, signInCode(t, inst, newBrowser(t), "spa", "openid profile"))
		if r.status != 200 || str(r, "token_type") != "DPoP" || cnfJKT(claimsOf(t, inst, str(r, "access_token"))) != k.jkt {
			t.Fatalf("redeem = %d %s", r.status, r.raw)
		}
		rt := str(r, "refresh_token")
		fam := familyOf(t, inst, rt)
		if f, err := inst.store.GetFamily(t.Context(), fam); err != nil || f.JKT != k.jkt {
			t.Fatalf("family JKT %q (%v), want %q", f.JKT, err, k.jkt)
		}
		for name, key := range map[string]*dpopKey{"no proof": nil, "another key": &other} {
			wantDPoPError(t, dpopRefresh(t, inst, key, nonce, rt), 400, "invalid_grant")
			if f, err := inst.store.GetFamily(t.Context(), fam); err != nil || !f.RevokedAt.IsZero() {
				t.Fatalf("%s: family revoked (%v)", name, err)
			}
		}
		// Each refusal is a security event: audited, with the family it was about.
		if events, _ := inst.store.ListAudit(t.Context(), storage.AuditFilter{Type: "refresh_token.wrong_dpop_key"}); len(events) != 2 || events[0].FamilyID != fam {
			t.Fatalf("audit events %+v, want 2 for family %s", events, fam)
		}
		r2 := dpopRefresh(t, inst, &k, nonce, rt)
		if r2.status != 200 || str(r2, "token_type") != "DPoP" || cnfJKT(claimsOf(t, inst, str(r2, "access_token"))) != k.jkt {
			t.Fatalf("refresh with the key = %d %s", r2.status, r2.raw)
		}
		// An honest retry within the window, with the key, gets the same answer;
		// with another key it is refused and still revokes nothing.
		wantDPoPError(t, dpopRefresh(t, inst, &other, nonce, rt), 400, "invalid_grant")
		if again := dpopRefresh(t, inst, &k, nonce, rt); again.status != 200 || str(again, "refresh_token") != str(r2, "refresh_token") {
			t.Fatalf("retry = %d %s", again.status, again.raw)
		}
		if r3 := dpopRefresh(t, inst, &k, nonce, str(r2, "refresh_token")); r3.status != 200 {
			t.Fatalf("next refresh = %d %s", r3.status, r3.raw)
		}
	})
}

// TestDPoP_BoundRefreshRace: many parties refresh one bound token at once, half
// of them with another key: those are all refused, and the family stays live.
func TestDPoP_BoundRefreshRace(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		k, other := newDPoPKey(t), newDPoPKey(t)
		nonce := nonceOf(t, inst, k)
		for _, n := range []int{2, 5, 100} {
			t.Run(fmt.Sprint(n), func(t *testing.T) {
				rt := str(dpopRedeem(t, inst, k, nonce, signInCode(t, inst, newBrowser(t), "spa", "openid")), "refresh_token")
				var wg sync.WaitGroup
				var wrongOK atomic.Int32
				startLine := make(chan struct{})
				for i := range n {
					key := &k
					if i%2 == 1 {
						key = &other
					}
					p := key.proof(t, inst, "POST", inst.tokenURL("acme"), proofOpts{nonce: nonce})
					wg.Go(func() {
						<-startLine
						r := postDPoP(t, inst.tokenURL("acme"), "", form("grant_type", "refresh_token", "refresh_token", rt, "client_id", "spa"), p)
						switch {
						case key == &other && r.status != 400:
							wrongOK.Add(1)
						case key == &k && r.status != 200:
							// One rotates; the others are honest retries within the window.
							t.Errorf("refresh with the key = %d %s", r.status, r.raw)
						}
					})
				}
				close(startLine)
				wg.Wait()
				if wrongOK.Load() != 0 {
					t.Fatalf("%d refreshes with another key were not refused", wrongOK.Load())
				}
				if f, err := inst.store.GetFamily(t.Context(), familyOf(t, inst, rt)); err != nil || !f.RevokedAt.IsZero() {
					t.Fatalf("family revoked (%v)", err)
				}
			})
		}
	})
}

// TestDPoP_BoundClientNeedsProof: dpop_bound_access_tokens refuses a token
// request without a proof.
func TestDPoP_BoundClientNeedsProof(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		// svc, now registered with dpop_bound_access_tokens.
		if _, err := inst.store.UpdateClient(t.Context(), "acme", "svc", func(c *storage.Client) ([]storage.AuditEvent, error) {
			c.DPoPBoundAccessTokens = true
			return nil, nil
		}); err != nil {
			t.Fatal(err)
		}
		inst.clock.Add(2 * time.Second) // past the client cache
		const basic = svcBasic
		r := postDPoP(t, inst.tokenURL("acme"), basic, form("grant_type", "client_credentials"), "")
		wantDPoPError(t, r, 400, "invalid_dpop_proof")
		if got := dpopToken(t, inst, newDPoPKey(t), basic); str(got, "token_type") != "DPoP" {
			t.Fatalf("with a proof: %s", got.raw)
		}
	})
}

// userinfoDPoP calls userinfo with the DPoP scheme (proof "" sends none).
func userinfoDPoP(t *testing.T, inst *instance, scheme, at, proof string) response {
	t.Helper()
	req, _ := http.NewRequest("GET", inst.issuer("acme")+userinfoPath, nil)
	req.Header.Set("Authorization", scheme+" "+at)
	if proof != "" {
		req.Header.Set("DPoP", proof)
	}
	return do(t, req)
}

func TestDPoP_Userinfo(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		k, other := newDPoPKey(t), newDPoPKey(t)
		nonce := nonceOf(t, inst, k)
		r := dpopRedeem(t, inst, k, nonce, signInCode(t, inst, newBrowser(t), "spa", "openid profile"))
		at := str(r, "access_token")
		u := inst.issuer("acme") + userinfoPath
		ok := userinfoDPoP(t, inst, "DPoP", at, k.proof(t, inst, "GET", u, proofOpts{token: at}))
		if ok.status != 200 || str(ok, "preferred_username") != "alice" {
			t.Fatalf("userinfo with DPoP = %d %s", ok.status, ok.raw)
		}
		challenge := func(r response, code string) {
			t.Helper()
			if r.status != 401 || str(r, "error") != code {
				t.Fatalf("got %d %s, want 401 %s", r.status, r.raw, code)
			}
			if h := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(h, "DPoP ") || !strings.Contains(h, `error="`+code+`"`) || !strings.Contains(h, `algs="`) {
				t.Fatalf("WWW-Authenticate %q", h)
			}
		}
		// The same token as a bearer token: refused (a downgrade).
		bearer := userinfoDPoP(t, inst, "Bearer", at, "")
		if bearer.status != 401 || str(bearer, "error") != "invalid_token" {
			t.Fatalf("bound token as Bearer = %d %s", bearer.status, bearer.raw)
		}
		challenge(userinfoDPoP(t, inst, "DPoP", at, other.proof(t, inst, "GET", u, proofOpts{token: at})), "invalid_token")
		challenge(userinfoDPoP(t, inst, "DPoP", at, ""), "invalid_dpop_proof")
		challenge(userinfoDPoP(t, inst, "DPoP", at, k.proof(t, inst, "GET", u, proofOpts{})), "invalid_dpop_proof")                              // no ath
		challenge(userinfoDPoP(t, inst, "DPoP", at, k.proof(t, inst, "POST", u, proofOpts{token: at})), "invalid_dpop_proof")                    // htm
		challenge(userinfoDPoP(t, inst, "DPoP", at, k.proof(t, inst, "GET", inst.tokenURL("acme"), proofOpts{token: at})), "invalid_dpop_proof") // htu
		replayed := k.proof(t, inst, "GET", u, proofOpts{token: at})
		if r := userinfoDPoP(t, inst, "DPoP", at, replayed); r.status != 200 {
			t.Fatalf("fresh proof = %d %s", r.status, r.raw)
		}
		challenge(userinfoDPoP(t, inst, "DPoP", at, replayed), "invalid_dpop_proof")
		// A bearer token is not made a DPoP one by a proof.
		plain := signInTokens(t, inst, newBrowser(t), "web", "web:web-secret-123-0123456789abcdefghijklmnop", "openid profile")
		pat := str(plain, "access_token")
		challenge(userinfoDPoP(t, inst, "DPoP", pat, k.proof(t, inst, "GET", u, proofOpts{token: pat})), "invalid_token")
	})
}

func TestDPoP_DiscoveryAndCORS(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		r := do(t, mustReq(t, "GET", inst.issuer("acme")+"/.well-known/openid-configuration"))
		algs, _ := r.body["dpop_signing_alg_values_supported"].([]any)
		if fmt.Sprint(algs) != fmt.Sprint(dpop.SigningAlgorithms) {
			t.Errorf("dpop_signing_alg_values_supported %v, want %v", algs, dpop.SigningAlgorithms)
		}
		pre := mustReq(t, "OPTIONS", inst.tokenURL("acme"))
		pre.Header.Set("Origin", "http://127.0.0.1:9999")
		pre.Header.Set("Access-Control-Request-Method", "POST")
		pre.Header.Set("Access-Control-Request-Headers", "dpop, content-type")
		if p := do(t, pre); !strings.Contains(p.header.Get("Access-Control-Allow-Headers"), "DPoP") {
			t.Errorf("preflight allows headers %q", p.header.Get("Access-Control-Allow-Headers"))
		}
		k := newDPoPKey(t)
		req, _ := http.NewRequest("POST", inst.tokenURL("acme"), strings.NewReader(form("grant_type", "refresh_token", "refresh_token", "lk_rt_x", "client_id", "spa").Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "http://127.0.0.1:9999")
		req.Header.Set("DPoP", k.proof(t, inst, "POST", inst.tokenURL("acme"), proofOpts{}))
		a := do(t, req)
		if a.header.Get("DPoP-Nonce") == "" || !strings.Contains(a.header.Get("Access-Control-Expose-Headers"), "DPoP-Nonce") {
			t.Errorf("a browser cannot read the nonce: %v", a.header)
		}
	})
}
