package postgres_test

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/latchkey/latchkey/storage/postgres"
	"github.com/latchkey/latchkey/storage/postgres/pgtest"
)

const password = "hunter2-not-for-logs"

func TestMigrate_BrokenMigrationLeavesNothingBehind(t *testing.T) {
	dsn := pgtest.EmptyDSN(t)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	db := stdlib.OpenDB(*cfg)
	defer db.Close()

	fsys := fstest.MapFS{
		"00001_good.sql": {Data: []byte("-- +goose Up\nCREATE TABLE good (id int);\n")},
		// The first statements succeed; the last fails, after the table exists.
		"00002_broken.sql": {Data: []byte("-- +goose Up\nCREATE TABLE partial (id int);\nINSERT INTO partial VALUES (1);\nSELECT no_such_column FROM partial;\n")},
	}
	_, err = postgres.Migrate(t.Context(), db, fsys)
	if err == nil || !strings.Contains(err.Error(), "apply migration 2") {
		t.Fatalf("migrate with a broken migration: error %v, want one naming migration 2", err)
	}

	var version int64
	var good, partial bool
	err = db.QueryRowContext(t.Context(), `
		SELECT (SELECT max(version_id) FROM goose_db_version),
			to_regclass('public.good') IS NOT NULL,
			to_regclass('public.partial') IS NOT NULL`).Scan(&version, &good, &partial)
	if err != nil {
		t.Fatal(err)
	}
	if version != 1 || !good || partial {
		t.Fatalf("after the broken migration: version %d, table good %v, table partial %v; want 1, true, false", version, good, partial)
	}

	// Once fixed, the migration applies from where it stopped.
	fsys["00002_broken.sql"] = &fstest.MapFile{Data: []byte("-- +goose Up\nCREATE TABLE partial (id int);\n")}
	newest, err := postgres.Migrate(t.Context(), db, fsys)
	if err != nil || newest != 2 {
		t.Fatalf("migrate after the fix = %d, %v; want 2, nil", newest, err)
	}
}

func TestOpen_ConcurrentStartsMigrateOnce(t *testing.T) {
	dsn := pgtest.EmptyDSN(t)

	const instances = 3
	stores := make([]*postgres.Store, instances)
	errs := make([]error, instances)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range instances {
		wg.Go(func() {
			<-start
			stores[i], errs[i] = postgres.Open(t.Context(), dsn)
		})
	}
	close(start)
	wg.Wait()
	for i := range instances {
		if errs[i] != nil {
			t.Fatalf("instance %d: %v", i, errs[i])
		}
		t.Cleanup(func() { _ = stores[i].Close() })
		if err := stores[i].Ready(t.Context()); err != nil {
			t.Fatalf("instance %d: %v", i, err)
		}
	}

	// Each version recorded once, up to the newest. (Versions may skip numbers:
	// migrations are numbered as branches claim them.)
	var rows, versions, newest int64
	err := stores[0].Pool().QueryRow(t.Context(),
		`SELECT count(*), count(DISTINCT version_id), max(version_id) FROM goose_db_version`).Scan(&rows, &versions, &newest)
	if err != nil {
		t.Fatal(err)
	}
	if want := postgres.Migrations() + 1; rows != want || versions != want {
		t.Fatalf("goose_db_version has %d rows for %d versions; want %d of each", rows, versions, want)
	}
}

func TestOpen_UnreachableServerFailsFastInOneLine(t *testing.T) {
	// A port that was just free: nothing listens there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()

	began := time.Now()
	_, err = postgres.Open(t.Context(), fmt.Sprintf("postgres://latchkey:%s@127.0.0.1:%d/latchkey?sslmode=disable", password, port))
	if elapsed := time.Since(began); elapsed > 5*time.Second {
		t.Fatalf("Open took %v to give up on an unreachable server", elapsed)
	}
	want := fmt.Sprintf("cannot reach PostgreSQL at 127.0.0.1:%d: ", port)
	if err == nil || !strings.HasPrefix(err.Error(), want) || !containsLine(err.Error(), want) {
		t.Fatalf("Open on an unreachable server: error %v, want one line starting %q", err, want)
	}
	if strings.Contains(err.Error(), password) {
		t.Fatalf("the error shows the password: %v", err)
	}
	t.Log(err)
}

func TestOpen_BadDSNIsNotEchoed(t *testing.T) {
	for _, dsn := range []string{
		"postgres://latchkey:" + password + "@db.example:notaport/latchkey",
		"postgres://latchkey:" + password + "@[::1/latchkey",
		"host=db.example port=notaport password=" + password,
		"host=db.example sslmode=sometimes password=" + password,
		"postgres://latchkey:" + password + "@db.example/latchkey?connect_timeout=soon",
	} {
		_, err := postgres.Open(t.Context(), dsn)
		if err == nil || !containsLine(err.Error(), "invalid PostgreSQL DSN") {
			t.Errorf("Open(bad DSN): error %v, want one line saying the DSN is invalid", err)
			continue
		}
		if strings.Contains(err.Error(), password) || strings.Contains(err.Error(), "db.example") {
			t.Errorf("the error echoes the DSN: %v", err)
		}
	}
}

func TestOpen_MissingDatabaseSaysSoInOneLine(t *testing.T) {
	// The DSN of a database that exists, pointed at one beside it that does not.
	u, err := url.Parse(pgtest.EmptyDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	u.Path += "_missing"
	_, err = postgres.Open(t.Context(), u.String())
	if err == nil || !containsLine(err.Error(), "cannot connect to PostgreSQL at ") || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("Open on a missing database: error %v, want one line saying it does not exist", err)
	}
}
