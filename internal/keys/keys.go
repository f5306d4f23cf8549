// Package keys owns realms' signing keys: generating them, sealing their private
// halves at rest, the rotation policy, the published JWKS, signing JWTs and finding
// the key that verifies one.
package keys

import (
	"cmp"
	"context"
	"crypto"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/latchkey/latchkey/internal/masterkey"
	"github.com/latchkey/latchkey/storage"
)

// Algorithms a realm may sign with.
const (
	ES256 = "ES256"
	EdDSA = "EdDSA"
	RS256 = "RS256"
)

// Algs are the supported signing algorithms.
var Algs = []string{ES256, EdDSA, RS256}

// ErrUnknownKey is returned when no published key of the realm has the kid.
var ErrUnknownKey = errors.New("keys: unknown key id")

// Store is what the key manager keeps keys in.
type Store interface {
	GetRealm(ctx context.Context, name string) (storage.Realm, error)
	ListClients(ctx context.Context, realm string) ([]storage.Client, error)
	CreateSigningKey(ctx context.Context, k storage.SigningKey) error
	ListSigningKeys(ctx context.Context, realm string) ([]storage.SigningKey, error)
	RetireSigningKey(ctx context.Context, realm, kid string, signUntil, publishUntil time.Time, events ...storage.AuditEvent) error
	PurgeSigningKeys(ctx context.Context, before time.Time) (int64, error)
	AppendAudit(ctx context.Context, e storage.AuditEvent) (int64, error)
	// Exclusive makes a realm's first key on one instance of all.
	Exclusive(ctx context.Context, name string, fn func(ctx context.Context) error) (bool, error)
}

// Policy is the rotation policy.
type Policy struct {
	// JWKSMaxAge is the JWKS's Cache-Control max-age: how long a resource server may
	// go without seeing a new key.
	JWKSMaxAge time.Duration
	// ReloadEvery is how often an instance re-reads its realms' keys from the store,
	// so keys made by another instance or by `latchkey keys rotate` are seen.
	ReloadEvery time.Duration
	// RotateEvery is how old the current key may get before a new one is made.
	RotateEvery time.Duration
	// Leeway is added to the longest token lifetime when deciding how long a retired
	// key stays published, to cover clock skew.
	Leeway time.Duration
}

// DefaultPolicy is the policy Latchkey runs with.
var DefaultPolicy = Policy{
	JWKSMaxAge:  5 * time.Minute,
	ReloadEvery: 30 * time.Second,
	RotateEvery: 30 * 24 * time.Hour,
	Leeway:      time.Minute,
}

// PublishLead is how long a new key is published before it signs: one JWKS cache
// lifetime, plus the time every other instance may take to load it.
func (p Policy) PublishLead() time.Duration { return p.JWKSMaxAge + p.ReloadEvery }

// Key is a realm's signing key, opened.
type Key struct {
	storage.SigningKey
	private crypto.Signer
	public  jose.JSONWebKey
	headers sync.Map // typ → encoded JWS protected header
}

// Public returns the key's public JWK.
func (k *Key) Public() jose.JSONWebKey { return k.public }

func (k *Key) signsAt(now time.Time) bool {
	return !now.Before(k.SignFrom) && (k.SignUntil.IsZero() || now.Before(k.SignUntil))
}

func (k *Key) publishedAt(now time.Time) bool {
	return !now.Before(k.CreatedAt) && (k.PublishUntil.IsZero() || now.Before(k.PublishUntil))
}

// Manager hands out realms' keys, loading them from the store and caching them.
type Manager struct {
	store  Store
	sealer *sealer
	policy Policy
	now    func() time.Time

	mu    sync.Mutex
	rings map[string]*ring
	// forgotten counts Forget calls. A reload that began before one may have read
	// the keys as they were, so its ring is not kept: kept, it would serve them
	// until the next reload.
	forgotten uint64

	createMu sync.Mutex // serialises making a realm's first key

	master     *masterkey.Key // for the realms' token keys
	tokenAEADs sync.Map       // realm → cipher.AEAD
}

