package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/latchkey/latchkey/storage/postgres/pgtest"
)

// The revocation feed's receiver: client rs of realm acme, a resource server with
// its own credentials.
const (
	rsSecret = "rs-secret-0123456789abcdefghijklmnopq"
	rsBasic  = "rs:" + rsSecret
)

// feedSeed is usersSeed (admins, opqweb) with the resource server rs.
func feedSeed(t testing.TB) string {
	return strings.Replace(usersSeed(t), "    users:\n", `      - id: rs
        secret: `+rsSecret+`
        grant_types: [client_credentials]
        scopes: [orders:read]
    users:
`, 1)
}

func (s *server) feedURL(realm string) string {
	return s.issuer(realm) + "/protocol/openid-connect/revocation-events"
}

// sseEvent is one Server-Sent Event, or a comment.
type sseEvent struct {
	comment         string
	event, id, data string
}

// feedReader reads a revocation stream as a receiver does, on a goroutine of
// its own, until the test ends or close is called.
type feedReader struct {
	t      *testing.T
	s      *server
	events chan sseEvent
	close  func()
}

// openFeed connects as basic ("id:secret") with the cursor ("" for none) sent as
// Last-Event-ID, and checks the stream's headers.
func openFeed(t *testing.T, s *server, basic, cursor string) *feedReader {
	t.Helper()
	return openFeedAt(t, s, s.feedURL("acme"), basic, cursor)
}

// openFeedAt is openFeed at feedURL, which may carry ?cursor=.
func openFeedAt(t *testing.T, s *server, feedURL, basic, cursor string) *feedReader {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, "GET", feedURL, nil)
	id, secret, _ := strings.Cut(basic, ":")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	if cursor != "" {
		req.Header.Set("Last-Event-ID", cursor)
	}
	req.Header.Set("Accept", "text/event-stream")
	res, err := (&http.Client{}).Do(req) // no timeout: the stream stays open
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" || res.Header.Get("Cache-Control") != "no-store" {
		cancel()
		t.Fatalf("revocation feed: %d %v", res.StatusCode, res.Header)
	}
	f := &feedReader{t: t, s: s, events: make(chan sseEvent, 1000), close: func() { cancel(); res.Body.Close() }}
	t.Cleanup(f.close)
	go func() {
		defer close(f.events)
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(nil, 1<<20)
		var e sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if e != (sseEvent{}) {
					f.events <- e
				}
				e = sseEvent{}
			case strings.HasPrefix(line, ":"):
				e.comment = strings.TrimSpace(line[1:])
			default:
				k, v, _ := strings.Cut(line, ":")
				v = strings.TrimPrefix(v, " ")
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
	return f
}

// next returns the next event within d; ok is false if there was none.
func (f *feedReader) next(d time.Duration) (sseEvent, bool) {
	select {
	case e, ok := <-f.events:
		return e, ok
	case <-time.After(d):
		return sseEvent{}, false
	}
}

// untilSynced returns the verified events before synced, and synced.
func (f *feedReader) untilSynced() ([]set, sseEvent) {
	f.t.Helper()
	var out []set
	for {
		e, ok := f.next(10 * time.Second)
		if !ok {
			f.t.Fatalf("no synced; got %d events before the stream stopped", len(out))
		}
		switch e.event {
		case "synced":
			if e.data != "{}" || e.id == "" {
				f.t.Fatalf("synced: %+v", e)
			}
			return out, e
		case "set":
			out = append(out, f.verify(e))
		default:
			if e.comment == "" {
				f.t.Fatalf("unexpected event %+v", e)
			}
		}
	}
}

// quiet returns the SETs that arrive until none has for d, and the id of the
// last event (SET or synced) read, "" if none. On PostgreSQL an instance applies
// changes a few milliseconds after the store records them (a NOTIFY wakes it):
// what was recorded just before may come just after synced.
func (f *feedReader) quiet(d time.Duration) ([]set, string) {
	f.t.Helper()
	var out []set
	var last string
	for {
		e, ok := f.next(d)
		if !ok {
			return out, last
		}
		if e.id != "" {
			last = e.id
		}
		if e.event == "set" {
			out = append(out, f.verify(e))
		}
	}
}

