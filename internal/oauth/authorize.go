package oauth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/latchkey/latchkey/internal/grants"
	"github.com/latchkey/latchkey/internal/ident"
	"github.com/latchkey/latchkey/internal/password"
	"github.com/latchkey/latchkey/internal/protocol"
	"github.com/latchkey/latchkey/internal/token"
	"github.com/latchkey/latchkey/internal/web"
	"github.com/latchkey/latchkey/storage"
)

// Paths of the login and consent forms under a realm.
const (
	authPath    = "/protocol/openid-connect/auth"
	loginPath   = "/login-actions/authenticate"
	consentPath = "/login-actions/consent"
)

// authRequest is a validated authorization request, carried sealed through the
// login and consent forms.
type authRequest struct {
	ClientID      string   `json:"c"`
	RedirectURI   string   `json:"r"`  // where the response goes
	RedirectGiven bool     `json:"rg"` // the request named it (so the token request must too)
	Scopes        []string `json:"s"`
	State         string   `json:"st,omitempty"`
	ResponseMode  string   `json:"rm,omitempty"` // "" (query), fragment or form_post
	Nonce         string   `json:"n,omitempty"`
	CodeChallenge string   `json:"cc,omitempty"`
	Prompt        []string `json:"p,omitempty"`
	MaxAge        int64    `json:"ma"` // -1: none given
	LoginHint     string   `json:"lh,omitempty"`
	// Pushed: the request came through the PAR endpoint (RFC 9126), which a client
	// may be required to use.
	Pushed  bool   `json:"pu,omitempty"`
	CSRF    string `json:"x"`
	Expires int64  `json:"e"`
}

func (a authRequest) prompts(p string) bool { return slices.Contains(a.Prompt, p) }

// Response modes (OAuth 2.0 Multiple Response Type Encoding Practices §2.1, OAuth
// 2.0 Form Post Response Mode §2). query, the default for response_type=code, is
// kept as "" in an authRequest.
const (
	modeQuery    = "query"
	modeFragment = "fragment"
	modeFormPost = "form_post"
)

// responseModes are the modes served, as discovery lists them.
var responseModes = []string{modeQuery, modeFragment, modeFormPost}

// challengeSyntax is an S256 code_challenge: 43 base64url characters.
var challengeSyntax = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

// authorize serves the authorization endpoint (GET, or POST with a form body).
func (h *Handler) authorize(w http.ResponseWriter, r *http.Request, realm storage.Realm) {
	query, err := authParams(w, r)
	if err != nil {
		h.errorPage(w, r, realm, http.StatusBadRequest, "Invalid request", "The application sent a request Latchkey cannot read.")
		return
	}
	// The client and its redirect URI first: until both check out, errors are shown
	// here and never sent anywhere.
	client, err := h.getClient(r.Context(), realm.Name, query.Get("client_id"))
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		h.writeError(w, r, err)
		return
	}
	if err != nil || !authClientOK(client) {
		h.refuseAuthorization(w, r, realm, authRequest{}, errUnknownApp)
		return
	}
	// A pushed request (RFC 9126) or a request object (RFC 9101) stands in for
	// the query's parameters.
	params, pushed, err := h.requestParams(r, realm, client, query)
	var pe *pageError
	var e *protocol.Error
	if err != nil && !errors.As(err, &pe) && !errors.As(err, &e) {
		h.writeError(w, r, err) // the store's, say: nothing the client did
		return
	}
	if err != nil {
		// The request's own redirect URI is not known yet: the error goes to the
		// one the query names, if the client registered it, else to the page.
		fallback, ferr := checkRedirect(client, query)
		if ferr != nil {
			err = ferr
		}
		h.refuseAuthorization(w, r, realm, fallback, err)
		return
	}
	req, err := h.checkAuthRequest(client, params)
	if err != nil {
		h.refuseAuthorization(w, r, realm, req, err)
		return
	}
	req.Pushed = pushed
	req.CSRF = h.csrfToken(w, r, realm.Name)
	req.Expires = h.now().Add(formTTL).Unix()
	h.continueAuthorization(w, r, realm, client, req, nil)
}

