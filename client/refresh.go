package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
)

// maxBody bounds what is read of a response.
const maxBody = 1 << 20

// exchange redeems rt at the token endpoint. An attempt whose answer is lost
// (network error, timeout, 5xx, an unreadable 200) is retried with the same rt
// while the retry budget since the first such attempt lasts; attempts that
// certainly never reached the server (no request written) are retried within the
// same budget but put nothing in doubt. When an answer was lost and the budget
// ends without one, the error wraps ErrAnswerLost.
func (s *Source) exchange(ctx context.Context, rt string) (*oauth2.Token, error) {
	s.mu.Lock()
	doubt := s.doubt
	s.mu.Unlock()

	deadline := s.now().Add(s.retryBudget)
	if !doubt.IsZero() {
		deadline = doubt.Add(s.retryBudget)
	}
	if !doubt.IsZero() && !s.now().Before(deadline) {
		return nil, ErrAnswerLost
	}
	var last error
	for attempt := 0; ; attempt++ {
		sent := s.now()
		tok, delivered, err := s.post(ctx, rt)
		if err == nil {
			// The answer was made after the first delivered send: its expires_in
			// counts from then at the latest (a retry gets the same answer).
			issued := sent
			if !doubt.IsZero() {
				issued = doubt
			}
			if tok.ExpiresIn > 0 {
				tok.Expiry = issued.Add(time.Duration(tok.ExpiresIn) * time.Second)
			}
			return tok, nil
		}
		last = err
		if !retryable(err) {
			return nil, err
		}
		if delivered && doubt.IsZero() {
			doubt = sent
			if d := sent.Add(s.retryBudget); d.Before(deadline) {
				deadline = d
			}
			s.set(func() { s.doubt = doubt })
		}
		wait := backoff(attempt)
		if !s.now().Add(wait).Before(deadline) {
			break
		}
		time.Sleep(wait) // this goroutine is the flight's own; callers wait on their contexts
	}
	if !doubt.IsZero() {
		return nil, fmt.Errorf("%w (last attempt: %w)", ErrAnswerLost, last)
	}
	return nil, last
}

// backoff before retry n+1: 100 ms, doubling, at most 2 s.
func backoff(n int) time.Duration {
	return min(100*time.Millisecond<<min(n, 5), 2*time.Second)
}

// retryable: the answer may have been lost on the way; a definite refusal (4xx
// with an error body) is not.
func retryable(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.StatusCode >= 500
	}
	return true
}

// lostAnswer is a 200 that could not be read: the server acted on it.
type lostAnswer struct{ err error }

func (l lostAnswer) Error() string { return "client: token response unreadable: " + l.err.Error() }
func (l lostAnswer) Unwrap() error { return l.err }

// attemptTimeout bounds one request. Only when a retry starts matters for the
// window; waiting longer for an answer never hurts.
const attemptTimeout = 30 * time.Second

// post makes one refresh_token grant request (RFC 6749 §6). delivered is false
// only when the request certainly never left.
func (s *Source) post(ctx context.Context, rt string) (tok *oauth2.Token, delivered bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	// Without a connection attempt the transport is not net/http's and tells us
	// nothing: assume the request was delivered.
	var dialed, wrote atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GetConn: func(string) { dialed.Store(true) },
		WroteRequest: func(i httptrace.WroteRequestInfo) {
			if i.Err == nil {
				wrote.Store(true)
			}
		},
	})
	defer func() { delivered = !dialed.Load() || wrote.Load() }()

	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
	if s.clientSecret == "" {
		form.Set("client_id", s.clientID)
	}
	req, err := http.NewRequestWithContext(ctx, "POST", s.tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, false, fmt.Errorf("client: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if s.clientSecret != "" {
		// RFC 6749 §2.3.1: both form-urlencoded before they go into Basic.
		req.SetBasicAuth(url.QueryEscape(s.clientID), url.QueryEscape(s.clientSecret))
	}
	res, err := s.http.Do(req)
	if err != nil {
		return nil, false, fmt.Errorf("client: refresh: %w", err) // a *url.Error names the URL, never the form
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxBody))
	if err != nil {
		return nil, false, fmt.Errorf("client: refresh: reading the answer: %w", err)
	}
	if res.StatusCode != http.StatusOK {
		return nil, false, errorOf(res, body)
	}
	var r struct {
		AccessToken  string `json:"access_token"`
		TokenType    string `json:"token_type"`
		ExpiresIn    int64  `json:"expires_in"`
		RefreshToken string `json:"refresh_token"`
		Scope        string `json:"scope"`
		IDToken      string `json:"id_token"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, false, lostAnswer{err}
	}
	if r.AccessToken == "" {
		return nil, false, lostAnswer{errors.New("no access_token")}
	}
	tok = &oauth2.Token{AccessToken: r.AccessToken, TokenType: r.TokenType, RefreshToken: r.RefreshToken, ExpiresIn: r.ExpiresIn}
	extra := map[string]any{}
	if r.IDToken != "" {
		extra["id_token"] = r.IDToken
	}
	if r.Scope != "" {
		extra["scope"] = r.Scope
	}
	if len(extra) > 0 {
		tok = tok.WithExtra(extra)
	}
	return tok, false, nil
}

// errorOf reads an error response (RFC 6749 §5.2); without a JSON body the code
// is empty and only the status says what happened.
func errorOf(res *http.Response, body []byte) error {
	e := &Error{StatusCode: res.StatusCode}
	var r struct {
		Code        string `json:"error"`
		Description string `json:"error_description"`
		URI         string `json:"error_uri"`
	}
	if mt, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type")); mt == "application/json" && json.Unmarshal(body, &r) == nil {
		e.Code, e.Description, e.URI = r.Code, r.Description, r.URI
	}
	if e.Code == "" {
		e.Code = fmt.Sprintf("http_%d", res.StatusCode)
	}
	return e
}

// discover reads the token endpoint from the issuer's OpenID Connect discovery
// document, whose issuer must be the one asked for (OIDC Discovery §4.3).
func discover(ctx context.Context, hc *http.Client, issuer string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", strings.TrimSuffix(issuer, "/")+"/.well-known/openid-configuration", nil)
	if err != nil {
		return "", fmt.Errorf("client: discovery: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	res, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("client: discovery: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return "", fmt.Errorf("client: discovery: %s", res.Status)
	}
	var doc struct {
		Issuer        string `json:"issuer"`
		TokenEndpoint string `json:"token_endpoint"`
	}
	if err := json.NewDecoder(io.LimitReader(res.Body, maxBody)).Decode(&doc); err != nil {
		return "", fmt.Errorf("client: discovery: %w", err)
	}
	if doc.Issuer != issuer {
		return "", fmt.Errorf("client: discovery: the document's issuer %q is not %q", doc.Issuer, issuer)
	}
	if doc.TokenEndpoint == "" {
		return "", errors.New("client: discovery: no token_endpoint")
	}
	return doc.TokenEndpoint, nil
}
