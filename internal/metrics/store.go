package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/latchkey/latchkey/storage"
)

// Store returns st with the calls requests make timed and their failures
// counted, by operation, and every stored audit event counted (Audited).
// Methods not listed here (administration: creating, updating and deleting
// realms, clients and users) pass through untimed.
func (m *Metrics) Store(st storage.Store) storage.Store {
	s := &timedStore{Store: st, m: m}
	for i, name := range opNames {
		s.ops[i] = opMetrics{
			took:        m.storeLatency.WithLabelValues(name),
			unavailable: m.storeErrors.WithLabelValues(name, "unavailable"),
			failed:      m.storeErrors.WithLabelValues(name, other),
		}
	}
	return s
}

type opMetrics struct {
	took        prometheus.Observer
	unavailable prometheus.Counter
	failed      prometheus.Counter
}

type timedStore struct {
	storage.Store
	m   *Metrics
	ops [opCount]opMetrics
}

// The operations timed; opNames holds their label values, in the same order.
const (
	opReady = iota
	opGetRealm
	opListRealms
	opGetClient
	opListClients
	opGetUser
	opGetUserByUsername
	opGetUserByEmail
	opCreateSession
	opGetSession
	opTouchSession
	opRevokeSession
	opRevokeUserSessions
	opCreateAuthCode
	opRedeemAuthCode
	opCreateFamily
	opGetFamily
	opGetRefreshToken
	opRotateRefreshToken
	opRevokeFamily
	opListUserFamilies
	opRevokeUserFamilies
	opRevokeSessionFamilies
	opDenyJWT
	opIsJWTDenied
	opListDeniedJWTs
	opCreateSigningKey
	opListSigningKeys
	opAppendAudit
	opUseClientAssertion
	opGetConsent
	opSaveConsent
	opSweep
	opApplySeed
	opGetRole
	opListRoles
	opUseDPoPProof
	opCreatePushedRequest
	opUsePushedRequest
	opCreateDeviceGrant
	opGetDeviceGrantByUserCode
	opDecideDeviceGrant
	opPollDeviceGrant
	opCount
)

var opNames = [opCount]string{
	"Ready", "GetRealm", "ListRealms", "GetClient", "ListClients", "GetUser", "GetUserByUsername", "GetUserByEmail",
	"CreateSession", "GetSession", "TouchSession", "RevokeSession", "RevokeUserSessions",
	"CreateAuthCode", "RedeemAuthCode", "CreateFamily", "GetFamily", "GetRefreshToken", "RotateRefreshToken",
	"RevokeFamily", "ListUserFamilies", "RevokeUserFamilies", "RevokeSessionFamilies",
	"DenyJWT", "IsJWTDenied", "ListDeniedJWTs", "CreateSigningKey", "ListSigningKeys", "AppendAudit",
	"UseClientAssertion", "GetConsent", "SaveConsent", "Sweep", "ApplySeed", "GetRole", "ListRoles",
	"UseDPoPProof", "CreatePushedRequest", "UsePushedRequest",
	"CreateDeviceGrant", "GetDeviceGrantByUserCode", "DecideDeviceGrant", "PollDeviceGrant",
}

// done observes a call. The sentinel answers (not found, conflict, already used,
// revoked) are outcomes the caller asked about, not failures.
func (s *timedStore) done(op int, start time.Time, err error) {
	o := &s.ops[op]
	o.took.Observe(time.Since(start).Seconds())
	switch {
	case err == nil, errors.Is(err, storage.ErrNotFound), errors.Is(err, storage.ErrConflict),
		errors.Is(err, storage.ErrAlreadyUsed), errors.Is(err, storage.ErrRevoked):
	case errors.Is(err, storage.ErrUnavailable):
		o.unavailable.Inc()
	default:
		o.failed.Inc()
	}
}

func (s *timedStore) Ready(ctx context.Context) error {
	start := time.Now()
	err := s.Store.Ready(ctx)
	s.done(opReady, start, err)
	return err
}

