package postgres

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/latchkey/latchkey/storage"
	"github.com/latchkey/latchkey/storage/storagetest"
)

// The test harness. Each run makes one template database and migrates it once;
// every test database is a fresh copy of it (CREATE DATABASE ... TEMPLATE),
// dropped when its test ends.

const (
	adminDSNEnv     = "LATCHKEY_TEST_POSTGRES"
	requireEnv      = "LATCHKEY_REQUIRE_POSTGRES"
	defaultAdminDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	dbPrefix        = "latchkey_test_"
)

var (
	adminURL   *url.URL      // the admin DSN, parsed; per-database DSNs change its path
	admin      *pgxpool.Pool // connected to the admin database, for CREATE/DROP DATABASE
	templateDB string        // migrated once per run
	// unreachable says why the server could not be reached: the tests skip, or
	// fail when requireEnv is 1.
	unreachable string
	// setupErr says why a reachable server could not be set up for tests: always a failure.
	setupErr string
)

func TestMain(m *testing.M) {
	ctx := context.Background()
	if err := setUp(ctx); err != nil {
		setupErr = "PostgreSQL test setup failed: " + err.Error()
		fmt.Fprintln(os.Stderr, setupErr)
	}
	if unreachable != "" {
		if os.Getenv(requireEnv) == "1" {
			fmt.Fprintf(os.Stderr, "\nFAIL: %s=1 but %s\n\n", requireEnv, unreachable)
		} else {
			fmt.Fprintf(os.Stderr, "\n"+
				"********************************************************************\n"+
				"*** SKIPPING the PostgreSQL store tests: %s\n"+
				"*** Set %s to a reachable server's admin DSN,\n"+
				"*** or %s=1 to make this a failure.\n"+
				"********************************************************************\n\n",
				unreachable, adminDSNEnv, requireEnv)
		}
	}
	code := m.Run()
	tearDown()
	os.Exit(code)
}

func setUp(ctx context.Context) error {
	dsn := cmp.Or(os.Getenv(adminDSNEnv), defaultAdminDSN)
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return fmt.Errorf("%s must be a postgres:// URL", adminDSNEnv)
	}
	adminURL = u

	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return fmt.Errorf("%s is not a valid DSN", adminDSNEnv)
	}
	cfg.ConnConfig.ConnectTimeout = 2 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	pingCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		unreachable = connectError(adminURL.Host, err).Error()
		return nil
	}
	admin = pool

	name := dbPrefix + "tmpl_" + randomName()
	if err := createDatabase(ctx, name, "template0"); err != nil {
		return err
	}
	templateDB = name
	s, err := Open(ctx, dsnFor(name))
	if err != nil {
		return fmt.Errorf("migrate the template database: %w", err)
	}
	// A template must have no connections when it is copied.
	return s.Close()
}

func tearDown() {
	if admin == nil {
		return
	}
	if templateDB != "" {
		if err := dropDatabase(templateDB); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	admin.Close()
}

// needPostgres skips or fails the test when there is no server to test against.
func needPostgres(t *testing.T) {
	t.Helper()
	switch {
	case setupErr != "":
		t.Fatal(setupErr)
	case unreachable != "" && os.Getenv(requireEnv) == "1":
		t.Fatalf("%s=1 but %s", requireEnv, unreachable)
	case unreachable != "":
		t.Skipf("SKIPPED: %s (set %s=1 to fail instead)", unreachable, requireEnv)
	}
}

func randomName() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // never fails, per crypto/rand's documentation
	return hex.EncodeToString(b)
}

// dsnFor is the admin DSN pointed at another database.
func dsnFor(db string) string {
	u := *adminURL
	u.Path, u.RawPath = "/"+db, ""
	return u.String()
}

func createDatabase(ctx context.Context, name, template string) error {
	_, err := admin.Exec(ctx, `CREATE DATABASE `+pgx.Identifier{name}.Sanitize()+` TEMPLATE `+pgx.Identifier{template}.Sanitize())
	if err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

func dropDatabase(name string) error {
	// Not the test's context: it is already cancelled when cleanups run.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := admin.Exec(ctx, `DROP DATABASE IF EXISTS `+pgx.Identifier{name}.Sanitize()+` WITH (FORCE)`)
	if err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// newDatabase creates a database for the test from template ("template0" for
// an empty one) and returns its DSN. It is dropped when the test ends.
func newDatabase(t *testing.T, template string) string {
	t.Helper()
	needPostgres(t)
	name := dbPrefix + randomName()
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

// openStore opens a store on dsn, closed when the test ends (before its database is dropped).
func openStore(t *testing.T, dsn string) *Store {
	t.Helper()
	s, err := Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// newStore is a fresh, migrated store on a database of its own.
func newStore(t *testing.T) *Store {
	t.Helper()
	return openStore(t, newDatabase(t, templateDB))
}

func TestConformance(t *testing.T) {
	needPostgres(t)
	storagetest.Run(t, func(t *testing.T) storage.Store { return newStore(t) })
}

func TestReady_FailsOnceClosed(t *testing.T) {
	s := newStore(t)
	if err := s.Ready(t.Context()); err != nil {
		t.Fatalf("Ready on a fresh store: %v", err)
	}
	_ = s.Close()
	if err := s.Ready(t.Context()); err == nil {
		t.Fatal("Ready succeeded on a closed store")
	}
}

func TestOpen_RefusesNewerSchema(t *testing.T) {
	dsn := newDatabase(t, templateDB)
	s := openStore(t, dsn)
	newer := s.schemaVersion + 1
	if _, err := s.pool.Exec(t.Context(), `INSERT INTO goose_db_version (version_id, is_applied) VALUES ($1, true)`, newer); err != nil {
		t.Fatal(err)
	}

	if err := s.Ready(t.Context()); err == nil {
		t.Fatal("Ready accepted a schema newer than this binary's")
	}
	_, err := Open(t.Context(), dsn)
	want := fmt.Sprintf("database schema version %d is newer than this Latchkey (knows up to %d); upgrade Latchkey", newer, s.schemaVersion)
	if err == nil || !containsLine(err.Error(), want) {
		t.Fatalf("Open on a newer schema: error %v, want one line containing %q", err, want)
	}
}

// containsLine reports whether msg is a single line containing want.
func containsLine(msg, want string) bool {
	return !strings.ContainsAny(msg, "\r\n") && strings.Contains(msg, want)
}
