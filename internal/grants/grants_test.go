package grants_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/dpop"
	"github.com/latchkey/latchkey/internal/grants"
	"github.com/latchkey/latchkey/internal/registry"
	"github.com/latchkey/latchkey/internal/token"
)

func TestRegistry_ServesEveryGrantInTheTable(t *testing.T) {
	r := grants.Default(grants.Deps{})
	if got, want := r.Types(), grants.Types(); !slices.Equal(got, want) {
		t.Fatalf("registry serves %v, the table offers %v", got, want)
	}
	for _, s := range grants.Specs() {
		g, spec, ok := r.Get(s.Type)
		if !ok || g.Type() != s.Type || spec != s {
			t.Errorf("Get(%q) = %v, %+v, %v", s.Type, g, spec, ok)
		}
	}
	for _, bad := range []string{"", "password", "implicit", "urn:ietf:params:oauth:grant-type:jwt-bearer"} {
		if _, _, ok := r.Get(bad); ok {
			t.Errorf("Get(%q) found a grant", bad)
		}
	}
	// What the registry hands out is a copy: the table cannot be changed through it.
	r.Types()[0] = "password"
	grants.Types()[0] = "password"
	grants.Specs()[0].Type = "password"
	if r.Types()[0] == "password" || grants.Types()[0] == "password" {
		t.Error("the grant types can be changed from outside")
	}
}

type fake string

func (f fake) Type() string { return string(f) }
func (fake) Token(context.Context, grants.Request) (token.Response, error) {
	return token.Response{}, nil
}

func TestNewRegistry_RefusesGrantsOutsideTheTableAndTwice(t *testing.T) {
	if _, err := grants.NewRegistry(fake("password")); err == nil {
		t.Error("a grant without a spec was registered")
	}
	if _, err := grants.NewRegistry(fake("refresh_token"), fake("refresh_token")); err == nil {
		t.Error("a grant type was registered twice")
	}
	r, err := grants.NewRegistry(fake("refresh_token"), fake("authorization_code"))
	if err != nil || !slices.Equal(r.Types(), []string{"authorization_code", "refresh_token"}) {
		t.Errorf("NewRegistry = %v, %v: want the table's order", r.Types(), err)
	}
}

// client is a registry client that satisfies every spec's rules.
func client(grantTypes ...string) registry.Client {
	return registry.Client{ID: "app", Secret: strings.Repeat("s", 40),
		RedirectURIs: []string{"https://app.example/cb"}, GrantTypes: grantTypes}
}

func TestValidation_ReadsTheTable(t *testing.T) {
	if !slices.Equal(registry.GrantTypes, grants.Types()) {
		t.Errorf("registry.GrantTypes = %v, want %v", registry.GrantTypes, grants.Types())
	}
	for _, s := range grants.Specs() {
		types := []string{s.Type}
		for _, other := range s.RequiresAny() {
			one := append([]string{s.Type}, other)
			if c := client(one...); registry.CheckClient(&c) != nil {
				t.Errorf("%s: a client with it and %s is refused: %v", s.Type, other, registry.CheckClient(&c))
			}
		}
		if req := s.RequiresAny(); len(req) > 0 {
			types = append(types, req[0])
		}
		ok := client(types...)
		if err := registry.CheckClient(&ok); err != nil {
			t.Errorf("%s: a client meeting the spec is refused: %v", s.Type, err)
		}
		public := client(types...)
		public.Secret = ""
		public.PKCEOptional = false
		err := registry.CheckClient(&public)
		if got := err != nil && strings.Contains(err.Error(), s.Type+" needs a confidential client"); got != s.Confidential {
			t.Errorf("%s: public client refused for it: %v, spec says Confidential=%v", s.Type, err, s.Confidential)
		}
		noRedirect := client(types...)
		noRedirect.RedirectURIs = nil
		err = registry.CheckClient(&noRedirect)
		if got := err != nil && strings.Contains(err.Error(), s.Type+" needs at least one redirect URI"); got != s.RedirectURIs {
			t.Errorf("%s: client without redirect URIs refused for it: %v, spec says RedirectURIs=%v", s.Type, err, s.RedirectURIs)
		}
		alone := client(s.Type)
		err = registry.CheckClient(&alone)
		if got := err != nil && strings.Contains(err.Error(), s.Type+" needs "+strings.Join(s.RequiresAny(), " or ")+":"); got != (s.Requires != "") {
			t.Errorf("%s: client without %q refused for it: %v", s.Type, s.Requires, err)
		}
	}
	unknown := client("password")
	if err := registry.CheckClient(&unknown); err == nil {
		t.Error("a grant type outside the table is accepted")
	}
}

func TestRequest_DPoPDecidesBindingAndTokenType(t *testing.T) {
	var plain grants.Request
	if plain.JKT() != "" || plain.TokenType() != "Bearer" {
		t.Fatalf("no proof: JKT %q, TokenType %q; want \"\", Bearer", plain.JKT(), plain.TokenType())
	}
	withProof := grants.Request{DPoP: &dpop.Proof{JKT: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}}
	if withProof.JKT() != "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I" || withProof.TokenType() != "DPoP" {
		t.Fatalf("proof: JKT %q, TokenType %q; want the proof's thumbprint, DPoP", withProof.JKT(), withProof.TokenType())
	}
}

// A device keeps its sign-in as a mobile app does: a client with the device
// grant and refresh_token and no refresh_preset gets the mobile preset.
func TestValidation_DeviceClientsDefaultToTheMobilePreset(t *testing.T) {
	tv := registry.Client{ID: "tv", GrantTypes: []string{grants.DeviceCodeType, grants.RefreshTokenType}}
	if err := registry.CheckClient(&tv); err != nil {
		t.Fatal(err)
	}
	if m := registry.Presets["mobile"]; tv.RefreshPreset != "mobile" || time.Duration(tv.RefreshIdle) != m.Idle || time.Duration(tv.RefreshAbsolute) != m.Absolute {
		t.Errorf("device client preset %q, idle %v, absolute %v; want mobile's", tv.RefreshPreset, tv.RefreshIdle, tv.RefreshAbsolute)
	}
	set := registry.Client{ID: "tv", GrantTypes: []string{grants.DeviceCodeType, grants.RefreshTokenType}, RefreshPreset: "spa"}
	if err := registry.CheckClient(&set); err != nil || set.RefreshPreset != "spa" {
		t.Errorf("a preset the client sets is kept: %q, %v", set.RefreshPreset, err)
	}
}
