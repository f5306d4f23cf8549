package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/oauth2"
)

// maxAdminResponse bounds what the CLI reads from one API response.
const maxAdminResponse = 16 << 20

// adminAPI calls the admin REST API with an admin access token.
type adminAPI struct {
	base     string // the server's base URL, no trailing slash
	tokenURL string
	http     *http.Client
}

// apiResponse is a successful answer.
type apiResponse struct {
	status int
	header http.Header
	body   []byte
}

// problem is an RFC 9457 problem details document.
type problem struct {
	Title  string `json:"title"`
	Detail string `json:"detail"`
	Status int    `json:"status"`
	Errors []struct {
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"errors"`
}

// call sends one request; in, when not nil, is sent as JSON. Any answer other
// than 2xx, and any failure to get one, is an error of one line.
func (a *adminAPI) call(ctx context.Context, method, path string, query url.Values, in any, header http.Header) (*apiResponse, error) {
	u := a.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := a.http.Do(req)
	if err != nil {
		return nil, a.transportError(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, maxAdminResponse))
	if err != nil {
		return nil, fmt.Errorf("reading the answer of %s %s: %w", method, path, err)
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return nil, apiError(res, raw)
	}
	return &apiResponse{status: res.StatusCode, header: res.Header, body: raw}, nil
}

// getJSON GETs path and decodes the answer into out.
func (a *adminAPI) getJSON(ctx context.Context, path string, query url.Values, out any) (*apiResponse, error) {
	res, err := a.call(ctx, http.MethodGet, path, query, nil, nil)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(res.body, out); err != nil {
		return nil, fmt.Errorf("GET %s: the answer is not the expected JSON: %v", path, err)
	}
	return res, nil
}

// page is one page of a list.
type page struct {
	Items []json.RawMessage `json:"items"`
	Next  string            `json:"next,omitempty"`
}

// list follows next from page to page until the end, or until limit items (0: no limit).
func (a *adminAPI) list(ctx context.Context, path string, query url.Values, limit int) (page, error) {
	var all page
	q := url.Values{}
	for k, v := range query {
		q[k] = v
	}
	for {
		size := 500 // the API's largest page
		if limit > 0 && limit-len(all.Items) < size {
			size = limit - len(all.Items)
		}
		q.Set("limit", strconv.Itoa(size))
		var p page
		if _, err := a.getJSON(ctx, path, q, &p); err != nil {
			return page{}, err
		}
		all.Items = append(all.Items, p.Items...)
		all.Next = p.Next
		if p.Next == "" || (limit > 0 && len(all.Items) >= limit) {
			return all, nil
		}
		if p.Next == q.Get("after") {
			return page{}, fmt.Errorf("GET %s: the API returned the same page twice", path)
		}
		q.Set("after", p.Next)
	}
}

// transportError explains a request that got no answer from the API: the token
// endpoint refused the credentials, or the server is not there.
func (a *adminAPI) transportError(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		switch {
		case re.ErrorCode == "invalid_client" || status == http.StatusUnauthorized:
			return errors.New("the token endpoint refused the admin client's credentials (invalid_client): check the client ID and secret, and --realm")
		case status == http.StatusNotFound:
			return fmt.Errorf("no token endpoint at %s: check --server and --realm", a.tokenURL)
		case re.ErrorCode != "":
			msg := "the token endpoint refused the admin client: " + re.ErrorCode
			if re.ErrorDescription != "" {
				msg += ": " + re.ErrorDescription
			}
			return errors.New(msg)
		default:
			return fmt.Errorf("getting an admin token from %s failed with HTTP %d", a.tokenURL, status)
		}
	}
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("cannot reach Latchkey at %s: connection refused (is it running? see --server)", a.base)
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return fmt.Errorf("cannot reach Latchkey at %s: timed out", a.base)
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return fmt.Errorf("cannot reach Latchkey at %s: unknown host %s", a.base, dnsErr.Name)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return fmt.Errorf("cannot reach Latchkey at %s: %v", a.base, err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// apiError turns a refusal into one line: the problem's detail (or title) and
// field errors, or for 401/403 why the token was refused.
func apiError(res *http.Response, raw []byte) error {
	var p problem
	_ = json.Unmarshal(raw, &p)
	msg := p.Detail
	if msg == "" {
		msg = p.Title
	}
	for _, fe := range p.Errors {
		msg += "; " + fe.Field + ": " + fe.Message
	}
	msg = strings.TrimPrefix(msg, "; ")
	switch res.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden:
		code, desc, scope := bearerChallenge(res.Header.Get("WWW-Authenticate"))
		why := code
		switch {
		case code == "":
			why = msg
		case scope != "":
			why += " (needs " + scope + ")"
		case desc != "":
			why += ": " + desc
		case msg != "":
			why += ": " + msg
		}
		if why == "" {
			why = http.StatusText(res.StatusCode)
		}
		return &refusal{Status: res.StatusCode, msg: fmt.Sprintf("admin API refused the token (%d): %s", res.StatusCode, why)}
	}
	if msg == "" {
		msg = http.StatusText(res.StatusCode)
	}
	return &refusal{Status: res.StatusCode, msg: fmt.Sprintf("%s (%d)", msg, res.StatusCode)}
}

// refusal is an answer of the API other than 2xx, as one line.
type refusal struct {
	Status int
	msg    string
}

func (r *refusal) Error() string { return r.msg }

// isStatus reports whether err is the API's refusal with this status.
func isStatus(err error, status int) bool {
	var r *refusal
	return errors.As(err, &r) && r.Status == status
}

// bearerChallenge reads error, error_description and scope from a Bearer
// WWW-Authenticate challenge (RFC 6750 §3).
func bearerChallenge(h string) (code, desc, scope string) {
	_, params, ok := strings.Cut(h, " ")
	if !ok {
		return "", "", ""
	}
	for params != "" {
		params = strings.TrimLeft(params, " ,")
		name, rest, ok := strings.Cut(params, "=")
		if !ok {
			break
		}
		var value string
		if strings.HasPrefix(rest, `"`) {
			end := strings.IndexByte(rest[1:], '"')
			if end < 0 {
				break
			}
			value, params = rest[1:1+end], rest[2+end:]
		} else {
			value, params, _ = strings.Cut(rest, ",")
		}
		switch strings.TrimSpace(name) {
		case "error":
			code = value
		case "error_description":
			desc = value
		case "scope":
			scope = value
		}
	}
	return code, desc, scope
}

// realmPath is /admin/realms/REALM followed by the escaped segments.
func realmPath(realm string, segments ...string) string {
	p := "/admin/realms/" + url.PathEscape(realm)
	for _, s := range segments {
		p += "/" + url.PathEscape(s)
	}
	return p
}
