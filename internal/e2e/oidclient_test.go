package e2e

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"maps"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// The Done-when for the grants of issue 14: openid-client, as published
// on npm and pinned by testdata/oidclient/package-lock.json, does the protocol
// work of each grant (device authorization, token exchange, DPoP, PAR and JAR)
// against a real `latchkey serve`, on both stores. The Go test only seeds the
// realm and plays the user in the browser steps (the harness's HTTP browser);
// it checks what the library saw, and verifies the tokens it got against the
// realm's keys. The scripts are testdata/oidclient/*.mjs; they print one JSON
// line per step, token values only under "tokens", which no failure message
// here shows.

const (
	deviceCodeGrant    = "urn:ietf:params:oauth:grant-type:device_code"
	tokenExchangeGrant = "urn:ietf:params:oauth:grant-type:token-exchange"
	accessTokenURN     = "urn:ietf:params:oauth:token-type:access_token"
	// libStepWait bounds the wait for each step of a script: the library polls a
	// device grant every 5 s, and its first poll waits that long too.
	libStepWait = 90 * time.Second
)

// oidcSeed is a realm acme with the clients given (YAML list items) and alice.
func oidcSeed(clients string) string {
	return `
realms:
  - name: acme
    clients:
` + clients + `
    users:
      - username: alice
        password: ` + alicePass + `
        email: alice@example.com
        email_verified: true
        name: Alice Liddell
`
}

func TestOpenIDClient_DeviceAuthorizationGrant(t *testing.T) {
	lib := openidClient(t)
	stores(t, func(t *testing.T, db string) {
		s := start(t, options{db: db, seed: oidcSeed(`
      - id: tv
        name: Living-Room TV
        grant_types: [` + deviceCodeGrant + `, refresh_token]
        scopes: [openid, profile, offline_access]
`)})
		iss := s.issuer("acme")
		env := []string{"LK_ISSUER=" + iss, "LK_CLIENT_ID=tv", "LK_SCOPE=openid profile offline_access"}
		b := newBrowser(t)

		// Approved: the library polls (pending) while the user signs in on the
		// verification page and approves; then it has tokens, refreshes them and
		// reads userinfo. With a DPoP key, every one of those is bound to it.
		for _, bound := range []bool{false, true} {
			t.Run(map[bool]string{false: "approved", true: "approved with DPoP"}[bound], func(t *testing.T) {
				env := append(slices.Clip(env), "LK_DPOP="+map[bool]string{false: "0", true: "1"}[bound])
				run := lib.run(t, "device.mjs", env...)
				da := checkDeviceAuthorization(t, run, iss)
				firstPoll(t, run, bound)
				b.deviceDecision(t, da.VerificationURIComplete, "Living-Room TV", "Approve")
				for {
					p := run.next("poll")
					if p.num("status") == 200 {
						break
					}
					if p.str("error") != "authorization_pending" {
						t.Fatalf("the library's poll after the approval: %s; want 200 (or authorization_pending, answered while approving)", p.public)
					}
				}
				wantType := map[bool]string{false: "Bearer", true: "DPoP"}[bound]
				var tok libTokens
				run.next("tokens").decode(t, &tok)
				if tok.Error != nil || !strings.EqualFold(tok.TokenType, wantType) || !tok.HasRefreshToken || !tok.HasIDToken ||
					!sameScopes(tok.Scope, "openid profile offline_access") {
					t.Fatalf("the library's device grant tokens: %s; want %s, a refresh token, an ID token, scope openid profile offline_access", run.last(), wantType)
				}
				at := verifyKCJWT(t, s, tok.Tokens.AccessToken, "at+jwt")
				sub := claimStr(tok.IDTokenClaims, "sub")
				if claimStr(at, "client_id") != "tv" || sub == "" || claimStr(at, "sub") != sub || !audHas(tok.IDTokenClaims["aud"], "tv") ||
					claimStr(tok.IDTokenClaims, "iss") != iss || claimStr(at, "fid") == "" {
					t.Errorf("device grant: access token client_id/sub/fid %v, ID token %v; want tv, alice's sub in both, a family", at, tok.IDTokenClaims)
				}
				checkCnf(t, "device grant", at, bound, tok.KeyJKT)

				var ref libTokens
				run.next("refreshed").decode(t, &ref)
				if ref.Error != nil || !strings.EqualFold(ref.TokenType, wantType) || !ref.HasRefreshToken || ref.Tokens.RefreshToken == tok.Tokens.RefreshToken ||
					ref.Tokens.AccessToken == tok.Tokens.AccessToken || claimStr(ref.AccessTokenClaims, "sub") != sub ||
					claimStr(ref.AccessTokenClaims, "fid") != claimStr(at, "fid") {
					t.Fatalf("the library's refresh of the device's tokens: %s; want new %s tokens, the same sub and family", run.last(), wantType)
				}
				checkCnf(t, "refreshed", verifyKCJWT(t, s, ref.Tokens.AccessToken, "at+jwt"), bound, tok.KeyJKT)
				if bound {
					// A public client's family is bound to the key of the poll that
					// redeemed the device code (RFC 9449 §5).
					if e := run.next("refresh_without_proof"); e.str("error", "error") != "invalid_grant" {
						t.Errorf("the device's refresh token without a proof of its key: %s; want invalid_grant", e.public)
					}
				}
				if u := run.next("userinfo"); u.str("userinfo", "sub") != sub || u.str("userinfo", "preferred_username") != "alice" {
					t.Errorf("userinfo with the refreshed token: %s; want alice", u.public)
				}
				run.wait()

				// Refresh tokens for devices as for mobile apps: the mobile preset, 30
				// days idle and 90 days absolute.
				f, err := openStore(t, db).GetFamily(t.Context(), claimStr(at, "fid"))
				if err != nil {
					t.Fatal(err)
				}
				if abs, idle := f.AbsoluteExpiresAt.Sub(f.CreatedAt), f.IdleExpiresAt.Sub(f.LastUsedAt); !near(abs, 90*24*time.Hour) || !near(idle, 30*24*time.Hour) {
					t.Errorf("the device's refresh family lives %v absolute, %v idle; want the mobile preset's 90 days and 30 days", abs, idle)
				}
			})
		}

		// Denied: the library's polling ends with access_denied.
		run := lib.run(t, "device.mjs", append(slices.Clip(env), "LK_DPOP=0")...)
		da := checkDeviceAuthorization(t, run, iss)
		firstPoll(t, run, false)
		b.deviceDecision(t, da.VerificationURIComplete, "Living-Room TV", "Deny")
		for {
			p := run.next("poll")
			if p.str("error") == "access_denied" && p.num("status") == 400 {
				break
			}
			if p.str("error") != "authorization_pending" {
				t.Fatalf("the library's poll after the denial: %s; want 400 access_denied", p.public)
			}
		}
		if e := run.next("poll_error"); e.str("error", "error") != "access_denied" {
			t.Errorf("the library reports %s; want access_denied", e.public)
		}
		run.wait()
	})
}

