package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/latchkey/latchkey/storage"
)

// bffSessions is the store's storage.BFFSessionStore. Update reads the row FOR
// UPDATE in its transaction, so racing updates of one session, from any
// instance, take turns on the row lock and none is lost.
//
// A session's ID is the digest of its cookie: it has no place in an error.
type bffSessions struct{ s *Store }

// BFFSessions implements storage.BFFStore.
func (s *Store) BFFSessions() storage.BFFSessionStore { return bffSessions{s} }

const bffColumns = `id, sid, subject, sealed, expires_at, version`

func scanBFF(row scanner) (storage.BFFSession, error) {
	var b storage.BFFSession
	err := row.Scan(&b.ID, &b.SID, &b.Subject, &b.Sealed, nt(&b.ExpiresAt), &b.Version)
	return b, err
}

func (b bffSessions) Get(ctx context.Context, id string, now time.Time) (storage.BFFSession, error) {
	got, err := scanBFF(b.s.pool.QueryRow(ctx, `SELECT `+bffColumns+` FROM bff_sessions
		WHERE id = $1 AND expires_at > $2`, id, ts(now)))
	if err != nil {
		return storage.BFFSession{}, fmt.Errorf("bff session: %w", notFound(err))
	}
	return got, nil
}

func (b bffSessions) Put(ctx context.Context, rec storage.BFFSession) error {
	if err := rec.Check(); err != nil {
		return err
	}
	_, err := b.s.pool.Exec(ctx, `INSERT INTO bff_sessions (`+bffColumns+`) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (id) DO UPDATE SET sid = excluded.sid, subject = excluded.subject, sealed = excluded.sealed,
			expires_at = excluded.expires_at, version = excluded.version`,
		rec.ID, rec.SID, rec.Subject, bytesOrNull(rec.Sealed), ts(rec.ExpiresAt), rec.Version)
	if err != nil {
		return fmt.Errorf("put bff session: %w", err)
	}
	return nil
}

func (b bffSessions) Update(ctx context.Context, id string, now time.Time, fn func(storage.BFFSession) (storage.BFFSession, error)) (storage.BFFSession, error) {
	var out storage.BFFSession
	err := b.s.inTx(ctx, func(tx pgx.Tx) error {
		old, err := scanBFF(tx.QueryRow(ctx, `SELECT `+bffColumns+` FROM bff_sessions
			WHERE id = $1 AND expires_at > $2 FOR UPDATE`, id, ts(now)))
		if err != nil {
			return notFound(err)
		}
		rec, err := fn(old)
		if err != nil {
			return errFn{err}
		}
		rec.ID, rec.Version = old.ID, old.Version+1
		if err := rec.Check(); err != nil {
			return errFn{err}
		}
		if _, err := tx.Exec(ctx, `UPDATE bff_sessions SET sid = $2, subject = $3, sealed = $4, expires_at = $5, version = $6
			WHERE id = $1`, rec.ID, rec.SID, rec.Subject, bytesOrNull(rec.Sealed), ts(rec.ExpiresAt), rec.Version); err != nil {
			return err
		}
		out = rec
		return nil
	})
	if err != nil {
		return storage.BFFSession{}, wrapUpdate(err, "update bff session")
	}
	return out, nil
}

func (b bffSessions) Delete(ctx context.Context, id string) error {
	if _, err := b.s.pool.Exec(ctx, `DELETE FROM bff_sessions WHERE id = $1`, id); err != nil {
		return fmt.Errorf("delete bff session: %w", err)
	}
	return nil
}

func (b bffSessions) DeleteByIssuerSession(ctx context.Context, sid string) (int, error) {
	if sid == "" {
		return 0, nil
	}
	tag, err := b.s.pool.Exec(ctx, `DELETE FROM bff_sessions WHERE sid = $1`, sid)
	if err != nil {
		return 0, fmt.Errorf("delete bff sessions by sid: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

func (b bffSessions) DeleteBySubject(ctx context.Context, sub string) (int, error) {
	if sub == "" {
		return 0, nil
	}
	tag, err := b.s.pool.Exec(ctx, `DELETE FROM bff_sessions WHERE subject = $1`, sub)
	if err != nil {
		return 0, fmt.Errorf("delete bff sessions by subject: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

func (b bffSessions) Purge(ctx context.Context, now time.Time) (int, error) {
	n, err := purgeBFFSessions(ctx, b.s.pool, now)
	return int(n), err
}

func purgeBFFSessions(ctx context.Context, q querier, before time.Time) (int64, error) {
	tag, err := q.Exec(ctx, `DELETE FROM bff_sessions WHERE expires_at < $1`, ts(before))
	if err != nil {
		return 0, fmt.Errorf("purge bff sessions: %w", err)
	}
	return tag.RowsAffected(), nil
}
