package dpop

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// verifyCase is one proof and the request it is checked against.
type verifyCase struct {
	name string
	alg  string                                        // key used; ES256 when empty
	mod  func(tb testing.TB, p *proofParts, e *Expect) // changes before signing
	sign func(tb testing.TB, k testKey) func([]byte) []byte
	post func(proof string) string // changes after signing
	want error                     // nil: accepted
}

func (c verifyCase) build(tb testing.TB) (string, Expect, testKey) {
	tb.Helper()
	alg := c.alg
	if alg == "" {
		alg = "ES256"
	}
	k := testKeys(tb)[alg]
	p := newParts(tb, k)
	e := expect(newMemReplay())
	if c.mod != nil {
		c.mod(tb, &p, &e)
	}
	sign := k.sign
	if c.sign != nil {
		sign = c.sign(tb, k)
	}
	proof := mint(tb, p, sign)
	if c.post != nil {
		proof = c.post(proof)
	}
	return proof, e, k
}

func testNonces(tb testing.TB) *Nonces {
	tb.Helper()
	n, err := NewNonces([]byte("0123456789abcdef0123456789abcdef"), time.Minute)
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

func otherECKey(tb testing.TB) map[string]any {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return jwkMap(tb, jose.JSONWebKey{Key: &k.PublicKey})
}

func setClaim(name string, v any) func(testing.TB, *proofParts, *Expect) {
	return func(_ testing.TB, p *proofParts, _ *Expect) {
		if v == nil {
			delete(p.claims, name)
		} else {
			p.claims[name] = v
		}
	}
}

func setHeader(name string, v any) func(testing.TB, *proofParts, *Expect) {
	return func(_ testing.TB, p *proofParts, _ *Expect) {
		if v == nil {
			delete(p.header, name)
		} else {
			p.header[name] = v
		}
	}
}

func withAccessToken(_ testing.TB, p *proofParts, e *Expect) {
	e.AccessToken = testToken
	sum := sha256.Sum256([]byte(testToken))
	p.claims["ath"] = b64(sum[:])
}

var verifyCases = []verifyCase{
	// Accepted.
	{name: "ES256"},
	{name: "ES384", alg: "ES384"},
	{name: "RS256", alg: "RS256"},
	{name: "PS256", alg: "PS256"},
	{name: "EdDSA", alg: "EdDSA"},
	{name: "ath matches access token", mod: withAccessToken},
	{name: "ath present but no token expected", mod: setClaim("ath", "whatever")},
	{name: "nonce equal", mod: func(_ testing.TB, p *proofParts, e *Expect) { e.Nonce = "n-1"; p.claims["nonce"] = "n-1" }},
	{name: "nonce from Nonces, current window", mod: func(tb testing.TB, p *proofParts, e *Expect) {
		e.Nonces = testNonces(tb)
		p.claims["nonce"] = e.Nonces.Issue(testNow)
	}},
	{name: "nonce from Nonces, previous window", mod: func(tb testing.TB, p *proofParts, e *Expect) {
		e.Nonces = testNonces(tb)
		p.claims["nonce"] = e.Nonces.Issue(testNow.Add(-time.Minute))
	}},
	{name: "htu scheme and host case, default port", mod: setClaim("htu", "HTTPS://ID.Example.COM:443/realms/main/token")},
	{name: "htu dot segments and unreserved escapes", mod: setClaim("htu", "https://id.example.com/realms/./x/../m%61in/token")},
	{name: "request URL query and fragment ignored", mod: func(_ testing.TB, _ *proofParts, e *Expect) { e.URL = testURL + "?a=b#c" }},
	// RFC 9449 §4.3 9: query and fragment ignored in htu too.
	{name: "htu with query ignored", mod: setClaim("htu", testURL+"?a=b")},
	{name: "htu with empty query ignored", mod: setClaim("htu", testURL+"?")},
	{name: "htu with fragment ignored", mod: setClaim("htu", testURL+"#f")},
	{name: "http default port", mod: func(_ testing.TB, p *proofParts, e *Expect) {
		e.URL = "http://localhost/token"
		p.claims["htu"] = "http://LOCALHOST:80/token"
	}},
	{name: "empty path is /", mod: func(_ testing.TB, p *proofParts, e *Expect) {
		e.URL = "https://rs.example.com/"
		p.claims["htu"] = "https://rs.example.com"
	}},
	{name: "iat at the edge of max age", mod: setClaim("iat", testNow.Add(-DefaultMaxAge-DefaultLeeway).Unix())},
	{name: "iat within leeway in the future", mod: setClaim("iat", testNow.Add(DefaultLeeway).Unix())},
	{name: "iat with a fraction", mod: setClaim("iat", float64(testNow.Unix())+0.25)},

	// typ, alg, jwk (§4.3 4, 5, 7).
	{name: "typ JWT", mod: setHeader("typ", "JWT"), want: ErrInvalidProof},
	{name: "typ missing", mod: setHeader("typ", nil), want: ErrInvalidProof},
	{name: "typ at+jwt", mod: setHeader("typ", "at+jwt"), want: ErrInvalidProof},
	{name: "alg none", mod: setHeader("alg", "none"), sign: func(testing.TB, testKey) func([]byte) []byte { return nil }, want: ErrInvalidProof},
	{name: "alg HS256 keyed with the jwk", mod: setHeader("alg", "HS256"),
		sign: func(tb testing.TB, k testKey) func([]byte) []byte {
			return hs256([]byte(k.public.Key.(*ecdsa.PublicKey).X.String()))
		},
		want: ErrInvalidProof},
	{name: "alg HS256 with symmetric jwk", mod: func(_ testing.TB, p *proofParts, _ *Expect) {
		p.header["alg"] = "HS256"
		p.header["jwk"] = map[string]any{"kty": "oct", "k": b64([]byte("0123456789abcdef0123456789abcdef"))}
	}, sign: func(testing.TB, testKey) func([]byte) []byte {
		return hs256([]byte("0123456789abcdef0123456789abcdef"))
	}, want: ErrInvalidProof},
	{name: "alg ES512 not accepted", mod: setHeader("alg", "ES512"), want: ErrInvalidProof},
	{name: "alg missing", mod: setHeader("alg", nil), want: ErrInvalidProof},
	{name: "alg RS256 with EC key", mod: setHeader("alg", "RS256"), want: ErrInvalidProof},
	{name: "alg ES384 with P-256 key", mod: setHeader("alg", "ES384"), want: ErrInvalidProof},
	{name: "jwk missing", mod: setHeader("jwk", nil), want: ErrInvalidProof},
	{name: "jwk not an object", mod: setHeader("jwk", "key"), want: ErrInvalidProof},
	{name: "jwk with private EC key", mod: func(tb testing.TB, p *proofParts, _ *Expect) {
		p.header["jwk"] = jwkMap(tb, testKeys(tb)["ES256"].private)
	}, want: ErrInvalidProof},
	{name: "jwk with private RSA key", alg: "RS256", mod: func(tb testing.TB, p *proofParts, _ *Expect) {
		p.header["jwk"] = jwkMap(tb, testKeys(tb)["RS256"].private)
	}, want: ErrInvalidProof},
	{name: "jwk with private Ed25519 key", alg: "EdDSA", mod: func(tb testing.TB, p *proofParts, _ *Expect) {
		p.header["jwk"] = jwkMap(tb, testKeys(tb)["EdDSA"].private)
	}, want: ErrInvalidProof},
	{name: "RSA key under 2048 bits", alg: "RS256", mod: func(tb testing.TB, p *proofParts, _ *Expect) {
		small, err := rsa.GenerateKey(rand.Reader, 1024)
		if err != nil {
			tb.Fatal(err)
		}
		p.header["jwk"] = jwkMap(tb, jose.JSONWebKey{Key: &small.PublicKey})
	}, want: ErrInvalidProof},

	// Signature (§4.3 6).
	{name: "signed by another key", mod: func(tb testing.TB, p *proofParts, _ *Expect) { p.header["jwk"] = otherECKey(tb) }, want: ErrInvalidProof},
	{name: "claims changed after signing", post: func(proof string) string {
		parts := strings.Split(proof, ".")
		parts[1] = b64([]byte(`{"jti":"x","htm":"POST","htu":"` + testURL + `","iat":1796320800}`))
		return strings.Join(parts, ".")
	}, want: ErrInvalidProof},
	{name: "empty signature", sign: func(testing.TB, testKey) func([]byte) []byte { return nil }, want: ErrInvalidProof},

	// Form (§4.3 1, 2).
	{name: "empty proof", post: func(string) string { return "" }, want: ErrInvalidProof},
	{name: "oversized proof", mod: setClaim("pad", strings.Repeat("a", MaxProofLength)), want: ErrInvalidProof},
	{name: "two proofs joined by a comma", post: func(p string) string { return p + ", " + p }, want: ErrInvalidProof},
	{name: "two parts", post: func(p string) string { return p[:strings.LastIndexByte(p, '.')] }, want: ErrInvalidProof},
	{name: "JSON serialization", post: func(p string) string {
		parts := strings.Split(p, ".")
		return `{"protected":"` + parts[0] + `","payload":"` + parts[1] + `","signature":"` + parts[2] + `"}`
	}, want: ErrInvalidProof},

	// Claims (§4.3 3, 8, 9, 11, 12).
	{name: "jti missing", mod: setClaim("jti", nil), want: ErrInvalidProof},
	{name: "jti too long", mod: setClaim("jti", strings.Repeat("j", MaxJTILength+1)), want: ErrInvalidProof},
	{name: "jti not a string", mod: setClaim("jti", 7), want: ErrInvalidProof},
	{name: "htm missing", mod: setClaim("htm", nil), want: ErrInvalidProof},
	{name: "htm other method", mod: setClaim("htm", "GET"), want: ErrInvalidProof},
	{name: "htm lower case", mod: setClaim("htm", "post"), want: ErrInvalidProof},
	{name: "htu missing", mod: setClaim("htu", nil), want: ErrInvalidProof},
	{name: "htu other path", mod: setClaim("htu", "https://id.example.com/realms/main/userinfo"), want: ErrInvalidProof},
	{name: "htu other host", mod: setClaim("htu", "https://evil.example.com/realms/main/token"), want: ErrInvalidProof},
	{name: "htu http for https", mod: setClaim("htu", "http://id.example.com/realms/main/token"), want: ErrInvalidProof},
	{name: "htu other port", mod: setClaim("htu", "https://id.example.com:8443/realms/main/token"), want: ErrInvalidProof},
	{name: "htu path case differs", mod: setClaim("htu", "https://id.example.com/Realms/main/token"), want: ErrInvalidProof},
	{name: "htu of another path with a query", mod: setClaim("htu", "https://id.example.com/realms/main/other?x=/realms/main/token"), want: ErrInvalidProof},
	{name: "htu relative", mod: setClaim("htu", "/realms/main/token"), want: ErrInvalidProof},
	{name: "htu with userinfo", mod: setClaim("htu", "https://u@id.example.com/realms/main/token"), want: ErrInvalidProof},
	{name: "iat missing", mod: setClaim("iat", nil), want: ErrInvalidProof},
	{name: "iat a string", mod: setClaim("iat", "1796320800"), want: ErrInvalidProof},
	{name: "iat too old", mod: setClaim("iat", testNow.Add(-DefaultMaxAge-DefaultLeeway-time.Second).Unix()), want: ErrInvalidProof},
	{name: "iat too old for a shorter MaxAge", mod: func(_ testing.TB, p *proofParts, e *Expect) {
		e.MaxAge, e.Leeway = 10*time.Second, time.Second
		p.claims["iat"] = testNow.Add(-12 * time.Second).Unix()
	}, want: ErrInvalidProof},
	{name: "iat in the future", mod: setClaim("iat", testNow.Add(DefaultLeeway+time.Second).Unix()), want: ErrInvalidProof},
	{name: "iat negative", mod: setClaim("iat", -1), want: ErrInvalidProof},
	{name: "ath missing", mod: func(_ testing.TB, _ *proofParts, e *Expect) { e.AccessToken = testToken }, want: ErrInvalidProof},
	{name: "ath of another token", mod: func(tb testing.TB, p *proofParts, e *Expect) {
		withAccessToken(tb, p, e)
		e.AccessToken = testToken + "x"
	}, want: ErrInvalidProof},
	{name: "ath in another letter case", mod: func(_ testing.TB, p *proofParts, e *Expect) {
		e.AccessToken = testToken
		sum := sha256.Sum256([]byte(testToken))
		p.claims["ath"] = strings.ToUpper(b64(sum[:]))
	}, want: ErrInvalidProof},

	// Nonces (§4.3 10, §8, §9).
	{name: "nonce required, missing", mod: func(_ testing.TB, _ *proofParts, e *Expect) { e.Nonce = "n-1" }, want: ErrUseNonce},
	{name: "nonce required, wrong", mod: func(_ testing.TB, p *proofParts, e *Expect) { e.Nonce = "n-1"; p.claims["nonce"] = "n-2" }, want: ErrUseNonce},
	{name: "nonce required, empty", mod: func(_ testing.TB, p *proofParts, e *Expect) { e.Nonce = "n-1"; p.claims["nonce"] = "" }, want: ErrUseNonce},
	{name: "Nonces, missing", mod: func(tb testing.TB, _ *proofParts, e *Expect) { e.Nonces = testNonces(tb) }, want: ErrUseNonce},
	{name: "Nonces, expired", mod: func(tb testing.TB, p *proofParts, e *Expect) {
		e.Nonces = testNonces(tb)
		p.claims["nonce"] = e.Nonces.Issue(testNow.Add(-2 * time.Minute))
	}, want: ErrUseNonce},
	{name: "Nonces, from another key", mod: func(tb testing.TB, p *proofParts, e *Expect) {
		e.Nonces = testNonces(tb)
		other, err := NewNonces([]byte("fedcba9876543210fedcba9876543210"), time.Minute)
		if err != nil {
			tb.Fatal(err)
		}
		p.claims["nonce"] = other.Issue(testNow)
	}, want: ErrUseNonce},
}

func TestVerify(t *testing.T) {
	for _, c := range verifyCases {
		t.Run(c.name, func(t *testing.T) {
			proof, e, k := c.build(t)
			replay := e.Replay.(*memReplay)
			got, err := Verify(context.Background(), proof, e)
			if c.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				jkt, err := Thumbprint(k.public)
				if err != nil {
					t.Fatal(err)
				}
				if got.JKT != jkt || got.JTI == "" || got.IssuedAt.IsZero() {
					t.Fatalf("Proof = %+v; want JKT %s", got, jkt)
				}
				if replay.calls != 1 {
					t.Fatalf("replay cache called %d times; want 1", replay.calls)
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("Verify: %v; want %v", err, c.want)
			}
			if c.want == ErrUseNonce && errors.Is(err, ErrInvalidProof) {
				t.Fatalf("Verify: %v is both use_dpop_nonce and invalid_dpop_proof", err)
			}
			if got.JKT != "" || got.Key.Key != nil {
				t.Fatalf("refused proof returned %+v", got)
			}
			// A refused proof never reaches the replay cache, so garbage
			// cannot fill it.
			if replay.calls != 0 {
				t.Fatalf("replay cache called %d times for a refused proof", replay.calls)
			}
		})
	}
}

func TestVerify_ReplayedProofRefused(t *testing.T) {
	proof, e, _ := verifyCase{}.build(t)
	if _, err := Verify(context.Background(), proof, e); err != nil {
		t.Fatal(err)
	}
	_, err := Verify(context.Background(), proof, e)
	if !errors.Is(err, ErrInvalidProof) || !errors.Is(err, ErrReplayed) {
		t.Fatalf("second use: %v; want ErrInvalidProof and ErrReplayed", err)
	}
}

func TestVerify_ReplayIsPerKey(t *testing.T) {
	replay := newMemReplay()
	for _, alg := range []string{"ES256", "EdDSA"} {
		c := verifyCase{alg: alg, mod: setClaim("jti", "same")}
		proof, e, _ := c.build(t)
		e.Replay = replay
		if _, err := Verify(context.Background(), proof, e); err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
	}
}

func TestVerify_ReplayKeptUntilIATWindowCloses(t *testing.T) {
	proof, e, _ := verifyCase{}.build(t)
	var until time.Time
	e.Replay = replayFunc(func(_ context.Context, _, _ string, u time.Time) error { until = u; return nil })
	if _, err := Verify(context.Background(), proof, e); err != nil {
		t.Fatal(err)
	}
	// The last instant the iat check would still accept this proof.
	last := testNow.Add(DefaultMaxAge + DefaultLeeway)
	if until.Before(last) {
		t.Fatalf("jti kept until %v; the proof is accepted until %v", until, last)
	}
}

type replayFunc func(ctx context.Context, jkt, jti string, until time.Time) error

func (f replayFunc) UseProofJTI(ctx context.Context, jkt, jti string, until time.Time) error {
	return f(ctx, jkt, jti, until)
}

func TestVerify_ReplayCacheFailureIsNotAProofError(t *testing.T) {
	proof, e, _ := verifyCase{}.build(t)
	cacheErr := errors.New("store unavailable")
	e.Replay.(*memReplay).err = cacheErr
	_, err := Verify(context.Background(), proof, e)
	if !errors.Is(err, cacheErr) || errors.Is(err, ErrInvalidProof) {
		t.Fatalf("Verify: %v; want the cache error, not ErrInvalidProof", err)
	}
}

func TestVerify_NeedsReplayAndNow(t *testing.T) {
	proof, e, _ := verifyCase{}.build(t)
	for name, e := range map[string]Expect{
		"no replay": {Method: e.Method, URL: e.URL, Now: e.Now},
		"no now":    {Method: e.Method, URL: e.URL, Replay: e.Replay},
	} {
		if _, err := Verify(context.Background(), proof, e); err == nil || errors.Is(err, ErrInvalidProof) {
			t.Errorf("%s: %v; want a usage error", name, err)
		}
	}
}

func TestFromHeader(t *testing.T) {
	for _, c := range []struct {
		name string
		vals []string
		want error
	}{
		{"none", nil, ErrNoProof},
		{"one", []string{"a.b.c"}, nil},
		{"two", []string{"a.b.c", "d.e.f"}, ErrInvalidProof},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range c.vals {
				h.Add("Dpop", v)
			}
			got, err := FromHeader(h)
			if !errors.Is(err, c.want) {
				t.Fatalf("FromHeader: %v; want %v", err, c.want)
			}
			if c.want == nil && got != c.vals[0] {
				t.Fatalf("FromHeader = %q", got)
			}
		})
	}
}