// firstPoll reads the library's first answers while polling, before the user
// acted: authorization_pending, after the server's DPoP nonce challenge when the
// library holds a key.
func firstPoll(t *testing.T, run *libRun, dpop bool) {
	t.Helper()
	p := run.next("poll")
	if dpop {
		if p.str("error") != "use_dpop_nonce" || p.num("status") != 400 {
			t.Fatalf("the library's first DPoP poll: %s; want 400 use_dpop_nonce", p.public)
		}
		p = run.next("poll")
	}
	if p.str("error") != "authorization_pending" || p.num("status") != 400 {
		t.Fatalf("the library's poll, before the user acted: %s; want 400 authorization_pending", p.public)
	}
}

// checkCnf checks an access token's DPoP binding: cnf.jkt the thumbprint of the
// library's key when bound, no cnf otherwise.
func checkCnf(t *testing.T, what string, claims map[string]any, bound bool, jkt string) {
	t.Helper()
	cnf, _ := claims["cnf"].(map[string]any)
	switch {
	case bound && (jkt == "" || claimStr(cnf, "jkt") != jkt):
		t.Errorf("%s: the access token's cnf is %v; want {jkt: %q}, the library's key", what, claims["cnf"], jkt)
	case !bound && claims["cnf"] != nil:
		t.Errorf("%s: the access token has cnf %v, without DPoP", what, claims["cnf"])
	}
}

type deviceAuthorization struct {
	Endpoint                string  `json:"device_authorization_endpoint"`
	UserCode                string  `json:"user_code"`
	VerificationURI         string  `json:"verification_uri"`
	VerificationURIComplete string  `json:"verification_uri_complete"`
	ExpiresIn               float64 `json:"expires_in"`
	Interval                float64 `json:"interval"`
	DeviceCodePrefix        string  `json:"device_code_prefix"`
}

var userCodeRE = regexp.MustCompile(`^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$`)

// checkDeviceAuthorization reads what initiateDeviceAuthorization got and
// checks it against the spec (RFC 8628 §3.2 and Latchkey's choices).
func checkDeviceAuthorization(t *testing.T, run *libRun, iss string) deviceAuthorization {
	t.Helper()
	var da deviceAuthorization
	run.next("device_authorization").decode(t, &da)
	if da.Endpoint != iss+"/protocol/openid-connect/auth/device" || !userCodeRE.MatchString(da.UserCode) ||
		da.VerificationURI != iss+"/device" || da.VerificationURIComplete != iss+"/device?user_code="+da.UserCode ||
		da.ExpiresIn != 600 || da.Interval != 5 || da.DeviceCodePrefix != "lk_dc_" {
		t.Fatalf("the library's device authorization response: %s; want the endpoint %s/protocol/openid-connect/auth/device, "+
			"a XXXX-XXXX user code, verification_uri %s/device (and _complete with the code), expires_in 600, interval 5, an lk_dc_ device code",
			run.last(), iss, iss)
	}
	return da
}

