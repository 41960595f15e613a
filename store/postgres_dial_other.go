//go:build !linux

package store

import (
	"syscall"
	"time"
)

// userTimeout does nothing here: the keepalives alone find a dead server.
func userTimeout(time.Duration) func(network, address string, c syscall.RawConn) error {
	return nil
}
