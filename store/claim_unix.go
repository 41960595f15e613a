//go:build unix

package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// tryClaimFile takes an exclusive lock on "<db>.lock", kept open until Close,
// beside the database itself: a path through a symbolic link is resolved
// first, so that every way to name the file meets the same lock.
func (s *Store) tryClaimFile(_ context.Context, path string) (bool, error) {
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	f, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return false, fmt.Errorf("store: claim the database: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return false, nil
		}
		return false, fmt.Errorf("store: claim the database: %w", err)
	}
	s.claimFile = f
	return true, nil
}