// deviceDecision plays the user on the verification page: opens the link with
// the code (the code form, filled in: RFC 8628 §3.3.1), continues, signs in if
// asked, checks the page names the client, and presses the button labelled
// decision.
func (b *browser) deviceDecision(t *testing.T, verificationURL, clientName, decision string) {
	t.Helper()
	p := b.get(verificationURL)
	if p.status != 200 {
		t.Fatalf("the verification page: %d\n%s", p.status, p.body)
	}
	p = b.do(b.formRequest(p, verificationURL, "Continue"))
	if p.status == 200 && strings.Contains(p.body, `name="password"`) {
		p = b.do(b.loginRequest(p, verificationURL, "username", "alice", "password", alicePass))
	}
	if p.status != 200 || !strings.Contains(p.body, html.EscapeString(clientName)) {
		t.Fatalf("the verification page (%d) does not name the client %q:\n%s", p.status, clientName, p.body)
	}
	p = b.do(b.formRequest(p, verificationURL, decision))
	if p.status != 200 {
		t.Fatalf("after %s on the verification page: %d\n%s", decision, p.status, p.body)
	}
}

func TestOpenIDClient_TokenExchange(t *testing.T) {
	lib := openidClient(t)
	const gwSecret = "gateway-secret-0123456789abcdefghij"
	const orders = "https://orders.example.com"
	stores(t, func(t *testing.T, db string) {
		s := start(t, options{db: db, seed: oidcSeed(`
      - id: gateway
        name: API Gateway
        secret: ` + gwSecret + `
        redirect_uris: [` + callback + `]
        grant_types: [authorization_code, refresh_token, client_credentials, ` + tokenExchangeGrant + `]
        scopes: [openid, profile, email]
        token_exchange_audiences: [` + orders + `]
`)})
		iss := s.issuer("acme")
		run := lib.run(t, "exchange.mjs", "LK_ISSUER="+iss, "LK_CLIENT_ID=gateway", "LK_CLIENT_SECRET="+gwSecret,
			"LK_REDIRECT_URI="+callback, "LK_SCOPE=openid profile email", "LK_NARROW_SCOPE=profile",
			"LK_AUDIENCE="+orders, "LK_OTHER_AUDIENCE=https://payroll.example.com")
		run.answer(newBrowser(t).authorize(t, run.next("authorize").str("url")))

		var user libTokens
		run.next("signed_in").decode(t, &user)
		subject := verifyKCJWT(t, s, user.Tokens.AccessToken, "at+jwt")
		sub := claimStr(subject, "sub")

		// exchanged checks a token the library got by exchange: an access token
		// (never a refresh token) that keeps the subject token's sub, sid and
		// family (fid: an ID token names none), the exchanging client's, for aud,
		// expiring no later than the subject token.
		exchanged := func(step string, aud []string, scope, fid string) map[string]any {
			t.Helper()
			var x libTokens
			run.next(step).decode(t, &x)
			if x.Error != nil || !strings.EqualFold(x.TokenType, "Bearer") || x.IssuedTokenType != accessTokenURN || x.HasRefreshToken || x.HasIDToken ||
				x.ExpiresIn <= 0 || !sameScopes(x.Scope, scope) {
				t.Fatalf("%s: the library got %s; want a Bearer access token, issued_token_type %s, scope %q, no refresh token",
					step, run.last(), accessTokenURN, scope)
			}
			c := verifyKCJWT(t, s, x.Tokens.AccessToken, "at+jwt")
			if claimStr(c, "sub") != sub || claimStr(c, "client_id") != "gateway" || claimStr(c, "sid") != claimStr(subject, "sid") ||
				claimStr(c, "fid") != fid || !sameAud(c["aud"], aud) ||
				claimNum(c, "exp") > claimNum(subject, "exp") || claimStr(c, "iss") != iss {
				t.Errorf("%s: exchanged token's claims %v; want alice's sub, client_id gateway, the subject's sid, fid %q, aud %v, exp ≤ %v",
					step, c, fid, aud, claimNum(subject, "exp"))
			}
			return c
		}

		fid := claimStr(subject, "fid")
		if fid == "" {
			t.Fatalf("the user's access token names no family: %v", subject)
		}
		if c := exchanged("impersonation", []string{orders}, user.Scope, fid); c["act"] != nil {
			t.Errorf("impersonation: the token has act %v; want none", c["act"])
		}
		del := exchanged("delegation", []string{orders}, user.Scope, fid)
		actor := run.next("actor").get("actor_claims")
		act, _ := del["act"].(map[string]any)
		if actorSub := claimStr(actor, "sub"); act == nil || actorSub == "" || claimStr(act, "sub") != actorSub || claimStr(act, "client_id") != "gateway" || act["act"] != nil {
			t.Errorf("delegation: act %v; want {sub: %q (the actor token's), client_id: gateway}", del["act"], actorSub)
		}
		if c := exchanged("id_token_subject", []string{orders}, user.Scope, ""); c["act"] != nil {
			t.Errorf("an ID token as subject: act %v; want none", c["act"])
		}
		exchanged("scope_narrowed", []string{"gateway"}, "profile", fid)
		if e := run.next("not_allowed"); e.str("error", "error") != "invalid_target" || e.num("error", "status") != 400 {
			t.Errorf("an audience outside token_exchange_audiences: %s; want 400 invalid_target", e.public)
		}
		if e := run.next("refresh_token_subject"); e.str("error", "error") != "invalid_request" || e.num("error", "status") != 400 {
			t.Errorf("a refresh token as subject: %s; want 400 invalid_request", e.public)
		}
		after := run.next("after_revocation")
		if after.get()["active_before"] != true || fmt.Sprint(after.get("introspection_after")) != "map[active:false]" || after.str("exchange_again", "error") != "invalid_request" {
			t.Errorf("the subject's family revoked: %s; want the exchanged token active before and {active:false} after, and no more exchange (invalid_request)", after.public)
		}
		run.wait()
	})
}

