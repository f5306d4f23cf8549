package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"time"

	"github.com/pressly/goose/v3"
)

//go:embed migrations/*.sql
var embedded embed.FS

// migrationsFS returns the embedded migrations with the .sql files at its root,
// where goose looks for them.
func migrationsFS() (fs.FS, error) {
	return fs.Sub(embedded, "migrations")
}

// newerSchemaError says the database was migrated by a newer Latchkey.
type newerSchemaError struct {
	have, know int64
}

func (e *newerSchemaError) Error() string {
	return fmt.Sprintf("database schema version %d is newer than this Latchkey (knows up to %d); upgrade Latchkey", e.have, e.know)
}

// migrate applies the migrations in fsys that db lacks, each in its own
// transaction, and returns the newest version in fsys. It refuses a database
// whose version is already past that: running an old binary on a newer schema
// could silently lose data the new columns hold.
func migrate(ctx context.Context, db *sql.DB, fsys fs.FS) (int64, error) {
	p, err := goose.NewProvider(goose.DialectSQLite3, db, fsys,
		goose.WithDisableGlobalRegistry(true), // only our files, never Go migrations registered elsewhere
		goose.WithLogger(goose.NopLogger()),
	)
	if err != nil {
		return 0, fmt.Errorf("loading migrations: %w", err)
	}
	sources := p.ListSources()
	newest := sources[len(sources)-1].Version // NewProvider refuses an empty set

	current, err := p.GetDBVersion(ctx)
	if err != nil {
		return 0, fmt.Errorf("reading schema version: %w", err)
	}
	if current > newest {
		return 0, &newerSchemaError{have: current, know: newest}
	}
	if current == newest {
		return newest, nil
	}
	if _, err := p.Up(ctx); err != nil {
		// Another process opening the same file may be applying these very
		// migrations, one transaction each: our attempt failed on its tables. While
		// the version keeps moving, wait for it to reach the newest.
		if awaitOther(ctx, p, current, newest) {
			return newest, nil
		}
		return 0, fmt.Errorf("applying migrations: %w", err)
	}
	return newest, nil
}

// awaitOther reports whether another process brings the schema from seen to newest,
// giving up once the version has not moved for a second.
func awaitOther(ctx context.Context, p *goose.Provider, seen, newest int64) bool {
	last, moved := seen, time.Now()
	for time.Since(moved) < time.Second {
		v, err := p.GetDBVersion(ctx)
		switch {
		case err != nil:
			return false
		case v == newest:
			return true
		case v != last:
			last, moved = v, time.Now()
		case last == seen && v == seen:
			return false // nobody else is migrating: the failure is ours
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
	return false
}

// currentVersion reads the schema version goose recorded.
func currentVersion(ctx context.Context, db *sql.DB) (int64, error) {
	var v int64
	err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version_id), 0) FROM goose_db_version`).Scan(&v)
	return v, err
}
