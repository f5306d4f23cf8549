// Package secevent is the signed revocation feed for resource servers: a
// Server-Sent Events stream of a realm's revocations, each an RFC 8417 Security
// Event Token, starting with a snapshot of those still relevant and resumable
// from a cursor.
package secevent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/latchkey/latchkey/internal/keys"
	"github.com/latchkey/latchkey/internal/protocol"
	"github.com/latchkey/latchkey/internal/token"
	"github.com/latchkey/latchkey/storage"
)

// Store is what the feed reads.
type Store interface {
	ListClients(ctx context.Context, realm string) ([]storage.Client, error)
	ListDeniedJWTs(ctx context.Context, realm string, now time.Time) ([]storage.DeniedJWT, error)
	ListChanges(ctx context.Context, q storage.ChangeQuery) ([]storage.Change, error)
	LastChangeSeq(ctx context.Context) (int64, error)
}

// Follower tells how far this instance has applied the change feed: every change
// with Seq up to Last is visible in the store (internal/cluster's Follower).
type Follower interface {
	// Wait returns once a change with Seq > after has been applied, or ctx ends.
	Wait(ctx context.Context, after int64) (last int64, err error)
	Last() int64
}

// Signer gives the key that signs for a realm with an algorithm now (keys.Manager).
type Signer interface {
	Signer(ctx context.Context, realm, alg string) (*keys.Key, error)
}

// Defaults of the Config limits.
const (
	DefaultPingEvery           = 15 * time.Second
	DefaultStreamFor           = 10 * time.Minute
	DefaultMaxStreams          = 256
	DefaultMaxStreamsPerClient = 16
)

// pageSize bounds the changes a stream holds at once.
const pageSize = 256

// maxCompacted bounds the snapshot's memory of superseded stamps (about 100
// bytes each): past it, older stamps of a subject are sent too (harmless: a
// later one covers them).
const maxCompacted = 20_000

// maxSnapshots bounds the snapshots made at once: a snapshot holds the realm's
// deny-list and its compaction map, a live stream only a page of changes.
const maxSnapshots = 4

// writeTimeout bounds one write to a receiver that does not read.
const writeTimeout = 10 * time.Second

// Config is what a Feed is built from.
type Config struct {
	Store    Store
	Follower Follower
	Keys     Signer
	Issuer   func(realm string) string
	Log      *slog.Logger
	Now      func() time.Time

	PingEvery           time.Duration // a ": ping" after this much silence; 0: DefaultPingEvery
	StreamFor           time.Duration // a stream ends after this long; 0: DefaultStreamFor
	MaxStreams          int           // streams open at once in all; 0: DefaultMaxStreams
	MaxStreamsPerClient int           // streams open at once per client; 0: DefaultMaxStreamsPerClient
}

// Feed serves revocation streams.
type Feed struct {
	c Config

	mu        sync.Mutex
	open      int
	perClient map[string]int // never more entries than open streams
	// ttls holds the longest token lifetimes of realms read within ttlFresh.
	ttls map[string]ttlEntry

	snapshots chan struct{} // a slot per snapshot being made (maxSnapshots)

	stop   context.Context // ends every stream at shutdown
	cancel context.CancelFunc
}

// New returns a Feed.
func New(c Config) *Feed {
	c.PingEvery = cmp.Or(c.PingEvery, DefaultPingEvery)
	c.StreamFor = cmp.Or(c.StreamFor, DefaultStreamFor)
	c.MaxStreams = cmp.Or(c.MaxStreams, DefaultMaxStreams)
	c.MaxStreamsPerClient = cmp.Or(c.MaxStreamsPerClient, DefaultMaxStreamsPerClient)
	stop, cancel := context.WithCancel(context.Background())
	return &Feed{c: c, perClient: map[string]int{}, ttls: map[string]ttlEntry{},
		snapshots: make(chan struct{}, maxSnapshots), stop: stop, cancel: cancel}
}

// Close ends every open stream (their receivers reconnect elsewhere), so a
// graceful shutdown does not wait for them.
func (f *Feed) Close() { f.cancel() }

// errTooManyStreams refuses a stream over the limits: 429 with Retry-After.
var errTooManyStreams = &protocol.Error{Code: protocol.TemporarilyUnavailable, Status: http.StatusTooManyRequests,
	Description: "too many revocation streams are open; retry later", RetryAfter: 30 * time.Second}

