package bff

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

const loginTTL = 10 * time.Minute

func (h *Handler) sessionCookieName() string {
	if h.secure {
		return "__Host-bff_session"
	}
	return "bff_session"
}

func (h *Handler) loginCookieName() string {
	if h.secure {
		return "__Host-bff_login"
	}
	return "bff_login"
}

// setCookie writes a host-only cookie (the __Host- prefix needs Secure, Path=/, no Domain).
func (h *Handler) setCookie(w http.ResponseWriter, name, value string, maxAge int, same http.SameSite) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: h.secure, SameSite: same})
}

func (h *Handler) redirectURI() string { return h.external.String() + "/bff/callback" }

// safeReturnTo accepts a same-origin path only: "/" followed by anything but a second
// slash or backslash (which browsers read as another host).
func safeReturnTo(s string) (string, bool) {
	if s == "" {
		return "/", true
	}
	if !strings.HasPrefix(s, "/") || strings.HasPrefix(s, "//") || strings.HasPrefix(s, "/\\") ||
		strings.ContainsAny(s, "\r\n\t\x00") || len(s) > 2048 {
		return "", false
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return "", false
	}
	return s, true
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	ret, ok := safeReturnTo(r.URL.Query().Get("returnTo"))
	if !ok {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": "returnTo must be a path on this site"})
		return
	}
	st := loginState{State: randomText(32), Nonce: randomText(32), Verifier: randomText(32), ReturnTo: ret,
		Expires: h.now().Add(loginTTL).Unix()}
	params := url.Values{
		"response_type":         {"code"},
		"client_id":             {h.cfg.ClientID},
		"redirect_uri":          {h.redirectURI()},
		"scope":                 {strings.Join(h.cfg.Scopes, " ")},
		"state":                 {st.State},
		"nonce":                 {st.Nonce},
		"code_challenge":        {pkceChallenge(st.Verifier)},
		"code_challenge_method": {"S256"},
	}
	target := h.meta.AuthorizationEndpoint
	if h.meta.PAREndpoint != "" {
		// RFC 9126: push the parameters, send the browser only the request_uri.
		tr, err := h.post(r.Context(), h.meta.PAREndpoint, params, nil)
		if err != nil || tr.RequestURI == "" {
			h.log.Error("bff: pushed authorization request failed", "err", err)
			writeJSON(w, http.StatusBadGateway, map[string]string{"error": "temporarily_unavailable"})
			return
		}
		params = url.Values{"client_id": {h.cfg.ClientID}, "request_uri": {tr.RequestURI}}
	}
	sealed, err := h.sealString("login", st)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "server_error"})
		return
	}
	// Lax: the cookie must come back on the top-level redirect from the issuer.
	h.setCookie(w, h.loginCookieName(), sealed, int(loginTTL/time.Second), http.SameSiteLaxMode)
	sep := "?"
	if strings.Contains(target, "?") {
		sep = "&"
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, target+sep+params.Encode(), http.StatusFound)
}

func (h *Handler) callback(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, code string, err error) {
		h.log.Warn("bff: sign-in callback refused", "error_code", code, "err", err)
		h.setCookie(w, h.loginCookieName(), "", -1, http.SameSiteLaxMode)
		writeJSON(w, status, map[string]string{"error": code})
	}
	c, err := r.Cookie(h.loginCookieName())
	var st loginState
	if err != nil || h.openString("login", c.Value, &st) != nil || h.now().Unix() > st.Expires {
		fail(http.StatusBadRequest, "invalid_request", errors.New("no valid login cookie"))
		return
	}
	q := r.URL.Query()
	if !equal(q.Get("state"), st.State) {
		fail(http.StatusBadRequest, "invalid_request", errors.New("state mismatch"))
		return
	}
	// RFC 9207 §2.4: when the issuer names itself, it must be ours.
	if iss := q.Get("iss"); iss != "" && iss != h.cfg.Issuer {
		fail(http.StatusBadRequest, "invalid_request", errors.New("iss mismatch"))
		return
	}
	if e := q.Get("error"); e != "" {
		fail(http.StatusBadRequest, "access_denied", errors.New("issuer answered an error"))
		return
	}
	var key *jose.JSONWebKey
	if h.dpopEnabled() {
		if key, err = newDPoPKey(); err != nil {
			fail(http.StatusInternalServerError, "server_error", err)
			return
		}
	}
	tr, err := h.post(r.Context(), h.meta.TokenEndpoint, url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {q.Get("code")},
		"redirect_uri":  {h.redirectURI()},
		"code_verifier": {st.Verifier},
	}, key)
	if err != nil || tr.AccessToken == "" || tr.IDToken == "" {
		fail(http.StatusBadGateway, "invalid_grant", err)
		return
	}
	claims, err := h.verifyIDToken(r.Context(), tr.IDToken, st.Nonce)
	if err != nil {
		fail(http.StatusBadGateway, "invalid_id_token", err)
		return
	}
	sess := sealedSession{AccessToken: tr.AccessToken, TokenType: tr.TokenType,
		AccessExpiresAt: expiry(h.now(), tr.ExpiresIn), RefreshToken: tr.RefreshToken, IDToken: tr.IDToken, Claims: claims}
	if key != nil {
		if sess.DPoPKey, err = key.MarshalJSON(); err != nil {
			fail(http.StatusInternalServerError, "server_error", err)
			return
		}
	}
	value := randomText(32) // 256 bits
	id := sessionID(value)
	sealed, err := h.seal(id, sess)
	if err != nil {
		fail(http.StatusInternalServerError, "server_error", err)
		return
	}
	sid, _ := claims["sid"].(string)
	sub, _ := claims["sub"].(string)
	expires := h.now().Add(h.cfg.SessionLifetime)
	if err := h.store.Put(r.Context(), SessionRecord{ID: id, SID: sid, Subject: sub, Sealed: sealed, ExpiresAt: expires}); err != nil {
		fail(http.StatusServiceUnavailable, "temporarily_unavailable", err)
		return
	}
	h.setCookie(w, h.loginCookieName(), "", -1, http.SameSiteLaxMode)
	h.setCookie(w, h.sessionCookieName(), value, int(h.cfg.SessionLifetime/time.Second), http.SameSiteStrictMode)
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, st.ReturnTo, http.StatusSeeOther)
}

