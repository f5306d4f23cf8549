package oauth

import (
	"encoding/json"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/protocol"
	"github.com/latchkey/latchkey/internal/token"
	"github.com/latchkey/latchkey/storage"
)

// signInTokens signs alice in with the client and redeems the code.
func signInTokens(t *testing.T, inst *instance, b *browser, clientID, basic, scope string) response {
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
	extra := []string{}
	if basic == "" {
		extra = append(extra, "client_id", clientID)
	}
	r := inst.redeem(t, basic, loc.Query().Get("code"), extra...)
	if r.status != 200 {
		t.Fatalf("redeem = %d %s", r.status, r.raw)
	}
	return r
}

func (i *instance) refresh(t *testing.T, basic, rt string, extra ...string) response {
	t.Helper()
	return post(t, i.tokenURL("acme"), basic, form(append([]string{"grant_type", "refresh_token", "refresh_token", rt}, extra...)...))
}

func str(r response, k string) string { s, _ := r.body[k].(string); return s }

func TestRefreshRotatesAndDetectsReuse(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		basic := "web:web-secret-123-0123456789abcdefghijklmnop"
		first := signInTokens(t, inst, newBrowser(t), "web", basic, "openid profile offline_access")
		rt1 := str(first, "refresh_token")
		if !strings.HasPrefix(rt1, token.RefreshPrefix) || len(rt1) < len(token.RefreshPrefix)+43 {
			t.Fatalf("refresh token %q", rt1)
		}

		r2 := inst.refresh(t, basic, rt1)
		rt2 := str(r2, "refresh_token")
		if r2.status != 200 || rt2 == "" || rt2 == rt1 || str(r2, "access_token") == str(first, "access_token") || str(r2, "id_token") == "" {
			t.Fatalf("refresh = %d %s", r2.status, r2.raw)
		}
		if r2.header.Get("Cache-Control") != "no-store" {
			t.Fatal("refresh response is cacheable")
		}
		// A refreshed ID token has no nonce but the same sid and auth_time.
		_, idClaims := verifyLocally(t, fetchJWKS(t, inst, "acme"), str(r2, "id_token"))
		_, firstID := verifyLocally(t, fetchJWKS(t, inst, "acme"), str(first, "id_token"))
		if idClaims["nonce"] != nil || idClaims["sid"] != firstID["sid"] || idClaims["auth_time"] != firstID["auth_time"] {
			t.Fatalf("refreshed ID token %v", idClaims)
		}

		// An honest retry within the window: the very same response, no fork.
		retry := inst.refresh(t, basic, rt1)
		if retry.status != 200 || retry.raw != r2.raw {
			t.Fatalf("retry = %d, same response: %v", retry.status, retry.raw == r2.raw)
		}
		// Using the successor closes the window: the parent is now plain reuse.
		r3 := inst.refresh(t, basic, rt2)
		if r3.status != 200 {
			t.Fatalf("second rotation = %d %s", r3.status, r3.raw)
		}
		wantError(t, inst.refresh(t, basic, rt1), 400, protocol.InvalidGrant)
		// The whole family is dead: the newest refresh token, and every access token of it.
		wantError(t, inst.refresh(t, basic, str(r3, "refresh_token")), 400, protocol.InvalidGrant)
		for _, at := range []string{str(first, "access_token"), str(r2, "access_token"), str(r3, "access_token")} {
			wantInactive(t, inst.introspect(t, "acme", at))
		}
		events, _ := inst.store.ListAudit(t.Context(), storage.AuditFilter{Type: "refresh_token.reuse_detected"})
		if len(events) != 1 || events[0].FamilyID == "" || events[0].UserID == "" || events[0].ClientID != "web" || events[0].IP == "" || events[0].UserAgent == "" {
			t.Fatalf("audit %+v", events)
		}
		if b, _ := json.Marshal(events); strings.Contains(string(b), rt1) || strings.Contains(string(b), rt2) {
			t.Fatal("the audit event holds a token")
		}
	})
}

func TestRefreshRetryWindow(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		basic := "web:web-secret-123-0123456789abcdefghijklmnop"
		// After the window, a retry is reuse.
		rt := str(signInTokens(t, inst, newBrowser(t), "web", basic, "openid offline_access"), "refresh_token")
		if r := inst.refresh(t, basic, rt); r.status != 200 {
			t.Fatal(r.raw)
		}
		inst.clock.Add(11 * time.Second)
		wantError(t, inst.refresh(t, basic, rt), 400, protocol.InvalidGrant)

		// With the window off (refresh_retry_window: 0s) any second use is reuse.
		strict := "strict:strict-secret-111-0123456789abcdefghijklmnop"
		rt = str(signInTokens(t, inst, newBrowser(t), "strict", strict, "openid offline_access"), "refresh_token")
		next := inst.refresh(t, strict, rt)
		if next.status != 200 {
			t.Fatal(next.raw)
		}
		wantError(t, inst.refresh(t, strict, rt), 400, protocol.InvalidGrant)
		wantError(t, inst.refresh(t, strict, str(next, "refresh_token")), 400, protocol.InvalidGrant)
	})
}

