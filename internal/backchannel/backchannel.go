// Package backchannel tells clients that a user's browser session ended, by
// OpenID Connect Back-Channel Logout 1.0: a signed logout token POSTed to each
// client of the session that registered a backchannel_logout_uri.
//
// Every session end, on any instance, is a session.ended change in the store's
// change feed, recorded in the transaction that ends it. One instance at a time
// (storage's Exclusive) reads the feed from a cursor kept in the store and
// delivers; the cursor moves past a change only once every delivery it caused
// has succeeded or finally failed, so a restart (or another instance taking
// over) repeats at worst what was in flight, and never loses a logout. It reads
// the feed only as far as this instance's Follower has found it whole, so a
// change still in flight on another instance is never skipped.
package backchannel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/latchkey/latchkey/storage"
)

// Store is what delivery reads and writes.
type Store interface {
	ListChanges(ctx context.Context, q storage.ChangeQuery) ([]storage.Change, error)
	LastChangeSeq(ctx context.Context) (int64, error)
	Exclusive(ctx context.Context, name string, fn func(ctx context.Context) error) (bool, error)
	BackchannelCursor(ctx context.Context) (int64, bool, error)
	SetBackchannelCursor(ctx context.Context, seq int64) error
	SessionClients(ctx context.Context, sessionID string) ([]storage.SessionClient, error)
	ListSessionsRevokedAt(ctx context.Context, realm string, at time.Time) ([]storage.Session, error)
	GetClient(ctx context.Context, realm, id string) (storage.Client, error)
	AppendAudit(ctx context.Context, e storage.AuditEvent) (int64, error)
}

// Follower tells how far the change feed has no gaps: every change with Seq up to
// Last is visible in the store, or never will be (internal/cluster's Follower).
type Follower interface {
	// Wait returns once Last is past after, with Last, or when ctx ends.
	Wait(ctx context.Context, after int64) (last int64, err error)
	Last() int64
}

// Tokens signs logout tokens (internal/token).
type Tokens interface {
	IssueLogoutToken(ctx context.Context, client storage.Client, userID, sessionID string) (string, error)
}

// EventFailed is the audit event of a logout token the client never took.
const EventFailed = "backchannel_logout.failed"

// ExclusiveName is the name under which one instance delivers.
const ExclusiveName = "backchannel logout"

// Config is what a Deliverer runs on. Zero fields take the defaults.
type Config struct {
	Store    Store
	Follower Follower
	Tokens   Tokens
	Log      *slog.Logger
	Now      func() time.Time
	// HTTP sends the logout tokens. Default: a 5 s timeout, no redirects followed.
	HTTP *http.Client
	// RetryBase is the wait before the first retry; each later one triples it,
	// for Retries retries (default 1.5 s and 4: attempts over about a minute).
	RetryBase time.Duration
	Retries   int
	// Parallel bounds the POSTs in flight (default 8); Queue bounds the
	// deliveries waiting or retrying (default 1000): past it the feed is read on
	// only as deliveries finish.
	Parallel int
	Queue    int
	// Poll is how often a failed read of the feed is tried again and the end of
	// the term looked for (default 10 s); Lead is how often an instance that is
	// not delivering tries to take over (default 5 s).
	Poll, Lead time.Duration
	// Term is how long an instance delivers before it lets go, at a moment when
	// nothing is in flight, and takes the lock again (default 1 m): should its
	// hold on the lock have been lost unnoticed (a dropped database connection
	// frees a PostgreSQL advisory lock), two instances deliver at once for no
	// longer than that.
	Term time.Duration
}

// Deliverer delivers logout tokens.
type Deliverer struct {
	c   Config
	sem chan struct{}
}

// New returns a Deliverer; Run starts it.
func New(c Config) *Deliverer {
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.HTTP == nil {
		c.HTTP = &http.Client{
			Timeout: 5 * time.Second,
			// Back-Channel Logout §2.5 has no redirects; following one would send the
			// token somewhere the client never registered.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if c.RetryBase <= 0 {
		c.RetryBase = 1500 * time.Millisecond
	}
	if c.Retries <= 0 {
		c.Retries = 4
	}
	if c.Parallel <= 0 {
		c.Parallel = 8
	}
	if c.Queue <= 0 {
		c.Queue = 1000
	}
	if c.Poll <= 0 {
		c.Poll = 10 * time.Second
	}
	if c.Lead <= 0 {
		c.Lead = 5 * time.Second
	}
	if c.Term <= 0 {
		c.Term = time.Minute
	}
	return &Deliverer{c: c, sem: make(chan struct{}, c.Parallel)}
}

// Run delivers while this instance holds the delivery, and otherwise keeps
// trying to take it over, until ctx ends.
func (d *Deliverer) Run(ctx context.Context) {
	for {
		ran, err := d.c.Store.Exclusive(ctx, ExclusiveName, d.lead)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			d.c.Log.Warn("back-channel logout: delivery stopped; taking it up again", "err", err)
		} else if ran {
			continue // a term ended: take the lock again at once
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(d.c.Lead):
		}
	}
}

