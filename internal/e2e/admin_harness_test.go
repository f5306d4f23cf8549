package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/latchkey/latchkey/internal/admin"
)

// Admin clients of the admin tests' seed (adminSeed): in realm master, root
// (read-write), reader (read only), brief (read-write, 1 s tokens) and plain (no
// admin scope); in acme, acme-admin (read-write, acme only); in realm other,
// other-admin.
const (
	rootSecret   = "root-secret-0123456789abcdefghijklmnop"
	readerSecret = "reader-secret-0123456789abcdefghijklmn"
	briefSecret  = "brief-secret-0123456789abcdefghijklmno"
	plainSecret  = "plain-secret-0123456789abcdefghijklmno"
	acmeAdminSec = "acme-admin-secret-0123456789abcdefghij"
	otherAdmSec  = "other-admin-secret-0123456789abcdefghi"
)

// adminSeed is defaultSeed with the admin clients above.
func adminSeed(t testing.TB) string {
	return seedWith(t, "    users:\n", `      - id: acme-admin
        secret: `+acmeAdminSec+`
        grant_types: [client_credentials]
        scopes: [latchkey:admin, latchkey:admin:read]
    users:
`) + `  - name: master
    clients:
      - id: root
        secret: ` + rootSecret + `
        grant_types: [client_credentials]
        scopes: [latchkey:admin, latchkey:admin:read]
      - id: reader
        secret: ` + readerSecret + `
        grant_types: [client_credentials]
        scopes: [latchkey:admin:read]
      - id: brief
        secret: ` + briefSecret + `
        grant_types: [client_credentials]
        scopes: [latchkey:admin]
        access_token_ttl: 1s
      - id: plain
        secret: ` + plainSecret + `
        grant_types: [client_credentials]
        scopes: [orders:read]
  - name: other
    clients:
      - id: other-admin
        secret: ` + otherAdmSec + `
        grant_types: [client_credentials]
        scopes: [latchkey:admin, latchkey:admin:read]
`
}

// startAdmin starts a server with adminSeed on db.
func startAdmin(t *testing.T, db string) *server {
	return start(t, options{db: db, seed: adminSeed(t)})
}

// clientToken gets an access token by the client-credentials grant.
func clientToken(t testing.TB, s *server, realm, id, secret, scope string) string {
	t.Helper()
	r := post(t, s.issuer(realm)+"/protocol/openid-connect/token", id+":"+secret, form("grant_type", "client_credentials", "scope", scope))
	if r.status != 200 || r.str("access_token") == "" {
		t.Fatalf("client credentials of %s/%s: %d %s", realm, id, r.status, r.raw)
	}
	return r.str("access_token")
}

// adminAs is an admin API caller holding a bearer token; every request and
// response goes through the OpenAPI check.
type adminAs struct {
	t     *testing.T
	s     *server
	token string
	http  *http.Client
}

func asAdmin(t *testing.T, s *server, token string) *adminAs {
	return &adminAs{t: t, s: s, token: token, http: &http.Client{Timeout: 60 * time.Second, Transport: &openAPICheck{t: t, base: client.Transport}}}
}

// root is the master realm's read-write admin.
func root(t *testing.T, s *server) *adminAs {
	return asAdmin(t, s, clientToken(t, s, "master", "root", rootSecret, "latchkey:admin"))
}

// do sends a request; body is nil, a string (sent as it is) or a value (as JSON);
// hdr are header name/value pairs.
func (a *adminAs) do(method, path string, body any, hdr ...string) response {
	a.t.Helper()
	return a.send(context.Background(), method, path, body, hdr...)
}

// bad sends a request the OpenAPI document does not allow (a bad body, limit or
// field), to see the API refuse it: only the response is checked.
func (a *adminAs) bad(method, path string, body any, hdr ...string) response {
	a.t.Helper()
	return a.send(context.WithValue(context.Background(), offDocument{}, true), method, path, body, hdr...)
}

type offDocument struct{}

func (a *adminAs) send(ctx context.Context, method, path string, body any, hdr ...string) response {
	a.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			a.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.s.URL+path, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := a.http.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := response{status: res.StatusCode, header: res.Header, raw: string(raw)}
	json.Unmarshal(raw, &r.body)
	return r
}

// want fails the test unless r has the status.
func want(t *testing.T, what string, r response, status int) response {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: %d %s; want %d", what, r.status, r.raw, status)
	}
	return r
}

