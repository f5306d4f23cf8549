package client

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// The file store round-trips a token, keeps it owner-only, leaves no temporary
// file behind, and forgets it on nil.
func TestFileStore_SavesAtomicallyOwnerOnly(t *testing.T) {
	dir := t.TempDir()
	f := FileStore{Path: filepath.Join(dir, "token.json")}
	if tok, err := f.Load(t.Context()); tok != nil || err != nil {
		t.Fatalf("empty store: Load = %v, %v; want nil, nil", tok, err)
	}
	exp := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, rt := range []string{"lk_rt_one", "lk_rt_two"} {
		if err := f.Save(t.Context(), &oauth2.Token{AccessToken: "at", TokenType: "Bearer", RefreshToken: rt, Expiry: exp}); err != nil {
			t.Fatal(err)
		}
		got, err := f.Load(t.Context())
		if err != nil || got.RefreshToken != rt || got.AccessToken != "at" || !got.Expiry.Equal(exp) {
			t.Fatalf("Load = %+v, %v; want refresh token %s", got, err, rt)
		}
		fi, err := os.Stat(f.Path)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("mode = %v, %v; want 0600", fi.Mode(), err)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("directory holds %d entries; want only the token file", len(entries))
	}
	if err := f.Save(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	if tok, err := f.Load(t.Context()); tok != nil || err != nil {
		t.Fatalf("forgotten: Load = %v, %v; want nil, nil", tok, err)
	}
	if err := f.Save(t.Context(), nil); err != nil {
		t.Fatalf("forgetting twice: %v", err)
	}
}
