package e2e

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/latchkey/latchkey/internal/keys"
	"github.com/latchkey/latchkey/internal/masterkey"
)

// rsDPoPKey is a client's DPoP key pair and the thumbprint that binds tokens to it.
type rsDPoPKey struct {
	priv *ecdsa.PrivateKey
	jkt  string
}

func newRSDPoPKey(t testing.TB) rsDPoPKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub := jose.JSONWebKey{Key: priv.Public()}
	sum, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return rsDPoPKey{priv: priv, jkt: base64.RawURLEncoding.EncodeToString(sum)}
}

// proof is a DPoP proof (RFC 9449 §4.2) for method and htu with the token's ath.
func (k rsDPoPKey) proof(t testing.TB, method, htu, tok string) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k.priv}, (&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(tok))
	b, _ := json.Marshal(map[string]any{"jti": rand.Text(), "htm": method, "htu": htu, "iat": time.Now().Unix(),
		"ath": base64.RawURLEncoding.EncodeToString(sum[:])})
	jws, err := s.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// boundCopy is a real access token of the realm re-issued bound to jkt (cnf.jkt,
// RFC 9449 §6.1) with a new jti, signed with the realm's own key read from the
// store under the master key, as the token endpoint signs DPoP-bound tokens.
func boundCopy(t *testing.T, db, tok, jkt string) string {
	t.Helper()
	var header struct{ Alg, Kid string }
	h, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	if err := json.Unmarshal(h, &header); err != nil {
		t.Fatal(err)
	}
	mk, err := masterkey.Parse(masterKey)
	if err != nil {
		t.Fatal(err)
	}
	k, err := keys.NewManager(openStore(t, db), mk, keys.DefaultPolicy, time.Now).Signer(t.Context(), "acme", header.Alg)
	if err != nil || k.KID != header.Kid {
		t.Fatalf("the realm's %s key: %v (kid %s, the token's %s)", header.Alg, err, k.KID, header.Kid)
	}
	claims := claimsOf(t, tok)
	claims["cnf"] = map[string]any{"jkt": jkt}
	claims["jti"] = rand.Text()
	out, err := k.Sign(claims, "at+jwt")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// callDPoP sends a request with the token under scheme and the DPoP proof, if any,
// and returns the status, the challenges and the JSON body.
func callDPoP(t testing.TB, method, u, scheme, tok, proof string) (int, []string, map[string]string) {
	t.Helper()
	req, _ := http.NewRequest(method, u, nil)
	req.Header.Set("Authorization", scheme+" "+tok)
	if proof != "" {
		req.Header.Set("DPoP", proof)
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var body map[string]string
	json.Unmarshal(b, &body)
	return res.StatusCode, res.Header.Values("WWW-Authenticate"), body
}

// A DPoP-bound token of the realm meets a Go API using rs and the real gate: with a
// fresh proof of its key for the URL the client called, it is admitted (the
// upstream gets the token, never the proof); the same proof again, a proof by
// another key, the token as a bearer token and a proof for another URL are refused
// as RFC 9449 §7 says. A gate behind a proxy checks htu against --external-url.
func TestRS_DPoPBoundTokensAtAPIAndGate(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s, p := startBehindProxy(t, db)
		api := ordersAPI(t, p.issuer())
		gate := startGate(t, p.issuer(), standIn(t))
		const external = "https://api.example.com/orders-api"
		behind := startGate(t, p.issuer(), standIn(t), "--external-url", external)

		holder, thief := newRSDPoPKey(t), newRSDPoPKey(t)
		unbound := apiToken(t, s, callerBasic, "orders:read")
		bound := boundCopy(t, db, unbound, holder.jkt)
		if cnf, _ := claimsOf(t, bound)["cnf"].(map[string]any); cnf["jkt"] != holder.jkt {
			t.Fatalf("cnf = %v", cnf)
		}
		dpopChallenge := func(chs []string, code, desc string) bool {
			return len(chs) == 1 && strings.HasPrefix(chs[0], `DPoP realm="`+ordersAud+`", error="`+code+`"`) &&
				strings.Contains(chs[0], desc) && strings.HasSuffix(chs[0], `algs="ES256 ES384 RS256 PS256 EdDSA"`)
		}

		for _, base := range []string{api, gate} {
			u := base + "/orders"
			first := holder.proof(t, "GET", u, bound)
			st, chs, body := callDPoP(t, "GET", u, "DPoP", bound, first)
			if st != 200 || body["sub"] != "caller" {
				t.Fatalf("%s: bound token with its proof: %d %q %v", base, st, chs, body)
			}
			if base == gate && (body["authorization"] != "DPoP "+bound || body["dpop"] != "") {
				t.Fatalf("the upstream got Authorization %.12q and DPoP %.12q", body["authorization"], body["dpop"])
			}
			for _, tt := range []struct {
				name, scheme, proof, code, desc string
			}{
				{"replayed proof", "DPoP", first, "invalid_dpop_proof", "already used"},
				{"another key's proof", "DPoP", thief.proof(t, "GET", u, bound), "invalid_token", "key binding"},
				{"no proof", "DPoP", "", "invalid_dpop_proof", "required"},
				{"proof for another URL", "DPoP", holder.proof(t, "GET", base+"/me", bound), "invalid_dpop_proof", "htu"},
				{"proof for another method", "DPoP", holder.proof(t, "POST", u, bound), "invalid_dpop_proof", "htm"},
			} {
				if st, chs, body := callDPoP(t, "GET", u, tt.scheme, bound, tt.proof); st != 401 || !dpopChallenge(chs, tt.code, tt.desc) || body["error"] != tt.code {
					t.Fatalf("%s: %s: %d %q %v; want 401 %s", base, tt.name, st, chs, body, tt.code)
				}
			}
			// RFC 9449 §7.2: no downgrade to a bearer token.
			st, chs, _ = callDPoP(t, "GET", u, "Bearer", bound, "")
			if st != 401 || len(chs) != 2 || !strings.HasPrefix(chs[0], `Bearer realm="`+ordersAud+`", error="invalid_token"`) || !strings.HasPrefix(chs[1], "DPoP ") {
				t.Fatalf("%s: bound token as a bearer token: %d %q", base, st, chs)
			}
			// The unbound token still works as a bearer token, and under DPoP with a proof.
			if st, chs, _ := callDPoP(t, "GET", u, "Bearer", unbound, ""); st != 200 {
				t.Fatalf("%s: bearer token: %d %q", base, st, chs)
			}
			if st, chs, _ := callDPoP(t, "GET", u, "DPoP", unbound, thief.proof(t, "GET", u, unbound)); st != 200 {
				t.Fatalf("%s: unbound token under DPoP: %d %q", base, st, chs)
			}
		}

		// Behind a proxy: the proof names the URL the client used, not the gate's.
		if st, chs, body := callDPoP(t, "GET", behind+"/orders", "DPoP", bound, holder.proof(t, "GET", external+"/orders", bound)); st != 200 || body["sub"] != "caller" {
			t.Fatalf("gate behind a proxy, proof of the external URL: %d %q %v", st, chs, body)
		}
		if st, chs, _ := callDPoP(t, "GET", behind+"/orders", "DPoP", bound, holder.proof(t, "GET", behind+"/orders", bound)); st != 401 || !dpopChallenge(chs, "invalid_dpop_proof", "htu") {
			t.Fatalf("gate behind a proxy, proof of its own address: %d %q", st, chs)
		}
	})
}
