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