// 100 parallel refreshes of one token: one rotation, 100 identical answers.
func TestParallelRefreshesRotateOnce(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		basic := "web:web-secret-123-0123456789abcdefghijklmnop"
		rt := str(signInTokens(t, inst, newBrowser(t), "web", basic, "openid offline_access"), "refresh_token")
		const n = 100
		answers := make([]response, n)
		var wg sync.WaitGroup
		startGate := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-startGate
				answers[i] = inst.refresh(t, basic, rt)
			})
		}
		close(startGate)
		wg.Wait()
		for i, a := range answers {
			if a.status != 200 || a.raw != answers[0].raw {
				t.Fatalf("answer %d = %d %s; want 100 identical successes", i, a.status, a.raw)
			}
		}
		parent, err := inst.store.GetRefreshToken(t.Context(), token.Hash(rt))
		if err != nil {
			t.Fatal(err)
		}
		if string(parent.SuccessorHash) != string(token.Hash(str(answers[0], "refresh_token"))) {
			t.Fatal("the family forked: the stored successor is not the one handed out")
		}
		fam, _ := inst.store.GetFamily(t.Context(), parent.FamilyID)
		if !fam.RevokedAt.IsZero() {
			t.Fatal("parallel refreshes tripped the theft alarm")
		}
		if r := inst.refresh(t, basic, str(answers[0], "refresh_token")); r.status != 200 {
			t.Fatalf("the successor does not work: %s", r.raw)
		}
	})
}

func TestRefreshChecks(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		ctx := t.Context()
		basic := "web:web-secret-123-0123456789abcdefghijklmnop"
		b := newBrowser(t)
		rt := str(signInTokens(t, inst, b, "web", basic, "openid profile email offline_access"), "refresh_token")

		// Another client: invalid_grant, and the token still works for its owner.
		wantError(t, inst.refresh(t, "strict:strict-secret-111-0123456789abcdefghijklmnop", rt), 400, protocol.InvalidGrant)
		// Scope may narrow, never widen.
		wantError(t, inst.refresh(t, basic, rt, "scope", "openid admin"), 400, protocol.InvalidScope)
		narrowed := inst.refresh(t, basic, rt, "scope", "openid profile")
		if narrowed.status != 200 || str(narrowed, "scope") != "openid profile" {
			t.Fatalf("narrowing = %d %s", narrowed.status, narrowed.raw)
		}
		rt = str(narrowed, "refresh_token")
		wantError(t, inst.refresh(t, basic, rt, "scope", "openid profile email"), 400, protocol.InvalidScope)

		// The new tokens carry the user's current claims.
		alice := mustUser(t, inst, "alice")
		alice.Name = "Alice Pleasance Liddell"
		if err := putUser(t, inst, alice); err != nil {
			t.Fatal(err)
		}
		r := inst.refresh(t, basic, rt)
		_, id := verifyLocally(t, fetchJWKS(t, inst, "acme"), str(r, "id_token"))
		if id["name"] != "Alice Pleasance Liddell" {
			t.Fatalf("refreshed ID token name = %v", id["name"])
		}
		rt = str(r, "refresh_token")

		// A disabled user cannot refresh, and enabling them again brings nothing back:
		// disabling moved their security stamp and revoked the family.
		alice.Disabled, alice.UpdatedAt = true, inst.clock.Now().UTC()
		if err := putUser(t, inst, alice); err != nil {
			t.Fatal(err)
		}
		wantError(t, inst.refresh(t, basic, rt), 400, protocol.InvalidGrant)
		alice = mustUser(t, inst, "alice")
		alice.Disabled = false
		if err := putUser(t, inst, alice); err != nil {
			t.Fatal(err)
		}
		wantError(t, inst.refresh(t, basic, rt), 400, protocol.InvalidGrant)
		inst.clock.Add(time.Second)
		rt = str(signInTokens(t, inst, newBrowser(t), "web", basic, "openid profile email offline_access"), "refresh_token")

		// Nor can a malformed or unknown token, or a missing one.
		wantError(t, inst.refresh(t, basic, "lk_rt_unknown"), 400, protocol.InvalidGrant)
		wantError(t, inst.refresh(t, basic, str(r, "access_token")), 400, protocol.InvalidGrant)
		wantError(t, post(t, inst.tokenURL("acme"), basic, form("grant_type", "refresh_token")), 400, protocol.InvalidRequest)
		// A client without the grant cannot use it.
		wantError(t, post(t, inst.tokenURL("acme"), "svc:svc-secret-123-0123456789abcdefghijklmnop", form("grant_type", "refresh_token", "refresh_token", rt)), 400, protocol.UnauthorizedClient)

		// Revoking the refresh token (RFC 7009) ends its family.
		rt2 := str(inst.refresh(t, basic, rt), "refresh_token")
		if r := post(t, inst.revokeURL("acme"), basic, form("token", rt2, "token_type_hint", "refresh_token")); r.status != 200 {
			t.Fatal(r.raw)
		}
		wantError(t, inst.refresh(t, basic, rt2), 400, protocol.InvalidGrant)

		// Logging the session out ends its families.
		rt = str(signInTokens(t, inst, b, "web", basic, "openid offline_access"), "refresh_token")
		sid := sessionOf(t, inst, rt)
		if err := inst.store.RevokeSession(ctx, sid, inst.clock.Now().UTC()); err != nil {
			t.Fatal(err)
		}
		wantError(t, inst.refresh(t, basic, rt), 400, protocol.InvalidGrant)
	})
}

