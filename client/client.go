// Package client is a token source for Latchkey's refresh token grant that is
// safe with rotation: one refresh at a time, the rotated refresh token saved
// before its access token is handed out, and a lost answer retried with the same
// token only inside the server's retry window.
//
// Latchkey rotates the refresh token on every use. Presenting a spent token again
// is an honest retry within the client's retry window (10 s by default; the same
// answer comes back, as long as its new refresh token is unused) and theft after
// it: the whole family of tokens is revoked. A Source follows those rules:
//
//   - concurrent Token calls share one refresh, and an access token that is valid
//     for longer than the expiry margin is returned without one;
//   - the rotated token is saved in the Store before anything is handed out; when
//     saving fails, Token returns an error wrapping ErrNotSaved and the store's
//     error, and the next Token call saves again (nothing is sent to the server),
//     so fix the store and call again. A process that must exit instead leaves
//     the spent token in the store; a new Source presenting it within the retry
//     window gets the same answer, after it the family is revoked;
//   - a refresh whose answer is lost (network error, timeout, 5xx) is retried with
//     the same refresh token during the first three quarters of the retry window
//     after it was first sent, never later; if no retry gets through, Token
//     returns ErrAnswerLost and the token is forgotten;
//   - invalid_grant is final: Token returns an *Error matching ErrInvalidGrant,
//     the store is cleared, and no further request is made.
//
// A Source owns its grant: run one Source per refresh token, and do not share
// its store with another Source or process.
package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"golang.org/x/oauth2"
)

// DefaultRetryWindow is Latchkey's default refresh_retry_window.
const DefaultRetryWindow = 10 * time.Second

// DefaultExpiryMargin is how long before its expiry an access token is refreshed,
// as in x/oauth2.
const DefaultExpiryMargin = 10 * time.Second

// Config says where and as whom to refresh.
type Config struct {
	// Issuer is the realm's issuer URL; its discovery document names the token
	// endpoint. Ignored when TokenURL is set.
	Issuer string
	// TokenURL is the token endpoint, e.g. ISSUER/protocol/openid-connect/token.
	TokenURL string

	// ClientID and ClientSecret authenticate the client. With a secret, it is
	// client_secret_basic (RFC 6749 §2.3.1); without, a public client sends
	// client_id in the form.
	ClientID     string
	ClientSecret string

	// Store holds the refresh token; a MemoryStore when nil (then it starts empty
	// and Token returns ErrNoRefreshToken: give a store with the first token).
	Store Store

	// RetryWindow is the client's refresh_retry_window at the server: 0 means
	// DefaultRetryWindow; negative means the server has none, so a lost answer
	// is never retried.
	RetryWindow time.Duration
	// ExpiryMargin: an access token expiring within it is refreshed; 0 means
	// DefaultExpiryMargin.
	ExpiryMargin time.Duration

	// HTTPClient sends discovery and token requests; http.DefaultClient when nil.
	HTTPClient *http.Client
	// Now is the clock that decides expiry and the retry window; time.Now when nil.
	Now func() time.Time
}

// Source is an oauth2.TokenSource that refreshes a Latchkey refresh token
// safely under rotation. It is safe for concurrent use.
type Source struct {
	tokenURL     string
	clientID     string
	clientSecret string
	store        Store
	retryBudget  time.Duration // how long after a refresh is first sent it may be retried
	margin       time.Duration
	http         *http.Client
	now          func() time.Time

	mu      sync.Mutex
	loaded  bool          // tok came from the store
	tok     *oauth2.Token // the newest saved token
	pending *oauth2.Token // rotated but not saved yet
	doubt   time.Time     // when a refresh of tok, whose answer is still unknown, was first sent
	final   error         // the grant is dead: returned without a request
	flight  *flight       // the refresh in progress
}

type flight struct {
	done chan struct{}
	tok  *oauth2.Token
	err  error
}

var _ oauth2.TokenSource = (*Source)(nil)

// New returns a Source for cfg, reading the issuer's discovery document when
// cfg.TokenURL is empty. The store is first read by the first Token call.
func New(ctx context.Context, cfg Config) (*Source, error) {
	if cfg.ClientID == "" {
		return nil, errors.New("client: ClientID is required")
	}
	s := &Source{tokenURL: cfg.TokenURL, clientID: cfg.ClientID, clientSecret: cfg.ClientSecret, store: cfg.Store,
		margin: cfg.ExpiryMargin, http: cfg.HTTPClient, now: cfg.Now}
	if s.store == nil {
		s.store = NewMemoryStore(nil)
	}
	if s.margin <= 0 {
		s.margin = DefaultExpiryMargin
	}
	if s.http == nil {
		s.http = http.DefaultClient
	}
	if s.now == nil {
		s.now = time.Now
	}
	switch window := cfg.RetryWindow; {
	case window == 0:
		s.retryBudget = DefaultRetryWindow * 3 / 4
	case window > 0:
		// The last retry must reach the server inside the window, and the
		// server's clock started when it processed the first send, which is
		// after ours did: a quarter of the window is left for the trip.
		s.retryBudget = window * 3 / 4
	}
	if s.tokenURL == "" {
		if cfg.Issuer == "" {
			return nil, errors.New("client: Issuer or TokenURL is required")
		}
		var err error
		if s.tokenURL, err = discover(ctx, s.http, cfg.Issuer); err != nil {
			return nil, err
		}
	}
	if err := checkEndpoint(s.tokenURL); err != nil {
		return nil, err
	}
	return s, nil
}

