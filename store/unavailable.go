package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"net"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/mattn/go-sqlite3"
)

// ErrUnavailable wraps an error of the database itself, not of the request:
// it does not answer, is locked by another writer past the busy timeout, or
// is out of space. A retry later may work.
var ErrUnavailable = errors.New("the database is unavailable")

// unavailable tells whether err is the database's failure (see ErrUnavailable).
func unavailable(err error) bool {
	var (
		sqliteErr sqlite3.Error
		pgErr     *pgconn.PgError
		connErr   *pgconn.ConnectError
		netErr    net.Error
	)
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, driver.ErrBadConn), errors.Is(err, sql.ErrConnDone),
		errors.Is(err, errWriterBusy), errors.As(err, &connErr), errors.As(err, &netErr):
		return true
	case errors.As(err, &sqliteErr):
		switch sqliteErr.Code {
		case sqlite3.ErrBusy, sqlite3.ErrLocked, sqlite3.ErrFull, sqlite3.ErrIoErr, sqlite3.ErrCantOpen, sqlite3.ErrReadonly:
			return true
		}
	case errors.As(err, &pgErr):
		// 08: connection exception; 53: insufficient resources (disk full,
		// too many connections); 57P: the server is shutting down or starting;
		// 55P03, 57014: a lock or statement timeout; 40001, 40P01: a
		// serialization failure or deadlock, which a retry resolves.
		return strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "53") || strings.HasPrefix(pgErr.Code, "57P") ||
			slices.Contains([]string{"55P03", "57014", "40001", "40P01"}, pgErr.Code)
	}
	return pgconn.SafeToRetry(err) || pgconn.Timeout(err)
}
