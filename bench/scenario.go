package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// clientCredentials mints an access token with the client_credentials grant
// (RFC 6749 §4.4) on every step.
type clientCredentials struct {
	hc    *http.Client
	token endpoint
	scope string
}

func (s *clientCredentials) prepare(context.Context) error { return nil }

func (s *clientCredentials) step(t *turn) bool {
	start := t.start()
	_, f := s.mint(t.ctx)
	t.tally.record(start, f)
	return true
}

// mint gets one access token.
func (s *clientCredentials) mint(ctx context.Context) (tokenResponse, *failure) {
	form := url.Values{"grant_type": {"client_credentials"}}
	if s.scope != "" {
		form.Set("scope", s.scope)
	}
	var res tokenResponse
	if f := postForm(ctx, s.hc, s.token, form, &res); f != nil {
		return res, f
	}
	if res.AccessToken == "" {
		return res, &failure{kind: "bad_response", detail: "no access_token"}
	}
	return res, nil
}

// refresh rotates refresh tokens (RFC 6749 §6): each virtual client holds one chain
// and always presents its latest token. A chain that breaks is not retried: its
// virtual client stops.
type refresh struct {
	hc    *http.Client
	token endpoint
	// allowUnrotated accepts a server that answers with the same refresh token (or
	// none), for pricing servers that do not rotate; the chain keeps its token.
	allowUnrotated bool
	ready          chan *chain // chains no worker is using
	live           atomic.Int64
	dead           chan struct{} // closed when the last chain breaks
	once           sync.Once
}

type chain struct{ token string }

func newRefresh(hc *http.Client, token endpoint, tokens []string, allowUnrotated bool) *refresh {
	s := &refresh{hc: hc, token: token, allowUnrotated: allowUnrotated, ready: make(chan *chain, len(tokens)), dead: make(chan struct{})}
	for _, tok := range tokens {
		s.ready <- &chain{token: tok}
	}
	s.live.Store(int64(len(tokens)))
	return s
}

func (s *refresh) prepare(context.Context) error { return nil }

func (s *refresh) step(t *turn) bool {
	var c *chain
	select {
	case c = <-s.ready:
	case <-s.dead:
		return false
	case <-t.stop:
		return false
	}
	start := t.start()
	var res tokenResponse
	f := postForm(t.ctx, s.hc, s.token, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {c.token}}, &res)
	switch {
	case f != nil && (f.kind == "transport" || f.kind == "timeout"):
		// Whether the server rotated is unknown: the chain is broken all the same.
	case f != nil:
		f.kind = "rotation_failed"
	case (res.RefreshToken == "" || res.RefreshToken == c.token) && !s.allowUnrotated:
		f = &failure{kind: "rotation_failed", detail: "no new refresh_token"}
	}
	t.tally.record(start, f)
	if f != nil {
		if s.live.Add(-1) == 0 {
			s.once.Do(func() { close(s.dead) })
		}
		return true
	}
	if res.RefreshToken != "" {
		c.token = res.RefreshToken
	}
	s.ready <- c
	return true
}

// introspect checks tokens from a pool with RFC 7662 introspection and, when
// revokeRatio > 0, revokes some of them (RFC 7009) and checks that introspection
// then calls them inactive. Each worker owns its share of the pool, so no token is
// introspected by one worker while another revokes it.
type introspect struct {
	mint        *clientCredentials
	check       endpoint
	revoke      endpoint
	revokeRatio float64
	shares      [][]pooled // one per worker
}

// pooled is a live access token of the pool.
type pooled struct {
	value   string
	renewAt time.Time // half its lifetime: replaced after that, so long runs never see it expire
}

func newIntrospect(mint *clientCredentials, check, revoke endpoint, revokeRatio float64, pool, workers int) *introspect {
	s := &introspect{mint: mint, check: check, revoke: revoke, revokeRatio: revokeRatio, shares: make([][]pooled, workers)}
	for w := range workers {
		s.shares[w] = make([]pooled, pool/workers+min(1, max(0, pool%workers-w)))
	}
	return s
}

// prepare fills the pool, every worker's share at once.
func (s *introspect) prepare(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, len(s.shares))
	for w, share := range s.shares {
		wg.Go(func() {
			for i := range share {
				if f := s.renew(ctx, &share[i]); f != nil {
					errs[w] = fmt.Errorf("filling the token pool: token endpoint answered %w", f)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// renew replaces p with a fresh token.
func (s *introspect) renew(ctx context.Context, p *pooled) *failure {
	res, f := s.mint.mint(ctx)
	if f != nil {
		*p = pooled{}
		return f
	}
	life := time.Duration(res.ExpiresIn) * time.Second
	if life <= 0 {
		life = time.Minute
	}
	*p = pooled{value: res.AccessToken, renewAt: time.Now().Add(life / 2)}
	return nil
}

func (s *introspect) step(t *turn) bool {
	share := s.shares[t.worker]
	p := &share[rand.IntN(len(share))]
	start := t.start()
	if p.value == "" || time.Now().After(p.renewAt) {
		// An empty slot is one whose replacement failed; the failure was counted then.
		f := s.renew(t.ctx, p)
		t.tally.record(start, f)
		if f != nil {
			return true
		}
		start = time.Now()
	}
	if s.revokeRatio > 0 && rand.Float64() < s.revokeRatio {
		f := postForm(t.ctx, s.mint.hc, s.revoke, url.Values{"token": {p.value}, "token_type_hint": {"access_token"}}, nil)
		t.tally.record(start, f)
		if f != nil {
			return true
		}
		start = time.Now()
		active, f := s.introspect(t.ctx, p.value)
		if f == nil && active {
			f = &failure{kind: "revoked_still_active", detail: "a revoked token is still active"}
		}
		t.tally.record(start, f)
		// The revoked token leaves the pool; a fresh one takes its place.
		start = time.Now()
		t.tally.record(start, s.renew(t.ctx, p))
		return true
	}
	active, f := s.introspect(t.ctx, p.value)
	if f == nil && !active {
		f = &failure{kind: "inactive", detail: "a live token is inactive"}
	}
	t.tally.record(start, f)
	return true
}

func (s *introspect) introspect(ctx context.Context, tok string) (bool, *failure) {
	var res introspection
	f := postForm(ctx, s.mint.hc, s.check, url.Values{"token": {tok}, "token_type_hint": {"access_token"}}, &res)
	return res.Active, f
}
