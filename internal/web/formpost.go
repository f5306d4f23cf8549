package web

import (
	"crypto/sha256"
	"encoding/base64"
	"html/template"
	"net/http"
	"net/url"
)

// autoSubmit is the one script Latchkey serves: it submits the form_post page's
// form. The page's Content-Security-Policy allows it by its hash, and nothing else.
const autoSubmit = `document.forms[0].submit()`

// autoSubmitHash is autoSubmit's CSP hash source (CSP Level 3 §8.4).
var autoSubmitHash = func() string {
	sum := sha256.Sum256([]byte(autoSubmit))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}()

// formPostTemplate is parsed once, like the other pages.
var formPostTemplate = template.Must(template.New("formpost").
	Funcs(template.FuncMap{"autoSubmit": func() template.JS { return autoSubmit }}).
	ParseFS(templateFS, "templates/layout.html", "templates/formpost.html"))

// FormPostPage carries an authorization response to the client as a form
// POSTed to its redirect URI (OAuth 2.0 Form Post Response Mode §2).
type FormPostPage struct {
	Common
	Action string            // the client's redirect URI, an http(s) URI
	Fields map[string]string // the response parameters, as hidden inputs in sorted order
}

// FormPost renders the page: the form submits itself, and without JavaScript its
// Continue button does. The form may only go to the redirect URI's origin
// (form-action), and the page sends no Referer (it carries no secret in its URL,
// but the client need not learn the login page's).
func (p *Pages) FormPost(w http.ResponseWriter, d FormPostPage) {
	renderPolicy(w, http.StatusOK, formPostTemplate, formPostPolicy(d.Action), d)
}

// formPostPolicy allows the auto-submit script by its hash and the form only to
// the action's origin.
func formPostPolicy(action string) string {
	formAction := "'none'"
	if o, ok := cspSource(originOf(action)); ok {
		formAction = o
	}
	return "default-src 'none'; style-src 'self'; img-src 'self'; script-src " + autoSubmitHash +
		"; form-action " + formAction + "; frame-ancestors 'none'; base-uri 'none'"
}

// originOf is the scheme://host of an absolute URI, or "".
func originOf(uri string) string {
	u, err := url.Parse(uri)
	if err != nil || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}
