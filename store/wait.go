package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"devicehooks/secrets"
)

// waitForDatabase pings the database until it answers. With wait, a server
// that cannot be reached (it is starting, restarting, or its machine is) is
// waited for until ctx ends, so that a service started with its database, or
// restarted by its supervisor while the database restarts, comes up once the
// database does (WaitForServer). Any other failure (a wrong password, no such
// database or host, an SQLite file that cannot be opened) returns at once.
func waitForDatabase(ctx context.Context, db *sql.DB, wait bool, log *slog.Logger, dsn string) error {
	var away reachability
	for pause := 100 * time.Millisecond; ; pause = min(2*pause, 5*time.Second) {
		err := db.PingContext(ctx)
		if err == nil {
			away.back(log)
			return nil
		}
		if !wait || !unreachable(err) || ctx.Err() != nil {
			return fmt.Errorf("store: connect: %w", err)
		}
		away.note(log, dsn, err)
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return fmt.Errorf("store: connect: %w (%w)", ctx.Err(), err)
		}
	}
}

// unreachable tells whether err says that the PostgreSQL server could not be
// reached or is not accepting connections yet, rather than that it refused us.
func unreachable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// 57P03: the server is starting up; 57P01/57P02: shutting down; 08:
		// connection exception. An authentication or a missing database is not
		// something waiting fixes.
		return strings.HasPrefix(pgErr.Code, "57P") || strings.HasPrefix(pgErr.Code, "08")
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		return false // a host name mistyped: waiting does not fix it
	}
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}

// reachability logs a database that cannot be reached: at once, then every
// minute while it stays away, and once when it is back.
type reachability struct {
	since, logged time.Time
}

func (r *reachability) note(log *slog.Logger, dsn string, err error) {
	now := time.Now()
	if r.since.IsZero() {
		r.since = now
	}
	if log != nil && now.Sub(r.logged) >= time.Minute {
		log.Warn("cannot reach the database; waiting for it", "database", secrets.RedactURL(dsn),
			"for", now.Sub(r.since).Round(time.Second), "err", err)
		r.logged = now
	}
}

func (r *reachability) back(log *slog.Logger) {
	if !r.since.IsZero() && log != nil {
		log.Info("the database answers again", "after", time.Since(r.since).Round(time.Second))
	}
	r.since = time.Time{}
}