// admit counts a new stream of the client against the limits.
func (f *Feed) admit(key string) (release func(), ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.open >= f.c.MaxStreams || f.perClient[key] >= f.c.MaxStreamsPerClient {
		return nil, false
	}
	f.open++
	f.perClient[key]++
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.open--
		if f.perClient[key]--; f.perClient[key] == 0 {
			delete(f.perClient, key)
		}
	}, true
}

// Serve streams the realm's revocations to client, which the caller has
// authenticated. It returns an error only when it wrote nothing (the caller
// answers it as a protocol error): too many streams open (429), or a store
// error. Once the stream has started, failures end it and are logged.
func (f *Feed) Serve(w http.ResponseWriter, r *http.Request, realm storage.Realm, client storage.Client) error {
	release, ok := f.admit(realm.Name + "/" + client.ID)
	if !ok {
		return errTooManyStreams
	}
	defer release()

	ctx, cancel := context.WithTimeout(r.Context(), f.c.StreamFor)
	defer cancel()
	defer context.AfterFunc(f.stop, cancel)()

	s := &stream{f: f, w: w, rc: http.NewResponseController(w), realm: realm, client: client.ID}
	last, err := f.c.Store.LastChangeSeq(ctx)
	if err != nil {
		return err
	}
	from, resume, err := f.resumePoint(ctx, cursor(r), last)
	if err != nil {
		return err
	}
	f.reach(ctx, last)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // proxies that buffer would hold events back
	w.WriteHeader(http.StatusOK)
	if err := s.rc.Flush(); err != nil {
		return nil // the writer cannot stream; nothing more can be said
	}
	s.lastWrite = time.Now()

	if resume {
		err = s.resume(ctx, from)
	} else {
		err = s.snapshot(ctx)
	}
	if err == nil {
		err = s.live(ctx)
	}
	switch {
	case err == nil || ctx.Err() != nil:
	case errors.Is(err, errReceiverGone):
		f.c.Log.DebugContext(r.Context(), "revocation stream ended", "realm", realm.Name, "client_id", client.ID, "err", err)
	default:
		f.c.Log.WarnContext(r.Context(), "revocation stream ended", "realm", realm.Name, "client_id", client.ID, "err", err)
	}
	return nil
}

// cursor is the position a receiver asks to resume from: the SSE Last-Event-ID
// (what EventSource sends on reconnection) or ?cursor=.
func cursor(r *http.Request) string {
	if c := r.Header.Get("Last-Event-ID"); c != "" {
		return c
	}
	return r.URL.Query().Get("cursor")
}

// resumePoint decides whether a cursor can be resumed from: a decimal change
// sequence number no higher than the store's last, and no older than what the
// store still holds. Anything else gets a snapshot.
func (f *Feed) resumePoint(ctx context.Context, c string, last int64) (int64, bool, error) {
	if c == "" || len(c) > 19 {
		return 0, false, nil
	}
	seq, err := strconv.ParseInt(c, 10, 64)
	if err != nil || seq < 0 {
		return 0, false, nil
	}
	if seq > last {
		return 0, false, nil // not a position of this store
	}
	oldest, err := f.c.Store.ListChanges(ctx, storage.ChangeQuery{Limit: 1})
	if err != nil {
		return 0, false, err
	}
	switch {
	case len(oldest) == 0:
		// Nothing held: only a receiver already at the end has missed nothing.
		return seq, seq == last, nil
	case oldest[0].Seq > seq+1:
		// Changes after the cursor may have been purged (or the gap is a rolled
		// back transaction: a snapshot is right either way).
		return 0, false, nil
	}
	return seq, true, nil
}

// reachWait bounds how long a new stream waits for this instance to apply what
// the store had recorded when it connected (the follower's gap timeout is the
// store's, 3 s by default).
const reachWait = 5 * time.Second

// reach waits until this instance has applied every change recorded up to last
// (on PostgreSQL the follower hears of a commit, even its own instance's, a few
// milliseconds after it), so that what was revoked before a receiver connected
// comes before its synced. Past reachWait it goes on: those changes then follow
// synced as live events.
func (f *Feed) reach(ctx context.Context, last int64) {
	ctx, cancel := context.WithTimeout(ctx, reachWait)
	defer cancel()
	for at := f.c.Follower.Last(); at < last; {
		var err error
		if at, err = f.c.Follower.Wait(ctx, at); err != nil {
			return
		}
	}
}

