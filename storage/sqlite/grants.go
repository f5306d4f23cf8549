package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/latchkey/latchkey/storage"
)

// The state of DPoP, PAR and the device authorization grant. Writes are
// serialised (one writer, and the file's write lock across processes), so each
// single-use decision below is a conditional write that only the first caller
// can make.

func (s *Store) UseDPoPProof(ctx context.Context, realm, jkt, jti string, until time.Time) error {
	n, err := s.exec(ctx, `INSERT INTO dpop_proofs (realm, jkt, jti, expires_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (realm, jkt, jti) DO NOTHING`, realm, jkt, jti, micros(until))
	if err != nil {
		return fmt.Errorf("realm %q: use DPoP proof %q: %w", realm, jti, err)
	}
	if n == 0 {
		return fmt.Errorf("realm %q: DPoP proof %q: %w", realm, jti, storage.ErrAlreadyUsed)
	}
	return nil
}

func (s *Store) PurgeDPoPProofs(ctx context.Context, before time.Time) (int64, error) {
	return s.purge(ctx, purgeDPoPProofs, before)
}

func purgeDPoPProofs(ctx context.Context, tx *stmtTx, before time.Time) (int64, error) {
	return changed(tx.ExecContext(ctx, `DELETE FROM dpop_proofs WHERE expires_at < ?`, micros(before)))
}

const pushedCols = `hash, realm, client_id, params, created_at, expires_at`

func scanPushed(row rowScanner, usedAt *time.Time) (storage.PushedRequest, error) {
	var p storage.PushedRequest
	err := row.Scan(&p.Hash, &p.Realm, &p.ClientID, &p.Params, timeCol{&p.CreatedAt}, timeCol{&p.ExpiresAt}, timeCol{usedAt})
	return p, err
}

func (s *Store) CreatePushedRequest(ctx context.Context, p storage.PushedRequest) error {
	_, err := s.exec(ctx, `INSERT INTO pushed_requests (`+pushedCols+`, used_at) VALUES (?, ?, ?, ?, ?, ?, NULL)`,
		p.Hash, p.Realm, p.ClientID, blob(p.Params), micros(p.CreatedAt), micros(p.ExpiresAt))
	// The hash is a secret's digest: it has no place in an error message.
	return mapWriteError(err, clientName(p.Realm, p.ClientID)+": pushed request")
}

func (s *Store) UsePushedRequest(ctx context.Context, hash []byte, now time.Time) (storage.PushedRequest, error) {
	var p storage.PushedRequest
	err := s.inTx(ctx, func(ctx context.Context, tx *stmtTx) error {
		var usedAt time.Time
		got, err := scanPushed(tx.QueryRowContext(ctx, `UPDATE pushed_requests SET used_at = ?
			WHERE hash = ? AND used_at IS NULL AND expires_at > ?
			RETURNING `+pushedCols+`, used_at`, micros(now), hash, micros(now)), &usedAt)
		if err == nil {
			p = got
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		_, err = scanPushed(tx.QueryRowContext(ctx, `SELECT `+pushedCols+`, used_at FROM pushed_requests WHERE hash = ?`, hash), &usedAt)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("pushed request: %w", storage.ErrNotFound)
		case err != nil:
			return err
		case !usedAt.IsZero():
			return fmt.Errorf("pushed request: %w", storage.ErrAlreadyUsed)
		default:
			return fmt.Errorf("pushed request expired: %w", storage.ErrNotFound)
		}
	})
	if err != nil {
		return storage.PushedRequest{}, err
	}
	return p, nil
}

func (s *Store) PurgePushedRequests(ctx context.Context, before time.Time) (int64, error) {
	return s.purge(ctx, purgePushedRequests, before)
}

func purgePushedRequests(ctx context.Context, tx *stmtTx, before time.Time) (int64, error) {
	return changed(tx.ExecContext(ctx, `DELETE FROM pushed_requests WHERE expires_at < ?`, micros(before)))
}

const deviceCols = `device_code_hash, user_code_hash, realm, client_id, scopes, audience, status, user_id,
	session_id, auth_time, family_id, interval_ns, last_polled_at, created_at, expires_at, ip, user_agent`

func scanDevice(row rowScanner) (storage.DeviceGrant, error) {
	var g storage.DeviceGrant
	var interval int64
	err := row.Scan(&g.DeviceCodeHash, &g.UserCodeHash, &g.Realm, &g.ClientID, jsonCol{&g.Scopes}, jsonCol{&g.Audience},
		&g.Status, &g.UserID, &g.SessionID, timeCol{&g.AuthTime}, &g.FamilyID, &interval, timeCol{&g.LastPolledAt},
		timeCol{&g.CreatedAt}, timeCol{&g.ExpiresAt}, &g.IP, &g.UserAgent)
	g.Interval = time.Duration(interval)
	return g, err
}

func (s *Store) CreateDeviceGrant(ctx context.Context, g storage.DeviceGrant) error {
	_, err := s.exec(ctx, `INSERT INTO device_grants (`+deviceCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		g.DeviceCodeHash, g.UserCodeHash, g.Realm, g.ClientID, jsonText(g.Scopes), jsonText(g.Audience),
		g.Status, g.UserID, g.SessionID, micros(g.AuthTime), g.FamilyID, int64(g.Interval), micros(g.LastPolledAt),
		micros(g.CreatedAt), micros(g.ExpiresAt), g.IP, g.UserAgent)
	return mapWriteError(err, clientName(g.Realm, g.ClientID)+": device grant")
}

