// Package protocol owns the one OAuth protocol error: its RFC code, a description
// safe for the wire, its HTTP status and the cause that is only logged, and how it
// writes itself as a token-endpoint JSON error (RFC 6749 §5.2), as
// authorization-response parameters (RFC 6749 §4.1.2.1) and as a Bearer challenge
// (RFC 6750 §3).
package protocol

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Code is an OAuth error code (RFC 6749 §4.1.2.1 and §5.2, RFC 6750 §3.1, RFC 7009
// §2.2.1, RFC 8707 §2, OIDC Core §3.1.2.6, RFC 9101 §6, RFC 9449 §5 and §7.1).
type Code string

// The error codes Latchkey answers with.
const (
	InvalidRequest          Code = "invalid_request"
	InvalidClient           Code = "invalid_client"
	InvalidGrant            Code = "invalid_grant"
	UnauthorizedClient      Code = "unauthorized_client"
	UnsupportedGrantType    Code = "unsupported_grant_type"
	InvalidScope            Code = "invalid_scope"
	InvalidTarget           Code = "invalid_target"
	UnsupportedTokenType    Code = "unsupported_token_type"
	ServerError             Code = "server_error"
	NotFound                Code = "not_found"
	TemporarilyUnavailable  Code = "temporarily_unavailable"
	AccessDenied            Code = "access_denied"
	UnsupportedResponseType Code = "unsupported_response_type"
	LoginRequired           Code = "login_required"
	ConsentRequired         Code = "consent_required"
	RequestNotSupported     Code = "request_not_supported"
	RequestURINotSupported  Code = "request_uri_not_supported"
	InvalidToken            Code = "invalid_token"
	InsufficientScope       Code = "insufficient_scope"
	// RFC 9449 §5, §7.1: a DPoP proof that is refused.
	InvalidDPoPProof Code = "invalid_dpop_proof"
	// RFC 9449 §8, §9: the proof must carry the server nonce sent in DPoP-Nonce.
	UseDPoPNonce Code = "use_dpop_nonce"
)

// Error is a protocol error. Only Code and Description ever reach the wire; Cause
// is for the log.
type Error struct {
	Code        Code
	Description string
	Status      int
	// Basic is set when the client tried HTTP Basic: a 401 then carries
	// WWW-Authenticate: Basic (RFC 6749 §5.2).
	Basic bool
	// RetryAfter, when set, goes out as Retry-After in whole seconds (RFC 9110 §10.2.3).
	RetryAfter time.Duration
	Cause      error
}

// New makes an Error with the status its code is answered with.
func New(code Code, description string) *Error {
	return &Error{Code: code, Description: description, Status: StatusOf(code)}
}

// Wrap is New with the cause that is logged.
func Wrap(code Code, description string, cause error) *Error {
	e := New(code, description)
	e.Cause = cause
	return e
}

// NoToken is the refusal of a request that sent no Bearer token at all: a bare
// challenge without an error code (RFC 6750 §3.1), and the only Error without one.
func NoToken() *Error { return &Error{Status: http.StatusUnauthorized} }

// StatusOf is the HTTP status a code is answered with: RFC 6749 §5.2 (400, 401 for
// invalid_client), RFC 6750 §3.1 (401 invalid_token, 403 insufficient_scope), 503
// for temporarily_unavailable, 500 for server_error.
func StatusOf(code Code) int {
	switch code {
	case InvalidClient, InvalidToken:
		return http.StatusUnauthorized
	case InsufficientScope:
		return http.StatusForbidden
	case ServerError:
		return http.StatusInternalServerError
	case TemporarilyUnavailable:
		return http.StatusServiceUnavailable
	case NotFound:
		return http.StatusNotFound
	}
	return http.StatusBadRequest
}

func (e *Error) Error() string {
	s := string(e.Code)
	if e.Description != "" {
		s += ": " + e.Description
	}
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Cause }

// Is matches another *Error by code, so errors.Is(err, protocol.New(InvalidClient, ""))
// holds for any invalid_client.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// body is the JSON shape of an error (RFC 6749 §5.2, RFC 6750 §3): a struct, not a
// map, as it is encoded in the same key order for less.
type body struct {
	Error       Code   `json:"error,omitempty"`
	Description string `json:"error_description,omitempty"`
}

// WriteJSON answers the error as RFC 6749 §5.2 JSON, with WWW-Authenticate: Basic on
// a 401 when the client used Basic, and Retry-After when set.
func (e *Error) WriteJSON(w http.ResponseWriter) {
	e.headers(w)
	WriteJSON(w, e.Status, body{e.Code, e.Description})
}

func (e *Error) headers(w http.ResponseWriter) {
	if e.Status == http.StatusUnauthorized && e.Basic {
		w.Header().Set("WWW-Authenticate", `Basic realm="latchkey", charset="UTF-8"`)
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(Seconds(e.RetryAfter)))
	}
}

// RedirectParams are the error's authorization-response parameters (RFC 6749
// §4.1.2.1); the caller adds state and iss and sends them in the response mode.
func (e *Error) RedirectParams() url.Values {
	v := url.Values{"error": {string(e.Code)}}
	if e.Description != "" {
		v["error_description"] = []string{e.Description}
	}
	return v
}

// WriteBearer answers the error as a refused Bearer credential (RFC 6750 §3):
// WWW-Authenticate: Bearer with the realm (and the error and its description when
// it has a code) and the same as a JSON body.
func (e *Error) WriteBearer(w http.ResponseWriter, realm string) {
	e.writeChallenge(w, "Bearer", realm, "")
}

// WriteDPoP answers the error as a refused DPoP credential (RFC 9449 §7.1):
// WWW-Authenticate: DPoP with the realm, the error and its description when it
// has a code, and the proof algorithms accepted (algs), and the same as a JSON body.
func (e *Error) WriteDPoP(w http.ResponseWriter, realm string, algs []string) {
	a := ""
	for i, alg := range algs {
		if i > 0 {
			a += " "
		}
		a += alg
	}
	e.writeChallenge(w, "DPoP", realm, `algs="`+a+`"`)
}

func (e *Error) writeChallenge(w http.ResponseWriter, scheme, realm, extra string) {
	v := scheme + ` realm="` + realm + `"`
	if e.Code != "" {
		v += `, error="` + string(e.Code) + `", error_description="` + e.Description + `"`
	}
	if extra != "" {
		v += ", " + extra
	}
	w.Header().Set("WWW-Authenticate", v)
	e.headers(w)
	WriteJSON(w, e.Status, body{e.Code, e.Description})
}

// Seconds is d in whole seconds, rounded up: a client told to retry must not come
// back before it may.
func Seconds(d time.Duration) int {
	return int((d + time.Second - 1) / time.Second)
}

// Header values every JSON response carries. Never appended to: each is assigned
// whole, and a later Add copies (len == cap).
var (
	jsonType = []string{"application/json"}
	noStore  = []string{"no-store"}
	noCache  = []string{"no-cache"}
)

// WriteJSON writes a JSON response that no cache may keep (RFC 6749 §5.1).
func WriteJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	// Assigned rather than Set: the keys are canonical already, and the shared
	// one-element values spare three allocations per response.
	h["Content-Type"], h["Cache-Control"], h["Pragma"] = jsonType, noStore, noCache
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// WriteBody writes v as the JSON body of a 200 response whose headers are set.
func WriteBody(w http.ResponseWriter, v any) {
	w.WriteHeader(http.StatusOK)
	json.NewEncoder(w).Encode(v)
}
