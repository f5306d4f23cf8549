package masterkey

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseAcceptsBase64AndHexOf32Bytes(t *testing.T) {
	raw := bytes.Repeat([]byte{0xAB}, Size)
	var ids []string
	for _, s := range []string{
		hex.EncodeToString(raw), base64.StdEncoding.EncodeToString(raw),
		base64.RawURLEncoding.EncodeToString(raw), " " + base64.StdEncoding.EncodeToString(raw) + "\n",
	} {
		k, err := Parse(s)
		if err != nil {
			t.Fatalf("Parse(%q): %v", s, err)
		}
		ids = append(ids, k.ID())
	}
	for _, id := range ids[1:] {
		if id != ids[0] {
			t.Fatalf("the same key in other encodings has IDs %v", ids)
		}
	}
	for _, s := range []string{"", "short", hex.EncodeToString(raw[:16]), base64.StdEncoding.EncodeToString(append(raw, 1))} {
		if _, err := Parse(s); err == nil {
			t.Errorf("Parse(%q) accepted a key that is not 32 bytes", s)
		}
	}
}

func TestDeriveSeparatesPurposes(t *testing.T) {
	k, _ := Parse(hex.EncodeToString(bytes.Repeat([]byte{1}, Size)))
	a, b := k.Derive("client secrets"), k.Derive("signing keys")
	if bytes.Equal(a, b) || len(a) != 32 || !bytes.Equal(a, k.Derive("client secrets")) {
		t.Fatal("Derive must be deterministic per purpose and differ across purposes")
	}
}

func TestKeyNeverPrints(t *testing.T) {
	raw := bytes.Repeat([]byte{0x42}, Size)
	k, _ := Parse(hex.EncodeToString(raw))
	for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%v %s %+v", k, k, k), k.LogValue().String()} {
		if strings.Contains(s, hex.EncodeToString(raw)) || strings.Contains(s, base64.StdEncoding.EncodeToString(raw)) || strings.Contains(s, "4242") {
			t.Fatalf("key material printed: %s", s)
		}
	}
}

func TestLoadOrCreateWritesOnceWithMode0600(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master.key")
	k1, created, err := LoadOrCreate(path)
	if err != nil || !created {
		t.Fatalf("first LoadOrCreate = %v, %v", created, err)
	}
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode = %v, %v; want 0600", info.Mode().Perm(), err)
	}
	k2, created, err := LoadOrCreate(path)
	if err != nil || created || k2.ID() != k1.ID() {
		t.Fatalf("second LoadOrCreate = %v, %v, same key %v", created, err, k2.ID() == k1.ID())
	}

	bad := filepath.Join(t.TempDir(), "bad.key")
	os.WriteFile(bad, []byte("not a key"), 0o600)
	if _, _, err := LoadOrCreate(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("a malformed key file must be refused naming the file, got %v", err)
	}
}
