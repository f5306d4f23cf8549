package registry

import (
	"errors"
	"strings"
	"testing"
)

// A web origin is compared with the browser's Origin header as a string, so it
// must be written as browsers send it (RFC 6454 §6.1); "*" is refused because
// the endpoints allow credentials.
func TestWebOrigins(t *testing.T) {
	tests := []struct {
		origin  string
		wantErr string // substring; "" means accepted
	}{
		{origin: "https://app.example.com"},
		{origin: "http://localhost:3000"},
		{origin: "http://127.0.0.1:8081"},
		{origin: "http://[::1]:8081"},
		{origin: "https://app.example.com:8443"},
		{origin: "+"},
		{origin: "*", wantErr: "credentials"},
		{origin: "https://app.example.com/", wantErr: "drop everything after"},
		{origin: "https://app.example.com/cb", wantErr: "drop everything after"},
		{origin: "https://app.example.com?x=1", wantErr: "drop everything after"},
		{origin: "https://app.example.com#x", wantErr: "drop everything after"},
		{origin: "https://user@app.example.com", wantErr: "drop everything after"},
		{origin: "https://App.Example.com", wantErr: "lower case"},
		{origin: "HTTPS://app.example.com", wantErr: "lower case"},
		{origin: "https://app.example.com:443", wantErr: "default port"},
		{origin: "http://app.example.com:80", wantErr: "default port"},
		{origin: "app.example.com", wantErr: "not an origin"},
		{origin: "ftp://app.example.com", wantErr: "not an origin"},
		{origin: "https://", wantErr: "not an origin"},
		{origin: "", wantErr: "not an origin"},
	}
	for _, tc := range tests {
		cl := Client{ID: "web", RedirectURIs: []string{"https://app.example/cb"}, GrantTypes: []string{"authorization_code"},
			WebOrigins: []string{"https://ok.example", tc.origin}}
		err := CheckClient(&cl)
		if tc.wantErr == "" {
			if err != nil {
				t.Errorf("%q: refused: %v", tc.origin, err)
			}
			continue
		}
		var errs Errors
		if !errors.As(err, &errs) || len(errs) != 1 || !strings.Contains(err.Error(), tc.wantErr) || errs[0].Field() != "web_origins[1]" {
			t.Errorf("%q: error %v, want one on web_origins[1] saying %q", tc.origin, err, tc.wantErr)
		}
	}
}
