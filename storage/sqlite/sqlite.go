// Package sqlite owns Latchkey's embedded storage backend: one SQLite file, its schema and its queries.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/latchkey/latchkey/storage"
)

var _ storage.Store = (*Store)(nil)

// Config says where the database lives and how long to wait for another writer.
type Config struct {
	// Path is the database file; it is created if missing.
	Path string
	// BusyTimeout is how long a statement waits for a lock held by another
	// connection or process before giving up. 0 means Timeout.
	BusyTimeout time.Duration
	// Timeout bounds every call: a read must be answered, and a write must start
	// (its turn at the writer, under the write lock), within it, or the call fails
	// with storage.ErrUnavailable. 0 means storage.DefaultTimeout.
	Timeout time.Duration
	// Synchronous is SQLite's durability setting: "FULL" (the default) makes every
	// commit (say, a rotated refresh token already answered to a client) survive a
	// power loss or an OS crash; "NORMAL" survives a crash of the process only, and
	// saves an fsync per commit.
	Synchronous string
}

func (c Config) synchronous() string {
	if strings.EqualFold(c.Synchronous, "normal") {
		return "NORMAL"
	}
	return "FULL"
}

// Store is a storage.Store on one SQLite file.
//
// Every statement that writes goes through writer, a single connection whose
// transactions begin IMMEDIATE: inside the process writers queue for that
// connection instead of fighting over the file lock, and across processes the
// lock is taken up front, so a transaction never has to upgrade a read lock
// halfway (which is what turns into SQLITE_BUSY without waiting). Plain reads use
// the reader pool, which WAL lets run alongside the writer.
type Store struct {
	path          string
	writer        *sql.DB
	reader        *stmtDB
	writerStmts   *stmtDB // the writer's prepared statements
	schemaVersion int64   // the newest embedded migration
	timeout       time.Duration

	writes    chan *write   // to writeLoop: see inTx
	closed    chan struct{} // closed by Close
	loopDone  chan struct{} // closed when writeLoop has stopped
	closeOnce sync.Once

	exclusive sync.Map // name -> *sync.Mutex, for Exclusive
	watchers  watchers // of WatchChanges, woken after commits that recorded changes
}

// Open opens (creating if needed) the database at cfg.Path, applies any pending
// migrations and returns a ready store. Its errors are one line naming the file.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Path == "" {
		return nil, errors.New("sqlite: no database path given")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = storage.DefaultTimeout
	}
	if cfg.BusyTimeout == 0 {
		cfg.BusyTimeout = cfg.Timeout
	}
	if err := createFile(cfg.Path); err != nil {
		return nil, err
	}

	if err := enableWAL(ctx, cfg); err != nil {
		return nil, describeOpenError(cfg, err)
	}
	writer, err := sql.Open("sqlite", dsn(cfg, false))
	if err != nil {
		return nil, describeOpenError(cfg, err)
	}
	writer.SetMaxOpenConns(1)
	s := &Store{path: cfg.Path, writer: writer, timeout: cfg.Timeout}

	// Take the write lock once before migrating, so a file that another process
	// keeps locked is reported plainly here rather than deep inside the migration
	// tool (whose own retries would also stretch the wait).
	if err := s.probeWrite(ctx); err != nil {
		writer.Close()
		return nil, describeOpenError(cfg, err)
	}

	fsys, err := migrationsFS()
	if err != nil {
		writer.Close()
		return nil, fmt.Errorf("sqlite: embedded migrations: %w", err)
	}
	version, err := migrate(ctx, writer, fsys)
	if err != nil {
		writer.Close()
		var newer *newerSchemaError
		if errors.As(err, &newer) {
			return nil, fmt.Errorf("sqlite: %q: %w", cfg.Path, err)
		}
		return nil, describeOpenError(cfg, err)
	}
	s.schemaVersion = version

	reader, err := sql.Open("sqlite", dsn(cfg, true))
	if err != nil {
		writer.Close()
		return nil, describeOpenError(cfg, err)
	}
	reader.SetMaxOpenConns(max(4, runtime.NumCPU()))
	s.reader = newStmtDB(reader)
	s.reader.timeout = cfg.Timeout
	if err := reader.PingContext(ctx); err != nil {
		s.Close()
		return nil, describeOpenError(cfg, err)
	}
	s.writerStmts = newStmtDB(s.writer)
	s.writes, s.closed, s.loopDone = make(chan *write), make(chan struct{}), make(chan struct{})
	go s.writeLoop()
	return s, nil
}

// Close stops the writer and releases both connection pools.
func (s *Store) Close() error {
	if s.closed != nil {
		s.closeOnce.Do(func() { close(s.closed) })
		<-s.loopDone
	}
	var errs []error
	if s.reader != nil {
		errs = append(errs, s.reader.Close())
	}
	errs = append(errs, s.writer.Close())
	return errors.Join(errs...)
}

// Ready pings the database and checks that its schema is the one this binary knows.
func (s *Store) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.reader.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: database %q: %w", s.path, unavailable(err))
	}
	v, err := currentVersion(ctx, s.reader.DB)
	if err != nil {
		return fmt.Errorf("sqlite: database %q: reading schema version: %w", s.path, unavailable(err))
	}
	if v != s.schemaVersion {
		return fmt.Errorf("sqlite: database %q: schema version %d, want %d", s.path, v, s.schemaVersion)
	}
	return nil
}

