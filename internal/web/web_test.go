package web

import (
	"crypto/sha256"
	"encoding/base64"
	"html/template"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func newPages(t *testing.T) *Pages {
	t.Helper()
	p, err := NewPages()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

const evil = `<script>alert("x")</script>`

var common = Common{RealmName: "Acme & Co", FormActionOrigins: []string{"https://app.example"}}

// renderAll renders every page once with hostile strings in every user-visible field.
func renderAll(p *Pages) map[string]func(w http.ResponseWriter) {
	hidden := map[string]string{"state": evil, "client_id": `a"b`, "b": "2"}
	return map[string]func(w http.ResponseWriter){
		"login": func(w http.ResponseWriter) {
			p.Login(w, http.StatusUnauthorized, LoginPage{Common: common, ClientName: evil, Action: "/login",
				Username: evil, Error: "Invalid username or password.", Hidden: hidden})
		},
		"consent": func(w http.ResponseWriter) {
			p.Consent(w, http.StatusUnauthorized, ConsentPage{Common: common, ClientName: evil, Action: "/consent",
				Scopes: []Scope{{Name: "openid", Description: evil}, {Name: evil}}, Hidden: hidden})
		},
		"error": func(w http.ResponseWriter) {
			p.Error(w, http.StatusUnauthorized, ErrorPage{Common: common, Title: evil, Message: evil})
		},
		"message": func(w http.ResponseWriter) {
			p.Message(w, http.StatusUnauthorized, MessagePage{Common: common, Title: evil, Message: evil,
				LinkURL: "/account", LinkText: evil})
		},
		"logout": func(w http.ResponseWriter) {
			p.Logout(w, http.StatusUnauthorized, LogoutPage{Common: Common{RealmName: evil,
				FormActionOrigins: common.FormActionOrigins}, Action: "/logout", Hidden: hidden})
		},
		"account": func(w http.ResponseWriter) {
			p.Account(w, http.StatusUnauthorized, AccountPage{Common: common, Username: evil, Email: evil, Name: evil,
				LogoutAction: "/logout", Hidden: hidden})
		},
	}
}

func TestPages_HeadersEscapingAndNoScript(t *testing.T) {
	p := newPages(t)
	wantCSP := "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self' https://app.example; " +
		"frame-ancestors 'none'; base-uri 'none'"
	for name, render := range renderAll(p) {
		t.Run(name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			render(rec)
			if rec.Code != http.StatusUnauthorized {
				t.Errorf("status = %d, want 401 (the caller's)", rec.Code)
			}
			for h, want := range map[string]string{
				"Content-Type":            "text/html; charset=utf-8",
				"Cache-Control":           "no-store",
				"X-Frame-Options":         "DENY",
				"Referrer-Policy":         "no-referrer",
				"X-Content-Type-Options":  "nosniff",
				"Content-Security-Policy": wantCSP,
			} {
				if got := rec.Header().Get(h); got != want {
					t.Errorf("%s = %q, want %q", h, got, want)
				}
			}
			body := rec.Body.String()
			if strings.Contains(strings.ToLower(body), "<script") {
				t.Errorf("page contains a <script> tag:\n%s", body)
			}
			if !strings.Contains(body, "&lt;script&gt;") {
				t.Errorf("hostile string not shown escaped:\n%s", body)
			}
			for _, want := range []string{
				`<html lang="en">`,
				`<meta name="viewport" content="width=device-width, initial-scale=1">`,
				`<link rel="stylesheet" href="/static/latchkey.css">`,
				"<title>",
			} {
				if !strings.Contains(body, want) {
					t.Errorf("page lacks %s", want)
				}
			}
			if regexp.MustCompile(`(?i)(src|href)="(https?:)?//`).MatchString(body) {
				t.Errorf("page loads an external resource:\n%s", body)
			}
		})
	}
}

func TestPages_HiddenFieldsEscapedInSortedOrder(t *testing.T) {
	p := newPages(t)
	for _, name := range []string{"login", "consent", "logout", "account"} {
		rec := httptest.NewRecorder()
		renderAll(p)[name](rec)
		body := rec.Body.String()
		b := strings.Index(body, `name="b" value="2"`)
		c := strings.Index(body, `name="client_id" value="a&#34;b"`)
		s := strings.Index(body, `name="state" value="&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;"`)
		if b < 0 || c < 0 || s < 0 || !(b < c && c < s) {
			t.Errorf("%s: hidden inputs missing, unescaped or unsorted (b=%d client_id=%d state=%d):\n%s", name, b, c, s, body)
		}
	}
}

func TestLogin_Form(t *testing.T) {
	p := newPages(t)
	rec := httptest.NewRecorder()
	p.Login(rec, http.StatusOK, LoginPage{Common: Common{RealmName: "Acme"}, ClientName: "Shop", Action: "/r/acme/login",
		Error: "Invalid username or password."})
	body := rec.Body.String()
	if rec.Code != http.StatusOK {
		t.Errorf("status = %d", rec.Code)
	}
	for _, want := range []string{
		`<form method="post" action="/r/acme/login">`,
		`<label for="username">Username or email</label>`,
		`<input id="username" name="username" type="text" value="" autocomplete="username"`,
		`<label for="password">`,
		`<input id="password" name="password" type="password" autocomplete="current-password" required>`,
		`<button type="submit">Sign in</button>`,
		`Sign in to continue to <strong>Shop</strong>`,
		`Invalid username or password.`,
		`<p class="realm">Acme</p>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("login page lacks %s\n%s", want, body)
		}
	}
	// Empty username: focus it; the password field is not autofocused.
	if !regexp.MustCompile(`id="username"[^>]*autofocus`).MatchString(body) ||
		regexp.MustCompile(`id="password"[^>]*autofocus`).MatchString(body) {
		t.Errorf("autofocus should be on the username field:\n%s", body)
	}
	if strings.Contains(body, "Too many") {
		t.Error("lockout message shown without RetryAfter")
	}

	rec = httptest.NewRecorder()
	p.Login(rec, http.StatusOK, LoginPage{Action: "/login", Username: "alice"})
	body = rec.Body.String()
	if !strings.Contains(body, `value="alice"`) ||
		regexp.MustCompile(`id="username"[^>]*autofocus`).MatchString(body) ||
		!regexp.MustCompile(`id="password"[^>]*autofocus`).MatchString(body) {
		t.Errorf("prefilled username: want it filled in and focus on password:\n%s", body)
	}
	if !strings.Contains(body, `<p class="realm">Latchkey</p>`) {
		t.Error("empty RealmName should fall back to Latchkey")
	}
}

func TestLogin_RetryAfter(t *testing.T) {
	p := newPages(t)
	for _, tc := range []struct {
		n    int
		want string
	}{
		{0, ""},
		{-3, ""},
		{1, "Too many failed attempts. Try again in 1 second."},
		{30, "Too many failed attempts. Try again in 30 seconds."},
	} {
		rec := httptest.NewRecorder()
		p.Login(rec, http.StatusTooManyRequests, LoginPage{Action: "/login", RetryAfter: tc.n})
		body := rec.Body.String()
		if tc.want == "" && strings.Contains(body, "Too many") || tc.want != "" && !strings.Contains(body, tc.want) {
			t.Errorf("RetryAfter=%d: want %q in\n%s", tc.n, tc.want, body)
		}
		if rec.Code != http.StatusTooManyRequests {
			t.Errorf("status = %d", rec.Code)
		}
	}
}

func TestConsent_Buttons(t *testing.T) {
	p := newPages(t)
	rec := httptest.NewRecorder()
	p.Consent(rec, http.StatusOK, ConsentPage{ClientName: "Shop", Action: "/consent",
		Scopes: []Scope{{"openid", "Confirm who you are"}, {"email", ""}}})
	body := rec.Body.String()
	for _, want := range []string{
		`<form method="post" action="/consent">`,
		`<button type="submit" name="decision" value="allow">Allow</button>`,
		`name="decision" value="deny"`,
		`Confirm who you are <code>openid</code>`,
		`<code>email</code>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("consent page lacks %s\n%s", want, body)
		}
	}
}

