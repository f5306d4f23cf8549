package rs

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// Whatever arrives as a token, Validate neither panics nor accepts it: only the
// seeded good token passes.
func FuzzValidate(f *testing.F) {
	clk := newClock()
	ec := ecKey(f, "ec-1")
	claims := accessClaims(clk.Now())
	good := sign(f, ec, "at+jwt", claims)
	for _, s := range []string{good, tamper(good), "", "a.b.c", "lk_at_x", "lk_rt_x", good + ".x",
		unsigned(map[string]string{"alg": "none", "kid": "ec-1", "typ": "at+jwt"}, accessClaims(clk.Now()), "")} {
		f.Add(s)
	}
	v, err := New(f.Context(), Options{Issuer: testIssuer, Audience: testAudience, Keys: NewStaticKeySet(ec), DisableFeed: true, Now: clk.Now})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := v.Validate(t.Context(), tok)
		// Another spelling of the same JWS (base64 padding bits) is the same token.
		if err == nil && c.ID != claims["jti"] {
			t.Fatalf("accepted %q as %+v", tok, c)
		}
	})
}

// The Authorization header parser never panics, and what it returns as a token is a
// b64token.
func FuzzBearer(f *testing.F) {
	for _, s := range []string{"Bearer abc", "Bearer ", "bearer a.b.c", "Basic x", "Bearer a b", "Bearer  ab==", "Bearer ==", "DPoP abc", "dpop a.b.c", "DPoP "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header["Authorization"] = []string{h}
		scheme, tok, status, _, _ := credentials(r)
		if status == 0 && (!isB64Token(tok) || (scheme != schemeBearer && scheme != schemeDPoP)) {
			t.Fatalf("%q gave token %q", h, tok)
		}
	})
}

// Whatever arrives as a DPoP proof with a bound token, the middleware neither
// panics nor lets the request through, save for the seeded good proof, once.
func FuzzDPoPProof(f *testing.F) {
	clk := newClock()
	ec, holder := ecKey(f, "ec-1"), ecKey(f, "")
	v, err := New(f.Context(), Options{Issuer: testIssuer, Audience: testAudience, Keys: NewStaticKeySet(ec), DisableFeed: true, Now: clk.Now})
	if err != nil {
		f.Fatal(err)
	}
	bound := sign(f, ec, "at+jwt", accessClaims(clk.Now(), func(c map[string]any) { c["cnf"] = map[string]any{"jkt": thumbprint(f, holder)} }))
	good := proof(f, holder, "GET", ordersURL, bound, clk.Now(), func(c map[string]any) { c["jti"] = "the-good-one" })
	for _, s := range []string{good, tamper(good), "", "a.b.c", bound, good + ".x", proof(f, ecKey(f, ""), "GET", ordersURL, bound, clk.Now())} {
		f.Add(s)
	}
	passed := 0
	h := v.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { passed++; w.WriteHeader(204) }))
	f.Fuzz(func(t *testing.T, p string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, dpopReq("GET", "DPoP", bound, p))
		if rec.Code == 204 && passed > 1 {
			t.Fatalf("a second proof was accepted: %q", p)
		}
	})
}
