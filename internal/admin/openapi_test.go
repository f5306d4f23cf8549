package admin

import (
	"slices"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// The served document is a valid OpenAPI 3.1 document (by the validator the
// e2e tests check requests and responses with), and it lists exactly the routes
// the API serves.
func TestOpenAPIDocumentListsEveryRoute(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPI())
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi = %s; want 3.1", doc.OpenAPI)
	}
	var documented []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			if path != "/admin/openapi.json" {
				documented = append(documented, method+" "+path)
			}
		}
	}
	var served []string
	for _, rt := range New(Config{}).routes() {
		served = append(served, rt.pattern)
	}
	slices.Sort(documented)
	slices.Sort(served)
	for _, p := range served {
		if !slices.Contains(documented, p) {
			t.Errorf("route %s is not in openapi.json", p)
		}
	}
	for _, p := range documented {
		if !slices.Contains(served, p) {
			t.Errorf("openapi.json documents %s, which is not served", p)
		}
	}
}
