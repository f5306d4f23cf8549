package storagetest

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/latchkey/latchkey/storage"
)

// The state of DPoP, PAR and the device authorization grant (issue 14).
var grantTests = []struct {
	name string
	fn   func(t *testing.T, s storage.Store)
}{
	{"DPoPProofs", testDPoPProofs},
	{"DPoPProofUsedOnceUnderRace", testDPoPProofRace},
	{"PushedRequests", testPushedRequests},
	{"PushedRequestUsedOnceUnderRace", testPushedRequestRace},
	{"DeviceGrants", testDeviceGrants},
	{"DeviceGrantPolling", testDeviceGrantPolling},
	{"DeviceGrantDecidedOnceUnderRace", testDeviceDecideRace},
	{"DeviceGrantRedeemedOnceUnderRace", testDevicePollRace},
	{"DeleteTakesGrantState", testDeleteTakesGrantState},
}

// contenders are the numbers of callers the race tests pit against each other.
var contenders = []int{2, 5, 100}

// onlyOne fails the test unless exactly one of errs is nil and the rest are want.
func onlyOne(t *testing.T, what string, errs []error, want error) {
	t.Helper()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, want):
			t.Errorf("%s: unexpected error: %v", what, err)
		}
	}
	if won != 1 {
		t.Fatalf("%s: %d of %d succeeded, want exactly 1", what, won, len(errs))
	}
}

func testDPoPProofs(t *testing.T, s storage.Store) {
	c := ctx(t)
	must(t, s.UseDPoPProof(c, "acme", "jkt-1", "jti-1", at(time.Minute)))
	wantErr(t, s.UseDPoPProof(c, "acme", "jkt-1", "jti-1", at(time.Minute)), storage.ErrAlreadyUsed)
	// A jti is the key's own: another key, or realm, may use the same value.
	must(t, s.UseDPoPProof(c, "acme", "jkt-2", "jti-1", at(time.Minute)))
	must(t, s.UseDPoPProof(c, "other", "jkt-1", "jti-1", at(time.Minute)))
	must(t, s.UseDPoPProof(c, "acme", "jkt-1", "jti-2", at(time.Hour)))

	// What ends exactly at the purge time stays.
	n, err := s.PurgeDPoPProofs(c, at(time.Minute))
	wantCount(t, "PurgeDPoPProofs(1m)", n, err, 0)
	// Expired but not purged: still remembered.
	wantErr(t, s.UseDPoPProof(c, "acme", "jkt-1", "jti-1", at(time.Minute)), storage.ErrAlreadyUsed)
	n, err = s.PurgeDPoPProofs(c, at(2*time.Minute))
	wantCount(t, "PurgeDPoPProofs(2m)", n, err, 3)
	must(t, s.UseDPoPProof(c, "acme", "jkt-1", "jti-1", at(3*time.Minute)))
	wantErr(t, s.UseDPoPProof(c, "acme", "jkt-1", "jti-2", at(time.Hour)), storage.ErrAlreadyUsed)
}

func testDPoPProofRace(t *testing.T, s storage.Store) {
	c := ctx(t)
	for _, n := range contenders {
		jti := fmt.Sprintf("jti-race-%d", n)
		errs := together(n, func(int) error { return s.UseDPoPProof(c, "acme", "jkt-1", jti, at(time.Minute)) })
		onlyOne(t, fmt.Sprintf("%d concurrent UseDPoPProof", n), errs, storage.ErrAlreadyUsed)
	}
}

func newPushed(t *testing.T, realm string) storage.PushedRequest {
	return storage.PushedRequest{Hash: randBytes(t), Realm: realm, ClientID: "web",
		Params:    []byte(`{"response_type":"code","client_id":"web","scope":"openid"}`),
		CreatedAt: t0, ExpiresAt: at(time.Minute)}
}

