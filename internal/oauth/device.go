package oauth

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/latchkey/latchkey/internal/grants"
	"github.com/latchkey/latchkey/internal/protocol"
	"github.com/latchkey/latchkey/internal/token"
	"github.com/latchkey/latchkey/internal/web"
	"github.com/latchkey/latchkey/storage"
)

// The device authorization grant's endpoints (RFC 8628), in Keycloak's layout.
const (
	// deviceAuthPath is the device authorization endpoint (§3.1).
	deviceAuthPath = "/protocol/openid-connect/auth/device"
	// devicePath is the verification page (§3.3): verification_uri.
	devicePath = "/device"
)

// userCodeLimits throttle wrong user codes on the verification page per source
// address and per realm (RFC 8628 §5.1: a user code has about 34 bits, so its
// guessing must be limited). Anyone can fail on a realm's behalf, so the realm's
// lock is short; the address that guesses pays the most.
var userCodeLimits = web.LimiterConfig{
	AccountFailures: 50, // per realm
	IPFailures:      10, // per source address
	BaseLock:        30 * time.Second,
	AccountMaxLock:  time.Minute,
	MaxLock:         15 * time.Minute,
	Forget:          time.Hour,
	InFlightInStore: true,
}

// deviceAuthorization serves the device authorization endpoint (RFC 8628 §3.1):
// a client that may use the device grant, authenticated as at the token endpoint
// (a public one by its client_id), gets a device code and a user code.
func (h *Handler) deviceAuthorization(w http.ResponseWriter, r *http.Request, realm storage.Realm) {
	form, client, ok := h.clientRequest(w, r, realm, true)
	if !ok {
		return
	}
	if !slices.Contains(client.GrantTypes, grants.DeviceCodeType) {
		h.writeError(w, r, protocol.New(protocol.UnauthorizedClient, "client may not use "+grants.DeviceCodeType))
		return
	}
	scopes, err := grants.Scopes(form.Get("scope"), client)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	issuer := h.tokens.Issuer(realm.Name)
	aud, err := grants.Audience(form["resource"], client, issuer)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	da, err := h.tokens.AuthorizeDevice(r.Context(), token.DeviceRequest{
		Realm: realm, Client: client, Scopes: scopes, Audience: aud, Codes: h.userCodes, From: h.caller(r),
	})
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	verification := issuer + devicePath
	writeJSON(w, http.StatusOK, struct {
		DeviceCode              string `json:"device_code"`
		UserCode                string `json:"user_code"`
		VerificationURI         string `json:"verification_uri"`
		VerificationURIComplete string `json:"verification_uri_complete"`
		ExpiresIn               int64  `json:"expires_in"`
		Interval                int64  `json:"interval"`
	}{da.DeviceCode, da.UserCode, verification, verification + "?user_code=" + url.QueryEscape(da.UserCode),
		int64(da.ExpiresIn.Seconds()), int64(da.Interval.Seconds())})
}

// deviceForm is the state the verification page's forms carry, sealed: which
// step the form is, and once the code was found, the code and its client.
type deviceForm struct {
	Step     string `json:"s"` // "code", "login" or "decide"
	UserCode string `json:"u,omitempty"`
	ClientID string `json:"c,omitempty"`
	CSRF     string `json:"x"`
	Expires  int64  `json:"e"`
}

// devicePage serves the verification page's code form (GET), prefilled from
// verification_uri_complete. Nothing is looked up before the user sends it: a
// link alone never reaches the confirmation (RFC 8628 §5.4).
func (h *Handler) devicePage(w http.ResponseWriter, r *http.Request, realm storage.Realm) {
	code := r.URL.Query().Get("user_code")
	if len(code) > 16 {
		code = ""
	}
	h.deviceCodeForm(w, r, realm, http.StatusOK, code, "", 0)
}

// deviceCodeForm renders the code form.
func (h *Handler) deviceCodeForm(w http.ResponseWriter, r *http.Request, realm storage.Realm, status int, code, message string, wait time.Duration) {
	if wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(seconds(wait)))
	}
	st := h.deviceState(w, r, realm, deviceForm{Step: "code"})
	h.pages.Device(w, status, web.DevicePage{
		Common: h.common(realm), Action: h.deviceAction(realm), UserCode: code, Error: message, RetryAfter: seconds(wait),
		Hidden: map[string]string{"state": st},
	})
}

// deviceState seals f with the browser's CSRF value and a fresh expiry.
func (h *Handler) deviceState(w http.ResponseWriter, r *http.Request, realm storage.Realm, f deviceForm) string {
	f.CSRF = h.csrfToken(w, r, realm.Name)
	f.Expires = h.now().Add(formTTL).Unix()
	return h.box.seal("device", f)
}

func (h *Handler) deviceAction(realm storage.Realm) string {
	return h.realmPath(realm.Name) + strings.TrimPrefix(devicePath, "/")
}

