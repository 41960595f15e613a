package store

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"
)

// An Option changes what Open does.
type Option func(*openOptions)

type openOptions struct {
	claim      bool
	onWait     func(st *Store, first bool) error
	noMigrate  bool
	waitServer bool
}

// AsTheActiveInstance makes Open claim the database for this process before
// it changes the schema: one devicehooks at a time delivers a database's
// commands, or two would both send them. If another instance holds the
// database, Open waits, as a standby, until it lets go (it stops, or dies) or
// ctx ends, calling onWait at every try (first true the first time), which
// may end the wait with an error (a read-only check of the database failed). The claim is an exclusive lock on the file
// "<db>.lock" beside an SQLite database, and a session advisory lock on a
// connection of its own on PostgreSQL; Close lets it go, and so does the
// operating system or PostgreSQL when the process dies. Lost tells when a
// PostgreSQL claim may have been lost with its connection.
func AsTheActiveInstance(onWait func(st *Store, first bool) error) Option {
	return func(o *openOptions) { o.claim, o.onWait = true, onWait }
}

// WaitForServer makes Open (and a standby's claim) wait, until ctx ends, for
// a PostgreSQL server that cannot be reached (it is starting, restarting, or
// its machine is), as a service does; without it Open fails at once, as a
// tool run by hand or by cron should. A server that answers but refuses (a
// wrong password, no such database, no such host) fails Open at once anyway.
func WaitForServer() Option { return func(o *openOptions) { o.waitServer = true } }

// WithoutMigration opens the database as it is, for a tool that reads it
// beside a running server, whose schema it is not to change.
func WithoutMigration() Option { return func(o *openOptions) { o.noMigrate = true } }

// claimEvery is how often a standby tries the claim again.
const claimEvery = time.Second

// checkClaimEvery is how often the active instance checks, on PostgreSQL, that
// its claim's connection still holds the lock; it stops sending commands as
// soon as it finds it does not.
const checkClaimEvery = time.Second

// takeoverDelay is how long a standby that has taken the claim over on
// PostgreSQL waits before it starts: the instance that held it may still be
// running, and not know yet that its claim has gone (a restart of PostgreSQL
// ends its session, and the standby may take the lock first). It is longer
// than checkClaimEvery and the time to stop sending, so that an instance that
// held it and still reaches PostgreSQL has stopped sending by then. (One
// frozen whole and resumed later may send until its next check: see
// operations.md.)
const takeoverDelay = 3 * time.Second

// claimKeepalives make PostgreSQL notice within about 20 s that the claim's
// session is dead when the active instance's machine vanishes (power, or the
// network, lost: no session end reaches PostgreSQL), and free the lock for a
// standby. PostgreSQL's default, the system's keepalives, takes over two hours.
// Any user may set them; they do nothing over a Unix socket.
var claimKeepalives = []string{
	"SET tcp_keepalives_idle = 5",
	"SET tcp_keepalives_interval = 5",
	"SET tcp_keepalives_count = 3",
	"SET tcp_user_timeout = 20000", // ms: data (the keepalives too) unacknowledged that long ends it
}

// advisoryKey is the PostgreSQL advisory lock's key (advisory locks are per
// database): the bytes of "dvcehook".
const advisoryKey int64 = 0x647663_65686f6f6b

// claim takes the database for this process, waiting while another holds it,
// and while a PostgreSQL server cannot be reached (a standby outlives a restart
// of the database).
func (s *Store) claim(ctx context.Context, dsn string, opts openOptions, log *slog.Logger) error {
	try := s.tryClaimFile
	if s.postgres {
		try = s.tryClaimAdvisory
	}
	var away reachability
	first, waited := true, false
	for {
		ok, err := try(ctx, dsn)
		switch {
		case err != nil && opts.waitServer && s.postgres && unreachable(err) && ctx.Err() == nil:
			away.note(log, dsn, err)
			waited = true // another instance may have held it before
		case err != nil:
			return err
		case ok:
			away.back(log)
			if s.postgres && waited {
				return s.waitForTheOther(ctx, log)
			}
			return nil
		default: // another instance holds it
			away.back(log)
			waited = true
			if opts.onWait != nil {
				if err := opts.onWait(s, first); err != nil {
					return err
				}
			}
			first = false
		}
		select {
		case <-time.After(claimEvery):
		case <-ctx.Done():
			return fmt.Errorf("store: waiting for the database held by another instance: %w", ctx.Err())
		}
	}
}

// waitForTheOther waits takeoverDelay after taking the claim over.
func (s *Store) waitForTheOther(ctx context.Context, log *slog.Logger) error {
	if log != nil {
		log.Info("took the database's claim over; waiting for the instance that held it to notice", "for", takeoverDelay)
	}
	select {
	case <-time.After(takeoverDelay):
		return nil
	case <-ctx.Done():
		s.releaseClaim()
		return fmt.Errorf("store: taking the database over: %w", ctx.Err())
	}
}

// tryClaimAdvisory takes the advisory lock on a connection kept for it, and
// watches that connection: if it fails, the lock may be gone (PostgreSQL
// frees it with the session), and Lost is closed.
func (s *Store) tryClaimAdvisory(ctx context.Context, _ string) (bool, error) {
	sqlDB, err := s.db.DB()
	if err != nil {
		return false, err
	}
	conn, err := sqlDB.Conn(ctx)
	if err != nil {
		return false, fmt.Errorf("store: claim the database: %w", err)
	}
	var ok bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, advisoryKey).Scan(&ok); err != nil || !ok {
		_ = conn.Close()
		if err != nil {
			return false, fmt.Errorf("store: claim the database: %w", err)
		}
		return false, nil
	}
	for _, set := range claimKeepalives {
		// PostgreSQL before 12 has no tcp_user_timeout: the keepalives
		// alone then find a vanished machine, a little later. A failed SET
		// outside a transaction leaves the session as it was.
		_, _ = conn.ExecContext(ctx, set)
	}
	s.claimConn = conn
	s.lost = make(chan struct{})
	s.stopWatch = make(chan struct{})
	go s.watchClaim(conn, s.lost, s.stopWatch)
	return true, nil
}

// watchClaim closes lost once the claim's connection stops answering.
func (s *Store) watchClaim(conn *sql.Conn, lost, stop chan struct{}) {
	t := time.NewTicker(checkClaimEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-stop:
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var held bool
		err := conn.QueryRowContext(ctx, `SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted`).Scan(&held)
		cancel()
		if err != nil || !held {
			close(lost)
			return
		}
	}
}

// Lost is closed if the database's claim may have been lost (PostgreSQL: its
// connection failed), after which another instance may be active: this one
// must stop. Nil without a claim, or on SQLite, where the claim lasts as long
// as the process.
func (s *Store) Lost() <-chan struct{} { return s.lost }

func (s *Store) releaseClaim() {
	if s.stopWatch != nil {
		close(s.stopWatch)
		s.stopWatch = nil
	}
	if s.claimConn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, _ = s.claimConn.ExecContext(ctx, `SELECT pg_advisory_unlock($1)`, advisoryKey)
		cancel()
		_ = s.claimConn.Close()
		s.claimConn = nil
	}
	if s.claimFile != nil {
		_ = s.claimFile.Close() // releases the flock
		s.claimFile = nil
	}
}
