package secevent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/latchkey/latchkey/internal/keys"
	"github.com/latchkey/latchkey/internal/masterkey"
	"github.com/latchkey/latchkey/internal/protocol"
	"github.com/latchkey/latchkey/storage"
	"github.com/latchkey/latchkey/storage/sqlite"
)

var t0 = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)

const issuer = "https://as.example/realms/acme"

// fakeStore holds a change log, a deny-list and clients.
type fakeStore struct {
	mu      sync.Mutex
	changes []storage.Change
	denied  []storage.DeniedJWT
	clients []storage.Client
	fail    error
}

func (s *fakeStore) ListClients(ctx context.Context, realm string) ([]storage.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.clients, s.fail
}

func (s *fakeStore) ListDeniedJWTs(ctx context.Context, realm string, now time.Time) ([]storage.DeniedJWT, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []storage.DeniedJWT
	for _, d := range s.denied {
		if d.Realm == realm && d.ExpiresAt.After(now) {
			out = append(out, d)
		}
	}
	return out, s.fail
}

func (s *fakeStore) ListChanges(ctx context.Context, q storage.ChangeQuery) ([]storage.Change, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []storage.Change
	for _, c := range s.changes {
		if c.Seq > q.After && (q.Realm == "" || c.Realm == q.Realm) && !c.Time.Before(q.Since) {
			out = append(out, c)
			if q.Limit > 0 && len(out) == q.Limit {
				break
			}
		}
	}
	return out, s.fail
}

func (s *fakeStore) LastChangeSeq(ctx context.Context) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.changes) == 0 {
		return 0, s.fail
	}
	return s.changes[len(s.changes)-1].Seq, s.fail
}

// add records a change with the next Seq and returns it.
func (s *fakeStore) add(c storage.Change) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.Seq = 1
	if n := len(s.changes); n > 0 {
		c.Seq = s.changes[n-1].Seq + 1
	}
	if c.Realm == "" {
		c.Realm = "acme"
	}
	s.changes = append(s.changes, c)
	return c.Seq
}

// purge drops changes up to seq, as retention does.
func (s *fakeStore) purge(seq int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.changes) > 0 && s.changes[0].Seq <= seq {
		s.changes = s.changes[1:]
	}
}

// follower is a Follower moved by the test.
type follower struct {
	mu   sync.Mutex
	last int64
	wake chan struct{}
}

func newFollower() *follower { return &follower{wake: make(chan struct{})} }

func (f *follower) set(last int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.last = last
	close(f.wake)
	f.wake = make(chan struct{})
}

func (f *follower) Last() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

func (f *follower) Wait(ctx context.Context, after int64) (int64, error) {
	for {
		f.mu.Lock()
		last, wake := f.last, f.wake
		f.mu.Unlock()
		if last > after {
			return last, nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return last, ctx.Err()
		}
	}
}

type fixture struct {
	store    *fakeStore
	follower *follower
	keys     *keys.Manager
	feed     *Feed
	srv      *httptest.Server
	now      time.Time
}

