package oauth

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/latchkey/latchkey/internal/metrics"
	"github.com/latchkey/latchkey/internal/token"
	"github.com/latchkey/latchkey/storage"
	"github.com/latchkey/latchkey/storage/sqlite"
)

// benchInstance is a seeded instance on SQLite, driven in-process (no network), so
// the figures are the server's own work per request.
func benchInstance(b *testing.B) *instance {
	st, err := sqlite.Open(b.Context(), sqlite.Config{Path: filepath.Join(b.TempDir(), "bench.db")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	// Info, as serve logs by default: the debug request log is not part of the cost.
	// Metrics on, as with serve --metrics-addr: their cost is part of it.
	clk := &clock{t: time.Now()}
	return newInstanceObserved(b, st, clk, true, "", slog.LevelInfo, metrics.New(prometheus.NewRegistry(), clk.Now))
}

func serve(b *testing.B, h http.Handler, path, basic, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("POST", path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id, secret, ok := strings.Cut(basic, ":"); ok {
		req.SetBasicAuth(id, secret)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 {
		b.Fatalf("%s = %d %s", path, rec.Code, rec.Body)
	}
	return rec
}

func benchToken(b *testing.B, inst *instance, basic string) string {
	rec := serve(b, inst.handler, "/realms/acme"+tokenPath, basic, "grant_type=client_credentials")
	var out map[string]any
	json.Unmarshal(rec.Body.Bytes(), &out)
	return out["access_token"].(string)
}

func BenchmarkClientCredentials(b *testing.B) {
	for _, tc := range []struct{ name, basic string }{{"JWT-ES256", "svc:svc-secret-123-0123456789abcdefghijklmnop"}, {"opaque", "opq:opq-secret-789-0123456789abcdefghijklmnop"}} {
		b.Run(tc.name, func(b *testing.B) {
			inst := benchInstance(b)
			b.ReportAllocs()
			b.SetParallelism(8) // enough concurrent requests for the store to group its commits
			b.ResetTimer()      // the instance's setup is not a request's cost
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					serve(b, inst.handler, "/realms/acme"+tokenPath, tc.basic, "grant_type=client_credentials")
				}
			})
		})
	}
}

func BenchmarkIntrospect(b *testing.B) {
	for _, tc := range []struct{ name, basic string }{{"JWT-ES256", "svc:svc-secret-123-0123456789abcdefghijklmnop"}, {"opaque", "opq:opq-secret-789-0123456789abcdefghijklmnop"}} {
		b.Run(tc.name, func(b *testing.B) {
			inst := benchInstance(b)
			body := "token=" + benchToken(b, inst, tc.basic)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					serve(b, inst.handler, "/realms/acme"+introspectPath, "svc:svc-secret-123-0123456789abcdefghijklmnop", body)
				}
			})
		})
	}
}

// BenchmarkRefresh rotates refresh tokens of offline families (no browser
// session) and of session-bound ones, whose refresh also checks the session.
func BenchmarkRefresh(b *testing.B) {
	for _, kind := range []string{"Offline", "SessionBound"} {
		b.Run(kind, func(b *testing.B) {
			inst := benchInstance(b)
			benchRefresh(b, inst, mintRefresh(b, inst, 2*8*runtime.GOMAXPROCS(0), kind == "SessionBound"))
		})
	}
}

// BenchmarkRefreshWithRoles is BenchmarkRefresh with the roles scope, alice holding
// a composite role: the realm's roles come from the cache, the expansion is the cost.
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
	alice, err := inst.store.GetUserByUsername(ctx, "acme", "alice")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := inst.store.UpdateUser(ctx, "acme", alice.ID, func(u *storage.User) ([]storage.AuditEvent, error) {
		u.Roles = []storage.RoleRef{{Name: "editor"}}
		return nil, nil
	}); err != nil {
		b.Fatal(err)
	}
	benchRefresh(b, inst, mintRefresh(b, inst, 2*8*runtime.GOMAXPROCS(0), false, "roles"))
}

func benchRefresh(b *testing.B, inst *instance, rts []string) {
	b.ReportAllocs()
	b.SetParallelism(8)
	next := make(chan string, len(rts))
	for _, rt := range rts {
		next <- rt
	}
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

// mintRefresh creates n refresh families for alice and the web client, as n sign-ins
// would: offline ones (offline_access and the extra scopes, no browser session),
// or session-bound ones, each born in a browser session of its own.
func mintRefresh(b *testing.B, inst *instance, n int, sessionBound bool, extra ...string) []string {
	ctx := b.Context()
	alice, err := inst.store.GetUserByUsername(ctx, "acme", "alice")
	if err != nil {
		b.Fatal(err)
	}
	now := inst.clock.Now().UTC().Truncate(time.Microsecond)
	var out []string
	for i := range n {
		value, hash := token.NewRefreshToken()
		f := storage.Family{ID: fmt.Sprintf("bench-%d", i), Realm: "acme", ClientID: "web", UserID: alice.ID,
			Scopes: append([]string{"offline_access"}, extra...), Audience: []string{"https://api.example"}, CreatedAt: now, LastUsedAt: now,
			IdleExpiresAt: now.Add(24 * time.Hour), AbsoluteExpiresAt: now.Add(14 * 24 * time.Hour)}
		if sessionBound {
			sess := storage.Session{ID: fmt.Sprintf("bench-sid-%d", i), Realm: "acme", UserID: alice.ID,
				SecretHash: make([]byte, 32), AuthTime: now, CreatedAt: now, LastSeenAt: now,
				IdleExpiresAt: now.Add(24 * time.Hour), ExpiresAt: now.Add(30 * 24 * time.Hour)}
			if err := inst.store.CreateSession(ctx, sess); err != nil {
				b.Fatal(err)
			}
			f.SessionID, f.Scopes = sess.ID, append([]string{"profile"}, extra...) // no offline_access, no openid: the same work but the session
		}
		if err := inst.store.CreateFamily(ctx, f, storage.RefreshToken{Hash: hash, Scopes: f.Scopes, IssuedAt: now}); err != nil {
			b.Fatal(err)
		}
		out = append(out, value)
	}
	return out
}
