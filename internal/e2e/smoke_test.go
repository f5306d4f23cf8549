package e2e

import "testing"

// The harness itself: a sign-in, a code redemption and an introspection on each store.
func TestHarness_SignInRedeemIntrospect(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s := start(t, options{db: db})
		b := newBrowser(t)
		r := s.redeem(t, webBasic, b.code(s, "web"))
		if r.status != 200 || r.str("refresh_token") == "" {
			t.Fatalf("redeem = %d %s", r.status, r.raw)
		}
		in := s.introspect(t, svcBasic, r.str("access_token"))
		if in.status != 200 || in.body["active"] != true {
			t.Fatalf("introspect = %d %s", in.status, in.raw)
		}
	})
}
