package bff

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Config is everything the handler needs; New fetches the issuer's discovery document.
type Config struct {
	Issuer       string       // e.g. http://127.0.0.1:8080/realms/dev
	ClientID     string       //
	ClientSecret string       //
	ExternalURL  string       // where browsers reach the BFF; redirect_uri = ExternalURL + "/bff/callback"
	Scopes       []string     // default: openid profile email offline_access
	APIs         []API        // proxied prefixes
	App          http.Handler // serves everything else (the SPA); nil: 404
	Sessions     SessionStore // nil: NewMemorySessions()
	Key          []byte       // 32 bytes: seals session records at rest (AES-256-GCM) and CSRF/state
	Insecure     bool         // dev only: allow http on loopback: cookie name "bff_session", no Secure
	HTTPClient   *http.Client
	Now          func() time.Time
	Logger       *slog.Logger

	// SessionLifetime is the absolute end of a BFF session after sign-in; zero: 12 hours.
	SessionLifetime time.Duration
}

// API is one proxied prefix. The upstream path is Upstream's path followed by what
// comes after Prefix: with Prefix "/api", /api/orders goes to Upstream "http://u" as
// http://u/orders and to Upstream "http://u/api" as http://u/api/orders.
type API struct {
	Prefix   string // "/api"
	Upstream *url.URL
}

// Handler serves the /bff/ routes, the proxied APIs and the App.
type Handler struct {
	cfg      Config
	meta     discovery
	aead     cipher.AEAD
	external *url.URL
	client   *http.Client
	now      func() time.Time
	log      *slog.Logger
	store    SessionStore
	secure   bool
	keys     *remoteKeys
	jtis     *jtiCache

	nonceMu sync.Mutex
	nonce   string // the issuer's last DPoP-Nonce

	flightMu sync.Mutex
	flights  map[string]*flight
}

// discovery holds the issuer metadata fields the BFF uses (RFC 8414, OIDC Discovery).
type discovery struct {
	Issuer                string   `json:"issuer"`
	AuthorizationEndpoint string   `json:"authorization_endpoint"`
	TokenEndpoint         string   `json:"token_endpoint"`
	JWKSURI               string   `json:"jwks_uri"`
	RevocationEndpoint    string   `json:"revocation_endpoint"`
	EndSessionEndpoint    string   `json:"end_session_endpoint"`
	PAREndpoint           string   `json:"pushed_authorization_request_endpoint"`
	DPoPAlgs              []string `json:"dpop_signing_alg_values_supported"`
}

// New checks c, fetches the issuer's discovery document and returns the handler.
func New(ctx context.Context, c Config) (*Handler, error) {
	if c.Issuer == "" || c.ClientID == "" || c.ExternalURL == "" {
		return nil, errors.New("bff: Issuer, ClientID and ExternalURL are required")
	}
	if len(c.Key) != 32 {
		return nil, errors.New("bff: Key must be 32 bytes")
	}
	ext, err := url.Parse(c.ExternalURL)
	if err != nil || ext.Host == "" || (ext.Scheme != "https" && ext.Scheme != "http") {
		return nil, fmt.Errorf("bff: ExternalURL %q is not an absolute http(s) URL", c.ExternalURL)
	}
	if ext.Scheme == "http" && !c.Insecure {
		return nil, errors.New("bff: ExternalURL must be https unless Insecure (dev) is set")
	}
	ext.Path = strings.TrimSuffix(ext.Path, "/")
	if len(c.Scopes) == 0 {
		c.Scopes = []string{"openid", "profile", "email", "offline_access"}
	}
	for _, a := range c.APIs {
		if !strings.HasPrefix(a.Prefix, "/") || strings.HasPrefix(a.Prefix, "/bff") || a.Upstream == nil {
			return nil, fmt.Errorf("bff: API prefix %q must start with / (not /bff) and have an upstream", a.Prefix)
		}
	}
	block, err := aes.NewCipher(c.Key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	h := &Handler{
		cfg:      c,
		aead:     aead,
		external: ext,
		client:   c.HTTPClient,
		now:      c.Now,
		log:      c.Logger,
		store:    c.Sessions,
		secure:   !c.Insecure,
		flights:  map[string]*flight{},
		jtis:     newJTICache(10_000),
	}
	if h.client == nil {
		h.client = &http.Client{Timeout: 30 * time.Second}
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.store == nil {
		h.store = NewMemorySessions()
	}
	if h.cfg.SessionLifetime <= 0 {
		h.cfg.SessionLifetime = 12 * time.Hour
	}
	if err := h.discover(ctx); err != nil {
		return nil, err
	}
	h.keys = &remoteKeys{url: h.meta.JWKSURI, client: h.client}
	return h, nil
}

func (h *Handler) discover(ctx context.Context) error {
	u := strings.TrimSuffix(h.cfg.Issuer, "/") + "/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return fmt.Errorf("bff: discovery: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("bff: discovery: %s", resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&h.meta); err != nil {
		return fmt.Errorf("bff: discovery: %w", err)
	}
	// OIDC Discovery §4.3: the issuer in the document must be the one we asked for.
	if h.meta.Issuer != h.cfg.Issuer {
		return fmt.Errorf("bff: discovery issuer %q is not %q", h.meta.Issuer, h.cfg.Issuer)
	}
	if h.meta.AuthorizationEndpoint == "" || h.meta.TokenEndpoint == "" || h.meta.JWKSURI == "" {
		return errors.New("bff: discovery lacks authorization, token or jwks endpoint")
	}
	return nil
}

// ServeHTTP routes /bff/*, the API prefixes and everything else to App.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch p {
	case "/bff/login":
		h.only(w, r, http.MethodGet, h.login)
		return
	case "/bff/callback":
		h.only(w, r, http.MethodGet, h.callback)
		return
	case "/bff/logout":
		h.only(w, r, http.MethodPost, h.logout)
		return
	case "/bff/user":
		h.only(w, r, http.MethodGet, h.user)
		return
	case "/bff/session":
		h.only(w, r, http.MethodGet, h.session)
		return
	case "/bff/backchannel-logout":
		h.only(w, r, http.MethodPost, h.backchannelLogout)
		return
	}
	if p == "/bff" || strings.HasPrefix(p, "/bff/") {
		http.NotFound(w, r)
		return
	}
	for i := range h.cfg.APIs {
		a := &h.cfg.APIs[i]
		if p == a.Prefix || strings.HasPrefix(p, strings.TrimSuffix(a.Prefix, "/")+"/") {
			h.proxy(w, r, a)
			return
		}
	}
	if h.cfg.App == nil {
		http.NotFound(w, r)
		return
	}
	h.cfg.App.ServeHTTP(w, r)
}

func (h *Handler) only(w http.ResponseWriter, r *http.Request, method string, fn http.HandlerFunc) {
	if r.Method != method {
		w.Header().Set("Allow", method)
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "method_not_allowed"})
		return
	}
	fn(w, r)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
