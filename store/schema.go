package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strconv"

	"gorm.io/gorm/clause"
)

// The schema's version, recorded in the database so that a build can refuse
// a database it would damage. Builds before SchemaVersion 1 record and check
// nothing (see operations.md); from 1 on, every build checks.
//
// When you change what migrate does:
//
//   - Raise SchemaVersion by one for every change of the schema or of what
//     the rows mean, however small: a new table, column or index, an index
//     dropped, a value stored differently.
//   - Raise CompatibleFrom to that new SchemaVersion as well only if a build
//     of the previous version, run on the changed database, would damage it
//     or misread it: it writes what the new build no longer expects (a
//     column renamed, moved or given a new meaning, a value in a new format,
//     a constraint it would break), re-creates what the new build dropped
//     for a reason, or drops what the new build needs. Additions an older
//     build ignores (a new index, a new nullable or defaulted column, a new
//     table) raise SchemaVersion only. When in doubt, raise it: a refused
//     start is better than silent damage.
//   - Never lower either, and never reuse a number.
//
// Keep every migration idempotent and run it at every start, as migrate
// does; do not skip one because the recorded version says it was done: a
// compatible older build may have run on the database since (it keeps the
// newer numbers, see recordSchemaVersion) and undone what it does not know.
//
// The versions so far:
//
//	1  the record itself (commit c878a41)
//	2  the dispatches' indexes by action and by key end with their order
//	   (created_at, id), for the dispatch list's filters; the single-column
//	   ones they replace are dropped. A build of 1 makes those again, which
//	   only costs it their writes: compatible from 1.
const (
	SchemaVersion  = 2 // the schema this build writes
	CompatibleFrom = 1 // the oldest SchemaVersion that may run on a database this build wrote
)

// The settings that hold the record. Every build from SchemaVersion 1 on
// reads them before it changes anything, so their names, the settings
// table's name and value column, and the decimal format are fixed for good.
const (
	schemaVersionSetting  = "schema_version"
	compatibleFromSetting = "schema_compatible_from"
)

// ErrNewerSchema is returned by Open when a newer build has upgraded the
// database in a way this build would damage.
var ErrNewerSchema = errors.New("the database was upgraded by a newer build of devicehooks that this build must not run on")

// schemaRecord is what a database says of its schema; zero on one no build
// since SchemaVersion 1 has opened (it has no record).
type schemaRecord struct {
	version, compatibleFrom int
}

// checkSchemaVersion reads the database's record, reading only, and refuses
// (ErrNewerSchema) a database that needs a newer build than this one. It
// warns of one written by a newer build this build may still run on: an
// operator who rolled back learns that the newer build ran. Open calls it
// inside the claim, before migrate changes anything.
func checkSchemaVersion(ctx context.Context, db *sql.DB, postgres bool, log *slog.Logger) (schemaRecord, error) {
	rec, err := readSchemaVersion(ctx, db, postgres)
	if err != nil {
		return rec, err
	}
	if err := rec.refuse(); err != nil {
		return rec, err
	}
	if rec.version > SchemaVersion && log != nil {
		log.Warn("database: a newer build of devicehooks wrote this database; this build runs on it, as that build allows, and keeps its schema version",
			"database_schema", rec.version, "compatible_from", rec.compatibleFrom, "schema", SchemaVersion)
	}
	return rec, nil
}

// refuse returns ErrNewerSchema, with both versions and what to do, if the
// database needs a build of a newer schema than this one.
func (r schemaRecord) refuse() error {
	if r.compatibleFrom <= SchemaVersion {
		return nil
	}
	return fmt.Errorf("store: %w: the database records schema version %d, and that only builds of schema version %d or newer may run on it; "+
		"this build is schema version %d. Nothing was changed. Run the newer build of devicehooks that upgraded it, "+
		"or, to go back to this build, restore the backup taken before that upgrade",
		ErrNewerSchema, r.version, r.compatibleFrom, SchemaVersion)
}

