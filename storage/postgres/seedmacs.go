package postgres

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/jackc/pgx/v5"
)

// SeedPasswordMACs implements storage.SeedStore.
func (s *Store) SeedPasswordMACs(ctx context.Context, realm string) (map[string][]byte, error) {
	rows, err := s.pool.Query(ctx, `SELECT username, mac FROM seed_password_macs WHERE realm = $1`, realm)
	if err != nil {
		return nil, fmt.Errorf("seed password MACs of realm %q: %w", realm, err)
	}
	out := map[string][]byte{}
	var username string
	var mac []byte
	_, err = pgx.ForEachRow(rows, []any{&username, &mac}, func() error {
		out[username] = append([]byte(nil), mac...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("seed password MACs of realm %q: %w", realm, err)
	}
	return out, nil
}

// putSeedPasswordMACs stores a realm's seed password MACs in the caller's transaction.
func putSeedPasswordMACs(ctx context.Context, q querier, realm string, macs map[string][]byte) error {
	for _, username := range slices.Sorted(maps.Keys(macs)) {
		if _, err := q.Exec(ctx, `INSERT INTO seed_password_macs (realm, username, mac) VALUES ($1, $2, $3)
			ON CONFLICT (realm, username) DO UPDATE SET mac = excluded.mac`, realm, username, macs[username]); err != nil {
			return fmt.Errorf("seed password MAC of %q: %w", username, err)
		}
	}
	return nil
}
