package oauth

import (
	"errors"
	"fmt"
	"testing"

	"github.com/latchkey/latchkey/internal/protocol"
	"github.com/latchkey/latchkey/storage"
)

func TestOutcome_IsTheCodeAnswered(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{nil, "success"},
		{protocol.New(InvalidGrant, "x"), "invalid_grant"},
		{fmt.Errorf("wrapped: %w", protocol.New(InvalidClient, "x")), "invalid_client"},
		{fmt.Errorf("get: %w", storage.ErrUnavailable), "temporarily_unavailable"},
		{errors.New("boom"), "server_error"},
	} {
		if got := outcome(c.err); got != c.want {
			t.Errorf("outcome(%v) = %q, want %q", c.err, got, c.want)
		}
	}
	// Counting a success, every token request's common case, allocates nothing.
	if n := testing.AllocsPerRun(100, func() { outcome(nil) }); n != 0 {
		t.Errorf("outcome(nil) allocates %v times", n)
	}
}

func TestGrantLabel_IsFromAFixedSet(t *testing.T) {
	for in, want := range map[string]string{
		"authorization_code": "authorization_code", "refresh_token": "refresh_token", "client_credentials": "client_credentials",
		"": "none", "password": "unsupported", "lk_rt_pasted-token": "unsupported",
	} {
		if got := grantLabel(in); got != want {
			t.Errorf("grantLabel(%q) = %q, want %q", in, got, want)
		}
	}
}
