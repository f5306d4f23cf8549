package logging

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

const (
	jwt     = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXZhbHVl"
	refresh = "lk_rt_9f8e7d6c5b4a39281706f5e4d3c2b1a0"
	secret  = "web-secret-123"
)

func TestRedactsSecretsByKeyAndByValue(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, slog.LevelDebug)

	log.Info("token issued", "access_token", jwt, "client_id", "web")
	log.Info("request", "header", "Authorization: Bearer "+jwt, "body", "grant_type=refresh_token&refresh_token="+refresh)
	log.Info("basic", "auth", "Basic d2ViOndlYi1zZWNyZXQtMTIz")
	log.Info("refresh failed for token " + refresh)
	log.Error("db", "err", errors.New("connect postgres://latchkey:"+secret+"@db:5432/latchkey failed"))
	log.With("password", "alice-password-1").WithGroup("req").Info("login", "client_secret", secret, slog.Group("form", "code", "SplxlOBeZQQYbYS6WxSbIA"))
	log.Info("raw jwt in text " + jwt)

	out := buf.String()
	for _, leaked := range []string{jwt, refresh, "d2ViOndlYi1zZWNyZXQtMTIz", "alice-password-1", "SplxlOBeZQQYbYS6WxSbIA", ":" + secret + "@"} {
		if strings.Contains(out, leaked) {
			t.Errorf("log leaked %q:\n%s", leaked, out)
		}
	}
	// What is not secret still reads.
	for _, kept := range []string{"client_id=web", "Bearer [REDACTED]", "refresh_token=[REDACTED]", "postgres://latchkey:[REDACTED]@db:5432"} {
		if !strings.Contains(out, kept) {
			t.Errorf("log lost %q:\n%s", kept, out)
		}
	}
}

func TestScrubLeavesOrdinaryTextAlone(t *testing.T) {
	for _, s := range []string{"user alice signed in", "realm=acme client=web", "GET /realms/acme/protocol/openid-connect/certs"} {
		if got := Scrub(s); got != s {
			t.Errorf("Scrub(%q) = %q", s, got)
		}
	}
}

func FuzzScrubNeverLeaksATokenItRecognises(f *testing.F) {
	f.Add("x " + jwt + " y")
	f.Add("refresh_token=" + refresh)
	f.Add("Bearer abc.def")
	f.Fuzz(func(t *testing.T, s string) {
		out := Scrub(s)
		if strings.Contains(out, refresh) || strings.Contains(out, jwt) {
			t.Fatalf("Scrub(%q) = %q still holds a token", s, out)
		}
	})
}

