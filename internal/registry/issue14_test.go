package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/latchkey/latchkey/internal/grants"
)

// The DPoP, PAR and token-exchange settings are refused where they make no
// sense, each with its field path; token_exchange_audiences is bounded.
func TestCheckClient_DPoPPARAndExchangeSettings(t *testing.T) {
	secret := strings.Repeat("s", 32)
	web := func() Client {
		return Client{ID: "web", Secret: secret, RedirectURIs: []string{"https://app.example/cb"},
			GrantTypes: []string{"authorization_code", "refresh_token"}}
	}
	svc := func(auds ...string) Client {
		return Client{ID: "svc", Secret: secret, GrantTypes: []string{"client_credentials", grants.TokenExchangeType},
			TokenExchangeAudiences: auds}
	}
	tests := []struct {
		name      string
		client    Client
		wantField string // "" means no error on these settings
		wantMsg   string
	}{
		{"dpop on a code client", func() Client { c := web(); c.DPoPBoundAccessTokens = true; return c }(), "", ""},
		{"dpop on a service client", Client{ID: "svc", Secret: secret, GrantTypes: []string{"client_credentials"}, DPoPBoundAccessTokens: true}, "", ""},
		{"par on a code client", func() Client { c := web(); c.RequirePushedAuthorizationRequests = true; return c }(), "", ""},
		{"par without authorization_code", Client{ID: "svc", Secret: secret, GrantTypes: []string{"client_credentials"},
			RequirePushedAuthorizationRequests: true}, "require_pushed_authorization_requests", "authorization_code"},
		{"audiences without the exchange grant", func() Client { c := web(); c.TokenExchangeAudiences = []string{"api"}; return c }(),
			"token_exchange_audiences", grants.TokenExchangeType},
		{"audiences with the exchange grant", svc("api", "https://api.example/orders"), "", ""},
		{"exchange grant, no audiences", svc(), "", ""},
		{"empty audience", svc("api", ""), "token_exchange_audiences[1]", "empty"},
		{"audience with a space", svc("my api"), "token_exchange_audiences[0]", "spaces"},
		{"audience with a control character", svc("api\n"), "token_exchange_audiences[0]", "control"},
		{"audience listed twice", svc("api", "other", "api"), "token_exchange_audiences[2]", "twice"},
		{"audience too long", svc(strings.Repeat("a", MaxTokenExchangeAudienceBytes+1)), "token_exchange_audiences[0]", "bytes"},
		{"audience at the bound", svc(strings.Repeat("a", MaxTokenExchangeAudienceBytes)), "", ""},
		{"too many audiences", svc(manyAudiences(MaxTokenExchangeAudiences + 1)...), "token_exchange_audiences", "at most"},
		{"as many audiences as allowed", svc(manyAudiences(MaxTokenExchangeAudiences)...), "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckClient(&tc.client)
			var errs Errors
			if err != nil && !errors.As(err, &errs) {
				t.Fatalf("CheckClient = %v, want Errors", err)
			}
			// Only the errors about these settings: until the token-exchange grant
			// has its row in the grants table, grant_types names it as unknown.
			var mine Errors
			for _, e := range errs {
				if f := e.Field(); strings.HasPrefix(f, "token_exchange_audiences") || f == "require_pushed_authorization_requests" || f == "dpop_bound_access_tokens" {
					mine = append(mine, e)
				}
			}
			if tc.wantField == "" {
				if len(mine) != 0 {
					t.Fatalf("refused: %v", mine)
				}
				return
			}
			if len(mine) != 1 || mine[0].Field() != tc.wantField || !strings.Contains(mine[0].Msg, tc.wantMsg) {
				t.Fatalf("errors %v, want one on %s saying %q", mine, tc.wantField, tc.wantMsg)
			}
		})
	}
}

func manyAudiences(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("aud-%d", i)
	}
	return out
}

// The three settings read the same from the seed file (YAML) and the admin API
// (JSON), are stored, and read back.
func TestClient_DPoPPARAndExchangeSettingsRoundTrip(t *testing.T) {
	doc := `{"id": "app", "secret": "0123456789abcdef0123456789abcdef", "redirect_uris": ["https://app.example/cb"],
		"grant_types": ["authorization_code"], "dpop_bound_access_tokens": true,
		"require_pushed_authorization_requests": true, "token_exchange_audiences": ["api", "https://api.example"]}`
	var fromJSON, fromYAML Client
	if err := json.Unmarshal([]byte(doc), &fromJSON); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal([]byte(doc), &fromYAML); err != nil {
		t.Fatal(err)
	}
	for _, c := range []Client{fromJSON, fromYAML} {
		if !c.DPoPBoundAccessTokens || !c.RequirePushedAuthorizationRequests ||
			!slices.Equal(c.TokenExchangeAudiences, []string{"api", "https://api.example"}) {
			t.Fatalf("read %+v", c)
		}
		stored := c.StoredClient("acme", "hash", time.Now())
		if !stored.DPoPBoundAccessTokens || !stored.RequirePushedAuthorizationRequests ||
			!slices.Equal(stored.TokenExchangeAudiences, c.TokenExchangeAudiences) {
			t.Fatalf("stored %+v", stored)
		}
		back, _ := json.Marshal(ClientOf(stored))
		for _, want := range []string{`"dpop_bound_access_tokens":true`, `"require_pushed_authorization_requests":true`,
			`"token_exchange_audiences":["api","https://api.example"]`} {
			if !strings.Contains(string(back), want) {
				t.Fatalf("read back %s, want %s in it", back, want)
			}
		}
	}
	// Unset, they stay out of the representation.
	p := Client{ID: "p", GrantTypes: []string{"client_credentials"}}
	plain, _ := json.Marshal(ClientOf(p.StoredClient("acme", "h", time.Now())))
	for _, absent := range []string{"dpop_bound_access_tokens", "require_pushed_authorization_requests", "token_exchange_audiences"} {
		if strings.Contains(string(plain), absent) {
			t.Fatalf("%s in %s", absent, plain)
		}
	}
}

// A device client gets refresh tokens that live as long as a mobile app's.
func TestCheckClient_DeviceClientsDefaultToTheMobilePreset(t *testing.T) {
	c := Client{ID: "tv", GrantTypes: []string{grants.DeviceCodeType, "refresh_token"}}
	_ = CheckClient(&c) // the device grant's row and rules come with its own change
	if c.RefreshPreset != "mobile" {
		t.Fatalf("refresh_preset = %q, want mobile", c.RefreshPreset)
	}
}
