package web

import (
	"fmt"
	"html/template"
	"net/http"
)

// Pages renders Latchkey's HTML pages from embedded templates.
type Pages struct {
	login, consent, errorPage, message, logout, account, device *template.Template
}

// NewPages parses the embedded templates once.
func NewPages() (*Pages, error) {
	parse := func(name string) (*template.Template, error) {
		t, err := template.ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("web: parse %s template: %w", name, err)
		}
		return t, nil
	}
	p := &Pages{}
	for _, e := range []struct {
		name string
		dst  **template.Template
	}{
		{"login", &p.login}, {"consent", &p.consent}, {"error", &p.errorPage},
		{"message", &p.message}, {"logout", &p.logout}, {"account", &p.account}, {"device", &p.device},
	} {
		t, err := parse(e.name)
		if err != nil {
			return nil, err
		}
		*e.dst = t
	}
	return p, nil
}

// Common is on every page.
type Common struct {
	RealmName         string   // realm display name (or name) shown in the header
	FormActionOrigins []string // extra origins for CSP form-action besides 'self' (e.g. "https://app.example")
}

// LoginPage is the username and password form.
type LoginPage struct {
	Common
	ClientName string // "Sign in to continue to <ClientName>"
	Action     string // form POST target (a path)
	Username   string // prefilled (login_hint / last attempt)
	Error      string // shown above the form, e.g. "Invalid username or password."
	// RetryAfter in whole seconds; >0 shows "Too many failed attempts. Try
	// again in N seconds." Round the limiter's wait up, never down:
	// int((d + time.Second - 1) / time.Second).
	RetryAfter int
	Hidden     map[string]string // hidden inputs, rendered in sorted key order
}

// ConsentPage asks the user to allow or deny a client's requested scopes.
// Its form posts decision=allow or decision=deny.
type ConsentPage struct {
	Common
	ClientName string
	Scopes     []Scope // what the client asks for
	Action     string
	Hidden     map[string]string
}

// Scope is one requested scope as shown on the consent page.
type Scope struct{ Name, Description string }

// ErrorPage explains a request that cannot go on (and must not be redirected).
type ErrorPage struct {
	Common
	Title   string // e.g. "Unknown application"
	Message string
}

// MessagePage shows a short outcome, e.g. "You are signed out".
type MessagePage struct {
	Common
	Title, Message    string
	LinkURL, LinkText string // optional link
}

// LogoutPage asks "Sign out of <RealmName>?" with a Sign out button (POST).
type LogoutPage struct {
	Common
	Action string
	Hidden map[string]string
}

// AccountPage shows the signed-in user, their active sessions and apps, and
// buttons to end one, to sign out here and to sign out everywhere.
type AccountPage struct {
	Common
	Username, Email, Name string
	Apps                  []App
	EndAction             string // POST target of each app's "End" button (field "family")
	LogoutAction          string // POST target of the "Sign out" button
	EverywhereAction      string // POST target of the "Sign out everywhere" button
	Hidden                map[string]string
}

// App is one active session of an app (a refresh-token family), as the account page lists it.
type App struct {
	ID       string // sent back as "family" to end it
	Client   string
	Device   string // the user agent it was last used from
	Created  string
	LastUsed string
	Current  bool // born in the browser session looking at the page
}

// Login renders the sign-in form.
func (p *Pages) Login(w http.ResponseWriter, status int, d LoginPage) {
	render(w, status, p.login, d.Common, d)
}

// Consent renders the consent form; its buttons are name="decision" value="allow" / "deny".
func (p *Pages) Consent(w http.ResponseWriter, status int, d ConsentPage) {
	render(w, status, p.consent, d.Common, d)
}

// Error renders an error page.
func (p *Pages) Error(w http.ResponseWriter, status int, d ErrorPage) {
	render(w, status, p.errorPage, d.Common, d)
}

// Message renders a short message page.
func (p *Pages) Message(w http.ResponseWriter, status int, d MessagePage) {
	render(w, status, p.message, d.Common, d)
}

// Logout renders the sign-out confirmation.
func (p *Pages) Logout(w http.ResponseWriter, status int, d LogoutPage) {
	render(w, status, p.logout, d.Common, d)
}

// Account renders the account page.
func (p *Pages) Account(w http.ResponseWriter, status int, d AccountPage) {
	render(w, status, p.account, d.Common, d)
}

// DevicePage is the device verification page (RFC 8628 §3.3): a form for the
// user code the device shows, or, once the code is found and the user signed in
// (ClientName set), the client and its scopes with Approve and Deny buttons,
// name="decision" value="approve" / "deny".
type DevicePage struct {
	Common
	Action   string // form POST target (a path)
	UserCode string // prefilled from verification_uri_complete, or as typed
	Error    string // shown above the code form
	// RetryAfter in whole seconds; >0 shows "Too many wrong codes. Try again in N seconds."
	RetryAfter int
	ClientName string
	Username   string
	Scopes     []Scope
	Hidden     map[string]string
}

// Device renders the device verification page.
func (p *Pages) Device(w http.ResponseWriter, status int, d DevicePage) {
	render(w, status, p.device, d.Common, d)
}
