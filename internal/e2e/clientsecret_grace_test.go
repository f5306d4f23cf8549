package e2e

import (
	"testing"
	"time"

	"github.com/latchkey/latchkey/internal/clientsecret"
	"github.com/latchkey/latchkey/internal/masterkey"
	"github.com/latchkey/latchkey/storage"
)

// A rotated client secret keeps working until the grace the rotation gave it
// ends, and not after; the new secret works at once. The server's clock cannot
// be moved, so two clients are rotated: svc with a grace still running, opq with
// one already over.
func TestClientSecret_PreviousSecretWorksUntilItsGraceEnds(t *testing.T) {
	stores(t, func(t *testing.T, db string) {
		s := start(t, options{db: db})
		st := openStore(t, db)
		mk, err := masterkey.Parse(masterKey)
		if err != nil {
			t.Fatal(err)
		}
		hasher := clientsecret.NewHasher(mk)
		const svcNew = "svc-rotated-0123456789abcdefghijklmnop"
		const opqNew = "opq-rotated-0123456789abcdefghijklmnop"
		// Rotated before the server first looks either client up, so its cache
		// (filled on first use) holds the rotated clients.
		rotate := func(id, secret string, graceEnds time.Time) {
			t.Helper()
			now := time.Now().UTC()
			_, err := st.UpdateClient(t.Context(), "acme", id, func(c *storage.Client) ([]storage.AuditEvent, error) {
				c.PreviousSecretHash, c.PreviousSecretExpiresAt = c.SecretHash, graceEnds
				c.SecretHash, c.UpdatedAt = hasher.Hash("acme", id, secret), now
				return []storage.AuditEvent{{Time: now, Type: "client.secret_rotated", Realm: "acme", ClientID: id}}, nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		rotate("svc", svcNew, time.Now().Add(time.Hour))
		rotate("opq", opqNew, time.Now().Add(-time.Second))

		cc := form("grant_type", "client_credentials")
		for _, tc := range []struct {
			what  string
			basic string
			want  int
		}{
			{"svc's new secret", "svc:" + svcNew, 200},
			{"svc's previous secret, within its grace", svcBasic, 200},
			{"opq's new secret", "opq:" + opqNew, 200},
			{"opq's previous secret, after its grace", "opq:" + opqSecret, 401},
			{"svc's previous secret for opq", "opq:" + svcSecret, 401},
			{"opq's previous secret for svc", "svc:" + opqSecret, 401},
		} {
			if r := clientAuthPost(s.tokenURL(), tc.basic, cc); r.status != tc.want {
				t.Errorf("%s: %d %s, want %d", tc.what, r.status, r.raw, tc.want)
			}
		}
	})
}