// deviceSubmit handles the verification page's forms: the code, the sign-in
// when the browser has no session, and the decision.
func (h *Handler) deviceSubmit(w http.ResponseWriter, r *http.Request, realm storage.Realm) {
	form, err := parseForm(w, r)
	if err != nil {
		h.errorPage(w, r, realm, http.StatusBadRequest, "Invalid request", "The form could not be read.")
		return
	}
	var st deviceForm
	if err := h.box.open("device", form.Get("state"), &st); err != nil || h.now().Unix() > st.Expires {
		h.deviceCodeForm(w, r, realm, http.StatusBadRequest, "", "This page had expired. Enter the code again.", 0)
		return
	}
	if !csrfOK(r, st.CSRF) {
		h.errorPage(w, r, realm, http.StatusForbidden, "Request refused", "This form was not sent from this page. Open the address your device shows and try again.")
		return
	}
	switch st.Step {
	case "code":
		h.deviceEnterCode(w, r, realm, form.Get("user_code"))
	case "login":
		h.deviceSignIn(w, r, realm, st, form)
	case "decide":
		h.deviceDecide(w, r, realm, st, form.Get("decision"))
	default:
		h.deviceCodeForm(w, r, realm, http.StatusBadRequest, "", "", 0)
	}
}

// Messages of the code form.
const (
	wrongCodeMessage = "That code is wrong or has expired. Check the code on your device and try again."
	usedCodeMessage  = "That code has already been used. Start again on your device to get a new one."
)

// deviceEnterCode looks the typed code up, behind the user code limiter: a
// wrong code counts against the address and the realm.
func (h *Handler) deviceEnterCode(w http.ResponseWriter, r *http.Request, realm storage.Realm, typed string) {
	ctx := r.Context()
	attempt, wait, err := h.codeLimiter.Admit(ctx, realm.Name, h.caller(r).IP)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	shown := typed
	if len(shown) > 16 {
		shown = ""
	}
	if attempt == nil {
		h.deviceCodeForm(w, r, realm, http.StatusTooManyRequests, shown, "", wait)
		return
	}
	// A right code is not a success that clears the counts: anyone can get one
	// (start a device flow) and would wipe the realm's count between guesses.
	defer attempt.Release(ctx)
	fail := func() {
		wait, _, err := attempt.Fail(ctx)
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		if wait > 0 {
			h.deviceCodeForm(w, r, realm, http.StatusTooManyRequests, shown, "", wait)
			return
		}
		h.deviceCodeForm(w, r, realm, http.StatusBadRequest, shown, wrongCodeMessage, 0)
	}
	hash, ok := h.userCodes.Hash(typed)
	if !ok {
		fail()
		return
	}
	g, err := h.tokens.PendingDevice(ctx, realm.Name, hash)
	if errors.Is(err, storage.ErrNotFound) {
		fail()
		return
	}
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if g.Status != storage.DeviceStatusPending {
		h.deviceCodeForm(w, r, realm, http.StatusBadRequest, shown, usedCodeMessage, 0)
		return
	}
	st := deviceForm{UserCode: typed, ClientID: g.ClientID}
	h.deviceContinue(w, r, realm, st, g, nil)
}

// deviceContinue shows the confirmation to a signed-in user, or the sign-in
// form first. fresh is set right after the user typed their password.
func (h *Handler) deviceContinue(w http.ResponseWriter, r *http.Request, realm storage.Realm, st deviceForm, g storage.DeviceGrant, fresh *signIn) {
	client, err := h.getClient(r.Context(), realm.Name, g.ClientID)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && client.Disabled) {
		h.deviceCodeForm(w, r, realm, http.StatusBadRequest, "", wrongCodeMessage, 0)
		return
	}
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	var user storage.User
	if fresh != nil {
		user = fresh.user
	} else {
		_, u, live, err := h.currentSession(r.Context(), r, realm.Name)
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		if !live {
			h.deviceLoginPage(w, r, realm, client, st, http.StatusOK, "", "", 0)
			return
		}
		user = u
	}
	var scopes []web.Scope
	for _, s := range g.Scopes {
		d := scopeDescriptions[s]
		if d == "" {
			d = "Use " + s
		}
		scopes = append(scopes, web.Scope{Name: s, Description: d})
	}
	st.Step = "decide"
	username := user.Username
	if username == "" {
		username = user.Email
	}
	code, _ := displayUserCode(st.UserCode)
	h.pages.Device(w, http.StatusOK, web.DevicePage{
		Common: h.common(realm), Action: h.deviceAction(realm), UserCode: code, ClientName: clientName(client),
		Username: username, Scopes: scopes, Hidden: map[string]string{"state": h.deviceState(w, r, realm, st)},
	})
}

// displayUserCode writes a typed user code as devices show it: XXXX-XXXX.
func displayUserCode(typed string) (string, bool) {
	c := strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(typed))
	if len(c) != 8 {
		return typed, false
	}
	return c[:4] + "-" + c[4:], true
}