// pageError refuses an authorization request on the error page, as its redirect
// URI cannot be trusted (yet). The PAR endpoint answers it as invalid_request with
// description.
type pageError struct{ title, message, description string }

func (e *pageError) Error() string { return e.description }

// The refusals shown on the error page.
var (
	errUnknownApp = &pageError{"Unknown application",
		"The application that sent you here is not registered with this sign-in service.",
		"unknown client, or one that may not use the authorization code grant"}
	errBadRedirect = &pageError{"Invalid redirect",
		"The application asked to send you to an address it has not registered. Nothing was sent.",
		"redirect_uri is not registered for the client"}
	// RFC 6749 Appendix A.5: state is 1*VSCHAR. One with control or non-ASCII
	// characters cannot come back unchanged (a form_post page would mangle a
	// NUL), so it is shown here rather than sent back altered.
	errBadState = &pageError{"Invalid request",
		"The application sent a malformed state parameter. Nothing was sent.",
		"state must be VSCHARs (RFC 6749 Appendix A.5)"}
)

// refuseAuthorization answers a refused authorization request: a pageError on the
// error page, a protocol error at req's (registered) redirect URI.
func (h *Handler) refuseAuthorization(w http.ResponseWriter, r *http.Request, realm storage.Realm, req authRequest, err error) {
	var pe *pageError
	if errors.As(err, &pe) {
		h.errorPage(w, r, realm, http.StatusBadRequest, pe.title, pe.message)
		return
	}
	h.redirectError(w, r, realm, req, err)
}

// authClientOK reports whether the client may start an authorization request.
func authClientOK(c storage.Client) bool {
	return !c.Disabled && slices.Contains(c.GrantTypes, "authorization_code")
}

// checkAuthRequest validates an authorization request's parameters for the
// client: the one check of the authorization endpoint and of the PAR endpoint
// (RFC 9126 §2.1). A *pageError means the redirect URI cannot be trusted; any
// other error goes to the returned request's redirect URI.
func (h *Handler) checkAuthRequest(client storage.Client, params url.Values) (authRequest, error) {
	if !authClientOK(client) {
		return authRequest{}, errUnknownApp
	}
	req, err := checkRedirect(client, params)
	if err != nil {
		return req, err
	}
	if err := h.validateAuthRequest(&req, params, client); err != nil {
		return req, err
	}
	return req, nil
}

// checkRedirect starts a request from its redirect URI, which must be exactly one
// the client registered (or none, when the client has only one), and its state.
func checkRedirect(client storage.Client, params url.Values) (authRequest, error) {
	req := authRequest{ClientID: client.ID, MaxAge: -1}
	switch ru := params.Get("redirect_uri"); {
	case ru == "" && len(client.RedirectURIs) == 1:
		req.RedirectURI = client.RedirectURIs[0]
	case slices.Contains(client.RedirectURIs, ru):
		req.RedirectURI, req.RedirectGiven = ru, true
	default:
		return authRequest{}, errBadRedirect
	}
	req.State = params.Get("state")
	if !isVSChars(req.State) {
		return authRequest{}, errBadState
	}
	return req, nil
}

// isVSChars reports whether s is empty or only VSCHARs (%x20-7E, RFC 6749 Appendix A).
func isVSChars(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// authParams reads the request's parameters, refusing any given twice (RFC 6749 §3.1).
func authParams(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	if r.Method == http.MethodPost {
		return parseForm(w, r)
	}
	if r.Method != http.MethodGet {
		return nil, errors.New("method")
	}
	params, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, err
	}
	for k, v := range params {
		if len(v) > 1 {
			return nil, errors.New("repeated parameter " + k)
		}
	}
	return params, nil
}

