package realip

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

func TestClientIP(t *testing.T) {
	trusted, err := ParsePrefixes("10.0.0.0/8, 127.0.0.1, 2001:db8:ffff::/48")
	if err != nil {
		t.Fatal(err)
	}
	const proxy = "10.0.0.1:40000"
	cases := []struct {
		name    string
		peer    string
		xff     []string // X-Forwarded-For lines
		fwd     []string // Forwarded lines
		want    string
		noTrust bool // resolve with no trusted proxies
	}{
		{name: "no headers", peer: "192.0.2.1:1234", want: "192.0.2.1"},
		{name: "untrusted peer: headers ignored", peer: "192.0.2.1:1234", xff: []string{"198.51.100.9"}, want: "192.0.2.1"},
		{name: "untrusted peer: Forwarded ignored", peer: "192.0.2.1:1234", fwd: []string{"for=198.51.100.9"}, want: "192.0.2.1"},
		{name: "no trusted proxies: headers ignored", peer: proxy, xff: []string{"198.51.100.9"}, fwd: []string{"for=198.51.100.9"}, want: "10.0.0.1", noTrust: true},
		{name: "IPv6 peer", peer: "[2001:db8::1]:443", want: "2001:db8::1"},
		{name: "IPv4-mapped peer", peer: "[::ffff:192.0.2.1]:443", want: "192.0.2.1"},
		{name: "peer without a port", peer: "192.0.2.1", want: "192.0.2.1"},
		{name: "peer not an address", peer: "@", xff: []string{"198.51.100.9"}, want: "@"},

		{name: "trusted peer, one hop", peer: proxy, xff: []string{"198.51.100.9"}, want: "198.51.100.9"},
		{name: "trusted peer without headers", peer: proxy, want: "10.0.0.1"},
		{name: "chain of trusted proxies", peer: proxy, xff: []string{"198.51.100.9, 10.1.2.3, 10.0.0.2"}, want: "198.51.100.9"},
		{name: "several header lines are one list", peer: proxy, xff: []string{"198.51.100.9", "10.1.2.3"}, want: "198.51.100.9"},
		{name: "every hop trusted: the farthest", peer: proxy, xff: []string{"10.9.9.9, 10.0.0.2"}, want: "10.9.9.9"},
		{name: "IPv6 hop", peer: proxy, xff: []string{"2001:db8::7"}, want: "2001:db8::7"},
		{name: "IPv4 hop with a port", peer: proxy, xff: []string{"198.51.100.9:4711"}, want: "198.51.100.9"},
		{name: "bracketed IPv6 hop with a port", peer: proxy, xff: []string{"[2001:db8::7]:4711"}, want: "2001:db8::7"},
		{name: "IPv4-mapped hop", peer: proxy, xff: []string{"::ffff:198.51.100.9"}, want: "198.51.100.9"},
		{name: "empty list elements", peer: proxy, xff: []string{" , 198.51.100.9 ,, "}, want: "198.51.100.9"},
		{name: "IPv6 trusted proxy peer", peer: "[2001:db8:ffff::5]:443", xff: []string{"198.51.100.9"}, want: "198.51.100.9"},

		// Spoofing: whatever the client writes sits left of what the trusted proxy
		// appended, and is never read.
		{name: "spoofed XFF is left of the real client", peer: proxy, xff: []string{"1.2.3.4, 198.51.100.9"}, want: "198.51.100.9"},
		{name: "spoofed trusted address", peer: proxy, xff: []string{"10.0.0.9, 198.51.100.9"}, want: "198.51.100.9"},
		{name: "spoofed line before the proxy's", peer: proxy, xff: []string{"1.2.3.4", "198.51.100.9"}, want: "198.51.100.9"},
		{name: "garbage left of the client is not read", peer: proxy, xff: []string{"not-an-ip, 198.51.100.9"}, want: "198.51.100.9"},
		{name: "spoofed Forwarded is left of the real client", peer: proxy, fwd: []string{`for=1.2.3.4, for=198.51.100.9`}, want: "198.51.100.9"},

		// Malformed where it matters: the peer.
		{name: "malformed nearest hop", peer: proxy, xff: []string{"198.51.100.9, bogus"}, want: "10.0.0.1"},
		{name: "unknown behind a trusted hop", peer: proxy, xff: []string{"198.51.100.9, unknown, 10.0.0.2"}, want: "10.0.0.1"},
		{name: "unbracketed IPv6 with a port", peer: proxy, xff: []string{"2001:db8::7:4711x"}, want: "10.0.0.1"},
		{name: "XFF with only empty elements", peer: proxy, xff: []string{" , "}, want: "10.0.0.1"},
		{name: "hop with a zone", peer: proxy, xff: []string{"fe80::1%eth0"}, want: "fe80::1"},

		// Forwarded (RFC 7239).
		{name: "Forwarded for", peer: proxy, fwd: []string{"for=198.51.100.9"}, want: "198.51.100.9"},
		{name: "Forwarded parameter names are case-insensitive", peer: proxy, fwd: []string{"For=198.51.100.9"}, want: "198.51.100.9"},
		{name: "Forwarded with other parameters", peer: proxy, fwd: []string{"by=10.0.0.1;for=198.51.100.9;host=id.example.com;proto=https"}, want: "198.51.100.9"},
		{name: "Forwarded quoted IPv4 with a port", peer: proxy, fwd: []string{`for="198.51.100.9:4711"`}, want: "198.51.100.9"},
		{name: "Forwarded quoted bracketed IPv6", peer: proxy, fwd: []string{`for="[2001:db8::7]"`}, want: "2001:db8::7"},
		{name: "Forwarded quoted bracketed IPv6 with a port", peer: proxy, fwd: []string{`for="[2001:db8::7]:4711"`}, want: "2001:db8::7"},
		{name: "Forwarded unquoted bracketed IPv6 (lenient)", peer: proxy, fwd: []string{`for=[2001:db8::7]:4711`}, want: "2001:db8::7"},
		{name: "Forwarded obfuscated port", peer: proxy, fwd: []string{`for="198.51.100.9:_abc"`}, want: "198.51.100.9"},
		{name: "Forwarded quoted-pair", peer: proxy, fwd: []string{`for="198.51.100\.9"`}, want: "198.51.100.9"},
		{name: "Forwarded chain with spaces", peer: proxy, fwd: []string{`for=198.51.100.9 , for="[2001:db8:ffff::2]" ; proto=https`}, want: "198.51.100.9"},
		{name: "Forwarded over several lines", peer: proxy, fwd: []string{`for=198.51.100.9`, `for=10.0.0.2`}, want: "198.51.100.9"},
		{name: "Forwarded empty elements ignored", peer: proxy, fwd: []string{`, for=198.51.100.9 ,,`}, want: "198.51.100.9"},
		{name: "Forwarded unknown", peer: proxy, fwd: []string{`for=unknown`}, want: "10.0.0.1"},
		{name: "Forwarded obfuscated node", peer: proxy, fwd: []string{`for=_hidden`}, want: "10.0.0.1"},
		{name: "Forwarded element without for", peer: proxy, fwd: []string{`for=198.51.100.9, proto=https`}, want: "10.0.0.1"},
		{name: "Forwarded bracketed IPv4", peer: proxy, fwd: []string{`for="[198.51.100.9]"`}, want: "10.0.0.1"},
		{name: "Forwarded unterminated quote", peer: proxy, fwd: []string{`for="198.51.100.9`}, want: "10.0.0.1"},
		{name: "Forwarded unterminated quote swallows the proxy's element", peer: proxy, fwd: []string{`for="1.2.3.4, for=198.51.100.9`}, want: "10.0.0.1"},
		{name: "Forwarded for twice in an element", peer: proxy, fwd: []string{`for=1.2.3.4;for=198.51.100.9`}, want: "10.0.0.1"},
		{name: "Forwarded missing value", peer: proxy, fwd: []string{`for=`}, want: "10.0.0.1"},
		{name: "Forwarded not a pair", peer: proxy, fwd: []string{`198.51.100.9`}, want: "10.0.0.1"},
		{name: "a bad Forwarded line spoils the header", peer: proxy, fwd: []string{`for=1.2.3.4;;x`, `for="`}, want: "10.0.0.1"},

		// Both headers: they must agree.
		{name: "both agree", peer: proxy, xff: []string{"198.51.100.9"}, fwd: []string{`for=198.51.100.9`}, want: "198.51.100.9"},
		{name: "both agree after different trusted hops", peer: proxy, xff: []string{"198.51.100.9, 10.0.0.2"}, fwd: []string{`for=198.51.100.9`}, want: "198.51.100.9"},
		{name: "both disagree: one is forged", peer: proxy, xff: []string{"198.51.100.9"}, fwd: []string{`for=1.2.3.4`}, want: "10.0.0.1"},
		{name: "forged Forwarded that does not parse", peer: proxy, xff: []string{"198.51.100.9"}, fwd: []string{`for="`}, want: "10.0.0.1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := New(trusted)
			if tc.noTrust {
				r = New(nil)
			}
			req, _ := http.NewRequest("GET", "/", nil)
			req.RemoteAddr = tc.peer
			for _, v := range tc.xff {
				req.Header.Add("X-Forwarded-For", v)
			}
			for _, v := range tc.fwd {
				req.Header.Add("Forwarded", v)
			}
			if got := r.ClientIP(req); got != tc.want {
				t.Fatalf("ClientIP = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestNilResolverIsThePeer(t *testing.T) {
	req, _ := http.NewRequest("GET", "/", nil)
	req.RemoteAddr = "10.0.0.1:5"
	req.Header.Set("X-Forwarded-For", "198.51.100.9")
	var r *Resolver
	if got := r.ClientIP(req); got != "10.0.0.1" {
		t.Fatalf("ClientIP = %q", got)
	}
}

func TestParsePrefixes(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    string // prefixes joined by " "
		wantErr string
	}{
		{in: "", want: ""},
		{in: " , ", want: ""},
		{in: "127.0.0.1/32", want: "127.0.0.1/32"},
		{in: "10.1.2.3/8", want: "10.0.0.0/8"},
		{in: "192.0.2.1, 2001:db8::1", want: "192.0.2.1/32 2001:db8::1/128"},
		{in: "2001:db8::/32,10.0.0.0/8", want: "2001:db8::/32 10.0.0.0/8"},
		{in: "::ffff:10.0.0.0/104", want: "10.0.0.0/8"},
		{in: "::ffff:10.0.0.1", want: "10.0.0.1/32"},
		{in: "10.0.0.0/33", wantErr: `"10.0.0.0/33" is not a CIDR`},
		{in: "10.0.0.0/8, nope", wantErr: `"nope" is not an IP address or CIDR`},
		{in: "10.0.0", wantErr: "not an IP address"},
		{in: "fe80::1%eth0", wantErr: "not an IP address"},
		{in: "::ffff:10.0.0.0/8", wantErr: "not a CIDR"},
	} {
		got, err := ParsePrefixes(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParsePrefixes(%q) err = %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		var s []string
		for _, p := range got {
			s = append(s, p.String())
		}
		if err != nil || strings.Join(s, " ") != tc.want {
			t.Errorf("ParsePrefixes(%q) = %v, %v; want %q", tc.in, s, err, tc.want)
		}
	}
}

func FuzzClientIP(f *testing.F) {
	f.Add("198.51.100.9, 10.0.0.2", `for="[2001:db8::7]:4711";proto=https, for=10.0.0.2`)
	f.Add("", `for="1.2.3.4, for=5.6.7.8`)
	f.Add("unknown", "for=_hidden")
	trusted, _ := ParsePrefixes("10.0.0.0/8")
	r := New(trusted)
	f.Fuzz(func(t *testing.T, xff, fwd string) {
		req, _ := http.NewRequest("GET", "/", nil)
		req.RemoteAddr = "10.0.0.1:1"
		req.Header.Set("X-Forwarded-For", xff)
		req.Header.Set("Forwarded", fwd)
		// Whatever the headers hold, the answer is an address, never header text.
		if got := r.ClientIP(req); !netip.MustParseAddr(got).IsValid() {
			t.Fatalf("ClientIP = %q", got)
		}
	})
}