func (s *timedStore) GetRealm(ctx context.Context, name string) (storage.Realm, error) {
	start := time.Now()
	r, err := s.Store.GetRealm(ctx, name)
	s.done(opGetRealm, start, err)
	return r, err
}

func (s *timedStore) ListRealms(ctx context.Context) ([]storage.Realm, error) {
	start := time.Now()
	r, err := s.Store.ListRealms(ctx)
	s.done(opListRealms, start, err)
	return r, err
}

func (s *timedStore) GetClient(ctx context.Context, realm, id string) (storage.Client, error) {
	start := time.Now()
	c, err := s.Store.GetClient(ctx, realm, id)
	s.done(opGetClient, start, err)
	return c, err
}

func (s *timedStore) ListClients(ctx context.Context, realm string) ([]storage.Client, error) {
	start := time.Now()
	c, err := s.Store.ListClients(ctx, realm)
	s.done(opListClients, start, err)
	return c, err
}

func (s *timedStore) GetUser(ctx context.Context, realm, id string) (storage.User, error) {
	start := time.Now()
	u, err := s.Store.GetUser(ctx, realm, id)
	s.done(opGetUser, start, err)
	return u, err
}

func (s *timedStore) GetUserByUsername(ctx context.Context, realm, username string) (storage.User, error) {
	start := time.Now()
	u, err := s.Store.GetUserByUsername(ctx, realm, username)
	s.done(opGetUserByUsername, start, err)
	return u, err
}

func (s *timedStore) GetUserByEmail(ctx context.Context, realm, email string) (storage.User, error) {
	start := time.Now()
	u, err := s.Store.GetUserByEmail(ctx, realm, email)
	s.done(opGetUserByEmail, start, err)
	return u, err
}

func (s *timedStore) CreateSession(ctx context.Context, sess storage.Session) error {
	start := time.Now()
	err := s.Store.CreateSession(ctx, sess)
	s.done(opCreateSession, start, err)
	return err
}

func (s *timedStore) GetSession(ctx context.Context, id string) (storage.Session, error) {
	start := time.Now()
	sess, err := s.Store.GetSession(ctx, id)
	s.done(opGetSession, start, err)
	return sess, err
}

func (s *timedStore) TouchSession(ctx context.Context, id string, seenAt, idleExpiresAt time.Time) error {
	start := time.Now()
	err := s.Store.TouchSession(ctx, id, seenAt, idleExpiresAt)
	s.done(opTouchSession, start, err)
	return err
}

func (s *timedStore) RevokeSession(ctx context.Context, id string, at time.Time) error {
	start := time.Now()
	err := s.Store.RevokeSession(ctx, id, at)
	s.done(opRevokeSession, start, err)
	return err
}

func (s *timedStore) RevokeUserSessions(ctx context.Context, realm, userID string, at time.Time) (int64, error) {
	start := time.Now()
	n, err := s.Store.RevokeUserSessions(ctx, realm, userID, at)
	s.done(opRevokeUserSessions, start, err)
	return n, err
}

func (s *timedStore) CreateAuthCode(ctx context.Context, c storage.AuthCode, keep int) error {
	start := time.Now()
	err := s.Store.CreateAuthCode(ctx, c, keep)
	s.done(opCreateAuthCode, start, err)
	return err
}

func (s *timedStore) RedeemAuthCode(ctx context.Context, hash []byte, now time.Time, begin storage.StartGrant) (storage.AuthCode, error) {
	start := time.Now()
	c, err := s.Store.RedeemAuthCode(ctx, hash, now, begin)
	s.done(opRedeemAuthCode, start, err)
	return c, err
}

func (s *timedStore) CreateFamily(ctx context.Context, f storage.Family, first storage.RefreshToken) error {
	start := time.Now()
	err := s.Store.CreateFamily(ctx, f, first)
	s.done(opCreateFamily, start, err)
	return err
}

func (s *timedStore) GetFamily(ctx context.Context, id string) (storage.Family, error) {
	start := time.Now()
	f, err := s.Store.GetFamily(ctx, id)
	s.done(opGetFamily, start, err)
	return f, err
}

