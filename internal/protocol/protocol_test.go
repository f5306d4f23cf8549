package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"net/url"
	"reflect"
	"testing"
	"time"
)

func TestWriteJSON_BodyStatusAndHeaders(t *testing.T) {
	for _, c := range []struct {
		name       string
		err        *Error
		status     int
		body       string
		authn      string
		retryAfter string
	}{
		{"invalid_request is 400", New(InvalidRequest, "grant_type is required"), 400,
			`{"error":"invalid_request","error_description":"grant_type is required"}`, "", ""},
		{"invalid_client without Basic has no challenge", New(InvalidClient, "bad"), 401,
			`{"error":"invalid_client","error_description":"bad"}`, "", ""},
		{"invalid_client after Basic challenges Basic", &Error{Code: InvalidClient, Description: "bad", Status: 401, Basic: true}, 401,
			`{"error":"invalid_client","error_description":"bad"}`, `Basic realm="latchkey", charset="UTF-8"`, ""},
		{"a throttled client gets 429 and Retry-After rounded up, no challenge",
			&Error{Code: InvalidClient, Description: "wait", Status: 429, Basic: true, RetryAfter: 1500 * time.Millisecond}, 429,
			`{"error":"invalid_client","error_description":"wait"}`, "", "2"},
		{"temporarily_unavailable is 503", Wrap(TemporarilyUnavailable, "later", errors.New("db: secret cause")), 503,
			`{"error":"temporarily_unavailable","error_description":"later"}`, "", ""},
		{"server_error is 500", New(ServerError, "internal error"), 500,
			`{"error":"server_error","error_description":"internal error"}`, "", ""},
		{"no description, no error_description", New(InvalidGrant, ""), 400, `{"error":"invalid_grant"}`, "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			c.err.WriteJSON(rec)
			if rec.Code != c.status {
				t.Errorf("status %d, want %d", rec.Code, c.status)
			}
			if got := rec.Body.String(); got != c.body+"\n" {
				t.Errorf("body %s, want %s", got, c.body)
			}
			h := rec.Header()
			if h.Get("Content-Type") != "application/json" || h.Get("Cache-Control") != "no-store" || h.Get("Pragma") != "no-cache" {
				t.Errorf("headers %v", h)
			}
			if got := h.Get("WWW-Authenticate"); got != c.authn {
				t.Errorf("WWW-Authenticate %q, want %q", got, c.authn)
			}
			if got := h.Get("Retry-After"); got != c.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, c.retryAfter)
			}
		})
	}
}

func TestRedirectParams_ErrorAndDescriptionOnly(t *testing.T) {
	for _, c := range []struct {
		err  *Error
		want url.Values
	}{
		{New(AccessDenied, "the user denied the request"),
			url.Values{"error": {"access_denied"}, "error_description": {"the user denied the request"}}},
		{Wrap(LoginRequired, "the user must sign in", errors.New("cause never sent")),
			url.Values{"error": {"login_required"}, "error_description": {"the user must sign in"}}},
		{New(InvalidScope, ""), url.Values{"error": {"invalid_scope"}}},
	} {
		if got := c.err.RedirectParams(); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%v: %v, want %v", c.err, got, c.want)
		}
	}
}