func TestOpenIDClient_DPoP(t *testing.T) {
	lib := openidClient(t)
	const meterSecret = "meter-secret-0123456789abcdefghijkl"
	stores(t, func(t *testing.T, db string) {
		s := start(t, options{db: db, seed: oidcSeed(`
      - id: meter
        secret: ` + meterSecret + `
        grant_types: [client_credentials]
        scopes: [readings:write]
        audiences: [` + ordersAud + `]
        dpop_bound_access_tokens: true
      - id: orders-api
        secret: ` + ordersAPISecret + `
        grant_types: [client_credentials]
      - id: app
        redirect_uris: [` + callback + `]
        grant_types: [authorization_code, refresh_token]
        scopes: [openid, profile, offline_access]
`)})
		iss := s.issuer("acme")
		gate := startGate(t, iss, standIn(t))
		run := lib.run(t, "dpop.mjs", "LK_ISSUER="+iss, "LK_API_URL="+gate, "LK_SVC_ID=meter", "LK_SVC_SECRET="+meterSecret, "LK_SVC_SCOPE=readings:write",
			"LK_APP_ID=app", "LK_REDIRECT_URI="+callback, "LK_SCOPE=openid profile offline_access")

		// bound checks a DPoP-bound token response: token_type DPoP, cnf.jkt the
		// key's thumbprint in the signed access token.
		bound := func(step string, x libTokens) {
			t.Helper()
			if x.Error != nil || !strings.EqualFold(x.TokenType, "DPoP") || x.KeyJKT == "" {
				t.Fatalf("%s: the library got %s; want token_type DPoP", step, run.last())
			}
			c := verifyKCJWT(t, s, x.Tokens.AccessToken, "at+jwt")
			if cnf, _ := c["cnf"].(map[string]any); claimStr(cnf, "jkt") != x.KeyJKT {
				t.Errorf("%s: the access token's cnf is %v; want {jkt: %s}, the thumbprint of the library's key", step, c["cnf"], x.KeyJKT)
			}
		}

		// Client credentials: the server asks for a nonce and the library
		// retries with it, by itself.
		var cc libTokens
		run.next("client_credentials").decode(t, &cc)
		bound("client_credentials", cc)
		if len(cc.Exchanges) != 2 || cc.Exchanges[0] != (libExchange{400, "use_dpop_nonce", true, true}) || cc.Exchanges[1] != (libExchange{200, "", true, true}) {
			t.Errorf("client credentials with DPoP: the token endpoint answered the library %+v; want 400 use_dpop_nonce with a DPoP-Nonce, then 200 with a fresh one", cc.Exchanges)
		}
		in := run.next("svc_introspection")
		if in.get("introspection")["active"] != true ||
			in.str("introspection", "token_type") != "DPoP" || in.str("introspection", "cnf", "jkt") != cc.KeyJKT {
			t.Errorf("introspection of the DPoP-bound token: %s; want active, token_type DPoP, cnf.jkt %s", in.public, cc.KeyJKT)
		}
		// The gate in front of an API lets the bound token through with a proof
		// of its key (and keeps the proof from the upstream), and refuses it as
		// a bearer token (RFC 9449 §7.2).
		if a := run.next("api"); a.num("status") != 200 || a.str("upstream", "client_id") != "meter" || a.str("upstream", "sub") != "meter" ||
			a.get("upstream")["got_dpop"] != false {
			t.Errorf("the library's DPoP call through the gate: %s; want 200, the upstream told client_id and sub meter, and no DPoP header", a.public)
		}
		if a := run.next("api_as_bearer"); a.num("error", "status") != 401 || a.str("error", "error") != "invalid_token" {
			t.Errorf("the DPoP-bound token sent as a bearer token through the gate: %s; want 401 invalid_token", a.public)
		}
		var noProof libTokens
		run.next("svc_without_proof").decode(t, &noProof)
		if noProof.Error == nil || noProof.Error.Error != "invalid_dpop_proof" || noProof.Error.Status != 400 {
			t.Errorf("client credentials without a proof, for a client with dpop_bound_access_tokens: %s; want 400 invalid_dpop_proof", run.last())
		}
		if r := run.next("replay"); r.num("status") != 400 || r.str("error") != "invalid_dpop_proof" {
			t.Errorf("the library's last token request sent again with its proof: %s; want 400 invalid_dpop_proof (jti replay)", r.public)
		}

		// Authorization code and refresh, bound to the app's key.
		run.answer(newBrowser(t).authorize(t, run.next("authorize").str("url")))
		var code libTokens
		run.next("code").decode(t, &code)
		bound("code", code)
		if !code.HasRefreshToken || !code.HasIDToken || len(code.Exchanges) == 0 || code.Exchanges[len(code.Exchanges)-1] != (libExchange{200, "", true, true}) {
			t.Errorf("code redemption with DPoP: %s; want a refresh token, an ID token, and 200 with a DPoP-Nonce last", run.last())
		}
		sub := claimStr(code.IDTokenClaims, "sub")
		if u := run.next("userinfo"); u.str("userinfo", "sub") != sub || u.str("userinfo", "preferred_username") != "alice" {
			t.Errorf("userinfo with DPoP: %s; want alice", u.public)
		}
		if u := run.next("userinfo_as_bearer"); u.num("error", "status") != 401 || u.str("error", "error") != "invalid_token" {
			t.Errorf("the DPoP-bound token sent as a Bearer token to userinfo: %s; want 401 invalid_token", u.public)
		}
		if u := run.next("userinfo_other_key"); u.num("error", "status") != 401 || !slices.Contains([]string{"invalid_token", "invalid_dpop_proof"}, u.str("error", "error")) {
			t.Errorf("the DPoP-bound token with another key's proof at userinfo: %s; want 401 invalid_token", u.public)
		}
		var ref libTokens
		run.next("refreshed").decode(t, &ref)
		bound("refreshed", ref)
		if ref.KeyJKT != code.KeyJKT || !ref.HasRefreshToken || ref.Tokens.RefreshToken == code.Tokens.RefreshToken {
			t.Errorf("refresh with the same key: %s; want a new refresh token, bound to the same key", run.last())
		}
		for _, step := range []string{"refresh_other_key", "refresh_without_proof"} {
			var x libTokens
			run.next(step).decode(t, &x)
			if x.Error == nil || x.Error.Error != "invalid_grant" || x.Error.Status != 400 {
				t.Errorf("%s: %s; want 400 invalid_grant: the refresh token is bound to the app's key", step, run.last())
			}
		}
		var again libTokens
		run.next("refresh_after_refusals").decode(t, &again)
		bound("refresh_after_refusals", again)
		if again.KeyJKT != code.KeyJKT || !again.HasRefreshToken {
			t.Errorf("the refused refreshes rotated or revoked something: the right key's refresh after them got %s", run.last())
		}
		run.wait()
	})
}