// RFC 7638 §3.1: the thumbprint of the RFC 7517 appendix A.1 RSA key.
func TestThumbprint_RFC7638Example(t *testing.T) {
	const jwk = `{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}`
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON([]byte(jwk)); err != nil {
		t.Fatal(err)
	}
	got, err := Thumbprint(k)
	if err != nil {
		t.Fatal(err)
	}
	if want := "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"; got != want {
		t.Fatalf("Thumbprint = %s; want %s", got, want)
	}
}

func TestThumbprint_PrivateKeyGivesPublicThumbprint(t *testing.T) {
	k := testKeys(t)["ES256"]
	pub, err := Thumbprint(k.public)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := Thumbprint(k.private)
	if err != nil {
		t.Fatal(err)
	}
	if pub != priv {
		t.Fatalf("thumbprints differ: %s, %s", pub, priv)
	}
	if _, err := Thumbprint(jose.JSONWebKey{}); err == nil {
		t.Fatal("thumbprint of an empty key")
	}
}

// RFC 9449 §4.2 example: ath of the example access token.
func TestVerify_ATHMatchesRFCExample(t *testing.T) {
	sum := sha256.Sum256([]byte(testToken))
	if got, want := b64(sum[:]), "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"; got != want {
		t.Fatalf("ath = %s; want %s", got, want)
	}
}

func FuzzVerify(f *testing.F) {
	for _, c := range verifyCases {
		proof, _, _ := c.build(f)
		f.Add(proof)
	}
	f.Fuzz(func(t *testing.T, proof string) {
		e := expect(newMemReplay())
		p, err := Verify(context.Background(), proof, e)
		if err != nil {
			if !errors.Is(err, ErrInvalidProof) {
				t.Fatalf("Verify refused with %v; every refusal without a nonce wraps ErrInvalidProof", err)
			}
			if p.JKT != "" || p.Key.Key != nil {
				t.Fatalf("refused proof returned %+v", p)
			}
			return
		}
		if p.JKT == "" || p.JTI == "" || len(p.JTI) > MaxJTILength {
			t.Fatalf("accepted proof gave %+v", p)
		}
	})
}

func BenchmarkVerifyES256(b *testing.B) {
	k := testKeys(b)["ES256"]
	proof := mint(b, newParts(b, k), k.sign)
	e := expect(replayFunc(func(context.Context, string, string, time.Time) error { return nil }))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Verify(context.Background(), proof, e); err != nil {
			b.Fatal(err)
		}
	}
}
