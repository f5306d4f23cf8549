package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/latchkey/latchkey/internal/registry"
	"github.com/latchkey/latchkey/storage"
)

// Problem is an RFC 9457 problem details object: the one error the admin API
// answers with. Handlers return it (or any error, which writeError maps) and never
// write errors themselves.
type Problem struct {
	Type   string       `json:"type"`
	Title  string       `json:"title"`
	Status int          `json:"status"`
	Detail string       `json:"detail,omitempty"`
	Errors []FieldError `json:"errors,omitempty"`

	header http.Header // extra response headers: WWW-Authenticate, Retry-After
}

// FieldError is one invalid field of a request body, by its path (redirect_uris[0]).
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (p *Problem) Error() string { return fmt.Sprintf("%d %s: %s", p.Status, p.Title, p.Detail) }

// Problem types beyond a bare status ("about:blank", RFC 9457 §4.2.1).
const (
	typeValidation   = "urn:latchkey:problem:validation"
	typeInvalidToken = "urn:latchkey:problem:invalid-token"
	typeForbidden    = "urn:latchkey:problem:forbidden"
	typePrecondition = "urn:latchkey:problem:precondition-failed"
)

func problem(status int, typ, detail string) *Problem {
	if typ == "" {
		typ = "about:blank"
	}
	return &Problem{Type: typ, Title: http.StatusText(status), Status: status, Detail: detail}
}

func badRequest(format string, args ...any) *Problem {
	return problem(http.StatusBadRequest, typeValidation, fmt.Sprintf(format, args...))
}

// invalidField is a 400 naming one field.
func invalidField(field, msg string) *Problem {
	p := problem(http.StatusBadRequest, typeValidation, field+": "+msg)
	p.Errors = []FieldError{{Field: field, Message: msg}}
	return p
}

func notFound(format string, args ...any) *Problem {
	return problem(http.StatusNotFound, "", fmt.Sprintf(format, args...))
}

func conflict(format string, args ...any) *Problem {
	return problem(http.StatusConflict, "", fmt.Sprintf(format, args...))
}

// errPrecondition: If-Match named another version than the stored one (RFC 9110 §13.1.1).
var errPrecondition = problem(http.StatusPreconditionFailed, typePrecondition,
	"If-Match does not match the current entity tag: read it again and retry")

// bearerRealm is the realm of the admin API's WWW-Authenticate challenges.
const bearerRealm = `Bearer realm="latchkey-admin"`

// unauthorized is a 401 with an RFC 6750 §3 challenge. code is empty when the
// request carried no token at all (§3.1: then no error code).
func unauthorized(code, detail string) *Problem {
	p := problem(http.StatusUnauthorized, typeInvalidToken, detail)
	challenge := bearerRealm
	if code != "" {
		challenge += `, error="` + code + `"`
	}
	p.header = http.Header{"Www-Authenticate": {challenge}}
	return p
}

// insufficientScope is a 403 with the RFC 6750 §3.1 insufficient_scope challenge.
func insufficientScope(scope, detail string) *Problem {
	p := problem(http.StatusForbidden, typeForbidden, detail)
	p.header = http.Header{"Www-Authenticate": {bearerRealm + `, error="insufficient_scope", scope="` + scope + `"`}}
	return p
}

func forbidden(detail string) *Problem {
	return problem(http.StatusForbidden, typeForbidden, detail)
}

// problemOf maps any error to the problem it answers with.
func problemOf(err error) (p *Problem, internal bool) {
	var regErrs registry.Errors
	var regErr *registry.Error
	switch {
	case errors.As(err, &p):
		return p, false
	case errors.As(err, &regErrs):
		p = problem(http.StatusBadRequest, typeValidation, "the request body has invalid fields")
		for _, e := range regErrs {
			p.Errors = append(p.Errors, FieldError{Field: e.Field(), Message: e.Msg})
		}
		return p, false
	case errors.As(err, &regErr):
		return invalidField(regErr.Field(), regErr.Msg), false
	case errors.Is(err, storage.ErrNotFound):
		return notFound("no such entity"), false
	case errors.Is(err, storage.ErrConflict):
		return conflict("it conflicts with an existing entity"), false
	case errors.Is(err, storage.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		p = problem(http.StatusServiceUnavailable, "", "the store is unavailable: retry later")
		p.header = http.Header{"Retry-After": {"5"}}
		return p, false
	}
	return problem(http.StatusInternalServerError, "", "internal error"), true
}

// writeProblem writes p as application/problem+json.
func writeProblem(w http.ResponseWriter, p *Problem) {
	for k, v := range p.header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	json.NewEncoder(w).Encode(p)
}
