package keys

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/latchkey/latchkey/internal/masterkey"
	"github.com/latchkey/latchkey/storage"
	"github.com/latchkey/latchkey/storage/sqlite"
)

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func testKey(t *testing.T, b byte) *masterkey.Key {
	k, err := masterkey.Parse(hex.EncodeToString(bytes.Repeat([]byte{b}, masterkey.Size)))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newStore(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "keys.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for _, alg := range []string{ES256, EdDSA, RS256} {
		r := storage.Realm{Name: strings.ToLower(alg), SigningAlg: alg, AccessTokenTTL: 5 * time.Minute, CreatedAt: t0, UpdatedAt: t0}
		if err := st.CreateRealm(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

type claims struct {
	Exp int64 `json:"exp"`
	N   int   `json:"n"`
}

// jwksOf parses the JWKS the way a resource server would.
func jwksOf(t *testing.T, m *Manager, realm string) jose.JSONWebKeySet {
	t.Helper()
	b, err := m.JWKS(t.Context(), realm)
	if err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		t.Fatal(err)
	}
	return set
}

// verifyWithJWKS checks a token with go-jose against a JWKS alone, as an API would.
func verifyWithJWKS(token string, set jose.JSONWebKeySet) error {
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA, jose.RS256})
	if err != nil {
		return err
	}
	keys := set.Key(jws.Signatures[0].Header.KeyID)
	if len(keys) != 1 {
		return errors.New("kid not in JWKS")
	}
	_, err = jws.Verify(keys[0])
	return err
}

// Over 80 simulated minutes with two rotations, every live token verifies against
// the JWKS at every moment, and no key signs before it has been published for one
// JWKS cache lifetime.
func TestRotationKeepsEveryLiveTokenVerifiable(t *testing.T) {
	st := newStore(t)
	clk := &clock{t: t0}
	p := DefaultPolicy
	m := NewManager(st, testKey(t, 1), p, clk.Now)
	ctx := t.Context()
	const ttl = 5 * time.Minute
	const step = 30 * time.Second

	type token struct {
		jws string
		kid string
		exp time.Time
	}
	var live []token
	firstPublished := map[string]time.Time{}
	signedBy := map[string]bool{}
	var first string
	rotations := 0
	var k2SignFrom time.Time

	for elapsed := time.Duration(0); elapsed <= 80*time.Minute; elapsed += step {
		now := clk.Now()
		// Rotate at 1m, and again just after the second key starts signing.
		if elapsed == time.Minute || (rotations == 1 && !k2SignFrom.IsZero() && !now.Before(k2SignFrom)) {
			made, err := m.Rotate(ctx, "es256", "")
			if err != nil || len(made) != 1 {
				t.Fatalf("rotate: %v, %v", made, err)
			}
			rotations++
			if rotations == 1 {
				k2SignFrom = made[0].SignFrom
			}
		}

		k, err := m.Signer(ctx, "es256", ES256)
		if err != nil {
			t.Fatal(err)
		}
		if first == "" {
			first = k.KID
		}
		if pub, ok := firstPublished[k.KID]; k.KID != first && (!ok || now.Sub(pub) < p.JWKSMaxAge) {
			t.Fatalf("at %v key %s signs, but was published only at %v", elapsed, k.KID, pub)
		}
		set := jwksOf(t, m, "es256")
		for _, k := range set.Keys {
			if _, seen := firstPublished[k.KeyID]; !seen {
				firstPublished[k.KeyID] = now
			}
			if !k.IsPublic() || k.Algorithm != ES256 || k.Use != "sig" || k.KeyID == "" {
				t.Fatalf("JWKS key %+v: want public, ES256, sig, with kid", k)
			}
		}

		signedBy[k.KID] = true
		jws, err := k.Sign(claims{Exp: now.Add(ttl).Unix()}, "at+jwt")
		if err != nil {
			t.Fatal(err)
		}
		live = append(live, token{jws, k.KID, now.Add(ttl)})

		kept := live[:0]
		for _, tok := range live {
			if !now.Before(tok.exp) {
				continue
			}
			kept = append(kept, tok)
			if err := verifyWithJWKS(tok.jws, set); err != nil {
				t.Fatalf("at %v a live token from key %s does not verify against the JWKS: %v", elapsed, tok.kid, err)
			}
			if _, err := m.Verify(ctx, "es256", tok.jws); err != nil {
				t.Fatalf("at %v Verify: %v", elapsed, err)
			}
		}
		live = kept
		clk.Add(step)
	}
	if rotations != 2 || len(signedBy) != 3 {
		t.Fatalf("%d rotations, %d keys signed; want 2 and 3", rotations, len(signedBy))
	}
	if events, _ := st.ListAudit(ctx, storage.AuditFilter{Realm: "es256", Type: "signing_key.rotated"}); len(events) != 2 || events[0].Details["kid"] == "" {
		t.Fatalf("rotations audited: %+v", events)
	}
	// Long after, the first two keys are gone from the JWKS and, once purged, from the store.
	if set := jwksOf(t, m, "es256"); len(set.Keys) != 1 || set.Keys[0].KeyID == first {
		t.Fatalf("JWKS at the end has %d keys; want only the current one", len(set.Keys))
	}
	if _, err := m.RotateDue(ctx, []string{"es256"}); err != nil {
		t.Fatal(err)
	}
	stored, _ := st.ListSigningKeys(ctx, "es256")
	if len(stored) != 1 {
		t.Fatalf("%d keys stored after purge, want 1", len(stored))
	}
}

