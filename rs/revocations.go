package rs

import (
	"encoding/json"
	"sync"
	"time"
)

// Event types of the revocation feed (docs: the feed contract, issue 12).
const (
	eventTokenRevoked   = "urn:latchkey:secevent:token-revoked"
	eventSubjectRevoked = "urn:latchkey:secevent:subject-revoked"
	eventSessionEnded   = "urn:latchkey:secevent:session-ended"
	eventFamilyRevoked  = "urn:latchkey:secevent:family-revoked"
	eventClientRevoked  = "urn:latchkey:secevent:client-revoked"
	eventRealmLogout    = "urn:latchkey:secevent:realm-logout"
	eventKeysChanged    = "urn:latchkey:secevent:keys-changed"
)

// eventPayload is any event's payload; each type uses some of the fields.
type eventPayload struct {
	JTI           string `json:"jti"`
	Sub           string `json:"sub"`
	SID           string `json:"sid"`
	FID           string `json:"fid"`
	ClientID      string `json:"client_id"`
	KID           string `json:"kid"`
	RevokedBefore int64  `json:"revoked_before"`
	Until         int64  `json:"until"`
}

// stamp revokes every token issued before a time, until a time.
type stamp struct{ before, until time.Time }

// later keeps the later revocation of two stamps on the same thing.
func (s stamp) later(o stamp) stamp {
	if o.before.After(s.before) {
		s.before = o.before
	}
	if o.until.After(s.until) {
		s.until = o.until
	}
	return s
}

// revocations is what the feed has said so far, each entry kept until its until
// (after which no token it could affect is still unexpired).
type revocations struct {
	mu        sync.RWMutex
	tokens    map[string]time.Time // jti → until
	sessions  map[string]time.Time // sid → until
	families  map[string]time.Time // fid → until
	subjects  map[string]stamp
	clients   map[string]stamp
	realm     stamp
	nextPrune time.Time
	// leeway extends every until: a token is accepted up to its exp plus the leeway,
	// so its revocation must last as long.
	leeway time.Duration
}

func newRevocations(leeway time.Duration) *revocations {
	return &revocations{leeway: leeway,
		tokens: map[string]time.Time{}, sessions: map[string]time.Time{}, families: map[string]time.Time{},
		subjects: map[string]stamp{}, clients: map[string]stamp{},
	}
}

// revoked says whether c is dead by any rule of the feed contract's table.
func (r *revocations) revoked(c *Claims, now time.Time) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	live := func(until time.Time, ok bool) bool { return ok && now.Before(until) }
	if u, ok := r.tokens[c.ID]; c.ID != "" && live(u, ok) {
		return true
	}
	if u, ok := r.sessions[c.SessionID]; c.SessionID != "" && live(u, ok) {
		return true
	}
	if u, ok := r.families[c.FamilyID]; c.FamilyID != "" && live(u, ok) {
		return true
	}
	if s, ok := r.subjects[c.Subject]; live(s.until, ok) && c.IssuedAt.Before(s.before) {
		return true
	}
	if s, ok := r.clients[c.ClientID]; live(s.until, ok) && c.IssuedAt.Before(s.before) {
		return true
	}
	if (c.SessionID != "" || c.FamilyID != "") && now.Before(r.realm.until) && c.IssuedAt.Before(r.realm.before) {
		return true
	}
	return false
}

// apply records one event. It reports whether the event was keys-changed, which the
// caller acts on. An unknown type is ignored: a newer server may say more.
func (r *revocations) apply(typ string, raw json.RawMessage, now time.Time) (keysChanged bool, err error) {
	var p eventPayload
	if err := json.Unmarshal(raw, &p); err != nil {
		return false, err
	}
	until := time.Unix(p.Until, 0).Add(r.leeway)
	st := stamp{before: time.Unix(p.RevokedBefore, 0), until: until}
	r.mu.Lock()
	defer r.mu.Unlock()
	keep := func(m map[string]time.Time, k string) {
		if k != "" && until.After(m[k]) {
			m[k] = until
		}
	}
	switch typ {
	case eventTokenRevoked:
		keep(r.tokens, p.JTI)
	case eventSessionEnded:
		keep(r.sessions, p.SID)
	case eventFamilyRevoked:
		keep(r.families, p.FID)
	case eventSubjectRevoked:
		if p.Sub != "" {
			r.subjects[p.Sub] = r.subjects[p.Sub].later(st)
		}
	case eventClientRevoked:
		if p.ClientID != "" {
			r.clients[p.ClientID] = r.clients[p.ClientID].later(st)
		}
	case eventRealmLogout:
		r.realm = r.realm.later(st)
	case eventKeysChanged:
		keysChanged = true
	}
	r.prune(now)
	return keysChanged, nil
}

// prune forgets entries whose until has passed, at most once a minute. Call with mu
// held.
func (r *revocations) prune(now time.Time) {
	if now.Before(r.nextPrune) {
		return
	}
	r.nextPrune = now.Add(time.Minute)
	for _, m := range []map[string]time.Time{r.tokens, r.sessions, r.families} {
		for k, u := range m {
			if !now.Before(u) {
				delete(m, k)
			}
		}
	}
	for _, m := range []map[string]stamp{r.subjects, r.clients} {
		for k, s := range m {
			if !now.Before(s.until) {
				delete(m, k)
			}
		}
	}
}
