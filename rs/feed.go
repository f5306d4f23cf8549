package rs

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// Timing of the feed: the server pings every 15 s of silence, so 45 s of silence
// means the stream is dead (feed contract); reconnects back off from minBackoff to
// maxBackoff.
const (
	feedIdle   = 45 * time.Second
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
	maxLine    = 64 << 10
)

// feed follows the issuer's revocation events (Server-Sent Events of signed
// Security Event Tokens), applying each to the Validator's revocations, and
// reconnects with its cursor whenever the stream ends.
type feed struct {
	v      *Validator
	url    string
	client *http.Client // the Options' transport, without a timeout: the stream stays open
	idle   time.Duration

	cursor     string // the id of the last event applied
	synced     chan struct{}
	syncedOnce sync.Once
}

func newFeed(v *Validator, endpoint string) *feed {
	return &feed{
		v: v, url: endpoint, client: &http.Client{Transport: v.o.HTTPClient.Transport}, idle: feedIdle,
		synced: make(chan struct{}),
	}
}

// run follows the feed until ctx ends.
func (f *feed) run(ctx context.Context) {
	backoff := minBackoff
	for ctx.Err() == nil {
		heard, err := f.follow(ctx)
		if ctx.Err() != nil {
			return
		}
		if heard {
			backoff = minBackoff
		}
		f.v.o.Logger.Warn("revocation feed: disconnected; reconnecting", "err", err, "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// follow reads one connection to the feed until it ends. heard says whether the
// server answered with a stream at all (so the next retry need not back off).
func (f *feed) follow(ctx context.Context) (heard bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", f.url, nil)
	if err != nil {
		return false, err
	}
	// RFC 6749 §2.3.1: each part form-encoded before Basic.
	req.SetBasicAuth(url.QueryEscape(f.v.o.ClientID), url.QueryEscape(f.v.o.ClientSecret))
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-store")
	if f.cursor != "" {
		req.Header.Set("Last-Event-ID", f.cursor)
	}
	// Silence for longer than the server's ping interval allows ends the connection.
	watchdog := time.AfterFunc(f.idle, cancel)
	defer watchdog.Stop()
	res, err := f.client.Do(req)
	if err != nil {
		return false, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return false, fmt.Errorf("GET revocation feed: %s", res.Status)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		return false, fmt.Errorf("revocation feed: Content-Type %q", ct)
	}

	// Server-Sent Events (WHATWG HTML §9.2.6): fields up to a blank line make an event.
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 4096), maxLine)
	var event, id, data string
	var hasID bool
	for sc.Scan() {
		watchdog.Reset(f.idle)
		line := sc.Text()
		if line == "" {
			if event != "" || data != "" {
				if err := f.dispatch(ctx, event, id, hasID, data); err != nil {
					return true, err
				}
			}
			event, data, hasID = "", "", false
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue // a comment: the server's ping
		}
		name, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch name {
		case "event":
			event = value
		case "data":
			if data != "" {
				data += "\n"
			}
			data += value
		case "id":
			if !strings.ContainsRune(value, 0) {
				id, hasID = value, true
			}
		}
	}
	if err := sc.Err(); err != nil {
		return true, err
	}
	return true, errors.New("the server ended the stream")
}

// dispatch acts on one event. The cursor moves only past an event that was applied,
// so an event that cannot be checked now is asked for again after reconnecting.
func (f *feed) dispatch(ctx context.Context, event, id string, hasID bool, data string) error {
	switch event {
	case "set":
		if err := f.apply(ctx, data); err != nil {
			return fmt.Errorf("revocation event: %w", err)
		}
	case "synced":
		f.syncedOnce.Do(func() { close(f.synced) })
	default:
		// Unknown events are ignored (WHATWG: an EventSource only hands on named ones
		// it listens for), but their id still moves the cursor.
	}
	if hasID {
		f.cursor = id
	}
	return nil
}

// setClaims are a Security Event Token's (RFC 8417 §2.2).
type setClaims struct {
	Issuer   string                     `json:"iss"`
	Audience audience                   `json:"aud"`
	IssuedAt int64                      `json:"iat"`
	ID       string                     `json:"jti"`
	Events   map[string]json.RawMessage `json:"events"`
}

// apply verifies a SET (signature with the alg pinned to its key, typ, iss, aud) and
// records its event.
func (f *feed) apply(ctx context.Context, set string) error {
	payload, typ, _, err := verifyJWS(ctx, f.v.keys, set)
	if err != nil {
		return err
	}
	if !strings.EqualFold(typ, "secevent+jwt") && !strings.EqualFold(typ, "application/secevent+jwt") {
		return errors.New("typ is not secevent+jwt")
	}
	var c setClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return err
	}
	if c.Issuer != f.v.o.Issuer || !slices.Contains(c.Audience, f.v.o.ClientID) {
		return errors.New("wrong iss or aud")
	}
	if len(c.Events) != 1 {
		return fmt.Errorf("%d events in one SET", len(c.Events))
	}
	for typ, raw := range c.Events {
		keysChanged, err := f.v.rev.apply(typ, raw, f.v.o.Now())
		if err != nil {
			return err
		}
		if keysChanged {
			return f.v.keysChanged(ctx)
		}
	}
	return nil
}

// keysChanged refetches the JWKS and forgets every verified token, so a token whose
// key is no longer published is checked again, and refused.
func (v *Validator) keysChanged(ctx context.Context) error {
	if v.remote != nil {
		if err := v.remote.refresh(ctx, true); err != nil {
			return err
		}
	}
	v.verified.clear()
	return nil
}
