package dpop

import "testing"

// RFC 3986 §6.2.2 and §6.2.3 normalisation, as RFC 9449 §4.3 recommends for htu.
func TestNormaliseURI(t *testing.T) {
	for _, c := range []struct {
		in, want string
		ok       bool
	}{
		{"https://id.example.com/token", "https://id.example.com/token", true},
		{"HTTPS://ID.EXAMPLE.COM/token", "https://id.example.com/token", true},
		{"https://id.example.com:443/token", "https://id.example.com/token", true},
		{"http://id.example.com:80/token", "http://id.example.com/token", true},
		{"http://id.example.com:443/token", "http://id.example.com:443/token", true},
		{"https://id.example.com:8443/token", "https://id.example.com:8443/token", true},
		{"https://id.example.com", "https://id.example.com/", true},
		{"https://[::1]:443/token", "https://[::1]/token", true},
		{"https://[::1]:8443/token", "https://[::1]:8443/token", true},
		{"https://id.example.com/a/./b/../c", "https://id.example.com/a/c", true},
		{"https://id.example.com/../a", "https://id.example.com/a", true},
		{"https://id.example.com/%7euser", "https://id.example.com/~user", true},
		{"https://id.example.com/a%2fb", "https://id.example.com/a%2Fb", true}, // reserved: stays encoded
		{"https://id.example.com/Token", "https://id.example.com/Token", true}, // path case matters
		{"ftp://id.example.com/token", "", false},
		{"https:///token", "", false},
		{"/token", "", false},
		{"https://user@id.example.com/token", "", false},
		{"mailto:a@example.com", "", false},
		{"https://id.example.com:port/", "", false},
	} {
		got, ok := normaliseURI(c.in)
		if ok != c.ok || got != c.want {
			t.Errorf("normaliseURI(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}