func TestLogoutAndAccount_PostForms(t *testing.T) {
	p := newPages(t)
	rec := httptest.NewRecorder()
	p.Logout(rec, http.StatusOK, LogoutPage{Common: Common{RealmName: "Acme"}, Action: "/logout"})
	if body := rec.Body.String(); !strings.Contains(body, "Sign out of Acme?") ||
		!strings.Contains(body, `<form method="post" action="/logout">`) || !strings.Contains(body, ">Sign out</button>") {
		t.Errorf("logout page:\n%s", body)
	}
	rec = httptest.NewRecorder()
	p.Account(rec, http.StatusOK, AccountPage{Username: "alice", Email: "alice@example.com", LogoutAction: "/logout"})
	body := rec.Body.String()
	for _, want := range []string{"alice", "alice@example.com", `<form method="post" action="/logout">`, ">Sign out</button>"} {
		if !strings.Contains(body, want) {
			t.Errorf("account page lacks %s\n%s", want, body)
		}
	}
	if strings.Contains(body, "<dt>Name</dt>") {
		t.Error("empty Name shown")
	}
}

func TestMessage_LinkIsSanitised(t *testing.T) {
	p := newPages(t)
	rec := httptest.NewRecorder()
	p.Message(rec, http.StatusOK, MessagePage{Title: "You are signed out", LinkURL: "javascript:alert(1)", LinkText: "Back"})
	body := rec.Body.String()
	if strings.Contains(body, "javascript:") || !strings.Contains(body, "You are signed out") {
		t.Errorf("message page:\n%s", body)
	}
	rec = httptest.NewRecorder()
	p.Message(rec, http.StatusOK, MessagePage{Title: "Done"})
	if strings.Contains(rec.Body.String(), "<a ") {
		t.Error("link rendered without LinkURL")
	}
}

