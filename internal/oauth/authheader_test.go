package oauth

import (
	"encoding/base64"
	"net/url"
	"strings"
	"testing"
)

func basicHeader(scheme, id, secret string) string {
	return scheme + " " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}

func TestBasicCredentials(t *testing.T) {
	for _, tc := range []struct {
		header, id, secret string
		present, malformed bool
	}{
		{"", "", "", false, false},
		{"Bearer abc", "", "", false, false},
		{"Basicx abc", "", "", false, false},
		{basicHeader("Basic", "web", "s3cret"), "web", "s3cret", true, false},
		{basicHeader("basic", "web", "s3cret"), "web", "s3cret", true, false},
		{basicHeader("BASIC", "a:b c", "x%y+z:"), "a:b c", "x%y+z:", true, false},
		{"Basic  " + base64.StdEncoding.EncodeToString([]byte("web:s")), "web", "s", true, false},
		{"Basic " + base64.StdEncoding.EncodeToString([]byte(":")), "", "", true, false},
		{"Basic", "", "", true, true},
		{"Basic !!!", "", "", true, true},
		{"Basic " + base64.StdEncoding.EncodeToString([]byte("no-colon")), "", "", true, true},
		{"Basic " + base64.StdEncoding.EncodeToString([]byte("%zz:x")), "", "", true, true},
		{"Basic " + base64.StdEncoding.EncodeToString([]byte("x:%zz")), "", "", true, true},
	} {
		id, secret, present, err := basicCredentials(tc.header)
		if id != tc.id || secret != tc.secret || present != tc.present || (err != nil) != tc.malformed {
			t.Errorf("basicCredentials(%q) = %q, %q, %v, %v", tc.header, id, secret, present, err)
		}
	}
}

func TestAuthCredentialsSchemeIgnoresCase(t *testing.T) {
	for _, h := range []string{"Bearer t", "bearer t", "BEARER t", "bEaReR   t"} {
		if got, ok := authCredentials(h, "Bearer"); !ok || got != "t" {
			t.Errorf("authCredentials(%q) = %q, %v", h, got, ok)
		}
	}
	for _, h := range []string{"", "Bearert", "DPoP t", "Basic t", " Bearer t"} {
		if got, ok := authCredentials(h, "Bearer"); ok {
			t.Errorf("authCredentials(%q) = %q, true", h, got)
		}
	}
}

// Whatever the Authorization header holds, reading it never panics; Basic is
// recognised whatever its case; and any client ID and secret survive the
// form-then-base64 encoding of RFC 6749 §2.3.1 unchanged.
func FuzzBasicAuth(f *testing.F) {
	f.Add("web", "web-secret-123", "Basic d2ViOndlYi1zZWNyZXQtMTIz")
	f.Add("a:b", "c d%e+f", "basic YTpi")
	f.Add("", "", "BASIC Og==")
	f.Add("é", "\x00\xff", "Basic !!!")
	f.Add("x", "y", "Bearer eyJhbGciOiJub25lIn0.e30.")
	f.Fuzz(func(t *testing.T, id, secret, header string) {
		for _, scheme := range []string{"Basic", "basic", "BASIC"} {
			gotID, gotSecret, present, err := basicCredentials(basicHeader(scheme, id, secret))
			if !present || err != nil || gotID != id || gotSecret != secret {
				t.Fatalf("%s round trip of %q, %q = %q, %q, %v, %v", scheme, id, secret, gotID, gotSecret, present, err)
			}
		}

		gotID, gotSecret, present, err := basicCredentials(header)
		scheme, _, _ := strings.Cut(header, " ")
		if present != strings.EqualFold(scheme, "Basic") {
			t.Fatalf("basicCredentials(%q): present = %v", header, present)
		}
		if !present && err != nil {
			t.Fatalf("basicCredentials(%q): not Basic, yet %v", header, err)
		}
		if err == nil && present {
			// What was read reads the same once encoded again.
			id2, secret2, _, err2 := basicCredentials(basicHeader("Basic", gotID, gotSecret))
			if err2 != nil || id2 != gotID || secret2 != gotSecret {
				t.Fatalf("basicCredentials(%q) = %q, %q, which does not re-encode", header, gotID, gotSecret)
			}
		}
		if err != nil && (gotID != "" || gotSecret != "") {
			t.Fatalf("basicCredentials(%q) failed but returned %q, %q", header, gotID, gotSecret)
		}
	})
}
