package metrics

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/latchkey/latchkey/storage"
)

// BenchmarkRefreshRequest is the counting a refresh request does with metrics on:
// its route, its outcome, the rotation and three tokens, and the six store calls
// it makes (realm and client come from the cache). The request itself costs
// hundreds of microseconds; this is what metrics add to it.
func BenchmarkRefreshRequest(b *testing.B) {
	m := New(prometheus.NewRegistry(), time.Now)
	st := m.Store(benchStore{})
	ctx := context.Background()
	const route = "/realms/{realm}/protocol/openid-connect/token"
	m.Request(route, time.Millisecond)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			start := time.Now()
			for range 6 {
				st.GetRefreshToken(ctx, nil)
			}
			m.TokenRequest("refresh_token", "success")
			m.Rotated()
			m.Issued("access_jwt")
			m.Issued("refresh")
			m.Issued("id")
			m.Request(route, time.Since(start))
		}
	})
}

type benchStore struct{ storage.Store }

func (benchStore) GetRefreshToken(ctx context.Context, hash []byte) (storage.RefreshToken, error) {
	return storage.RefreshToken{}, nil
}