func TestPages_FormActionWithoutOrigins(t *testing.T) {
	p := newPages(t)
	rec := httptest.NewRecorder()
	p.Error(rec, http.StatusBadRequest, ErrorPage{Title: "Unknown application"})
	if got := rec.Header().Get("Content-Security-Policy"); !strings.Contains(got, "form-action 'self';") {
		t.Errorf("CSP = %q", got)
	}
}

func TestContentSecurityPolicy_DropsValuesThatAreNotOrigins(t *testing.T) {
	got := contentSecurityPolicy([]string{
		"https://App.Example:8443",
		"http://127.0.0.1:5000/",
		"https://evil.example; script-src *",
		"https://x.example/cb",
		"https://x.example?q",
		"javascript:alert(1)",
		"app.example",
		"https://user@x.example",
		"https://a.example https://b.example",
		"",
	})
	want := "form-action 'self' https://app.example:8443 http://127.0.0.1:5000;"
	if !strings.Contains(got, want) {
		t.Errorf("CSP = %q, want it to contain %q", got, want)
	}
}

func TestRender_TemplateErrorIsPlain500(t *testing.T) {
	broken := template.Must(template.New("").Parse(`{{define "layout"}}<p>half a page{{.Missing}}</p>{{end}}`))
	rec := httptest.NewRecorder()
	render(rec, http.StatusOK, broken, Common{}, struct{}{})
	if rec.Code != http.StatusInternalServerError {
		t.Errorf("status = %d, want 500", rec.Code)
	}
	if strings.Contains(rec.Body.String(), "half a page") || strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
		t.Errorf("partial page written: %q (%s)", rec.Body.String(), rec.Header().Get("Content-Type"))
	}
	if rec.Header().Get("Cache-Control") != "no-store" {
		t.Error("500 is cacheable")
	}
}