func TestRotateDueRotatesOnSchedule(t *testing.T) {
	st := newStore(t)
	clk := &clock{t: t0}
	m := NewManager(st, testKey(t, 1), DefaultPolicy, clk.Now)
	ctx := t.Context()
	k1, err := m.Signer(ctx, "eddsa", EdDSA)
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(29 * 24 * time.Hour)
	if rotated, err := m.RotateDue(ctx, []string{"eddsa"}); err != nil || len(rotated) != 0 {
		t.Fatalf("rotated %v, %v before 30 days", rotated, err)
	}
	clk.Add(24 * time.Hour)
	if rotated, err := m.RotateDue(ctx, []string{"eddsa"}); err != nil || len(rotated) != 1 {
		t.Fatalf("rotated %v, %v after 30 days", rotated, err)
	}
	if k, _ := m.Signer(ctx, "eddsa", EdDSA); k.KID != k1.KID {
		t.Fatal("the new key signs before it has been published for a JWKS lifetime")
	}
	clk.Add(DefaultPolicy.PublishLead())
	if k, _ := m.Signer(ctx, "eddsa", EdDSA); k.KID == k1.KID {
		t.Fatal("the new key does not sign after its lead time")
	}
}

func TestEachAlgorithmSignsAndVerifies(t *testing.T) {
	st := newStore(t)
	m := NewManager(st, testKey(t, 1), DefaultPolicy, time.Now)
	for _, alg := range Algs {
		realm := strings.ToLower(alg)
		k, err := m.Signer(t.Context(), realm, alg)
		if err != nil {
			t.Fatal(err)
		}
		jws, err := k.Sign(claims{N: 7}, "at+jwt")
		if err != nil {
			t.Fatal(err)
		}
		v, err := m.Verify(t.Context(), realm, jws)
		if err != nil || v.Typ != "at+jwt" || v.KID != k.KID || !strings.Contains(string(v.Payload), `"n":7`) {
			t.Fatalf("%s: Verify = %+v, %v", alg, v, err)
		}
		raw, _ := m.JWKS(t.Context(), realm)
		for _, private := range []string{`"d"`, `"p"`, `"q"`, `"dp"`, `"dq"`, `"qi"`} {
			if strings.Contains(string(raw), private) {
				t.Fatalf("%s JWKS holds private member %s: %s", alg, private, raw)
			}
		}
		// A token of one realm does not verify in another.
		if _, err := m.Verify(t.Context(), "es256x", jws); err == nil {
			t.Fatalf("%s token verified in another realm", alg)
		}
	}
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestVerifyRefusesForgedTokens(t *testing.T) {
	st := newStore(t)
	m := NewManager(st, testKey(t, 1), DefaultPolicy, time.Now)
	ctx := t.Context()
	es, _ := m.Signer(ctx, "es256", ES256)
	ed, _ := m.Signer(ctx, "eddsa", EdDSA)
	good, _ := es.Sign(claims{N: 1}, "at+jwt")
	parts := strings.Split(good, ".")

	pubJSON, _ := json.Marshal(es.Public())
	mac := hmac.New(sha256.New, pubJSON)
	hsHeader := b64(`{"alg":"HS256","kid":"` + es.KID + `","typ":"at+jwt"}`)
	mac.Write([]byte(hsHeader + "." + parts[1]))
	hs256 := hsHeader + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))

	// The EdDSA key's kid with an ES256 header: the alg must be the key's own.
	edAsES := b64(`{"alg":"ES256","kid":"`+ed.KID+`","typ":"at+jwt"}`) + "." + parts[1] + "." + parts[2]

	cases := map[string]string{
		"alg none":                   b64(`{"alg":"none","kid":"`+es.KID+`"}`) + "." + parts[1] + ".",
		"HS256 with the public key":  hs256,
		"unknown kid":                b64(`{"alg":"ES256","kid":"nope","typ":"at+jwt"}`) + "." + parts[1] + "." + parts[2],
		"header alg not the key's":   edAsES,
		"payload changed":            parts[0] + "." + b64(`{"n":2}`) + "." + parts[2],
		"not a JWT":                  "lk_at_abcdef",
		"empty":                      "",
		"JWE-shaped (five parts)":    "a.b.c.d.e",
		"garbage base64":             "!!!.???.***",
		"signature from another key": parts[0] + "." + parts[1] + "." + strings.Split(mustSign(t, ed), ".")[2],
	}
	for name, tok := range cases {
		realm := "es256"
		if name == "header alg not the key's" {
			realm = "eddsa"
		}
		if _, err := m.Verify(ctx, realm, tok); err == nil {
			t.Errorf("%s: verified", name)
		} else if !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrUnknownKey) {
			t.Errorf("%s: error %v is neither ErrBadSignature nor ErrUnknownKey", name, err)
		}
	}
}