// Values are masked, precisely: what holds a secret is, and what reads as prose or
// names an error is not.
func TestRedactsValuesNotProse(t *testing.T) {
	masked := []struct {
		name   string
		log    func(*slog.Logger)
		secret string
	}{
		{"authorization code", func(l *slog.Logger) { l.Info("redeem", "code", "lk_ac_Q2hlY2tNZTEyMzQ1Njc4OTA") }, "Q2hlY2tNZTEyMzQ1Njc4OTA"},
		{"code of any other shape", func(l *slog.Logger) { l.Info("redeem", "Code", "SplxlOBeZQQYbYS6WxSbIA") }, "SplxlOBeZQQYbYS6WxSbIA"},
		{"code with a digit", func(l *slog.Logger) { l.Info("redeem", "code", "abc1") }, "abc1"},
		{"code as an error value", func(l *slog.Logger) { l.Info("redeem", "code", errors.New("hunter2")) }, "hunter2"},
		{"bearer credential", func(l *slog.Logger) { l.Info("header Authorization: Bearer abcdefghij0123456789") }, "abcdefghij0123456789"},
		{"lower-case bearer credential", func(l *slog.Logger) { l.Info("got bearer abcdefghijklmnopqrstuvwxyz") }, "abcdefghijklmnopqrstuvwxyz"},
		{"basic credential", func(l *slog.Logger) { l.Info("x", "auth", "BASIC d2ViOndlYi1zZWNyZXQtMTIz") }, "d2ViOndlYi1zZWNyZXQtMTIz"},
		{"dpop credential", func(l *slog.Logger) { l.Info("DPoP " + jwt) }, jwt},
		{"short all-letter basic credential", func(l *slog.Logger) { l.Info("got Basic dXNlcjpwYXNz") }, "dXNlcjpwYXNz"},
		{"short all-letter bearer credential", func(l *slog.Logger) { l.Info("got Bearer abcdefghXYZ") }, "abcdefghXYZ"},
		{"token in a form", func(l *slog.Logger) { l.Info("body token=opaque-thing-123") }, "opaque-thing-123"},
		{"state", func(l *slog.Logger) { l.Info("x", "state", "invalid_grant") }, "invalid_grant"},
	}
	for _, tc := range masked {
		var buf bytes.Buffer
		tc.log(New(&buf, slog.LevelDebug))
		if strings.Contains(buf.String(), tc.secret) || !strings.Contains(buf.String(), Redacted) {
			t.Errorf("%s: not masked: %s", tc.name, buf.String())
		}
	}

	kept := []struct {
		name string
		log  func(*slog.Logger)
		want string
	}{
		{"error code", func(l *slog.Logger) { l.Debug("request refused", "code", "invalid_grant") }, "code=invalid_grant"},
		{"numeric status code", func(l *slog.Logger) { l.Info("upstream", "code", 401) }, "code=401"},
		{"status", func(l *slog.Logger) { l.Info("request", slog.Int("status", 400)) }, "status=400"},
		{"the word token", func(l *slog.Logger) { l.Info("refresh token reused; token family revoked") }, `msg="refresh token reused; token family revoked"`},
		{"bearer token in prose", func(l *slog.Logger) { l.Info("the bearer token expired") }, `msg="the bearer token expired"`},
		{"Bearer at a sentence's end", func(l *slog.Logger) { l.Info("send a Bearer token.") }, `msg="send a Bearer token."`},
		{"basic credentials in an error", func(l *slog.Logger) {
			l.Info("request refused", "err", errors.New("invalid_client: malformed Basic credentials"))
		}, `err="invalid_client: malformed Basic credentials"`},
		{"dpop in prose", func(l *slog.Logger) { l.Info("DPoP proof missing") }, `msg="DPoP proof missing"`},
		{"token-based", func(l *slog.Logger) { l.Info("Bearer token-based auth") }, `msg="Bearer token-based auth"`},
	}
	for _, tc := range kept {
		var buf bytes.Buffer
		tc.log(New(&buf, slog.LevelDebug))
		if !strings.Contains(buf.String(), tc.want) || strings.Contains(buf.String(), Redacted) {
			t.Errorf("%s: want %q unmasked, got %s", tc.name, tc.want, buf.String())
		}
	}
}

// RFC 8693's token parameters are secrets too, whatever the token looks like (a
// foreign token has neither a JWT's shape nor Latchkey's prefix).
func TestRedactsTokenExchangeParameters(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, slog.LevelDebug)
	const foreign = "foreign-token-2b7e151628aed2a6"
	log.Info("request", "subject_token", foreign, "actor_token", foreign)
	log.Info("request", "body", "grant_type=x&subject_token="+foreign+"&actor_token="+foreign)
	if out := buf.String(); strings.Contains(out, foreign) {
		t.Errorf("log leaked a token exchange parameter:\n%s", out)
	}
}

// The device grant's codes and a pushed request's request_uri are bearer
// references to a pending grant: masked as attributes and inside form bodies.
func TestRedactsDeviceCodesAndRequestURIs(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, slog.LevelDebug)
	const userCode, uri = "WDJBMJHT", "urn:ietf:params:oauth:request_uri:Exw2b7e151628aed2a6"
	log.Info("request", "user_code", userCode, "request_uri", uri, "device_code", "dc-2b7e151628aed2a6")
	log.Info("request", "body", "user_code="+userCode+"&request_uri="+uri+"&device_code=dc-2b7e151628aed2a6")
	if out := buf.String(); strings.Contains(out, userCode) || strings.Contains(out, "Exw2b7e") || strings.Contains(out, "dc-2b7e") {
		t.Errorf("log leaked a device code or request_uri:\n%s", out)
	}
}
