package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/latchkey/latchkey/storage/postgres/pgtest"
)

// dpopKey is a client's DPoP key (RFC 9449): it signs proofs with its public
// key in the header.
type dpopKey struct{ signer jose.Signer }

func newDPoPKey(t testing.TB) dpopKey {
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
	return dpopKey{s}
}

// proof signs a fresh proof for method and u, with the server nonce and the
// access token's hash (ath) when given.
func (k dpopKey) proof(t testing.TB, method, u, nonce, accessToken string) string {
	t.Helper()
	return k.proofJTI(t, rand.Text(), method, u, nonce, accessToken)
}

func (k dpopKey) proofJTI(t testing.TB, jti, method, u, nonce, accessToken string) string {
	t.Helper()
	c := map[string]any{"jti": jti, "htm": method, "htu": u, "iat": time.Now().Unix()}
	if nonce != "" {
		c["nonce"] = nonce
	}
	if accessToken != "" {
		sum := sha256.Sum256([]byte(accessToken))
		c["ath"] = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	payload, _ := json.Marshal(c)
	jws, err := k.signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := jws.CompactSerialize()
	return out
}

// withDPoP sends a form to the token endpoint with a DPoP header.
func withDPoP(t testing.TB, endpoint, basic string, f url.Values, proof string) response {
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

// dpopNonce learns the server nonce as a client does: from the use_dpop_nonce
// refusal of a proof without one.
func dpopNonce(t testing.TB, s *server, k dpopKey) string {
	t.Helper()
	r := withDPoP(t, s.tokenURL(), svcBasic, form("grant_type", "client_credentials"), k.proof(t, "POST", s.tokenURL(), "", ""))
	if r.status != 400 || r.str("error") != "use_dpop_nonce" || r.header.Get("DPoP-Nonce") == "" {
		t.Fatalf("proof without a nonce = %d %s", r.status, r.raw)
	}
	return r.header.Get("DPoP-Nonce")
}

// TestDPoP_ReplayAndWrongKeyRefused is issue 14's "DPoP replay and a token used
// with the wrong key are refused", against the real server on both stores: a
// proof is used once; a DPoP-bound refresh token with another key, or none, is
// invalid_grant and its family lives on; a bound access token at userinfo with
// another key's proof, or as a bearer token, is 401.
func TestDPoP_ReplayAndWrongKeyRefused(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s := start(t, options{db: db})
		k, thief := newDPoPKey(t), newDPoPKey(t)
		nonce := dpopNonce(t, s, k)

		b := newBrowser(t)
		redeem := form("grant_type", "authorization_code", "code", b.code(s, "spa"), "redirect_uri", callback,
			"code_verifier", verifier, "client_id", "spa")
		p := k.proof(t, "POST", s.tokenURL(), nonce, "")
		r := withDPoP(t, s.tokenURL(), "", redeem, p)
		if r.status != 200 || r.str("token_type") != "DPoP" {
			t.Fatalf("redeem with a proof = %d %s", r.status, r.raw)
		}
		at, rt := r.str("access_token"), r.str("refresh_token")
		nonce = r.header.Get("DPoP-Nonce")

		// Replay: the same proof again, on a fresh code, is refused.
		replay := withDPoP(t, s.tokenURL(), "", form("grant_type", "authorization_code", "code", b.code(s, "spa"),
			"redirect_uri", callback, "code_verifier", verifier, "client_id", "spa"), p)
		if replay.status != 400 || replay.str("error") != "invalid_dpop_proof" {
			t.Fatalf("replayed proof = %d %s", replay.status, replay.raw)
		}

		// The refresh token with the thief's key, or with none: invalid_grant.
		refresh := func(key *dpopKey, rt string) response {
			proof := ""
			if key != nil {
				proof = key.proof(t, "POST", s.tokenURL(), nonce, "")
			}
			return withDPoP(t, s.tokenURL(), "", form("grant_type", "refresh_token", "refresh_token", rt, "client_id", "spa"), proof)
		}
		for name, key := range map[string]*dpopKey{"another key": &thief, "no proof": nil} {
			if r := refresh(key, rt); !r.invalidGrant() {
				t.Fatalf("refresh with %s = %d %s", name, r.status, r.raw)
			}
		}
		// ... and the holder of the key refreshes on: nothing was revoked.
		r = refresh(&k, rt)
		if r.status != 200 || r.str("token_type") != "DPoP" {
			t.Fatalf("refresh with the key = %d %s", r.status, r.raw)
		}

		// The access token at userinfo: with the thief's proof, or as a bearer
		// token, refused; with the key's, served.
		userinfo := func(scheme string, key *dpopKey) response {
			req, _ := http.NewRequest("GET", s.userinfoURL(), nil)
			req.Header.Set("Authorization", scheme+" "+at)
			if key != nil {
				req.Header.Set("DPoP", key.proof(t, "GET", s.userinfoURL(), "", at))
			}
			return do(t, req)
		}
		if r := userinfo("DPoP", &thief); r.status != 401 || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "DPoP ") {
			t.Fatalf("userinfo with another key = %d %s %q", r.status, r.raw, r.header.Get("WWW-Authenticate"))
		}
		if r := userinfo("Bearer", nil); r.status != 401 || r.str("error") != "invalid_token" {
			t.Fatalf("bound token as Bearer = %d %s", r.status, r.raw)
		}
		if r := userinfo("DPoP", &k); r.status != 200 || r.str("preferred_username") != "alice" {
			t.Fatalf("userinfo with the key = %d %s", r.status, r.raw)
		}
	})
}

// TestDPoP_ReplayRefusedOnAnotherInstance: two instances on one PostgreSQL
// database share nonces and the record of used proofs.
func TestDPoP_ReplayRefusedOnAnotherInstance(t *testing.T) {
	db := pgtest.DSN(t)
	a, b := start(t, options{db: db}), start(t, options{db: db})
	k := newDPoPKey(t)
	nonce := dpopNonce(t, a, k)
	// Each instance's own URL is its issuer here: a proof names the one it goes to.
	jti := rand.Text()
	p := k.proofJTI(t, jti, "POST", b.tokenURL(), nonce, "")
	if r := withDPoP(t, b.tokenURL(), svcBasic, form("grant_type", "client_credentials"), p); r.status != 200 || r.str("token_type") != "DPoP" {
		t.Fatalf("A's nonce at B = %d %s", r.status, r.raw)
	}
	// A proof with the same key and jti, for A, is a replay at A (§11.1): the
	// record of used proofs is the database's, not an instance's.
	if r := withDPoP(t, a.tokenURL(), svcBasic, form("grant_type", "client_credentials"),
		k.proofJTI(t, jti, "POST", a.tokenURL(), nonce, "")); r.status != 400 || r.str("error") != "invalid_dpop_proof" {
		t.Fatalf("replay at A = %d %s", r.status, r.raw)
	}
	// A fresh jti at A works.
	if r := withDPoP(t, a.tokenURL(), svcBasic, form("grant_type", "client_credentials"), k.proof(t, "POST", a.tokenURL(), nonce, "")); r.status != 200 {
		t.Fatalf("fresh proof at A = %d %s", r.status, r.raw)
	}
}
