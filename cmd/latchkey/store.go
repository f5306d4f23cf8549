package main

import (
	"context"

	"github.com/latchkey/latchkey/internal/config"
	"github.com/latchkey/latchkey/storage"
	"github.com/latchkey/latchkey/storage/postgres"
	"github.com/latchkey/latchkey/storage/sqlite"
)

// openStore opens (and migrates) the configured backend.
func openStore(ctx context.Context, o config.Options) (storage.Store, error) {
	if o.Backend == "postgres" {
		st, err := postgres.Open(ctx, o.DB)
		if err != nil {
			return nil, err
		}
		return st, nil
	}
	st, err := sqlite.Open(ctx, sqlite.Config{Path: o.DB})
	if err != nil {
		return nil, err
	}
	return st, nil
}