func sessionOf(t *testing.T, inst *instance, rt string) string {
	tok, err := inst.store.GetRefreshToken(t.Context(), token.Hash(rt))
	if err != nil {
		t.Fatal(err)
	}
	fam, err := inst.store.GetFamily(t.Context(), tok.FamilyID)
	if err != nil {
		t.Fatal(err)
	}
	return fam.SessionID
}

// Idle and absolute limits by preset: the public spa client gets idle 1h, absolute 24h.
func TestRefreshLifetimes(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		rt := str(signInTokens(t, inst, newBrowser(t), "spa", "", "openid offline_access"), "refresh_token")
		spa := func(tok string) response { return inst.refresh(t, "", tok, "client_id", "spa") }
		// Idle: a use within the hour slides it.
		for range 3 {
			inst.clock.Add(59 * time.Minute)
			r := spa(rt)
			if r.status != 200 {
				t.Fatalf("refresh within the idle limit = %d %s", r.status, r.raw)
			}
			rt = str(r, "refresh_token")
		}
		inst.clock.Add(61 * time.Minute)
		wantError(t, spa(rt), 400, protocol.InvalidGrant)

		// Absolute: never extended, however busy the client is.
		rt = str(signInTokens(t, inst, newBrowser(t), "spa", "", "openid offline_access"), "refresh_token")
		fam, _ := inst.store.GetFamily(t.Context(), familyOf(t, inst, rt))
		for inst.clock.Now().Add(50 * time.Minute).Before(fam.AbsoluteExpiresAt) {
			inst.clock.Add(50 * time.Minute)
			r := spa(rt)
			if r.status != 200 {
				t.Fatalf("refresh before the absolute limit = %d %s", r.status, r.raw)
			}
			rt = str(r, "refresh_token")
		}
		inst.clock.Add(50 * time.Minute)
		wantError(t, spa(rt), 400, protocol.InvalidGrant)
		after, _ := inst.store.GetFamily(t.Context(), fam.ID)
		if !after.AbsoluteExpiresAt.Equal(fam.AbsoluteExpiresAt) || fam.AbsoluteExpiresAt.Sub(fam.CreatedAt) != 24*time.Hour {
			t.Fatalf("absolute expiry moved: %v -> %v", fam.AbsoluteExpiresAt, after.AbsoluteExpiresAt)
		}
	})
}

func familyOf(t *testing.T, inst *instance, rt string) string {
	tok, err := inst.store.GetRefreshToken(t.Context(), token.Hash(rt))
	if err != nil {
		t.Fatal(err)
	}
	return tok.FamilyID
}

