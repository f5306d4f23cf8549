package oauth

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/latchkey/latchkey/internal/masterkey"
	"github.com/latchkey/latchkey/storage"
)

// Cookie names. Both are scoped to one realm's path and to this host.
const (
	sessionCookie = "LATCHKEY_SESSION"
	csrfCookie    = "LATCHKEY_CSRF"
)

// Browser session lifetimes.
const (
	sessionIdle = 24 * time.Hour
	sessionMax  = 30 * 24 * time.Hour
	// touchEvery limits how often a session's idle expiry is written back.
	touchEvery = time.Minute
	// formTTL is how long a login, consent or logout form stays valid.
	formTTL = 30 * time.Minute
)

// box seals the state a browser form carries between requests (the pending
// authorization request, the CSRF value) with AES-GCM, so it can be neither read
// nor changed by the browser, and needs no server-side storage.
type box struct{ aead cipher.AEAD }

func newBox(mk *masterkey.Key) *box {
	block, err := aes.NewCipher(mk.Derive("browser forms"))
	if err != nil { // only for a key of the wrong size, which Derive never returns
		panic("oauth: " + err.Error())
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic("oauth: " + err.Error())
	}
	return &box{aead: aead}
}

// seal encodes v for a hidden form field; purpose binds it to one kind of form.
func (b *box) seal(purpose string, v any) string {
	plain, _ := json.Marshal(v)
	nonce := make([]byte, b.aead.NonceSize())
	rand.Read(nonce)
	return base64.RawURLEncoding.EncodeToString(b.aead.Seal(nonce, nonce, plain, []byte(purpose)))
}

func (b *box) open(purpose, sealed string, v any) error {
	raw, err := base64.RawURLEncoding.DecodeString(sealed)
	if err != nil || len(raw) < b.aead.NonceSize() {
		return errors.New("malformed form state")
	}
	plain, err := b.aead.Open(nil, raw[:b.aead.NonceSize()], raw[b.aead.NonceSize():], []byte(purpose))
	if err != nil {
		return errors.New("form state does not open")
	}
	return json.Unmarshal(plain, v)
}

// realmPath is the public path of a realm, where its cookies live.
func (h *Handler) realmPath(realm string) string {
	base := "/"
	if u, err := url.Parse(h.baseURL); err == nil && u.Path != "" {
		base = strings.TrimSuffix(u.Path, "/") + "/"
	}
	return base + "realms/" + realm + "/"
}

// setCookie sets a host-only, HttpOnly, SameSite=Lax cookie on the realm's path,
// Secure whenever the issuer is https (plain HTTP is only allowed on loopback).
func (h *Handler) setCookie(w http.ResponseWriter, realm, name, value string, maxAge time.Duration) {
	c := &http.Cookie{
		Name: name, Value: value, Path: h.realmPath(realm),
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: strings.HasPrefix(h.baseURL, "https://"),
	}
	if maxAge < 0 {
		c.MaxAge = -1
	} else {
		c.MaxAge = int(maxAge.Seconds())
	}
	http.SetCookie(w, c)
}

// csrfToken returns the browser's CSRF value, setting the cookie when it has none.
// Forms carry the value inside their sealed state, and a POST must come with the
// matching cookie (double submit), on top of the cross-origin check.
func (h *Handler) csrfToken(w http.ResponseWriter, r *http.Request, realm string) string {
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) >= 32 {
		return c.Value
	}
	v := rand.Text() + rand.Text()
	h.setCookie(w, realm, csrfCookie, v, sessionMax)
	return v
}

// csrfOK reports whether the request's CSRF cookie matches the form's value.
func csrfOK(r *http.Request, want string) bool {
	c, err := r.Cookie(csrfCookie)
	return err == nil && want != "" && subtle.ConstantTimeCompare([]byte(c.Value), []byte(want)) == 1
}

func hashSecret(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// startSession creates a browser session for the user and sets its cookie.
func (h *Handler) startSession(ctx context.Context, w http.ResponseWriter, r *http.Request, realm string, user storage.User) (storage.Session, error) {
	now := h.now().UTC().Truncate(time.Microsecond)
	secret := rand.Text() + rand.Text()
	from := h.caller(r)
	s := storage.Session{
		ID: rand.Text(), Realm: realm, UserID: user.ID, SecretHash: hashSecret(secret),
		AuthTime: now, CreatedAt: now, LastSeenAt: now,
		IdleExpiresAt: now.Add(sessionIdle), ExpiresAt: now.Add(sessionMax),
		IP: from.IP, UserAgent: from.UserAgent,
	}
	if err := h.store.CreateSession(ctx, s); err != nil {
		return s, err
	}
	h.setCookie(w, realm, sessionCookie, s.ID+"."+secret, sessionMax)
	h.setBrowserState(w, realm, s.ID)
	return s, nil
}

// currentSession returns the browser's live session in the realm and its user, or
// ok=false. It slides the session's idle expiry.
func (h *Handler) currentSession(ctx context.Context, r *http.Request, realm string) (storage.Session, storage.User, bool, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return storage.Session{}, storage.User{}, false, nil
	}
	sid, secret, found := strings.Cut(c.Value, ".")
	if !found {
		return storage.Session{}, storage.User{}, false, nil
	}
	s, err := h.store.GetSession(ctx, sid)
	if errors.Is(err, storage.ErrNotFound) {
		return s, storage.User{}, false, nil
	}
	if err != nil {
		return s, storage.User{}, false, err
	}
	now := h.now()
	if s.Realm != realm || subtle.ConstantTimeCompare(s.SecretHash, hashSecret(secret)) != 1 || !s.Live(now) {
		return s, storage.User{}, false, nil
	}
	u, err := h.store.GetUser(ctx, realm, s.UserID)
	if errors.Is(err, storage.ErrNotFound) {
		return s, u, false, nil
	}
	if err != nil {
		return s, u, false, err
	}
	// A disabled user, or one signed out everywhere since the session began, is out.
	if u.Disabled || (!u.TokensValidAfter.IsZero() && s.AuthTime.Before(u.TokensValidAfter)) {
		return s, u, false, nil
	}
	if now.Sub(s.LastSeenAt) >= touchEvery {
		idle := now.Add(sessionIdle).UTC().Truncate(time.Microsecond)
		if err := h.store.TouchSession(ctx, s.ID, now.UTC().Truncate(time.Microsecond), idle); err != nil {
			return s, u, false, err
		}
	}
	return s, u, true, nil
}

// endSession ends a browser session and every grant born in it, and clears the cookie.
func (h *Handler) endSession(ctx context.Context, w http.ResponseWriter, r *http.Request, realm storage.Realm, s storage.Session, reason string) error {
	now := h.now().UTC().Truncate(time.Microsecond)
	if err := h.store.RevokeSession(ctx, s.ID, now); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	if _, err := h.store.RevokeSessionFamilies(ctx, s.ID, now, reason); err != nil {
		return err
	}
	from := h.caller(r)
	if _, err := h.store.AppendAudit(ctx, storage.AuditEvent{Time: now, Type: "session.ended", Realm: realm.Name,
		UserID: s.UserID, SessionID: s.ID, IP: from.IP, UserAgent: from.UserAgent, Details: map[string]string{"reason": reason}}); err != nil {
		return err
	}
	h.setCookie(w, realm.Name, sessionCookie, "", -1)
	h.setBrowserState(w, realm.Name, "")
	return nil
}