// expect reads events until one of type typ whose payload has every field of
// want arrives, within a second; other events may come first.
func (f *feedReader) expect(what, typ string, want map[string]any) set {
	f.t.Helper()
	deadline := time.Now().Add(time.Second)
	var seen []string
	for {
		e, ok := f.next(time.Until(deadline))
		if !ok {
			f.t.Fatalf("%s: no %s %v within a second; saw %v", what, typ, want, seen)
		}
		if e.event != "set" {
			continue
		}
		got := f.verify(e)
		seen = append(seen, got.String())
		if got.typ == typ && got.has(want) {
			return got
		}
	}
}

// set is a verified Security Event Token's one event.
type set struct {
	id      string // the SSE id: the cursor
	typ     string
	payload map[string]any
}

func (s set) String() string {
	b, _ := json.Marshal(s.payload)
	return s.id + " " + strings.TrimPrefix(s.typ, "urn:latchkey:secevent:") + " " + string(b)
}

// has reports whether the payload has every field of want (numbers as int64).
func (s set) has(want map[string]any) bool {
	for k, v := range want {
		got := s.payload[k]
		if n, ok := got.(float64); ok {
			got = int64(n)
		}
		if got != v {
			return false
		}
	}
	return true
}

func (s set) num(k string) int64 { n, _ := s.payload[k].(float64); return int64(n) }

// verify checks a SET as a resource server must (RFC 8417, the feed's contract):
// signed by a key of the realm's JWKS with that key's alg, typ secevent+jwt, iss
// the realm's issuer, aud the receiving client, a jti, an iat, no sub or exp, and
// exactly one event.
func (f *feedReader) verify(e sseEvent) set {
	f.t.Helper()
	t := f.t
	jws, err := jose.ParseSigned(e.data, []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA, jose.RS256})
	if err != nil || len(jws.Signatures) != 1 {
		t.Fatalf("event %s: not a JWS: %v", e.id, err)
	}
	h := jws.Signatures[0].Protected
	if h.ExtraHeaders[jose.HeaderType] != "secevent+jwt" {
		t.Fatalf("event %s: typ %v; want secevent+jwt", e.id, h.ExtraHeaders[jose.HeaderType])
	}
	certs := do(t, getRequest(f.s.issuer("acme")+"/protocol/openid-connect/certs"))
	var jwks jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(certs.raw), &jwks); err != nil {
		t.Fatal(err)
	}
	keys := jwks.Key(h.KeyID)
	if len(keys) != 1 || keys[0].Algorithm != h.Algorithm {
		t.Fatalf("event %s: kid %q with alg %q is not in the realm's JWKS", e.id, h.KeyID, h.Algorithm)
	}
	payload, err := jws.Verify(keys[0].Key)
	if err != nil {
		t.Fatalf("event %s: signature: %v", e.id, err)
	}
	var c map[string]any
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	iat, _ := c["iat"].(float64)
	if c["iss"] != f.s.issuer("acme") || c["aud"] != "rs" || c["jti"] == nil || c["jti"] == "" ||
		iat < float64(time.Now().Add(-time.Minute).Unix()) || iat > float64(time.Now().Add(time.Minute).Unix()) {
		t.Fatalf("event %s: claims %v", e.id, c)
	}
	for _, no := range []string{"sub", "exp"} {
		if _, ok := c[no]; ok {
			t.Fatalf("event %s: a SET has no top-level %s: %v", e.id, no, c)
		}
	}
	events, _ := c["events"].(map[string]any)
	if len(events) != 1 {
		t.Fatalf("event %s: events %v; want exactly one", e.id, c["events"])
	}
	for typ, p := range events {
		payload, _ := p.(map[string]any)
		if _, ok := payload["until"].(float64); !ok {
			t.Fatalf("event %s: no until in %v", e.id, payload)
		}
		return set{id: e.id, typ: typ, payload: payload}
	}
	return set{}
}

const (
	evToken   = "urn:latchkey:secevent:token-revoked"
	evSubject = "urn:latchkey:secevent:subject-revoked"
	evSession = "urn:latchkey:secevent:session-ended"
	evFamily  = "urn:latchkey:secevent:family-revoked"
	evClient  = "urn:latchkey:secevent:client-revoked"
	evRealm   = "urn:latchkey:secevent:realm-logout"
	evKeys    = "urn:latchkey:secevent:keys-changed"
)

