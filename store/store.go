// Package store keeps devicehooks' state in a relational database through GORM:
// SQLite by default, PostgreSQL when the DSN is a postgres:// URL. It knows no HTTP
// and no MQTT; every method takes a context.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/logger"

	"devicehooks/internal/wallclock"
)

// ErrNotFound is returned when a looked-up row does not exist.
var ErrNotFound = errors.New("not found")

// ErrNoSchema is returned by Open WithoutMigration from a database without
// devicehooks' tables: none made yet (no serve has run on it), or not the
// database meant.
var ErrNoSchema = errors.New("the database has no devicehooks tables (serve makes them at its first start)")

// ErrConflict is returned when a write would break a uniqueness or reference rule.
var ErrConflict = errors.New("conflict")

// ErrNoTarget means an action's target device or group does not exist (it was
// deleted while the action was being saved).
var ErrNoTarget = errors.New("the action's target does not exist")

// Store is the database handle shared by the whole process.
type Store struct {
	db       *gorm.DB
	postgres bool
	actions  actionCache

	stmts *stmtCache // the trigger path's statements, prepared once

	writeTurn  chan struct{} // SQLite only: held by this process's writer (serialConnector), and by Checkpoint to start the WAL over
	walRestart atomic.Int64  // SQLite only: walRestartFrames; tests lower it, 0 turns it off
	heldAt     atomic.Int64  // SQLite only: the WAL's length at Checkpoint's last pass with the turn, until it starts over

	stopCheckpoints   chan struct{} // SQLite only: ends the background checkpoints
	checkpointsDone   chan struct{}
	checkpointFailing atomic.Bool // the last background checkpoint failed

	// The claim (AsTheActiveInstance): the lock file, or the connection that
	// holds the advisory lock and the channels of its watch.
	claimFile *os.File
	claimConn *sql.Conn
	lost      chan struct{}
	stopWatch chan struct{}
}

