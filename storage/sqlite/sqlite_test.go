package sqlite

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/latchkey/latchkey/storage"
	"github.com/latchkey/latchkey/storage/storagetest"
)

// helperEnv, when set, turns the test binary into a helper process that races
// to rotate one refresh token (see TestRotateRefreshToken_ExactlyOnceAcrossProcesses).
const helperEnv = "LATCHKEY_SQLITE_ROTATE_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(rotateHelper())
	}
	os.Exit(m.Run())
}

func openTestStore(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(t.Context(), Config{Path: path})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store {
		return openTestStore(t, filepath.Join(t.TempDir(), "latchkey.db"))
	})
}

// wantOpenError checks that Open fails with one line that names the file and says what.
func wantOpenError(t *testing.T, err error, path, what string) {
	t.Helper()
	if err == nil {
		t.Fatal("Open succeeded, want an error")
	}
	msg := err.Error()
	t.Logf("Open: %s", msg)
	if strings.Contains(msg, "\n") || !strings.Contains(msg, path) || !strings.Contains(msg, what) {
		t.Fatalf("Open error = %q; want one line naming %s and saying %q", msg, path, what)
	}
}

// holdExclusiveLock opens a raw connection to path and keeps an exclusive
// transaction open on it until the test ends, as another process might.
func holdExclusiveLock(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(t.Context(), "BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.ExecContext(context.Background(), "ROLLBACK")
		conn.Close()
	})
}

func TestOpen_LockedDatabaseSaysSo(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, path string)
	}{
		// A file no Latchkey has opened yet: still in rollback-journal mode, so the
		// switch to WAL is what has to wait.
		{"new file", func(t *testing.T, path string) {}},
		// An existing store in WAL mode: taking the write lock is what has to wait.
		{"existing store", func(t *testing.T, path string) {
			s, err := Open(t.Context(), Config{Path: path})
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "locked.db")
			tc.setup(t, path)
			holdExclusiveLock(t, path)

			start := time.Now()
			s, err := Open(t.Context(), Config{Path: path, BusyTimeout: 200 * time.Millisecond})
			if err == nil {
				s.Close()
			}
			wantOpenError(t, err, path, "locked, probably by another Latchkey process")
			if waited := time.Since(start); waited < 200*time.Millisecond || waited > 3*time.Second {
				t.Errorf("Open gave up after %v; want about the 200ms busy timeout", waited)
			}
		})
	}
}

func TestOpen_NotADatabaseSaysSo(t *testing.T) {
	path := filepath.Join(t.TempDir(), "random.db")
	junk := make([]byte, 8192)
	rand.Read(junk)
	if err := os.WriteFile(path, junk, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(t.Context(), Config{Path: path})
	wantOpenError(t, err, path, "is not a SQLite database")
}

func TestOpen_UnopenablePathSaysSo(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "plain-file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, path, what string }{
		{"missing parent", filepath.Join(dir, "no", "such", "dir", "latchkey.db"), "does not exist"},
		{"parent is a file", filepath.Join(file, "latchkey.db"), "is not a directory"},
		{"path is a directory", dir, "cannot open database"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(t.Context(), Config{Path: tc.path})
			wantOpenError(t, err, tc.path, tc.what)
		})
	}
}

func TestOpen_RefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "latchkey.db")
	s, err := Open(t.Context(), Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	known := s.schemaVersion
	// A newer Latchkey migrated this file.
	if _, err := s.writer.ExecContext(t.Context(), `INSERT INTO goose_db_version (version_id, is_applied) VALUES (42, 1)`); err != nil {
		t.Fatal(err)
	}
	if err := s.Ready(t.Context()); err == nil {
		t.Error("Ready succeeded on a schema this binary does not know")
	}
	s.Close()

	_, err = Open(t.Context(), Config{Path: path})
	wantOpenError(t, err, path, fmt.Sprintf("database schema version 42 is newer than this Latchkey (knows up to %d); upgrade Latchkey", known))
}