// stream is one receiver's connection.
type stream struct {
	f         *Feed
	w         http.ResponseWriter
	rc        *http.ResponseController
	realm     storage.Realm
	client    string
	pos       int64 // every change up to here has been sent (or was not for this realm)
	lastWrite time.Time
	buf       []byte
}

// ttl is the longest access-token lifetime of the realm's clients, rounded up
// to a second: how long a token issued before a revocation may live after it.
func (s *stream) ttl(ctx context.Context) (time.Duration, error) { return s.f.ttl(ctx, s.realm) }

// ttlFresh is how long a realm's ttl is reused: streams of a realm share one
// read of its clients per interval, however many changes they send.
const ttlFresh = 10 * time.Second

func (f *Feed) ttl(ctx context.Context, realm storage.Realm) (time.Duration, error) {
	now := f.c.Now()
	f.mu.Lock()
	e, ok := f.ttls[realm.Name]
	f.mu.Unlock()
	if ok && now.Sub(e.at) < ttlFresh && now.After(e.at) {
		return e.ttl, nil
	}
	clients, err := f.c.Store.ListClients(ctx, realm.Name)
	if err != nil {
		return 0, err
	}
	longest := token.TTL(realm, storage.Client{})
	for _, c := range clients {
		longest = max(longest, token.TTL(realm, c))
	}
	longest = (longest + time.Second - 1).Truncate(time.Second)
	f.mu.Lock()
	for name, e := range f.ttls { // a deleted realm's entry goes too
		if now.Sub(e.at) >= ttlFresh {
			delete(f.ttls, name)
		}
	}
	f.ttls[realm.Name] = ttlEntry{ttl: longest, at: now}
	f.mu.Unlock()
	return longest, nil
}

// ttlEntry is a realm's ttl as read at at.
type ttlEntry struct {
	ttl time.Duration
	at  time.Time
}

// snapshot sends every revocation still relevant, oldest first, then synced.
//
// Deny-list entries go first, with the cursor "0": a receiver cut off among them
// resumes with the whole change log if none of it was ever purged, else with a
// snapshot. The changes of the realm since the longest token lifetime follow,
// each with its own sequence number, so a receiver cut off among them resumes
// from there; of the stamps of one subject only the latest is sent.
func (s *stream) snapshot(ctx context.Context) error {
	select {
	case s.f.snapshots <- struct{}{}:
		defer func() { <-s.f.snapshots }()
	case <-ctx.Done():
		return nil
	}
	at := s.f.c.Follower.Last()
	now := s.f.c.Now()
	ttl, err := s.ttl(ctx)
	if err != nil {
		return err
	}
	denied, err := s.f.c.Store.ListDeniedJWTs(ctx, s.realm.Name, now)
	if err != nil {
		return err
	}
	slices.SortStableFunc(denied, func(a, b storage.DeniedJWT) int { return a.CreatedAt.Compare(b.CreatedAt) })
	for _, d := range denied {
		typ, payload := deniedEvent(d)
		if err := s.sendSET(ctx, "0", typ, payload); err != nil {
			return err
		}
	}
	denied = nil

	since := now.Add(-ttl)
	latest := map[string]int64{}
	err = s.eachChange(ctx, 0, at, since, func(c storage.Change) error {
		if c.Kind == storage.ChangeTokenDenied {
			return nil
		}
		k := c.Kind + "\x00" + c.Subject
		if _, ok := latest[k]; ok || len(latest) < maxCompacted {
			latest[k] = c.Seq
		}
		return nil
	})
	if err != nil {
		return err
	}
	err = s.eachChange(ctx, 0, at, since, func(c storage.Change) error {
		if c.Kind == storage.ChangeTokenDenied { // sent from the deny-list
			return nil
		}
		if seq, ok := latest[c.Kind+"\x00"+c.Subject]; ok && seq != c.Seq {
			return nil // a later stamp of the same subject covers it
		}
		return s.sendChange(ctx, c, ttl, now)
	})
	if err != nil {
		return err
	}
	s.pos = at
	return s.send("synced", strconv.FormatInt(at, 10), "{}")
}