// Open connects to dsn (an SQLite file path or a postgres:// URL) and migrates
// the schema (see the Options).
func Open(ctx context.Context, dsn string, log *slog.Logger, options ...Option) (*Store, error) {
	var opts openOptions
	for _, o := range options {
		o(&opts)
	}
	cfg := &gorm.Config{
		Logger:                 logger.Discard,
		SkipDefaultTransaction: true, // our writes that need a transaction open one themselves
		PrepareStmt:            true,
		// IN lists and batch inserts of every length are distinct statements:
		// bound the cache of prepared ones (each costs memory on the server too).
		PrepareStmtMaxSize: 512,
		PrepareStmtTTL:     time.Hour,
		NowFunc:            wallclock.Now, // the service's one clock, which no step back of the system's moves back
	}
	if err := CheckDSN(dsn); err != nil {
		return nil, fmt.Errorf("store: open: %w", err)
	}
	s := &Store{}
	var err error
	if IsPostgres(dsn) {
		s.postgres = true
		cfg.DisableAutomaticPing = true // waitForDatabase pings, and waits for a server on its way
		s.db, err = openPostgres(dsn, cfg)
	} else {
		s.db, s.writeTurn, err = openSQLite(dsn, cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open: %w", err)
	}
	if !s.postgres {
		warnIfShared(dsn, log)
	}
	sqlDB, err := s.db.DB()
	if err != nil {
		return nil, fmt.Errorf("store: open: %w", err)
	}
	if s.postgres {
		sqlDB.SetMaxOpenConns(16)
		sqlDB.SetMaxIdleConns(16)
	}
	if err := waitForDatabase(ctx, sqlDB, s.postgres && opts.waitServer, log, dsn); err != nil {
		_ = sqlDB.Close()
		return nil, err
	}
	if opts.claim {
		opts.onWait = refuseNewerSchemaWhileWaiting(ctx, opts.onWait)
		if err := s.claim(ctx, dsn, opts, log); err != nil {
			_ = sqlDB.Close()
			return nil, err
		}
	}
	// Read and checked inside the claim, before anything changes the
	// database: no other instance migrates between. Recorded before migrate,
	// so that a migrate stopped halfway (killed, failed) leaves a database
	// that the builds this one shuts out already refuse.
	recorded, err := checkSchemaVersion(ctx, sqlDB, s.postgres, log)
	if err != nil {
		s.releaseClaim()
		_ = sqlDB.Close()
		return nil, err
	}
	began := time.Now()
	if opts.noMigrate { // a tool must still find the tables it reads
		err = hasSchema(ctx, sqlDB, s.postgres)
	} else {
		if log != nil {
			// An upgrade builds indexes before anything is served: on a
			// large database that takes minutes, which must not look hung.
			log.Info("database: checking the schema; an upgrade's new indexes take a while on a large database")
		}
		if err = s.recordSchemaVersion(ctx, recorded); err == nil {
			err = s.migrate(ctx, log)
		}
	}
	if err != nil {
		s.releaseClaim()
		_ = sqlDB.Close()
		return nil, err
	}
	if s.stmts, err = prepareStatements(ctx, sqlDB, s.postgres); err != nil {
		s.releaseClaim()
		_ = sqlDB.Close()
		if opts.noMigrate {
			return nil, fmt.Errorf("store: this database was made by an older build of devicehooks and not upgraded yet: start `devicehooks serve` of this build on it once, then run this again (%w)", err)
		}
		return nil, fmt.Errorf("store: %w", err)
	}
	if !s.postgres {
		s.walRestart.Store(walRestartFrames)
		s.stopCheckpoints, s.checkpointsDone = make(chan struct{}), make(chan struct{})
		go s.checkpoints(s.stopCheckpoints, s.checkpointsDone, log)
	}
	if log != nil {
		log.Info("database ready", "driver", s.Driver(), "schema", SchemaVersion, "schema_checked_in", time.Since(began).Round(time.Millisecond))
	}
	return s, nil
}

// warnIfShared warns of an SQLite file that others than its owner may read:
// it holds the admin password's hash and the sealed API keys. A new one is
// made private (openSQLite), but one made by an early build, or copied
// without its mode, stays as it was. A warning, not a refusal (as for the
// secret file): an upgrade must not stop a server that ran the day before.
func warnIfShared(path string, log *slog.Logger) {
	fi, err := os.Stat(path)
	if err != nil || log == nil || runtime.GOOS == "windows" {
		return
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		log.Warn("the database file is open to group or others: it holds the admin password's hash and the sealed API keys; run: chmod 600 "+path+"*",
			"path", path, "mode", fmt.Sprintf("%04o", perm))
	}
}

// hasSchema returns ErrNoSchema if the database has no devices table where
// the store's queries look for it (PostgreSQL's search_path), and any error of
// finding out: a tool must not take a failed look for an empty database.
func hasSchema(ctx context.Context, db *sql.DB, postgres bool) error {
	query := `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'devices'`
	if postgres {
		query = `SELECT count(*) FROM (SELECT to_regclass('devices') AS t) r WHERE t IS NOT NULL`
	}
	var n int
	if err := db.QueryRowContext(ctx, query).Scan(&n); err != nil {
		return fmt.Errorf("store: look for the tables: %w", err)
	}
	if n == 0 {
		return ErrNoSchema
	}
	return nil
}

// IsPostgres reports whether dsn selects PostgreSQL rather than an SQLite file.
func IsPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// LatestRecorded is the latest time the service recorded that later times
// are held against: when a trigger was made (its commands with it), when a
// device's presence last changed or it was last heard. Each is read off the
// end of an index, or a scan of the devices. Zero on an empty database.
func (s *Store) LatestRecorded(ctx context.Context) (time.Time, error) {
	var latest time.Time
	for _, c := range []struct {
		model  any
		column string
	}{{&Dispatch{}, "created_at"}, {&Device{}, "presence_at"}, {&Device{}, "last_seen"}} {
		var at []time.Time
		err := s.db.WithContext(ctx).Model(c.model).Where(c.column+" IS NOT NULL").
			Order(c.column+" DESC").Limit(1).Pluck(c.column, &at).Error
		if err != nil {
			return latest, wrap("latest recorded time", err)
		}
		if len(at) == 1 && at[0].After(latest) {
			latest = at[0]
		}
	}
	return latest, nil
}

// Driver names the database in use: "sqlite" or "postgres".
func (s *Store) Driver() string {
	if s.postgres {
		return "postgres"
	}
	return "sqlite"
}

// Close closes the database connections.
func (s *Store) Close() error {
	if s.stopCheckpoints != nil {
		close(s.stopCheckpoints)
		<-s.checkpointsDone
		s.stopCheckpoints = nil
	}
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	s.stmts.close()
	s.releaseClaim()
	return sqlDB.Close()
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.PingContext(ctx)
}

// Pragma returns the value of an SQLite pragma; tests use it to prove the DSN took effect.
func (s *Store) Pragma(ctx context.Context, name string) (string, error) {
	if s.postgres {
		return "", errors.New("store: pragma: not sqlite")
	}
	var v string
	// name is a constant chosen by the caller, never user input.
	err := s.db.WithContext(ctx).Raw("PRAGMA " + name).Row().Scan(&v)
	return v, err
}

// schemaModels are the models of the store's tables.
var schemaModels = append([]any{
	&APIKey{}, &AdminToken{}, &Device{}, &Group{}, &GroupMember{},
	&Action{}, &Dispatch{}, &Command{}, &Idempotency{}, &RequestLog{}, &Counter{}, &Setting{}, &WriteProbe{},
}, userModels...)

func (s *Store) migrate(ctx context.Context, log *slog.Logger) error {
	err := s.db.WithContext(ctx).AutoMigrate(schemaModels...)
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	if err := s.moveRenamedColumns(ctx, log); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	for _, q := range slices.Concat(openCommandIndexes, replacedCommandIndexes, requestLogIndexes, dispatchIndexes, []string{attentionIndex, desiredCounterSQL}) {
		if err := s.db.WithContext(ctx).Exec(q).Error; err != nil {
			return fmt.Errorf("store: migrate: %w", err)
		}
	}
	return nil
}

// desiredCounter names the counter that numbers desired states (see applyDesired).
const desiredCounter = "desired_version"

// desiredCounterSQL puts it past every version already given, at every start:
// on a database from before the counter, and after a build from before it
// ran on this database (a downgrade and upgrade again), which numbered each
// device's versions on its own, past the counter. Each dispatch raised a
// device's version by one at most, so the number of dispatches bounds the
// versions of devices deleted since too (those purged since may have raised
// versions the counter already passed; it never goes back). It only ever raises the
// counter: a gap in the versions is harmless, a version given twice is not
// (a player ignores a desired state not newer than the one it applied).
// ("WHERE true" tells SQLite's parser that ON CONFLICT is the INSERT's.)
const desiredCounterSQL = `INSERT INTO counters (name, value)
 SELECT '` + desiredCounter + `', CASE WHEN d > n THEN d ELSE n END
 FROM (SELECT COALESCE((SELECT MAX(desired_version) FROM devices), 0) AS d, (SELECT COUNT(*) FROM dispatches) AS n) AS seed
 WHERE true ON CONFLICT (name) DO UPDATE SET value = CASE WHEN excluded.value > counters.value THEN excluded.value ELSE counters.value END`

// renamedColumns are columns an early build named otherwise: gorm's own
// name for them, before their tag named them. AutoMigrate adds the new
// column empty and leaves the old one; moveRenamedColumns copies what the
// old one held and drops it, so that a key's address limits, say, are not
// lost in an upgrade from such a build.
var renamedColumns = []struct{ table, old, new, empty, what string }{
	{"api_keys", "c_id_rs", "cidrs", "'[]'", "API keys' address limits (check them on the API keys page)"},
}

func (s *Store) moveRenamedColumns(ctx context.Context, log *slog.Logger) error {
	for _, c := range renamedColumns {
		if !s.db.WithContext(ctx).Migrator().HasColumn(c.table, c.old) {
			continue
		}
		// Table and column names are the constants above, never input.
		var moved int64
		err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			res := tx.Exec(`UPDATE ` + c.table + ` SET ` + c.new + ` = ` + c.old +
				` WHERE ` + c.old + ` IS NOT NULL AND ` + c.old + ` <> '' AND ` + c.old + ` <> ` + c.empty +
				` AND ` + c.new + ` = ` + c.empty)
			if res.Error != nil {
				return res.Error
			}
			moved = res.RowsAffected
			return tx.Exec(`ALTER TABLE ` + c.table + ` DROP COLUMN ` + c.old).Error
		})
		if err != nil {
			return fmt.Errorf("move %s.%s to %s: %w", c.table, c.old, c.new, err)
		}
		if moved > 0 && log != nil {
			log.Warn("upgrade: restored what an early build kept in a column since renamed: "+c.what,
				"table", c.table, "column", c.new, "rows", moved)
		}
	}
	return nil
}

