package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// newHTTPClient returns the client every worker shares: it keeps one idle
// keep-alive connection per worker, so a closed loop reuses its connections
// instead of opening one per request.
func newHTTPClient(connections int, timeout time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = connections
	tr.MaxIdleConnsPerHost = connections
	tr.DisableCompression = true
	return &http.Client{Transport: tr, Timeout: timeout}
}

// endpoint is a URL and the client credentials presented to it.
type endpoint struct {
	url          string
	clientID     string
	clientSecret string
	post         bool // client_secret_post instead of client_secret_basic
}

// failure is why a request did not get the answer it wanted; kind is the key it is
// counted under in the report.
type failure struct {
	kind   string
	status int
	detail string
}

func (f *failure) Error() string {
	if f.status != 0 {
		return fmt.Sprintf("HTTP %d %s", f.status, f.detail)
	}
	return f.detail
}

// postForm POSTs form to e with the client's credentials and, on 200, decodes the
// JSON answer into out (when out is not nil). Any other outcome is a *failure.
func postForm(ctx context.Context, hc *http.Client, e endpoint, form url.Values, out any) *failure {
	if e.post {
		form.Set("client_id", e.clientID)
		form.Set("client_secret", e.clientSecret)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, strings.NewReader(form.Encode()))
	if err != nil {
		return &failure{kind: "transport", detail: err.Error()}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "latchkey-bench")
	if !e.post {
		// RFC 6749 §2.3.1: both parts are form-encoded before Basic encoding.
		req.SetBasicAuth(url.QueryEscape(e.clientID), url.QueryEscape(e.clientSecret))
	}
	res, err := hc.Do(req)
	if err != nil {
		return transportFailure(err)
	}
	defer func() {
		io.Copy(io.Discard, res.Body) // drain, so the connection is reused
		res.Body.Close()
	}()
	if res.StatusCode != http.StatusOK {
		return statusFailure(res)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(res.Body).Decode(out); err != nil {
		return &failure{kind: "bad_response", detail: "undecodable JSON: " + err.Error()}
	}
	return nil
}

func transportFailure(err error) *failure {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return &failure{kind: "timeout", detail: err.Error()}
	}
	return &failure{kind: "transport", detail: err.Error()}
}

// statusFailure describes a non-200 answer, with the RFC 6749 §5.2 error code
// when the body carries one.
func statusFailure(res *http.Response) *failure {
	f := &failure{kind: fmt.Sprintf("http_%dxx", res.StatusCode/100), status: res.StatusCode}
	var body struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if json.NewDecoder(io.LimitReader(res.Body, 4096)).Decode(&body) == nil && body.Error != "" {
		f.detail = strings.TrimSpace(body.Error + " " + body.Description)
	}
	return f
}

// tokenResponse is the part of a token endpoint answer the scenarios look at.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	ExpiresIn    int64  `json:"expires_in"`
}

// introspection is the part of an RFC 7662 answer the scenarios look at.
type introspection struct {
	Active bool `json:"active"`
}

// discover reads the three endpoints from the issuer's discovery document
// (OpenID Connect Discovery 1.0 §4, RFC 8414 §3).
func discover(ctx context.Context, hc *http.Client, issuer string) (token, introspect, revoke string, err error) {
	u := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", "", "", fmt.Errorf("--issuer %q: %w", issuer, err)
	}
	res, err := hc.Do(req)
	if err != nil {
		return "", "", "", fmt.Errorf("cannot reach the server: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return "", "", "", fmt.Errorf("%s: HTTP %d", u, res.StatusCode)
	}
	var doc struct {
		Token      string `json:"token_endpoint"`
		Introspect string `json:"introspection_endpoint"`
		Revoke     string `json:"revocation_endpoint"`
	}
	if err := json.NewDecoder(res.Body).Decode(&doc); err != nil {
		return "", "", "", fmt.Errorf("%s: %w", u, err)
	}
	return doc.Token, doc.Introspect, doc.Revoke, nil
}

// probe checks that something answers HTTP at u; any status will do.
func probe(ctx context.Context, hc *http.Client, u string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("%q: %w", u, err)
	}
	res, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the server: %w", err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return nil
}