func testPushedRequests(t *testing.T, s storage.Store) {
	c := ctx(t)
	p := newPushed(t, "acme")
	must(t, s.CreatePushedRequest(c, p))
	wantErr(t, s.CreatePushedRequest(c, p), storage.ErrConflict)

	_, err := s.UsePushedRequest(c, randBytes(t), t0)
	wantErr(t, err, storage.ErrNotFound)

	got, err := s.UsePushedRequest(c, p.Hash, at(time.Second))
	must(t, err)
	same(t, "UsePushedRequest", got, p)
	_, err = s.UsePushedRequest(c, p.Hash, at(2*time.Second))
	wantErr(t, err, storage.ErrAlreadyUsed)
	// Used, then expired: still a replay while it is kept.
	_, err = s.UsePushedRequest(c, p.Hash, at(time.Hour))
	wantErr(t, err, storage.ErrAlreadyUsed)

	// Unused and expired: not found, from its very expiry.
	late := newPushed(t, "acme")
	late.Params = nil
	must(t, s.CreatePushedRequest(c, late))
	_, err = s.UsePushedRequest(c, late.Hash, late.ExpiresAt)
	wantErr(t, err, storage.ErrNotFound)
	// One instant before, it is live, and nil params come back nil.
	edge := newPushed(t, "acme")
	edge.Params = nil
	must(t, s.CreatePushedRequest(c, edge))
	got, err = s.UsePushedRequest(c, edge.Hash, edge.ExpiresAt.Add(-time.Microsecond))
	must(t, err)
	same(t, "UsePushedRequest just before expiry", got, edge)

	kept := newPushed(t, "acme")
	kept.ExpiresAt = at(time.Hour)
	must(t, s.CreatePushedRequest(c, kept))
	n, err := s.PurgePushedRequests(c, at(time.Minute))
	wantCount(t, "PurgePushedRequests(1m)", n, err, 0)
	n, err = s.PurgePushedRequests(c, at(2*time.Minute))
	wantCount(t, "PurgePushedRequests(2m)", n, err, 3)
	_, err = s.UsePushedRequest(c, p.Hash, at(2*time.Minute))
	wantErr(t, err, storage.ErrNotFound)
	// A purged hash may be taken again.
	must(t, s.CreatePushedRequest(c, p))
	_, err = s.UsePushedRequest(c, kept.Hash, at(2*time.Minute))
	must(t, err)
}

func testPushedRequestRace(t *testing.T, s storage.Store) {
	c := ctx(t)
	for _, n := range contenders {
		p := newPushed(t, "acme")
		must(t, s.CreatePushedRequest(c, p))
		errs := together(n, func(int) error { _, err := s.UsePushedRequest(c, p.Hash, at(time.Second)); return err })
		onlyOne(t, fmt.Sprintf("%d concurrent UsePushedRequest", n), errs, storage.ErrAlreadyUsed)
	}
}

func newDevice(t *testing.T, realm string) storage.DeviceGrant {
	return storage.DeviceGrant{
		DeviceCodeHash: randBytes(t), UserCodeHash: randBytes(t), Realm: realm, ClientID: "web",
		Scopes: []string{"openid", "offline_access"}, Audience: []string{"https://api.example"},
		Status: storage.DeviceStatusPending, FamilyID: fmt.Sprintf("fam-%x", randBytes(t)[:8]),
		Interval: 5 * time.Second, CreatedAt: t0, ExpiresAt: at(10 * time.Minute),
		IP: "192.0.2.7", UserAgent: "tv-agent",
	}
}

// approve is a decision fn, as the user-code page makes it.
func approve(g *storage.DeviceGrant) error {
	g.Status, g.UserID, g.SessionID, g.AuthTime = storage.DeviceStatusApproved, g.Realm+"-alice", "sid-1", at(time.Minute)
	return nil
}

// startDevice makes the grant's family, as the token service would.
func startDevice(now time.Time) storage.StartDeviceGrant {
	return func(g storage.DeviceGrant) (storage.Family, storage.RefreshToken, error) {
		f := newFamily(g.Realm, g.ClientID, g.UserID, g.SessionID, g.FamilyID)
		f.Scopes, f.Audience = g.Scopes, g.Audience
		f.CreatedAt, f.LastUsedAt = now, now
		f.IP, f.UserAgent = g.IP, g.UserAgent
		hash := sha256.Sum256(g.DeviceCodeHash) // a stand-in for a fresh token's hash
		return f, storage.RefreshToken{Hash: hash[:], Scopes: g.Scopes, IssuedAt: now}, nil
	}
}

// noStart fails the test if a poll starts the grant.
func noStart(t *testing.T) storage.StartDeviceGrant {
	return func(storage.DeviceGrant) (storage.Family, storage.RefreshToken, error) {
		t.Error("start called for a grant that must not start")
		return storage.Family{}, storage.RefreshToken{}, errors.New("no")
	}
}