// job is one logout token to deliver: a change's session, to one client.
type job struct {
	seq       int64
	client    storage.Client
	userID    string
	sessionID string
}

// lead reads the feed from the stored cursor and delivers, until ctx ends or
// its term is over with nothing in flight.
func (d *Deliverer) lead(ctx context.Context) error {
	termEnds := d.c.Now().Add(d.c.Term)
	cursor, ok, err := d.c.Store.BackchannelCursor(ctx)
	if err != nil {
		return err
	}
	if !ok {
		// First start: what ended before there was any delivery is not news.
		if cursor, err = d.c.Store.LastChangeSeq(ctx); err != nil {
			return err
		}
		if err := d.c.Store.SetBackchannelCursor(ctx, cursor); err != nil {
			return err
		}
	}
	// Woken whenever the Follower finds more of the feed whole. Last is taken
	// before the first read, so no move past it goes unnoticed.
	wake := make(chan struct{}, 1)
	waitCtx, stopWait := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stopWait()
	seen := d.c.Follower.Last()
	wg.Go(func() {
		for at := seen; ; {
			var err error
			if at, err = d.c.Follower.Wait(waitCtx, at); err != nil {
				return
			}
			select {
			case wake <- struct{}{}:
			default:
			}
		}
	})

	done := make(chan int64, d.c.Queue)
	pending := map[int64]int{} // deliveries not finished, by change
	inFlight := 0
	read := cursor // the last change read and dispatched
	poll := time.NewTicker(d.c.Poll)
	defer poll.Stop()
	for {
		if room := d.c.Queue - inFlight; room > 0 {
			jobs, last, err := d.read(ctx, read, d.c.Follower.Last(), room)
			if err != nil && ctx.Err() == nil {
				d.c.Log.Warn("back-channel logout: reading the change feed", "err", err)
			}
			read = last
			for _, j := range jobs {
				pending[j.seq]++
				inFlight++
				wg.Go(func() {
					if d.deliver(ctx, j) {
						select { // a realm logout may queue more than done holds
						case done <- j.seq:
						case <-ctx.Done():
						}
					}
				})
			}
		}
		// The cursor moves to just before the oldest change still delivering.
		next := read
		for seq := range pending {
			next = min(next, seq-1)
		}
		if next > cursor {
			if err := d.c.Store.SetBackchannelCursor(ctx, next); err != nil {
				if ctx.Err() == nil {
					d.c.Log.Warn("back-channel logout: storing the cursor", "err", err)
				}
			} else {
				cursor = next
			}
		}
		if inFlight == 0 && cursor == read && !d.c.Now().Before(termEnds) {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-poll.C:
		case seq := <-done:
			inFlight--
			if pending[seq]--; pending[seq] <= 0 {
				delete(pending, seq)
			}
		}
	}
}

// read reads the changes after from up to upTo (the Follower's Last: no gap below
// it is still to fill), until they make room deliveries. It returns the jobs and
// the last change it read.
func (d *Deliverer) read(ctx context.Context, from, upTo int64, room int) ([]job, int64, error) {
	var jobs []job
	for from < upTo && len(jobs) < room {
		// No more than upTo-from changes can lie at or below upTo.
		changes, err := d.c.Store.ListChanges(ctx, storage.ChangeQuery{After: from, Limit: int(min(int64(room), upTo-from))})
		if err != nil {
			return jobs, from, err
		}
		if len(changes) == 0 || changes[0].Seq > upTo {
			// What is missing up to upTo was given up by the Follower (rolled back)
			// or purged: it will never be read.
			return jobs, upTo, nil
		}
		for _, ch := range changes {
			if ch.Seq > upTo {
				break
			}
			var js []job
			switch ch.Kind {
			case storage.ChangeSessionEnded:
				js, err = d.jobs(ctx, ch.Seq, ch.Subject, ch.UserID)
			case storage.ChangeRealmLogout:
				js, err = d.realmJobs(ctx, ch)
			}
			if err != nil {
				return jobs, from, err
			}
			if len(js) > 0 {
				if len(jobs)+len(js) > room && len(jobs) > 0 {
					return jobs, from, nil // the rest when there is room
				}
				jobs = append(jobs, js...)
			}
			from = ch.Seq
		}
	}
	return jobs, from, nil
}

