package rs

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
)

// Handler lets a request through to next only with a valid access token, whatever
// its scopes; the claims are in its context (ClaimsFrom).
func (v *Validator) Handler(next http.Handler) http.Handler { return v.Require()(next) }

// Require returns middleware that lets a request through only with a valid access
// token granted every one of scopes, and puts the token's claims in the request's
// context (ClaimsFrom). Tokens are taken with the Bearer or the DPoP scheme (see
// Authenticate). Refusals follow RFC 6750 §3:
//
//   - no bearer credentials: 401 with a bare challenge, WWW-Authenticate: Bearer realm="..."
//   - a malformed Authorization header, two of them, or a token in the query string
//     (never accepted: URLs end up in logs, RFC 9700 §4.3.2): 400 invalid_request
//   - a token that is not valid: 401 invalid_token
//   - a valid token without a required scope: 403 insufficient_scope, with scope="..."
//   - a token that cannot be checked now: 503 temporarily_unavailable with Retry-After
func (v *Validator) Require(scopes ...string) func(http.Handler) http.Handler {
	return v.RequireAll(Requirements{Scopes: scopes})
}

// RequireRoles is Require for roles: the token must carry every one of roles
// (realm_access / resource_access), whatever its scopes.
func (v *Validator) RequireRoles(roles ...Role) func(http.Handler) http.Handler {
	return v.RequireAll(Requirements{Roles: roles})
}

// Requirements are what a route asks of a valid token: every one of Scopes and
// every one of Roles.
type Requirements struct {
	Scopes []string
	Roles  []Role
}

// RequireAll is Require for scopes and roles together. A valid token without a
// required role is refused like one without a required scope, 403
// insufficient_scope (RFC 6750 §3.1: "higher privileges than provided"), whose
// error_description names the first role missing and nothing of what the token
// holds.
func (v *Validator) RequireAll(req Requirements) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, ok := v.Authenticate(w, r)
			if !ok || !v.Authorize(w, c, req) {
				return
			}
			next.ServeHTTP(w, r.WithContext(WithClaims(r.Context(), c)))
		})
	}
}

// Authorize says whether the claims meet req; when they do not, it has written the
// 403 insufficient_scope refusal, and the caller writes nothing more. For handlers
// that authenticate first (Authenticate) and decide on requirements later.
func (v *Validator) Authorize(w http.ResponseWriter, c *Claims, req Requirements) bool {
	scheme := schemeBearer
	if c.viaDPoP {
		scheme = schemeDPoP
	}
	for _, s := range req.Scopes {
		if !c.HasScope(s) {
			v.refuse(w, scheme, http.StatusForbidden, "insufficient_scope", "the token lacks a required scope", strings.Join(req.Scopes, " "))
			return false
		}
	}
	for _, role := range req.Roles {
		if !c.HasRole(role) {
			desc := "the token lacks the required realm role " + role.Name
			if role.Client != "" {
				desc = "the token lacks the required client role " + role.String()
			}
			v.refuse(w, scheme, http.StatusForbidden, "insufficient_scope", desc, "")
			return false
		}
	}
	return true
}

// Authentication schemes (RFC 6750 §2.1, RFC 9449 §7.1).
const (
	schemeBearer = "Bearer"
	schemeDPoP   = "DPoP"
)