func testDeviceGrants(t *testing.T, s storage.Store) {
	c := ctx(t)
	setupRealm(t, s, "acme")
	g := newDevice(t, "acme")
	must(t, s.CreateDeviceGrant(c, g))
	wantErr(t, s.CreateDeviceGrant(c, g), storage.ErrConflict)
	// Either hash taken is a conflict.
	other := newDevice(t, "acme")
	other.UserCodeHash = g.UserCodeHash
	wantErr(t, s.CreateDeviceGrant(c, other), storage.ErrConflict)
	other = newDevice(t, "acme")
	other.DeviceCodeHash = g.DeviceCodeHash
	wantErr(t, s.CreateDeviceGrant(c, other), storage.ErrConflict)

	got, err := s.GetDeviceGrantByUserCode(c, "acme", g.UserCodeHash, t0)
	must(t, err)
	same(t, "GetDeviceGrantByUserCode", got, g)
	_, err = s.GetDeviceGrantByUserCode(c, "other", g.UserCodeHash, t0)
	wantErr(t, err, storage.ErrNotFound)
	_, err = s.GetDeviceGrantByUserCode(c, "acme", randBytes(t), t0)
	wantErr(t, err, storage.ErrNotFound)
	_, err = s.GetDeviceGrantByUserCode(c, "acme", g.UserCodeHash, g.ExpiresAt)
	wantErr(t, err, storage.ErrNotFound)
	_, err = s.GetDeviceGrantByUserCode(c, "acme", g.UserCodeHash, g.ExpiresAt.Add(-time.Microsecond))
	must(t, err)

	// Deciding: an error from fn changes nothing, nor does a decision that is none.
	boom := errors.New("boom")
	_, err = s.DecideDeviceGrant(c, "acme", g.UserCodeHash, t0, func(*storage.DeviceGrant) error { return boom })
	wantErr(t, err, boom)
	_, err = s.DecideDeviceGrant(c, "acme", g.UserCodeHash, t0, func(g *storage.DeviceGrant) error {
		g.Status = storage.DeviceStatusRedeemed
		return nil
	})
	if err == nil {
		t.Fatal("DecideDeviceGrant stored status redeemed")
	}
	got, err = s.GetDeviceGrantByUserCode(c, "acme", g.UserCodeHash, t0)
	must(t, err)
	same(t, "grant after failed decisions", got, g)
	_, err = s.DecideDeviceGrant(c, "acme", g.UserCodeHash, g.ExpiresAt, approve)
	wantErr(t, err, storage.ErrNotFound)
	_, err = s.DecideDeviceGrant(c, "other", g.UserCodeHash, t0, approve)
	wantErr(t, err, storage.ErrNotFound)

	// fn may set only the decision and who made it.
	decided, err := s.DecideDeviceGrant(c, "acme", g.UserCodeHash, at(time.Minute), func(d *storage.DeviceGrant) error {
		must(t, approve(d))
		d.ClientID, d.Scopes, d.FamilyID = "evil", []string{"admin"}, "fam-evil"
		return nil
	})
	must(t, err)
	want := g
	must(t, approve(&want))
	same(t, "DecideDeviceGrant", decided, want)
	got, err = s.GetDeviceGrantByUserCode(c, "acme", g.UserCodeHash, at(time.Minute))
	must(t, err)
	same(t, "decided grant", got, want)
	_, err = s.DecideDeviceGrant(c, "acme", g.UserCodeHash, at(time.Minute), func(g *storage.DeviceGrant) error {
		g.Status = storage.DeviceStatusDenied
		return nil
	})
	wantErr(t, err, storage.ErrAlreadyUsed)

	// Purge: what ends exactly at the purge time stays.
	n, err := s.PurgeDeviceGrants(c, g.ExpiresAt)
	wantCount(t, "PurgeDeviceGrants(at expiry)", n, err, 0)
	wantErr(t, s.CreateDeviceGrant(c, g), storage.ErrConflict) // expired, not purged: still taken
	n, err = s.PurgeDeviceGrants(c, g.ExpiresAt.Add(time.Microsecond))
	wantCount(t, "PurgeDeviceGrants(after expiry)", n, err, 1)
	_, _, err = s.PollDeviceGrant(c, g.DeviceCodeHash, t0, noStart(t))
	wantErr(t, err, storage.ErrNotFound)
	must(t, s.CreateDeviceGrant(c, g)) // a purged grant's hashes are free again
}