func TestOpenIDClient_PushedAuthorizationRequest(t *testing.T) {
	lib := openidClient(t)
	const shopSecret = "shop-secret-0123456789abcdefghijklm"
	stores(t, func(t *testing.T, db string) {
		s := start(t, options{db: db, seed: oidcSeed(`
      - id: shop
        secret: ` + shopSecret + `
        redirect_uris: [` + callback + `]
        grant_types: [authorization_code, refresh_token]
        scopes: [openid, profile, email]
        require_pushed_authorization_requests: true
`)})
		iss := s.issuer("acme")
		run := lib.run(t, "par.mjs", "LK_MODE=par", "LK_ISSUER="+iss, "LK_CLIENT_ID=shop", "LK_CLIENT_SECRET="+shopSecret,
			"LK_REDIRECT_URI="+callback, "LK_SCOPE=openid profile email")
		u := run.next("authorize").str("url")
		q := checkAuthorizationURL(t, s, u, "request_uri")
		if !strings.HasPrefix(q.Get("request_uri"), "urn:ietf:params:oauth:request_uri:") {
			t.Errorf("the library's request_uri from PAR is %q; want urn:ietf:params:oauth:request_uri:...", q.Get("request_uri"))
		}
		b := newBrowser(t)
		run.answer(b.authorize(t, u))
		checkCodeFlowTokens(t, s, run, "shop", "openid profile email")
		run.wait()

		// The request_uri was used: the same URL again is refused (single use),
		// and so is an authorization request of this client without PAR.
		for what, u := range map[string]string{
			"the PAR request_uri a second time":                 u,
			"a request without PAR, for a client requiring PAR": s.authURL("shop", "scope", "openid"),
		} {
			if p := b.get(u); p.status != 400 || p.location != nil {
				t.Errorf("%s: %d (to %s); want the error page, no redirect", what, p.status, redactedURL(p.location))
			}
		}
	})
}

func TestOpenIDClient_SignedRequestObject(t *testing.T) {
	lib := openidClient(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	private := jose.JSONWebKey{Key: key, KeyID: "signer-1", Algorithm: "ES256", Use: "sig"}
	privateJSON, _ := private.MarshalJSON()
	publicJSON, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{private.Public()}})
	stores(t, func(t *testing.T, db string) {
		s := start(t, options{db: db, seed: oidcSeed(`
      - id: signer
        jwks: ` + string(publicJSON) + `
        redirect_uris: [` + callback + `]
        grant_types: [authorization_code]
        scopes: [openid, profile]
`)})
		iss := s.issuer("acme")
		b := newBrowser(t)
		for mode, param := range map[string]string{"jar": "request", "par_jar": "request_uri"} {
			t.Run(mode, func(t *testing.T) {
				run := lib.run(t, "par.mjs", "LK_MODE="+mode, "LK_ISSUER="+iss, "LK_CLIENT_ID=signer", "LK_CLIENT_JWK="+string(privateJSON),
					"LK_REDIRECT_URI="+callback, "LK_SCOPE=openid profile")
				u := run.next("authorize").str("url")
				checkAuthorizationURL(t, s, u, param)
				run.answer(b.authorize(t, u))
				checkCodeFlowTokens(t, s, run, "signer", "openid profile")
				run.wait()
			})
		}
	})
}

