package oauth

import (
	"encoding/base64"
	"errors"
	"net/url"
	"strings"
)

// errMalformedBasic is the cause of a Basic header that cannot be read.
var errMalformedBasic = errors.New("malformed Basic credentials")

// authCredentials returns the credentials of an Authorization header value when
// it uses scheme. The scheme matches whatever its case (RFC 9110 §11.1); spaces
// separate it from the credentials.
func authCredentials(header, scheme string) (string, bool) {
	s, rest, _ := strings.Cut(header, " ")
	if !strings.EqualFold(s, scheme) {
		return "", false
	}
	return strings.TrimLeft(rest, " "), true
}

// basicCredentials reads client_secret_basic credentials (RFC 6749 §2.3.1 over
// RFC 7617): the client ID and secret, each form-decoded. present reports whether
// the header uses the Basic scheme at all; err, whether what follows is malformed.
func basicCredentials(header string) (id, secret string, present bool, err error) {
	enc, ok := authCredentials(header, "Basic")
	if !ok {
		return "", "", false, nil
	}
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return "", "", true, errMalformedBasic
	}
	id, secret, ok = strings.Cut(string(raw), ":")
	if !ok {
		return "", "", true, errMalformedBasic
	}
	id, err1 := url.QueryUnescape(id)
	secret, err2 := url.QueryUnescape(secret)
	if err1 != nil || err2 != nil {
		return "", "", true, errMalformedBasic
	}
	return id, secret, true, nil
}
