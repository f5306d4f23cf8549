package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// embeddedMigrations is the migrations folder as goose wants it: the .sql files at the root.
func embeddedMigrations() fs.FS {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		// fs.Sub fails only for an invalid path, and "migrations" is valid.
		return migrationFiles
	}
	return sub
}

// migrate brings the database up to the newest migration in fsys and returns
// that version. Each migration runs in its own transaction, so a failing one
// leaves nothing behind. A database already at a newer version than fsys knows
// is refused: an older binary must not run against a schema it cannot read.
//
// Instances starting together take turns through a PostgreSQL advisory lock,
// so the schema is applied once.
func migrate(ctx context.Context, db *sql.DB, fsys fs.FS) (int64, error) {
	// goose retries the lock once a second (its minimum) for up to five minutes.
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
	if err != nil {
		return 0, fmt.Errorf("set up migration lock: %w", err)
	}
	provider, err := goose.NewProvider(goose.DialectPostgres, db, fsys,
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true),
	)
	if err != nil {
		return 0, fmt.Errorf("load migrations: %w", err)
	}
	sources := provider.ListSources()
	if len(sources) == 0 {
		return 0, errors.New("load migrations: none found")
	}
	newest := sources[len(sources)-1].Version // sorted ascending

	current, err := provider.GetDBVersion(ctx)
	if err != nil {
		return 0, fmt.Errorf("read database schema version: %w", err)
	}
	if current > newest {
		return 0, fmt.Errorf("database schema version %d is newer than this Latchkey (knows up to %d); upgrade Latchkey", current, newest)
	}
	if _, err := provider.Up(ctx); err != nil {
		var partial *goose.PartialError
		if errors.As(err, &partial) && partial.Failed != nil {
			return 0, fmt.Errorf("apply migration %d (%s): %w", partial.Failed.Source.Version, partial.Failed.Source.Path, partial.Err)
		}
		return 0, fmt.Errorf("apply migrations: %w", err)
	}
	return newest, nil
}