// find returns the first of sets of type typ with want's fields.
func find(sets []set, typ string, want map[string]any) (set, bool) {
	for _, s := range sets {
		if s.typ == typ && s.has(want) {
			return s, true
		}
	}
	return set{}, false
}

// familiesOf returns the user's session and the families born in it, by client.
func familiesOf(t *testing.T, api *adminAs, userID string) (sid string, families map[string]string) {
	t.Helper()
	var list struct {
		Sessions []struct {
			ID string `json:"id"`
		} `json:"sessions"`
		Families []struct {
			ID       string `json:"id"`
			ClientID string `json:"client_id"`
		} `json:"families"`
	}
	r := want(t, "sessions", api.do("GET", usersPath+"/"+userID+"/sessions", nil), 200)
	json.Unmarshal([]byte(r.raw), &list)
	if len(list.Sessions) != 1 {
		t.Fatalf("sessions of %s: %s; want one", userID, r.raw)
	}
	families = map[string]string{}
	for _, f := range list.Families {
		families[f.ClientID] = f.ID
	}
	return list.Sessions[0].ID, families
}

// createUser creates a user through the admin API and returns their ID.
func createUser(t *testing.T, api *adminAs, username string) string {
	t.Helper()
	want(t, "create "+username, api.do("POST", usersPath, `{"username":"`+username+`","password":"`+username+`-password-1"}`), 201)
	return userID(t, api, username)
}

// revocations is what the feed tests revoke, each in its own way.
type revocations struct {
	svcJTI   string // svc's access token, revoked by svc at the RFC 7009 endpoint
	svcExp   int64
	alice    string // alice's user ID; her web family revoked by its refresh token
	family   string
	bob      string // bob's session ended by the admin
	bobSID   string
	carol    string // disabled by the admin
	stampsAt time.Time
}

func revoke(t *testing.T, s *server, api *adminAs) revocations {
	t.Helper()
	var rv revocations
	svcAT := ccToken(t, s, "svc", svcSecret).str("access_token")
	rv.svcJTI, _ = jwtClaim(t, svcAT, "jti").(string)
	exp, _ := jwtClaim(t, svcAT, "exp").(float64)
	rv.svcExp = int64(exp)
	if r := post(t, s.revokeURL(), svcBasic, form("token", svcAT)); r.status != 200 {
		t.Fatalf("revoke svc's token: %d %s", r.status, r.raw)
	}

	alice := hold(t, s, "alice", alicePass)
	rv.alice = alice.subject
	_, fams := familiesOf(t, api, alice.subject)
	rv.family = fams["web"]
	if r := post(t, s.revokeURL(), webBasic, form("token", alice.rt)); r.status != 200 {
		t.Fatalf("revoke alice's refresh token: %d %s", r.status, r.raw)
	}

	rv.bob = createUser(t, api, "bob")
	hold(t, s, "bob", "bob-password-1")
	rv.bobSID, _ = familiesOf(t, api, rv.bob)
	want(t, "end bob's session", api.do("DELETE", usersPath+"/"+rv.bob+"/sessions/"+rv.bobSID, nil), 204)

	rv.carol = createUser(t, api, "carol")
	rv.stampsAt = time.Now()
	want(t, "disable carol", api.do("POST", usersPath+"/"+rv.carol+"/disable", nil), 200)
	want(t, "revoke opq's tokens", api.do("POST", "/admin/realms/acme/clients/opq/revoke-tokens", nil), 204)
	want(t, "log the realm out", api.do("POST", "/admin/realms/acme/logout-all", nil), 200)
	return rv
}

