package oauth

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/latchkey/latchkey/internal/protocol"
	"github.com/latchkey/latchkey/internal/token"
	"github.com/latchkey/latchkey/internal/web"
	"github.com/latchkey/latchkey/storage"
)

// The error codes the edge answers with.
const (
	InvalidRequest         = protocol.InvalidRequest
	InvalidClient          = protocol.InvalidClient
	InvalidGrant           = protocol.InvalidGrant
	UnauthorizedClient     = protocol.UnauthorizedClient
	UnsupportedGrantType   = protocol.UnsupportedGrantType
	InvalidScope           = protocol.InvalidScope
	InvalidTarget          = protocol.InvalidTarget
	UnsupportedTokenType   = protocol.UnsupportedTokenType
	ServerError            = protocol.ServerError
	NotFound               = protocol.NotFound
	TemporarilyUnavailable = protocol.TemporarilyUnavailable
)

// unavailableRetry is how long a 503 asks the client to wait before trying again.
const unavailableRetry = 5 * time.Second

// coreErrors is how the core's sentinel errors are answered: the one place they
// become RFC codes. The first that matches wins, so the narrower sentinels
// (ErrInvalidCode, ErrInvalidRefreshToken) come before ErrInvalidGrant.
var coreErrors = []struct {
	sentinel    error
	code        protocol.Code
	description string
}{
	{token.ErrInvalidCode, protocol.InvalidGrant, "the code is invalid, expired, used, or not for this client"},
	{token.ErrInvalidRefreshToken, protocol.InvalidGrant, "the refresh token is invalid, expired, revoked or used"},
	{token.ErrInvalidGrant, protocol.InvalidGrant, "the grant is invalid, expired, revoked or used"},
	// RFC 6749 §6: a refresh may only narrow scope.
	{token.ErrInvalidScope, protocol.InvalidScope, "a refresh may only narrow the granted scope"},
	// RFC 7009 §2.1: a token issued to another client is refused.
	{token.ErrNotOwner, protocol.UnauthorizedClient, "the token was issued to another client"},
	// RFC 6750 §3.1.
	{token.ErrInvalidToken, protocol.InvalidToken, "the access token is not valid"},
	{token.ErrInsufficientScope, protocol.InsufficientScope, "the token lacks the openid scope"},
}

// wireError is what err is answered with, and the one function that maps errors
// to the protocol: a store that could not answer in time is 503
// temporarily_unavailable with Retry-After; a protocol error is itself; a core
// sentinel is its RFC code; anything else is a server error. The cause is kept for
// the log.
func wireError(err error) *protocol.Error {
	if errors.Is(err, storage.ErrUnavailable) {
		e := protocol.Wrap(protocol.TemporarilyUnavailable, "the service is temporarily unavailable; try again later", err)
		e.RetryAfter = unavailableRetry
		return e
	}
	var e *protocol.Error
	if errors.As(err, &e) {
		return e
	}
	for _, c := range coreErrors {
		if errors.Is(err, c.sentinel) {
			return protocol.Wrap(c.code, c.description, err)
		}
	}
	return protocol.Wrap(protocol.ServerError, "internal error", err)
}

// writeError is the one place a protocol error reaches the wire as JSON (an HTML
// page when a browser asked and the store was unavailable). Causes are logged,
// never sent.
func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := h.logError(r, err)
	if e.Status == http.StatusServiceUnavailable && wantsHTML(r) {
		if e.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(protocol.Seconds(e.RetryAfter)))
		}
		h.pages.Error(w, e.Status, web.ErrorPage{Title: "Temporarily unavailable",
			Message: "Signing in is not possible for a moment. Try again in a few seconds."})
		return
	}
	e.WriteJSON(w)
}

// logError maps err to what is answered and logs it at the level it deserves.
func (h *Handler) logError(r *http.Request, err error) *protocol.Error {
	e := wireError(err)
	switch {
	case e.Code == protocol.TemporarilyUnavailable:
		h.log.WarnContext(r.Context(), "store unavailable", "path", r.URL.Path, "err", err)
	case e.Status >= 500:
		h.log.ErrorContext(r.Context(), "request failed", "path", r.URL.Path, "err", err)
	default:
		h.log.DebugContext(r.Context(), "request refused", "path", r.URL.Path, "code", string(e.Code), "err", err)
	}
	return e
}

// seconds is protocol.Seconds.
func seconds(d time.Duration) int { return protocol.Seconds(d) }

// wantsHTML reports whether the request came from a browser page (a navigation
// or a form post), which should see an HTML page rather than JSON.
func wantsHTML(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

// writeJSON writes a JSON response that no cache may keep (RFC 6749 §5.1).
func writeJSON(w http.ResponseWriter, status int, v any) { protocol.WriteJSON(w, status, v) }

// writeBody writes v as the JSON body of a 200 response whose headers are set.
func writeBody(w http.ResponseWriter, v any) { protocol.WriteBody(w, v) }