// probeWrite begins and rolls back an IMMEDIATE transaction, which needs both a
// readable database and the write lock.
func (s *Store) probeWrite(ctx context.Context) error {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	return tx.Rollback()
}

// enableWAL puts the file in WAL mode. The mode is a property of the file, not
// of a connection, so it is set once here rather than in the DSN: two connections
// switching a new file at once can each hold the read lock the other must
// upgrade past, and SQLite then fails one at once with SQLITE_BUSY instead of
// waiting. Here that one tries again until the busy timeout is spent.
func enableWAL(ctx context.Context, cfg Config) error {
	db, err := sql.Open("sqlite", dsnWith(cfg, url.Values{}))
	if err != nil {
		return err
	}
	defer db.Close()
	deadline := time.Now().Add(cfg.BusyTimeout)
	for {
		var mode string
		err := db.QueryRowContext(ctx, `PRAGMA journal_mode = WAL`).Scan(&mode)
		if err == nil && mode != "wal" {
			return fmt.Errorf("journal mode is %q after asking for WAL", mode)
		}
		if sqliteCode(err)&0xff != sqlite3.SQLITE_BUSY || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// dsn builds the connection string of the writer or the reader pool. Pragmas go
// in the DSN so that every pooled connection gets them, not just the first.
func dsn(cfg Config, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "synchronous("+cfg.synchronous()+")")
	q.Add("_pragma", "foreign_keys(1)")
	if readOnly {
		// The reader pool never writes; make a slip an error rather than an
		// unserialised write.
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Set("_txlock", "immediate")
	}
	return dsnWith(cfg, q)
}

// dsnWith adds the busy timeout to q and makes the DSN.
func dsnWith(cfg Config, q url.Values) string {
	// busy_timeout first, so the pragmas after it wait for locks too.
	q["_pragma"] = append([]string{"busy_timeout(" + strconv.FormatInt(cfg.BusyTimeout.Milliseconds(), 10) + ")"}, q["_pragma"]...)
	// A file: URI with an escaped path, so a path holding '?' or '#' stays a path.
	return "file:" + (&url.URL{Path: cfg.Path}).EscapedPath() + "?" + q.Encode()
}

// createFile creates a missing database file readable by its owner only: it
// holds password hashes and sealed keys, and SQLite gives its -wal and -shm files
// the same mode. An existing file keeps the mode its operator chose. A missing or
// non-directory parent is reported here, more plainly than SQLite's "unable to
// open database file".
func createFile(path string) error {
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("sqlite: cannot open database %q: directory %q does not exist", path, dir)
	case err != nil:
		return fmt.Errorf("sqlite: cannot open database %q: %w", path, err)
	case !fi.IsDir():
		return fmt.Errorf("sqlite: cannot open database %q: %q is not a directory", path, dir)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case errors.Is(err, os.ErrExist):
		return nil // SQLite will say if what exists is not a database
	case err != nil:
		return fmt.Errorf("sqlite: cannot create database %q: %w", path, err)
	}
	// An empty file is a valid empty database.
	return f.Close()
}

// describeOpenError turns what went wrong at Open into one line naming the file.
func describeOpenError(cfg Config, err error) error {
	switch sqliteCode(err) & 0xff {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return fmt.Errorf("sqlite: database %q is locked, probably by another Latchkey process (waited %v)", cfg.Path, cfg.BusyTimeout)
	case sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT:
		return fmt.Errorf("sqlite: %q is not a SQLite database, or is corrupt", cfg.Path)
	case sqlite3.SQLITE_CANTOPEN:
		return fmt.Errorf("sqlite: cannot open database %q (is it a directory, or unreadable?)", cfg.Path)
	case sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM:
		return fmt.Errorf("sqlite: database %q is read-only", cfg.Path)
	}
	return fmt.Errorf("sqlite: database %q: %w", cfg.Path, err)
}

// sqliteCode returns the extended SQLite result code carried by err, or 0.
func sqliteCode(err error) int {
	var e *sqlite.Error
	if errors.As(err, &e) {
		return e.Code()
	}
	return 0
}

// unavailable marks err with storage.ErrUnavailable when it says the database
// did not answer in time: a deadline passed, or a lock stayed taken (by another
// process) for the whole busy timeout.
func unavailable(err error) error {
	if err == nil || errors.Is(err, storage.ErrUnavailable) {
		return err
	}
	switch sqliteCode(err) & 0xff {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_INTERRUPT:
	default:
		if !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
	}
	return fmt.Errorf("%w: %w", storage.ErrUnavailable, err)
}

// mapWriteError translates constraint violations into the storage sentinels.
// what names the entity for the message.
func mapWriteError(err error, what string) error {
	if err == nil {
		return nil
	}
	switch sqliteCode(err) {
	case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
		return fmt.Errorf("%s: %w", what, storage.ErrConflict)
	case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		// The only foreign keys a caller can break point at the realm.
		return fmt.Errorf("%s: realm does not exist: %w", what, storage.ErrNotFound)
	}
	return fmt.Errorf("%s: %w", what, err)
}
