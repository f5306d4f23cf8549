package rs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// ErrUnknownKey is returned for a kid the key set does not hold, even after a refetch.
var ErrUnknownKey = errors.New("rs: unknown signing key")

// KeySet finds the public key a token names by its kid.
type KeySet interface {
	// Key returns the public key with the kid. ErrUnknownKey when there is none; any
	// other error means the set could not be read.
	Key(ctx context.Context, kid string) (*jose.JSONWebKey, error)
}

// StaticKeySet is a fixed set of public keys, for tests and for APIs whose keys are
// configured by hand.
type StaticKeySet struct{ keys map[string]*jose.JSONWebKey }

// NewStaticKeySet returns a set of the given public keys (each with kid and alg).
func NewStaticKeySet(keys ...jose.JSONWebKey) *StaticKeySet {
	s := &StaticKeySet{keys: map[string]*jose.JSONWebKey{}}
	for i := range keys {
		k := keys[i].Public()
		s.keys[k.KeyID] = &k
	}
	return s
}

// Key implements KeySet.
func (s *StaticKeySet) Key(_ context.Context, kid string) (*jose.JSONWebKey, error) {
	if k, ok := s.keys[kid]; ok {
		return k, nil
	}
	return nil, ErrUnknownKey
}

// remoteKeySet is the issuer's JWKS, cached. An unknown kid refetches it: once for
// all the callers waiting at that moment (single flight), and at most once per
// minRefetch, so tokens with made-up kids cannot make the gate hammer the server
// (go-oidc jwks.go does the same).
type remoteKeySet struct {
	url        string
	client     *http.Client
	now        func() time.Time
	minRefetch time.Duration

	keys atomic.Pointer[map[string]*jose.JSONWebKey] // nil until the first fetch succeeds

	mu        sync.Mutex
	fetchedAt time.Time // of the last fetch, failed or not
	lastErr   error     // of the last fetch
	inflight  *fetch    // the refetch under way, nil when none
}

type fetch struct {
	done chan struct{}
	err  error
}

func newRemoteKeySet(url string, client *http.Client, now func() time.Time, minRefetch time.Duration) *remoteKeySet {
	return &remoteKeySet{url: url, client: client, now: now, minRefetch: minRefetch}
}

// Key implements KeySet.
func (s *remoteKeySet) Key(ctx context.Context, kid string) (*jose.JSONWebKey, error) {
	if k, ok := s.published(kid); ok {
		return k, nil
	}
	s.mu.Lock()
	if s.inflight == nil && s.limited() {
		// A fetch may have finished since the lookup above: it stores the keys
		// under mu, so look again before refusing.
		k, ok := s.published(kid)
		err := s.lastErr
		s.mu.Unlock()
		if ok {
			return k, nil
		}
		if err != nil {
			return nil, err
		}
		return nil, ErrUnknownKey
	}
	s.mu.Unlock()
	if err := s.refresh(ctx, false); err != nil {
		return nil, err
	}
	if k, ok := s.published(kid); ok {
		return k, nil
	}
	return nil, ErrUnknownKey
}

// published returns the key with kid from the last JWKS fetched, without fetching.
func (s *remoteKeySet) published(kid string) (*jose.JSONWebKey, bool) {
	m := s.keys.Load()
	if m == nil {
		return nil, false
	}
	k, ok := (*m)[kid]
	return k, ok
}

// limited says whether the last fetch was too recent for another. Call with mu held.
func (s *remoteKeySet) limited() bool {
	return !s.fetchedAt.IsZero() && s.now().Sub(s.fetchedAt) < s.minRefetch
}

// refresh refetches the set, joining a fetch already under way. force skips the rate
// limit (the feed said the keys changed).
func (s *remoteKeySet) refresh(ctx context.Context, force bool) error {
	s.mu.Lock()
	f := s.inflight
	if f == nil {
		if !force && s.limited() {
			err := s.lastErr
			s.mu.Unlock()
			return err
		}
		f = &fetch{done: make(chan struct{})}
		s.inflight = f
		// The fetch is not the first caller's: another caller's cancellation must not
		// fail everyone waiting on it.
		go s.run(context.WithoutCancel(ctx), f)
	}
	s.mu.Unlock()
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *remoteKeySet) run(ctx context.Context, f *fetch) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	keys, err := s.get(ctx)
	s.mu.Lock()
	s.fetchedAt = s.now()
	if err == nil {
		s.keys.Store(&keys)
	}
	s.lastErr = err
	s.inflight = nil
	f.err = err
	s.mu.Unlock()
	close(f.done)
}

// get fetches and parses the JWKS, keeping the signing keys that name their alg (the
// alg a token's header must match: RFC 8725 §3.1).
func (s *remoteKeySet) get(ctx context.Context) (map[string]*jose.JSONWebKey, error) {
	var set jose.JSONWebKeySet
	if err := getJSON(ctx, s.client, s.url, &set); err != nil {
		return nil, fmt.Errorf("rs: fetch JWKS: %w", err)
	}
	keys := map[string]*jose.JSONWebKey{}
	for i := range set.Keys {
		k := set.Keys[i]
		if k.KeyID == "" || k.Algorithm == "" || !k.IsPublic() || (k.Use != "" && k.Use != "sig") {
			continue
		}
		keys[k.KeyID] = &k
	}
	return keys, nil
}

// maxDocument bounds the discovery document and the JWKS.
const maxDocument = 1 << 20

// getJSON GETs url and decodes its JSON body into v.
func getJSON(ctx context.Context, client *http.Client, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, res.Status)
	}
	return json.NewDecoder(io.LimitReader(res.Body, maxDocument)).Decode(v)
}
