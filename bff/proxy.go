package bff

import (
	"context"
	"errors"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// refreshAhead: a token with less than this left is refreshed before use.
const refreshAhead = 30 * time.Second

var errSessionEnded = errors.New("bff: session ended by the issuer")

// flight is one refresh in progress for one session; others wait for it.
type flight struct {
	done chan struct{}
	err  error
}

// fresh returns the session's tokens with at least refreshAhead left on the access
// token, refreshing (with rotation) when needed: one refresh at a time per session in
// this process, and inside the store's Update so that instances sharing a store see
// each other's rotation.
func (h *Handler) fresh(ctx context.Context, rec SessionRecord, s sealedSession) (sealedSession, error) {
	if h.now().Add(refreshAhead).Before(s.accessExpiry()) {
		return s, nil
	}
	if s.RefreshToken == "" {
		if h.now().Before(s.accessExpiry()) {
			return s, nil
		}
		_ = h.store.Delete(ctx, rec.ID)
		return sealedSession{}, errSessionEnded
	}
	h.flightMu.Lock()
	f, waiting := h.flights[rec.ID]
	if !waiting {
		f = &flight{done: make(chan struct{})}
		h.flights[rec.ID] = f
	}
	h.flightMu.Unlock()
	if !waiting {
		f.err = h.refresh(ctx, rec.ID)
		h.flightMu.Lock()
		delete(h.flights, rec.ID)
		h.flightMu.Unlock()
		close(f.done)
	} else {
		select {
		case <-f.done:
		case <-ctx.Done():
			return sealedSession{}, ctx.Err()
		}
	}
	if f.err != nil {
		if !errors.Is(f.err, errSessionEnded) && h.now().Before(s.accessExpiry()) {
			// The issuer is unreachable but the token still works: use it and refresh next time.
			h.log.Warn("bff: refresh failed, using the current access token", "err", f.err)
			return s, nil
		}
		return sealedSession{}, f.err
	}
	cur, err := h.store.Get(ctx, rec.ID, h.now())
	if err != nil {
		return sealedSession{}, err
	}
	var out sealedSession
	if err := h.open(cur.ID, cur.Sealed, &out); err != nil {
		return sealedSession{}, err
	}
	return out, nil
}

// refresh runs the refresh_token grant inside the store's Update; invalid_grant ends
// the session.
func (h *Handler) refresh(ctx context.Context, id string) error {
	// The leader's refresh must not die with the request that happened to start it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	_, err := h.store.Update(ctx, id, h.now(), func(rec SessionRecord) (SessionRecord, error) {
		var s sealedSession
		if err := h.open(rec.ID, rec.Sealed, &s); err != nil {
			return rec, err
		}
		if h.now().Add(refreshAhead).Before(s.accessExpiry()) {
			return rec, nil // another instance refreshed meanwhile
		}
		key, err := s.dpopKey()
		if err != nil {
			return rec, err
		}
		tr, err := h.post(ctx, h.meta.TokenEndpoint, url.Values{
			"grant_type":    {"refresh_token"},
			"refresh_token": {s.RefreshToken},
		}, key)
		if err != nil {
			return rec, err
		}
		if tr.AccessToken == "" {
			return rec, errors.New("bff: refresh answered no access token")
		}
		s.AccessToken, s.AccessExpiresAt = tr.AccessToken, expiry(h.now(), tr.ExpiresIn)
		if tr.TokenType != "" {
			s.TokenType = tr.TokenType
		}
		if tr.RefreshToken != "" {
			s.RefreshToken = tr.RefreshToken
		}
		if tr.IDToken != "" {
			if _, err := h.verifyIDToken(ctx, tr.IDToken, ""); err == nil {
				s.IDToken = tr.IDToken
			}
		}
		sealed, err := h.seal(rec.ID, s)
		if err != nil {
			return rec, err
		}
		rec.Sealed = sealed
		return rec, nil
	})
	if isInvalidGrant(err) {
		_ = h.store.Delete(ctx, id)
		return errSessionEnded
	}
	return err
}

func (s *sealedSession) dpopKey() (*jose.JSONWebKey, error) {
	if len(s.DPoPKey) == 0 {
		return nil, nil
	}
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(s.DPoPKey); err != nil {
		return nil, err
	}
	return &k, nil
}

// collides reports whether an upstream cookie could shadow one of the BFF's.
func collides(setCookie string) bool {
	name, _, _ := strings.Cut(setCookie, "=")
	name = strings.ToLower(strings.TrimSpace(name))
	for _, p := range []string{"__host-", "__secure-"} {
		name = strings.TrimPrefix(name, p)
	}
	return strings.HasPrefix(name, "bff_")
}

func (h *Handler) proxy(w http.ResponseWriter, r *http.Request, a *API) {
	if !h.csrf(r) {
		forbidden(w)
		return
	}
	rec, s, err := h.current(r.Context(), r)
	if err != nil {
		h.signedOut(w, err)
		return
	}
	s, err = h.fresh(r.Context(), rec, s)
	if err != nil {
		if errors.Is(err, errSessionEnded) || errors.Is(err, ErrSessionNotFound) {
			h.setCookie(w, h.sessionCookieName(), "", -1, http.SameSiteStrictMode)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "not_signed_in"})
			return
		}
		h.log.Error("bff: refreshing the access token failed", "err", err)
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "temporarily_unavailable"})
		return
	}
	key, err := s.dpopKey()
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "server_error"})
		return
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			// The upstream path is Upstream's path followed by what comes after Prefix.
			rest := strings.TrimPrefix(pr.In.URL.Path, strings.TrimSuffix(a.Prefix, "/"))
			pr.Out.URL.Scheme, pr.Out.URL.Host = a.Upstream.Scheme, a.Upstream.Host
			pr.Out.URL.Path = strings.TrimSuffix(a.Upstream.Path, "/") + rest
			pr.Out.URL.RawPath = ""
			pr.Out.Host = a.Upstream.Host
			for _, k := range []string{"Cookie", "X-Csrf", "Authorization", "Dpop", "Proxy-Authorization"} {
				pr.Out.Header.Del(k)
			}
			pr.SetXForwarded()
			if key != nil && strings.EqualFold(s.TokenType, "DPoP") {
				pr.Out.Header.Set("Authorization", "DPoP "+s.AccessToken)
				if proof, err := h.proof(key, pr.Out.Method, pr.Out.URL.String(), s.AccessToken, ""); err == nil {
					pr.Out.Header.Set("DPoP", proof)
				}
			} else {
				pr.Out.Header.Set("Authorization", "Bearer "+s.AccessToken)
			}
		},
		ModifyResponse: func(resp *http.Response) error {
			var keep []string
			for _, c := range resp.Header.Values("Set-Cookie") {
				if !collides(c) {
					keep = append(keep, c)
				}
			}
			resp.Header.Del("Set-Cookie")
			for _, c := range keep {
				resp.Header.Add("Set-Cookie", c)
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			h.log.Warn("bff: upstream failed", "prefix", a.Prefix, "err", err)
			writeJSON(w, http.StatusBadGateway, map[string]string{"error": "bad_gateway"})
		},
	}
	rp.ServeHTTP(w, r)
}