// newFixture serves a feed for realm acme (ES256, 5-minute tokens; client api
// has 10-minute ones) to client rs at srv.URL.
func newFixture(t *testing.T, tweak func(*Config)) *fixture {
	t.Helper()
	ks, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "keys.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ks.Close() })
	realm := storage.Realm{Name: "acme", SigningAlg: keys.ES256, AccessTokenTTL: 5 * time.Minute, CreatedAt: t0, UpdatedAt: t0}
	if err := ks.CreateRealm(t.Context(), realm); err != nil {
		t.Fatal(err)
	}
	mk, err := masterkey.Parse(hex.EncodeToString(bytes.Repeat([]byte{7}, masterkey.Size)))
	if err != nil {
		t.Fatal(err)
	}
	fx := &fixture{store: &fakeStore{}, follower: newFollower(), now: t0.Add(time.Hour)}
	fx.store.clients = []storage.Client{{Realm: "acme", ID: "rs", SecretHash: "x"},
		{Realm: "acme", ID: "api", Tokens: storage.TokenSettings{AccessTokenTTL: 10 * time.Minute}}}
	now := func() time.Time { return fx.now }
	fx.keys = keys.NewManager(ks, mk, keys.DefaultPolicy, now)
	c := Config{Store: fx.store, Follower: fx.follower, Keys: fx.keys, Now: now,
		Issuer: func(r string) string { return "https://as.example/realms/" + r },
		Log:    slog.New(slog.DiscardHandler)}
	if tweak != nil {
		tweak(&c)
	}
	fx.feed = New(c)
	fx.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := fx.feed.Serve(w, r, realm, storage.Client{Realm: "acme", ID: "rs"}); err != nil {
			var e *protocol.Error
			if errors.As(err, &e) {
				w.Header().Set("Retry-After", strconv.Itoa(int(e.RetryAfter.Seconds())))
				http.Error(w, string(e.Code), e.Status)
				return
			}
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(fx.srv.Close)
	t.Cleanup(fx.feed.Close)
	return fx
}

// sse is an event or a comment of a stream.
type sse struct {
	comment         string
	event, id, data string
}

// reader reads a stream's events on a goroutine of its own.
type reader struct {
	t      *testing.T
	res    *http.Response
	events chan sse
}

func (fx *fixture) connect(t *testing.T, cursor string) *reader {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", fx.srv.URL, nil)
	if cursor != "" {
		req.Header.Set("Last-Event-ID", cursor)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	if res.StatusCode != 200 {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("status %d: %s", res.StatusCode, b)
	}
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type = %q", ct)
	}
	if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
		t.Fatalf("Cache-Control = %q", cc)
	}
	r := &reader{t: t, res: res, events: make(chan sse, 100)}
	go func() {
		defer close(r.events)
		sc := bufio.NewScanner(res.Body)
		var e sse
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if e != (sse{}) {
					r.events <- e
				}
				e = sse{}
			case strings.HasPrefix(line, ":"):
				e.comment = strings.TrimSpace(line[1:])
			default:
				k, v, _ := strings.Cut(line, ": ")
				switch k {
				case "event":
					e.event = v
				case "id":
					e.id = v
				case "data":
					e.data = v
				}
			}
		}
	}()
	return r
}

// next returns the next event or comment; ok is false when the stream ended.
func (r *reader) next() (sse, bool) {
	r.t.Helper()
	select {
	case e, ok := <-r.events:
		return e, ok
	case <-time.After(5 * time.Second):
		r.t.Fatal("no event within 5 s")
		return sse{}, false
	}
}

// untilSynced returns the events before synced, and synced.
func (r *reader) untilSynced() ([]sse, sse) {
	r.t.Helper()
	var out []sse
	for {
		e, ok := r.next()
		if !ok {
			r.t.Fatalf("stream ended before synced; got %v", out)
		}
		if e.event == "synced" {
			return out, e
		}
		out = append(out, e)
	}
}

// decoded is a verified SET: its one event's type and payload.
type decoded struct {
	typ     string
	payload map[string]any
}