func (h *Handler) validateAuthRequest(req *authRequest, p url.Values, client storage.Client) error {
	// The response mode first, so that the errors below go back the way the client
	// asked; an unknown one is refused in the default mode (query).
	switch rm := p.Get("response_mode"); rm {
	case "", modeQuery:
	case modeFragment:
		req.ResponseMode = rm
	case modeFormPost:
		// The form is POSTed by the browser: only to a web address.
		if u, err := url.Parse(req.RedirectURI); err != nil || (u.Scheme != "https" && u.Scheme != "http") {
			return protocol.New(protocol.InvalidRequest, "response_mode=form_post needs an http or https redirect_uri")
		}
		req.ResponseMode = rm
	default:
		return protocol.New(protocol.InvalidRequest, "response_mode must be query, fragment or form_post")
	}
	switch rt := p.Get("response_type"); {
	case rt == "":
		return protocol.New(protocol.InvalidRequest, "response_type is required")
	case rt != "code":
		return protocol.New(protocol.UnsupportedResponseType, "only response_type=code is supported")
	}
	scopes, err := grants.Scopes(p.Get("scope"), client)
	if err != nil {
		return err // an *Error, sent to the redirect URI
	}
	if len(scopes) == 1 && scopes[0] == "openid" {
		// As Keycloak: a request for openid alone gets the client's default scopes
		// (profile email roles unless configured), so keycloak-js, which asks for
		// just openid, finds the claims apps read.
		for _, d := range client.EffectiveDefaultScopes() {
			if !slices.Contains(scopes, d) {
				scopes = append(scopes, d)
			}
		}
	}
	req.Scopes = scopes

	// PKCE (RFC 7636): S256 only; required for public clients and, unless a
	// confidential client opts out, for everyone.
	challenge, method := p.Get("code_challenge"), p.Get("code_challenge_method")
	switch {
	case challenge == "" && method != "":
		return protocol.New(protocol.InvalidRequest, "code_challenge_method without code_challenge")
	case challenge != "" && method != "S256":
		return protocol.New(protocol.InvalidRequest, "code_challenge_method must be S256")
	case challenge != "" && !challengeSyntax.MatchString(challenge):
		return protocol.New(protocol.InvalidRequest, "malformed code_challenge")
	case challenge == "" && (client.Public() || !client.PKCEOptional):
		return protocol.New(protocol.InvalidRequest, "PKCE is required: send code_challenge with code_challenge_method=S256")
	}
	req.CodeChallenge = challenge
	req.Nonce = p.Get("nonce")
	req.LoginHint = p.Get("login_hint")

	for _, pr := range strings.Fields(p.Get("prompt")) {
		switch pr {
		case "none", "login", "consent", "select_account":
			req.Prompt = append(req.Prompt, pr)
		default:
			return protocol.New(protocol.InvalidRequest, "unknown prompt value "+pr)
		}
	}
	if req.prompts("none") && len(req.Prompt) > 1 {
		return protocol.New(protocol.InvalidRequest, "prompt=none cannot be combined with other values")
	}
	if ma := p.Get("max_age"); ma != "" {
		n, err := strconv.ParseInt(ma, 10, 64)
		if err != nil || n < 0 {
			return protocol.New(protocol.InvalidRequest, "max_age must be a non-negative integer")
		}
		req.MaxAge = n
	}
	return nil
}

// signIn is a session the user has just proved their password for.
type signIn struct {
	session storage.Session
	user    storage.User
}

