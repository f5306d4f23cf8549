package cluster_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/cluster"
	"github.com/latchkey/latchkey/internal/keys"
	"github.com/latchkey/latchkey/internal/masterkey"
	"github.com/latchkey/latchkey/internal/storecache"
	"github.com/latchkey/latchkey/internal/token"
	"github.com/latchkey/latchkey/storage"
	"github.com/latchkey/latchkey/storage/sqlite"
)

// instance is what the follower works on, as serve wires it: a cached store, a key
// manager and a token service with its deny-list.
type instance struct {
	cached *storecache.Store
	keys   *keys.Manager
	deny   *token.DenyList
	tokens *token.Service
	f      *cluster.Follower
}

func testKey(t *testing.T) *masterkey.Key {
	k, err := masterkey.Parse(hex.EncodeToString(bytes.Repeat([]byte{7}, masterkey.Size)))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// follow starts a follower on st, as of now, until the test ends.
func follow(t *testing.T, st storage.Store, cfg cluster.Config) *instance {
	t.Helper()
	in := &instance{cached: storecache.New(st, time.Hour, time.Now), deny: token.NewDenyList()}
	in.keys = keys.NewManager(in.cached, testKey(t), keys.DefaultPolicy, time.Now)
	in.tokens = token.NewService(in.cached, in.keys, in.deny, "http://127.0.0.1", time.Now)
	after, err := st.LastChangeSeq(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Feed, cfg.Deny, cfg.Cache, cfg.Keys, cfg.Verified, cfg.After = st, in.deny, in.cached, in.keys, in.tokens, after
	in.f = cluster.New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { in.f.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return in
}

// caughtUp waits until the follower has applied every change recorded so far.
func caughtUp(t *testing.T, st storage.Store, f *cluster.Follower) {
	t.Helper()
	last, err := st.LastChangeSeq(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if got, err := f.Wait(ctx, last-1); err != nil || got < last {
		t.Fatalf("Wait(%d) = %d, %v; want %d", last-1, got, err, last)
	}
}

func openSQLite(t *testing.T) *sqlite.Store {
	st, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "f.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func seed(t *testing.T, st storage.Store) {
	t.Helper()
	ctx := t.Context()
	if err := st.CreateRealm(ctx, storage.Realm{Name: "acme", SigningAlg: "ES256", AccessTokenTTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateClient(ctx, storage.Client{Realm: "acme", ID: "web", GrantTypes: []string{"client_credentials"}}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateUser(ctx, storage.User{Realm: "acme", ID: "u1", Username: "alice"}); err != nil {
		t.Fatal(err)
	}
}

// Changes written to the store behind the instance's back (as another instance
// writes them) reach its deny-list, caches and key ring, each as soon as the
// follower has read it (Wait), with no TTL or reload interval in between.
func TestFollower_AppliesEachKindOfChangeToTheInstance(t *testing.T) {
	ctx := t.Context()
	st := openSQLite(t)
	seed(t, st)
	in := follow(t, st, cluster.Config{Poll: time.Hour})

	// A revoked access token.
	until := time.Now().Add(time.Minute).UTC().Truncate(time.Microsecond)
	if err := st.DenyJWT(ctx, storage.DeniedJWT{Realm: "acme", JTI: "j1", ExpiresAt: until, CreatedAt: time.Now(), Reason: "revoked"}); err != nil {
		t.Fatal(err)
	}
	caughtUp(t, st, in.f)
	if !in.deny.Denied("acme", "j1") {
		t.Error("a token denied elsewhere is not on the deny-list")
	}

	// A client changed, a realm changed.
	if _, err := in.cached.GetClient(ctx, "acme", "web"); err != nil {
		t.Fatal(err)
	}
	if _, err := in.cached.GetRealm(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.UpdateClient(ctx, "acme", "web", func(c *storage.Client) ([]storage.AuditEvent, error) {
		c.Disabled = true
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	caughtUp(t, st, in.f)
	if c, _ := in.cached.GetClient(ctx, "acme", "web"); !c.Disabled {
		t.Error("a client disabled elsewhere is still enabled in the cache")
	}
	if _, err := st.UpdateRealm(ctx, "acme", func(r *storage.Realm) ([]storage.AuditEvent, error) {
		r.DisplayName = "Acme"
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	caughtUp(t, st, in.f)
	if r, _ := in.cached.GetRealm(ctx, "acme"); r.DisplayName != "Acme" {
		t.Error("a realm changed elsewhere is stale in the cache")
	}

	// A role created elsewhere.
	if roles, err := in.cached.ListRoles(ctx, "acme"); err != nil || len(roles) != 0 {
		t.Fatalf("roles = %+v, %v; want none", roles, err)
	}
	if err := st.CreateRole(ctx, storage.Role{Realm: "acme", Name: "editor"}); err != nil {
		t.Fatal(err)
	}
	caughtUp(t, st, in.f)
	if roles, _ := in.cached.ListRoles(ctx, "acme"); len(roles) != 1 {
		t.Error("a role created elsewhere is missing from the cache")
	}

	// A key retired.
	k, err := in.keys.Signer(ctx, "acme", "ES256")
	if err != nil {
		t.Fatal(err)
	}
	caughtUp(t, st, in.f) // the key's creation is a change too
	jwks, _ := in.keys.JWKS(ctx, "acme")
	if !strings.Contains(string(jwks), k.KID) {
		t.Fatal("the new key is not published")
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	if err := st.RetireSigningKey(ctx, "acme", k.KID, now, now); err != nil {
		t.Fatal(err)
	}
	caughtUp(t, st, in.f)
	if jwks, _ := in.keys.JWKS(ctx, "acme"); strings.Contains(string(jwks), k.KID) {
		t.Error("a key retired elsewhere is still published")
	}
	if _, err := in.keys.Lookup(ctx, "acme", k.KID); err == nil {
		t.Error("a key retired elsewhere still verifies")
	}
	if next, err := in.keys.Signer(ctx, "acme", "ES256"); err != nil || next.KID == k.KID {
		t.Errorf("a key retired elsewhere still signs (%v)", err)
	}

	// A user revoked: nothing to apply, but Wait sees it.
	if _, err := st.UpdateUser(ctx, "acme", "u1", func(u *storage.User) ([]storage.AuditEvent, error) {
		u.Disabled = true
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	caughtUp(t, st, in.f)
}

// A revocation made on this instance reaches Wait at once: the store wakes the
// follower, no poll is waited for.
func TestFollower_WakesOnEachCommit(t *testing.T) {
	ctx := t.Context()
	st := openSQLite(t)
	seed(t, st)
	in := follow(t, st, cluster.Config{Poll: time.Hour})
	for i := range 20 {
		last := in.f.Last()
		if err := st.DenyJWT(ctx, storage.DeniedJWT{Realm: "acme", JTI: "j" + string(rune('a'+i)),
			ExpiresAt: time.Now().Add(time.Minute), CreatedAt: time.Now(), Reason: "revoked"}); err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := in.f.Wait(wctx, last)
		cancel()
		if err != nil {
			t.Fatalf("revocation %d: the follower was not woken: %v", i, err)
		}
	}
}

// The follower starts from its cursor: what was recorded after it is applied.
func TestFollower_StartsAfterItsCursorWithClearedCaches(t *testing.T) {
	ctx := t.Context()
	st := openSQLite(t)
	seed(t, st)
	if err := st.DenyJWT(ctx, storage.DeniedJWT{Realm: "acme", JTI: "before", ExpiresAt: time.Now().Add(time.Minute), CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	in := follow(t, st, cluster.Config{Poll: time.Hour})
	if err := st.DenyJWT(ctx, storage.DeniedJWT{Realm: "acme", JTI: "after", ExpiresAt: time.Now().Add(time.Minute), CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	caughtUp(t, st, in.f)
	if !in.deny.Denied("acme", "after") {
		t.Errorf("the revocation after the cursor was not applied")
	}
}