// current returns the browser's session record and its opened contents.
func (h *Handler) current(ctx context.Context, r *http.Request) (SessionRecord, sealedSession, error) {
	c, err := r.Cookie(h.sessionCookieName())
	if err != nil || len(c.Value) != 43 {
		return SessionRecord{}, sealedSession{}, ErrSessionNotFound
	}
	rec, err := h.store.Get(ctx, sessionID(c.Value), h.now())
	if err != nil {
		return SessionRecord{}, sealedSession{}, err
	}
	var s sealedSession
	if err := h.open(rec.ID, rec.Sealed, &s); err != nil {
		return SessionRecord{}, sealedSession{}, err
	}
	return rec, s, nil
}

func (h *Handler) user(w http.ResponseWriter, r *http.Request) {
	_, s, err := h.current(r.Context(), r)
	if err != nil {
		h.signedOut(w, err)
		return
	}
	out := map[string]any{}
	for k, v := range s.Claims {
		switch k {
		case "nonce", "at_hash", "sid":
		default:
			out[k] = v
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) session(w http.ResponseWriter, r *http.Request) {
	rec, _, err := h.current(r.Context(), r)
	if err != nil {
		if !errors.Is(err, ErrSessionNotFound) && !errors.Is(err, errSeal) {
			h.signedOut(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"signed_in": false})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"signed_in": true, "expires_at": rec.ExpiresAt.Unix()})
}

// signedOut answers 401 for no session, 503 when the store failed.
func (h *Handler) signedOut(w http.ResponseWriter, err error) {
	if errors.Is(err, ErrSessionNotFound) || errors.Is(err, errSeal) {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "not_signed_in"})
		return
	}
	h.log.Error("bff: session store", "err", err)
	w.Header().Set("Retry-After", "1")
	writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "temporarily_unavailable"})
}

// csrf: a custom header a cross-site page cannot send without a CORS preflight we
// never answer, plus Fetch Metadata and Origin when the browser sends them.
func (h *Handler) csrf(r *http.Request) bool {
	if r.Header.Get("X-CSRF") != "1" {
		return false
	}
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
		return false
	}
	if o := r.Header.Get("Origin"); o != "" && o != h.external.Scheme+"://"+h.external.Host {
		return false
	}
	return true
}

func forbidden(w http.ResponseWriter) {
	writeJSON(w, http.StatusForbidden, map[string]string{"error": "forbidden", "error_description": "cross-site request refused"})
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	if !h.csrf(r) {
		forbidden(w)
		return
	}
	rec, s, err := h.current(r.Context(), r)
	h.setCookie(w, h.sessionCookieName(), "", -1, http.SameSiteStrictMode)
	if err == nil {
		if err := h.store.Delete(r.Context(), rec.ID); err != nil {
			h.signedOut(w, err)
			return
		}
		h.endAtIssuer(r.Context(), s)
	}
	writeJSON(w, http.StatusOK, map[string]bool{"logout": true})
}

// endAtIssuer revokes the refresh token (RFC 7009) and ends the issuer session with
// RP-initiated logout done server side, so the ID token never travels via the browser.
func (h *Handler) endAtIssuer(ctx context.Context, s sealedSession) {
	if h.meta.RevocationEndpoint != "" && s.RefreshToken != "" {
		if _, err := h.post(ctx, h.meta.RevocationEndpoint, url.Values{"token": {s.RefreshToken}, "token_type_hint": {"refresh_token"}}, nil); err != nil {
			h.log.Warn("bff: revoking the refresh token failed", "err", err)
		}
	}
	if h.meta.EndSessionEndpoint != "" && s.IDToken != "" {
		if _, err := h.post(ctx, h.meta.EndSessionEndpoint, url.Values{"id_token_hint": {s.IDToken}, "client_id": {h.cfg.ClientID}}, nil); err != nil {
			var oe *oauthError
			if !errors.As(err, &oe) || oe.Status >= 400 {
				h.log.Warn("bff: ending the issuer session failed", "err", err)
			}
		}
	}
}

func (h *Handler) backchannelLogout(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
		return
	}
	sid, sub, err := h.verifyLogoutToken(r.Context(), r.PostForm.Get("logout_token"))
	if err != nil {
		h.log.Warn("bff: logout token refused", "err", err)
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
		return
	}
	var n int
	if sid != "" {
		n, err = h.store.DeleteByIssuerSession(r.Context(), sid)
	} else {
		n, err = h.store.DeleteBySubject(r.Context(), sub)
	}
	if err != nil {
		h.log.Error("bff: back-channel logout", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "temporarily_unavailable"})
		return
	}
	h.log.Info("bff: back-channel logout", "sessions", n)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}