// openCommandIndexes find a device's open commands without indexing every command
// it ever had. An index on (device_id, state) over all commands puts each new
// command, and each state change, on a different page for every device, so a
// round of the trigger writer dirtied a page per device it touched; this one
// holds only queued and published commands, a few pages. SQLite uses it only for
// a query whose WHERE repeats its term word for word (openStates). The new index
// is built before the old one goes, so queries always have one. IF NOT EXISTS
// looks at the name only: a changed definition needs a new name (and the old
// one dropped here).
//
// Its last column, function, is for a change of desired state, which
// supersedes the devices' open commands of some functions: SQLite reads it
// off the index and goes to the table only for the commands to change.
// Without it, a pause of 10,000 devices with 480,000 open commands (many
// players offline) read each of them from the table, holding the writer 4x
// as long (1.0 s against 0.25 s). As the last column it leaves the device's
// open commands by state and expiry, as a player's connect reads them, where
// they were.
var openCommandIndexes = []string{
	`CREATE INDEX IF NOT EXISTS idx_commands_open_device_fn ON commands (device_id, state, expires_at, function) WHERE ` + openStates,
	`DROP INDEX IF EXISTS idx_commands_open_device`,
	`DROP INDEX IF EXISTS idx_commands_device_state`,
}

// openStates is the WHERE term of the open-commands index: OpenStates, in
// SQL; finalStates the others (TestStateTermsMatchTheStates).
const (
	openStates  = `state IN ('queued', 'published')`
	finalStates = `state IN ('succeeded', 'failed', 'rejected', 'expired')`
)

