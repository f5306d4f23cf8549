package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime/debug"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/latchkey/latchkey/internal/admin"
	"github.com/latchkey/latchkey/internal/audit"
	"github.com/latchkey/latchkey/internal/backchannel"
	"github.com/latchkey/latchkey/internal/clientsecret"
	"github.com/latchkey/latchkey/internal/cluster"
	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/internal/keys"
	"github.com/latchkey/latchkey/internal/logging"
	"github.com/latchkey/latchkey/internal/metrics"
	"github.com/latchkey/latchkey/internal/oauth"
	"github.com/latchkey/latchkey/internal/password"
	"github.com/latchkey/latchkey/internal/realip"
	"github.com/latchkey/latchkey/internal/secevent"
	"github.com/latchkey/latchkey/internal/seed"
	"github.com/latchkey/latchkey/internal/server"
	"github.com/latchkey/latchkey/internal/storecache"
	"github.com/latchkey/latchkey/internal/token"
	"github.com/latchkey/latchkey/internal/web"
	"github.com/latchkey/latchkey/storage"
)

func newServeCmd(getenv func(string) string) *cobra.Command {
	var s config.Serve
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the authorization server",
		Long: `Run the authorization server.

Every flag can also be set through its environment variable; a flag given on the
command line wins. --dev listens on 127.0.0.1:8080, keeps its SQLite database and a
generated master key under ./latchkey-data/, and seeds a "dev" realm with demo
clients and a demo user.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			tuneGC(getenv)
			return serve(cmd.Context(), cmd, s)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&s.Dev, "dev", false, "development mode: loopback, embedded SQLite under ./latchkey-data, a seeded dev realm")
	stringFlag(f, getenv, &s.Addr, "addr", "listen address (default "+config.DefaultAddr+", or "+config.DefaultDevAddr+" with --dev)")
	stringFlag(f, getenv, &s.BaseURL, "base-url", "public URL of this server; the issuer of realm R is BASE-URL/realms/R (default http://ADDR with --dev)")
	storeFlags(f, getenv, &s.DB, &s.DataDir)
	stringFlag(f, getenv, &s.Seed, "seed", "YAML file of realms, clients and users to apply at start")
	stringFlag(f, getenv, &s.MasterKeyFile, "master-key-file", "file holding the 32-byte master key (base64 or hex)")
	stringFlag(f, getenv, &s.LogLevel, "log-level", "debug, info, warn or error (default info)")
	stringFlag(f, getenv, &s.LogFormat, "log-format", "text (default) or json, one object a line")
	stringFlag(f, getenv, &s.SQLiteSync, "sqlite-synchronous", "full (default: every commit survives power loss) or normal (survives a process crash; one fsync fewer per commit)")
	stringFlag(f, getenv, &s.TrustedProxies, "trusted-proxies", "comma-separated CIDRs or addresses of reverse proxies whose X-Forwarded-For / Forwarded headers name the client (default none: the client is the TCP peer)")
	stringFlag(f, getenv, &s.StoreTimeout, "store-timeout", "how long a database call may take before the request gets 503 temporarily_unavailable (default 3s)")
	stringFlag(f, getenv, &s.BackchannelRetry, "backchannel-retry", "wait before retrying a back-channel logout the client did not take; each later retry waits three times longer, four retries in all (default 1.5s: about a minute)")
	f.BoolVar(&s.InsecureHTTP, "insecure-http", false, "allow a plain-HTTP issuer on a loopback address outside dev mode")
	stringFlag(f, getenv, &s.MetricsAddr, "metrics-addr", "serve Prometheus metrics at GET /metrics on this address of its own, never the public one, e.g. 127.0.0.1:9090 (default: off)")
	f.StringVar(&s.PprofAddr, "pprof", "", "serve Go's pprof profiles on this loopback address (e.g. 127.0.0.1:6060), for benchmarking")
	// The master key itself only comes from the environment: a flag would show in `ps`.
	s.MasterKey = getenv(config.Env["master-key"])
	return cmd
}

// GC settings for serve, unless GOGC or GOMEMLIMIT say otherwise. A request
// allocates a few KiB that die at once; collecting less often (GOGC=400) cut the
// collector's share of CPU under load, and the soft memory limit makes it collect
// sooner as the heap nears it, so memory stays small (see BENCHMARKS.md).
const (
	gcPercent   = 400
	memoryLimit = 48 << 20
)

func tuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
}

// stringFlag defines a string flag whose default comes from its environment variable.
func stringFlag(f *pflag.FlagSet, getenv func(string) string, p *string, name, usage string) {
	env := config.Env[name]
	f.StringVar(p, name, getenv(env), usage+" ["+env+"]")
}

func serve(ctx context.Context, cmd *cobra.Command, s config.Serve) error {
	opts, err := s.Resolve()
	if err != nil {
		return err
	}
	log := logging.New(cmd.ErrOrStderr(), logLevel(opts.LogLevel))
	if opts.LogFormat == "json" {
		log = logging.NewJSON(cmd.ErrOrStderr(), logLevel(opts.LogLevel))
	}

	// Read and check the seed file before touching the store: a bad file changes nothing.
	var seedFile *seed.File
	if opts.Seed != "" {
		if seedFile, err = seed.Load(opts.Seed); err != nil {
			return err
		}
		if err := seedFile.CheckPlainHTTP(opts.Seed, opts.AllowPlainHTTP); err != nil {
			return err
		}
		for _, w := range seedFile.Warnings() {
			log.Warn("seed: "+w, "file", opts.Seed)
		}
	}
	var dev *devSetup
	if opts.Dev {
		if dev, err = loadDevSetup(opts); err != nil {
			return err
		}
	}

	// Bind early so a taken port fails before the store is touched; connections
	// queue until the server starts answering below.
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", opts.Addr, err)
	}
	defer ln.Close()
	var met *metrics.Metrics
	var metricsLn net.Listener
	if opts.MetricsAddr != "" {
		if metricsLn, err = net.Listen("tcp", opts.MetricsAddr); err != nil {
			return fmt.Errorf("listen on %s for metrics: %w", opts.MetricsAddr, err)
		}
		defer metricsLn.Close()
		met = metrics.New(prometheus.NewRegistry(), time.Now)
	}

	store, err := openStore(ctx, opts)
	if err != nil {
		return err
	}
	defer store.Close()
	if met != nil {
		// Under the audit log and the cache: store calls as the database sees them,
		// and every audit event stored.
		store = met.Store(store)
	}
	// Every audit event appended through the store is also an info line in the log.
	store = audit.Logged(store, log)

	applier := &seed.Applier{
		Store:    store,
		Secrets:  clientsecret.NewHasher(opts.MasterKey),
		Password: password.Default,
		MACKey:   seed.PasswordMACKey(opts.MasterKey),
		Now:      time.Now,
	}
	if dev != nil {
		if err := applySeed(ctx, log, applier, "dev realm", dev.seed); err != nil {
			return err
		}
	}
	if seedFile != nil {
		if err := applySeed(ctx, log, applier, opts.Seed, seedFile); err != nil {
			return err
		}
	}

	if dev != nil {
		dev.printBanner(cmd.OutOrStdout(), opts)
	}
	// Realms and clients are read on every request and rarely change: keep them until
	// the change feed says they changed (the follower below).
	cached := storecache.New(store, cacheSafetyTTL, time.Now)
	km := keys.NewManager(cached, opts.MasterKey, keys.DefaultPolicy, time.Now)
	deny := token.NewDenyList()
	tokens := token.NewService(cached, km, deny, opts.BaseURL, time.Now)
	var observer oauth.Observer // a nil *Metrics in it would not be nil
	if met != nil {
		tokens.Observe(met)
		observer = met
		met.WatchDenyList(deny.Len)
		met.WatchSigningKeys(func() []metrics.SigningKey {
			var out []metrics.SigningKey
			for _, k := range km.Signing() {
				out = append(out, metrics.SigningKey{Realm: k.Realm, Alg: k.Alg, CreatedAt: k.CreatedAt})
			}
			return out
		})
	}
	realmNames := func(ctx context.Context) ([]string, error) {
		realms, err := store.ListRealms(ctx)
		names := make([]string, len(realms))
		for i, r := range realms {
			names[i] = r.Name
		}
		return names, err
	}
	// Load the deny-list before answering: a revoked token must not pass after a
	// restart. The feed's cursor is taken first, so a revocation recorded meanwhile
	// is in the feed after it (if not also in the load: applying it twice is harmless).
	after, err := store.LastChangeSeq(ctx)
	if err != nil {
		return fmt.Errorf("read the change feed: %w", err)
	}
	if err := syncDenyList(ctx, tokens, realmNames, met); err != nil {
		return err
	}
	// The follower applies what other instances change (revocations, realms,
	// clients, keys) to this one as soon as the store records it. Handlers that
	// stream changes (Wait, Last) take it from here.
	var synced func() // the deny-list staleness gauge counts from the last catch-up
	if met != nil {
		synced = met.DenyListSynced
	}
	follower := cluster.New(cluster.Config{
		Feed: store, Deny: deny, Cache: cached, Keys: km, Verified: tokens,
		After: after, GapTimeout: opts.StoreTimeout, Synced: synced, Now: time.Now, Log: log,
	})
	pages, err := web.NewPages()
	if err != nil {
		return err
	}
	clientIP := realip.New(opts.TrustedProxies)
	// One login limiter: the admin API's unlock clears the locks the login page
	// sets. Its counts, and its attempts in flight, are in the store (uncached),
	// shared by every instance: a password hash is worth a store write.
	logins := web.NewLimiter(store, "login", web.LimiterConfig{InFlightInStore: true}, time.Now)
	// The revocation feed for resource servers streams what the follower applies.
	// Its streams end when ctx does, so a graceful shutdown does not wait for them.
	events := secevent.New(secevent.Config{
		Store: cached, Follower: follower, Keys: km, Issuer: tokens.Issuer, Log: log, Now: time.Now,
	})
	defer context.AfterFunc(ctx, events.Close)()
	handler := oauth.New(oauth.Config{
		Store: cached, Tokens: tokens, Keys: km, Secrets: applier.Secrets, MasterKey: opts.MasterKey,
		Pages: pages, Limiter: logins, Log: log,
		BaseURL: opts.BaseURL, Now: time.Now, ClientIP: clientIP, Observer: observer,
		RevocationEvents: events,
	})
	// The admin API works on the cached store, so this instance sees its changes at once.
	adminAPI := admin.New(admin.Config{
		Store: cached, Tokens: tokens, Keys: km, Secrets: applier.Secrets,
		HashPassword: func(p string) (string, error) { return password.Hash(p, password.Default) },
		Logins:       logins, ClientIP: clientIP.ClientIP, Log: log, Now: time.Now,
		AllowPlainHTTP: opts.AllowPlainHTTP,
	})

	// Back-channel logout reads the store itself, not the cache: a client's URI
	// is read when its logout token is sent. It reads the feed as far as the
	// follower has found it whole.
	logouts := backchannel.New(backchannel.Config{Store: store, Follower: follower, Tokens: tokens, Log: log,
		RetryBase: opts.BackchannelRetry})

	// One instance of all sweeps per interval (the last sweep is stamped in the store).
	sweep := server.OncePerInterval(store, "sweep", sweepEvery, time.Now, func(ctx context.Context, now time.Time) error {
		res, err := store.Sweep(ctx, now, sweepGrace)
		if err == nil {
			// Kept past their sessions for the logouts still to deliver.
			_, err = store.PurgeSessionClients(ctx, now.Add(-sweepGrace))
		}
		if err == nil && !res.Skipped {
			log.Debug("swept", "families", res.Families, "sessions", res.Sessions, "codes", res.AuthCodes,
				"denied_jwts", res.DeniedJWTs, "client_assertions", res.ClientAssertions, "changes", res.Changes, "attempts", res.Attempts,
				"dpop_proofs", res.DPoPProofs, "pushed_requests", res.PushedRequests, "device_grants", res.DeviceGrants,
				"bff_sessions", res.BFFSessions)
		}
		return err
	})
	tasksCtx, stopTasks := context.WithCancel(ctx)
	tasksDone := make(chan struct{})
	followerDone := make(chan struct{})
	go func() {
		defer close(followerDone)
		follower.Run(tasksCtx)
	}()
	go func() {
		defer close(tasksDone)
		var wg sync.WaitGroup
		defer wg.Wait()
		wg.Go(func() { logouts.Run(tasksCtx) })
		server.RunTasks(tasksCtx, log,
			// The follower brings revocations at once; this reload is a safety net
			// (and sweeps expired entries).
			server.Task{Name: "deny-list sync", Every: denyListResync, Run: func(ctx context.Context) error {
				return syncDenyList(ctx, tokens, realmNames, met)
			}},
			server.Task{Name: "key rotation", Every: 10 * time.Minute, Run: func(ctx context.Context) error {
				// One instance at a time: the one that runs decides afresh what is
				// due, so instances starting together do not both rotate.
				_, err := store.Exclusive(ctx, "key rotation", func(ctx context.Context) error {
					names, err := realmNames(ctx)
					if err != nil {
						return err
					}
					rotated, err := km.RotateDue(ctx, names)
					for _, r := range rotated {
						log.Info("signing keys rotated", "realm", r)
					}
					return err
				})
				return err
			}},
			server.Task{Name: "sweep", Every: sweepEvery, Run: func(ctx context.Context) error {
				_, err := sweep(ctx)
				return err
			}},
		)
	}()
	defer func() { stopTasks(); <-tasksDone; <-followerDone }()

	if opts.PprofAddr != "" {
		stopPprof, err := servePprof(ctx, log, opts.PprofAddr)
		if err != nil {
			return err
		}
		defer stopPprof()
	}
	srv := server.New(log, store, handler, adminAPI)
	if met != nil {
		srv.Instrument(met)
		stopMetrics := serveMetrics(log, metricsLn, met.Handler())
		defer stopMetrics()
	}
	b := readBuild()
	log.Info("listening", "addr", ln.Addr().String(), "base_url", opts.BaseURL, "store", opts.Backend, "dev", opts.Dev,
		"version", b.Version, "revision", b.Revision)
	return srv.Serve(ctx, ln)
}

// cacheSafetyTTL bounds how long a cached realm or client lives. The change feed
// invalidates them at once, and everything that changes one records a change in
// the same transaction; the TTL only bounds the damage of a write that bypasses
// the feed (an operator's hand-made SQL, an older binary during an upgrade).
const cacheSafetyTTL = 10 * time.Minute

// denyListResync is how often the whole deny-list is reloaded besides the
// follower: a safety net for a loss the follower cannot see, and its sweep.
const denyListResync = time.Minute

// sweepGrace is how long ended sessions, families and tokens are kept after they
// expire or are revoked, for audit and for telling reuse from garbage.
const sweepGrace = time.Hour

// sweepEvery is how often the store is swept, by one instance of all.
const sweepEvery = 10 * time.Minute

// servePprof serves net/http/pprof on its own loopback listener, never on the
// public one, for profiling a benchmark run.
func servePprof(ctx context.Context, log *slog.Logger, addr string) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s for pprof: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	log.Info("pprof listening", "addr", ln.Addr().String())
	return func() { srv.Close() }, nil
}

// serveMetrics serves GET /metrics on its own listener, never on the public one.
func serveMetrics(log *slog.Logger, ln net.Listener, h http.Handler) func() {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go srv.Serve(ln)
	log.Info("metrics listening", "addr", ln.Addr().String())
	return func() { srv.Close() }
}

// syncDenyList loads what other instances added to the deny-list; met, if set,
// is told of each success, for the staleness gauge.
func syncDenyList(ctx context.Context, tokens *token.Service, realmNames func(context.Context) ([]string, error), met *metrics.Metrics) error {
	names, err := realmNames(ctx)
	if err != nil {
		return err
	}
	if err := tokens.SyncDenyList(ctx, names); err != nil {
		return err
	}
	if met != nil {
		met.DenyListSynced()
	}
	return nil
}

func applySeed(ctx context.Context, log *slog.Logger, a *seed.Applier, name string, f *seed.File) error {
	res, err := a.Apply(ctx, f)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	log.Info("seed applied", "source", name, "created", res.Created, "updated", res.Updated, "unchanged", res.Unchanged)
	return nil
}

func logLevel(s string) slog.Level {
	var l slog.Level
	l.UnmarshalText([]byte(s)) // Resolve has checked it
	return l
}

// Compile-time check: every backend can be seeded.
var _ seed.Store = storage.Store(nil)