func testDeviceGrantPolling(t *testing.T, s storage.Store) {
	c := ctx(t)
	setupRealm(t, s, "acme")
	g := newDevice(t, "acme")
	must(t, s.CreateDeviceGrant(c, g))

	poll := func(now time.Time, start storage.StartDeviceGrant, want storage.PollResult, interval time.Duration) storage.DeviceGrant {
		t.Helper()
		got, res, err := s.PollDeviceGrant(c, g.DeviceCodeHash, now, start)
		must(t, err)
		if res != want || got.Interval != interval {
			t.Fatalf("poll at %v: %v with interval %v, want %v with %v", now.Sub(t0), res, got.Interval, want, interval)
		}
		return got
	}
	_, _, err := s.PollDeviceGrant(c, randBytes(t), t0, noStart(t))
	wantErr(t, err, storage.ErrNotFound)

	got := poll(at(time.Second), noStart(t), storage.PollPending, 5*time.Second)
	if !got.LastPolledAt.Equal(at(time.Second)) {
		t.Fatalf("LastPolledAt = %v, want the poll's time", got.LastPolledAt)
	}
	// Sooner than the interval: slow down, 5 s more each time (RFC 8628 §3.5).
	poll(at(5*time.Second), noStart(t), storage.PollSlowDown, 10*time.Second)
	poll(at(14*time.Second), noStart(t), storage.PollSlowDown, 15*time.Second)
	// Exactly the interval after the last poll is soon enough.
	got = poll(at(29*time.Second), noStart(t), storage.PollPending, 15*time.Second)
	g.Interval, g.LastPolledAt = 15*time.Second, at(29*time.Second)
	same(t, "grant after polls", got, g)

	// Approved: the next poll starts the grant, once.
	_, err = s.DecideDeviceGrant(c, "acme", g.UserCodeHash, at(30*time.Second), approve)
	must(t, err)
	// Too soon still comes first, and does not start it.
	poll(at(30*time.Second), noStart(t), storage.PollSlowDown, 20*time.Second)
	// A start that refuses changes nothing.
	refusal := errors.New("refused")
	_, _, err = s.PollDeviceGrant(c, g.DeviceCodeHash, at(time.Minute), func(storage.DeviceGrant) (storage.Family, storage.RefreshToken, error) {
		return storage.Family{}, storage.RefreshToken{}, refusal
	})
	wantErr(t, err, refusal)
	_, err = s.GetFamily(c, g.FamilyID)
	wantErr(t, err, storage.ErrNotFound)

	got = poll(at(time.Minute), startDevice(at(time.Minute)), storage.PollApproved, 20*time.Second)
	if got.Status != storage.DeviceStatusRedeemed || got.UserID != "acme-alice" || got.SessionID != "sid-1" {
		t.Fatalf("approved poll left %+v", got)
	}
	fam, err := s.GetFamily(c, g.FamilyID)
	must(t, err)
	wantFam, wantFirst, _ := startDevice(at(time.Minute))(got)
	same(t, "family started by the device grant", fam, wantFam)
	first, err := s.GetRefreshToken(c, wantFirst.Hash)
	must(t, err)
	wantFirst.FamilyID = g.FamilyID
	same(t, "first refresh token of the device grant", first, wantFirst)

	// A replay comes back with the grant, even after expiry, and start is not called.
	for _, now := range []time.Time{at(2 * time.Minute), at(time.Hour)} {
		replay, _, err := s.PollDeviceGrant(c, g.DeviceCodeHash, now, noStart(t))
		wantErr(t, err, storage.ErrAlreadyUsed)
		if replay.FamilyID != g.FamilyID {
			t.Fatalf("replayed poll gives family %q, want %q", replay.FamilyID, g.FamilyID)
		}
	}

	// Denied, then expired.
	d := newDevice(t, "acme")
	must(t, s.CreateDeviceGrant(c, d))
	_, err = s.DecideDeviceGrant(c, "acme", d.UserCodeHash, t0, func(g *storage.DeviceGrant) error {
		g.Status = storage.DeviceStatusDenied
		return nil
	})
	must(t, err)
	got, res, err := s.PollDeviceGrant(c, d.DeviceCodeHash, at(time.Second), noStart(t))
	must(t, err)
	if res != storage.PollDenied || got.Status != storage.DeviceStatusDenied {
		t.Fatalf("denied grant polls %v, status %q", res, got.Status)
	}
	_, res, err = s.PollDeviceGrant(c, d.DeviceCodeHash, d.ExpiresAt, noStart(t))
	must(t, err)
	if res != storage.PollExpired {
		t.Fatalf("poll at expiry: %v, want %v", res, storage.PollExpired)
	}
	// An approved grant that expired before its poll never starts.
	e := newDevice(t, "acme")
	must(t, s.CreateDeviceGrant(c, e))
	_, err = s.DecideDeviceGrant(c, "acme", e.UserCodeHash, t0, approve)
	must(t, err)
	_, res, err = s.PollDeviceGrant(c, e.DeviceCodeHash, e.ExpiresAt, noStart(t))
	must(t, err)
	if res != storage.PollExpired {
		t.Fatalf("poll of an approved grant at expiry: %v, want %v", res, storage.PollExpired)
	}
}

