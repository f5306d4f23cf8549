// Package config is the schema of `latchkey serve`'s flags and environment, and
// resolves them into the options the server runs with.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/latchkey/latchkey/internal/masterkey"
	"github.com/latchkey/latchkey/internal/realip"
	"github.com/latchkey/latchkey/storage"
)

// Serve is what `latchkey serve` is given, before defaults and checks.
type Serve struct {
	Dev           bool
	Addr          string // listen address
	BaseURL       string // public URL the issuers live under; the issuer of realm R is BaseURL/realms/R
	DB            string // SQLite file path (optionally "sqlite:" prefixed) or postgres:// URL
	DataDir       string
	Seed          string // seed file path
	MasterKey     string // the key itself, from LATCHKEY_MASTER_KEY
	MasterKeyFile string
	InsecureHTTP  bool // allow a plain-HTTP issuer on a loopback address outside dev mode
	LogLevel      string
	LogFormat     string // "text" (default) or "json"
	PprofAddr     string // loopback address for net/http/pprof; "" for none
	MetricsAddr   string // listen address of the Prometheus /metrics endpoint; "" for none
	SQLiteSync    string // "full" (default) or "normal"
	// TrustedProxies are comma-separated CIDRs or addresses of the reverse proxies
	// whose X-Forwarded-For / Forwarded headers are believed.
	TrustedProxies string
	StoreTimeout   string // how long a store call may take, e.g. "3s"; "" for the default
	// BackchannelRetry is the wait before a back-channel logout's first retry;
	// each later one triples it. "" for the default.
	BackchannelRetry string
}

// Env names of the settings that can come from the environment.
var Env = map[string]string{
	"addr":               "LATCHKEY_ADDR",
	"base-url":           "LATCHKEY_BASE_URL",
	"db":                 "LATCHKEY_DB",
	"data-dir":           "LATCHKEY_DATA_DIR",
	"seed":               "LATCHKEY_SEED",
	"master-key":         "LATCHKEY_MASTER_KEY",
	"master-key-file":    "LATCHKEY_MASTER_KEY_FILE",
	"log-level":          "LATCHKEY_LOG_LEVEL",
	"log-format":         "LATCHKEY_LOG_FORMAT",
	"sqlite-synchronous": "LATCHKEY_SQLITE_SYNCHRONOUS",
	"trusted-proxies":    "LATCHKEY_TRUSTED_PROXIES",
	"store-timeout":      "LATCHKEY_STORE_TIMEOUT",
	"metrics-addr":       "LATCHKEY_METRICS_ADDR",
	"backchannel-retry":  "LATCHKEY_BACKCHANNEL_RETRY",
}

// Defaults.
const (
	DefaultDevAddr = "127.0.0.1:8080"
	DefaultAddr    = ":8080"
	DefaultDataDir = "latchkey-data"
	dbFile         = "latchkey.db"
	masterKeyFile  = "master.key"
)

// Options are the resolved settings the server runs with.
type Options struct {
	Dev       bool
	Addr      string
	BaseURL   string // no trailing slash
	Backend   string // "sqlite" or "postgres"
	DB        string // SQLite path or PostgreSQL URL
	DataDir   string // "" when nothing is kept on local disk
	Seed      string
	MasterKey *masterkey.Key
	// MasterKeyCreated is set when dev mode generated the key on this start.
	MasterKeyCreated bool
	LogLevel         string
	LogFormat        string // "text" or "json"
	PprofAddr        string
	// MetricsAddr is where /metrics is served, on its own listener; "" for nowhere.
	MetricsAddr string
	SQLiteSync  string // "full" or "normal"
	// TrustedProxies are the peers whose forwarding headers name the client; none
	// means the client is always the TCP peer.
	TrustedProxies []netip.Prefix
	// StoreTimeout bounds every store call: past it the request gets a 503.
	StoreTimeout time.Duration
	// BackchannelRetry is the wait before a back-channel logout's first retry
	// (0: the default).
	BackchannelRetry time.Duration
	// AllowPlainHTTP lets a client register a plain-http back-channel logout URI
	// (to a loopback address): dev mode, or the insecure-http setting.
	AllowPlainHTTP bool
}

