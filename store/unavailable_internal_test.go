package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/mattn/go-sqlite3"
	"gorm.io/gorm"
)

// The database's own failures are told apart from the request's, so that
// callers get 503 (try again) rather than 500 or 4xx.
func TestUnavailableErrors(t *testing.T) {
	for err, want := range map[error]bool{
		sqlite3.Error{Code: sqlite3.ErrBusy}:                 true,
		sqlite3.Error{Code: sqlite3.ErrFull}:                 true,
		sqlite3.Error{Code: sqlite3.ErrConstraint}:           false,
		&pgconn.PgError{Code: "08006"}:                       true, // connection failure
		&pgconn.PgError{Code: "53100"}:                       true, // disk full
		&pgconn.PgError{Code: "57P01"}:                       true, // admin shutdown
		&pgconn.PgError{Code: "40P01"}:                       true, // deadlock: a retry resolves it
		&pgconn.PgError{Code: "23505"}:                       false,
		&net.OpError{Op: "dial", Err: errors.New("refused")}: true,
		fmt.Errorf("x: %w", context.DeadlineExceeded):        true,
		errWriterBusy:              true,
		gorm.ErrRecordNotFound:     false,
		errors.New("syntax error"): false,
	} {
		wrapped := wrap("op", err)
		if got := errors.Is(wrapped, ErrUnavailable); got != want {
			t.Errorf("%#v: unavailable %v, want %v", err, got, want)
		}
		if want && !errors.Is(wrapped, err) {
			t.Errorf("%#v: the cause is lost", err)
		}
	}
}
