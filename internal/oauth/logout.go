package oauth

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/latchkey/latchkey/internal/ident"
	"github.com/latchkey/latchkey/internal/protocol"
	"github.com/latchkey/latchkey/internal/token"
	"github.com/latchkey/latchkey/internal/web"
	"github.com/latchkey/latchkey/storage"
)

// Paths of RP-initiated logout and the account screen under a realm.
const (
	logoutPath            = "/protocol/openid-connect/logout"
	logoutConfirmPath     = "/protocol/openid-connect/logout/confirm"
	accountPath           = "/account"
	accountLogoutPath     = "/account/logout"
	accountEndPath        = "/account/sessions/end"
	accountEverywherePath = "/account/logout-everywhere"
)

// logoutRequest is a validated logout request, carried sealed through the
// confirmation form.
type logoutRequest struct {
	RedirectURI string `json:"r,omitempty"`
	State       string `json:"st,omitempty"`
	CSRF        string `json:"x"`
	Expires     int64  `json:"e"`
}

// logout serves OpenID Connect RP-initiated logout (GET or POST). With a valid
// id_token_hint for the browser's session (or no session at all) it signs out at
// once; otherwise it asks the user first, so a link on another site cannot sign
// them out.
func (h *Handler) logout(w http.ResponseWriter, r *http.Request, realm storage.Realm) {
	params, err := authParams(w, r)
	if err != nil {
		h.errorPage(w, r, realm, http.StatusBadRequest, "Invalid request", "The sign-out request could not be read.")
		return
	}
	ctx := r.Context()
	hint, hintOK := token.IDTokenClaims{}, false
	if v := params.Get("id_token_hint"); v != "" {
		if ident.Token(v) == nil {
			hint, hintOK = h.tokens.VerifyIDTokenHint(ctx, realm, v)
		}
		if !hintOK {
			h.errorPage(w, r, realm, http.StatusBadRequest, "Invalid request", "The sign-out request carried an ID token this service did not issue.")
			return
		}
	}
	clientID := params.Get("client_id")
	if hintOK {
		if clientID != "" && !slices.Contains(hint.Audience, clientID) {
			h.errorPage(w, r, realm, http.StatusBadRequest, "Invalid request", "The sign-out request names two different applications.")
			return
		}
		clientID = hint.Audience[0]
	}
	req := logoutRequest{State: params.Get("state")}
	if ru := params.Get("post_logout_redirect_uri"); ru != "" {
		client, err := h.getClient(ctx, realm.Name, clientID)
		if err != nil || !slices.Contains(client.PostLogoutRedirectURIs, ru) {
			if err != nil && !errors.Is(err, storage.ErrNotFound) {
				h.writeError(w, r, err)
				return
			}
			h.errorPage(w, r, realm, http.StatusBadRequest, "Invalid redirect", "The application asked to send you to an address it has not registered. You are still signed in.")
			return
		}
		req.RedirectURI = ru
	}

	sess, _, live, err := h.currentSession(ctx, r, realm.Name)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	switch {
	case hintOK && (!live || hint.SessionID == sess.ID) && hint.SessionID != "":
		// The application proved which session it means: end that one.
		s, err := h.store.GetSession(ctx, hint.SessionID)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			h.writeError(w, r, err) // never "signed out" while the session may live on
			return
		}
		if err == nil && s.Realm == realm.Name && s.UserID == hint.Subject {
			if err := h.endSession(ctx, w, r, realm, s, "logout"); err != nil {
				h.writeError(w, r, err)
				return
			}
		}
		h.loggedOut(w, r, realm, req)
	case !live:
		h.setCookie(w, realm.Name, sessionCookie, "", -1)
		h.setBrowserState(w, realm.Name, "")
		h.loggedOut(w, r, realm, req)
	default:
		req.CSRF = h.csrfToken(w, r, realm.Name)
		req.Expires = h.now().Add(formTTL).Unix()
		h.pages.Logout(w, http.StatusOK, web.LogoutPage{
			Common: h.common(realm, origin(req.RedirectURI)),
			Action: h.realmPath(realm.Name) + strings.TrimPrefix(logoutConfirmPath, "/"),
			Hidden: map[string]string{"request": h.box.seal("logout", req)},
		})
	}
}