// checkAuthorizationURL checks the library sends the browser to the
// authorization endpoint with client_id and param alone (RFC 9101 §5, RFC 9126
// §4): every other parameter travels in the request object or the pushed request.
func checkAuthorizationURL(t *testing.T, s *server, u, param string) url.Values {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	q := p.Query()
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{"client_id", param}
	slices.Sort(want)
	if p.Scheme+"://"+p.Host+p.Path != s.issuer("acme")+"/protocol/openid-connect/auth" || !slices.Equal(keys, want) {
		t.Fatalf("the library's authorization URL goes to %s%s with %v; want the authorization endpoint with %v", p.Host, p.Path, keys, want)
	}
	return q
}

// checkCodeFlowTokens checks the tokens authorizationCodeGrant got (it checked
// state, nonce and PKCE itself) and the userinfo after.
func checkCodeFlowTokens(t *testing.T, s *server, run *libRun, clientID, scope string) {
	t.Helper()
	var tok libTokens
	run.next("tokens").decode(t, &tok)
	if tok.Error != nil || !strings.EqualFold(tok.TokenType, "Bearer") || !tok.HasIDToken || !sameScopes(tok.Scope, scope) {
		t.Fatalf("the library's tokens: %s; want Bearer, an ID token, scope %q", run.last(), scope)
	}
	at := verifyKCJWT(t, s, tok.Tokens.AccessToken, "at+jwt")
	sub := claimStr(tok.IDTokenClaims, "sub")
	if claimStr(at, "client_id") != clientID || sub == "" || claimStr(at, "sub") != sub || !audHas(tok.IDTokenClaims["aud"], clientID) ||
		claimStr(tok.IDTokenClaims, "nonce") == "" {
		t.Errorf("access token %v, ID token %v; want client_id %s, alice's sub in both, the nonce in the ID token", at, tok.IDTokenClaims, clientID)
	}
	if u := run.next("userinfo"); u.str("userinfo", "sub") != sub || u.str("userinfo", "preferred_username") != "alice" {
		t.Errorf("userinfo: %s; want alice", u.public)
	}
}

// authorize plays the user on an authorization URL the library built: signs
// in if asked and returns the URL the browser lands on at the redirect URI,
// which must carry a code.
func (b *browser) authorize(t *testing.T, u string) string {
	t.Helper()
	p := b.get(u)
	if p.location == nil && p.status == 200 && strings.Contains(p.body, `name="password"`) {
		p = b.do(b.loginRequest(p, u, "username", "alice", "password", alicePass))
	}
	if p.location == nil || p.location.Host != "127.0.0.1:9999" || p.location.Query().Get("code") == "" {
		t.Fatalf("the authorization did not come back with a code (%d, to %v):\n%s", p.status, redactedURL(p.location), p.body)
	}
	return p.location.String()
}

// redactedURL shows a URL without its code.
func redactedURL(u *url.URL) string {
	if u == nil {
		return "nowhere"
	}
	c := *u
	q := c.Query()
	if q.Has("code") {
		q.Set("code", "…")
	}
	c.RawQuery = q.Encode()
	return c.String()
}