func testDeviceDecideRace(t *testing.T, s storage.Store) {
	c := ctx(t)
	setupRealm(t, s, "acme")
	for _, n := range contenders {
		g := newDevice(t, "acme")
		must(t, s.CreateDeviceGrant(c, g))
		errs := together(n, func(i int) error {
			_, err := s.DecideDeviceGrant(c, "acme", g.UserCodeHash, at(time.Second), func(d *storage.DeviceGrant) error {
				if i%2 == 0 {
					return approve(d)
				}
				d.Status, d.UserID = storage.DeviceStatusDenied, fmt.Sprintf("user-%d", i)
				return nil
			})
			return err
		})
		onlyOne(t, fmt.Sprintf("%d concurrent DecideDeviceGrant", n), errs, storage.ErrAlreadyUsed)
		// The decision stored is the winner's.
		won := -1
		for i, err := range errs {
			if err == nil {
				won = i
			}
		}
		got, err := s.GetDeviceGrantByUserCode(c, "acme", g.UserCodeHash, at(time.Second))
		must(t, err)
		wantStatus, wantUser := storage.DeviceStatusApproved, "acme-alice"
		if won%2 == 1 {
			wantStatus, wantUser = storage.DeviceStatusDenied, fmt.Sprintf("user-%d", won)
		}
		if got.Status != wantStatus || got.UserID != wantUser {
			t.Fatalf("%d deciders: stored %s by %q, want the winner's %s by %q", n, got.Status, got.UserID, wantStatus, wantUser)
		}
	}
}

func testDevicePollRace(t *testing.T, s storage.Store) {
	c := ctx(t)
	setupRealm(t, s, "acme")
	for _, n := range contenders {
		g := newDevice(t, "acme")
		must(t, s.CreateDeviceGrant(c, g))
		_, err := s.DecideDeviceGrant(c, "acme", g.UserCodeHash, t0, approve)
		must(t, err)
		errs := together(n, func(int) error {
			_, res, err := s.PollDeviceGrant(c, g.DeviceCodeHash, at(time.Second), startDevice(at(time.Second)))
			if err == nil && res != storage.PollApproved {
				return fmt.Errorf("poll found %v", res)
			}
			return err
		})
		onlyOne(t, fmt.Sprintf("%d concurrent PollDeviceGrant", n), errs, storage.ErrAlreadyUsed)
		fams, err := s.ListUserFamilies(c, "acme", "acme-alice", at(time.Second))
		must(t, err)
		started := 0
		for _, f := range fams {
			if f.ID == g.FamilyID {
				started++
			}
		}
		if started != 1 {
			t.Fatalf("%d pollers started %d families, want 1", n, started)
		}
	}
}

// DeleteRealm takes the realm's grant state; DeleteClient its pushed requests
// and device grants.
func testDeleteTakesGrantState(t *testing.T, s storage.Store) {
	c := ctx(t)
	setupRealm(t, s, "acme")
	setupRealm(t, s, "beta")
	must(t, s.CreateClient(c, newClient("acme", "tv")))
	for _, realm := range []string{"acme", "beta"} {
		must(t, s.UseDPoPProof(c, realm, "jkt", "jti", at(time.Hour)))
		must(t, s.CreatePushedRequest(c, newPushed(t, realm)))
		must(t, s.CreateDeviceGrant(c, newDevice(t, realm)))
	}
	tv, tvPushed := newDevice(t, "acme"), newPushed(t, "acme")
	tv.ClientID, tvPushed.ClientID = "tv", "tv"
	must(t, s.CreateDeviceGrant(c, tv))
	must(t, s.CreatePushedRequest(c, tvPushed))

	must(t, s.DeleteClient(c, "acme", "tv"))
	_, err := s.GetDeviceGrantByUserCode(c, "acme", tv.UserCodeHash, t0)
	wantErr(t, err, storage.ErrNotFound)
	_, err = s.UsePushedRequest(c, tvPushed.Hash, t0)
	wantErr(t, err, storage.ErrNotFound)

	must(t, s.DeleteRealm(c, "acme"))
	counts, err := s.Count(c)
	must(t, err)
	if counts.DPoPProofs != 1 || counts.PushedRequests != 1 || counts.DeviceGrants != 1 {
		t.Fatalf("after deleting one of two realms: %+v, want one of each grant state left", counts)
	}
	// The realm's proofs are forgotten with it.
	must(t, s.UseDPoPProof(c, "acme", "jkt", "jti", at(time.Hour)))
	wantErr(t, s.UseDPoPProof(c, "beta", "jkt", "jti", at(time.Hour)), storage.ErrAlreadyUsed)
}
