package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/latchkey/latchkey/bench"
	"github.com/latchkey/latchkey/internal/token"
	"github.com/latchkey/latchkey/storage"
)

func newBenchCmd(getenv func(string) string) *cobra.Command {
	var cfg bench.Config
	var refreshFile string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "bench SCENARIO",
		Short: "Load a running server and measure it: " + strings.Join(bench.Scenarios, ", "),
		Long: `Load a running server with one scenario and report throughput, latency and, with --pid,
the server's CPU time and memory over the measured phase.

  client-credentials  mint access tokens with the client_credentials grant
  refresh             rotate refresh tokens: one chain per virtual client (--refresh-tokens)
  introspect          introspect live tokens from a pool filled before the clock starts
  revoke-introspect   as introspect, but revoke some tokens and check they turn inactive`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.Scenario = args[0]
			if refreshFile != "" {
				b, err := os.ReadFile(refreshFile)
				if err != nil {
					return fmt.Errorf("--refresh-tokens: %w", err)
				}
				cfg.RefreshTokens = strings.Fields(string(b))
			} else if cfg.Scenario == bench.Refresh {
				return errors.New("--refresh-tokens FILE is required (make one with `latchkey bench mint-refresh`)")
			}
			r, err := bench.Run(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			if asJSON {
				return r.WriteJSON(cmd.OutOrStdout())
			}
			return r.WriteTable(cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Issuer, "issuer", "", "the realm's issuer URL: endpoints come from its discovery document")
	f.StringVar(&cfg.TokenURL, "token-url", "", "token endpoint (default: from --issuer)")
	f.StringVar(&cfg.IntrospectURL, "introspect-url", "", "introspection endpoint (default: from --issuer)")
	f.StringVar(&cfg.RevokeURL, "revoke-url", "", "revocation endpoint (default: from --issuer)")
	f.StringVar(&cfg.ClientID, "client-id", "", "the confidential client the load comes from")
	f.StringVar(&cfg.ClientSecret, "client-secret", "", "its secret")
	f.StringVar(&cfg.Auth, "auth", "basic", "client authentication: basic (client_secret_basic) or post (client_secret_post)")
	f.StringVar(&cfg.Scope, "scope", "", "scope of client-credentials tokens (default: the server's choice)")
	f.DurationVar(&cfg.Duration, "duration", 10*time.Second, "length of the measured phase")
	f.DurationVar(&cfg.Warmup, "warmup", 2*time.Second, "unmeasured load before it")
	f.IntVar(&cfg.Connections, "connections", 16, "keep-alive connections, one per concurrent worker")
	f.Float64Var(&cfg.Rate, "rate", 0, "requests/s in all (open loop, latency from the scheduled send time); 0 = closed loop")
	f.IntVar(&cfg.PID, "pid", 0, "the server's process ID, to measure its CPU time and memory")
	f.DurationVar(&cfg.Timeout, "timeout", 10*time.Second, "per-request timeout")
	f.BoolVar(&asJSON, "json", false, "print one JSON object instead of the table")
	f.StringVar(&cfg.Label, "label", "", "text copied into the output")
	f.IntVar(&cfg.Clients, "clients", 0, "refresh: virtual clients, each with its own chain (default --connections)")
	f.StringVar(&refreshFile, "refresh-tokens", "", "refresh: file of initial refresh tokens, one per line")
	f.StringVar(&cfg.RefreshClientID, "refresh-client-id", "", "refresh: the client the tokens were issued to (default --client-id)")
	f.StringVar(&cfg.RefreshClientSecret, "refresh-client-secret", "", "refresh: its secret (default --client-secret)")
	f.BoolVar(&cfg.AllowUnrotated, "allow-unrotated", false, "refresh: accept a server that answers with the same refresh token (one that does not rotate)")
	f.IntVar(&cfg.Pool, "pool", 1000, "introspect: live tokens to introspect")
	f.StringVar(&cfg.IntrospectClientID, "introspect-client-id", "", "introspect: the client that introspects (default --client-id)")
	f.StringVar(&cfg.IntrospectClientSecret, "introspect-client-secret", "", "introspect: its secret (default --client-secret)")
	f.Float64Var(&cfg.RevokeRatio, "revoke-ratio", 0.1, "revoke-introspect: share of steps that revoke a token, check it and replace it")
	cmd.AddCommand(newMintRefreshCmd(getenv))
	return cmd
}

func newMintRefreshCmd(getenv func(string) string) *cobra.Command {
	var db, dataDir, realm, clientID, username, scope, out string
	var audience []string
	var count int
	cmd := &cobra.Command{
		Use:   "mint-refresh",
		Short: "Create refresh-token families straight in the store and print their tokens, one per line",
		Long: `Create --count refresh-token families in the store, as if the user had signed in to the
client that many times (without a browser session), with the client's refresh lifetimes,
and write their refresh tokens one per line. The store may be in use by a running server.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if realm == "" || clientID == "" || username == "" {
				return errors.New("--realm, --client and --user are required")
			}
			if count < 1 {
				return errors.New("--count must be at least 1")
			}
			ctx := cmd.Context()
			st, _, err := openFromFlags(ctx, db, dataDir)
			if err != nil {
				return err
			}
			defer st.Close()
			client, err := st.GetClient(ctx, realm, clientID)
			if errors.Is(err, storage.ErrNotFound) {
				err = fmt.Errorf("no client %q in realm %q", clientID, realm)
			}
			if err != nil {
				return err
			}
			if !slices.Contains(client.GrantTypes, "refresh_token") {
				return fmt.Errorf("client %q may not use refresh tokens", clientID)
			}
			user, err := st.GetUserByUsername(ctx, realm, username)
			if errors.Is(err, storage.ErrNotFound) {
				err = fmt.Errorf("no user %q in realm %q", username, realm)
			}
			if err != nil {
				return err
			}
			scopes := client.Scopes // what a sign-in asking for no scope is granted
			if scope != "" {
				scopes = strings.Fields(scope)
				for _, s := range scopes {
					if !slices.Contains(client.Scopes, s) {
						return fmt.Errorf("scope %q is not allowed for client %q", s, clientID)
					}
				}
			}
			if len(audience) == 0 {
				audience = client.Audiences
			}

			w := cmd.OutOrStdout()
			var file *os.File
			if out != "" {
				if file, err = os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600); err != nil { // bearer credentials
					return err
				}
				defer file.Close()
				w = file
			}
			idle, absolute := client.Tokens.RefreshIdle, client.Tokens.RefreshAbsolute
			if idle <= 0 || absolute <= 0 {
				idle, absolute = 24*time.Hour, 14*24*time.Hour
			}
			tmpl := storage.Family{Realm: realm, ClientID: client.ID, UserID: user.ID, Scopes: scopes, Audience: audience,
				UserAgent: "latchkey bench mint-refresh"}
			if err := mintFamilies(ctx, st, tmpl, idle, absolute, count, w); err != nil {
				return err
			}
			if file != nil {
				if err := file.Close(); err != nil {
					return err
				}
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "minted %d refresh tokens for %s on %s/%s (idle %s, absolute %s)\n",
				count, username, realm, clientID, idle, absolute)
			return nil
		},
	}
	f := cmd.Flags()
	storeFlags(f, getenv, &db, &dataDir)
	f.StringVar(&realm, "realm", "", "the realm (required)")
	f.StringVar(&clientID, "client", "", "the client the tokens are issued to (required)")
	f.StringVar(&username, "user", "", "the user they are issued for (required)")
	f.IntVar(&count, "count", 1, "how many families to create")
	f.StringVar(&scope, "scope", "", "granted scope (default: every scope the client may have)")
	f.StringSliceVar(&audience, "audience", nil, "audience of the access tokens the families yield (default: the client's audiences)")
	f.StringVar(&out, "out", "", "file to write the tokens to, mode 0600 (default stdout)")
	return cmd
}

// mintWorkers create families side by side: a network database takes them in
// parallel, and SQLite's single writer at least never waits for the next one.
const mintWorkers = 8

// mintFamilies creates count families like tmpl, each with its first refresh token,
// and writes the tokens to w in the order they were stored.
func mintFamilies(ctx context.Context, st storage.Store, tmpl storage.Family, idle, absolute time.Duration, count int, w io.Writer) error {
	bw := bufio.NewWriter(w)
	var mu sync.Mutex // guards bw, next and firstErr
	next, firstErr := 0, error(nil)
	var wg sync.WaitGroup
	for range min(mintWorkers, count) {
		wg.Go(func() {
			for {
				mu.Lock()
				if next == count || firstErr != nil {
					mu.Unlock()
					return
				}
				next++
				mu.Unlock()

				now := time.Now().UTC().Truncate(time.Microsecond)
				f := tmpl
				f.ID, f.CreatedAt, f.LastUsedAt = rand.Text(), now, now
				f.IdleExpiresAt, f.AbsoluteExpiresAt = now.Add(idle), now.Add(absolute)
				value, hash := token.NewRefreshToken()
				err := st.CreateFamily(ctx, f, storage.RefreshToken{Hash: hash, Scopes: f.Scopes, IssuedAt: now})

				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("create refresh family: %w", err)
				}
				if err == nil && firstErr == nil {
					bw.WriteString(value + "\n")
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return bw.Flush()
}
