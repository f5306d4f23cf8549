package sqlite

import (
	"context"
	"fmt"
	"maps"
	"slices"
)

// SeedPasswordMACs implements storage.SeedStore.
func (s *Store) SeedPasswordMACs(ctx context.Context, realm string) (map[string][]byte, error) {
	type row struct {
		username string
		mac      []byte
	}
	rows, err := list(ctx, s.reader, func(r rowScanner) (row, error) {
		var v row
		return v, r.Scan(&v.username, &v.mac)
	}, `SELECT username, mac FROM seed_password_macs WHERE realm = ?`, realm)
	if err != nil {
		return nil, fmt.Errorf("seed password MACs of realm %q: %w", realm, err)
	}
	out := make(map[string][]byte, len(rows))
	for _, r := range rows {
		out[r.username] = r.mac
	}
	return out, nil
}

// putSeedPasswordMACs stores a realm's seed password MACs in the caller's transaction.
func putSeedPasswordMACs(ctx context.Context, tx *stmtTx, realm string, macs map[string][]byte) error {
	for _, username := range slices.Sorted(maps.Keys(macs)) {
		if _, err := tx.ExecContext(ctx, `INSERT INTO seed_password_macs (realm, username, mac) VALUES (?, ?, ?)
			ON CONFLICT (realm, username) DO UPDATE SET mac = excluded.mac`, realm, username, macs[username]); err != nil {
			return fmt.Errorf("seed password MAC of %q: %w", username, err)
		}
	}
	return nil
}
