package client

import (
	"errors"
	"fmt"
)

// Error is an error response of the token endpoint (RFC 6749 §5.2). Match a code
// with errors.Is(err, ErrInvalidGrant), or read the fields with errors.As.
type Error struct {
	StatusCode  int    // the HTTP status
	Code        string // "error"
	Description string // "error_description", for developers; may be empty
	URI         string // "error_uri"; may be empty
}

func (e *Error) Error() string {
	s := fmt.Sprintf("client: token endpoint: %d %s", e.StatusCode, e.Code)
	if e.Description != "" {
		s += ": " + e.Description
	}
	if e.URI != "" {
		s += " (" + e.URI + ")"
	}
	return s
}

// Is matches another *Error with the same Code, so the sentinels below work with
// errors.Is whatever the status and description.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code != "" && t.Code == e.Code
}

var (
	// ErrInvalidGrant: the refresh token is dead (expired, revoked, its family
	// revoked for reuse, its user disabled or signed out everywhere). It is final:
	// the Source clears its store and sends nothing more; sign the user in again.
	ErrInvalidGrant = &Error{Code: "invalid_grant"}
	// ErrInvalidClient: the client's authentication failed; the refresh token was
	// not looked at, so it stays usable once the credentials are fixed.
	ErrInvalidClient = &Error{Code: "invalid_client"}
)

var (
	// ErrNoRefreshToken: the store holds no refresh token (never saved, or cleared
	// after ErrInvalidGrant or ErrAnswerLost); sign the user in again.
	ErrNoRefreshToken = errors.New("client: no refresh token stored; sign the user in again")

	// ErrAnswerLost: a refresh reached the server but its answer never came back,
	// and the retry window passed before a retry got it. The server has probably
	// rotated the token, so presenting it again would look like theft and revoke
	// the whole family; the Source forgets it instead. Sign the user in again.
	ErrAnswerLost = errors.New("client: a refresh's answer was lost and its retry window has passed; sign the user in again")

	// ErrNotSaved: the server rotated the refresh token but the store could not
	// save its successor, so no access token was handed out. The Source keeps the
	// successor in memory and saves it again at the next Token call.
	ErrNotSaved = errors.New("client: the rotated refresh token could not be saved")
)