// ring is one realm's keys as last loaded.
type ring struct {
	loadedAt time.Time
	keys     []*Key // oldest first
	jwks     []byte // the published JWK Set, built at load
}

// NewManager returns a Manager; now is the clock.
func NewManager(store Store, mk *masterkey.Key, policy Policy, now func() time.Time) *Manager {
	return &Manager{store: store, sealer: newSealer(mk), master: mk, policy: policy, now: now, rings: map[string]*ring{}}
}

// TokenAEAD returns the realm's key for sealing opaque access tokens:
// XChaCha20-Poly1305 under a key derived from the master key and the realm's name.
// Its 192-bit random nonces can be drawn for every token without the birthday
// bound that caps AES-GCM's 96-bit ones at 2^32 messages per key.
func (m *Manager) TokenAEAD(realm string) cipher.AEAD {
	if a, ok := m.tokenAEADs.Load(realm); ok {
		return a.(cipher.AEAD)
	}
	a, err := chacha20poly1305.NewX(m.master.Derive("opaque access tokens of realm " + realm))
	if err != nil { // only for a key of the wrong size, which Derive never returns
		panic("keys: " + err.Error())
	}
	m.tokenAEADs.Store(realm, a)
	return a
}

// Policy returns the manager's rotation policy.
func (m *Manager) Policy() Policy { return m.policy }

// ring returns the realm's keys, reloading them when they are older than the
// reload interval, or when force is set and they are older than a second (so a
// flood of unknown kids cannot turn into a flood of store reads).
func (m *Manager) ring(ctx context.Context, realm string, force bool) (*ring, error) {
	now := m.now()
	m.mu.Lock()
	r := m.rings[realm]
	m.mu.Unlock()
	if r != nil && now.Sub(r.loadedAt) < m.policy.ReloadEvery && !(force && now.Sub(r.loadedAt) >= time.Second) {
		return r, nil
	}
	return m.reload(ctx, realm)
}

