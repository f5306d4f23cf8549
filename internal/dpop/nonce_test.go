package dpop

import (
	"testing"
	"time"
)

func TestNonces(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	a, err := NewNonces(key, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewNonces(key, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 12, 3, 18, 0, 0, 0, time.UTC) // a window boundary
	n := a.Issue(start)
	for _, c := range []struct {
		name string
		at   time.Time
		ok   bool
	}{
		{"same instant", start, true},
		{"end of its window", start.Add(time.Minute - time.Nanosecond), true},
		{"next window", start.Add(time.Minute), true},
		{"end of next window", start.Add(2*time.Minute - time.Nanosecond), true},
		{"two windows later", start.Add(2 * time.Minute), false},
		{"before it was issued", start.Add(-time.Nanosecond), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			// Another instance with the same key agrees: no shared state.
			for _, ns := range []*Nonces{a, b} {
				if err := ns.Check(n, c.at); (err == nil) != c.ok {
					t.Fatalf("Check at %v: %v; want ok=%v", c.at, err, c.ok)
				}
			}
		})
	}
	if a.Issue(start) == a.Issue(start.Add(time.Minute)) {
		t.Fatal("nonce did not change with the window")
	}
	if err := a.Check("", start); err == nil {
		t.Fatal("empty nonce accepted")
	}
	other, err := NewNonces([]byte("fedcba9876543210fedcba9876543210"), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Check(n, start); err == nil {
		t.Fatal("nonce accepted under another key")
	}
}

func TestNewNonces_RefusesWeakSettings(t *testing.T) {
	if _, err := NewNonces(make([]byte, MinNonceKeyLength-1), time.Minute); err == nil {
		t.Error("short key accepted")
	}
	if _, err := NewNonces(make([]byte, MinNonceKeyLength), time.Millisecond); err == nil {
		t.Error("window under a second accepted")
	}
}
