package oauth

import (
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// Whatever arrives at the authorization endpoint, by GET or POST: never a panic or a
// 5xx, never a code without a session, and a browser is only ever sent to a redirect
// URI registered for the client the request names (the one the request gave, when
// it gave one), carrying the request's state, whether by a redirect (the response
// in the query or the fragment) or by a form_post page.
func FuzzAuthorizationRequest(f *testing.F) {
	inst := fuzzInstance(f)
	valid := "response_type=code&client_id=web&redirect_uri=http%3A%2F%2F127.0.0.1%3A9999%2Fcb&scope=openid+profile&state=xyz" +
		"&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256"
	f.Add(valid, false)
	f.Add(valid, true)
	f.Add(valid+"&prompt=none", false)
	f.Add(strings.Replace(valid, "client_id=web", "client_id=spa", 1)+"&prompt=none&redirect_uri=http%3A%2F%2F127.0.0.1%3A9999%2Fother", false)
	f.Add("response_type=token&client_id=web&state=s", false)
	f.Add("response_type=code&client_id=web&redirect_uri=http%3A%2F%2Fevil.example%2Fcb", false)
	f.Add("response_type=code&client_id=svc&prompt=none", false)
	f.Add("client_id=web&client_id=spa", false)
	f.Add("client_id=%zz", true)
	f.Add(valid+"&max_age=-1&prompt=login+none", false)
	f.Add(valid+"&response_mode=fragment&prompt=none", false)
	f.Add(valid+"&response_mode=form_post&scope=admin", true)
	f.Add(valid+"&response_mode=query.jwt", false)
	f.Add(valid+"&request=eyJhbGciOiJub25lIn0.e30.", false)
	f.Add("client_id=web&request_uri=urn%3Aietf%3Aparams%3Aoauth%3Arequest_uri%3AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", false)
	f.Add(valid+"&request_uri=https%3A%2F%2Fevil.example%2Fr", true)
	f.Fuzz(func(t *testing.T, query string, post bool) {
		var req *http.Request
		if post {
			req = httptest.NewRequest("POST", "/realms/acme"+authPath, strings.NewReader(query))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		} else {
			req = httptest.NewRequest("GET", "/realms/acme"+authPath, nil)
			req.URL.RawQuery = query
		}
		rec := httptest.NewRecorder()
		inst.handler.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d for %q: %s", rec.Code, query, rec.Body)
		}
		// Where the browser is sent, and the response it carries.
		var dest *url.URL
		var resp url.Values
		if m := formPostForm.FindStringSubmatch(rec.Body.String()); rec.Code == http.StatusOK && m != nil {
			var err error
			if dest, err = url.Parse(html.UnescapeString(m[1])); err != nil {
				t.Fatalf("unreadable form action %q for %q", m[1], query)
			}
			if !dest.IsAbs() {
				return // the login page
			}
			resp = url.Values{}
			for _, f := range formPostField.FindAllStringSubmatch(rec.Body.String(), -1) {
				resp.Add(html.UnescapeString(f[1]), html.UnescapeString(f[2]))
			}
		} else {
			loc := rec.Header().Get("Location")
			if loc == "" {
				return
			}
			u, err := url.Parse(loc)
			if err != nil {
				t.Fatalf("unreadable Location %q for %q", loc, query)
			}
			if !u.IsAbs() {
				return // a page of this server
			}
			resp = u.Query()
			if u.Fragment != "" {
				if resp, err = url.ParseQuery(u.EscapedFragment()); err != nil || u.RawQuery != "" {
					t.Fatalf("unreadable fragment, or a response split over query and fragment: %s", loc)
				}
			}
			dest = u
		}
		loc := dest.String()
		params, err := url.ParseQuery(query)
		if err != nil {
			t.Fatalf("an unreadable request %q was sent to %s", query, loc)
		}
		client, err := inst.store.GetClient(t.Context(), "acme", params.Get("client_id"))
		if err != nil {
			t.Fatalf("request %q for an unknown client was sent to %s", query, loc)
		}
		base := *dest
		base.RawQuery, base.Fragment, base.RawFragment = "", "", ""
		if !slices.Contains(client.RedirectURIs, base.String()) {
			t.Fatalf("request %q was sent to %s, not registered for %s", query, loc, client.ID)
		}
		if ru := params.Get("redirect_uri"); ru != "" && ru != base.String() {
			t.Fatalf("request %q named %s but was sent to %s", query, ru, loc)
		}
		if resp.Has("code") {
			t.Fatalf("request %q got a code without a session: %s %v", query, loc, resp)
		}
		if resp.Get("state") != params.Get("state") || resp.Get("error") == "" {
			t.Fatalf("request %q: response %v to %s lacks its state or error", query, resp, loc)
		}
	})
}

// The form of a form_post page, and its fields.
var (
	formPostForm  = regexp.MustCompile(`<form method="post" action="([^"]*)">`)
	formPostField = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)
)