func (m *Manager) reload(ctx context.Context, realm string) (*ring, error) {
	now := m.now()
	m.mu.Lock()
	gen := m.forgotten
	m.mu.Unlock()
	stored, err := m.store.ListSigningKeys(ctx, realm)
	if err != nil {
		return nil, fmt.Errorf("load signing keys of realm %q: %w", realm, err)
	}
	// Reuse keys already opened: unsealing and parsing each time would be wasted work.
	m.mu.Lock()
	old := m.rings[realm]
	m.mu.Unlock()
	r := &ring{loadedAt: now}
	for _, sk := range stored {
		var k *Key
		if old != nil {
			if i := slices.IndexFunc(old.keys, func(o *Key) bool { return o.KID == sk.KID }); i >= 0 {
				k = &Key{SigningKey: sk, private: old.keys[i].private, public: old.keys[i].public}
			}
		}
		if k == nil {
			if k, err = m.open(sk); err != nil {
				return nil, err
			}
		}
		r.keys = append(r.keys, k)
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	for _, k := range r.keys {
		if k.publishedAt(now) {
			set.Keys = append(set.Keys, k.public)
		}
	}
	if r.jwks, err = json.Marshal(set); err != nil {
		return nil, err
	}
	m.mu.Lock()
	if m.forgotten == gen {
		m.rings[realm] = r
	}
	m.mu.Unlock()
	return r, nil
}

// Signer returns the key that signs for the realm with alg now. A realm with no key
// for alg gets its first one, which signs at once: no token or cached JWKS can
// predate it.
func (m *Manager) Signer(ctx context.Context, realm, alg string) (*Key, error) {
	r, err := m.ring(ctx, realm, false)
	if err != nil {
		return nil, err
	}
	if k := current(r.keys, alg, m.now()); k != nil {
		return k, nil
	}
	// One first key, however many requests ask at once: without this, the first
	// burst of requests to a new realm made a key each (64 of them under 64
	// connections, seconds of key generation before anything was answered). And
	// one across instances: those starting together on an empty database each
	// made one, and signed with different keys until their next reload.
	m.createMu.Lock()
	defer m.createMu.Unlock()
	wait := time.NewTimer(0)
	defer wait.Stop()
	for range firstKeyTries {
		if r, err = m.reload(ctx, realm); err != nil {
			return nil, err
		}
		if k := current(r.keys, alg, m.now()); k != nil {
			return k, nil
		}
		ran, err := m.store.Exclusive(ctx, "first signing key of "+realm, func(ctx context.Context) error {
			// Decided inside: another instance may have made it since the reload above.
			r, err := m.reload(ctx, realm)
			if err != nil || current(r.keys, alg, m.now()) != nil {
				return err
			}
			now := m.now().UTC().Truncate(time.Microsecond)
			if _, err := m.create(ctx, realm, alg, now, now); err != nil && !errors.Is(err, storage.ErrConflict) {
				return err
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if ran {
			continue // read what was made
		}
		// Another instance is making it: look again shortly.
		wait.Reset(firstKeyPoll)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-wait.C:
		}
	}
	return nil, fmt.Errorf("realm %q has no %s signing key", realm, alg)
}

const (
	// firstKeyPoll is how often an instance waiting for another to make a realm's
	// first key looks for it; firstKeyTries bounds the looking (about five seconds).
	firstKeyPoll  = 50 * time.Millisecond
	firstKeyTries = 100
)

// Signing returns, for each realm whose keys this manager has loaded, the key that
// signs with each algorithm now, ordered by realm and algorithm. It reads no store.
func (m *Manager) Signing() []storage.SigningKey {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []storage.SigningKey
	for _, r := range m.rings {
		var algs []string
		for _, k := range r.keys {
			if !slices.Contains(algs, k.Alg) {
				algs = append(algs, k.Alg)
			}
		}
		for _, alg := range algs {
			if k := current(r.keys, alg, now); k != nil {
				out = append(out, k.SigningKey)
			}
		}
	}
	slices.SortFunc(out, func(a, b storage.SigningKey) int {
		return cmp.Or(strings.Compare(a.Realm, b.Realm), strings.Compare(a.Alg, b.Alg))
	})
	return out
}

// current picks the key that signs with alg at now: of those in their signing
// period, the one that started last.
func current(keys []*Key, alg string, now time.Time) *Key {
	var best *Key
	for _, k := range keys {
		if k.Alg == alg && k.signsAt(now) && (best == nil || !k.SignFrom.Before(best.SignFrom)) {
			best = k
		}
	}
	return best
}

// Lookup returns the published key with the kid. An unknown kid makes it re-read the
// store once, in case another instance has just rotated.
func (m *Manager) Lookup(ctx context.Context, realm, kid string) (*Key, error) {
	for _, force := range []bool{false, true} {
		r, err := m.ring(ctx, realm, force)
		if err != nil {
			return nil, err
		}
		now := m.now()
		for _, k := range r.keys {
			if k.KID == kid && k.publishedAt(now) {
				return k, nil
			}
		}
	}
	return nil, ErrUnknownKey
}

// JWKS returns the realm's published JWK Set as JSON.
func (m *Manager) JWKS(ctx context.Context, realm string) ([]byte, error) {
	r, err := m.ring(ctx, realm, false)
	if err != nil {
		return nil, err
	}
	return r.jwks, nil
}

// Rotate makes a new key for every algorithm the realm signs with (and for alg, if
// given and not among them). The new key is published now and signs after
// PublishLead; the keys it replaces stop signing then and stay published until
// every token they signed has expired.
func (m *Manager) Rotate(ctx context.Context, realm, alg string) ([]storage.SigningKey, error) {
	stored, err := m.store.ListSigningKeys(ctx, realm)
	if err != nil {
		return nil, fmt.Errorf("rotate keys of realm %q: %w", realm, err)
	}
	retain, err := m.longestTokenLifetime(ctx, realm)
	if err != nil {
		return nil, err
	}
	now := m.now().UTC().Truncate(time.Microsecond)
	signFrom := now.Add(m.policy.PublishLead())
	algs := map[string]bool{}
	if alg != "" {
		algs[alg] = true
	}
	for _, k := range stored {
		if k.SignUntil.IsZero() {
			algs[k.Alg] = true
		}
	}
	var made []storage.SigningKey
	for _, a := range Algs {
		if !algs[a] {
			continue
		}
		k, err := m.create(ctx, realm, a, now, signFrom)
		if err != nil {
			return made, err
		}
		made = append(made, k)
		if _, err := m.store.AppendAudit(ctx, storage.AuditEvent{Time: now, Type: "signing_key.rotated", Realm: realm,
			Details: map[string]string{"kid": k.KID, "alg": a, "signs_from": signFrom.Format(time.RFC3339)}}); err != nil {
			return made, err
		}
		// Every key of this alg still signing (or due to) hands over to the new one.
		for _, old := range stored {
			if old.Alg == a && (old.SignUntil.IsZero() || old.SignUntil.After(signFrom)) {
				if err := m.store.RetireSigningKey(ctx, realm, old.KID, signFrom, signFrom.Add(retain)); err != nil {
					return made, err
				}
			}
		}
	}
	_, err = m.reload(ctx, realm)
	return made, err
}

// longestTokenLifetime is how long a token signed by a key may outlive the key's
// last signature: the longest access-token lifetime in the realm, plus leeway.
func (m *Manager) longestTokenLifetime(ctx context.Context, realm string) (time.Duration, error) {
	r, err := m.store.GetRealm(ctx, realm)
	if err != nil {
		return 0, fmt.Errorf("rotate keys of realm %q: %w", realm, err)
	}
	clients, err := m.store.ListClients(ctx, realm)
	if err != nil {
		return 0, fmt.Errorf("rotate keys of realm %q: %w", realm, err)
	}
	longest := max(r.AccessTokenTTL, time.Hour) // ID tokens live up to an hour
	for _, c := range clients {
		longest = max(longest, c.Tokens.AccessTokenTTL)
	}
	return longest + m.policy.Leeway, nil
}

// Retire takes a key out of use at once, as after a compromise: it stops signing
// and leaves the published JWKS now, so tokens it signed no longer verify on this
// instance (other instances see it at their next reload). events are written with
// the change. ErrNotFound (storage's) if the realm has no such key.
func (m *Manager) Retire(ctx context.Context, realm, kid string, events ...storage.AuditEvent) (storage.SigningKey, error) {
	now := m.now().UTC().Truncate(time.Microsecond)
	if err := m.store.RetireSigningKey(ctx, realm, kid, now, now, events...); err != nil {
		return storage.SigningKey{}, err
	}
	r, err := m.reload(ctx, realm)
	if err != nil {
		return storage.SigningKey{}, err
	}
	for _, k := range r.keys {
		if k.KID == kid {
			return k.SigningKey, nil
		}
	}
	return storage.SigningKey{}, fmt.Errorf("retire key %q of realm %q: %w", kid, realm, storage.ErrNotFound)
}

// Forget drops the realm's loaded keys, as after the realm is deleted (a realm
// made again under its name must not sign with the old one's keys) or after
// another instance changed them: the next Signer, Lookup or JWKS reads them
// afresh, so a retired key stops signing, verifying and being published at once.
func (m *Manager) Forget(realm string) {
	m.mu.Lock()
	m.forgotten++
	delete(m.rings, realm)
	m.mu.Unlock()
}

// Stale makes the next Signer, Lookup or JWKS read the realm's keys afresh, as after
// another instance changed them, so a retired key stops signing, verifying and
// being published at once. Unlike Forget it keeps what was loaded meanwhile:
// Signing still lists it, and keys already opened are reused.
func (m *Manager) Stale(realm string) {
	m.mu.Lock()
	m.forgotten++
	if r := m.rings[realm]; r != nil {
		m.rings[realm] = &ring{keys: r.keys} // a zero loadedAt: reloaded at next use
	}
	m.mu.Unlock()
}

// Key statuses, as the admin API lists them.
const (
	StatusNext     = "next"     // published, not yet signing
	StatusActive   = "active"   // signing
	StatusRetiring = "retiring" // no longer signing, still published
	StatusRetired  = "retired"  // neither
)

// Status says where a key is in its life at now.
func Status(k storage.SigningKey, now time.Time) string {
	switch {
	case !k.PublishUntil.IsZero() && !now.Before(k.PublishUntil):
		return StatusRetired
	case now.Before(k.SignFrom):
		return StatusNext
	case k.SignUntil.IsZero() || now.Before(k.SignUntil):
		return StatusActive
	}
	return StatusRetiring
}

// RotateDue rotates every realm whose newest key is older than RotateEvery, and
// deletes keys no longer published. It returns the realms it rotated.
func (m *Manager) RotateDue(ctx context.Context, realms []string) ([]string, error) {
	now := m.now()
	var rotated []string
	for _, realm := range realms {
		stored, err := m.store.ListSigningKeys(ctx, realm)
		if err != nil {
			return rotated, err
		}
		if len(stored) == 0 {
			continue // the first key is made when the realm first signs
		}
		newest := slices.MaxFunc(stored, func(a, b storage.SigningKey) int { return a.CreatedAt.Compare(b.CreatedAt) })
		if now.Sub(newest.CreatedAt) < m.policy.RotateEvery {
			continue
		}
		if _, err := m.Rotate(ctx, realm, ""); err != nil {
			return rotated, err
		}
		rotated = append(rotated, realm)
	}
	if _, err := m.store.PurgeSigningKeys(ctx, now); err != nil {
		return rotated, err
	}
	return rotated, nil
}

// create generates, seals and stores a key.
func (m *Manager) create(ctx context.Context, realm, alg string, createdAt, signFrom time.Time) (storage.SigningKey, error) {
	priv, err := generate(alg)
	if err != nil {
		return storage.SigningKey{}, err
	}
	pub := jose.JSONWebKey{Key: priv.Public(), Algorithm: alg, Use: "sig"}
	thumb, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return storage.SigningKey{}, err
	}
	// RFC 7638 thumbprint: a stable kid that names the key material itself.
	pub.KeyID = base64.RawURLEncoding.EncodeToString(thumb)
	pubJSON, err := pub.MarshalJSON()
	if err != nil {
		return storage.SigningKey{}, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return storage.SigningKey{}, err
	}
	sk := storage.SigningKey{
		Realm: realm, KID: pub.KeyID, Alg: alg, PublicJWK: pubJSON,
		PrivateKey: m.sealer.seal(der, aad(realm, pub.KeyID, alg)),
		CreatedAt:  createdAt, SignFrom: signFrom,
	}
	if err := m.store.CreateSigningKey(ctx, sk); err != nil {
		return storage.SigningKey{}, fmt.Errorf("store %s key for realm %q: %w", alg, realm, err)
	}
	return sk, nil
}

// open unseals a stored key.
func (m *Manager) open(sk storage.SigningKey) (*Key, error) {
	der, err := m.sealer.open(sk.PrivateKey, aad(sk.Realm, sk.KID, sk.Alg))
	if err != nil {
		return nil, fmt.Errorf("signing key %s of realm %q: %w", sk.KID, sk.Realm, err)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("signing key %s of realm %q: %w", sk.KID, sk.Realm, err)
	}
	priv, ok := parsed.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("signing key %s of realm %q: not a signing key", sk.KID, sk.Realm)
	}
	var pub jose.JSONWebKey
	if err := pub.UnmarshalJSON(sk.PublicJWK); err != nil {
		return nil, fmt.Errorf("signing key %s of realm %q: public JWK: %w", sk.KID, sk.Realm, err)
	}
	return &Key{SigningKey: sk, private: priv, public: pub}, nil
}

func aad(realm, kid, alg string) []byte {
	return []byte(realm + "\x00" + kid + "\x00" + alg)
}

func generate(alg string) (crypto.Signer, error) {
	switch alg {
	case ES256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case EdDSA:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	case RS256:
		return rsa.GenerateKey(rand.Reader, 2048)
	}
	return nil, fmt.Errorf("unsupported signing algorithm %q", alg)
}