// A fresh receiver gets every revocation still relevant, each a SET signed by the
// realm's key, then synced.
func TestRevocationFeed_SnapshotOfExistingRevocationsThenSynced(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s := start(t, options{db: db, seed: feedSeed(t)})
		api := root(t, s)
		rv := revoke(t, s, api)
		done := time.Now()

		sets, synced := openFeed(t, s, rsBasic, "").untilSynced()
		for _, w := range []struct {
			what string
			typ  string
			want map[string]any
		}{
			{"svc's token", evToken, map[string]any{"jti": rv.svcJTI, "until": rv.svcExp}},
			{"alice's web family", evFamily, map[string]any{"fid": rv.family, "sub": rv.alice, "client_id": "web"}},
			{"bob's session", evSession, map[string]any{"sid": rv.bobSID, "sub": rv.bob}},
			{"carol disabled", evSubject, map[string]any{"sub": rv.carol, "reason": "disabled"}},
			{"opq's tokens", evClient, map[string]any{"client_id": "opq"}},
			{"realm logout", evRealm, nil},
		} {
			got, ok := find(sets, w.typ, w.want)
			if !ok {
				t.Errorf("snapshot: no %s (%s %v) in\n%v", w.what, w.typ, w.want, sets)
				continue
			}
			if rb := got.num("revoked_before"); rb != 0 && (rb < rv.stampsAt.Unix()+1 || rb > done.Unix()+1) {
				t.Errorf("%s: revoked_before %d; want the stamp's second + 1, between %d and %d", w.what, rb, rv.stampsAt.Unix()+1, done.Unix()+1)
			}
			if w.typ != evToken {
				// until: the event's time plus the realm's longest token lifetime (5 minutes).
				if u := got.num("until"); u < rv.stampsAt.Add(-time.Minute).Add(5*time.Minute).Unix() || u > done.Add(5*time.Minute).Unix()+1 {
					t.Errorf("%s: until %d; want about 5 minutes from now", w.what, u)
				}
			}
		}
		// The cursor of synced resumes with nothing missed.
		if _, err := strconv.ParseInt(synced.id, 10, 64); err != nil {
			t.Fatalf("synced id %q", synced.id)
		}
		if sets, _ := openFeed(t, s, rsBasic, synced.id).untilSynced(); len(sets) != 0 {
			t.Fatalf("resumed from synced with nothing new: %v", sets)
		}
	})
}

// After synced, each kind of revocation, made at the public endpoints or through
// the admin API, reaches a connected receiver within a second as a signed SET.
func TestRevocationFeed_LiveRevocationsArriveWithinASecond(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s := start(t, options{db: db, seed: feedSeed(t)})
		api := root(t, s)
		alice := hold(t, s, "alice", alicePass)
		aliceSID, fams := familiesOf(t, api, alice.subject)
		bob := createUser(t, api, "bob")
		carol := createUser(t, api, "carol")
		svcAT := ccToken(t, s, "svc", svcSecret).str("access_token")
		svcJTI, _ := jwtClaim(t, svcAT, "jti").(string)
		otherAT := ccToken(t, s, "svc", svcSecret).str("access_token")
		otherJTI, _ := jwtClaim(t, otherAT, "jti").(string)

		f := openFeed(t, s, rsBasic, "")
		f.untilSynced()

		post(t, s.revokeURL(), svcBasic, form("token", svcAT))
		f.expect("RFC 7009 revocation of an access token", evToken, map[string]any{"jti": svcJTI})
		want(t, "admin revoke by jti", api.do("POST", "/admin/realms/acme/tokens/revoke", map[string]string{"jti": otherJTI}), 204)
		f.expect("admin revocation by jti", evToken, map[string]any{"jti": otherJTI})

		post(t, s.revokeURL(), webBasic, form("token", alice.rt))
		f.expect("RFC 7009 revocation of a refresh token", evFamily, map[string]any{"fid": fams["web"], "sub": alice.subject, "client_id": "web"})
		want(t, "admin ends opqweb's family", api.do("DELETE", usersPath+"/"+alice.subject+"/families/"+fams["opqweb"], nil), 204)
		f.expect("admin ending a family", evFamily, map[string]any{"fid": fams["opqweb"], "client_id": "opqweb"})
		want(t, "admin ends alice's session", api.do("DELETE", usersPath+"/"+alice.subject+"/sessions/"+aliceSID, nil), 204)
		f.expect("admin ending a session", evSession, map[string]any{"sid": aliceSID, "sub": alice.subject})

		for _, c := range []struct {
			what, method, path, body, reason, user string
			status                                 int
		}{
			{"disable", "POST", "/disable", "", "disabled", carol, 200},
			{"password", "PUT", "/password", `{"password":"bob-password-2"}`, "password_changed", bob, 204},
			{"logout everywhere", "POST", "/logout", "", "logout_everywhere", bob, 204},
			{"delete", "DELETE", "", "", "deleted", carol, 204},
		} {
			before := time.Now()
			var body any
			if c.body != "" {
				body = c.body
			}
			want(t, c.what, api.do(c.method, usersPath+"/"+c.user+c.path, body), c.status)
			got := f.expect("user "+c.what, evSubject, map[string]any{"sub": c.user, "reason": c.reason})
			if rb := got.num("revoked_before"); rb < before.Unix()+1 || rb > time.Now().Unix()+1 {
				t.Errorf("user %s: revoked_before %d; want the stamp's second + 1", c.what, rb)
			}
		}

		want(t, "revoke opq's tokens", api.do("POST", "/admin/realms/acme/clients/opq/revoke-tokens", nil), 204)
		f.expect("client tokens revoked", evClient, map[string]any{"client_id": "opq"})
		want(t, "disable svc", api.do("POST", "/admin/realms/acme/clients/svc/disable", nil), 200)
		f.expect("client disabled", evClient, map[string]any{"client_id": "svc"})
		want(t, "log the realm out", api.do("POST", "/admin/realms/acme/logout-all", nil), 200)
		f.expect("realm logout", evRealm, nil)
		r := want(t, "rotate keys", api.do("POST", "/admin/realms/acme/keys/rotate", nil), 200)
		kid, _ := items(r)[0]["kid"].(string)
		f.expect("key rotation", evKeys, map[string]any{"kid": kid})
	})
}