func TestStatic_ServesStylesheet(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle("/static/", Static())
	srv := httptest.NewServer(mux)
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/static/latchkey.css")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d", resp.StatusCode)
	}
	for h, want := range map[string]string{
		"Content-Type":           "text/css; charset=utf-8",
		"Cache-Control":          "public, max-age=86400",
		"X-Content-Type-Options": "nosniff",
	} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	if resp.ContentLength != int64(len(stylesheet)) || len(stylesheet) == 0 {
		t.Errorf("Content-Length = %d, stylesheet is %d bytes", resp.ContentLength, len(stylesheet))
	}

	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/static/latchkey.css", nil)
	req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
	resp2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusNotModified {
		t.Errorf("conditional GET: status = %d, want 304", resp2.StatusCode)
	}

	for _, path := range []string{"/static/", "/static/other.css", "/static/../web.go", "/static/latchkey.css/"} {
		rec := httptest.NewRecorder()
		Static().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != http.StatusNotFound {
			t.Errorf("GET %s: status = %d, want 404", path, rec.Code)
		}
	}
	rec := httptest.NewRecorder()
	Static().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/static/latchkey.css", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: status = %d, want 405", rec.Code)
	}
}

// TestPages_LabelsMatchInputs checks every <label for> names an element id on the page.
func TestPages_LabelsMatchInputs(t *testing.T) {
	p := newPages(t)
	for name, render := range renderAll(p) {
		rec := httptest.NewRecorder()
		render(rec)
		body := rec.Body.String()
		for _, m := range regexp.MustCompile(`<label for="([^"]+)"`).FindAllStringSubmatch(body, -1) {
			if !strings.Contains(body, `id="`+m[1]+`"`) {
				t.Errorf("%s: label for=%q has no element", name, m[1])
			}
		}
		for _, m := range regexp.MustCompile(`<input [^>]*>`).FindAllString(body, -1) {
			if strings.Contains(m, `type="hidden"`) {
				continue
			}
			id := regexp.MustCompile(`id="([^"]+)"`).FindStringSubmatch(m)
			if id == nil || !strings.Contains(body, `<label for="`+id[1]+`"`) {
				t.Errorf("%s: input without a label: %s", name, m)
			}
		}
	}
}

func TestFormPost_EscapedFieldsAndOnlyItsScriptAllowed(t *testing.T) {
	p := newPages(t)
	rec := httptest.NewRecorder()
	p.FormPost(rec, FormPostPage{Common: common, Action: "https://app.example:8443/cb?x=1&y=2",
		Fields: map[string]string{"state": evil, "code": "c", "iss": "https://id.example/realms/a"}})
	body := rec.Body.String()
	if rec.Code != http.StatusOK {
		t.Errorf("status = %d", rec.Code)
	}
	for _, want := range []string{
		`<form method="post" action="https://app.example:8443/cb?x=1&amp;y=2">`,
		`<input type="hidden" name="code" value="c">`,
		`<input type="hidden" name="state" value="&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;">`,
		`<button type="submit">Continue</button>`,
		`<script>document.forms[0].submit()</script>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("form_post page lacks %s\n%s", want, body)
		}
	}
	if n := strings.Count(body, "<script"); n != 1 {
		t.Errorf("%d scripts on the page, want the auto-submit only", n)
	}
	// sha256 of "document.forms[0].submit()".
	wantCSP := "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'sha256-" + scriptHash(t, "document.forms[0].submit()") +
		"'; form-action https://app.example:8443; frame-ancestors 'none'; base-uri 'none'"
	for h, want := range map[string]string{
		"Content-Security-Policy": wantCSP,
		"Cache-Control":           "no-store",
		"Referrer-Policy":         "no-referrer",
		"X-Frame-Options":         "DENY",
	} {
		if got := rec.Header().Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
}

func scriptHash(t *testing.T, script string) string {
	t.Helper()
	sum := sha256.Sum256([]byte(script))
	return base64.StdEncoding.EncodeToString(sum[:])
}