// continueAuthorization takes a validated request as far as it can go: to the login
// page, the consent page, or the client with a code. fresh is set right after the
// user typed their password, which satisfies prompt=login and max_age.
func (h *Handler) continueAuthorization(w http.ResponseWriter, r *http.Request, realm storage.Realm, client storage.Client, req authRequest, fresh *signIn) {
	ctx := r.Context()
	var sess storage.Session
	var user storage.User
	ok := fresh != nil
	if fresh != nil {
		sess, user = fresh.session, fresh.user
	} else {
		var err error
		if sess, user, ok, err = h.currentSession(ctx, r, realm.Name); err != nil {
			h.writeError(w, r, err)
			return
		}
	}
	needLogin := !ok
	if ok && fresh == nil {
		if req.prompts("login") {
			needLogin = true
		}
		if req.MaxAge >= 0 && h.now().Sub(sess.AuthTime) > time.Duration(req.MaxAge)*time.Second {
			needLogin = true
		}
	}
	if needLogin {
		if req.prompts("none") {
			h.redirectError(w, r, realm, req, protocol.New(protocol.LoginRequired, "the user must sign in"))
			return
		}
		h.loginPage(w, r, realm, client, req, http.StatusOK, req.LoginHint, "", 0)
		return
	}

	if client.ThirdParty {
		consent, err := h.store.GetConsent(ctx, realm.Name, user.ID, client.ID)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			h.writeError(w, r, err)
			return
		}
		covered := err == nil && !slices.ContainsFunc(req.Scopes, func(s string) bool { return !slices.Contains(consent.Scopes, s) })
		if !covered || req.prompts("consent") {
			if req.prompts("none") {
				h.redirectError(w, r, realm, req, protocol.New(protocol.ConsentRequired, "the user must approve this application"))
				return
			}
			h.consentPage(w, r, realm, client, req)
			return
		}
	}
	h.issueCode(w, r, realm, req, user, sess)
}

// issueCode ends the authorization with a code sent to the client (RFC 6749
// §4.1.2), with iss (RFC 9207) and the state.
func (h *Handler) issueCode(w http.ResponseWriter, r *http.Request, realm storage.Realm, req authRequest, user storage.User, sess storage.Session) {
	given := ""
	if req.RedirectGiven {
		given = req.RedirectURI
	}
	code, err := h.tokens.IssueCode(r.Context(), token.CodeRequest{
		Realm: realm.Name, ClientID: req.ClientID, UserID: user.ID, SessionID: sess.ID, RedirectURI: given,
		Scopes: req.Scopes, Nonce: req.Nonce, CodeChallenge: req.CodeChallenge, AuthTime: sess.AuthTime,
	}, h.caller(r))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	// session_state: OIDC Session Management 1.0 §3, checked by the iframe at checkSessionPath
	// against the browser state, set again here for sessions older than the cookie.
	h.setBrowserState(w, realm.Name, sess.ID)
	h.respond(w, r, realm, req, url.Values{"code": {code}, "session_state": {sessionState(req.ClientID, req.RedirectURI, sess.ID)}})
}

// redirectError sends an error to the client's (registered) redirect URI.
func (h *Handler) redirectError(w http.ResponseWriter, r *http.Request, realm storage.Realm, req authRequest, err error) {
	var e *protocol.Error
	if !errors.As(err, &e) {
		h.writeError(w, r, err)
		return
	}
	h.respond(w, r, realm, req, e.RedirectParams())
}

// respond sends the authorization response (params, with the state and iss, RFC
// 9207) to the request's registered redirect URI in its response mode: added to
// whatever query the URI has, in the fragment, or in a form the browser POSTs
// there. Redirects are 303, which turns a POSTed form into a GET.
func (h *Handler) respond(w http.ResponseWriter, r *http.Request, realm storage.Realm, req authRequest, params url.Values) {
	u, err := url.Parse(req.RedirectURI)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if req.State != "" {
		params.Set("state", req.State)
	}
	params.Set("iss", h.tokens.Issuer(realm.Name))
	if req.ResponseMode == modeFormPost {
		fields := make(map[string]string, len(params))
		for k := range params {
			fields[k] = params.Get(k)
		}
		h.pages.FormPost(w, web.FormPostPage{Common: h.common(realm), Action: req.RedirectURI, Fields: fields})
		return
	}
	var location string
	if req.ResponseMode == modeFragment {
		// Multiple Response Type Encoding Practices §2.1: form-encoded in the
		// fragment. Registered URIs have none of their own (RFC 6749 §3.1.2).
		location = u.String() + "#" + params.Encode()
	} else {
		q := u.Query()
		for k, v := range params {
			q[k] = v
		}
		u.RawQuery = q.Encode()
		location = u.String()
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, location, http.StatusSeeOther)
}

