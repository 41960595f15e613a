//go:build !cgo

package store

import (
	"errors"

	"gorm.io/gorm"
)

// openSQLite fails in a build without cgo: the SQLite driver is C. Such a build
// works with PostgreSQL only.
func openSQLite(string, *gorm.Config) (*gorm.DB, chan struct{}, error) {
	return nil, nil, errors.New("this build has no SQLite (built without cgo): use a postgres:// DSN, or build with CGO_ENABLED=1")
}