// wantProblem fails the test unless r is an RFC 9457 problem with the status.
func wantProblem(t *testing.T, what string, r response, status int) response {
	t.Helper()
	want(t, what, r, status)
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("%s: Content-Type %q; want application/problem+json", what, ct)
	}
	if s, _ := r.body["status"].(float64); int(s) != status || r.str("type") == "" || r.str("title") == "" {
		t.Fatalf("%s: not a problem with status %d: %s", what, status, r.raw)
	}
	return r
}

// fieldErrors are the field names of a validation problem's errors.
func fieldErrors(r response) []string {
	var fields []string
	errs, _ := r.body["errors"].([]any)
	for _, e := range errs {
		m, _ := e.(map[string]any)
		f, _ := m["field"].(string)
		fields = append(fields, f)
	}
	return fields
}

// items are a page's items.
func items(r response) []map[string]any {
	var out []map[string]any
	list, _ := r.body["items"].([]any)
	for _, it := range list {
		m, _ := it.(map[string]any)
		out = append(out, m)
	}
	return out
}

// The OpenAPI check: every admin request and response of the tests is validated
// against internal/admin/openapi.json, and each operation the tests reach is
// recorded; after all the package's tests, TestMain fails the run if some
// documented operation was never exercised.
var (
	openAPIOnce   sync.Once
	openAPIRouter routers.Router
	openAPIDoc    *openapi3.T
	openAPIErr    error

	opsMu  sync.Mutex
	opsHit = map[string]bool{}
)

func openAPI() (routers.Router, error) {
	openAPIOnce.Do(func() {
		if openAPIDoc, openAPIErr = openapi3.NewLoader().LoadFromData(admin.OpenAPI()); openAPIErr != nil {
			return
		}
		if openAPIErr = openAPIDoc.Validate(context.Background()); openAPIErr != nil {
			return
		}
		openAPIDoc.Servers = nil // match paths on any host
		openAPIRouter, openAPIErr = legacy.NewRouter(openAPIDoc)
	})
	return openAPIRouter, openAPIErr
}

// openAPICheck is an http.RoundTripper that fails the test on any request or
// response that does not match the document.
type openAPICheck struct {
	t    *testing.T
	base http.RoundTripper
}

func (c *openAPICheck) RoundTrip(req *http.Request) (*http.Response, error) {
	router, err := openAPI()
	if err != nil {
		c.t.Errorf("openapi.json: %v", err)
		return c.base.RoundTrip(req)
	}
	route, params, err := router.FindRoute(req)
	if err != nil {
		c.t.Errorf("%s %s is not in openapi.json: %v", req.Method, req.URL.Path, err)
		return c.base.RoundTrip(req)
	}
	opsMu.Lock()
	opsHit[route.Operation.OperationID] = true
	opsMu.Unlock()

	var reqBody []byte
	if req.Body != nil {
		reqBody, _ = io.ReadAll(req.Body)
		req.Body.Close()
	}
	reset := func() {
		if reqBody != nil {
			req.Body = io.NopCloser(bytes.NewReader(reqBody))
		}
	}
	reset()
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
		IncludeResponseStatus: true, MultiError: true, SkipSettingDefaults: true}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	if off, _ := req.Context().Value(offDocument{}).(bool); !off {
		if err := openapi3filter.ValidateRequest(req.Context(), in); err != nil {
			c.t.Errorf("request %s %s does not match openapi.json: %v\n%s", req.Method, req.URL.Path, err, reqBody)
		}
	}
	reset()
	res, err := c.base.RoundTrip(req)
	if err != nil {
		return res, err
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	res.Body = io.NopCloser(bytes.NewReader(body))
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: res.StatusCode,
		Header: res.Header, Body: io.NopCloser(bytes.NewReader(body)), Options: opts}
	if err := openapi3filter.ValidateResponse(req.Context(), out); err != nil {
		c.t.Errorf("response %d to %s %s does not match openapi.json: %v\n%s", res.StatusCode, req.Method, req.URL.Path, err, body)
	}
	return res, nil
}

// checkAdminCoverage says which documented operations no test exercised, after
// a run of the whole package (not with -run, -skip or -short).
func checkAdminCoverage() error {
	for _, f := range []string{"test.run", "test.skip"} {
		if fl := flag.Lookup(f); fl != nil && fl.Value.String() != "" {
			return nil
		}
	}
	if testing.Short() || openAPIDoc == nil {
		return nil
	}
	var missing []string
	for _, item := range openAPIDoc.Paths.Map() {
		for _, op := range item.Operations() {
			if !opsHit[op.OperationID] {
				missing = append(missing, op.OperationID)
			}
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("admin API operations in openapi.json that no test exercised: %s", strings.Join(missing, ", "))
	}
	return nil
}
