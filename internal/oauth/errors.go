package oauth

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/latchkey/latchkey/internal/web"
	"github.com/latchkey/latchkey/storage"
)

// Code is an OAuth error code (RFC 6749 §5.2, RFC 7009 §2.2.1, RFC 8707 §2).
type Code string

// The error codes Latchkey answers with.
const (
	InvalidRequest       Code = "invalid_request"
	InvalidClient        Code = "invalid_client"
	InvalidGrant         Code = "invalid_grant"
	UnauthorizedClient   Code = "unauthorized_client"
	UnsupportedGrantType Code = "unsupported_grant_type"
	InvalidScope         Code = "invalid_scope"
	InvalidTarget        Code = "invalid_target"
	UnsupportedTokenType Code = "unsupported_token_type"
	ServerError          Code = "server_error"
	NotFound             Code = "not_found"
)

// TemporarilyUnavailable (RFC 6749 §4.1.2.1) answers, with 503 and Retry-After,
// any request the store could not serve in time.
const TemporarilyUnavailable Code = "temporarily_unavailable"

// Error is a protocol error: the RFC code, a description safe for the wire, the HTTP
// status, and the cause, which is only ever logged.
type Error struct {
	Code        Code
	Description string
	Status      int
	// Basic is set when the client tried HTTP Basic: the 401 then carries
	// WWW-Authenticate: Basic (RFC 6749 §5.2).
	Basic bool
	// RetryAfter, when set, goes out as Retry-After in whole seconds (RFC 9110 §10.2.3).
	RetryAfter time.Duration
	Cause      error
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

// Is matches another *Error by code, so errors.Is(err, &Error{Code: InvalidClient}) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// newError makes an Error with the status RFC 6749 §5.2 gives its code.
func newError(code Code, description string) *Error {
	status := http.StatusBadRequest
	switch code {
	case InvalidClient:
		status = http.StatusUnauthorized
	case ServerError:
		status = http.StatusInternalServerError
	case TemporarilyUnavailable:
		status = http.StatusServiceUnavailable
	case NotFound:
		status = http.StatusNotFound
	}
	return &Error{Code: code, Description: description, Status: status}
}

// unavailableRetry is how long a 503 asks the client to wait before trying again.
const unavailableRetry = 5 * time.Second

// writeError is the one place a protocol error reaches the wire. A store that
// could not answer in time is a 503 temporarily_unavailable with Retry-After (an
// HTML page when a browser asked for one); anything else that is not an *Error is
// a server error. Causes are logged, never sent.
func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var e *Error
	switch {
	case errors.Is(err, storage.ErrUnavailable):
		e = &Error{Code: TemporarilyUnavailable, Description: "the service is temporarily unavailable; try again later",
			Status: http.StatusServiceUnavailable, RetryAfter: unavailableRetry, Cause: err}
	case !errors.As(err, &e):
		e = &Error{Code: ServerError, Description: "internal error", Status: http.StatusInternalServerError, Cause: err}
	}
	switch {
	case e.Code == TemporarilyUnavailable:
		h.log.WarnContext(r.Context(), "store unavailable", "path", r.URL.Path, "err", err)
	case e.Status >= 500:
		h.log.ErrorContext(r.Context(), "request failed", "path", r.URL.Path, "err", err)
	default:
		h.log.DebugContext(r.Context(), "request refused", "path", r.URL.Path, "code", string(e.Code), "err", err)
	}
	if e.Status == http.StatusUnauthorized && e.Basic {
		w.Header().Set("WWW-Authenticate", `Basic realm="latchkey", charset="UTF-8"`)
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(seconds(e.RetryAfter)))
	}
	if e.Status == http.StatusServiceUnavailable && wantsHTML(r) {
		h.pages.Error(w, e.Status, web.ErrorPage{Title: "Temporarily unavailable",
			Message: "Signing in is not possible for a moment. Try again in a few seconds."})
		return
	}
	body := map[string]string{"error": string(e.Code)}
	if e.Description != "" {
		body["error_description"] = e.Description
	}
	writeJSON(w, e.Status, body)
}

// seconds is d in whole seconds, rounded up: a client told to retry must not
// come back before it may.
func seconds(d time.Duration) int {
	return int((d + time.Second - 1) / time.Second)
}

// wantsHTML reports whether the request came from a browser page (a navigation
// or a form post), which should see an HTML page rather than JSON.
func wantsHTML(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

// Header values every JSON response carries. Never appended to: each is assigned
// whole, and a later Add copies (len == cap).
var (
	jsonType = []string{"application/json"}
	noStore  = []string{"no-store"}
	noCache  = []string{"no-cache"}
)

// writeJSON writes a JSON response that no cache may keep (RFC 6749 §5.1).
func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	// Assigned rather than Set: the keys are canonical already, and the shared
	// one-element values spare three allocations per response.
	h["Content-Type"], h["Cache-Control"], h["Pragma"] = jsonType, noStore, noCache
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// writeBody writes v as the JSON body of a 200 response whose headers are set.
func writeBody(w http.ResponseWriter, v any) {
	w.WriteHeader(http.StatusOK)
	json.NewEncoder(w).Encode(v)
}