func mustSign(t *testing.T, k *Key) string {
	s, err := k.Sign(claims{N: 1}, "at+jwt")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPrivateKeysAreSealedUnderTheMasterKey(t *testing.T) {
	st := newStore(t)
	ctx := t.Context()
	m := NewManager(st, testKey(t, 1), DefaultPolicy, time.Now)
	k, err := m.Signer(ctx, "rs256", RS256)
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := st.ListSigningKeys(ctx, "rs256")
	if len(stored) != 1 || !bytes.HasPrefix(stored[0].PrivateKey, []byte("v1:"+testKey(t, 1).ID()+":")) {
		t.Fatalf("stored private key is not sealed: %q", stored[0].PrivateKey[:20])
	}
	// The same database under another master key cannot open the key, and says why.
	other := NewManager(st, testKey(t, 2), DefaultPolicy, time.Now)
	if _, err := other.Signer(ctx, "rs256", RS256); err == nil || !strings.Contains(err.Error(), "master key") {
		t.Fatalf("another master key: %v", err)
	}
	// A sealed key copied to another row does not open.
	s := newSealer(testKey(t, 1))
	if _, err := s.open(stored[0].PrivateKey, aad("other", k.KID, RS256)); err == nil {
		t.Fatal("a sealed key opened under another realm")
	}
}

func BenchmarkSign(b *testing.B) {
	for _, alg := range Algs {
		b.Run(alg, func(b *testing.B) {
			st, err := sqlite.Open(b.Context(), sqlite.Config{Path: filepath.Join(b.TempDir(), "k.db")})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			st.CreateRealm(b.Context(), storage.Realm{Name: "r", SigningAlg: alg, AccessTokenTTL: time.Minute, CreatedAt: t0, UpdatedAt: t0})
			m := NewManager(st, testKeyB(b), DefaultPolicy, time.Now)
			k, err := m.Signer(b.Context(), "r", alg)
			if err != nil {
				b.Fatal(err)
			}
			c := map[string]any{"iss": "https://id.example/realms/r", "sub": "svc", "aud": "svc", "exp": 1795348974, "iat": 1795348674,
				"jti": "JPFGACCO562YX5Q7FERGAOEFGF", "client_id": "svc", "scope": "orders:read orders:write"}
			tok, _ := k.Sign(c, "at+jwt")
			b.Run("sign", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := k.Sign(c, "at+jwt"); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("verify", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := m.Verify(b.Context(), "r", tok); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

func testKeyB(b *testing.B) *masterkey.Key {
	k, _ := masterkey.Parse(hex.EncodeToString(bytes.Repeat([]byte{1}, masterkey.Size)))
	return k
}

// A burst of first requests to a new realm makes one key, not one each.
func TestSignerMakesOneFirstKeyUnderABurst(t *testing.T) {
	st := newStore(t)
	m := NewManager(st, testKey(t, 1), DefaultPolicy, time.Now)
	var wg sync.WaitGroup
	kids := make([]string, 32)
	for i := range kids {
		wg.Go(func() {
			k, err := m.Signer(t.Context(), "es256", ES256)
			if err != nil {
				t.Error(err)
				return
			}
			kids[i] = k.KID
		})
	}
	wg.Wait()
	stored, _ := st.ListSigningKeys(t.Context(), "es256")
	if len(stored) != 1 {
		t.Fatalf("%d keys made by a burst of first requests, want 1", len(stored))
	}
	for _, kid := range kids {
		if kid != stored[0].KID {
			t.Fatalf("requests signed with different keys: %v", kids)
		}
	}
}

// Signing names the key signing now for each realm and algorithm loaded, and
// moves to the new key only once it signs.
func TestSigningNamesTheCurrentKeys(t *testing.T) {
	st := newStore(t)
	clk := &clock{t: t0}
	m := NewManager(st, testKey(t, 1), DefaultPolicy, clk.Now)
	ctx := t.Context()
	if got := m.Signing(); len(got) != 0 {
		t.Fatalf("Signing before any key = %v", got)
	}
	k1, err := m.Signer(ctx, "eddsa", EdDSA)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := m.Signer(ctx, "es256", ES256)
	if err != nil {
		t.Fatal(err)
	}
	kids := func() []string {
		var out []string
		for _, k := range m.Signing() {
			out = append(out, k.Realm+"/"+k.Alg+"/"+k.KID)
		}
		return out
	}
	want := []string{"eddsa/EdDSA/" + k1.KID, "es256/ES256/" + k2.KID}
	if got := kids(); !slices.Equal(got, want) {
		t.Fatalf("Signing = %v, want %v", got, want)
	}
	if _, err := m.Rotate(ctx, "eddsa", ""); err != nil {
		t.Fatal(err)
	}
	if got := kids(); !slices.Equal(got, want) {
		t.Fatalf("Signing right after rotation = %v, want %v (the new key does not sign yet)", got, want)
	}
	clk.Add(DefaultPolicy.PublishLead() + DefaultPolicy.ReloadEvery)
	k3, _ := m.Signer(ctx, "eddsa", EdDSA)
	if got := kids(); k3.KID == k1.KID || got[0] != "eddsa/EdDSA/"+k3.KID {
		t.Fatalf("Signing after the lead time = %v, want the new key %s", got, k3.KID)
	}
}

// Another instance retiring a key: Stale makes this one stop signing with it at its
// next use, while Signing (the metrics' view) keeps listing what was loaded.
func TestStaleRereadsAtNextUseAndKeepsSigning(t *testing.T) {
	st := newStore(t)
	clk := &clock{t: t0}
	a := NewManager(st, testKey(t, 1), DefaultPolicy, clk.Now)
	b := NewManager(st, testKey(t, 1), DefaultPolicy, clk.Now)
	ctx := t.Context()
	k1, err := a.Signer(ctx, "es256", ES256)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Signer(ctx, "es256", ES256); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Rotate(ctx, "es256", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Retire(ctx, "es256", k1.KID); err != nil {
		t.Fatal(err)
	}
	a.Stale("es256")
	if got := a.Signing(); len(got) != 1 || got[0].KID != k1.KID {
		t.Fatalf("Signing after Stale = %v, want the loaded key %s still listed", got, k1.KID)
	}
	k2, err := a.Signer(ctx, "es256", ES256)
	if err != nil {
		t.Fatal(err)
	}
	if k2.KID == k1.KID {
		t.Fatalf("a signs with the retired key %s after Stale", k1.KID)
	}
}