func (s *timedStore) GetRefreshToken(ctx context.Context, hash []byte) (storage.RefreshToken, error) {
	start := time.Now()
	rt, err := s.Store.GetRefreshToken(ctx, hash)
	s.done(opGetRefreshToken, start, err)
	return rt, err
}

func (s *timedStore) RotateRefreshToken(ctx context.Context, parentHash []byte, child storage.RefreshToken, sealed []byte, use storage.FamilyUse) (storage.RefreshToken, error) {
	start := time.Now()
	rt, err := s.Store.RotateRefreshToken(ctx, parentHash, child, sealed, use)
	s.done(opRotateRefreshToken, start, err)
	return rt, err
}

func (s *timedStore) RevokeFamily(ctx context.Context, id string, at time.Time, reason string) error {
	start := time.Now()
	err := s.Store.RevokeFamily(ctx, id, at, reason)
	s.done(opRevokeFamily, start, err)
	return err
}

func (s *timedStore) ListUserFamilies(ctx context.Context, realm, userID string, now time.Time) ([]storage.Family, error) {
	start := time.Now()
	f, err := s.Store.ListUserFamilies(ctx, realm, userID, now)
	s.done(opListUserFamilies, start, err)
	return f, err
}

func (s *timedStore) RevokeUserFamilies(ctx context.Context, realm, userID string, at time.Time, reason string) (int64, error) {
	start := time.Now()
	n, err := s.Store.RevokeUserFamilies(ctx, realm, userID, at, reason)
	s.done(opRevokeUserFamilies, start, err)
	return n, err
}

func (s *timedStore) RevokeSessionFamilies(ctx context.Context, sessionID string, at time.Time, reason string) (int64, error) {
	start := time.Now()
	n, err := s.Store.RevokeSessionFamilies(ctx, sessionID, at, reason)
	s.done(opRevokeSessionFamilies, start, err)
	return n, err
}

func (s *timedStore) DenyJWT(ctx context.Context, d storage.DeniedJWT) error {
	start := time.Now()
	err := s.Store.DenyJWT(ctx, d)
	s.done(opDenyJWT, start, err)
	return err
}

func (s *timedStore) IsJWTDenied(ctx context.Context, realm, jti string) (bool, error) {
	start := time.Now()
	ok, err := s.Store.IsJWTDenied(ctx, realm, jti)
	s.done(opIsJWTDenied, start, err)
	return ok, err
}

func (s *timedStore) ListDeniedJWTs(ctx context.Context, realm string, now time.Time) ([]storage.DeniedJWT, error) {
	start := time.Now()
	d, err := s.Store.ListDeniedJWTs(ctx, realm, now)
	s.done(opListDeniedJWTs, start, err)
	return d, err
}

func (s *timedStore) CreateSigningKey(ctx context.Context, k storage.SigningKey) error {
	start := time.Now()
	err := s.Store.CreateSigningKey(ctx, k)
	s.done(opCreateSigningKey, start, err)
	return err
}

func (s *timedStore) ListSigningKeys(ctx context.Context, realm string) ([]storage.SigningKey, error) {
	start := time.Now()
	k, err := s.Store.ListSigningKeys(ctx, realm)
	s.done(opListSigningKeys, start, err)
	return k, err
}

// AppendAudit stores e and, once it is stored, counts it.
func (s *timedStore) AppendAudit(ctx context.Context, e storage.AuditEvent) (int64, error) {
	start := time.Now()
	id, err := s.Store.AppendAudit(ctx, e)
	s.done(opAppendAudit, start, err)
	if err == nil {
		s.m.Audited(e)
	}
	return id, err
}

func (s *timedStore) UseClientAssertion(ctx context.Context, realm, clientID, jti string, expiresAt time.Time) error {
	start := time.Now()
	err := s.Store.UseClientAssertion(ctx, realm, clientID, jti, expiresAt)
	s.done(opUseClientAssertion, start, err)
	return err
}