// formRequest builds the POST of the page's form that holds the button labelled
// label, as a same-origin browser sends it: the form's inputs and the button's
// own name and value.
func (b *browser) formRequest(p page, base, label string) *http.Request {
	b.t.Helper()
	for _, form := range formRE.FindAllStringSubmatch(p.body, -1) {
		attrs, body := tagAttrs(form[1]), form[2]
		var button map[string]string
		for _, m := range buttonRE.FindAllStringSubmatch(body, -1) {
			a := tagAttrs(m[1])
			text := strings.TrimSpace(html.UnescapeString(regexp.MustCompile(`<[^>]*>`).ReplaceAllString(m[2], "")))
			if strings.EqualFold(text, label) || strings.EqualFold(a["value"], label) {
				button = a
			}
		}
		if button == nil {
			continue
		}
		f := url.Values{}
		for _, m := range inputRE.FindAllStringSubmatch(body, -1) {
			a := tagAttrs(m[1])
			if a["name"] != "" && a["type"] != "submit" && a["type"] != "button" {
				f.Set(a["name"], a["value"])
			}
		}
		if button["name"] != "" {
			f.Set(button["name"], button["value"])
		}
		action := attrs["action"]
		bu, _ := url.Parse(base)
		target, err := bu.Parse(action)
		if err != nil {
			b.t.Fatalf("form action %q: %v", action, err)
		}
		req, _ := http.NewRequest("POST", target.String(), strings.NewReader(f.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		return req
	}
	b.t.Fatalf("no form with a %q button on the page (%d):\n%s", label, p.status, p.body)
	return nil
}

var (
	formRE   = regexp.MustCompile(`(?s)<form\b([^>]*)>(.*?)</form>`)
	buttonRE = regexp.MustCompile(`(?s)<button\b([^>]*)>(.*?)</button>`)
	inputRE  = regexp.MustCompile(`<input\b([^>]*)>`)
	attrRE   = regexp.MustCompile(`([a-zA-Z_:][-a-zA-Z0-9_:.]*)(?:="([^"]*)")?`)
)

// tagAttrs parses a tag's attributes (double-quoted values, entities decoded).
func tagAttrs(s string) map[string]string {
	out := map[string]string{}
	for _, m := range attrRE.FindAllStringSubmatch(s, -1) {
		out[strings.ToLower(m[1])] = html.UnescapeString(m[2])
	}
	return out
}

// libTokens is what a script reports of a token response (lib.mjs tokenResult),
// or of the error the library raised instead.
type libTokens struct {
	TokenType         string         `json:"token_type"`
	ExpiresIn         float64        `json:"expires_in"`
	Scope             string         `json:"scope"`
	IssuedTokenType   string         `json:"issued_token_type"`
	HasRefreshToken   bool           `json:"has_refresh_token"`
	HasIDToken        bool           `json:"has_id_token"`
	AccessTokenClaims map[string]any `json:"access_token_claims"`
	IDTokenClaims     map[string]any `json:"id_token_claims"`
	Tokens            struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		IDToken      string `json:"id_token"`
	} `json:"tokens"`
	KeyJKT    string        `json:"key_jkt"`
	Exchanges []libExchange `json:"exchanges"`
	Error     *libError     `json:"error"`
}

// libError is what the library raised (lib.mjs errorResult).
type libError struct {
	Name             string `json:"name"`
	Code             string `json:"code"`
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
	Status           int    `json:"status"`
}

// libExchange is one answer of the token endpoint to the library (dpop.mjs).
type libExchange struct {
	Status    int    `json:"status"`
	Error     string `json:"error"`
	SentProof bool   `json:"sent_proof"`
	GotNonce  bool   `json:"got_nonce"`
}

// oidcLib is openid-client installed, and the scripts beside it.
type oidcLib struct {
	node, dir string
}

// openidClient installs the openid-client of testdata/oidclient/package-lock.json
// (npmInstall) and puts the scripts beside its node_modules, in a directory of
// the test's.
func openidClient(t *testing.T) oidcLib {
	t.Helper()
	if testing.Short() {
		t.Skip("installs openid-client and runs Node.js")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing(t, "no node on PATH to run openid-client with (Debian: apt-get install nodejs npm)")
	}
	out, err := exec.Command(node, "--version").Output()
	major, _ := strconv.Atoi(strings.TrimPrefix(strings.Split(strings.TrimSpace(string(out)), ".")[0], "v"))
	if err != nil || major < 20 {
		t.Fatalf("openid-client 6 needs Node.js 20 or newer; node --version says %q (%v)", out, err)
	}
	root := npmInstall(t, "oidclient", filepath.Join("node_modules", "openid-client", "package.json"))
	dir := t.TempDir()
	if err := os.Symlink(filepath.Join(root, "node_modules"), filepath.Join(dir, "node_modules")); err != nil {
		t.Fatal(err)
	}
	scripts, err := filepath.Glob(filepath.Join("testdata", "oidclient", "*.mjs"))
	if err != nil || len(scripts) == 0 {
		t.Fatalf("no scripts in testdata/oidclient: %v", err)
	}
	for _, f := range scripts {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return oidcLib{node: node, dir: dir}
}

// libRun is a script running: its steps as they come, the test's answers to its
// stdin.
type libRun struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	steps  chan []byte
	stderr *syncBuffer
	exited chan struct{}
	seen   []string // the steps so far, without token values
}

// run starts a script with env (NAME=value) added to PATH; it is stopped when
// the test ends.
func (l oidcLib) run(t *testing.T, name string, env ...string) *libRun {
	t.Helper()
	r := &libRun{t: t, name: name, steps: make(chan []byte, 64), stderr: &syncBuffer{}, exited: make(chan struct{})}
	r.cmd = exec.Command(l.node, name)
	r.cmd.Dir = l.dir
	r.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "NODE_NO_WARNINGS=1"}, env...)
	r.cmd.Stderr = r.stderr
	var err error
	if r.stdin, err = r.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	// The process's stdout through a pipe of ours, so Wait returns only once all
	// it wrote is read; the scanner never blocks (a script prints far fewer lines
	// than the channel holds).
	out, in := io.Pipe()
	r.cmd.Stdout = in
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(r.steps)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
		for sc.Scan() {
			r.steps <- slices.Clone(sc.Bytes())
		}
		io.Copy(io.Discard, out)
	}()
	go func() { r.cmd.Wait(); in.Close(); close(r.exited) }()
	t.Cleanup(func() {
		r.stdin.Close()
		select {
		case <-r.exited:
		case <-time.After(5 * time.Second):
			r.cmd.Process.Kill()
			<-r.exited
		}
		if t.Failed() {
			t.Logf("%s: steps seen:\n  %s\nstderr:\n%s", r.name, strings.Join(r.seen, "\n  "), r.stderr)
		}
	})
	return r
}