func TestWriteBearer_Challenge(t *testing.T) {
	const realm = "https://as.example/realms/acme"
	for _, c := range []struct {
		name      string
		err       *Error
		status    int
		challenge string
		body      map[string]string
	}{
		{"no token: a bare challenge (RFC 6750 §3.1)", NoToken(), 401, `Bearer realm="` + realm + `"`, map[string]string{}},
		{"invalid_token is 401", New(InvalidToken, "the access token is not valid"), 401,
			`Bearer realm="` + realm + `", error="invalid_token", error_description="the access token is not valid"`,
			map[string]string{"error": "invalid_token", "error_description": "the access token is not valid"}},
		{"insufficient_scope is 403", New(InsufficientScope, "the token lacks the openid scope"), 403,
			`Bearer realm="` + realm + `", error="insufficient_scope", error_description="the token lacks the openid scope"`,
			map[string]string{"error": "insufficient_scope", "error_description": "the token lacks the openid scope"}},
		{"invalid_request is 400", New(InvalidRequest, "access tokens must not be sent in the URL"), 400,
			`Bearer realm="` + realm + `", error="invalid_request", error_description="access tokens must not be sent in the URL"`,
			map[string]string{"error": "invalid_request", "error_description": "access tokens must not be sent in the URL"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			c.err.WriteBearer(rec, realm)
			if rec.Code != c.status {
				t.Errorf("status %d, want %d", rec.Code, c.status)
			}
			if got := rec.Header().Get("WWW-Authenticate"); got != c.challenge {
				t.Errorf("WWW-Authenticate %q, want %q", got, c.challenge)
			}
			if rec.Header().Get("Content-Type") != "application/json" || rec.Header().Get("Cache-Control") != "no-store" {
				t.Errorf("headers %v", rec.Header())
			}
			var body map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || !reflect.DeepEqual(body, c.body) {
				t.Errorf("body %s (%v), want %v", rec.Body, err, c.body)
			}
		})
	}
}

func TestStatusOf(t *testing.T) {
	for code, want := range map[Code]int{
		InvalidRequest: 400, InvalidGrant: 400, UnauthorizedClient: 400, UnsupportedGrantType: 400, InvalidScope: 400,
		InvalidTarget: 400, InvalidClient: 401, InvalidToken: 401, InsufficientScope: 403, NotFound: 404,
		ServerError: 500, TemporarilyUnavailable: 503,
	} {
		if got := New(code, "").Status; got != want {
			t.Errorf("%s: %d, want %d", code, got, want)
		}
	}
}

func TestIs_MatchesByCodeThroughWrapping(t *testing.T) {
	err := fmt.Errorf("token: %w", Wrap(InvalidGrant, "x", errors.New("cause")))
	if !errors.Is(err, New(InvalidGrant, "")) {
		t.Error("errors.Is does not match invalid_grant")
	}
	if errors.Is(err, New(InvalidClient, "")) {
		t.Error("errors.Is matches another code")
	}
	cause := errors.New("store down")
	if !errors.Is(Wrap(ServerError, "", cause), cause) {
		t.Error("the cause is not unwrapped")
	}
}

func TestWriteDPoP_Challenge(t *testing.T) {
	const realm = "https://as.example/realms/acme"
	rec := httptest.NewRecorder()
	e := New(InvalidDPoPProof, "the DPoP proof is invalid")
	e.Status = 401
	e.WriteDPoP(rec, realm, []string{"ES256", "EdDSA"})
	want := `DPoP realm="` + realm + `", error="invalid_dpop_proof", error_description="the DPoP proof is invalid", algs="ES256 EdDSA"`
	if rec.Code != 401 || rec.Header().Get("WWW-Authenticate") != want {
		t.Errorf("%d %q, want 401 %q", rec.Code, rec.Header().Get("WWW-Authenticate"), want)
	}
	if got := rec.Body.String(); got != `{"error":"invalid_dpop_proof","error_description":"the DPoP proof is invalid"}`+"\n" {
		t.Errorf("body %s", got)
	}
	rec = httptest.NewRecorder()
	NoToken().WriteDPoP(rec, realm, []string{"ES256"})
	if got := rec.Header().Get("WWW-Authenticate"); got != `DPoP realm="`+realm+`", algs="ES256"` {
		t.Errorf("bare challenge %q", got)
	}
	if StatusOf(UseDPoPNonce) != 400 || StatusOf(InvalidDPoPProof) != 400 {
		t.Error("RFC 9449 §5: the token endpoint answers DPoP errors with 400")
	}
}
