package oauth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/latchkey/latchkey/internal/web"
	"github.com/latchkey/latchkey/storage"
)

// The OP iframe of OIDC Session Management 1.0 and the third-party cookie check,
// at the paths keycloak-js loads them from.
const (
	checkSessionPath = "/protocol/openid-connect/login-status-iframe.html"
	thirdPartyStep1  = "/protocol/openid-connect/3p-cookies/step1.html"
	thirdPartyStep2  = "/protocol/openid-connect/3p-cookies/step2.html"

	// browserStateCookie holds the browser state of OIDC Session Management §3:
	// only a hash of the session ID (itself the public sid), never the session's
	// secret, so the iframe's script may read it.
	browserStateCookie = "LATCHKEY_BROWSER_STATE"
)

// browserState is the value of the browser state cookie for a session.
func browserState(sessionID string) string {
	sum := sha256.Sum256([]byte(sessionID))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// sessionState is the session_state of OIDC Session Management §3:
// hash(client_id, origin of the redirect URI, browser state, salt) "." salt.
// The iframe computes the same from the cookie and the message's origin.
func sessionState(clientID, redirectURI, sessionID string) string {
	origin := ""
	if u, err := url.Parse(redirectURI); err == nil {
		origin = u.Scheme + "://" + u.Host
	}
	salt := rand.Text()[:16]
	sum := sha256.Sum256([]byte(clientID + " " + origin + " " + browserState(sessionID) + " " + salt))
	return base64.RawURLEncoding.EncodeToString(sum[:]) + "." + salt
}

// setBrowserState sets (or, with an empty sessionID, clears) the browser state
// cookie alongside the session cookie. Unlike the session cookie it is readable
// by script, and on https it is SameSite=None so the iframe sees it when an
// application on another site embeds it.
func (h *Handler) setBrowserState(w http.ResponseWriter, realm, sessionID string) {
	secure := strings.HasPrefix(h.baseURL, "https://")
	c := &http.Cookie{Name: browserStateCookie, Path: h.realmPath(realm), Secure: secure, SameSite: http.SameSiteLaxMode}
	if secure {
		c.SameSite = http.SameSiteNoneMode
	}
	if sessionID == "" {
		c.MaxAge = -1
	} else {
		c.Value, c.MaxAge = browserState(sessionID), int(sessionMax.Seconds())
	}
	http.SetCookie(w, c)
}

// checkSessionScript answers "client_id session" messages with "unchanged",
// "changed" or "error" (OIDC Session Management §4.1). The session is either a
// session_state (hash "." salt, recomputed from the cookie and the sender's
// origin) or, as keycloak-js sends it, the token's sid (hashed and compared with
// the cookie). No cookie and no session is "unchanged".
const checkSessionScript = `(function () {
  function b64(buf) {
    return btoa(String.fromCharCode.apply(null, new Uint8Array(buf))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }
  function hash(s) {
    return crypto.subtle.digest('SHA-256', new TextEncoder().encode(s)).then(b64);
  }
  function cookie() {
    var m = document.cookie.match(/(?:^|;\s*)` + browserStateCookie + `=([^;]*)/);
    return m ? m[1] : '';
  }
  addEventListener('message', function (e) {
    if (!e.source || typeof e.data !== 'string') return;
    var reply = function (r) { e.source.postMessage(r, e.origin); };
    var p = e.data.split(' ');
    if (p.length !== 2 || !p[0]) { reply('error'); return; }
    var state = cookie(), s = p[1];
    if (!state || !s) { reply(!state && !s ? 'unchanged' : 'changed'); return; }
    var dot = s.lastIndexOf('.');
    var want = dot < 0 ? hash(s).then(function (h) { return h === state; }) :
      hash(p[0] + ' ' + e.origin + ' ' + state + ' ' + s.slice(dot + 1)).then(function (h) { return h + s.slice(dot) === s; });
    want.then(function (same) { reply(same ? 'unchanged' : 'changed'); }, function () { reply('error'); });
  });
})();`

// step1Script sets a test cookie, SameSite=None where the page is https (as
// third-party cookies must be), and goes on to step 2, which sees it or not.
const step1Script = `(function () {
  try {
    document.cookie = 'LATCHKEY_3P_COOKIE=supported; Max-Age=60' + (location.protocol === 'https:' ? '; SameSite=None; Secure' : '; SameSite=Lax');
  } catch (e) {}
  location.replace('step2.html');
})();`

// step2Script tells the embedding page whether the cookie came back, and
// removes it. The answer is no secret, hence the '*' target, as Keycloak does.
const step2Script = `(function () {
  var ok = false;
  try {
    ok = /(?:^|;\s*)LATCHKEY_3P_COOKIE=supported/.test(document.cookie);
    document.cookie = 'LATCHKEY_3P_COOKIE=; Max-Age=0' + (location.protocol === 'https:' ? '; SameSite=None; Secure' : '; SameSite=Lax');
  } catch (e) {}
  parent.postMessage(ok ? 'supported' : 'unsupported', '*');
})();`

// framePage serves a page made of one inline script. The script is allowed by
// its hash and nothing else is; unlike every other page these are meant to be
// framed by applications, by the ancestors frameAncestors allows.
func (h *Handler) framePage(script string, frameAncestors func(r *http.Request, realm storage.Realm) (string, error)) realmHandler {
	sum := sha256.Sum256([]byte(script))
	csp := "default-src 'none'; script-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) +
		"'; base-uri 'none'; form-action 'none'; frame-ancestors "
	body := []byte("<!doctype html><html><head><meta charset=\"utf-8\"><title>Latchkey</title></head><body><script>" +
		script + "</script></body></html>")
	return func(w http.ResponseWriter, r *http.Request, realm storage.Realm) {
		ancestors, err := frameAncestors(r, realm)
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		hd := w.Header()
		hd.Set("Content-Type", "text/html; charset=utf-8")
		hd.Set("Cache-Control", "no-store")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Content-Security-Policy", csp+ancestors)
		w.Write(body)
	}
}

// clientAncestors allows the realm's enabled clients' web origins (as CORS does)
// to frame the login status iframe: any other site could otherwise ask it
// whether the browser is signed in at all.
func (h *Handler) clientAncestors(r *http.Request, realm storage.Realm) (string, error) {
	clients, err := h.store.ListClients(r.Context(), realm.Name)
	if err != nil {
		return "", err
	}
	srcs := []string{"'self'"}
	for _, c := range clients {
		if c.Disabled {
			continue
		}
		for _, o := range webOrigins(c) {
			if src, ok := web.CSPSource(o); ok && !slices.Contains(srcs, src) {
				srcs = append(srcs, src)
			}
		}
	}
	return strings.Join(srcs, " "), nil
}

// anyAncestor lets any page frame the third-party cookie check: it tells only
// whether the frame keeps cookies.
func anyAncestor(*http.Request, storage.Realm) (string, error) { return "*", nil }

// registerFramePages adds the session iframe and the third-party cookie check.
func (h *Handler) registerFramePages(mux *http.ServeMux, realm string) {
	mux.HandleFunc("GET "+realm+checkSessionPath, h.withRealm(h.framePage(checkSessionScript, h.clientAncestors)))
	mux.HandleFunc("GET "+realm+thirdPartyStep1, h.withRealm(h.framePage(step1Script, anyAncestor)))
	mux.HandleFunc("GET "+realm+thirdPartyStep2, h.withRealm(h.framePage(step2Script, anyAncestor)))
}