func TestMigrate_BrokenMigrationLeavesNothingBehind(t *testing.T) {
	path := filepath.Join(t.TempDir(), "latchkey.db")
	db, err := sql.Open("sqlite", dsn(Config{Path: path, BusyTimeout: time.Second}, false))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)

	fsys := fstest.MapFS{
		"00001_good.sql": {Data: []byte("-- +goose Up\nCREATE TABLE good (id INTEGER);\n")},
		"00002_broken.sql": {Data: []byte("-- +goose Up\nCREATE TABLE partial (id INTEGER);\n" +
			"INSERT INTO good (id) VALUES (1);\nTHIS IS NOT SQL;\n")},
	}
	if _, err := migrate(t.Context(), db, fsys); err == nil {
		t.Fatal("migrate succeeded with a broken migration")
	}

	v, err := currentVersion(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	if v != 1 {
		t.Errorf("schema version = %d, want 1 (the good migration only)", v)
	}
	var tables []string
	rows, err := db.QueryContext(t.Context(), `SELECT name FROM sqlite_schema WHERE name IN ('good', 'partial') ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	if len(tables) != 1 || tables[0] != "good" {
		t.Errorf("tables after the failed migration = %v, want only [good]", tables)
	}
	var n int
	if err := db.QueryRowContext(t.Context(), `SELECT count(*) FROM good`).Scan(&n); err != nil || n != 0 {
		t.Errorf("rows the broken migration inserted = %d (%v), want 0", n, err)
	}
}

func TestMigrate_RefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "latchkey.db")
	db, err := sql.Open("sqlite", dsn(Config{Path: path, BusyTimeout: time.Second}, false))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	fsys := fstest.MapFS{
		"00001_a.sql": {Data: []byte("-- +goose Up\nCREATE TABLE a (id INTEGER);\n")},
		"00002_b.sql": {Data: []byte("-- +goose Up\nCREATE TABLE b (id INTEGER);\n")},
	}
	if _, err := migrate(t.Context(), db, fsys); err != nil {
		t.Fatal(err)
	}
	delete(fsys, "00002_b.sql") // an older binary
	_, err = migrate(t.Context(), db, fsys)
	var newer *newerSchemaError
	if !errors.As(err, &newer) || newer.have != 2 || newer.know != 1 {
		t.Fatalf("migrate with an older set = %v, want the newer-schema error (2 > 1)", err)
	}
}

func TestOpen_WALAndFullSyncOnEveryConnection(t *testing.T) {
	s := openTestStore(t, filepath.Join(t.TempDir(), "latchkey.db"))
	ctx := t.Context()

	check := func(name string, conn *sql.Conn) {
		t.Helper()
		var mode string
		var sync, fk, busy int
		for q, dst := range map[string]any{
			"PRAGMA journal_mode": &mode, "PRAGMA synchronous": &sync,
			"PRAGMA foreign_keys": &fk, "PRAGMA busy_timeout": &busy,
		} {
			if err := conn.QueryRowContext(ctx, q).Scan(dst); err != nil {
				t.Fatalf("%s: %s: %v", name, q, err)
			}
		}
		// synchronous 2 is FULL.
		// The busy timeout defaults to the store's timeout.
		if mode != "wal" || sync != 2 || fk != 1 || busy != int(storage.DefaultTimeout.Milliseconds()) {
			t.Errorf("%s: journal_mode=%s synchronous=%d foreign_keys=%d busy_timeout=%d; want wal, 2 (FULL), 1, %d",
				name, mode, sync, fk, busy, storage.DefaultTimeout.Milliseconds())
		}
	}

	w, err := s.writer.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	check("writer", w)
	w.Close()

	// Hold several reader connections at once, so each is a distinct pooled connection.
	var conns []*sql.Conn
	for range 3 {
		c, err := s.reader.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for i, c := range conns {
		check(fmt.Sprintf("reader %d", i), c)
		c.Close()
	}
}

func TestOpen_CreatesFilesForItsOwnerOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "latchkey.db")
	s := openTestStore(t, path)
	// A write, so the WAL file surely exists.
	if err := s.CreateRealm(t.Context(), storage.Realm{Name: "acme"}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", filepath.Base(name), fi.Mode().Perm())
		}
	}
}

func TestOpen_KeepsDataAcrossReopen(t *testing.T) {
	// An awkward name: the DSN is a URI, where '?', '#', '%' and ' ' mean something.
	path := filepath.Join(t.TempDir(), "odd name?#%25.db")
	r := storage.Realm{Name: "acme", SigningAlg: "ES256", AccessTokenTTL: time.Minute, CreatedAt: time.UnixMicro(1).UTC()}
	s, err := Open(t.Context(), Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRealm(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = openTestStore(t, path)
	got, err := s.GetRealm(t.Context(), "acme")
	if err != nil || got != r {
		t.Fatalf("after reopening: %+v, %v; want %+v", got, err, r)
	}
	if entries, err := os.ReadDir(filepath.Dir(path)); err != nil || entries[0].Name() != filepath.Base(path) {
		t.Fatalf("files in the directory = %v (%v), want the database under its own name first", entries, err)
	}
}

func TestOpen_ConcurrentFirstOpensBothSucceed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "latchkey.db")
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			s, err := Open(t.Context(), Config{Path: path})
			if err == nil {
				err = s.Ready(t.Context())
				s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
		}
	}
}

// TestRotateRefreshToken_ExactlyOnceAcrossProcesses races several processes,
// each with several goroutines, to rotate one refresh token in one file.
func TestRotateRefreshToken_ExactlyOnceAcrossProcesses(t *testing.T) {
	const procs, perProc = 4, 10
	path := filepath.Join(t.TempDir(), "latchkey.db")
	s := openTestStore(t, path)
	ctx := t.Context()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.CreateRealm(ctx, storage.Realm{Name: "acme", SigningAlg: "ES256", AccessTokenTTL: time.Minute}))
	parent := storage.RefreshToken{Hash: []byte("parent-hash"), IssuedAt: t0}
	must(s.CreateFamily(ctx, storage.Family{ID: "fam", Realm: "acme", ClientID: "web", UserID: "u",
		CreatedAt: t0, IdleExpiresAt: t0.Add(time.Hour), AbsoluteExpiresAt: t0.Add(time.Hour)}, parent))

	type helper struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
		out   *bufio.Scanner
	}
	var helpers []helper
	for range procs {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), helperEnv+"="+path, "HELPER_PARENT="+hex.EncodeToString(parent.Hash),
			fmt.Sprintf("HELPER_RACERS=%d", perProc))
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		must(err)
		stdout, err := cmd.StdoutPipe()
		must(err)
		must(cmd.Start())
		helpers = append(helpers, helper{cmd, stdin, bufio.NewScanner(stdout)})
	}
	// Wait until every helper has its store open, then release them together.
	for i, h := range helpers {
		if !h.out.Scan() || h.out.Text() != "ready" {
			t.Fatalf("helper %d did not get ready: %q", i, h.out.Text())
		}
	}
	for _, h := range helpers {
		h.stdin.Close()
	}
	won, used := 0, 0
	var winner string
	for i, h := range helpers {
		for h.out.Scan() {
			kind, child, _ := strings.Cut(h.out.Text(), " ")
			switch kind {
			case "won":
				won++
				winner = child
			case "used":
				used++
			default:
				t.Errorf("helper %d: %s", i, h.out.Text())
			}
		}
		must(h.cmd.Wait())
	}
	if won != 1 || used != procs*perProc-1 {
		t.Fatalf("of %d rotations %d won and %d saw ErrAlreadyUsed; want 1 and %d", procs*perProc, won, used, procs*perProc-1)
	}
	got, err := s.GetRefreshToken(ctx, parent.Hash)
	must(err)
	if hex.EncodeToString(got.SuccessorHash) != winner {
		t.Fatalf("parent's successor = %x, want the winner's %s", got.SuccessorHash, winner)
	}
}

// rotateHelper is the body of a helper process: open the store, say "ready",
// wait for stdin to close, then race HELPER_RACERS goroutines to rotate the parent
// and print one line per outcome.
func rotateHelper() int {
	ctx := context.Background()
	s, err := Open(ctx, Config{Path: os.Getenv(helperEnv)})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer s.Close()
	parent, err := hex.DecodeString(os.Getenv("HELPER_PARENT"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var racers int
	fmt.Sscan(os.Getenv("HELPER_RACERS"), &racers)

	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)

	var mu sync.Mutex
	var wg sync.WaitGroup
	for range racers {
		wg.Go(func() {
			child := make([]byte, 32)
			rand.Read(child)
			at := time.Date(2026, 1, 1, 0, 1, 0, 0, time.UTC)
			_, err := s.RotateRefreshToken(ctx, parent, storage.RefreshToken{Hash: child, IssuedAt: at}, []byte("sealed"),
				storage.FamilyUse{At: at, IdleExpiresAt: at.Add(time.Hour)})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				fmt.Println("won", hex.EncodeToString(child))
			case errors.Is(err, storage.ErrAlreadyUsed):
				fmt.Println("used")
			default:
				fmt.Println("error", err)
			}
		})
	}
	wg.Wait()
	return 0
}

// The conformance suite does not look at client assertions after DeleteRealm.
func TestDeleteRealm_ForgetsClientAssertions(t *testing.T) {
	s := openTestStore(t, filepath.Join(t.TempDir(), "latchkey.db"))
	ctx := t.Context()
	exp := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, realm := range []string{"acme", "keep"} {
		if err := s.CreateRealm(ctx, storage.Realm{Name: realm}); err != nil {
			t.Fatal(err)
		}
		if err := s.UseClientAssertion(ctx, realm, "web", "jti", exp); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteRealm(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	var realms []string
	rows, err := s.reader.QueryContext(ctx, `SELECT realm FROM client_assertions`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			t.Fatal(err)
		}
		realms = append(realms, r)
	}
	if err := rows.Err(); err != nil || len(realms) != 1 || realms[0] != "keep" {
		t.Fatalf("client assertions left for realms %v (%v), want only [keep]", realms, err)
	}
}

func BenchmarkStore(b *testing.B) {
	storagetest.Bench(b, func(b *testing.B) storage.Store {
		s, err := Open(b.Context(), Config{Path: filepath.Join(b.TempDir(), "bench.db")})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	})
}

// Concurrent writes share transactions (group commit); a failing write undoes only
// itself, and every write reported done is stored.
func TestGroupCommit_AFailingWriteUndoesOnlyItself(t *testing.T) {
	s := openTestStore(t, filepath.Join(t.TempDir(), "group.db"))
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Microsecond)
	if err := s.CreateRealm(ctx, storage.Realm{Name: "acme", CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	session := func(id string) storage.Session {
		return storage.Session{ID: id, Realm: "acme", UserID: "u", AuthTime: now, CreatedAt: now, LastSeenAt: now,
			IdleExpiresAt: now.Add(time.Hour), ExpiresAt: now.Add(time.Hour)}
	}
	if err := s.CreateSession(ctx, session("dup")); err != nil {
		t.Fatal(err)
	}
	const n = 200
	errs := make([]error, n)
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		ids[i] = fmt.Sprintf("sid-%03d", i)
		if i%3 == 0 {
			ids[i] = "dup" // conflicts with the session stored above
		}
		wg.Go(func() { errs[i] = s.CreateSession(ctx, session(ids[i])) })
	}
	wg.Wait()
	for i, err := range errs {
		if i%3 == 0 {
			if !errors.Is(err, storage.ErrConflict) {
				t.Fatalf("write %d: %v, want ErrConflict", i, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		if _, err := s.GetSession(ctx, ids[i]); err != nil {
			t.Fatalf("write %d reported done but is not stored: %v", i, err)
		}
	}
	c, _ := s.Count(ctx)
	if c.Sessions != 1+n-(n+2)/3 {
		t.Fatalf("%d sessions stored, want %d", c.Sessions, 1+n-(n+2)/3)
	}
	// A write whose caller has given up is not made.
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.CreateSession(cancelled, session("late")); err == nil {
		t.Fatal("a cancelled write succeeded")
	}
	if _, err := s.GetSession(ctx, "late"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatal("a cancelled write was stored")
	}
}

func TestOpen_SynchronousNormalWhenAskedFor(t *testing.T) {
	s, err := Open(t.Context(), Config{Path: filepath.Join(t.TempDir(), "n.db"), Synchronous: "normal"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var sync int
	if err := s.reader.QueryRowContext(t.Context(), "PRAGMA synchronous").Scan(&sync); err != nil || sync != 1 {
		t.Fatalf("synchronous = %d, %v; want 1 (NORMAL)", sync, err)
	}
}

func TestWrite_LockHeldElsewhereIsUnavailableAndNeverMadeLater(t *testing.T) {
	path := filepath.Join(t.TempDir(), "locked.db")
	s, err := Open(t.Context(), Config{Path: path, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Microsecond)
	if err := s.CreateRealm(ctx, storage.Realm{Name: "acme", CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	session := func(id string) storage.Session {
		return storage.Session{ID: id, Realm: "acme", UserID: "u", AuthTime: now, CreatedAt: now, LastSeenAt: now,
			IdleExpiresAt: now.Add(time.Hour), ExpiresAt: now.Add(time.Hour)}
	}

	// Another process's connection takes the write lock and keeps it.
	other, err := sql.Open("sqlite", dsn(Config{Path: path, BusyTimeout: time.Second}, false))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}

	// Writes, one and many at once (most of them queued behind the writer, which
	// waits for the lock), all give up with ErrUnavailable.
	const n = 20
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = s.CreateSession(ctx, session(fmt.Sprintf("locked-%02d", i))) })
	}
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, storage.ErrUnavailable) {
			t.Fatalf("write %d under a held lock: %v, want ErrUnavailable", i, err)
		}
	}
	// Reads go on: WAL readers do not need the write lock.
	if _, err := s.GetRealm(ctx, "acme"); err != nil {
		t.Fatalf("read under a held write lock: %v", err)
	}

	if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSession(ctx, session("after")); err != nil {
		t.Fatalf("write after the lock was released: %v", err)
	}
	// The writer has taken its turns since: none of the writes given up on was made.
	c, err := s.Count(ctx)
	if err != nil || c.Sessions != 1 {
		t.Fatalf("%d sessions stored (%v), want 1: a write given up on was made later", c.Sessions, err)
	}
}