// realmJobs are the deliveries of a realm logout: its change names no session,
// so they are the sessions it ended, found by its time.
func (d *Deliverer) realmJobs(ctx context.Context, ch storage.Change) ([]job, error) {
	sessions, err := d.c.Store.ListSessionsRevokedAt(ctx, ch.Realm, ch.Time)
	if err != nil {
		return nil, err
	}
	var out []job
	for _, s := range sessions {
		js, err := d.jobs(ctx, ch.Seq, s.ID, s.UserID)
		if err != nil {
			return nil, err
		}
		out = append(out, js...)
	}
	return out, nil
}

// jobs are the deliveries an ended session makes: one per client of the session
// that takes logout tokens.
func (d *Deliverer) jobs(ctx context.Context, seq int64, sessionID, userID string) ([]job, error) {
	clients, err := d.c.Store.SessionClients(ctx, sessionID)
	if err != nil {
		return nil, err
	}
	var out []job
	for _, sc := range clients {
		cl, err := d.c.Store.GetClient(ctx, sc.Realm, sc.ClientID)
		if errors.Is(err, storage.ErrNotFound) {
			continue // deleted since: nobody to tell
		}
		if err != nil {
			return nil, err
		}
		if cl.BackchannelLogoutURI == "" || cl.Disabled {
			continue
		}
		out = append(out, job{seq: seq, client: cl, userID: userID, sessionID: sessionID})
	}
	return out, nil
}

// deliver sends j's logout token, retrying with backoff; after the last attempt
// it gives up with an audit event. Each attempt signs a fresh token: one made for
// the first would have expired by the last. It reports whether it finished
// (delivered or gave up), false when ctx ended first.
func (d *Deliverer) deliver(ctx context.Context, j job) bool {
	wait := d.c.RetryBase
	var err error
	for attempt := 0; ; attempt++ {
		if err = d.attempt(ctx, j); err == nil {
			d.c.Log.Debug("back-channel logout delivered", "realm", j.client.Realm, "client_id", j.client.ID,
				"sid", j.sessionID, "attempts", attempt+1)
			return true
		}
		if ctx.Err() != nil {
			return false // the cursor stays before it: the next delivering instance repeats it
		}
		if attempt == d.c.Retries {
			break
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
		wait *= 3
	}
	d.c.Log.Warn("back-channel logout failed", "realm", j.client.Realm, "client_id", j.client.ID, "err", err)
	e := storage.AuditEvent{Time: d.c.Now().UTC().Truncate(time.Microsecond), Type: EventFailed,
		Realm: j.client.Realm, ClientID: j.client.ID, UserID: j.userID, SessionID: j.sessionID,
		Details: map[string]string{"attempts": strconv.Itoa(d.c.Retries + 1), "error": err.Error()}}
	if _, aerr := d.c.Store.AppendAudit(ctx, e); aerr != nil && ctx.Err() == nil {
		d.c.Log.Warn("back-channel logout: audit event not stored", "err", aerr)
	}
	return true
}

// attempt POSTs one logout token (Back-Channel Logout §2.5) and reports whether
// the client took it: 200 or 204 (any 2xx is taken as such).
func (d *Deliverer) attempt(ctx context.Context, j job) error {
	select {
	case d.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-d.sem }()
	tok, err := d.c.Tokens.IssueLogoutToken(ctx, j.client, j.userID, j.sessionID)
	if err != nil {
		return fmt.Errorf("signing the logout token: %w", err)
	}
	body := url.Values{"logout_token": {tok}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, j.client.BackchannelLogoutURI, strings.NewReader(body))
	if err != nil {
		return fmt.Errorf("bad back-channel logout URI: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := d.c.HTTP.Do(req)
	if err != nil {
		// The error names the URL, not the body: the token stays out of it.
		return err
	}
	defer res.Body.Close()
	io.Copy(io.Discard, io.LimitReader(res.Body, 4<<10))
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("the client answered %d", res.StatusCode)
	}
	return nil
}