// logoutConfirm handles the "Sign out?" form.
func (h *Handler) logoutConfirm(w http.ResponseWriter, r *http.Request, realm storage.Realm) {
	form, err := parseForm(w, r)
	var req logoutRequest
	if err != nil || h.box.open("logout", form.Get("request"), &req) != nil || h.now().Unix() > req.Expires {
		h.errorPage(w, r, realm, http.StatusBadRequest, "This page has expired", "Nothing was changed.")
		return
	}
	if !csrfOK(r, req.CSRF) {
		h.errorPage(w, r, realm, http.StatusForbidden, "Request refused", "This form was not sent from this sign-in page. Nothing was changed.")
		return
	}
	if sess, _, live, err := h.currentSession(r.Context(), r, realm.Name); err != nil {
		h.writeError(w, r, err)
		return
	} else if live {
		if err := h.endSession(r.Context(), w, r, realm, sess, "logout"); err != nil {
			h.writeError(w, r, err)
			return
		}
	}
	h.loggedOut(w, r, realm, req)
}

// loggedOut finishes a logout: back to the application when it registered where, or
// a plain page saying so.
func (h *Handler) loggedOut(w http.ResponseWriter, r *http.Request, realm storage.Realm, req logoutRequest) {
	if req.RedirectURI != "" {
		u, err := url.Parse(req.RedirectURI)
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		if req.State != "" {
			q := u.Query()
			q.Set("state", req.State)
			u.RawQuery = q.Encode()
		}
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, u.String(), http.StatusSeeOther)
		return
	}
	h.pages.Message(w, http.StatusOK, web.MessagePage{Common: h.common(realm), Title: "You are signed out",
		Message: "You have been signed out of " + h.common(realm).RealmName + "."})
}

// account shows who is signed in, their sessions and apps, and buttons to end one,
// to sign out, and to sign out everywhere.
func (h *Handler) account(w http.ResponseWriter, r *http.Request, realm storage.Realm) {
	if wantsAccountAPI(r) {
		h.corsRealm(h.accountAPI)(w, r, realm)
		return
	}
	ctx := r.Context()
	sess, user, live, err := h.currentSession(ctx, r, realm.Name)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if !live {
		h.pages.Message(w, http.StatusOK, web.MessagePage{Common: h.common(realm), Title: "You are not signed in",
			Message: "Sign in through one of your applications to see your account here."})
		return
	}
	families, err := h.store.ListUserFamilies(ctx, realm.Name, user.ID, h.now())
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	names := map[string]string{}
	var apps []web.App
	for _, f := range families {
		if _, seen := names[f.ClientID]; !seen {
			names[f.ClientID] = f.ClientID
			if c, err := h.store.GetClient(ctx, realm.Name, f.ClientID); err == nil {
				names[f.ClientID] = clientName(c)
			}
		}
		// The browser that signed in names the device better than whoever refreshed last
		// (for a web app, its own server).
		device := f.UserAgent
		if f.SessionID != "" {
			if bs, err := h.store.GetSession(ctx, f.SessionID); err == nil && bs.UserAgent != "" {
				device = bs.UserAgent
			}
		}
		if device == "" {
			device = "Unknown device"
		}
		apps = append(apps, web.App{ID: f.ID, Client: names[f.ClientID], Device: device,
			Created: f.CreatedAt.Format("2 Jan 2006 15:04 MST"), LastUsed: f.LastUsedAt.Format("2 Jan 2006 15:04 MST"),
			Current: f.SessionID == sess.ID})
	}
	csrf := h.csrfToken(w, r, realm.Name)
	path := h.realmPath(realm.Name)
	h.pages.Account(w, http.StatusOK, web.AccountPage{
		Common: h.common(realm), Username: user.Username, Email: user.Email, Name: user.Name, Apps: apps,
		EndAction:        path + strings.TrimPrefix(accountEndPath, "/"),
		LogoutAction:     path + strings.TrimPrefix(accountLogoutPath, "/"),
		EverywhereAction: path + strings.TrimPrefix(accountEverywherePath, "/"),
		Hidden:           map[string]string{"request": h.box.seal("account", logoutRequest{CSRF: csrf, Expires: h.now().Add(formTTL).Unix()})},
	})
}

// accountForm checks a POST from the account page: its sealed state, the CSRF
// cookie and a live session. It answers the refusal itself.
func (h *Handler) accountForm(w http.ResponseWriter, r *http.Request, realm storage.Realm) (url.Values, storage.Session, storage.User, bool) {
	form, err := parseForm(w, r)
	var req logoutRequest
	if err != nil || h.box.open("account", form.Get("request"), &req) != nil || h.now().Unix() > req.Expires || !csrfOK(r, req.CSRF) {
		h.errorPage(w, r, realm, http.StatusForbidden, "Request refused", "Nothing was changed. Reload your account page and try again.")
		return nil, storage.Session{}, storage.User{}, false
	}
	sess, user, live, err := h.currentSession(r.Context(), r, realm.Name)
	if err != nil {
		h.writeError(w, r, err)
		return nil, sess, user, false
	}
	if !live {
		h.loggedOut(w, r, realm, logoutRequest{})
		return nil, sess, user, false
	}
	return form, sess, user, true
}

