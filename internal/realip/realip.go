// Package realip resolves the address of the client that sent a request,
// believing X-Forwarded-For and Forwarded (RFC 7239) only from trusted proxies.
package realip

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Resolver finds a request's client address. The zero value (and nil) trusts no
// proxy: the client is always the TCP peer and forwarding headers are ignored.
//
// When the peer is a trusted proxy, each forwarding header is walked right to
// left (the nearest hop first), skipping trusted addresses; the first untrusted
// address is the client. Everything left of it was written by that client or
// by hops we do not trust, and is never read, so a client cannot choose its
// address by sending the headers itself. If every hop is trusted, the farthest
// one is the client (an internal caller behind the proxy).
//
// When the resolver cannot tell safely, it answers with the peer: never with an
// address it cannot vouch for. That is when a hop it must read (one right of the
// first untrusted address) is not an address ("unknown", an obfuscated name, a
// missing for=, garbage), when the Forwarded header does not parse, when the
// headers name no hop at all, and when both headers are present but name
// different clients: one of them then came from the client, and which one
// cannot be known. A proxy should therefore set one of the two headers and drop
// the other if the client sent it.
type Resolver struct {
	trusted []netip.Prefix
}

// New returns a Resolver that believes forwarding headers from peers in trusted.
func New(trusted []netip.Prefix) *Resolver {
	return &Resolver{trusted: trusted}
}

