// Package postgres is Latchkey's PostgreSQL store: its schema, migrations and queries.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/latchkey/latchkey/storage"
)

var _ storage.Store = (*Store)(nil)

// defaultConnectTimeout bounds a connection attempt when the DSN sets no
// connect_timeout, so an unreachable server fails Open instead of hanging. A
// connection made for a call is bounded by the call's timeout as well.
const defaultConnectTimeout = 10 * time.Second

// Store is a storage.Store backed by PostgreSQL. It is safe for concurrent use,
// and several stores (in several processes) may share one database.
type Store struct {
	pool deadlinePool
	// schemaVersion is the newest migration this binary embeds.
	schemaVersion int64
	// notifier sends the NOTIFY that follows commits that recorded changes.
	notifier *notifier
	// listenConfig is the configuration of WatchChanges' own connections.
	listenConfig *pgx.ConnConfig
	// watching counts the running WatchChanges calls, so that Close waits for
	// their connections to close.
	watching  sync.WaitGroup
	closeOnce sync.Once
}

// Config says which database to use and how long a call may take.
type Config struct {
	// DSN names the database: a postgres:// URL or key=value pairs.
	DSN string
	// Timeout bounds each statement of a call, and the wait for a connection
	// before it: past it the call fails with storage.ErrUnavailable. 0 means
	// storage.DefaultTimeout.
	Timeout time.Duration
}

// Open connects to the database named by dsn (a postgres:// URL or key=value
// pairs) with the default timeout, applies any pending migrations and returns a
// ready store.
func Open(ctx context.Context, dsn string) (*Store, error) {
	return OpenConfig(ctx, Config{DSN: dsn})
}

// keepAlive makes TCP notice a server that went away (host down, network cut)
// on an idle pooled connection within about half a minute, not hours.
var keepAlive = net.KeepAliveConfig{Enable: true, Idle: 15 * time.Second, Interval: 5 * time.Second, Count: 3}

// OpenConfig connects to the database cfg names, applies any pending migrations
// and returns a ready store.
func OpenConfig(ctx context.Context, c Config) (*Store, error) {
	if c.Timeout <= 0 {
		c.Timeout = storage.DefaultTimeout
	}
	cfg, err := pgxpool.ParseConfig(c.DSN)
	if err != nil {
		// The parse error quotes the DSN, which may hold a password: say less.
		return nil, errors.New("invalid PostgreSQL DSN (not shown, as it may hold a password): " +
			"want postgres://user@host:port/dbname?sslmode=... or host=... dbname=... pairs")
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	cfg.ConnConfig.DialFunc = (&net.Dialer{KeepAliveConfig: keepAlive}).DialContext
	addr := net.JoinHostPort(cfg.ConnConfig.Host, strconv.Itoa(int(cfg.ConnConfig.Port)))

	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("cannot set up PostgreSQL connections to %s: %s", addr, oneLine(err))
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, connectError(addr, err)
	}

	// goose needs a database/sql handle. It gets connections of its own, so
	// closing it closes them, and with them any advisory lock left behind.
	db := stdlib.OpenDB(*cfg.ConnConfig.Copy())
	version, err := migrate(ctx, db, embeddedMigrations())
	if closeErr := db.Close(); err == nil && closeErr != nil {
		err = fmt.Errorf("close migration connections: %w", closeErr)
	}
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("PostgreSQL at %s: %w", addr, err)
	}
	listenConfig := cfg.ConnConfig.Copy()
	if listenConfig.RuntimeParams == nil {
		listenConfig.RuntimeParams = map[string]string{}
	}
	listenConfig.RuntimeParams["application_name"] = "latchkey change feed"
	s := &Store{pool: deadlinePool{pool: pool, timeout: c.Timeout}, schemaVersion: version,
		notifier: newNotifier(), listenConfig: listenConfig}
	go s.notifier.run(s.pool)
	return s, nil
}

// connectError turns a failed first connection into one line that names the
// server and the cause, never the password.
func connectError(addr string, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// The server answered: wrong password, no such database, no permission.
		return fmt.Errorf("cannot connect to PostgreSQL at %s: %s (SQLSTATE %s)", addr, pgErr.Message, pgErr.Code)
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Err != nil {
		return fmt.Errorf("cannot reach PostgreSQL at %s: %s", addr, oneLine(opErr.Err))
	}
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) && connErr.Unwrap() != nil {
		// Skip pgconn's prefix, which repeats the user and database.
		err = connErr.Unwrap()
	}
	return fmt.Errorf("cannot reach PostgreSQL at %s: %s", addr, oneLine(err))
}

// oneLine keeps the first line of an error: pgconn joins one error per
// address tried, and the first says enough.
func oneLine(err error) string {
	msg, _, _ := strings.Cut(err.Error(), "\n")
	return strings.TrimSpace(msg)
}

// Close sends the NOTIFY still due, ends WatchChanges calls and releases the
// store's connections.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.notifier.close()
		s.watching.Wait()
		s.pool.Close()
	})
	return nil
}

// Ready pings the database and checks that its schema is the one this binary
// embeds: an instance must not serve against a schema it does not know.
func (s *Store) Ready(ctx context.Context) error {
	var version int64
	// goose_db_version is goose's default version table.
	err := s.pool.QueryRow(ctx, `SELECT COALESCE(max(version_id), 0) FROM goose_db_version`).Scan(&version)
	if err != nil {
		return fmt.Errorf("postgres store not ready: %w", err)
	}
	if version != s.schemaVersion {
		return fmt.Errorf("postgres store not ready: database schema version %d, this Latchkey expects %d", version, s.schemaVersion)
	}
	return nil
}

// querier is what a pool and a transaction have in common, so one query
// function serves both a plain call and a transaction (ApplySeed's, Sweep's).
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// scanner is a single row or the current row of many.
type scanner interface {
	Scan(dest ...any) error
}

// classify turns the constraint errors PostgreSQL reports into the storage
// sentinels; other errors pass through.
func classify(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "23505": // unique_violation
			return storage.ErrConflict
		case "23503": // foreign_key_violation: the only ones callers can hit point at realms
			return fmt.Errorf("realm does not exist: %w", storage.ErrNotFound)
		}
	}
	return err
}

// notFound maps "no row" to storage.ErrNotFound; other errors pass through.
func notFound(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return storage.ErrNotFound
	}
	return err
}

// ts is a time as a timestamptz argument: NULL for the zero time, otherwise
// the instant cut to the microsecond PostgreSQL keeps.
func ts(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Truncate(time.Microsecond)
}

// nt scans a nullable timestamptz into *t: the zero time for NULL, UTC otherwise.
func nt(t *time.Time) pgtype.TimestamptzScanner { return nullTime{t} }

type nullTime struct{ t *time.Time }

func (n nullTime) ScanTimestamptz(v pgtype.Timestamptz) error {
	if !v.Valid {
		*n.t = time.Time{}
		return nil
	}
	*n.t = v.Time.UTC()
	return nil
}

// bytesOrNull is b as a bytea argument, NULL when empty, so that nil comes back nil.
func bytesOrNull(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// list is a string list as a text[] argument: never NULL, since the columns
// are NOT NULL and an empty list is just empty.
func list(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
