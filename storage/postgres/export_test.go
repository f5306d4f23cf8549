package postgres

// What the tests, in package postgres_test, reach inside the store. They are in
// an external package because they use pgtest, which imports this one.

import (
	"io/fs"

	"github.com/jackc/pgx/v5/pgxpool"
)

var Migrate = migrate

func (s *Store) Pool() *pgxpool.Pool { return s.pool.pool }

func (s *Store) SchemaVersion() int64 { return s.schemaVersion }

const SweepLockKey = sweepLockKey

// Migrations is the number of embedded migrations (versions may have gaps while
// branches that add them are merged).
func Migrations() int64 {
	entries, _ := fs.ReadDir(embeddedMigrations(), ".")
	return int64(len(entries))
}
