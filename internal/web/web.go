// Package web owns the HTML pages users see (login, consent, logout, account,
// errors) and the attempt limiter (of logins, and of client
// authentications).
//
// Pages are plain HTML forms rendered from embedded html/template files: no
// JavaScript and no external resources, so the Content-Security-Policy can stay
// as strict as "default-src 'none'" with only the embedded stylesheet allowed.
// The one script, the form_post page's auto-submit, is allowed by its hash.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static/latchkey.css
var stylesheet []byte

// stylesheetPath is where the layout links the stylesheet and Static serves it.
const stylesheetPath = "/static/latchkey.css"

// render executes into a buffer first so a template error becomes a plain 500,
// never half a page under a 200.
func render(w http.ResponseWriter, status int, t *template.Template, c Common, data any) {
	renderPolicy(w, status, t, contentSecurityPolicy(c.FormActionOrigins), data)
}

// renderPolicy is render with the page's own Content-Security-Policy.
func renderPolicy(w http.ResponseWriter, status int, t *template.Template, csp string, data any) {
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", data); err != nil {
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		return
	}
	if status == 0 {
		status = http.StatusOK
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", csp)
	h.Set("Content-Length", fmt.Sprint(buf.Len()))
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

func contentSecurityPolicy(formActionOrigins []string) string {
	formAction := []string{"'self'"}
	for _, o := range formActionOrigins {
		if src, ok := cspSource(o); ok {
			formAction = append(formAction, src)
		}
	}
	return "default-src 'none'; style-src 'self'; img-src 'self'; form-action " +
		strings.Join(formAction, " ") + "; frame-ancestors 'none'; base-uri 'none'"
}

// CSPSource is cspSource for pages served outside Pages (the session iframe).
func CSPSource(origin string) (string, bool) { return cspSource(origin) }

// cspSource turns an origin such as "https://app.example:8443" into a CSP host
// source. Anything else (a path, a query, spaces, ';', a bare host) is dropped,
// so a bad value can only make the policy stricter, never inject a directive.
func cspSource(origin string) (string, bool) {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" ||
		u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return "", false
	}
	for _, r := range u.Host {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			strings.ContainsRune(".-:[]", r)
		if !ok {
			return "", false
		}
	}
	return u.Scheme + "://" + strings.ToLower(u.Host), true
}

// Static serves the embedded stylesheet at /static/latchkey.css (mount it at "/static/").
func Static() http.Handler {
	sum := sha256.Sum256(stylesheet)
	etag := `"` + hex.EncodeToString(sum[:8]) + `"`
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != stylesheetPath {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/css; charset=utf-8")
		h.Set("Cache-Control", "public, max-age=86400")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("ETag", etag)
		http.ServeContent(w, r, "latchkey.css", time.Time{}, bytes.NewReader(stylesheet))
	})
}
