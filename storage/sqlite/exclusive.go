package sqlite

import (
	"context"
	"sync"
)

// Exclusive runs fn unless fn runs under the same name already. A SQLite
// database has one instance, so a lock in the process is the store-wide one.
func (s *Store) Exclusive(ctx context.Context, name string, fn func(ctx context.Context) error) (bool, error) {
	v, _ := s.exclusive.LoadOrStore(name, &sync.Mutex{})
	mu := v.(*sync.Mutex)
	if !mu.TryLock() {
		return false, nil
	}
	defer mu.Unlock()
	return true, fn(ctx)
}