func (h *Handler) common(realm storage.Realm, origins ...string) web.Common {
	name := realm.DisplayName
	if name == "" {
		name = realm.Name
	}
	return web.Common{RealmName: name, FormActionOrigins: origins}
}

// origin returns the scheme://host of a URI, for CSP form-action: after a form is
// posted, the browser is redirected there.
func origin(uri string) string {
	u, err := url.Parse(uri)
	if err != nil || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

func clientName(c storage.Client) string {
	if c.Name != "" {
		return c.Name
	}
	return c.ID
}

func (h *Handler) loginPage(w http.ResponseWriter, r *http.Request, realm storage.Realm, client storage.Client, req authRequest, status int, username, message string, retryAfter time.Duration) {
	if retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(seconds(retryAfter)))
	}
	h.pages.Login(w, status, web.LoginPage{
		Common:     h.common(realm, origin(req.RedirectURI)),
		ClientName: clientName(client),
		Action:     h.realmPath(realm.Name) + strings.TrimPrefix(loginPath, "/"),
		Username:   username,
		Error:      message,
		RetryAfter: seconds(retryAfter),
		Hidden:     map[string]string{"request": h.box.seal("login", req)},
	})
}

// scopeDescriptions say what a client asking for a scope gets, on the consent page.
var scopeDescriptions = map[string]string{
	"openid":         "Know who you are",
	"profile":        "See your name and username",
	"email":          "See your email address",
	"roles":          "See the roles you have",
	"offline_access": "Stay signed in and act for you while you are away",
}

func (h *Handler) consentPage(w http.ResponseWriter, r *http.Request, realm storage.Realm, client storage.Client, req authRequest) {
	var scopes []web.Scope
	for _, s := range req.Scopes {
		d := scopeDescriptions[s]
		if d == "" {
			d = "Use " + s
		}
		scopes = append(scopes, web.Scope{Name: s, Description: d})
	}
	h.pages.Consent(w, http.StatusOK, web.ConsentPage{
		Common:     h.common(realm, origin(req.RedirectURI)),
		ClientName: clientName(client),
		Scopes:     scopes,
		Action:     h.realmPath(realm.Name) + strings.TrimPrefix(consentPath, "/"),
		Hidden:     map[string]string{"request": h.box.seal("consent", req)},
	})
}

func (h *Handler) errorPage(w http.ResponseWriter, r *http.Request, realm storage.Realm, status int, title, message string) {
	h.pages.Error(w, status, web.ErrorPage{Common: h.common(realm), Title: title, Message: message})
}

// openForm reads a POSTed login or consent form and the request it carries, checking
// that it is fresh, came with the browser's CSRF cookie, and still names a
// registered client and redirect URI.
func (h *Handler) openForm(w http.ResponseWriter, r *http.Request, realm storage.Realm, purpose string) (url.Values, authRequest, storage.Client, bool) {
	var req authRequest
	form, err := parseForm(w, r)
	if err != nil {
		h.errorPage(w, r, realm, http.StatusBadRequest, "Invalid request", "The form could not be read.")
		return nil, req, storage.Client{}, false
	}
	if err := h.box.open(purpose, form.Get("request"), &req); err != nil || h.now().Unix() > req.Expires {
		h.errorPage(w, r, realm, http.StatusBadRequest, "This page has expired", "Go back to the application and start signing in again.")
		return nil, req, storage.Client{}, false
	}
	if !csrfOK(r, req.CSRF) {
		h.errorPage(w, r, realm, http.StatusForbidden, "Request refused", "This form was not sent from this sign-in page. Go back to the application and try again.")
		return nil, req, storage.Client{}, false
	}
	client, err := h.getClient(r.Context(), realm.Name, req.ClientID)
	if err != nil || client.Disabled || !slices.Contains(client.RedirectURIs, req.RedirectURI) {
		h.errorPage(w, r, realm, http.StatusBadRequest, "Unknown application", "The application is no longer registered.")
		return nil, req, storage.Client{}, false
	}
	// A client that must push its requests (RFC 9126 §6) may not be driven with a
	// form sealed for a request that was not pushed (one from before the setting).
	if client.RequirePushedAuthorizationRequests && !req.Pushed {
		h.errorPage(w, r, realm, http.StatusBadRequest, errPushedRequired.title, errPushedRequired.message)
		return nil, req, storage.Client{}, false
	}
	return form, req, client, true
}

