package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/latchkey/latchkey/storage"
)

// bffSessions is the store's storage.BFFSessionStore. Writes are serialised
// (one writer, and the file's write lock across processes), so Update's read
// and write in one write transaction see no other write between them.
//
// A session's ID is the digest of its cookie: it has no place in an error.
type bffSessions struct{ s *Store }

// BFFSessions implements storage.BFFStore.
func (s *Store) BFFSessions() storage.BFFSessionStore { return bffSessions{s} }

const bffCols = `id, sid, subject, sealed, expires_at, version`

func scanBFF(row rowScanner) (storage.BFFSession, error) {
	var b storage.BFFSession
	err := row.Scan(&b.ID, &b.SID, &b.Subject, &b.Sealed, timeCol{&b.ExpiresAt}, &b.Version)
	return b, err
}

func (b bffSessions) Get(ctx context.Context, id string, now time.Time) (storage.BFFSession, error) {
	got, err := scanBFF(b.s.reader.QueryRowContext(ctx, `SELECT `+bffCols+` FROM bff_sessions
		WHERE id = ? AND expires_at > ?`, id, micros(now)))
	if errors.Is(err, sql.ErrNoRows) {
		return storage.BFFSession{}, fmt.Errorf("bff session: %w", storage.ErrNotFound)
	}
	if err != nil {
		return storage.BFFSession{}, fmt.Errorf("bff session: %w", err)
	}
	return got, nil
}

func (b bffSessions) Put(ctx context.Context, rec storage.BFFSession) error {
	if err := rec.Check(); err != nil {
		return err
	}
	_, err := b.s.exec(ctx, `INSERT INTO bff_sessions (`+bffCols+`) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET sid = excluded.sid, subject = excluded.subject, sealed = excluded.sealed,
			expires_at = excluded.expires_at, version = excluded.version`,
		rec.ID, rec.SID, rec.Subject, blob(rec.Sealed), micros(rec.ExpiresAt), rec.Version)
	if err != nil {
		return fmt.Errorf("put bff session: %w", err)
	}
	return nil
}

func (b bffSessions) Update(ctx context.Context, id string, now time.Time, fn func(storage.BFFSession) (storage.BFFSession, error)) (storage.BFFSession, error) {
	var out storage.BFFSession
	err := b.s.inTx(ctx, func(ctx context.Context, tx *stmtTx) error {
		old, err := scanBFF(tx.QueryRowContext(ctx, `SELECT `+bffCols+` FROM bff_sessions
			WHERE id = ? AND expires_at > ?`, id, micros(now)))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("bff session: %w", storage.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("bff session: %w", err)
		}
		rec, err := fn(old)
		if err != nil {
			return err
		}
		rec.ID, rec.Version = old.ID, old.Version+1
		if err := rec.Check(); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE bff_sessions SET sid = ?, subject = ?, sealed = ?, expires_at = ?, version = ?
			WHERE id = ?`, rec.SID, rec.Subject, blob(rec.Sealed), micros(rec.ExpiresAt), rec.Version, rec.ID); err != nil {
			return fmt.Errorf("update bff session: %w", err)
		}
		out = rec
		return nil
	})
	if err != nil {
		return storage.BFFSession{}, err
	}
	return out, nil
}

func (b bffSessions) Delete(ctx context.Context, id string) error {
	if _, err := b.s.exec(ctx, `DELETE FROM bff_sessions WHERE id = ?`, id); err != nil {
		return fmt.Errorf("delete bff session: %w", err)
	}
	return nil
}

func (b bffSessions) DeleteByIssuerSession(ctx context.Context, sid string) (int, error) {
	if sid == "" {
		return 0, nil
	}
	n, err := b.s.exec(ctx, `DELETE FROM bff_sessions WHERE sid = ?`, sid)
	if err != nil {
		return 0, fmt.Errorf("delete bff sessions by sid: %w", err)
	}
	return int(n), nil
}

func (b bffSessions) DeleteBySubject(ctx context.Context, sub string) (int, error) {
	if sub == "" {
		return 0, nil
	}
	n, err := b.s.exec(ctx, `DELETE FROM bff_sessions WHERE subject = ?`, sub)
	if err != nil {
		return 0, fmt.Errorf("delete bff sessions by subject: %w", err)
	}
	return int(n), nil
}

func (b bffSessions) Purge(ctx context.Context, now time.Time) (int, error) {
	n, err := b.s.purge(ctx, purgeBFFSessions, now)
	if err != nil {
		return 0, fmt.Errorf("purge bff sessions: %w", err)
	}
	return int(n), nil
}

func purgeBFFSessions(ctx context.Context, tx *stmtTx, before time.Time) (int64, error) {
	return changed(tx.ExecContext(ctx, `DELETE FROM bff_sessions WHERE expires_at < ?`, micros(before)))
}
