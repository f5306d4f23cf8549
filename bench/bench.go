// Package bench owns the load generator behind `latchkey bench`: its scenarios, open and closed loops, latency histogram, server /proc sampling and report.
package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// The scenarios.
const (
	ClientCredentials = "client-credentials"
	Refresh           = "refresh"
	Introspect        = "introspect"
	RevokeIntrospect  = "revoke-introspect"
)

// Scenarios lists the scenario names.
var Scenarios = []string{ClientCredentials, Refresh, Introspect, RevokeIntrospect}

// Config is one run. Zero values are not defaulted here (the CLI's flags carry the
// defaults) except where noted.
type Config struct {
	Scenario string
	Label    string

	// Issuer, when set, supplies whichever of the three endpoint URLs are empty
	// from its discovery document.
	Issuer                             string
	TokenURL, IntrospectURL, RevokeURL string

	ClientID, ClientSecret string
	Auth                   string // "basic" (client_secret_basic, the default) or "post"
	Scope                  string // client-credentials scope; empty asks for the default

	Duration    time.Duration // the measured phase
	Warmup      time.Duration
	Connections int     // keep-alive connections, one per worker
	Rate        float64 // requests/s in all; 0 = closed loop
	PID         int     // the server process, measured through /proc; 0 = not measured
	Timeout     time.Duration

	// refresh
	Clients                              int      // virtual clients; 0 = Connections
	RefreshTokens                        []string // at least Clients of them
	RefreshClientID, RefreshClientSecret string   // empty: ClientID, ClientSecret
	AllowUnrotated                       bool     // accept a server that does not rotate

	// introspect, revoke-introspect
	Pool                                       int
	IntrospectClientID, IntrospectClientSecret string // empty: ClientID, ClientSecret
	RevokeRatio                                float64
}

func (c *Config) check() error {
	switch {
	case !isScenario(c.Scenario):
		return fmt.Errorf("unknown scenario %q: want one of %s", c.Scenario, strings.Join(Scenarios, ", "))
	case c.Auth != "" && c.Auth != "basic" && c.Auth != "post":
		return fmt.Errorf("--auth %q: want basic or post", c.Auth)
	case c.Duration <= 0:
		return errors.New("--duration must be positive")
	case c.Warmup < 0:
		return errors.New("--warmup must not be negative")
	case c.Connections < 1:
		return errors.New("--connections must be at least 1")
	case c.Rate < 0:
		return errors.New("--rate must not be negative")
	case c.Timeout <= 0:
		return errors.New("--timeout must be positive")
	case c.PID < 0:
		return errors.New("--pid must be a process ID")
	case c.Issuer == "" && c.TokenURL == "":
		return errors.New("give --issuer or --token-url")
	case c.Issuer == "" && c.IntrospectURL == "" && (c.Scenario == Introspect || c.Scenario == RevokeIntrospect):
		return errors.New("give --issuer or --introspect-url")
	case c.Issuer == "" && c.RevokeURL == "" && c.Scenario == RevokeIntrospect:
		return errors.New("give --issuer or --revoke-url")
	case c.ClientID == "" && (c.Scenario != Refresh || c.RefreshClientID == ""):
		return errors.New("--client-id is required")
	}
	switch c.Scenario {
	case Refresh:
		if c.Clients < 0 {
			return errors.New("--clients must not be negative")
		}
		if c.Clients == 0 {
			c.Clients = c.Connections
		}
		if len(c.RefreshTokens) < c.Clients {
			return fmt.Errorf("%d refresh tokens for %d clients: give at least one per client", len(c.RefreshTokens), c.Clients)
		}
	case Introspect, RevokeIntrospect:
		if c.Pool < c.Connections {
			return fmt.Errorf("--pool %d is smaller than --connections %d: every connection needs tokens of its own", c.Pool, c.Connections)
		}
		if c.RevokeRatio < 0 || c.RevokeRatio > 1 {
			return errors.New("--revoke-ratio must be between 0 and 1")
		}
		if c.Scenario == Introspect {
			c.RevokeRatio = 0
		}
	}
	return nil
}

func isScenario(s string) bool { return slices.Contains(Scenarios, s) }

// Run checks cfg, reaches the server, runs the scenario and returns what it
// measured. Failed requests are counted in the report, not returned as errors;
// an error means the run could not be made.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.PID > 0 {
		if err := checkProcess(cfg.PID); err != nil {
			return nil, fmt.Errorf("--pid: %w", err)
		}
	}
	hc := newHTTPClient(cfg.Connections, cfg.Timeout)
	if cfg.Issuer != "" {
		tok, in, rev, err := discover(ctx, hc, cfg.Issuer)
		if err != nil {
			return nil, err
		}
		cfg.TokenURL = cmp.Or(cfg.TokenURL, tok)
		cfg.IntrospectURL = cmp.Or(cfg.IntrospectURL, in)
		cfg.RevokeURL = cmp.Or(cfg.RevokeURL, rev)
	} else if err := probe(ctx, hc, cfg.TokenURL); err != nil {
		return nil, err
	}

	post := cfg.Auth == "post"
	own := endpoint{url: cfg.TokenURL, clientID: cfg.ClientID, clientSecret: cfg.ClientSecret, post: post}
	var sc scenario
	switch cfg.Scenario {
	case ClientCredentials:
		sc = &clientCredentials{hc: hc, token: own, scope: cfg.Scope}
	case Refresh:
		own.clientID = cmp.Or(cfg.RefreshClientID, cfg.ClientID)
		own.clientSecret = cmp.Or(cfg.RefreshClientSecret, cfg.ClientSecret)
		sc = newRefresh(hc, own, cfg.RefreshTokens[:cfg.Clients], cfg.AllowUnrotated)
	case Introspect, RevokeIntrospect:
		if cfg.IntrospectURL == "" || (cfg.Scenario == RevokeIntrospect && cfg.RevokeURL == "") {
			return nil, errors.New("the server's discovery document names no introspection or revocation endpoint")
		}
		check := endpoint{url: cfg.IntrospectURL, clientID: cmp.Or(cfg.IntrospectClientID, cfg.ClientID),
			clientSecret: cmp.Or(cfg.IntrospectClientSecret, cfg.ClientSecret), post: post}
		revoke := own
		revoke.url = cfg.RevokeURL
		sc = newIntrospect(&clientCredentials{hc: hc, token: own, scope: cfg.Scope}, check, revoke, cfg.RevokeRatio, cfg.Pool, cfg.Connections)
	}
	if err := sc.prepare(ctx); err != nil {
		return nil, err
	}

	t0 := time.Now()
	measureFrom := t0.Add(cfg.Warmup)
	end := measureFrom.Add(cfg.Duration)
	warm, measured := newTally(), newTally()
	stopWatch := make(chan struct{})
	var usage <-chan usageResult
	if cfg.PID > 0 {
		usage = watch(cfg.PID, measureFrom, stopWatch)
	}
	drive(ctx, sc, cfg.Connections, cfg.Rate, t0, measureFrom, end, warm, measured)
	// Requests still in flight at the end have finished: their work is in the CPU time.
	elapsed := min(time.Since(measureFrom), cfg.Duration)
	close(stopWatch)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var u *Usage
	if usage != nil {
		res := <-usage
		if res.err != nil {
			return nil, res.err
		}
		u = &res.Usage
	}
	return newReport(cfg, max(elapsed, 0), measured, warm, u), nil
}