// readSchemaVersion reads the record without changing anything. A database
// without a settings table, or without the record, is from before
// SchemaVersion 1: version 0. A value that is not a number is an error, not
// a guess.
func readSchemaVersion(ctx context.Context, db *sql.DB, postgres bool) (schemaRecord, error) {
	var rec schemaRecord
	exists := `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'settings'`
	if postgres {
		exists = `SELECT count(*) FROM (SELECT to_regclass('settings') AS t) r WHERE t IS NOT NULL`
	}
	var n int
	if err := db.QueryRowContext(ctx, exists).Scan(&n); err != nil {
		return rec, fmt.Errorf("store: read the schema version: %w", err)
	}
	if n == 0 {
		return rec, nil
	}
	if err := readSchemaSetting(ctx, db, postgres, schemaVersionSetting, &rec.version); err != nil {
		return rec, err
	}
	return rec, readSchemaSetting(ctx, db, postgres, compatibleFromSetting, &rec.compatibleFrom)
}

// readSchemaSetting reads one setting of the record into into, leaving it
// zero if the setting is absent.
func readSchemaSetting(ctx context.Context, db *sql.DB, postgres bool, name string, into *int) error {
	query := `SELECT value FROM settings WHERE name = ?`
	if postgres {
		query = `SELECT value FROM settings WHERE name = $1`
	}
	var value string
	err := db.QueryRowContext(ctx, query, name).Scan(&value)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: read the schema version: %w", err)
	}
	v, err := strconv.Atoi(value)
	if err != nil || v < 0 {
		return fmt.Errorf("store: read the schema version: setting %s holds %q, not a version number", name, value)
	}
	*into = v
	return nil
}

// recordSchemaVersion records this build's version and compatibility before
// migrate changes anything (a migrate stopped halfway must leave a database
// that the builds this one shuts out refuse), never lowering what rec (read
// just before) holds: on a database a newer build wrote, its numbers stay.
// Its "compatible from" stays too, because the schema is still the newer
// build's (migrate only adds what this build knows, which the newer build
// does know), so the builds it shuts out would still damage it. It writes
// nothing when the record already holds these numbers.
func (s *Store) recordSchemaVersion(ctx context.Context, rec schemaRecord) error {
	want := schemaRecord{version: max(rec.version, SchemaVersion), compatibleFrom: max(rec.compatibleFrom, CompatibleFrom)}
	if want == rec {
		return nil
	}
	// The record's table first, on a database that has none yet.
	if err := s.db.WithContext(ctx).AutoMigrate(&Setting{}); err != nil {
		return fmt.Errorf("store: record the schema version: %w", err)
	}
	rows := []Setting{
		{Name: schemaVersionSetting, Value: strconv.Itoa(want.version)},
		{Name: compatibleFromSetting, Value: strconv.Itoa(want.compatibleFrom)},
	}
	// One statement: both settings, or neither.
	err := s.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "name"}},
		DoUpdates: clause.AssignmentColumns([]string{"value"}),
	}).Create(&rows).Error
	if err != nil {
		return fmt.Errorf("store: record the schema version: %w", err)
	}
	return nil
}

// refuseNewerSchemaWhileWaiting wraps a standby's onWait (see
// AsTheActiveInstance): a standby of a build that must not run on the
// database, upgraded before it started or while it waits, stops at once
// rather than at takeover, when it would leave no instance running. A failed
// read does not end the wait (the database may be restarting); the check
// after the claim is the one that counts.
func refuseNewerSchemaWhileWaiting(ctx context.Context, onWait func(st *Store, first bool) error) func(st *Store, first bool) error {
	return func(st *Store, first bool) error {
		if sqlDB, err := st.db.DB(); err == nil {
			if rec, err := readSchemaVersion(ctx, sqlDB, st.postgres); err == nil {
				if err := rec.refuse(); err != nil {
					return err
				}
			}
		}
		if onWait == nil {
			return nil
		}
		return onWait(st, first)
	}
}
