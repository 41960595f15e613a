package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mattn/go-sqlite3"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
)

// openSQLite opens an SQLite file with WAL, a busy timeout, immediate transactions
// and foreign keys. The pragmas go in mattn's own DSN keys: the "_pragma=" form is
// silently ignored by this driver. Those it has no key for (sqliteConnPragmas)
// are set on every new connection.
//
// Pool: WAL lets readers run beside the one writer, so we keep several connections
// for reads. _txlock=immediate makes every transaction take the write lock at BEGIN,
// so two read-then-write transactions wait on the busy timeout instead of failing
// with "database is locked" on upgrade. Writers of this process queue for that
// lock in Go (serialConnector), not in SQLite.
func openSQLite(path string, cfg *gorm.Config) (*gorm.DB, chan struct{}, error) {
	if path == "" {
		return nil, nil, errors.New("empty database path")
	}
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, nil, err
		}
	}
	dsn := "file:" + path + "?_journal_mode=WAL&_busy_timeout=5000&_txlock=immediate&_foreign_keys=1&_synchronous=NORMAL"
	conn := &serialConnector{
		dsn:  dsn,
		lock: make(chan struct{}, 1),
		drv: &sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
			_, err := c.Exec(sqliteConnPragmas, nil)
			return err
		}},
	}
	sqlDB := sql.OpenDB(conn)
	sqlDB.SetMaxOpenConns(8)
	sqlDB.SetMaxIdleConns(8)
	sqlDB.SetConnMaxIdleTime(0)
	db, err := gorm.Open(sqlite.New(sqlite.Config{Conn: sqlDB}), cfg)
	if err != nil {
		_ = sqlDB.Close()
		return nil, nil, err
	}
	return db, conn.lock, nil
}

// sqliteConnPragmas moves WAL checkpoints off the write path. By default the
// commit that takes the WAL past 1,000 pages copies it into the database and
// waits for the disk before it returns, and every trigger of that round waits
// with it. Store.checkpoints does that work in the background instead; the
// automatic checkpoint stays only as a backstop (at 64 MiB of WAL) should it fall
// behind. journal_size_limit gives the disk back after a burst.
const sqliteConnPragmas = "PRAGMA wal_autocheckpoint=16384; PRAGMA journal_size_limit=67108864;"

// checkpointEvery is how often the background checkpoint runs: the WAL then holds
// about that much of the write load.
const checkpointEvery = time.Second

// checkpoints copies the WAL into the database every checkpointEvery without
// blocking writers or readers (PASSIVE), until stop is closed.
func (s *Store) checkpoints(stop <-chan struct{}, done chan<- struct{}, log *slog.Logger) {
	defer close(done)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		err := s.Checkpoint(context.Background())
		switch {
		case err != nil && !failing && log != nil:
			log.Warn("sqlite checkpoint failed; the WAL grows until one succeeds", "err", err)
		case err == nil && failing && log != nil:
			log.Info("sqlite checkpoint works again")
		}
		failing = err != nil
	}
}

