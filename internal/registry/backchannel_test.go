package registry

import (
	"errors"
	"strings"
	"testing"
)

// Back-Channel Logout 1.0 §2.2: the URI is absolute, without fragment; Latchkey
// also wants https, or plain http to loopback and only in dev mode.
func TestBackchannelLogoutURI(t *testing.T) {
	tests := []struct {
		uri, sessionRequired string
		wantErr              string // substring; "" means accepted
		wantPlainErr         bool   // refused outside dev mode
	}{
		{uri: "https://rp.example/logout"},
		{uri: "https://rp.example:8443/logout?x=1", sessionRequired: "yes"},
		{uri: "http://127.0.0.1:9000/logout", wantPlainErr: true},
		{uri: "http://[::1]:9000/logout", wantPlainErr: true},
		{uri: "http://localhost/logout", wantPlainErr: true},
		{uri: "http://rp.example/logout", wantErr: "must be https"},
		{uri: "https://rp.example/logout#frag", wantErr: "fragment"},
		{uri: "/logout", wantErr: "absolute"},
		{uri: "ftp://rp.example/logout", wantErr: "https"},
		{uri: "https://user:pw@rp.example/logout", wantErr: "credentials"},
		{sessionRequired: "yes", wantErr: "needs a backchannel_logout_uri"},
	}
	for _, tc := range tests {
		cl := Client{ID: "web", RedirectURIs: []string{"https://app.example/cb"}, GrantTypes: []string{"authorization_code"},
			BackchannelLogoutURI: tc.uri, BackchannelLogoutSessionRequired: tc.sessionRequired != ""}
		err := CheckClient(&cl)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%q: refused: %v", tc.uri, err)
		case tc.wantErr != "":
			var errs Errors
			if !errors.As(err, &errs) || !strings.Contains(err.Error(), tc.wantErr) || !strings.HasPrefix(errs[0].Field(), "backchannel_logout_") {
				t.Errorf("%q: error %v, want one on a backchannel_logout_ field saying %q", tc.uri, err, tc.wantErr)
			}
			continue
		}
		if err := CheckPlainHTTP(&cl, true); err != nil {
			t.Errorf("%q in dev mode: %v", tc.uri, err)
		}
		err = CheckPlainHTTP(&cl, false)
		if (err != nil) != tc.wantPlainErr {
			t.Errorf("%q outside dev mode: error %v, want one: %v", tc.uri, err, tc.wantPlainErr)
		}
	}
}
