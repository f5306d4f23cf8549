package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/latchkey/latchkey/storage"
)

// The state of DPoP, PAR and the device authorization grant. Each single-use
// decision is one statement PostgreSQL row-locks (an insert that conflicts, a
// conditional update), or a transaction that reads the row FOR UPDATE, so
// callers on any instance take turns and only the first wins.

// UseDPoPProof records the proof's jti until until, exactly once: the insert is
// the whole race, as in UseClientAssertion.
func (s *Store) UseDPoPProof(ctx context.Context, realm, jkt, jti string, until time.Time) error {
	tag, err := s.pool.Exec(ctx, `
		INSERT INTO dpop_proofs (realm, jkt, jti, expires_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (realm, jkt, jti) DO NOTHING`,
		realm, jkt, jti, ts(until))
	if err != nil {
		return fmt.Errorf("use DPoP proof %q in realm %q: %w", jti, realm, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("use DPoP proof %q in realm %q: %w", jti, realm, storage.ErrAlreadyUsed)
	}
	return nil
}

// PurgeDPoPProofs deletes entries that expired before the given time.
func (s *Store) PurgeDPoPProofs(ctx context.Context, before time.Time) (int64, error) {
	return purgeDPoPProofs(ctx, s.pool, before)
}

func purgeDPoPProofs(ctx context.Context, q querier, before time.Time) (int64, error) {
	tag, err := q.Exec(ctx, `DELETE FROM dpop_proofs WHERE expires_at < $1`, ts(before))
	if err != nil {
		return 0, fmt.Errorf("purge DPoP proofs: %w", err)
	}
	return tag.RowsAffected(), nil
}

const pushedColumns = `hash, realm, client_id, params, created_at, expires_at`

func scanPushed(row scanner, usedAt *time.Time) (storage.PushedRequest, error) {
	var p storage.PushedRequest
	err := row.Scan(&p.Hash, &p.Realm, &p.ClientID, &p.Params, nt(&p.CreatedAt), nt(&p.ExpiresAt), nt(usedAt))
	return p, err
}

// CreatePushedRequest stores a new pushed request. Errors never show the hash.
func (s *Store) CreatePushedRequest(ctx context.Context, p storage.PushedRequest) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO pushed_requests (`+pushedColumns+`) VALUES ($1, $2, $3, $4, $5, $6)`,
		p.Hash, p.Realm, p.ClientID, bytesOrNull(p.Params), ts(p.CreatedAt), ts(p.ExpiresAt))
	if err != nil {
		return fmt.Errorf("create pushed request for client %q in realm %q: %w", p.ClientID, p.Realm, classify(err))
	}
	return nil
}

// UsePushedRequest marks a live request used at now, exactly once. The
// conditional UPDATE is the whole race, as in RedeemAuthCode; only then is the
// row read to tell the losers why.
func (s *Store) UsePushedRequest(ctx context.Context, hash []byte, now time.Time) (storage.PushedRequest, error) {
	var usedAt time.Time
	p, err := scanPushed(s.pool.QueryRow(ctx, `
		UPDATE pushed_requests SET used_at = $2
		WHERE hash = $1 AND used_at IS NULL AND expires_at > $2
		RETURNING `+pushedColumns+`, used_at`, hash, ts(now)), &usedAt)
	switch {
	case err == nil:
		return p, nil
	case !errors.Is(err, pgx.ErrNoRows):
		return storage.PushedRequest{}, fmt.Errorf("use pushed request: %w", err)
	}
	_, err = scanPushed(s.pool.QueryRow(ctx, `SELECT `+pushedColumns+`, used_at FROM pushed_requests WHERE hash = $1`, hash), &usedAt)
	switch {
	case err != nil:
		return storage.PushedRequest{}, fmt.Errorf("use pushed request: %w", notFound(err))
	case !usedAt.IsZero():
		return storage.PushedRequest{}, fmt.Errorf("use pushed request: %w", storage.ErrAlreadyUsed)
	}
	return storage.PushedRequest{}, fmt.Errorf("use pushed request: expired: %w", storage.ErrNotFound)
}

// PurgePushedRequests deletes requests that expired before the given time.
func (s *Store) PurgePushedRequests(ctx context.Context, before time.Time) (int64, error) {
	return purgePushedRequests(ctx, s.pool, before)
}

func purgePushedRequests(ctx context.Context, q querier, before time.Time) (int64, error) {
	tag, err := q.Exec(ctx, `DELETE FROM pushed_requests WHERE expires_at < $1`, ts(before))
	if err != nil {
		return 0, fmt.Errorf("purge pushed requests: %w", err)
	}
	return tag.RowsAffected(), nil
}

const deviceColumns = `device_code_hash, user_code_hash, realm, client_id, scopes, audience, status, user_id,
	session_id, auth_time, family_id, interval_ns, last_polled_at, created_at, expires_at, ip, user_agent`

func scanDevice(row scanner) (storage.DeviceGrant, error) {
	var g storage.DeviceGrant
	var interval int64
	err := row.Scan(&g.DeviceCodeHash, &g.UserCodeHash, &g.Realm, &g.ClientID, &g.Scopes, &g.Audience,
		&g.Status, &g.UserID, &g.SessionID, nt(&g.AuthTime), &g.FamilyID, &interval, nt(&g.LastPolledAt),
		nt(&g.CreatedAt), nt(&g.ExpiresAt), &g.IP, &g.UserAgent)
	g.Interval = time.Duration(interval)
	return g, err
}

// CreateDeviceGrant stores a new device grant. Errors never show the hashes.
func (s *Store) CreateDeviceGrant(ctx context.Context, g storage.DeviceGrant) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO device_grants (`+deviceColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)`,
		g.DeviceCodeHash, g.UserCodeHash, g.Realm, g.ClientID, list(g.Scopes), list(g.Audience),
		g.Status, g.UserID, g.SessionID, ts(g.AuthTime), g.FamilyID, int64(g.Interval), ts(g.LastPolledAt),
		ts(g.CreatedAt), ts(g.ExpiresAt), g.IP, g.UserAgent)
	if err != nil {
		return fmt.Errorf("create device grant for client %q in realm %q: %w", g.ClientID, g.Realm, classify(err))
	}
	return nil
}

// GetDeviceGrantByUserCode returns the realm's live grant with that user code.
func (s *Store) GetDeviceGrantByUserCode(ctx context.Context, realm string, userCodeHash []byte, now time.Time) (storage.DeviceGrant, error) {
	g, err := scanDevice(s.pool.QueryRow(ctx, `SELECT `+deviceColumns+` FROM device_grants
		WHERE realm = $1 AND user_code_hash = $2 AND expires_at > $3`, realm, userCodeHash, ts(now)))
	if err != nil {
		return storage.DeviceGrant{}, fmt.Errorf("get device grant in realm %q: %w", realm, notFound(err))
	}
	return g, nil
}

// DecideDeviceGrant reads the grant FOR UPDATE, so a concurrent decision waits
// and then finds it decided.
func (s *Store) DecideDeviceGrant(ctx context.Context, realm string, userCodeHash []byte, now time.Time, fn func(g *storage.DeviceGrant) error) (storage.DeviceGrant, error) {
	var out storage.DeviceGrant
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		g, err := scanDevice(tx.QueryRow(ctx, `SELECT `+deviceColumns+` FROM device_grants
			WHERE realm = $1 AND user_code_hash = $2 AND expires_at > $3 FOR UPDATE`, realm, userCodeHash, ts(now)))
		if err != nil {
			return notFound(err)
		}
		if g.Status != storage.DeviceStatusPending {
			return fmt.Errorf("already %s: %w", g.Status, storage.ErrAlreadyUsed)
		}
		if err := decide(&g, fn); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE device_grants SET status = $2, user_id = $3, session_id = $4, auth_time = $5
			WHERE device_code_hash = $1`, g.DeviceCodeHash, g.Status, g.UserID, g.SessionID, ts(g.AuthTime)); err != nil {
			return err
		}
		out = g
		return nil
	})
	if err != nil {
		return storage.DeviceGrant{}, fmt.Errorf("decide device grant in realm %q: %w", realm, err)
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
		return fmt.Errorf("decision %q is neither %s nor %s", c.Status, storage.DeviceStatusApproved, storage.DeviceStatusDenied)
	}
	g.Status, g.UserID, g.SessionID, g.AuthTime = c.Status, c.UserID, c.SessionID, c.AuthTime
	return nil
}

