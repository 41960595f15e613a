//go:build cgo

package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
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
	// A new database is created readable by this user only: it holds the admin
	// password's hash and the sealed API keys. SQLite gives its -wal and -shm
	// files the database's mode.
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		_ = f.Close()
	} else if !errors.Is(err, fs.ErrExist) {
		return nil, nil, err
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
	// A writer waits for its turn holding a connection: leave plenty for reads
	// beside the handful of background writers.
	sqlDB.SetMaxOpenConns(16)
	sqlDB.SetMaxIdleConns(16)
	sqlDB.SetConnMaxIdleTime(0)
	db, err := gorm.Open(sqlite.New(sqlite.Config{Conn: sqlDB}), cfg)
	if err != nil {
		_ = sqlDB.Close()
		return nil, nil, err
	}
	return db, conn.lock, nil
}

// serialConnector makes this process's writers take turns in Go before they ask
// SQLite for its write lock. SQLite's busy handler polls a held lock with sleeps
// that grow to 100 ms, so a writer that finds the lock taken for a millisecond
// (the request log's flush, say) could sleep 80 ms: the trigger path's commit
// stalled that long, with every webhook call of its round. A channel of one is
// the lock: a waiter gets it the moment it is free, and gives up after the busy
// timeout as SQLite would. Reads do not take it (they still need one of the pool's
// connections). Other processes on the same file still meet SQLite's busy handler.
type serialConnector struct {
	dsn  string
	drv  *sqlite3.SQLiteDriver
	lock chan struct{}
}

// serialWait is how long a writer waits for another of this process: the DSN's
// busy timeout.
const serialWait = 5 * time.Second

var errWriterBusy = fmt.Errorf("database is locked: waited %v for this process's previous write (which may itself wait for another process holding the database)", serialWait)

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
// f gets a context that cannot be cancelled: for a cancellable one mattn runs every
// statement on a goroutine of its own and waits for it, which cost the trigger
// path's writer a goroutine and a trip through the scheduler per row it wrote. An
// SQLite write of ours is short; waiting for the lock still heeds ctx.
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

// query runs a query: a read as it is, anything else (an INSERT ... RETURNING,
// say) as a write whose lock is held until its rows are closed, since SQLite
// writes as the rows are read.
func (c *serialConn) query(ctx context.Context, readOnly bool, q func(ctx context.Context) (driver.Rows, error)) (driver.Rows, error) {
	switch {
	case c.inTx:
		return q(context.WithoutCancel(ctx))
	case readOnly:
		return q(ctx)
	}
	if err := c.acquire(ctx); err != nil {
		return nil, err
	}
	rows, err := q(context.WithoutCancel(ctx))
	if err != nil {
		c.release()
		return nil, err
	}
	return &serialRows{SQLiteRows: rows.(*sqlite3.SQLiteRows), release: c.release}, nil
}

func (c *serialConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if err := c.acquire(ctx); err != nil {
		return nil, err
	}
	tx, err := c.SQLiteConn.BeginTx(context.WithoutCancel(ctx), opts)
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
	return c.query(ctx, readOnlySQL(query), func(ctx context.Context) (driver.Rows, error) {
		return c.SQLiteConn.QueryContext(ctx, query, args)
	})
}

func (c *serialConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	st, err := c.SQLiteConn.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	s := st.(*sqlite3.SQLiteStmt)
	// SQLite calls BEGIN and COMMIT read-only too: only statements that read by
	// both counts are spared the turn (and the checkpoint, whatever SQLite says).
	readOnly := readOnlySQL(query) && (s.Readonly() || strings.TrimSpace(query) == checkpointSQL)
	return &serialStmt{SQLiteStmt: s, conn: c, readOnly: readOnly}, nil
}

func (c *serialConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

// readOnlySQL tells statements that need no turn by their first word: SELECT and
// EXPLAIN, and the background checkpoint, which must not stop writers (and
// runs once with the turn already held, to start the WAL over: Checkpoint).
// Anything else (any other PRAGMA, BEGIN, ...) counts as a write.
func readOnlySQL(query string) bool {
	q := strings.TrimSpace(query)
	word, _, _ := strings.Cut(q, " ")
	return strings.EqualFold(word, "SELECT") || strings.EqualFold(word, "EXPLAIN") || q == checkpointSQL
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
	return s.conn.query(ctx, s.readOnly, func(ctx context.Context) (driver.Rows, error) {
		return s.SQLiteStmt.QueryContext(ctx, args)
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
