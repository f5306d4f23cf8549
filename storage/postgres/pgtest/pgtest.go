// Package pgtest gives tests a fresh, migrated PostgreSQL database of their own.
// It is for tests only: it creates and drops databases on the server whose admin
// DSN is in LATCHKEY_TEST_POSTGRES (default: postgres@127.0.0.1:5432, no TLS).
// When that server cannot be reached, tests that need it skip, loudly, or fail
// if LATCHKEY_REQUIRE_POSTGRES=1.
//
// A test binary that uses it runs its tests through Main:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// The first test that asks for a database makes a template database for the
// process and migrates it once; every database after that is a copy of it
// (CREATE DATABASE ... TEMPLATE), dropped when its test ends. Main drops the
// template when the tests are done.
package pgtest

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/latchkey/latchkey/storage/postgres"
)

const (
	// serverEnv names the admin DSN (a postgres:// URL) of the server to test
	// against; its role must be allowed to create databases.
	serverEnv     = "LATCHKEY_TEST_POSTGRES"
	defaultServer = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	// requireEnv set to 1 makes a missing server a test failure instead of a skip.
	requireEnv = "LATCHKEY_REQUIRE_POSTGRES"
	// prefix starts the name of every database this package creates.
	prefix = "latchkey_test_"
)

var (
	mainRunning bool // Main is running the tests, so the template will be dropped

	setUpOnce sync.Once
	serverURL *url.URL      // the admin DSN, parsed; per-database DSNs change its path
	admin     *pgxpool.Pool // connected to the admin database, for CREATE/DROP DATABASE
	template  string        // the migrated template, once made
	// unreachable says why the server could not be reached: tests skip, or
	// fail when requireEnv is 1.
	unreachable string
	// setUpErr says why a reachable server could not be set up: always a failure.
	setUpErr error
)

// Main runs the tests, then drops the template database and closes the admin
// connections. Call it from TestMain; the test binary exits with the tests' status.
func Main(m *testing.M) {
	mainRunning = true
	m.Run()
	if admin == nil {
		return
	}
	if template != "" {
		if err := dropDatabase(template); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest:", err)
		}
	}
	admin.Close()
}

// DSN returns the DSN of a new database, migrated to the newest schema, that
// the test alone uses; it is dropped when the test ends (close what uses it
// first: a cleanup registered after DSN runs before the drop). Without a
// reachable server DSN skips the test, or fails it when LATCHKEY_REQUIRE_POSTGRES=1.
func DSN(t testing.TB) string {
	t.Helper()
	need(t)
	return newDatabase(t, template)
}

// EmptyDSN is like DSN, but the database is empty: not migrated.
func EmptyDSN(t testing.TB) string {
	t.Helper()
	need(t)
	return newDatabase(t, "template0")
}

// need sets up on first use, then skips or fails t when there is no server to use.
func need(t testing.TB) {
	t.Helper()
	if !mainRunning {
		t.Fatal("pgtest: the package's TestMain must call pgtest.Main, which drops the template database at the end")
	}
	setUpOnce.Do(setUp)
	switch {
	case setUpErr != nil:
		t.Fatalf("pgtest: PostgreSQL test setup failed: %v", setUpErr)
	case unreachable != "" && os.Getenv(requireEnv) == "1":
		t.Fatalf("pgtest: %s=1 but %s", requireEnv, unreachable)
	case unreachable != "":
		t.Skipf("SKIPPED, NOT TESTED ON POSTGRESQL: %s (set %s=1 to fail instead)", unreachable, requireEnv)
	}
}

func setUp() {
	ctx := context.Background()
	dsn := cmp.Or(os.Getenv(serverEnv), defaultServer)
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		setUpErr = fmt.Errorf("%s must be a postgres:// URL", serverEnv)
		return
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// The parse error may quote the password.
		setUpErr = fmt.Errorf("%s is not a valid DSN", serverEnv)
		return
	}
	serverURL = u
	cfg.ConnConfig.ConnectTimeout = 2 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		setUpErr = err
		return
	}
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		msg, _, _ := strings.Cut(err.Error(), "\n")
		unreachable = fmt.Sprintf("cannot reach PostgreSQL at %s: %s", u.Host, msg)
		if os.Getenv(requireEnv) != "1" {
			// Loud even without -v, which hides the skip messages.
			fmt.Fprintf(os.Stderr, "\n"+
				"********************************************************************\n"+
				"*** SKIPPING the tests that need PostgreSQL: %s\n"+
				"*** Set %s to a reachable server's admin DSN,\n"+
				"*** or %s=1 to make this a failure.\n"+
				"********************************************************************\n\n",
				unreachable, serverEnv, requireEnv)
		}
		return
	}
	admin = pool

	name := prefix + "tmpl_" + randomName()
	if err := createDatabase(ctx, name, "template0"); err != nil {
		setUpErr = err
		return
	}
	template = name
	s, err := postgres.Open(ctx, dsnFor(name))
	if err != nil {
		setUpErr = fmt.Errorf("migrate the template database: %w", err)
		return
	}
	// A template must have no connections when it is copied.
	setUpErr = s.Close()
}

func randomName() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // never fails, per crypto/rand's documentation
	return hex.EncodeToString(b)
}

// dsnFor is the admin DSN pointed at another database.
func dsnFor(db string) string {
	u := *serverURL
	u.Path, u.RawPath = "/"+db, ""
	return u.String()
}

// newDatabase creates a database for t from template and returns its DSN. It
// is dropped when the test ends.
func newDatabase(t testing.TB, template string) string {
	t.Helper()
	name := prefix + randomName()
	if err := createDatabase(t.Context(), name, template); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := dropDatabase(name); err != nil {
			t.Error(err)
		}
	})
	return dsnFor(name)
}

func createDatabase(ctx context.Context, name, template string) error {
	_, err := admin.Exec(ctx, `CREATE DATABASE `+pgx.Identifier{name}.Sanitize()+` TEMPLATE `+pgx.Identifier{template}.Sanitize())
	if err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

func dropDatabase(name string) error {
	// Not a test's context: it is already cancelled when cleanups run.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// FORCE: a connection the test left open must not keep the database alive.
	_, err := admin.Exec(ctx, `DROP DATABASE IF EXISTS `+pgx.Identifier{name}.Sanitize()+` WITH (FORCE)`)
	if err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}