// forUpdate makes a query of a transaction lock the rows it reads until the
// transaction ends, on PostgreSQL (FOR UPDATE); on SQLite the transaction
// already holds the one write lock from its BEGIN (_txlock=immediate).
func forUpdate(tx *gorm.DB) *gorm.DB {
	if tx.Dialector.Name() != "postgres" {
		return tx
	}
	return tx.Clauses(clause.Locking{Strength: "UPDATE"})
}

// wrap names the operation in err, and turns gorm's not-found error into
// ErrNotFound, a unique violation into ErrConflict and a database that cannot
// answer now into ErrUnavailable (as well as the cause).
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return fmt.Errorf("store: %s: %w", op, ErrNotFound)
	}
	if errors.Is(err, gorm.ErrDuplicatedKey) || isUniqueViolation(err) {
		return fmt.Errorf("store: %s: %w", op, ErrConflict)
	}
	if unavailable(err) {
		return fmt.Errorf("store: %s: %w: %w", op, ErrUnavailable, err)
	}
	return fmt.Errorf("store: %s: %w", op, err)
}

// isUniqueViolation recognises unique-constraint errors of both drivers without
// importing their error types (gorm's TranslateError does not cover every path).
func isUniqueViolation(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "UNIQUE constraint failed") ||
		strings.Contains(msg, "duplicate key value") ||
		strings.Contains(msg, "SQLSTATE 23505")
}

// Page bounds a list query: Limit rows (50 if not set, at most MaxPageSize)
// from Offset.
type Page struct {
	Limit  int
	Offset int
}

// MaxPageSize is the most rows a list query returns.
const MaxPageSize = 500

// equalTo keeps the rows whose column (a name of ours, never input) is v;
// "" keeps them all: a list's filter left empty.
func equalTo(q *gorm.DB, column, v string) *gorm.DB {
	if v == "" {
		return q
	}
	return q.Where(column+" = ?", v)
}

// within keeps the rows whose column (a time) is from since up to, not
// including, until; a zero time leaves that side open.
func within(q *gorm.DB, column string, since, until time.Time) *gorm.DB {
	if !since.IsZero() {
		q = q.Where(column+" >= ?", since.UTC())
	}
	if !until.IsZero() {
		q = q.Where(column+" < ?", until.UTC())
	}
	return q
}

// listPage counts the rows q finds and reads page p of them in order: the
// shape of the lists that the API and the UI page through. what names them
// in an error ("count devices", "list devices").
func listPage[T any](q *gorm.DB, p Page, order, what string) ([]T, int64, error) {
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, wrap("count "+what, err)
	}
	var rows []T
	err := p.apply(q).Order(order).Find(&rows).Error
	return rows, total, wrap("list "+what, err)
}

func (p Page) apply(q *gorm.DB) *gorm.DB {
	limit := p.Limit
	if limit <= 0 {
		limit = 50
	}
	return q.Limit(min(limit, MaxPageSize)).Offset(max(p.Offset, 0))
}
