package main

import (
	"context"

	"github.com/spf13/pflag"

	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/storage"
	"github.com/latchkey/latchkey/storage/postgres"
	"github.com/latchkey/latchkey/storage/sqlite"
)

// openStore opens (and migrates) the configured backend.
func openStore(ctx context.Context, o config.Options) (storage.Store, error) {
	if o.Backend == "postgres" {
		st, err := postgres.OpenConfig(ctx, postgres.Config{DSN: o.DB, Timeout: o.StoreTimeout})
		if err != nil {
			return nil, err
		}
		return st, nil
	}
	st, err := sqlite.Open(ctx, sqlite.Config{Path: o.DB, Synchronous: o.SQLiteSync, Timeout: o.StoreTimeout})
	if err != nil {
		return nil, err
	}
	return st, nil
}

// openFromFlags opens the store a --db / --data-dir pair names, for commands other
// than serve.
func openFromFlags(ctx context.Context, db, dataDir string) (storage.Store, config.Options, error) {
	var o config.Options
	var err error
	if o.Backend, o.DB, o.DataDir, err = config.ResolveDB(db, dataDir, false); err != nil {
		return nil, o, err
	}
	st, err := openStore(ctx, o)
	return st, o, err
}

// storeFlags defines --db and --data-dir, which every command that opens the store takes.
func storeFlags(f *pflag.FlagSet, getenv func(string) string, db, dataDir *string) {
	stringFlag(f, getenv, db, "db", "database: a SQLite file path or a postgres:// URL (default DATA-DIR/latchkey.db)")
	stringFlag(f, getenv, dataDir, "data-dir", "directory of the SQLite database and, in dev mode, of the master key (default ./"+config.DefaultDataDir+")")
}