// verify checks a SET as a receiver does (alg pinned to the key, typ, iss, aud,
// one event) and returns its event.
func (fx *fixture) verify(t *testing.T, e sse) decoded {
	t.Helper()
	if e.event != "set" {
		t.Fatalf("event %q, want set", e.event)
	}
	raw, err := fx.keys.JWKS(t.Context(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		t.Fatal(err)
	}
	jws, err := jose.ParseSigned(e.data, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	h := jws.Signatures[0].Protected
	keys := set.Key(h.KeyID)
	if len(keys) != 1 || keys[0].Algorithm != h.Algorithm {
		t.Fatalf("kid %q alg %q not in the JWKS", h.KeyID, h.Algorithm)
	}
	if h.ExtraHeaders[jose.HeaderType] != "secevent+jwt" {
		t.Fatalf("typ = %v", h.ExtraHeaders[jose.HeaderType])
	}
	payload, err := jws.Verify(keys[0].Key)
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	json.Unmarshal(payload, &c)
	if c["iss"] != issuer || c["aud"] != "rs" || c["iat"] != float64(fx.now.Unix()) || c["jti"] == "" {
		t.Fatalf("claims %v", c)
	}
	if _, ok := c["sub"]; ok {
		t.Fatalf("a SET has no top-level sub: %v", c)
	}
	if _, ok := c["exp"]; ok {
		t.Fatalf("a SET has no exp: %v", c)
	}
	events, _ := c["events"].(map[string]any)
	if len(events) != 1 {
		t.Fatalf("events = %v; want exactly one", c["events"])
	}
	for typ, p := range events {
		return decoded{typ: typ, payload: p.(map[string]any)}
	}
	return decoded{}
}

func TestEvent_MapsEachKindPerTheContract(t *testing.T) {
	at := time.Date(2026, 12, 3, 10, 0, 0, 500_000_000, time.UTC) // half past a second
	ttl := 10 * time.Minute
	until := at.Add(ttl).Unix() + 1 // rounded up
	for _, tc := range []struct {
		c    storage.Change
		typ  string
		want string
	}{
		{storage.Change{Kind: storage.ChangeTokenDenied, Subject: "j1", Until: at.Add(time.Minute).Truncate(time.Second)},
			TypeTokenRevoked, `{"jti":"j1","until":` + strconv.FormatInt(at.Add(time.Minute).Unix(), 10) + `}`},
		{storage.Change{Kind: storage.ChangeUserRevoked, Subject: "u1", Reason: storage.ReasonUserDisabled},
			TypeSubjectRevoked, `{"sub":"u1","revoked_before":` + strconv.FormatInt(at.Unix()+1, 10) + `,"reason":"disabled","until":` + strconv.FormatInt(until, 10) + `}`},
		{storage.Change{Kind: storage.ChangeUserRevoked, Subject: "u1", Reason: storage.ReasonPasswordChanged},
			TypeSubjectRevoked, `{"sub":"u1","revoked_before":` + strconv.FormatInt(at.Unix()+1, 10) + `,"reason":"password_changed","until":` + strconv.FormatInt(until, 10) + `}`},
		{storage.Change{Kind: storage.ChangeUserRevoked, Subject: "u1", Reason: storage.ReasonLogoutEverywhere},
			TypeSubjectRevoked, `{"sub":"u1","revoked_before":` + strconv.FormatInt(at.Unix()+1, 10) + `,"reason":"logout_everywhere","until":` + strconv.FormatInt(until, 10) + `}`},
		{storage.Change{Kind: storage.ChangeSessionEnded, Subject: "s1", UserID: "u1"},
			TypeSessionEnded, `{"sid":"s1","sub":"u1","until":` + strconv.FormatInt(until, 10) + `}`},
		{storage.Change{Kind: storage.ChangeFamilyRevoked, Subject: "f1", UserID: "u1", ClientID: "web"},
			TypeFamilyRevoked, `{"fid":"f1","sub":"u1","client_id":"web","until":` + strconv.FormatInt(until, 10) + `}`},
		{storage.Change{Kind: storage.ChangeClientRevoked, Subject: "svc"},
			TypeClientRevoked, `{"client_id":"svc","revoked_before":` + strconv.FormatInt(at.Unix()+1, 10) + `,"until":` + strconv.FormatInt(until, 10) + `}`},
		{storage.Change{Kind: storage.ChangeRealmLogout, Subject: "acme"},
			TypeRealmLogout, `{"revoked_before":` + strconv.FormatInt(at.Unix()+1, 10) + `,"until":` + strconv.FormatInt(until, 10) + `}`},
		{storage.Change{Kind: storage.ChangeKeysChanged, Subject: "k1"},
			TypeKeysChanged, `{"kid":"k1","until":` + strconv.FormatInt(until, 10) + `}`},
		{storage.Change{Kind: storage.ChangeClientChanged, Subject: "svc"}, "", ""},
		{storage.Change{Kind: storage.ChangeRealmChanged, Subject: "acme"}, "", ""},
	} {
		tc.c.Time = at
		typ, payload, _, ok := event(tc.c, ttl)
		if tc.typ == "" {
			if ok {
				t.Errorf("%s: sent as %s; it revokes nothing", tc.c.Kind, typ)
			}
			continue
		}
		got, _ := json.Marshal(payload)
		if !ok || typ != tc.typ || string(got) != tc.want {
			t.Errorf("%s: %s %s; want %s %s", tc.c.Kind, typ, got, tc.typ, tc.want)
		}
	}
}

func TestFeed_SnapshotIsEveryRevocationStillRelevantThenSynced(t *testing.T) {
	fx := newFixture(t, nil)
	st, now := fx.store, fx.now
	// Tokens live at most 10 minutes (client api): older revocations are over.
	st.add(storage.Change{Time: now.Add(-20 * time.Minute), Kind: storage.ChangeSessionEnded, Subject: "old-session", UserID: "u0"})
	st.add(storage.Change{Time: now.Add(-5 * time.Minute), Kind: storage.ChangeUserRevoked, Subject: "u1", Reason: storage.ReasonPasswordChanged})
	st.add(storage.Change{Time: now.Add(-4 * time.Minute), Kind: storage.ChangeSessionEnded, Subject: "s1", UserID: "u1"})
	st.add(storage.Change{Time: now.Add(-4 * time.Minute), Kind: storage.ChangeTokenDenied, Subject: "j2", Until: now.Add(time.Minute)})
	st.add(storage.Change{Time: now.Add(-3 * time.Minute), Kind: storage.ChangeClientChanged, Subject: "web"})
	st.add(storage.Change{Time: now.Add(-3 * time.Minute), Realm: "other", Kind: storage.ChangeUserRevoked, Subject: "u9", Reason: "deleted"})
	st.add(storage.Change{Time: now.Add(-2 * time.Minute), Kind: storage.ChangeFamilyRevoked, Subject: "f1", UserID: "u1", ClientID: "web"})
	st.add(storage.Change{Time: now.Add(-time.Minute), Kind: storage.ChangeUserRevoked, Subject: "u1", Reason: storage.ReasonUserDisabled})
	last := st.add(storage.Change{Time: now.Add(-time.Minute), Kind: storage.ChangeClientRevoked, Subject: "svc"})
	st.denied = []storage.DeniedJWT{
		{Realm: "acme", JTI: "j2", ExpiresAt: now.Add(time.Minute), CreatedAt: now.Add(-4 * time.Minute)},
		{Realm: "acme", JTI: "j1", ExpiresAt: now.Add(time.Hour), CreatedAt: now.Add(-2 * time.Hour)}, // denied long ago
		{Realm: "acme", JTI: "gone", ExpiresAt: now.Add(-time.Second), CreatedAt: now.Add(-time.Hour)},
		{Realm: "other", JTI: "j9", ExpiresAt: now.Add(time.Hour), CreatedAt: now},
	}
	fx.follower.set(last)

	events, synced := fx.connect(t, "").untilSynced()
	var got []string
	for _, e := range events {
		d := fx.verify(t, e)
		p, _ := json.Marshal(d.payload)
		got = append(got, e.id+" "+strings.TrimPrefix(d.typ, "urn:latchkey:secevent:")+" "+string(p))
	}
	ttlEnd := func(d time.Duration) string { return strconv.FormatInt(now.Add(d+10*time.Minute).Unix(), 10) }
	before := func(d time.Duration) string { return strconv.FormatInt(now.Add(d).Unix()+1, 10) }
	want := []string{
		`0 token-revoked {"jti":"j1","until":` + strconv.FormatInt(now.Add(time.Hour).Unix(), 10) + `}`,
		`0 token-revoked {"jti":"j2","until":` + strconv.FormatInt(now.Add(time.Minute).Unix(), 10) + `}`,
		`3 session-ended {"sid":"s1","sub":"u1","until":` + ttlEnd(-4*time.Minute) + `}`,
		`7 family-revoked {"client_id":"web","fid":"f1","sub":"u1","until":` + ttlEnd(-2*time.Minute) + `}`,
		`8 subject-revoked {"reason":"disabled","revoked_before":` + before(-time.Minute) + `,"sub":"u1","until":` + ttlEnd(-time.Minute) + `}`,
		`9 client-revoked {"client_id":"svc","revoked_before":` + before(-time.Minute) + `,"until":` + ttlEnd(-time.Minute) + `}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("snapshot:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if synced.id != "9" || synced.data != "{}" {
		t.Fatalf("synced = %+v; want id 9, data {}", synced)
	}
}

func TestFeed_SnapshotOfNothingIsSyncedAtTheCurrentPosition(t *testing.T) {
	fx := newFixture(t, nil)
	last := fx.store.add(storage.Change{Time: fx.now, Realm: "other", Kind: storage.ChangeRealmLogout, Subject: "other"})
	fx.follower.set(last)
	events, synced := fx.connect(t, "").untilSynced()
	if len(events) != 0 || synced.id != strconv.FormatInt(last, 10) {
		t.Fatalf("events %v, synced %+v", events, synced)
	}
}

func TestFeed_LiveEventsFollowWhatThisInstanceApplied(t *testing.T) {
	fx := newFixture(t, nil)
	r := fx.connect(t, "")
	if _, synced := r.untilSynced(); synced.id != "0" {
		t.Fatalf("synced %+v", synced)
	}
	seq := fx.store.add(storage.Change{Time: fx.now, Kind: storage.ChangeRealmLogout, Subject: "acme"})
	other := fx.store.add(storage.Change{Time: fx.now, Realm: "other", Kind: storage.ChangeRealmLogout, Subject: "other"})
	fx.follower.set(other)
	e, _ := r.next()
	if d := fx.verify(t, e); e.id != strconv.FormatInt(seq, 10) || d.typ != TypeRealmLogout {
		t.Fatalf("live event %+v %+v", e, d)
	}
	// Recorded but not yet applied here: held back until the follower has it.
	seq = fx.store.add(storage.Change{Time: fx.now, Kind: storage.ChangeKeysChanged, Subject: "k2"})
	select {
	case e := <-r.events:
		t.Fatalf("sent %+v before this instance applied it", e)
	case <-time.After(50 * time.Millisecond):
	}
	fx.follower.set(seq)
	if e, _ := r.next(); e.id != strconv.FormatInt(seq, 10) || fx.verify(t, e).typ != TypeKeysChanged {
		t.Fatalf("live event %+v", e)
	}
}

func TestFeed_WhatWasRecordedBeforeTheConnectionComesBeforeSynced(t *testing.T) {
	fx := newFixture(t, nil)
	seq := fx.store.add(storage.Change{Time: fx.now, Kind: storage.ChangeRealmLogout, Subject: "acme"})
	// Recorded, not yet applied by this instance when the receiver connects.
	go func() {
		time.Sleep(50 * time.Millisecond) // the follower's own pace, not the test's clock
		fx.follower.set(seq)
	}()
	events, synced := fx.connect(t, "").untilSynced()
	if len(events) != 1 || events[0].id != strconv.FormatInt(seq, 10) || synced.id != strconv.FormatInt(seq, 10) {
		t.Fatalf("events %+v, synced %+v; want the realm logout, then synced at it", events, synced)
	}
}

func TestFeed_ResumeSendsExactlyTheMissedEvents(t *testing.T) {
	fx := newFixture(t, nil)
	st := fx.store
	st.add(storage.Change{Time: fx.now, Kind: storage.ChangeSessionEnded, Subject: "s1", UserID: "u1"})
	cursor := st.add(storage.Change{Time: fx.now, Kind: storage.ChangeSessionEnded, Subject: "s2", UserID: "u1"})
	a := st.add(storage.Change{Time: fx.now, Kind: storage.ChangeFamilyRevoked, Subject: "f1", UserID: "u1", ClientID: "web"})
	st.add(storage.Change{Time: fx.now, Kind: storage.ChangeClientChanged, Subject: "web"})
	b := st.add(storage.Change{Time: fx.now.Add(-time.Hour), Kind: storage.ChangeUserRevoked, Subject: "u1", Reason: "deleted"})
	fx.follower.set(b)

	events, synced := fx.connect(t, strconv.FormatInt(cursor, 10)).untilSynced()
	if len(events) != 2 || events[0].id != strconv.FormatInt(a, 10) || events[1].id != strconv.FormatInt(b, 10) {
		t.Fatalf("resumed with %+v", events)
	}
	if fx.verify(t, events[0]).typ != TypeFamilyRevoked || fx.verify(t, events[1]).payload["reason"] != "deleted" {
		t.Fatalf("resumed with %+v", events)
	}
	if synced.id != strconv.FormatInt(b, 10) {
		t.Fatalf("synced %+v", synced)
	}
	// ?cursor= works as Last-Event-ID does.
	req, _ := http.NewRequestWithContext(t.Context(), "GET", fx.srv.URL+"?cursor="+strconv.FormatInt(a, 10), nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	var lines []string
	for sc.Scan() && !strings.HasPrefix(sc.Text(), "event: synced") {
		lines = append(lines, sc.Text())
	}
	if len(lines) != 4 || lines[1] != "id: "+strconv.FormatInt(b, 10) {
		t.Fatalf("?cursor= resumed with %q", lines)
	}
}

func TestFeed_CursorNotHeldGetsASnapshot(t *testing.T) {
	for name, cursor := range map[string]string{"purged": "1", "malformed": "x1", "negative": "-1", "ahead of the store": "99", "too long": strings.Repeat("1", 30)} {
		t.Run(name, func(t *testing.T) {
			fx := newFixture(t, nil)
			st := fx.store
			st.add(storage.Change{Time: fx.now, Kind: storage.ChangeSessionEnded, Subject: "s1", UserID: "u1"})
			st.add(storage.Change{Time: fx.now, Kind: storage.ChangeSessionEnded, Subject: "s2", UserID: "u1"})
			last := st.add(storage.Change{Time: fx.now, Kind: storage.ChangeSessionEnded, Subject: "s3", UserID: "u1"})
			st.purge(2)
			st.denied = []storage.DeniedJWT{{Realm: "acme", JTI: "j1", ExpiresAt: fx.now.Add(time.Hour)}}
			fx.follower.set(last)
			events, _ := fx.connect(t, cursor).untilSynced()
			if len(events) != 2 || events[0].id != "0" || fx.verify(t, events[0]).typ != TypeTokenRevoked {
				t.Fatalf("cursor %s: %+v; want a snapshot", cursor, events)
			}
		})
	}
}

func TestFeed_PingsInSilenceAndEndsInTime(t *testing.T) {
	fx := newFixture(t, func(c *Config) { c.PingEvery = 20 * time.Millisecond; c.StreamFor = 300 * time.Millisecond })
	before := runtime.NumGoroutine()
	r := fx.connect(t, "")
	r.untilSynced()
	if e, _ := r.next(); e.comment != "ping" {
		t.Fatalf("after silence: %+v; want a ping", e)
	}
	start := time.Now()
	for {
		if _, ok := r.next(); !ok {
			break
		}
	}
	if time.Since(start) > 2*time.Second {
		t.Fatal("the stream outlived StreamFor")
	}
	fx.srv.CloseClientConnections()
	waitGoroutines(t, before)
}

func TestFeed_ReceiverLeavingEndsItsStream(t *testing.T) {
	fx := newFixture(t, func(c *Config) { c.MaxStreamsPerClient = 1 })
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, "GET", fx.srv.URL, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	res.Body.Close()
	// Its slot is free again once the stream has noticed.
	for deadline := time.Now().Add(5 * time.Second); ; {
		fx.feed.mu.Lock()
		open := fx.feed.open
		fx.feed.mu.Unlock()
		if open == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the stream of a receiver that left is still open")
		}
		runtime.Gosched()
	}
	fx.connect(t, "").untilSynced()
}

func TestFeed_CloseEndsEveryStream(t *testing.T) {
	fx := newFixture(t, nil)
	r := fx.connect(t, "")
	r.untilSynced()
	fx.feed.Close()
	for {
		if _, ok := r.next(); !ok {
			return
		}
	}
}

func TestFeed_StreamsAreCappedPerClientAndInAll(t *testing.T) {
	for name, tweak := range map[string]func(*Config){
		"per client": func(c *Config) { c.MaxStreamsPerClient = 2 },
		"in all":     func(c *Config) { c.MaxStreams = 2 },
	} {
		t.Run(name, func(t *testing.T) {
			fx := newFixture(t, tweak)
			fx.connect(t, "").untilSynced()
			fx.connect(t, "").untilSynced()
			res, err := http.Get(fx.srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" {
				t.Fatalf("third stream: %d, Retry-After %q; want 429 with Retry-After", res.StatusCode, res.Header.Get("Retry-After"))
			}
		})
	}
}

func TestFeed_CapHoldsUnderConcurrentConnections(t *testing.T) {
	for _, parties := range []int{2, 5, 100} {
		t.Run(strconv.Itoa(parties), func(t *testing.T) {
			const limit = 1
			fx := newFixture(t, func(c *Config) { c.MaxStreamsPerClient = limit })
			codes := make(chan int, parties)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for range parties {
				wg.Go(func() {
					<-start
					req, _ := http.NewRequestWithContext(t.Context(), "GET", fx.srv.URL, nil)
					res, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Error(err)
						return
					}
					codes <- res.StatusCode
					if res.StatusCode == 200 {
						// Held open until every party has answered.
						t.Cleanup(func() { res.Body.Close() })
						return
					}
					res.Body.Close()
				})
			}
			close(start)
			wg.Wait()
			close(codes)
			n := map[int]int{}
			for c := range codes {
				n[c]++
			}
			if n[200] != limit || n[429] != parties-limit {
				t.Fatalf("%d parties: %v; want %d streams and the rest 429", parties, n, limit)
			}
		})
	}
}

func TestFeed_ManyReceiversAtOnceEachGetTheSnapshot(t *testing.T) {
	fx := newFixture(t, func(c *Config) { c.MaxStreamsPerClient = 100 })
	seq := fx.store.add(storage.Change{Time: fx.now, Kind: storage.ChangeRealmLogout, Subject: "acme"})
	fx.follower.set(seq)
	var wg sync.WaitGroup
	for range 20 { // more than maxSnapshots: they take turns
		wg.Go(func() {
			if events, _ := fx.connect(t, "").untilSynced(); len(events) != 1 {
				t.Errorf("snapshot %+v; want the realm logout", events)
			}
		})
	}
	wg.Wait()
}

func TestFeed_StoreDownBeforeTheStreamIsAnError(t *testing.T) {
	fx := newFixture(t, nil)
	fx.store.fail = storage.ErrUnavailable
	res, err := http.Get(fx.srv.URL + "?cursor=1")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d; want the error returned before anything was written", res.StatusCode)
	}
}

// waitGoroutines waits until no more goroutines run than before (the server's
// handlers and the client's connections wind down asynchronously).
func waitGoroutines(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		runtime.Gosched()
	}
}