// Checkpoint copies what it can of SQLite's WAL into the database file now,
// without waiting for readers or writers (a no-op on PostgreSQL).
func (s *Store) Checkpoint(ctx context.Context) error {
	if s.postgres {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var busy, logFrames, done int
	err := s.db.WithContext(ctx).Raw("PRAGMA wal_checkpoint(PASSIVE)").Row().Scan(&busy, &logFrames, &done)
	if err != nil {
		return fmt.Errorf("store: checkpoint: %w", err)
	}
	return nil
}

// serialConnector makes this process's writers take turns in Go before they ask
// SQLite for its write lock. SQLite's busy handler polls a held lock with sleeps
// that grow to 100 ms, so a writer that finds the lock taken for a millisecond
// (the request log's flush, say) could sleep 80 ms: the trigger path's commit
// stalled that long, with every webhook call of its round. A channel of one is
// the lock: a waiter gets it the moment it is free, and gives up after the busy
// timeout as SQLite would. Reads do not take it. Other processes on the same file
// still meet SQLite's busy handler.
type serialConnector struct {
	dsn  string
	drv  *sqlite3.SQLiteDriver
	lock chan struct{}
}

// serialWait is how long a writer waits for another of this process: the DSN's
// busy timeout.
const serialWait = 5 * time.Second

var errWriterBusy = errors.New("database is locked: another writer of this process held it for 5s")

func (c *serialConnector) Connect(context.Context) (driver.Conn, error) {
	conn, err := c.drv.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	return &serialConn{SQLiteConn: conn.(*sqlite3.SQLiteConn), lock: c.lock}, nil
}

func (c *serialConnector) Driver() driver.Driver { return c.drv }

// serialConn holds the write lock through each of its transactions and around
// each write outside one. database/sql uses a conn from one goroutine at a time.
type serialConn struct {
	*sqlite3.SQLiteConn
	lock chan struct{}
	inTx bool
}

func (c *serialConn) acquire(ctx context.Context) error {
	select {
	case c.lock <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(serialWait)
	defer t.Stop()
	select {
	case c.lock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return errWriterBusy
	}
}

func (c *serialConn) release() { <-c.lock }

// write runs f holding the lock, unless the conn's transaction already holds it.
// f gets a context that cannot be cancelled: mattn watches a cancellable one from
// a goroutine of its own for every statement (and every row read), which cost the
// trigger path's writer a goroutine and a trip through the scheduler per row it
// wrote. A write is bounded anyway, by the busy timeout, and so is everything in
// a transaction; waiting for the lock still heeds ctx.
func (c *serialConn) write(ctx context.Context, f func(ctx context.Context) error) error {
	if c.inTx {
		return f(context.WithoutCancel(ctx))
	}
	if err := c.acquire(ctx); err != nil {
		return err
	}
	defer c.release()
	return f(context.WithoutCancel(ctx))
}

func (c *serialConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if err := c.acquire(ctx); err != nil {
		return nil, err
	}
	tx, err := c.SQLiteConn.BeginTx(ctx, opts)
	if err != nil {
		c.release()
		return nil, err
	}
	c.inTx = true
	return &serialTx{tx: tx, conn: c}, nil
}

func (c *serialConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *serialConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (res driver.Result, err error) {
	err = c.write(ctx, func(ctx context.Context) error {
		res, err = c.SQLiteConn.ExecContext(ctx, query, args)
		return err
	})
	return res, err
}

func (c *serialConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if c.inTx {
		return c.SQLiteConn.QueryContext(context.WithoutCancel(ctx), query, args)
	}
	if readOnlySQL(query) {
		return c.SQLiteConn.QueryContext(ctx, query, args)
	}
	return c.writeQuery(ctx, func() (driver.Rows, error) {
		return c.SQLiteConn.QueryContext(context.WithoutCancel(ctx), query, args)
	})
}

// writeQuery runs a query that writes (an INSERT ... RETURNING, say) outside a
// transaction: SQLite writes as its rows are read, so the lock is held until they
// are closed.
func (c *serialConn) writeQuery(ctx context.Context, query func() (driver.Rows, error)) (driver.Rows, error) {
	if err := c.acquire(ctx); err != nil {
		return nil, err
	}
	rows, err := query()
	if err != nil {
		c.release()
		return nil, err
	}
	return &serialRows{SQLiteRows: rows.(*sqlite3.SQLiteRows), release: c.release}, nil
}

func (c *serialConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	st, err := c.SQLiteConn.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	s := st.(*sqlite3.SQLiteStmt)
	return &serialStmt{SQLiteStmt: s, conn: c, readOnly: s.Readonly() || readOnlySQL(query)}, nil
}

func (c *serialConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

// readOnlySQL tells statements that need no turn by their first word: reads, and
// pragmas (a checkpoint must not stop writers); anything else counts as a write.
func readOnlySQL(query string) bool {
	word, _, _ := strings.Cut(strings.TrimSpace(query), " ")
	return strings.EqualFold(word, "SELECT") || strings.EqualFold(word, "PRAGMA") || strings.EqualFold(word, "EXPLAIN")
}

type serialTx struct {
	tx   driver.Tx
	conn *serialConn
}

func (t *serialTx) Commit() error   { return t.end(t.tx.Commit) }
func (t *serialTx) Rollback() error { return t.end(t.tx.Rollback) }

func (t *serialTx) end(f func() error) error {
	err := f()
	if t.conn.inTx {
		t.conn.inTx = false
		t.conn.release()
	}
	return err
}

// serialStmt is a prepared statement: SQLite tells whether it writes.
type serialStmt struct {
	*sqlite3.SQLiteStmt
	conn     *serialConn
	readOnly bool
}

func (s *serialStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (res driver.Result, err error) {
	if s.readOnly && !s.conn.inTx {
		return s.SQLiteStmt.ExecContext(ctx, args)
	}
	err = s.conn.write(ctx, func(ctx context.Context) error {
		res, err = s.SQLiteStmt.ExecContext(ctx, args)
		return err
	})
	return res, err
}

func (s *serialStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	if s.conn.inTx {
		return s.SQLiteStmt.QueryContext(context.WithoutCancel(ctx), args)
	}
	if s.readOnly {
		return s.SQLiteStmt.QueryContext(ctx, args)
	}
	return s.conn.writeQuery(ctx, func() (driver.Rows, error) {
		return s.SQLiteStmt.QueryContext(context.WithoutCancel(ctx), args)
	})
}

// serialRows gives the write lock back when the rows of a writing query close.
type serialRows struct {
	*sqlite3.SQLiteRows
	release func()
}

func (r *serialRows) Close() error {
	err := r.SQLiteRows.Close()
	if r.release != nil {
		r.release()
		r.release = nil
	}
	return err
}
