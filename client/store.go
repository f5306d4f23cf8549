package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/oauth2"
)

// Store keeps the newest token of one grant. The Source calls it one call at a
// time, and saves every rotated token before it hands out the access token that
// came with it, so what the store holds is always the newest refresh token.
type Store interface {
	// Load returns the stored token, or nil when there is none.
	Load(ctx context.Context) (*oauth2.Token, error)
	// Save replaces the stored token; nil forgets it.
	Save(ctx context.Context, tok *oauth2.Token) error
}

// MemoryStore keeps the token in memory: for processes that sign in afresh at
// every start.
type MemoryStore struct {
	mu  sync.Mutex
	tok *oauth2.Token
}

// NewMemoryStore returns a store holding tok (nil for none).
func NewMemoryStore(tok *oauth2.Token) *MemoryStore {
	return &MemoryStore{tok: clone(tok)}
}

func (m *MemoryStore) Load(context.Context) (*oauth2.Token, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return clone(m.tok), nil
}

func (m *MemoryStore) Save(_ context.Context, tok *oauth2.Token) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tok = clone(tok)
	return nil
}

// FileStore keeps the token as JSON in one file, readable by its owner only
// (0600). Each save writes a temporary file beside it and renames it over the
// old one, so a crash leaves the old token or the new one, never half of either.
// The directory must be the owner's alone.
type FileStore struct {
	Path string
}

func (f FileStore) Load(context.Context) (*oauth2.Token, error) {
	b, err := os.ReadFile(f.Path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("client: load token: %w", err)
	}
	var tok oauth2.Token
	if err := json.Unmarshal(b, &tok); err != nil {
		return nil, fmt.Errorf("client: load token from %s: %w", f.Path, err) // never the contents
	}
	return &tok, nil
}

func (f FileStore) Save(_ context.Context, tok *oauth2.Token) error {
	if tok == nil {
		if err := os.Remove(f.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("client: forget token: %w", err)
		}
		return nil
	}
	b, err := json.Marshal(tok)
	if err != nil {
		return fmt.Errorf("client: save token: %w", err)
	}
	if err := writeAtomic(f.Path, b); err != nil {
		return fmt.Errorf("client: save token: %w", err)
	}
	return nil
}

// writeAtomic replaces path with b: temp file (0600, from os.CreateTemp), fsync,
// rename, fsync of the directory.
func writeAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync() // the rename's durability; not every system can sync a directory
		d.Close()
	}
	return nil
}

func clone(tok *oauth2.Token) *oauth2.Token {
	if tok == nil {
		return nil
	}
	c := *tok
	return &c
}
