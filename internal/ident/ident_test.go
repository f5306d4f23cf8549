package ident

import (
	"strings"
	"testing"
)

func TestRules(t *testing.T) {
	tests := []struct {
		kind  string
		check func(string) error
		ok    []string
		bad   []string
	}{
		{"realm", Realm,
			[]string{"acme", "a", "0", "my-realm_2", strings.Repeat("r", MaxRealm)},
			[]string{"", "Acme", "-acme", "_acme", "ac me", "ac.me", "acme/x", "ac%me", "é", strings.Repeat("r", MaxRealm+1)}},
		{"client ID", ClientID,
			[]string{"web", "W", "9", "my.app_2:prod-1", strings.Repeat("c", MaxClientID)},
			[]string{"", ".web", ":web", "we b", "web\n", "web/x", "web@x", "wéb", strings.Repeat("c", MaxClientID+1)}},
		{"role", Role,
			[]string{"user", "Admin", "default-roles-acme", "offline_access", "orders:read", strings.Repeat("r", MaxRole)},
			[]string{"", "-user", "us er", "user/x", "usér", "a\nb", strings.Repeat("r", MaxRole+1)}},
		{"username", Username,
			[]string{"alice", "a.b_c+d-e@example.com", "7", strings.Repeat("u", MaxUsername)},
			[]string{"", "Alice", ".alice", "al ice", "alice\x00", "alicé", strings.Repeat("u", MaxUsername+1)}},
		{"login name", LoginName,
			[]string{"alice", "Alice Liddell", "o'brien@example.com", "jürgen@exämple.de", strings.Repeat("é", MaxLoginName/2)},
			[]string{"", "alice\n", "alice\x00", "\x7f", "al\u202eice", "\xff", strings.Repeat("l", MaxLoginName+1)}},
		{"token", Token,
			[]string{"eyJhbGciOiJFUzI1NiJ9.e30.sig", "lk_rt_AbC-_09", "~!", strings.Repeat("t", MaxToken)},
			[]string{"", "two words", "tab\t", "line\n", "\x7f", "é", strings.Repeat("t", MaxToken+1)}},
	}
	for _, tt := range tests {
		for _, s := range tt.ok {
			if err := tt.check(s); err != nil {
				t.Errorf("%s %.40q: %v; want accepted", tt.kind, s, err)
			}
		}
		for _, s := range tt.bad {
			err := tt.check(s)
			if err == nil {
				t.Errorf("%s %.40q accepted; want refused", tt.kind, s)
			} else if s != "" && strings.Contains(err.Error(), s) {
				t.Errorf("%s: the error %q repeats the input", tt.kind, err)
			}
		}
	}
}