func TestAccountScreenEndsSessions(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		b := newBrowser(t)
		web1 := signInTokens(t, inst, b, "web", "web:web-secret-123-0123456789abcdefghijklmnop", "openid offline_access")
		other := signInTokens(t, inst, newBrowser(t), "strict", "strict:strict-secret-111-0123456789abcdefghijklmnop", "openid offline_access")

		acct := b.get(inst.issuer("acme") + accountPath)
		if acct.status != 200 || strings.Count(acct.body, "End this session") < 2 || !strings.Contains(acct.body, "(this browser)") {
			t.Fatalf("account page lists no sessions:\n%s", acct.body)
		}
		// End one app session: its refresh token and access token die; the others live on.
		fam := familyOf(t, inst, str(web1, "refresh_token"))
		p := b.submitForm(acct, inst.url, "family", fam)
		if p.status != 200 || strings.Contains(p.body, fam) {
			t.Fatalf("after ending a session: %d", p.status)
		}
		wantError(t, inst.refresh(t, "web:web-secret-123-0123456789abcdefghijklmnop", str(web1, "refresh_token")), 400, protocol.InvalidGrant)
		wantInactive(t, inst.introspect(t, "acme", str(web1, "access_token")))
		if r := inst.refresh(t, "strict:strict-secret-111-0123456789abcdefghijklmnop", str(other, "refresh_token")); r.status != 200 {
			t.Fatalf("another session died too: %s", r.raw)
		}
		// Another user's family cannot be ended from this page.
		if p := b.submitForm(b.get(inst.issuer("acme")+accountPath), inst.url, "family", "not-mine"); p.status != 200 {
			t.Fatalf("ending an unknown family = %d", p.status)
		}

		// Sign out everywhere: every session, app and token of alice ends.
		other = signInTokens(t, inst, newBrowser(t), "strict", "strict:strict-secret-111-0123456789abcdefghijklmnop", "openid offline_access")
		acct = b.get(inst.issuer("acme") + accountPath)
		p = b.submitEverywhere(acct, inst.url)
		if p.status != 200 || !strings.Contains(p.body, "signed out everywhere") {
			t.Fatalf("sign out everywhere = %d %s", p.status, p.body)
		}
		wantError(t, inst.refresh(t, "strict:strict-secret-111-0123456789abcdefghijklmnop", str(other, "refresh_token")), 400, protocol.InvalidGrant)
		wantInactive(t, inst.introspect(t, "acme", str(other, "access_token")))
		if mustUser(t, inst, "alice").TokensValidAfter.IsZero() {
			t.Fatal("tokens_valid_after not set")
		}
		if p := b.get(authURL(inst, "acme", "prompt", "none")); p.location.Query().Get("error") != "login_required" {
			t.Fatal("the browser is still signed in")
		}
		events, _ := inst.store.ListAudit(t.Context(), storage.AuditFilter{Type: "user.logout_everywhere"})
		if len(events) != 1 {
			t.Fatalf("audit %+v", events)
		}
	})
}

// submitForm posts the first form on the page that has a field named "family".
func (b *browser) submitForm(p page, base string, fields ...string) page {
	b.t.Helper()
	i := strings.Index(p.body, `name="family"`)
	if i < 0 {
		b.t.Fatalf("no app session to end:\n%s", p.body)
	}
	start := strings.LastIndex(p.body[:i], "<form")
	end := strings.Index(p.body[i:], "</form>") + i
	return b.submit(page{body: p.body[start:end]}, base, fields...)
}

func (b *browser) submitEverywhere(p page, base string) page {
	b.t.Helper()
	i := strings.Index(p.body, "Sign out everywhere")
	start := strings.LastIndex(p.body[:i], "<form")
	return b.submit(page{body: p.body[start:i]}, base)
}

// After a burst of logins expires, a sweep brings storage back to what is live.
func TestSweepAfterABurstOfLogins(t *testing.T) {
	start(t, func(t *testing.T, inst *instance) {
		ctx := t.Context()
		before, err := inst.store.Count(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for range 10 {
			r := signInTokens(t, inst, newBrowser(t), "spa", "", "openid offline_access")
			if rr := inst.refresh(t, "", str(r, "refresh_token"), "client_id", "spa"); rr.status != 200 {
				t.Fatal(rr.raw)
			}
			// An opaque token stores nothing; revoking it stores a deny-list entry.
			at := inst.clientCredentials(t, "acme", "opq:opq-secret-789-0123456789abcdefghijklmnop").body["access_token"].(string)
			if rv := post(t, inst.revokeURL("acme"), "opq:opq-secret-789-0123456789abcdefghijklmnop", form("token", at)); rv.status != 200 {
				t.Fatal(rv.raw)
			}
		}
		during, _ := inst.store.Count(ctx)
		if during.Families < before.Families+10 || during.Sessions < before.Sessions+10 || during.RefreshTokens < before.RefreshTokens+20 || during.DeniedJWTs < before.DeniedJWTs+10 {
			t.Fatalf("the burst left %+v (before %+v)", during, before)
		}
		// A day and a half later (spa families live 24 h at most, sessions idle out in
		// 24 h), past the audit grace, everything from the burst is gone.
		inst.clock.Add(36 * time.Hour)
		res, err := inst.store.Sweep(ctx, inst.clock.Now(), time.Hour)
		if err != nil || res.Families < 10 || res.Sessions < 10 {
			t.Fatalf("sweep = %+v, %v", res, err)
		}
		after, _ := inst.store.Count(ctx)
		if after != before {
			t.Fatalf("counts after the sweep %+v, want those before the burst %+v", after, before)
		}
	})
}