// A receiver that reconnects with its cursor gets exactly what it missed, as
// Last-Event-ID or as ?cursor=.
func TestRevocationFeed_ResumeFromACursorGetsExactlyTheMissedEvents(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s := start(t, options{db: db, seed: feedSeed(t)})
		api := root(t, s)
		// The realm's first keys (one signs access tokens, an RS256 one ID tokens) are
		// changes too: made here, before the cursor.
		svcAT := ccToken(t, s, "svc", svcSecret).str("access_token")
		do(t, getRequest(s.issuer("acme")+"/protocol/openid-connect/certs"))
		before := openFeed(t, s, rsBasic, "")
		_, synced := before.untilSynced()
		cursor := synced.id
		if _, last := before.quiet(300 * time.Millisecond); last != "" {
			cursor = last // the receiver's cursor is the id of the last event it got
		}
		before.close()

		jti, _ := jwtClaim(t, svcAT, "jti").(string)
		want(t, "admin revoke by jti", api.do("POST", "/admin/realms/acme/tokens/revoke", map[string]string{"jti": jti}), 204)
		want(t, "revoke opq's tokens", api.do("POST", "/admin/realms/acme/clients/opq/revoke-tokens", nil), 204)

		wantMissed := func(how string, sets []set) {
			t.Helper()
			if len(sets) != 2 || sets[0].typ != evToken || sets[0].payload["jti"] != jti ||
				sets[1].typ != evClient || sets[1].payload["client_id"] != "opq" {
				t.Fatalf("resumed (%s) with %v; want exactly svc's token then opq's tokens", how, sets)
			}
		}
		resumed := func(f *feedReader) []set {
			sets, _ := f.untilSynced()
			more, _ := f.quiet(500 * time.Millisecond)
			return append(sets, more...)
		}
		wantMissed("Last-Event-ID", resumed(openFeed(t, s, rsBasic, cursor)))
		wantMissed("?cursor=", resumed(openFeedAt(t, s, s.feedURL("acme")+"?cursor="+cursor, rsBasic, "")))
	})
}