// newDummyHash makes the hash checked when no user matches, so that a login for an
// unknown user takes as long as one with a wrong password. It is made on first use,
// not at start: argon2id takes 19 MiB for a moment.
func newDummyHash() func() string {
	return sync.OnceValue(func() string {
		h, _ := password.Hash("latchkey-dummy-password", password.Default)
		return h
	})
}

// login handles the login form.
func (h *Handler) login(w http.ResponseWriter, r *http.Request, realm storage.Realm) {
	form, req, client, ok := h.openForm(w, r, realm, "login")
	if !ok {
		return
	}
	in, ok := h.passwordSignIn(w, r, realm, client.ID, form, func(status int, username, message string, wait time.Duration) {
		h.loginPage(w, r, realm, client, req, status, username, message, wait)
	})
	if !ok {
		return
	}
	h.continueAuthorization(w, r, realm, client, req, &in)
}

// passwordSignIn checks a login form's username and password behind the login
// limiter and, when they are right, starts a browser session. It is the one
// sign-in of every page that needs one (authorization, the device page). On a
// refusal it calls retry with the status, the name to prefill, a message and how
// long to wait, and returns ok=false; a store error it writes itself.
func (h *Handler) passwordSignIn(w http.ResponseWriter, r *http.Request, realm storage.Realm, clientID string, form url.Values,
	retry func(status int, username, message string, wait time.Duration)) (signIn, bool) {
	ctx := r.Context()
	name := loginName(form.Get("username"))
	from := h.caller(r)
	user, found, err := h.findUser(ctx, realm.Name, name)
	if err != nil {
		h.writeError(w, r, err)
		return signIn{}, false
	}
	// A user's username and email share one count: the account is the user when
	// the name names one, else the name itself.
	account := h.unknownNameAccount(realm.Name, name)
	if found {
		account = web.UserAccount(realm.Name, user.ID)
	}
	// Admission is decided before the password hash is checked, counting the
	// attempts in flight, so a burst gets no more checks than a sequence.
	attempt, wait, err := h.limiter.Admit(ctx, account, from.IP)
	if err != nil {
		h.writeError(w, r, err)
		return signIn{}, false
	}
	if attempt == nil {
		h.observeLogin("throttled", false)
		retry(http.StatusTooManyRequests, name, "", wait)
		return signIn{}, false
	}
	defer attempt.Release(ctx)
	hash := h.dummyHash()
	if found {
		hash = user.PasswordHash
	}
	match, _ := password.Verify(form.Get("password"), hash)
	if !found || !match || user.Disabled || name == "" {
		wait, counted, err := attempt.Fail(ctx)
		if err != nil {
			h.writeError(w, r, err)
			return signIn{}, false
		}
		h.observeLogin("failure", counted && wait > 0)
		// The typed name is kept only when it names an account: a password typed
		// into the username field must not land in the audit trail.
		var details map[string]string
		if found {
			details = map[string]string{"username": name}
		}
		h.audit(ctx, storage.AuditEvent{Type: "login.failed", Realm: realm.Name, ClientID: clientID, UserID: user.ID,
			IP: from.IP, UserAgent: from.UserAgent, Details: details})
		if wait > 0 {
			retry(http.StatusTooManyRequests, name, "", wait)
			return signIn{}, false
		}
		retry(http.StatusUnauthorized, name, "Invalid username or password.", 0)
		return signIn{}, false
	}
	if err := attempt.Succeed(ctx); err != nil {
		h.writeError(w, r, err)
		return signIn{}, false
	}
	h.observeLogin("success", false)
	h.rehashPassword(ctx, user, form.Get("password"))
	sess, err := h.startSession(ctx, w, r, realm.Name, user)
	if err != nil {
		h.writeError(w, r, err)
		return signIn{}, false
	}
	h.audit(ctx, storage.AuditEvent{Type: "login.succeeded", Realm: realm.Name, ClientID: clientID, UserID: user.ID,
		SessionID: sess.ID, IP: from.IP, UserAgent: from.UserAgent})
	return signIn{session: sess, user: user}, true
}