// ParsePrefixes parses a comma-separated list of CIDRs or single addresses
// ("10.0.0.0/8, 192.0.2.1, ::1"). An empty list gives no prefixes.
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if strings.Contains(f, "/") {
			p, err := netip.ParsePrefix(f)
			if err != nil {
				return nil, fmt.Errorf("%q is not a CIDR (want e.g. 10.0.0.0/8 or 2001:db8::/32)", f)
			}
			if p.Addr().Is4In6() {
				if p.Bits() < 96 {
					return nil, fmt.Errorf("%q is not a CIDR (want e.g. 10.0.0.0/8 or 2001:db8::/32)", f)
				}
				p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("%q is not an IP address or CIDR", f)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// ClientIP returns the address of the client that sent req, as text.
func (r *Resolver) ClientIP(req *http.Request) string {
	host, _, err := net.SplitHostPort(req.RemoteAddr)
	if err != nil {
		host = req.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return host // not an IP peer (a test, a Unix socket): nothing to resolve
	}
	peer = clean(peer)
	if r == nil || !r.isTrusted(peer) {
		return peer.String()
	}
	if client, ok := r.fromHeaders(req.Header); ok {
		return client.String()
	}
	return peer.String()
}

// fromHeaders resolves the client from the forwarding headers of a request whose
// peer is trusted; ok is false when that cannot be done safely.
func (r *Resolver) fromHeaders(h http.Header) (netip.Addr, bool) {
	xff, hasXFF := xForwardedFor(h)
	fwd, hasFwd, fwdOK := forwarded(h)
	var fromXFF, fromFwd netip.Addr
	var ok bool
	if hasXFF {
		if fromXFF, ok = r.walk(xff); !ok {
			return netip.Addr{}, false
		}
	}
	if hasFwd {
		if !fwdOK {
			return netip.Addr{}, false
		}
		if fromFwd, ok = r.walk(fwd); !ok {
			return netip.Addr{}, false
		}
	}
	switch {
	case hasXFF && hasFwd:
		return fromXFF, fromXFF == fromFwd
	case hasXFF:
		return fromXFF, true
	case hasFwd:
		return fromFwd, true
	}
	return netip.Addr{}, false
}

// walk returns the first untrusted address of hops read from the right, or the
// farthest hop if all are trusted; ok is false if a hop it reads is not an
// address.
func (r *Resolver) walk(hops []string) (netip.Addr, bool) {
	var a netip.Addr
	for i := len(hops) - 1; i >= 0; i-- {
		var ok bool
		if a, ok = parseNode(hops[i]); !ok {
			return netip.Addr{}, false
		}
		if !r.isTrusted(a) {
			return a, true
		}
	}
	return a, true
}

func (r *Resolver) isTrusted(a netip.Addr) bool {
	for _, p := range r.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// xForwardedFor returns the hops of every X-Forwarded-For line, in order, with
// empty list elements dropped; present is false when there are none.
func xForwardedFor(h http.Header) (hops []string, present bool) {
	for _, line := range h.Values("X-Forwarded-For") {
		for _, f := range strings.Split(line, ",") {
			if f = strings.TrimSpace(f); f != "" {
				hops = append(hops, f)
			}
		}
	}
	return hops, len(hops) > 0
}

// forwarded returns the for= value of each element of every Forwarded line, in
// order ("" for an element without one); present is false when there are no
// elements, ok is false when the header does not parse.
func forwarded(h http.Header) (hops []string, present, ok bool) {
	for _, line := range h.Values("Forwarded") {
		fors, ok := parseForwarded(line)
		if !ok {
			return nil, true, false
		}
		hops = append(hops, fors...)
	}
	return hops, len(hops) > 0, true
}

// parseForwarded parses one Forwarded field value (RFC 7239 §4):
//
//	Forwarded         = 1#forwarded-element
//	forwarded-element = [ forwarded-pair ] *( ";" [ forwarded-pair ] )
//	forwarded-pair    = token "=" value
//	value             = token / quoted-string
//
// and returns each non-empty element's for= value. Whitespace around the
// separators is tolerated, and an unquoted value may also hold ':', '[' and ']'
// (written by some proxies without the quotes the RFC asks for). A parameter
// given twice in one element is an error (§4: it MUST NOT occur more than once).
func parseForwarded(v string) (fors []string, ok bool) {
	var forValue string
	var seen map[string]bool
	pairs := 0
	i := 0
	for {
		i = skipSpace(v, i)
		if i < len(v) && v[i] != ',' && v[i] != ';' {
			j := i
			for j < len(v) && isTokenChar(v[j]) {
				j++
			}
			if j == i || j == len(v) || v[j] != '=' {
				return nil, false
			}
			name := strings.ToLower(v[i:j])
			var value string
			if i = j + 1; i < len(v) && v[i] == '"' {
				if value, i, ok = quotedString(v, i); !ok {
					return nil, false
				}
			} else {
				j = i
				for j < len(v) && (isTokenChar(v[j]) || v[j] == ':' || v[j] == '[' || v[j] == ']') {
					j++
				}
				if j == i {
					return nil, false
				}
				value, i = v[i:j], j
			}
			if seen[name] {
				return nil, false
			}
			if seen == nil {
				seen = map[string]bool{}
			}
			seen[name] = true
			if name == "for" {
				forValue = value
			}
			pairs++
			i = skipSpace(v, i)
		}
		if i == len(v) || v[i] == ',' {
			if pairs > 0 { // an empty list element is ignored (RFC 9110 §5.6.1)
				fors = append(fors, forValue)
			}
			if i == len(v) {
				return fors, true
			}
			forValue, seen, pairs = "", nil, 0
			i++
			continue
		}
		if v[i] != ';' {
			return nil, false
		}
		i++
	}
}

// quotedString reads the quoted-string starting at v[i] (a '"') and returns its
// unescaped content and the index after the closing quote.
func quotedString(v string, i int) (string, int, bool) {
	var b strings.Builder
	for i++; i < len(v); i++ {
		switch c := v[i]; c {
		case '"':
			return b.String(), i + 1, true
		case '\\':
			if i++; i == len(v) {
				return "", 0, false
			}
			b.WriteByte(v[i])
		default:
			if c < 0x20 && c != '\t' || c == 0x7f {
				return "", 0, false
			}
			b.WriteByte(c)
		}
	}
	return "", 0, false
}

func skipSpace(v string, i int) int {
	for i < len(v) && (v[i] == ' ' || v[i] == '\t') {
		i++
	}
	return i
}

// isTokenChar reports whether c is a tchar (RFC 9110 §5.6.2).
func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// parseNode parses a hop: an address, optionally with a port, as X-Forwarded-For
// and Forwarded's for= (RFC 7239 §6) write it: 192.0.2.7, 192.0.2.7:4711,
// 2001:db8::7, [2001:db8::7] or [2001:db8::7]:4711. "unknown", an obfuscated
// identifier (_hidden) and anything else are not addresses.
func parseNode(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return clean(a), true
	}
	host, port, bracketed := s, "", strings.HasPrefix(s, "[")
	if bracketed {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return netip.Addr{}, false
		}
		host, port = s[1:end], s[end+1:]
	} else if i := strings.LastIndexByte(s, ':'); i >= 0 {
		host, port = s[:i], s[i:]
		if strings.Contains(host, ":") { // an IPv6 address with a port must be bracketed
			return netip.Addr{}, false
		}
	}
	if port != "" && (port[0] != ':' || !validPort(port[1:])) {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(host)
	if err != nil || bracketed && !a.Is6() {
		return netip.Addr{}, false
	}
	return clean(a), true
}

// validPort accepts a port number or an obfuscated port (RFC 7239 §6.3).
func validPort(p string) bool {
	if p == "" {
		return false
	}
	if p[0] == '_' {
		for i := 1; i < len(p); i++ {
			if c := p[i]; !(isAlnum(c) || c == '.' || c == '_' || c == '-') {
				return false
			}
		}
		return len(p) > 1
	}
	if len(p) > 5 {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// clean drops a zone and unmaps an IPv4-mapped IPv6 address, so 192.0.2.7 and
// ::ffff:192.0.2.7 are one client and match the same prefixes.
func clean(a netip.Addr) netip.Addr {
	return a.WithZone("").Unmap()
}