// Token returns a valid access token, refreshing it if needed. It is
// TokenContext with context.Background: the refresh is bounded by the retry
// window, not by a context.
func (s *Source) Token() (*oauth2.Token, error) {
	return s.TokenContext(context.Background())
}

// TokenContext returns a valid access token, refreshing it if needed; concurrent
// calls share one refresh. ctx bounds the wait only: a refresh once started
// runs to its end (answer, save, or the end of its retry window) whatever
// happens to its callers, because abandoning it half way could lose the rotated
// token. The token returned is the caller's own copy.
func (s *Source) TokenContext(ctx context.Context) (*oauth2.Token, error) {
	s.mu.Lock()
	if s.final != nil {
		s.mu.Unlock()
		return nil, s.final
	}
	if s.loaded && s.pending == nil && s.valid(s.tok) {
		tok := clone(s.tok)
		s.mu.Unlock()
		return tok, nil
	}
	f := s.flight
	if f == nil {
		f = &flight{done: make(chan struct{})}
		s.flight = f
		go s.fly(context.WithoutCancel(ctx), f)
	}
	s.mu.Unlock()

	select {
	case <-f.done:
		return clone(f.tok), f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *Source) fly(ctx context.Context, f *flight) {
	tok, err := s.refresh(ctx)
	s.mu.Lock()
	f.tok, f.err = tok, err
	s.flight = nil
	s.mu.Unlock()
	close(f.done)
}

// storeTimeout bounds each Load and Save.
const storeTimeout = 10 * time.Second

// refresh runs in the one flight: it is the only writer of the Source's state
// while it runs (the lock keeps TokenContext's reads consistent).
func (s *Source) refresh(ctx context.Context) (*oauth2.Token, error) {
	s.mu.Lock()
	loaded, pending, tok := s.loaded, s.pending, s.tok
	s.mu.Unlock()

	if !loaded {
		sctx, cancel := context.WithTimeout(ctx, storeTimeout)
		stored, err := s.store.Load(sctx)
		cancel()
		if err != nil {
			return nil, err
		}
		tok = stored
		s.set(func() { s.tok, s.loaded = stored, true })
	}
	if pending != nil {
		if err := s.save(ctx, pending); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrNotSaved, err)
		}
		tok = pending
		s.set(func() { s.tok, s.pending = pending, nil })
	}
	if s.valid(tok) {
		return tok, nil
	}
	if tok == nil || tok.RefreshToken == "" {
		return nil, ErrNoRefreshToken
	}

	next, err := s.exchange(ctx, tok.RefreshToken)
	switch {
	case errors.Is(err, ErrInvalidGrant), errors.Is(err, ErrAnswerLost):
		return nil, s.forget(ctx, err)
	case err != nil:
		// Anything else (invalid_client, a server never reached)
		// leaves the token as it was; an answer lost earlier stays in doubt, so
		// the next call keeps the first send's deadline.
		return nil, err
	}
	if next.RefreshToken == "" {
		next.RefreshToken = tok.RefreshToken // RFC 6749 §6: the server may keep the old one
	}
	if err := s.save(ctx, next); err != nil {
		s.set(func() { s.pending, s.doubt = next, time.Time{} })
		return nil, fmt.Errorf("%w: %w", ErrNotSaved, err)
	}
	s.set(func() { s.tok, s.doubt = next, time.Time{} })
	return next, nil
}

// forget makes err final: nothing is sent again, and the store is cleared so a
// restart does not send the dead token either.
func (s *Source) forget(ctx context.Context, err error) error {
	s.set(func() { s.final, s.tok, s.doubt = err, nil, time.Time{} })
	if serr := s.save(ctx, nil); serr != nil {
		return errors.Join(err, serr)
	}
	return err
}

func (s *Source) save(ctx context.Context, tok *oauth2.Token) error {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	return s.store.Save(ctx, clone(tok))
}

func (s *Source) set(fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn()
}

// valid: an access token that expires no sooner than the margin from now.
func (s *Source) valid(tok *oauth2.Token) bool {
	if tok == nil || tok.AccessToken == "" {
		return false
	}
	return tok.Expiry.IsZero() || s.now().Add(s.margin).Before(tok.Expiry)
}

// checkEndpoint refuses to send client secrets and refresh tokens in the clear,
// except to the machine itself.
func checkEndpoint(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("client: token endpoint %q is not an absolute URL", raw)
	}
	if u.Scheme == "https" {
		return nil
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); u.Scheme == "http" && (host == "localhost" || (ip != nil && ip.IsLoopback())) {
		return nil
	}
	return fmt.Errorf("client: token endpoint %q must be https (plain http only on loopback)", raw)
}