// Resolve applies defaults, checks the settings, prepares the data directory and
// loads (in dev mode, creates) the master key.
func (s Serve) Resolve() (Options, error) {
	o := Options{Dev: s.Dev, Addr: s.Addr, Seed: s.Seed, LogLevel: s.LogLevel, LogFormat: strings.ToLower(s.LogFormat), PprofAddr: s.PprofAddr, MetricsAddr: s.MetricsAddr, SQLiteSync: strings.ToLower(s.SQLiteSync),
		AllowPlainHTTP: s.Dev || s.InsecureHTTP}
	switch o.SQLiteSync {
	case "":
		o.SQLiteSync = "full"
	case "full", "normal":
	default:
		return o, fmt.Errorf("--sqlite-synchronous %q: want full or normal", s.SQLiteSync)
	}
	proxies, err := realip.ParsePrefixes(s.TrustedProxies)
	if err != nil {
		return o, fmt.Errorf("--trusted-proxies: %w", err)
	}
	o.TrustedProxies = proxies
	o.StoreTimeout = storage.DefaultTimeout
	if s.StoreTimeout != "" {
		d, err := time.ParseDuration(s.StoreTimeout)
		if err != nil || d <= 0 {
			return o, fmt.Errorf("--store-timeout %q: want a positive duration, e.g. 3s or 500ms", s.StoreTimeout)
		}
		o.StoreTimeout = d
	}
	if s.BackchannelRetry != "" {
		d, err := time.ParseDuration(s.BackchannelRetry)
		if err != nil || d <= 0 || d > time.Minute {
			return o, fmt.Errorf("--backchannel-retry %q: want a duration up to 1m, e.g. 1.5s", s.BackchannelRetry)
		}
		o.BackchannelRetry = d
	}
	if o.PprofAddr != "" {
		host, _, err := net.SplitHostPort(o.PprofAddr)
		if err != nil || !isLoopback(host) {
			return o, fmt.Errorf("--pprof %q: want a loopback host:port, e.g. 127.0.0.1:6060", o.PprofAddr)
		}
	}
	if o.LogLevel == "" {
		o.LogLevel = "info"
	}
	switch o.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return o, fmt.Errorf("--log-level %q: want debug, info, warn or error", o.LogLevel)
	}
	switch o.LogFormat {
	case "":
		o.LogFormat = "text"
	case "text", "json":
	default:
		return o, fmt.Errorf("--log-format %q: want text or json", s.LogFormat)
	}
	if o.Addr == "" {
		o.Addr = DefaultAddr
		if s.Dev {
			o.Addr = DefaultDevAddr
		}
	}
	host, port, err := net.SplitHostPort(o.Addr)
	if err != nil {
		return o, fmt.Errorf("--addr %q: want host:port, e.g. 127.0.0.1:8080", o.Addr)
	}
	if o.MetricsAddr != "" {
		// Its own listener: metrics are for the operator's scraper, never the public.
		if _, _, err := net.SplitHostPort(o.MetricsAddr); err != nil {
			return o, fmt.Errorf("--metrics-addr %q: want host:port, e.g. 127.0.0.1:9090", o.MetricsAddr)
		}
		if o.MetricsAddr == o.Addr {
			return o, fmt.Errorf("--metrics-addr %q: must differ from --addr: /metrics is never served on the public listener", o.MetricsAddr)
		}
	}

	if err := o.resolveBaseURL(s, host, port); err != nil {
		return o, err
	}

	needDir := s.Dev && s.MasterKey == "" && s.MasterKeyFile == "" // dev mode keeps its master key there
	if o.Backend, o.DB, o.DataDir, err = ResolveDB(s.DB, s.DataDir, needDir); err != nil {
		return o, err
	}

	switch {
	case s.MasterKey != "":
		o.MasterKey, err = masterkey.Parse(s.MasterKey)
		if err != nil {
			err = fmt.Errorf("LATCHKEY_MASTER_KEY: %w", err)
		}
	case s.MasterKeyFile != "":
		o.MasterKey, err = masterkey.Load(s.MasterKeyFile)
	case s.Dev:
		o.MasterKey, o.MasterKeyCreated, err = masterkey.LoadOrCreate(filepath.Join(o.DataDir, masterKeyFile))
	default:
		err = errors.New("no master key: set LATCHKEY_MASTER_KEY or --master-key-file (make one with: openssl rand -base64 32)")
	}
	return o, err
}