// unknownNameAccount is the login limiter's account of a name that names no
// user: one of 65536 buckets per realm, by a keyed hash of the name. Anyone can
// type names no one has, without end; so they add a bounded number of rows to the
// store, and which names share a bucket cannot be worked out without the master
// key: a name keeps a count of its own, so locks as a user's would, unless tens of
// thousands of names are tried.
func (h *Handler) unknownNameAccount(realm, name string) string {
	m := hmac.New(sha256.New, h.nameKey)
	m.Write([]byte(realm))
	m.Write([]byte{0})
	m.Write([]byte(name))
	return realm + "/name#" + hex.EncodeToString(m.Sum(nil)[:2])
}

// observeLogin counts a login answer, and the lockout a failure started.
func (h *Handler) observeLogin(result string, locked bool) {
	if h.obs == nil {
		return
	}
	h.obs.Login(result)
	if locked {
		h.obs.Lockout("login")
	}
}

// loginName is the username or email typed into the login form, lower-cased; ""
// when it names no account that can exist, so that nothing unbounded reaches the
// limiter, the store or the audit log.
func loginName(typed string) string {
	name := strings.ToLower(strings.TrimSpace(typed))
	if ident.LoginName(name) != nil {
		return ""
	}
	return name
}

// findUser finds a user by username, or by email when the name has an @.
func (h *Handler) findUser(ctx context.Context, realm, name string) (storage.User, bool, error) {
	if name == "" {
		return storage.User{}, false, nil
	}
	u, err := h.store.GetUserByUsername(ctx, realm, name)
	if errors.Is(err, storage.ErrNotFound) && strings.Contains(name, "@") {
		u, err = h.store.GetUserByEmail(ctx, realm, name)
	}
	if errors.Is(err, storage.ErrNotFound) {
		return u, false, nil
	}
	return u, err == nil, err
}

// consent handles the consent form.
func (h *Handler) consent(w http.ResponseWriter, r *http.Request, realm storage.Realm) {
	form, req, client, ok := h.openForm(w, r, realm, "consent")
	if !ok {
		return
	}
	ctx := r.Context()
	sess, user, live, err := h.currentSession(ctx, r, realm.Name)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if !live {
		h.loginPage(w, r, realm, client, req, http.StatusOK, "", "Your session ended. Please sign in again.", 0)
		return
	}
	if form.Get("decision") != "allow" {
		h.redirectError(w, r, realm, req, protocol.New(protocol.AccessDenied, "the user denied the request"))
		return
	}
	now := h.now().UTC().Truncate(time.Microsecond)
	c := storage.Consent{Realm: realm.Name, UserID: user.ID, ClientID: client.ID, Scopes: req.Scopes, CreatedAt: now, UpdatedAt: now}
	if old, err := h.store.GetConsent(ctx, realm.Name, user.ID, client.ID); err == nil {
		for _, s := range old.Scopes {
			if !slices.Contains(c.Scopes, s) {
				c.Scopes = append(c.Scopes, s)
			}
		}
	}
	if err := h.store.SaveConsent(ctx, c); err != nil {
		h.writeError(w, r, err)
		return
	}
	h.issueCode(w, r, realm, req, user, sess)
}

// audit appends an event, logging rather than failing the request if it cannot.
func (h *Handler) audit(ctx context.Context, e storage.AuditEvent) {
	e.Time = h.now().UTC().Truncate(time.Microsecond)
	if _, err := h.store.AppendAudit(ctx, e); err != nil {
		h.log.ErrorContext(ctx, "audit event lost", "type", e.Type, "err", err)
	}
}
