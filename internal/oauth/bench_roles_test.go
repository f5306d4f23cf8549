package oauth

import (
	"encoding/json"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/token"
	"github.com/latchkey/latchkey/storage"
)

// BenchmarkRefreshWithRoles is BenchmarkRefresh with the roles scope, alice holding
// a composite role: the realm's roles come from the cache (storecache), so the cost
// is the expansion and the larger token.
func BenchmarkRefreshWithRoles(b *testing.B) {
	inst := benchInstance(b)
	ctx := b.Context()
	for _, r := range []storage.Role{{Name: "user"}, {ClientID: "svc", Name: "read"},
		{Name: "editor", Composites: []storage.RoleRef{{Name: "user"}, {ClientID: "svc", Name: "read"}}}} {
		r.Realm = "acme"
		if err := inst.store.CreateRole(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
	alice, err := inst.store.UpdateUser(ctx, "acme", mustUserB(b, inst, "alice").ID, func(u *storage.User) ([]storage.AuditEvent, error) {
		u.Roles = []storage.RoleRef{{Name: "editor"}}
		return nil, nil
	})
	if err != nil {
		b.Fatal(err)
	}
	// Refresh families with the roles scope, as sign-ins asking for it would leave.
	now := inst.clock.Now().UTC().Truncate(time.Microsecond)
	next := make(chan string, 2*8*runtime.GOMAXPROCS(0))
	for i := range cap(next) {
		value, hash := token.NewRefreshToken()
		f := storage.Family{ID: fmt.Sprintf("bench-roles-%d", i), Realm: "acme", ClientID: "web", UserID: alice.ID,
			Scopes: []string{"offline_access", "roles"}, Audience: []string{"https://api.example"}, CreatedAt: now, LastUsedAt: now,
			IdleExpiresAt: now.Add(24 * time.Hour), AbsoluteExpiresAt: now.Add(14 * 24 * time.Hour)}
		if err := inst.store.CreateFamily(ctx, f, storage.RefreshToken{Hash: hash, Scopes: f.Scopes, IssuedAt: now}); err != nil {
			b.Fatal(err)
		}
		next <- value
	}
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rt := <-next
		for pb.Next() {
			rec := serve(b, inst.handler, "/realms/acme"+tokenPath, "web:web-secret-123-0123456789abcdefghijklmnop", "grant_type=refresh_token&refresh_token="+rt)
			var out map[string]any
			json.Unmarshal(rec.Body.Bytes(), &out)
			rt = out["refresh_token"].(string)
		}
	})
}

func mustUserB(b *testing.B, inst *instance, username string) storage.User {
	u, err := inst.store.GetUserByUsername(b.Context(), "acme", username)
	if err != nil {
		b.Fatal(err)
	}
	return u
}
