package token

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/latchkey/latchkey/storage"
)

func TestDenyListDropsEntriesAtTheirTokensExpiry(t *testing.T) {
	d := NewDenyList()
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	d.Add("acme", "a", now.Add(time.Minute))
	d.Add("acme", "b", now.Add(time.Hour))
	if !d.Denied("acme", "a") || d.Denied("other", "a") || d.Denied("acme", "c") {
		t.Fatal("Denied answers wrong")
	}
	d.Sweep(now.Add(time.Minute))
	if d.Denied("acme", "a") || !d.Denied("acme", "b") || d.Len() != 1 {
		t.Fatalf("after sweep: a %v b %v len %d", d.Denied("acme", "a"), d.Denied("acme", "b"), d.Len())
	}
}

func TestAudienceIsAStringWhenSingle(t *testing.T) {
	for _, tc := range []struct {
		aud  Audience
		json string
	}{{Audience{"api"}, `"api"`}, {Audience{"a", "b"}, `["a","b"]`}} {
		b, _ := json.Marshal(tc.aud)
		if string(b) != tc.json {
			t.Errorf("Marshal(%v) = %s, want %s", tc.aud, b, tc.json)
		}
		var back Audience
		if err := json.Unmarshal(b, &back); err != nil || len(back) != len(tc.aud) {
			t.Errorf("Unmarshal(%s) = %v, %v", b, back, err)
		}
	}
}

func TestTTLPrefersClientThenRealmThenDefault(t *testing.T) {
	realm := storage.Realm{AccessTokenTTL: 2 * time.Minute}
	client := storage.Client{Tokens: storage.TokenSettings{AccessTokenTTL: time.Minute}}
	if TTL(realm, client) != time.Minute || TTL(realm, storage.Client{}) != 2*time.Minute || TTL(storage.Realm{}, storage.Client{}) != DefaultAccessTokenTTL {
		t.Fatal("TTL precedence is wrong")
	}
}

func TestIsScopeToken_FollowsRFC6749(t *testing.T) {
	for s, want := range map[string]bool{
		"openid": true, "orders:read": true, "https://api.example/x": true, "!#[]~": true,
		"": false, "a b": false, `a"b`: false, `a\b`: false, "é": false, "a\tb": false, "a\x7f": false,
	} {
		if got := IsScopeToken(s); got != want {
			t.Errorf("IsScopeToken(%q) = %v, want %v", s, got, want)
		}
	}
}
