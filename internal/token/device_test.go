package token

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

func TestUserCodes_NormaliseAndKey(t *testing.T) {
	codes := NewUserCodes(bytes.Repeat([]byte{1}, 32))
	want, ok := codes.Hash("WDJB-MJHT")
	if !ok {
		t.Fatal("WDJB-MJHT refused")
	}
	// RFC 8628 §6.1: case-insensitive, the dash and spaces optional.
	for _, typed := range []string{"wdjb-mjht", "WDJBMJHT", "wdjb mjht", " WdJb-MjHt "} {
		if h, ok := codes.Hash(typed); !ok || !bytes.Equal(h, want) {
			t.Errorf("Hash(%q) differs from WDJB-MJHT's", typed)
		}
	}
	for _, bad := range []string{"", "WDJB-MJH", "WDJB-MJHTX", "AEIO-UAEI", "WDJB-MJH1", strings.Repeat("B", 40), "WDJB\x00MJHT"} {
		if _, ok := codes.Hash(bad); ok {
			t.Errorf("Hash(%q) accepted", bad)
		}
	}
	// Keyed: another key, another hash.
	if h, _ := NewUserCodes(bytes.Repeat([]byte{2}, 32)).Hash("WDJB-MJHT"); bytes.Equal(h, want) {
		t.Error("the hash does not depend on the key")
	}
	syntax := regexp.MustCompile(`^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$`)
	seen := map[string]bool{}
	for range 200 {
		code, h := codes.New()
		if again, ok := codes.Hash(code); !syntax.MatchString(code) || !ok || !bytes.Equal(again, h) {
			t.Fatalf("New() = %q, whose hash does not match", code)
		}
		seen[code] = true
	}
	if len(seen) < 199 {
		t.Errorf("200 codes drawn, %d distinct", len(seen))
	}
}