// PollDeviceGrant reads the grant FOR UPDATE, so polls of one device code take
// turns across instances: the first that finds it approved starts the grant and
// marks it redeemed, and the next finds it redeemed.
func (s *Store) PollDeviceGrant(ctx context.Context, deviceCodeHash []byte, now time.Time, start storage.StartDeviceGrant) (storage.DeviceGrant, storage.PollResult, error) {
	var g storage.DeviceGrant
	var res storage.PollResult
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		g, err = scanDevice(tx.QueryRow(ctx, `SELECT `+deviceColumns+` FROM device_grants
			WHERE device_code_hash = $1 FOR UPDATE`, deviceCodeHash))
		if err != nil {
			return notFound(err)
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
				return classify(err)
			}
		}
		_, err = tx.Exec(ctx, `UPDATE device_grants SET status = $2, interval_ns = $3, last_polled_at = $4
			WHERE device_code_hash = $1`, g.DeviceCodeHash, g.Status, int64(g.Interval), ts(g.LastPolledAt))
		return err
	})
	switch {
	case err == nil:
		return g, res, nil
	case errors.Is(err, storage.ErrAlreadyUsed):
		return g, 0, fmt.Errorf("poll device grant: %w", err)
	}
	return storage.DeviceGrant{}, 0, fmt.Errorf("poll device grant: %w", err)
}

// PurgeDeviceGrants deletes grants that expired before the given time.
func (s *Store) PurgeDeviceGrants(ctx context.Context, before time.Time) (int64, error) {
	return purgeDeviceGrants(ctx, s.pool, before)
}

func purgeDeviceGrants(ctx context.Context, q querier, before time.Time) (int64, error) {
	tag, err := q.Exec(ctx, `DELETE FROM device_grants WHERE expires_at < $1`, ts(before))
	if err != nil {
		return 0, fmt.Errorf("purge device grants: %w", err)
	}
	return tag.RowsAffected(), nil
}