func (s *Store) GetDeviceGrantByUserCode(ctx context.Context, realm string, userCodeHash []byte, now time.Time) (storage.DeviceGrant, error) {
	g, err := scanDevice(s.reader.QueryRowContext(ctx, `SELECT `+deviceCols+` FROM device_grants
		WHERE realm = ? AND user_code_hash = ? AND expires_at > ?`, realm, userCodeHash, micros(now)))
	if errors.Is(err, sql.ErrNoRows) {
		return storage.DeviceGrant{}, fmt.Errorf("realm %q: device grant: %w", realm, storage.ErrNotFound)
	}
	if err != nil {
		return storage.DeviceGrant{}, fmt.Errorf("realm %q: device grant: %w", realm, err)
	}
	return g, nil
}

func (s *Store) DecideDeviceGrant(ctx context.Context, realm string, userCodeHash []byte, now time.Time, fn func(g *storage.DeviceGrant) error) (storage.DeviceGrant, error) {
	var out storage.DeviceGrant
	err := s.inTx(ctx, func(ctx context.Context, tx *stmtTx) error {
		g, err := scanDevice(tx.QueryRowContext(ctx, `SELECT `+deviceCols+` FROM device_grants
			WHERE realm = ? AND user_code_hash = ? AND expires_at > ?`, realm, userCodeHash, micros(now)))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("realm %q: device grant: %w", realm, storage.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if g.Status != storage.DeviceStatusPending {
			return fmt.Errorf("realm %q: device grant %s: %w", realm, g.Status, storage.ErrAlreadyUsed)
		}
		if err := decide(&g, fn); err != nil {
			return err
		}
		// The status in the WHERE makes the write the decision, whatever ran before.
		n, err := changed(tx.ExecContext(ctx, `UPDATE device_grants SET status = ?, user_id = ?, session_id = ?, auth_time = ?
			WHERE device_code_hash = ? AND status = ?`,
			g.Status, g.UserID, g.SessionID, micros(g.AuthTime), g.DeviceCodeHash, storage.DeviceStatusPending))
		if err != nil {
			return err
		}
		if n != 1 {
			return fmt.Errorf("realm %q: device grant: %w", realm, storage.ErrAlreadyUsed)
		}
		out = g
		return nil
	})
	if err != nil {
		return storage.DeviceGrant{}, err
	}
	return out, nil
}

// decide runs fn on a copy of g and keeps what it may change: the decision and
// who made it.
func decide(g *storage.DeviceGrant, fn func(g *storage.DeviceGrant) error) error {
	c := *g
	if err := fn(&c); err != nil {
		return err
	}
	if c.Status != storage.DeviceStatusApproved && c.Status != storage.DeviceStatusDenied {
		return fmt.Errorf("device grant: decision %q is neither %s nor %s", c.Status, storage.DeviceStatusApproved, storage.DeviceStatusDenied)
	}
	g.Status, g.UserID, g.SessionID, g.AuthTime = c.Status, c.UserID, c.SessionID, c.AuthTime
	return nil
}

func (s *Store) PollDeviceGrant(ctx context.Context, deviceCodeHash []byte, now time.Time, start storage.StartDeviceGrant) (storage.DeviceGrant, storage.PollResult, error) {
	var g storage.DeviceGrant
	var res storage.PollResult
	err := s.inTx(ctx, func(ctx context.Context, tx *stmtTx) error {
		g, res = storage.DeviceGrant{}, 0 // the writer may run this again
		var err error
		g, err = scanDevice(tx.QueryRowContext(ctx, `SELECT `+deviceCols+` FROM device_grants WHERE device_code_hash = ?`, deviceCodeHash))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("device grant: %w", storage.ErrNotFound)
		}
		if err != nil {
			return err
		}
		var redeem bool
		res, redeem, err = storage.Poll(&g, now)
		if err != nil || res == storage.PollExpired {
			return err
		}
		if redeem {
			f, first, err := start(g)
			if err != nil {
				return err
			}
			if err := insertFamily(ctx, tx, f, first); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, `UPDATE device_grants SET status = ?, interval_ns = ?, last_polled_at = ?
			WHERE device_code_hash = ?`, g.Status, int64(g.Interval), micros(g.LastPolledAt), g.DeviceCodeHash)
		return err
	})
	if err != nil && !errors.Is(err, storage.ErrAlreadyUsed) {
		return storage.DeviceGrant{}, 0, err
	}
	return g, res, err
}

func (s *Store) PurgeDeviceGrants(ctx context.Context, before time.Time) (int64, error) {
	return s.purge(ctx, purgeDeviceGrants, before)
}

func purgeDeviceGrants(ctx context.Context, tx *stmtTx, before time.Time) (int64, error) {
	return changed(tx.ExecContext(ctx, `DELETE FROM device_grants WHERE expires_at < ?`, micros(before)))
}
