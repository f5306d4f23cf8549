// Package ident checks the identifiers that come from outside (realm names, client
// IDs, usernames, login names and tokens) for length and alphabet, so that nothing
// unbounded reaches a cache, a store or a log. The seed file is checked by the same
// rules, so every name that can be stored passes them at the edge.
package ident

import (
	"errors"
	"unicode"
	"unicode/utf8"
)

// The longest identifier of each kind, in bytes.
const (
	MaxRealm    = 63
	MaxClientID = 128
	MaxUsername = 128
	MaxRole     = 128
	// MaxLoginName is the longest email address (RFC 5321 §4.5.3.1.3 allows a
	// 256-octet path, two of them the angle brackets); a username is shorter.
	MaxLoginName = 254
	// MaxToken bounds tokens and codes: ours are well under 2 KiB, an access token
	// with many scopes and audiences a few KiB.
	MaxToken = 16 << 10
)

var (
	errRealm     = errors.New("must be 1-63 lower-case letters, digits, '-' or '_'")
	errClientID  = errors.New("must be 1-128 letters, digits or . _ : -")
	errUsername  = errors.New("must be 1-128 letters, digits or . _ @ + -")
	errRole      = errors.New("must be 1-128 letters, digits or . _ : -")
	errLoginName = errors.New("must be 1-254 characters, none of them control characters")
	errToken     = errors.New("must be 1-16384 visible ASCII characters")
)

// Realm checks a realm name: the path segment in /realms/{name}.
func Realm(s string) error {
	return ascii(s, MaxRealm, errRealm, isLowerAlnum, func(c byte) bool { return isLowerAlnum(c) || c == '-' || c == '_' })
}

// ClientID checks a client ID.
func ClientID(s string) error {
	return ascii(s, MaxClientID, errClientID, isAlnum, func(c byte) bool { return isAlnum(c) || c == '.' || c == '_' || c == ':' || c == '-' })
}

// Role checks a role name (a path segment in the admin API, a claim value in
// tokens): the alphabet of client IDs.
func Role(s string) error {
	return ascii(s, MaxRole, errRole, isAlnum, func(c byte) bool { return isAlnum(c) || c == '.' || c == '_' || c == ':' || c == '-' })
}

// Username checks a username as stored: lower-cased.
func Username(s string) error {
	return ascii(s, MaxUsername, errUsername, isLowerAlnum, func(c byte) bool {
		return isLowerAlnum(c) || c == '.' || c == '_' || c == '@' || c == '+' || c == '-'
	})
}

// LoginName checks what a user may type to sign in: a username or an email
// address, which may be internationalised.
func LoginName(s string) error {
	if len(s) == 0 || len(s) > MaxLoginName || !utf8.ValidString(s) {
		return errLoginName
	}
	for _, r := range s {
		if !unicode.IsGraphic(r) {
			return errLoginName
		}
	}
	return nil
}

// Token checks a token or code presented by a client: an access, refresh or ID
// token, or an authorization code.
func Token(s string) error {
	visible := func(c byte) bool { return c > ' ' && c < 0x7f }
	return ascii(s, MaxToken, errToken, visible, visible)
}

// ascii checks that s has 1 to max bytes, the first passing first and the others
// rest.
func ascii(s string, max int, err error, first, rest func(byte) bool) error {
	if len(s) == 0 || len(s) > max || !first(s[0]) {
		return err
	}
	for i := 1; i < len(s); i++ {
		if !rest(s[i]) {
			return err
		}
	}
	return nil
}

func isLowerAlnum(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }

func isAlnum(c byte) bool { return isLowerAlnum(c) || 'A' <= c && c <= 'Z' }
