package clientsecret

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/internal/masterkey"
)

func key(t testing.TB, b byte) *masterkey.Key {
	k, err := masterkey.Parse(hex.EncodeToString(bytes.Repeat([]byte{b}, masterkey.Size)))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestVerifyAcceptsOnlyTheSecretOfThatClient(t *testing.T) {
	h := NewHasher(key(t, 1))
	stored := h.Hash("acme", "web", "web-secret-123")
	if strings.Contains(stored, "web-secret-123") || !strings.HasPrefix(stored, "hmac-sha256$") {
		t.Fatalf("stored form %q", stored)
	}
	if stored != h.Hash("acme", "web", "web-secret-123") {
		t.Fatal("hashing must be deterministic so re-applying a seed changes nothing")
	}
	cases := []struct {
		realm, client, secret string
		want                  bool
	}{
		{"acme", "web", "web-secret-123", true},
		{"acme", "web", "web-secret-124", false},
		{"acme", "web2", "web-secret-123", false},
		{"acme2", "web", "web-secret-123", false},
		{"acm", "eweb", "web-secret-123", false},
		{"acme", "web", "", false},
	}
	for _, c := range cases {
		ok, err := h.Verify(c.realm, c.client, c.secret, stored)
		if err != nil || ok != c.want {
			t.Errorf("Verify(%s, %s, %s) = %v, %v; want %v", c.realm, c.client, c.secret, ok, err, c.want)
		}
	}
}

func TestVerifyNamesAnotherMasterKey(t *testing.T) {
	stored := NewHasher(key(t, 1)).Hash("acme", "web", "s")
	if _, err := NewHasher(key(t, 2)).Verify("acme", "web", "s", stored); !errors.Is(err, ErrOtherKey) {
		t.Fatalf("err = %v, want ErrOtherKey", err)
	}
	for _, bad := range []string{"", "plain", "argon2$x$y", "hmac-sha256$" + key(t, 1).ID() + "$!!"} {
		if _, err := NewHasher(key(t, 1)).Verify("acme", "web", "s", bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("Verify(%q) err = %v, want ErrMalformed", bad, err)
		}
	}
}

func TestGenerateHasAtLeast256Bits(t *testing.T) {
	a, b := Generate(), Generate()
	// 52 base32 characters carry 260 bits.
	if len(a) < 52 || a == b {
		t.Fatalf("Generate() = %q, %q", a, b)
	}
}

func BenchmarkVerify(b *testing.B) {
	h := NewHasher(key(b, 1))
	stored := h.Hash("acme", "svc", "svc-secret-123")
	for b.Loop() {
		if ok, _ := h.Verify("acme", "svc", "svc-secret-123", stored); !ok {
			b.Fatal("mismatch")
		}
	}
}
