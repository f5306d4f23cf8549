package e2e

import (
	"slices"
	"strings"
	"testing"
)

// Realms: list and page, get with an ETag, create-or-replace with If-Match,
// delete, logout-all; problem details on bad input.
func TestAdmin_Realms(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s := startAdmin(t, db)
		a := root(t, s)

		// Pages of one: acme, master, other; next absent on the last.
		var names []string
		after := ""
		for range 5 {
			p := "/admin/realms?limit=1"
			if after != "" {
				p += "&after=" + after
			}
			r := want(t, "list realms", a.do("GET", p, nil), 200)
			for _, it := range items(r) {
				names = append(names, it["name"].(string))
			}
			if after = r.str("next"); after == "" {
				break
			}
		}
		if !slices.Equal(names, []string{"acme", "master", "other"}) {
			t.Fatalf("realms paged = %v", names)
		}
		if r := want(t, "list all", a.do("GET", "/admin/realms", nil), 200); len(items(r)) != 3 || r.str("next") != "" {
			t.Fatalf("one page of all: %s", r.raw)
		}
		for _, bad := range []string{"0", "501", "ten", "-1"} {
			r := wantProblem(t, "limit="+bad, a.bad("GET", "/admin/realms?limit="+bad, nil), 400)
			if !slices.Equal(fieldErrors(r), []string{"limit"}) {
				t.Fatalf("limit=%s: %s", bad, r.raw)
			}
		}

		// Get, then replace only if unchanged.
		r := want(t, "get acme", a.do("GET", "/admin/realms/acme", nil), 200)
		tag := r.header.Get("ETag")
		if !strings.HasPrefix(tag, `"`) || r.str("name") != "acme" || r.str("signing_alg") != "ES256" {
			t.Fatalf("get acme: ETag %q, %s", tag, r.raw)
		}
		if again := a.do("GET", "/admin/realms/acme", nil); again.header.Get("ETag") != tag {
			t.Fatal("the ETag of an unchanged realm moved")
		}
		body := map[string]any{"display_name": "ACME Corp", "access_token_ttl": "10m"}
		wantProblem(t, "If-Match stale", a.do("PUT", "/admin/realms/acme", body, "If-Match", `"stale"`), 412)
		r = want(t, "If-Match current", a.do("PUT", "/admin/realms/acme", body, "If-Match", tag), 200)
		if r.str("display_name") != "ACME Corp" || r.str("access_token_ttl") != "10m0s" || r.header.Get("ETag") == tag {
			t.Fatalf("replaced: ETag %q, %s", r.header.Get("ETag"), r.raw)
		}
		wantProblem(t, "If-Match of before the replace", a.do("PUT", "/admin/realms/acme", body, "If-Match", tag), 412)
		if r := a.do("GET", "/admin/realms/acme", nil); r.str("display_name") != "ACME Corp" {
			t.Fatalf("get after replace: %s", r.raw)
		}

		// Create, replace, delete.
		wantProblem(t, "If-Match on a realm that does not exist", a.do("PUT", "/admin/realms/newco", map[string]any{}, "If-Match", "*"), 412)
		r = want(t, "create", a.do("PUT", "/admin/realms/newco", map[string]any{"display_name": "New Co", "signing_alg": "EdDSA"}), 201)
		if r.str("name") != "newco" || r.header.Get("ETag") == "" {
			t.Fatalf("created: %s", r.raw)
		}
		want(t, "replace", a.do("PUT", "/admin/realms/newco", map[string]any{"name": "newco", "display_name": "NewCo"}), 200)
		want(t, "delete", a.do("DELETE", "/admin/realms/newco", nil), 204)
		wantProblem(t, "get deleted", a.do("GET", "/admin/realms/newco", nil), 404)
		wantProblem(t, "delete again", a.do("DELETE", "/admin/realms/newco", nil), 404)
		wantProblem(t, "delete master", a.do("DELETE", "/admin/realms/master", nil), 409)

		// Bad bodies: problem details naming the field.
		for _, c := range []struct {
			name, body, field string
		}{
			{"unknown field", `{"display_name":"x","colour":"blue"}`, "colour"},
			{"wrong type", `{"display_name":42}`, "display_name"},
			{"bad alg", `{"signing_alg":"HS256"}`, "signing_alg"},
			{"name not the path's", `{"name":"acme2"}`, "name"},
			{"long ttl", `{"access_token_ttl":"2h"}`, "access_token_ttl"},
		} {
			r := wantProblem(t, c.name, a.bad("PUT", "/admin/realms/acme", c.body), 400)
			if !slices.Contains(fieldErrors(r), c.field) {
				t.Errorf("%s: errors %v; want field %q: %s", c.name, fieldErrors(r), c.field, r.raw)
			}
		}
		wantProblem(t, "not JSON", a.bad("PUT", "/admin/realms/acme", `{"display_name":`), 400)
		wantProblem(t, "no body", a.bad("PUT", "/admin/realms/acme", nil), 400)
		wantProblem(t, "over 1 MiB", a.bad("PUT", "/admin/realms/acme", `{"display_name":"`+strings.Repeat("x", 1<<20)+`"}`), 413)
		wantProblem(t, "unknown realm", a.do("GET", "/admin/realms/nope", nil), 404)

		// logout-all ends the realm's sessions and refresh families.
		b := newBrowser(t)
		rt := s.redeem(t, webBasic, b.code(s, "web")).str("refresh_token")
		r = want(t, "logout-all", a.do("POST", "/admin/realms/acme/logout-all", nil), 200)
		if r.body["sessions"].(float64) < 1 || r.body["families"].(float64) < 1 {
			t.Fatalf("logout-all: %s", r.raw)
		}
		if r := s.refresh(t, webBasic, rt); !r.invalidGrant() {
			t.Fatalf("refresh after logout-all: %d %s", r.status, r.raw)
		}
		if p := b.get(s.authURL("web")); p.location != nil {
			t.Fatal("the browser session outlived logout-all")
		}

		// Each change is an audit event naming the admin client.
		r = want(t, "events", a.do("GET", "/admin/realms/newco/events", nil), 404)
		r = want(t, "events", a.do("GET", "/admin/realms/acme/events?type=admin.realm.updated", nil), 200)
		ev := items(r)
		if len(ev) != 1 || ev[0]["details"].(map[string]any)["admin_client"] != "root" || ev[0]["details"].(map[string]any)["admin_realm"] != "master" {
			t.Fatalf("admin.realm.updated events: %s", r.raw)
		}
		if r := a.do("GET", "/admin/realms/acme/events?type=admin.realm.logout_all", nil); len(items(r)) != 1 {
			t.Fatalf("logout-all event: %s", r.raw)
		}
	})
}