// Authenticate validates the request's access token and returns its claims; when
// it returns false it has written the refusal, and the caller writes nothing more.
// For handlers that decide on scopes themselves.
//
// A token sent with the Bearer scheme is checked as RFC 6750 says, and refused if
// it is bound to a DPoP key (RFC 9449 §7.2). A token sent with the DPoP scheme
// needs a valid proof in the DPoP header (RFC 9449 §4.3, §7.1): its signature,
// htm (the request's method), htu (the request's URL, see Options.ExternalURL),
// iat within a minute, ath (the token's hash) and a jti not seen before; and, for
// a bound token, the proof's key must be the token's. Refusals of DPoP requests
// carry a DPoP challenge with error invalid_token or invalid_dpop_proof and the
// accepted algs; 401 refusals of other requests add a DPoP challenge to the
// Bearer one (RFC 9449 §7.2), which the error stays in.
func (v *Validator) Authenticate(w http.ResponseWriter, r *http.Request) (*Claims, bool) {
	scheme, tok, status, code, desc := credentials(r)
	if status != 0 {
		v.refuse(w, scheme, status, code, desc, "")
		return nil, false
	}
	c, err := v.validate(r.Context(), tok)
	if err == nil {
		if scheme == schemeDPoP {
			if err = v.checkDPoP(r, tok, c); err == nil {
				cc := *c // the cached claims are shared: mark a copy
				cc.viaDPoP = true
				c = &cc
			}
		} else if c.Confirmation != nil {
			err = errBoundAsBearer
		}
	}
	switch {
	case errors.Is(err, ErrUnavailable):
		w.Header().Set("Retry-After", "1")
		v.refuse(w, scheme, http.StatusServiceUnavailable, "temporarily_unavailable", "the token cannot be checked now", "")
		return nil, false
	case errors.Is(err, errInvalidProof):
		v.refuse(w, scheme, http.StatusUnauthorized, "invalid_dpop_proof", strings.TrimPrefix(err.Error(), errInvalidProof.Error()+": "), "")
		return nil, false
	case err != nil:
		v.refuse(w, scheme, http.StatusUnauthorized, "invalid_token", strings.TrimPrefix(err.Error(), ErrInvalidToken.Error()+": "), "")
		return nil, false
	}
	return c, true
}

// credentials finds the request's access token and its scheme, Bearer (RFC 6750
// §2.1) or DPoP (RFC 9449 §7.1), or the status, error code and description of its
// refusal. Scheme names are case-insensitive (RFC 9110 §11.1).
func credentials(r *http.Request) (scheme, tok string, status int, code, desc string) {
	scheme = schemeBearer
	if r.URL.Query().Has("access_token") {
		return scheme, "", http.StatusBadRequest, "invalid_request", "send the access token in the Authorization header, not the URL"
	}
	vals := r.Header.Values("Authorization")
	switch len(vals) {
	case 0:
		return scheme, "", http.StatusUnauthorized, "", ""
	case 1:
	default:
		return scheme, "", http.StatusBadRequest, "invalid_request", "more than one Authorization header"
	}
	given, rest, _ := strings.Cut(vals[0], " ")
	switch {
	case strings.EqualFold(given, schemeBearer):
	case strings.EqualFold(given, schemeDPoP):
		scheme = schemeDPoP
	default:
		return scheme, "", http.StatusUnauthorized, "", "" // another scheme: no credentials of ours at all
	}
	tok = strings.TrimLeft(rest, " ")
	if !isB64Token(tok) {
		return scheme, "", http.StatusBadRequest, "invalid_request", "malformed Authorization header"
	}
	return scheme, tok, 0, "", ""
}

// isB64Token: RFC 6750 §2.1, b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
func isB64Token(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '.', c == '_', c == '~', c == '+', c == '/':
		default:
			return false
		}
	}
	return true
}

// refuse writes an RFC 6750 §3 refusal: the challenge of scheme, and the same
// error as a JSON body. An empty code is a bare challenge (the request had no
// credentials, §3.1). A DPoP challenge names the accepted algs (RFC 9449 §7.1);
// a Bearer 401 is followed by a bare DPoP challenge, so a client learns that DPoP
// is accepted too (RFC 9449 §7.2, Figures 17 and 18).
func (v *Validator) refuse(w http.ResponseWriter, scheme string, status int, code, desc, scope string) {
	ch := scheme + ` realm=` + quote(v.o.Realm)
	if code != "" {
		ch += `, error=` + quote(code)
	}
	if desc != "" {
		ch += `, error_description=` + quote(desc)
	}
	if scope != "" {
		ch += `, scope=` + quote(scope)
	}
	if scheme == schemeDPoP {
		ch += `, algs=` + quote(dpopAlgs)
	}
	h := w.Header()
	if status != http.StatusServiceUnavailable {
		h.Set("WWW-Authenticate", ch)
		if scheme == schemeBearer && status == http.StatusUnauthorized {
			h.Add("WWW-Authenticate", schemeDPoP+` realm=`+quote(v.o.Realm)+`, algs=`+quote(dpopAlgs))
		}
	}
	h.Set("Cache-Control", "no-store")
	if code == "" {
		w.WriteHeader(status)
		return
	}
	h.Set("Content-Type", "application/json")
	w.WriteHeader(status)
	body := map[string]string{"error": code}
	if desc != "" {
		body["error_description"] = desc
	}
	json.NewEncoder(w).Encode(body)
}

// quote is an RFC 9110 §5.6.4 quoted-string.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
