package storagetest

import (
	"crypto/rand"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkey/latchkey/storage"
)

// Bench runs the store benchmarks of the token hot path: rotating a refresh token,
// from as many goroutines as GOMAXPROCS×p.
func Bench(b *testing.B, newStore func(b *testing.B) storage.Store) {
	for _, p := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("RotateRefreshToken/parallel=%d", p), func(b *testing.B) { benchRotate(b, newStore(b), p) })
	}
}

func hash32() []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return b
}

func benchSetup(b *testing.B, s storage.Store) {
	ctx := b.Context()
	if err := s.CreateRealm(ctx, storage.Realm{Name: "bench", SigningAlg: "ES256", AccessTokenTTL: time.Minute, CreatedAt: t0, UpdatedAt: t0}); err != nil {
		b.Fatal(err)
	}
}

func benchRotate(b *testing.B, s storage.Store, parallelism int) {
	benchSetup(b, s)
	ctx := b.Context()
	var n atomic.Int64
	b.SetParallelism(parallelism)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		// Each goroutine holds its own family and rotates its newest token.
		id := fmt.Sprintf("fam-%d", n.Add(1))
		f := newFamily("bench", "web", "u", "", id)
		f.AbsoluteExpiresAt, f.IdleExpiresAt = at(1000*time.Hour), at(1000*time.Hour)
		current := storage.RefreshToken{Hash: hash32(), FamilyID: id, IssuedAt: t0}
		if err := s.CreateFamily(ctx, f, current); err != nil {
			b.Fatal(err)
		}
		sealed := make([]byte, 700) // about the size of a sealed token response
		for pb.Next() {
			child := storage.RefreshToken{Hash: hash32(), IssuedAt: t0}
			if _, err := s.RotateRefreshToken(ctx, current.Hash, child, sealed, storage.FamilyUse{At: t0, IdleExpiresAt: at(time.Hour)}); err != nil {
				b.Fatal(err)
			}
			current = child
		}
	})
}