// accountLogout handles the account page's sign-out button.
func (h *Handler) accountLogout(w http.ResponseWriter, r *http.Request, realm storage.Realm) {
	_, sess, _, ok := h.accountForm(w, r, realm)
	if !ok {
		return
	}
	if err := h.endSession(r.Context(), w, r, realm, sess, "logout"); err != nil {
		h.writeError(w, r, err)
		return
	}
	h.loggedOut(w, r, realm, logoutRequest{})
}

// accountEnd ends one of the user's app sessions, then shows the account page again.
func (h *Handler) accountEnd(w http.ResponseWriter, r *http.Request, realm storage.Realm) {
	form, _, user, ok := h.accountForm(w, r, realm)
	if !ok {
		return
	}
	err := token.EndFamily(r.Context(), h.store, realm.Name, user.ID, form.Get("family"), h.now(), h.caller(r))
	if err != nil && !errors.Is(err, token.ErrNotYours) {
		h.writeError(w, r, err)
		return
	}
	http.Redirect(w, r, h.realmPath(realm.Name)+strings.TrimPrefix(accountPath, "/"), http.StatusSeeOther)
}

// accountEverywhere signs the user out of every browser and app.
func (h *Handler) accountEverywhere(w http.ResponseWriter, r *http.Request, realm storage.Realm) {
	_, _, user, ok := h.accountForm(w, r, realm)
	if !ok {
		return
	}
	if err := token.LogoutEverywhere(r.Context(), h.store, realm.Name, user.ID, h.now(), h.caller(r)); err != nil {
		h.writeError(w, r, err)
		return
	}
	h.setCookie(w, realm.Name, sessionCookie, "", -1)
	h.setBrowserState(w, realm.Name, "")
	h.pages.Message(w, http.StatusOK, web.MessagePage{Common: h.common(realm), Title: "You are signed out everywhere",
		Message: "Every browser and app signed in as you has been signed out."})
}

// userinfo serves the OIDC UserInfo endpoint (Core §5.3) for a Bearer access token
// in the Authorization header or, for POST, the form body (RFC 6750 §2.1, §2.2);
// never in the URL. A DPoP-bound token comes with the DPoP scheme and a proof
// (RFC 9449 §7; dpopUser).
func (h *Handler) userinfo(w http.ResponseWriter, r *http.Request, realm storage.Realm) {
	if r.URL.Query().Has("access_token") {
		protocol.New(InvalidRequest, "access tokens must not be sent in the URL").WriteBearer(w, h.tokens.Issuer(realm.Name))
		return
	}
	if tok, ok := authCredentials(r.Header.Get("Authorization"), "DPoP"); ok {
		if user, scopes, ok := h.dpopUser(w, r, realm, tok, h.tokens.Issuer(realm.Name)+userinfoPath); ok {
			writeJSON(w, http.StatusOK, token.UserClaims(user, scopes))
		}
		return
	}
	tok, found := authCredentials(r.Header.Get("Authorization"), "Bearer")
	if !found && r.Method == http.MethodPost && r.Header.Get("Authorization") == "" {
		if form, err := parseForm(w, r); err == nil {
			tok, found = form.Get("access_token"), form.Has("access_token")
		}
	}
	user, scopes, ok := h.bearerUser(w, r, realm, tok, found)
	if ok {
		writeJSON(w, http.StatusOK, token.UserClaims(user, scopes))
	}
}

// bearerUser checks an access token presented as a Bearer credential and returns
// its user and scopes, or answers the refusal itself (RFC 6750 §3).
func (h *Handler) bearerUser(w http.ResponseWriter, r *http.Request, realm storage.Realm, tok string, found bool) (storage.User, []string, bool) {
	tok = strings.TrimSpace(tok)
	if !found || tok == "" {
		protocol.NoToken().WriteBearer(w, h.tokens.Issuer(realm.Name))
		return storage.User{}, nil, false
	}
	if ident.Token(tok) != nil {
		protocol.New(protocol.InvalidToken, "the access token is not valid").WriteBearer(w, h.tokens.Issuer(realm.Name))
		return storage.User{}, nil, false
	}
	user, scopes, err := h.tokens.TokenUser(r.Context(), realm, tok)
	if err == nil {
		return user, scopes, true
	}
	// token.ErrInvalidToken and ErrInsufficientScope become their RFC 6750 codes in
	// wireError; anything else is no verdict on the token.
	if e := wireError(err); e.Code == protocol.InvalidToken || e.Code == protocol.InsufficientScope {
		e.WriteBearer(w, h.tokens.Issuer(realm.Name))
	} else {
		h.writeError(w, r, err)
	}
	return storage.User{}, nil, false
}
