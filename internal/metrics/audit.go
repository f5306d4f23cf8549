package metrics

import (
	"slices"

	"github.com/latchkey/latchkey/storage"
)

// revocation is what an audit event type revokes, and who revoked it when the
// type alone says so.
type revocation struct {
	kind   string // family, access_token, session, user or client
	source string // "" when the event's details say
}

// auditKinds are the audit event types Latchkey writes; any other is counted as
// "other". Those that end tokens say what they revoke.
var auditKinds = map[string]*revocation{
	"login.failed":                 nil,
	"login.succeeded":              nil,
	"client_auth.throttled":        nil,
	"signing_key.rotated":          nil,
	"refresh_token.reuse_detected": {kind: "family", source: "reuse"},
	"refresh_token.wrong_dpop_key": nil, // refused without its family's DPoP key: revokes nothing
	"authorization_code.replayed":  {kind: "family", source: "reuse"},
	"refresh_family.revoked":       {kind: "family"},
	"access_token.revoked":         {kind: "access_token"},
	"session.ended":                {kind: "session"},
	"user.logout_everywhere":       {kind: "user"},
	"user.disabled":                {kind: "user"},
	"user.password_changed":        {kind: "user"},
	"user.password_rehashed":       nil, // an imported hash replaced at sign-in: revokes nothing
	"client.disabled":              {kind: "client"},
	"token.exchanged":              nil, // RFC 8693: a token issued for another
}

var (
	revocationKinds   = []string{"family", "access_token", "session", "user", "client"}
	revocationSources = []string{"client", "user", "admin", "seed", "reuse", "logout", other}
)

func auditTypes() []string {
	var out []string
	for t := range auditKinds {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// Audited counts an audit event that was stored: by type, and as a reuse
// detection or revocation when it is one.
func (m *Metrics) Audited(e storage.AuditEvent) {
	rev, known := auditKinds[e.Type]
	if !known {
		m.audit[other].Inc()
		return
	}
	m.audit[e.Type].Inc()
	if rev == nil {
		return
	}
	switch e.Type {
	case "refresh_token.reuse_detected":
		m.reuse["refresh_token"].Inc()
	case "authorization_code.replayed":
		m.reuse["authorization_code"].Inc()
	}
	source := rev.source
	if source == "" {
		source = revocationSource(e)
	}
	m.revocations[[2]string{rev.kind, source}].Inc()
}

// revocationSource reads who revoked from an event's details: "by" (seed, admin)
// when set, else the reason; an RFC 7009 revocation has neither and is the
// client's, as signing out everywhere from the account page is the user's.
func revocationSource(e storage.AuditEvent) string {
	if by, ok := e.Details["by"]; ok {
		if by == "seed" || by == "admin" || by == "user" {
			return by
		}
		return other
	}
	switch reason, ok := e.Details["reason"]; {
	case reason == "logout":
		return "logout"
	case reason == "ended by user":
		return "user"
	case ok:
		return other
	}
	switch e.Type {
	case "refresh_family.revoked", "access_token.revoked":
		return "client"
	case "user.logout_everywhere":
		return "user"
	}
	return other
}