// Only a confidential client's own credentials open the feed: bad or missing
// credentials, a public client and an access token get 401 invalid_client with
// WWW-Authenticate, failures are throttled as at introspection, and discovery
// names the endpoint.
func TestRevocationFeed_OnlyAConfidentialClientsCredentialsOpenIt(t *testing.T) {
	s := start(t, options{seed: feedSeed(t)})
	svcAT := ccToken(t, s, "svc", svcSecret).str("access_token")
	rsAT := ccToken(t, s, "rs", rsSecret).str("access_token")
	for _, c := range []struct{ what, authorization string }{
		{"no credentials", ""},
		{"a bad secret", basicHeader("rs", "rs-secret-wrong-0123456789abcdefghij")},
		{"an unknown client", basicHeader("nobody", rsSecret)},
		{"a public client", basicHeader("spa", "")},
		{"an access token", "Bearer " + svcAT},
		{"its own access token", "Bearer " + rsAT},
		{"an access token as the secret", basicHeader("rs", rsAT)},
		{"malformed Basic", "Basic !!!"},
	} {
		req := getRequest(s.feedURL("acme"))
		if c.authorization != "" {
			req.Header.Set("Authorization", c.authorization)
		}
		r := do(t, req)
		if r.status != 401 || r.str("error") != "invalid_client" || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic realm=") {
			t.Errorf("%s: %d %v %s; want 401 invalid_client with WWW-Authenticate: Basic", c.what, r.status, r.header.Get("WWW-Authenticate"), r.raw)
		}
	}
	if r := do(t, getRequest(s.issuer("nowhere")+"/protocol/openid-connect/revocation-events")); r.status != 404 {
		t.Errorf("unknown realm: %d", r.status)
	}

	// The same throttle as introspection: failures for one client lock it for a while.
	var last response
	for range 12 {
		req := getRequest(s.feedURL("acme"))
		req.Header.Set("Authorization", basicHeader("rs", "rs-secret-wrong-0123456789abcdefghij"))
		if last = do(t, req); last.status == 429 {
			break
		}
	}
	if last.status != 429 || last.header.Get("Retry-After") == "" || last.str("error") != "invalid_client" {
		t.Errorf("repeated bad secrets: %d %s; want 429 invalid_client with Retry-After", last.status, last.raw)
	}

	md := do(t, getRequest(s.issuer("acme")+"/.well-known/openid-configuration"))
	if md.str("revocation_events_endpoint") != s.feedURL("acme") {
		t.Errorf("discovery revocation_events_endpoint = %q; want %s", md.str("revocation_events_endpoint"), s.feedURL("acme"))
	}
}

func basicHeader(id, secret string) string {
	req, _ := http.NewRequest("GET", "/", nil)
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	return req.Header.Get("Authorization")
}

// Two instances on one PostgreSQL database: a revocation made at A reaches a
// receiver streaming from B within a second, and B's snapshot has what A revoked.
func TestRevocationFeed_ARevocationAtOneInstanceReachesAStreamFromAnother(t *testing.T) {
	db := pgtest.DSN(t)
	a := start(t, options{db: db, seed: feedSeed(t)})
	b := start(t, options{db: db, seed: feedSeed(t)})
	api := root(t, a)

	early := ccToken(t, a, "svc", svcSecret).str("access_token")
	earlyJTI, _ := jwtClaim(t, early, "jti").(string)
	post(t, a.revokeURL(), svcBasic, form("token", early))

	f := openFeed(t, b, rsBasic, "")
	if sets, _ := f.untilSynced(); !func() bool { _, ok := find(sets, evToken, map[string]any{"jti": earlyJTI}); return ok }() {
		t.Fatalf("B's snapshot misses the token revoked at A: %v", sets)
	}
	svcAT := ccToken(t, a, "svc", svcSecret).str("access_token")
	jti, _ := jwtClaim(t, svcAT, "jti").(string)
	post(t, a.revokeURL(), svcBasic, form("token", svcAT))
	f.expect("a token revoked at A, on B's stream", evToken, map[string]any{"jti": jti})
	want(t, "disable alice at A", api.do("POST", usersPath+"/"+userID(t, api, "alice")+"/disable", nil), 200)
	f.expect("a user disabled at A, on B's stream", evSubject, map[string]any{"reason": "disabled"})
}

// A graceful shutdown ends open streams at once instead of waiting for them
// (receivers reconnect to another instance), and the process exits cleanly.
func TestRevocationFeed_ShutdownEndsOpenStreams(t *testing.T) {
	s := start(t, options{seed: feedSeed(t)})
	f := openFeed(t, s, rsBasic, "")
	f.untilSynced()
	began := time.Now()
	s.stop()
	took := time.Since(began)
	t.Logf("stopped in %v", took)
	if took > 5*time.Second {
		t.Fatalf("shutdown with a stream open took %v", took)
	}
	for {
		if _, ok := f.next(5 * time.Second); !ok {
			break
		}
	}
	if code := s.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM with a stream open:\n%s", code, s.logs)
	}
}