func (s *timedStore) GetConsent(ctx context.Context, realm, userID, clientID string) (storage.Consent, error) {
	start := time.Now()
	c, err := s.Store.GetConsent(ctx, realm, userID, clientID)
	s.done(opGetConsent, start, err)
	return c, err
}

func (s *timedStore) SaveConsent(ctx context.Context, c storage.Consent) error {
	start := time.Now()
	err := s.Store.SaveConsent(ctx, c)
	s.done(opSaveConsent, start, err)
	return err
}

func (s *timedStore) Sweep(ctx context.Context, now time.Time, grace time.Duration) (storage.SweepResult, error) {
	start := time.Now()
	r, err := s.Store.Sweep(ctx, now, grace)
	s.done(opSweep, start, err)
	return r, err
}

// ApplySeed applies the seed and counts the audit events it appended in its
// transaction, as audit.Logged logs them.
func (s *timedStore) ApplySeed(ctx context.Context, seed storage.Seed) (storage.SeedResult, error) {
	start := time.Now()
	res, err := s.Store.ApplySeed(ctx, seed)
	s.done(opApplySeed, start, err)
	for _, e := range res.Audit {
		s.m.Audited(e)
	}
	return res, err
}

func (s *timedStore) GetRole(ctx context.Context, realm, clientID, name string) (storage.Role, error) {
	start := time.Now()
	r, err := s.Store.GetRole(ctx, realm, clientID, name)
	s.done(opGetRole, start, err)
	return r, err
}

func (s *timedStore) ListRoles(ctx context.Context, realm string) ([]storage.Role, error) {
	start := time.Now()
	r, err := s.Store.ListRoles(ctx, realm)
	s.done(opListRoles, start, err)
	return r, err
}

func (s *timedStore) UseDPoPProof(ctx context.Context, realm, jkt, jti string, until time.Time) error {
	start := time.Now()
	err := s.Store.UseDPoPProof(ctx, realm, jkt, jti, until)
	s.done(opUseDPoPProof, start, err)
	return err
}

func (s *timedStore) CreatePushedRequest(ctx context.Context, p storage.PushedRequest) error {
	start := time.Now()
	err := s.Store.CreatePushedRequest(ctx, p)
	s.done(opCreatePushedRequest, start, err)
	return err
}

func (s *timedStore) UsePushedRequest(ctx context.Context, hash []byte, now time.Time) (storage.PushedRequest, error) {
	start := time.Now()
	p, err := s.Store.UsePushedRequest(ctx, hash, now)
	s.done(opUsePushedRequest, start, err)
	return p, err
}

func (s *timedStore) CreateDeviceGrant(ctx context.Context, g storage.DeviceGrant) error {
	start := time.Now()
	err := s.Store.CreateDeviceGrant(ctx, g)
	s.done(opCreateDeviceGrant, start, err)
	return err
}

func (s *timedStore) GetDeviceGrantByUserCode(ctx context.Context, realm string, userCodeHash []byte, now time.Time) (storage.DeviceGrant, error) {
	start := time.Now()
	g, err := s.Store.GetDeviceGrantByUserCode(ctx, realm, userCodeHash, now)
	s.done(opGetDeviceGrantByUserCode, start, err)
	return g, err
}

func (s *timedStore) DecideDeviceGrant(ctx context.Context, realm string, userCodeHash []byte, now time.Time, fn func(g *storage.DeviceGrant) error) (storage.DeviceGrant, error) {
	start := time.Now()
	g, err := s.Store.DecideDeviceGrant(ctx, realm, userCodeHash, now, fn)
	s.done(opDecideDeviceGrant, start, err)
	return g, err
}

func (s *timedStore) PollDeviceGrant(ctx context.Context, deviceCodeHash []byte, now time.Time, begin storage.StartDeviceGrant) (storage.DeviceGrant, storage.PollResult, error) {
	start := time.Now()
	g, r, err := s.Store.PollDeviceGrant(ctx, deviceCodeHash, now, begin)
	s.done(opPollDeviceGrant, start, err)
	return g, r, err
}