// resume sends the realm's changes after from, then synced.
func (s *stream) resume(ctx context.Context, from int64) error {
	s.pos = from
	if err := s.catchUp(ctx); err != nil {
		return err
	}
	return s.send("synced", strconv.FormatInt(s.pos, 10), "{}")
}

// catchUp sends the realm's changes after pos up to what this instance has
// applied.
func (s *stream) catchUp(ctx context.Context) error {
	last := s.f.c.Follower.Last()
	if last <= s.pos {
		return nil
	}
	ttl, err := s.ttl(ctx)
	if err != nil {
		return err
	}
	if err := s.eachChange(ctx, s.pos, last, time.Time{}, func(c storage.Change) error {
		return s.sendChange(ctx, c, ttl, time.Time{})
	}); err != nil {
		return err
	}
	s.pos = last
	return nil
}

// live sends changes as this instance applies them, and a ping after each
// PingEvery of silence, until ctx ends.
func (s *stream) live(ctx context.Context) error {
	for {
		if err := s.catchUp(ctx); err != nil {
			return err
		}
		quiet := s.f.c.PingEvery - time.Since(s.lastWrite)
		if quiet <= 0 {
			if err := s.write([]byte(": ping\n\n")); err != nil {
				return err
			}
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, quiet)
		_, err := s.f.c.Follower.Wait(wctx, s.pos)
		cancel()
		if ctx.Err() != nil {
			return nil // the receiver left, the stream's time is up, or shutdown
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
	}
}

// eachChange calls fn on the realm's changes with after < Seq <= upTo (and Time
// at or after since, when set), in Seq order, a page at a time.
func (s *stream) eachChange(ctx context.Context, after, upTo int64, since time.Time, fn func(storage.Change) error) error {
	for after < upTo {
		page, err := s.f.c.Store.ListChanges(ctx, storage.ChangeQuery{After: after, Realm: s.realm.Name, Since: since, Limit: pageSize})
		if err != nil {
			return err
		}
		for _, c := range page {
			if c.Seq > upTo {
				return nil
			}
			if err := fn(c); err != nil {
				return err
			}
			after = c.Seq
		}
		if len(page) < pageSize {
			return nil
		}
	}
	return nil
}

// sendChange sends the change's event, if it has one and, when now is set, it
// still affects a token at now.
func (s *stream) sendChange(ctx context.Context, c storage.Change, ttl time.Duration, now time.Time) error {
	typ, payload, until, ok := event(c, ttl)
	if !ok || (!now.IsZero() && !until.After(now)) {
		return nil
	}
	return s.sendSET(ctx, strconv.FormatInt(c.Seq, 10), typ, payload)
}

// sendSET signs one event as a SET for the receiving client and sends it.
func (s *stream) sendSET(ctx context.Context, id, eventType string, payload any) error {
	alg := s.realm.SigningAlg
	if alg == "" {
		alg = keys.ES256
	}
	k, err := s.f.c.Keys.Signer(ctx, s.realm.Name, alg)
	if err != nil {
		return err
	}
	set, err := k.Sign(claims{
		Issuer:   s.f.c.Issuer(s.realm.Name),
		Audience: s.client,
		IssuedAt: s.f.c.Now().Unix(),
		ID:       newJTI(),
		Events:   map[string]any{eventType: payload},
	}, typ)
	if err != nil {
		return fmt.Errorf("sign a security event: %w", err)
	}
	return s.send("set", id, set)
}

// send writes one SSE event (WHATWG HTML §9.2.5): its data is one line.
func (s *stream) send(event, id, data string) error {
	b := append(s.buf[:0], "event: "...)
	b = append(b, event...)
	b = append(b, "\nid: "...)
	b = append(b, id...)
	b = append(b, "\ndata: "...)
	b = append(b, data...)
	b = append(b, "\n\n"...)
	s.buf = b
	return s.write(b)
}

// errReceiverGone is a write that failed: the receiver left or stopped reading.
var errReceiverGone = errors.New("the receiver is gone")

// write sends b and flushes it, within writeTimeout.
func (s *stream) write(b []byte) error {
	s.rc.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := s.w.Write(b); err != nil {
		return fmt.Errorf("%w: %v", errReceiverGone, err)
	}
	if err := s.rc.Flush(); err != nil {
		return fmt.Errorf("%w: %v", errReceiverGone, err)
	}
	s.lastWrite = time.Now()
	return nil
}