// libStep is one step a script printed.
type libStep struct {
	raw    []byte
	fields map[string]any
	public string // raw without token values, for messages
}

// next waits for the script's next step, which must be want; a script that
// failed or ended fails the test, with the steps so far.
func (r *libRun) next(want string) libStep {
	r.t.Helper()
	select {
	case line, ok := <-r.steps:
		if !ok {
			r.wait()
			r.t.Fatalf("%s ended before step %s", r.name, want)
		}
		st := libStep{raw: line}
		if err := json.Unmarshal(line, &st.fields); err != nil {
			r.t.Fatalf("%s printed a line that is not JSON (%v): %.200q", r.name, err, line)
		}
		pub := maps.Clone(st.fields)
		delete(pub, "tokens")
		b, _ := json.Marshal(pub)
		st.public = string(b)
		r.seen = append(r.seen, st.public)
		if got := st.str("step"); got != want {
			r.t.Fatalf("%s: step %s, want %s: %s\nstderr:\n%s", r.name, got, want, st.public, r.stderr)
		}
		return st
	case <-time.After(libStepWait):
		r.t.Fatalf("%s: no step %s after %v\nstderr:\n%s", r.name, want, libStepWait, r.stderr)
	}
	return libStep{}
}

// last is the last step seen, without token values.
func (r *libRun) last() string {
	if len(r.seen) == 0 {
		return "(none)"
	}
	return r.seen[len(r.seen)-1]
}

// answer sends the test's answer to the step just read.
func (r *libRun) answer(line string) {
	r.t.Helper()
	if _, err := io.WriteString(r.stdin, line+"\n"); err != nil {
		r.t.Fatalf("%s: answering: %v", r.name, err)
	}
}

// wait waits for the script to exit, which must be with status 0 after all its
// steps were read.
func (r *libRun) wait() {
	r.t.Helper()
	select {
	case <-r.exited:
	case <-time.After(libStepWait):
		r.t.Fatalf("%s did not exit", r.name)
	}
	if extra, ok := <-r.steps; ok {
		r.t.Fatalf("%s printed more than the test read: %.300s", r.name, redactLine(extra))
	}
	if code := r.cmd.ProcessState.ExitCode(); code != 0 {
		r.t.Fatalf("%s exited with %d\nstderr:\n%s", r.name, code, r.stderr)
	}
}

// redactLine is a step's line without token values.
func redactLine(line []byte) string {
	var m map[string]any
	if json.Unmarshal(line, &m) != nil {
		return "(not JSON)"
	}
	delete(m, "tokens")
	b, _ := json.Marshal(m)
	return string(b)
}

// decode reads the step into v.
func (st libStep) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(st.raw, v); err != nil {
		t.Fatalf("step %s: %v", st.public, err)
	}
}

// get is the object at path ("" or nothing: the step itself); nil if none.
func (st libStep) get(path ...string) map[string]any {
	m := st.fields
	for _, k := range path {
		if k == "" {
			continue
		}
		m, _ = m[k].(map[string]any)
	}
	return m
}

// str is the string at path.
func (st libStep) str(path ...string) string {
	v, _ := st.get(path[:len(path)-1]...)[path[len(path)-1]].(string)
	return v
}

// num is the number at path, NaN if none.
func (st libStep) num(path ...string) float64 {
	v, ok := st.get(path[:len(path)-1]...)[path[len(path)-1]].(float64)
	if !ok {
		return math.NaN()
	}
	return v
}

func claimStr(m map[string]any, k string) string { v, _ := m[k].(string); return v }

func claimNum(m map[string]any, k string) float64 {
	v, ok := m[k].(float64)
	if !ok {
		return math.NaN()
	}
	return v
}

// audList is an aud claim as a list (RFC 7519 §4.1.3: a string or an array).
func audList(aud any) []string {
	switch a := aud.(type) {
	case string:
		return []string{a}
	case []any:
		var out []string
		for _, v := range a {
			s, _ := v.(string)
			out = append(out, s)
		}
		return out
	}
	return nil
}

func audHas(aud any, want string) bool { return slices.Contains(audList(aud), want) }

func sameAud(aud any, want []string) bool {
	got := audList(aud)
	slices.Sort(got)
	w := slices.Clone(want)
	slices.Sort(w)
	return slices.Equal(got, w)
}

func sameScopes(got, want string) bool {
	g, w := strings.Fields(got), strings.Fields(want)
	slices.Sort(g)
	slices.Sort(w)
	return slices.Equal(g, w)
}

// near reports whether d is within a minute of want.
func near(d, want time.Duration) bool { return d > want-time.Minute && d < want+time.Minute }