// deviceLoginPage is the login page, posting back to the verification page.
func (h *Handler) deviceLoginPage(w http.ResponseWriter, r *http.Request, realm storage.Realm, client storage.Client, st deviceForm, status int, username, message string, wait time.Duration) {
	if wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(seconds(wait)))
	}
	st.Step = "login"
	h.pages.Login(w, status, web.LoginPage{
		Common: h.common(realm), ClientName: clientName(client), Action: h.deviceAction(realm),
		Username: username, Error: message, RetryAfter: seconds(wait),
		Hidden: map[string]string{"state": h.deviceState(w, r, realm, st)},
	})
}

// pendingDevice finds the grant a page's state names, still pending and of the
// client the user was shown; else it shows the code form with why not.
func (h *Handler) pendingDevice(w http.ResponseWriter, r *http.Request, realm storage.Realm, st deviceForm) (storage.DeviceGrant, bool) {
	hash, ok := h.userCodes.Hash(st.UserCode)
	if !ok {
		h.deviceCodeForm(w, r, realm, http.StatusBadRequest, "", wrongCodeMessage, 0)
		return storage.DeviceGrant{}, false
	}
	g, err := h.tokens.PendingDevice(r.Context(), realm.Name, hash)
	switch {
	case errors.Is(err, storage.ErrNotFound) || (err == nil && g.ClientID != st.ClientID):
		h.deviceCodeForm(w, r, realm, http.StatusBadRequest, "", wrongCodeMessage, 0)
		return g, false
	case err != nil:
		h.writeError(w, r, err)
		return g, false
	case g.Status != storage.DeviceStatusPending:
		h.deviceCodeForm(w, r, realm, http.StatusBadRequest, "", usedCodeMessage, 0)
		return g, false
	}
	return g, true
}

// deviceSignIn handles the sign-in form of the verification page.
func (h *Handler) deviceSignIn(w http.ResponseWriter, r *http.Request, realm storage.Realm, st deviceForm, form url.Values) {
	g, ok := h.pendingDevice(w, r, realm, st)
	if !ok {
		return
	}
	client, err := h.getClient(r.Context(), realm.Name, g.ClientID)
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			h.deviceCodeForm(w, r, realm, http.StatusBadRequest, "", wrongCodeMessage, 0)
			return
		}
		h.writeError(w, r, err)
		return
	}
	in, ok := h.passwordSignIn(w, r, realm, client.ID, form, func(status int, username, message string, wait time.Duration) {
		h.deviceLoginPage(w, r, realm, client, st, status, username, message, wait)
	})
	if !ok {
		return
	}
	h.deviceContinue(w, r, realm, st, g, &in)
}

// deviceDecide records the signed-in user's Approve or Deny, once.
func (h *Handler) deviceDecide(w http.ResponseWriter, r *http.Request, realm storage.Realm, st deviceForm, decision string) {
	ctx := r.Context()
	g, ok := h.pendingDevice(w, r, realm, st)
	if !ok {
		return
	}
	client, err := h.getClient(ctx, realm.Name, g.ClientID)
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			h.deviceCodeForm(w, r, realm, http.StatusBadRequest, "", wrongCodeMessage, 0)
			return
		}
		h.writeError(w, r, err)
		return
	}
	sess, user, live, err := h.currentSession(ctx, r, realm.Name)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if !live {
		h.deviceLoginPage(w, r, realm, client, st, http.StatusOK, "", "Your session ended. Please sign in again.", 0)
		return
	}
	if decision != "approve" && decision != "deny" {
		h.deviceContinue(w, r, realm, st, g, nil)
		return
	}
	hash, _ := h.userCodes.Hash(st.UserCode)
	_, err = h.tokens.DecideDevice(ctx, token.DeviceDecision{
		Realm: realm.Name, UserCodeHash: hash, Approve: decision == "approve", ClientID: st.ClientID, User: user, Session: sess,
	})
	switch {
	case errors.Is(err, storage.ErrNotFound) || errors.Is(err, token.ErrDeviceChanged):
		h.deviceCodeForm(w, r, realm, http.StatusBadRequest, "", wrongCodeMessage, 0)
		return
	case errors.Is(err, storage.ErrAlreadyUsed):
		h.deviceCodeForm(w, r, realm, http.StatusBadRequest, "", usedCodeMessage, 0)
		return
	case err != nil:
		h.writeError(w, r, err)
		return
	}
	from := h.caller(r)
	name := clientName(client)
	// No code in the event: the family it starts names the grant.
	e := storage.AuditEvent{Type: "device.approved", Realm: realm.Name, ClientID: client.ID, UserID: user.ID,
		SessionID: sess.ID, FamilyID: g.FamilyID, IP: from.IP, UserAgent: from.UserAgent}
	page := web.MessagePage{Common: h.common(realm), Title: "Device connected",
		Message: "You approved " + name + ". You can return to your device now."}
	if decision == "deny" {
		e.Type = "device.denied"
		page.Title, page.Message = "Request denied", name+" was not given access. You can close this page."
	}
	h.audit(ctx, e)
	h.pages.Message(w, http.StatusOK, page)
}
