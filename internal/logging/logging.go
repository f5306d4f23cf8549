// Package logging builds Latchkey's slog logger, whose handler redacts credentials.
//
// Redaction happens twice: by attribute key (anything named like a password, secret,
// token, code or credential header is replaced whole) and by value (bearer tokens,
// JWTs, Latchkey's prefixed tokens and passwords inside URLs are masked wherever
// they appear, in messages and errors too). Neither relies on callers remembering.
//
// Only values are masked, never prose: "the bearer token expired" reads as written,
// while "Bearer eyJ…" loses its credential. And a key masks only what can hold a
// secret under it: an attribute named code is an authorization code unless its value
// is a number (an HTTP status) or shaped like an OAuth error code ("invalid_grant").
package logging

import (
	"context"
	"io"
	"log/slog"
	"regexp"
	"strings"
)

// Redacted replaces a secret value.
const Redacted = "[REDACTED]"

// New returns a logger writing text lines to w at the given level, through a redacting handler.
func New(w io.Writer, level slog.Leveler) *slog.Logger {
	return slog.New(NewRedactingHandler(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})))
}

// NewJSON returns a logger writing one JSON object a line to w at the given level,
// through a redacting handler.
func NewJSON(w io.Writer, level slog.Leveler) *slog.Logger {
	return slog.New(NewRedactingHandler(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})))
}

// sensitiveKeys are attribute keys (compared in lower case, with '-' read as '_')
// whose values are always secrets.
var sensitiveKeys = map[string]bool{
	"password": true, "new_password": true, "secret": true, "client_secret": true,
	"token": true, "access_token": true, "refresh_token": true, "id_token": true,
	"id_token_hint": true, "code": true, "code_verifier": true, "assertion": true,
	"client_assertion": true, "authorization": true, "cookie": true, "set_cookie": true,
	"master_key": true, "dsn": true, "state": true, "nonce": true,
	"subject_token": true, "actor_token": true,
	// RFC 8628's codes and RFC 9126's request_uri stand for a pending grant.
	"device_code": true, "user_code": true, "request_uri": true,
}

// errorCode is the shape of an OAuth error code (RFC 6749 §5.2: "invalid_grant"):
// lower-case words joined by underscores. Authorization codes never have it: they
// carry random base64url with digits and capitals (lk_ac_…).
var errorCode = regexp.MustCompile(`^[a-z]+(_[a-z]+)*$`)

// prose is the few words that follow an auth scheme's name in prose ("bearer
// token", "Basic credentials."), not a credential. Only these are kept: a short
// all-letter credential (Basic dXNlcjpwYXNz is "user:pass") is masked like any other.
var prose = regexp.MustCompile(`(?i)^(?:token|tokens|token-based|credential|credentials|auth|authentication|authorization|scheme|header|challenge|proof|proofs)\.?$`)

// secretPatterns find secrets inside free text.
var secretPatterns = []*regexp.Regexp{
	// Authorization header values: the scheme, spaces, then the credentials.
	regexp.MustCompile(`(?i)\b(?:bearer|basic|dpop)\s+([A-Za-z0-9._~+/=-]+)`),
	// JWTs (JWS compact serialisation): three base64url parts, the first a JSON header.
	regexp.MustCompile(`eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*`),
	// Latchkey's own prefixed opaque tokens: lk_<kind>_<random>.
	regexp.MustCompile(`lk_[a-z]{2,3}_[A-Za-z0-9_-]{16,}`), // even glued to a word: "0lk_rt_…"
	// Secrets in form or query strings.
	regexp.MustCompile(`(?i)\b(password|client_secret|refresh_token|access_token|id_token|code|code_verifier|client_assertion|token|subject_token|actor_token|device_code|user_code|request_uri)=[^&\s"]+`),
	// Passwords in URLs such as database DSNs: scheme://user:password@host.
	regexp.MustCompile(`(://[^:/@\s]*):[^@/\s]+@`),
}

// Scrub masks every secret it recognises in s.
func Scrub(s string) string {
	for i, re := range secretPatterns {
		switch i {
		case 0:
			s = re.ReplaceAllStringFunc(s, func(m string) string {
				cred := re.FindStringSubmatch(m)[1]
				if prose.MatchString(cred) {
					return m // prose, such as "bearer token"
				}
				return m[:len(m)-len(cred)] + Redacted
			})
		case 3:
			s = re.ReplaceAllStringFunc(s, func(m string) string {
				// Keep the scheme or parameter name so the line still reads.
				if j := strings.IndexAny(m, " \t="); j >= 0 {
					return m[:j+1] + Redacted
				}
				return Redacted
			})
		case 4:
			s = re.ReplaceAllString(s, "${1}:"+Redacted+"@")
		default:
			s = re.ReplaceAllString(s, Redacted)
		}
	}
	return s
}

// RedactingHandler wraps another handler and redacts secrets from every record.
type RedactingHandler struct {
	next slog.Handler
}

// NewRedactingHandler wraps next.
func NewRedactingHandler(next slog.Handler) *RedactingHandler {
	return &RedactingHandler{next: next}
}

// Enabled implements slog.Handler.
func (h *RedactingHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

// Handle implements slog.Handler.
func (h *RedactingHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, Scrub(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redact(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

// WithAttrs implements slog.Handler.
func (h *RedactingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	clean := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		clean[i] = redact(a)
	}
	return &RedactingHandler{next: h.next.WithAttrs(clean)}
}

// WithGroup implements slog.Handler.
func (h *RedactingHandler) WithGroup(name string) slog.Handler {
	return &RedactingHandler{next: h.next.WithGroup(name)}
}

func redact(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	key := strings.ReplaceAll(strings.ToLower(a.Key), "-", "_")
	if sensitiveKeys[key] && !(key == "code" && notAnAuthorizationCode(v)) {
		return slog.String(a.Key, Redacted)
	}
	switch v.Kind() {
	case slog.KindGroup:
		group := v.Group()
		clean := make([]any, len(group))
		for i, g := range group {
			clean[i] = redact(g)
		}
		return slog.Group(a.Key, clean...)
	case slog.KindString:
		return slog.String(a.Key, Scrub(v.String()))
	case slog.KindAny:
		// Errors, Stringers and structs are logged as text: scrub that text.
		return slog.String(a.Key, Scrub(v.String()))
	default:
		return slog.Attr{Key: a.Key, Value: v}
	}
}

// notAnAuthorizationCode reports whether the value of an attribute named code is
// plainly another kind of code: a number (an HTTP status) or an OAuth error code.
func notAnAuthorizationCode(v slog.Value) bool {
	switch v.Kind() {
	case slog.KindInt64, slog.KindUint64:
		return true
	case slog.KindString:
		return errorCode.MatchString(v.String())
	}
	return false
}