func (o *Options) resolveBaseURL(s Serve, host, port string) error {
	if s.BaseURL == "" {
		if !s.Dev && !s.InsecureHTTP {
			return errors.New("--base-url is required outside dev mode (the public https:// URL clients reach Latchkey at)")
		}
		if !isLoopback(host) {
			return fmt.Errorf("--addr %s is not a loopback address: plain HTTP is only for loopback; set --base-url to the https:// URL in front of it", o.Addr)
		}
		o.BaseURL = "http://" + net.JoinHostPort(host, port)
		return nil
	}
	u, err := url.Parse(s.BaseURL)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("--base-url %q: want an absolute http(s) URL without query or fragment", s.BaseURL)
	}
	if u.Scheme == "http" && !((s.Dev || s.InsecureHTTP) && isLoopback(u.Hostname())) {
		return fmt.Errorf("--base-url %q: the issuer must be https:// (plain HTTP only on loopback with --dev or --insecure-http)", s.BaseURL)
	}
	o.BaseURL = strings.TrimSuffix(u.String(), "/")
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// prepareDataDir creates the data directory (0700) and proves it is writable.
func prepareDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data directory %s: %w", dir, unwrapPath(err))
	}
	f, err := os.CreateTemp(dir, ".write-test-*")
	if err != nil {
		return fmt.Errorf("data directory %s is not writable: %w", dir, unwrapPath(err))
	}
	f.Close()
	return os.Remove(f.Name())
}

// unwrapPath drops the path an *os.PathError repeats, since the message names it already.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// ResolveDB picks the backend for a --db value and, when SQLite needs a file in it or
// needDir says so, prepares the data directory.
func ResolveDB(db, dataDir string, needDir bool) (backend, dsn, dir string, err error) {
	backend, dsn = "sqlite", db
	switch {
	case strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://"):
		backend = "postgres"
	case strings.HasPrefix(db, "sqlite:"):
		dsn = strings.TrimPrefix(db, "sqlite:")
	}
	if dataDir == "" && (backend == "sqlite" && dsn == "" || needDir) {
		dataDir = DefaultDataDir
	}
	if dataDir != "" {
		if err := prepareDataDir(dataDir); err != nil {
			return "", "", "", err
		}
	}
	if backend == "sqlite" && dsn == "" {
		dsn = filepath.Join(dataDir, dbFile)
	}
	return backend, dsn, dataDir, nil
}

// Issuer returns the issuer URL of a realm.
func (o Options) Issuer(realm string) string {
	return o.BaseURL + "/realms/" + realm
}

// LoadMasterKey finds the master key for a command other than serve: the key itself,
// else a key file, else the one dev mode keeps in the data directory.
func LoadMasterKey(key, file, dataDir string) (*masterkey.Key, error) {
	switch {
	case key != "":
		k, err := masterkey.Parse(key)
		if err != nil {
			return nil, fmt.Errorf("LATCHKEY_MASTER_KEY: %w", err)
		}
		return k, nil
	case file != "":
		return masterkey.Load(file)
	}
	if dataDir == "" {
		dataDir = DefaultDataDir
	}
	k, err := masterkey.Load(filepath.Join(dataDir, masterKeyFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, errors.New("no master key: set LATCHKEY_MASTER_KEY or --master-key-file")
	}
	return k, err
}
