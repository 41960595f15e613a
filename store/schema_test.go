package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"devicehooks/internal/testenv"
)

// schemaDB is a database of either backend for the schema version's tests,
// with a side connection that reads and writes it as another build would,
// without going through Open.
type schemaDB struct {
	dsn    string
	sqlite bool
	side   *sql.DB
}

// eachSchemaDB runs f on a database made by Open (this build) on a fresh
// SQLite file and on a fresh PostgreSQL database, closed again.
func eachSchemaDB(t *testing.T, f func(t *testing.T, db *schemaDB)) {
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			db := &schemaDB{dsn: filepath.Join(t.TempDir(), "schema.db"), sqlite: name == "sqlite"}
			driver := "sqlite3"
			if !db.sqlite {
				db.dsn, driver = testenv.Postgres(t), "pgx"
			}
			st, err := Open(context.Background(), db.dsn, nil)
			if err != nil {
				t.Fatal(err)
			}
			st.Close()
			if db.side, err = sql.Open(driver, db.dsn); err != nil {
				t.Fatal(err)
			}
			db.side.SetMaxOpenConns(1)
			t.Cleanup(func() { db.side.Close() })
			f(t, db)
		})
	}
}

// exec runs statements on the side connection; ? stands for $n on PostgreSQL.
func (db *schemaDB) exec(t *testing.T, query string, args ...any) {
	t.Helper()
	if !db.sqlite {
		for i := 1; strings.Contains(query, "?"); i++ {
			query = strings.Replace(query, "?", fmt.Sprintf("$%d", i), 1)
		}
	}
	if _, err := db.side.Exec(query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// record sets what the database says of its schema, as a build of that
// version would have written it.
func (db *schemaDB) record(t *testing.T, version, compatibleFrom string) {
	t.Helper()
	db.exec(t, `DELETE FROM settings WHERE name IN (?, ?)`, schemaVersionSetting, compatibleFromSetting)
	db.exec(t, `INSERT INTO settings (name, value) VALUES (?, ?), (?, ?)`,
		schemaVersionSetting, version, compatibleFromSetting, compatibleFrom)
}

// recorded returns the record as "version/compatible from", "-" for a
// setting that is absent.
func (db *schemaDB) recorded(t *testing.T) string {
	t.Helper()
	got := map[string]string{schemaVersionSetting: "-", compatibleFromSetting: "-"}
	rows, err := db.side.Query(`SELECT name, value FROM settings`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var name, value string
		if err := rows.Scan(&name, &value); err != nil {
			t.Fatal(err)
		}
		if _, ok := got[name]; ok {
			got[name] = value
		}
	}
	return got[schemaVersionSetting] + "/" + got[compatibleFromSetting]
}

// snapshot lists the database's tables, columns, indexes, settings and
// counters (which migrate writes), and on SQLite the file's hash: what a
// refused start must leave as it was.
func (db *schemaDB) snapshot(t *testing.T) []string {
	t.Helper()
	queries := []string{
		`SELECT type || ' ' || name || ' ' || COALESCE(sql, '') FROM sqlite_master`,
		`SELECT 'setting ' || name || '=' || value FROM settings`,
		`SELECT 'counter ' || name || '=' || CAST(value AS TEXT) FROM counters`,
	}
	if !db.sqlite {
		queries[0] = `SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = current_schema()`
		queries = append(queries, `SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type
			FROM information_schema.columns WHERE table_schema = current_schema()`)
	}
	var out []string
	for _, q := range queries {
		rows, err := db.side.Query(q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			out = append(out, line)
		}
		rows.Close()
	}
	if db.sqlite {
		// The side connection's writes may still be in the WAL.
		for _, file := range []string{db.dsn, db.dsn + "-wal"} {
			data, err := os.ReadFile(file)
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("file %s sha256 %x", filepath.Base(file), sha256.Sum256(data)))
		}
	}
	slices.Sort(out)
	return out
}

// claimFree tells whether no instance holds the database's claim.
func (db *schemaDB) claimFree(t *testing.T) bool {
	t.Helper()
	if !db.sqlite {
		var n int
		if err := db.side.QueryRow(`SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 0
	}
	probe := &Store{}
	ok, err := probe.tryClaimFile(context.Background(), db.dsn)
	if err != nil {
		t.Fatal(err)
	}
	probe.releaseClaim()
	return ok
}

// open opens the database as serve does (with the claim), returning what it
// logged.
func (db *schemaDB) open(t *testing.T, options ...Option) (*Store, string, error) {
	t.Helper()
	var logs testenv.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := Open(ctx, db.dsn, slog.New(slog.NewTextHandler(&logs, nil)), options...)
	if err == nil {
		t.Cleanup(func() { st.Close() })
	}
	return st, logs.String(), err
}

// What this build records, and a schema version past it.
var (
	thisVersion = strconv.Itoa(SchemaVersion)
	thisBuild   = thisVersion + "/" + strconv.Itoa(CompatibleFrom)
	newer       = strconv.Itoa(SchemaVersion + 1)
)

func TestNewDatabaseRecordsItsSchemaVersion(t *testing.T) {
	eachSchemaDB(t, func(t *testing.T, db *schemaDB) {
		if got := db.recorded(t); got != thisBuild {
			t.Fatalf("a new database records %s, want %s", got, thisBuild)
		}
		st, logs, err := db.open(t, AsTheActiveInstance(nil))
		if err != nil {
			t.Fatal(err)
		}
		st.Close()
		if !strings.Contains(logs, `msg="database ready"`) || !strings.Contains(logs, "schema="+thisVersion) || strings.Contains(logs, "level=WARN") {
			t.Fatalf("the start's log:\n%s", logs)
		}
	})
}

// A database from before the record (no settings, or no settings table at
// all) is upgraded as before and gets the record.
func TestDatabaseFromBeforeTheRecordGetsIt(t *testing.T) {
	eachSchemaDB(t, func(t *testing.T, db *schemaDB) {
		for _, undo := range []string{
			`DELETE FROM settings WHERE name IN ('schema_version', 'schema_compatible_from')`,
			`DROP TABLE settings`,
		} {
			db.exec(t, undo)
			st, logs, err := db.open(t, AsTheActiveInstance(nil))
			if err != nil {
				t.Fatalf("after %s: %v", undo, err)
			}
			st.Close()
			if got := db.recorded(t); got != thisBuild || !strings.Contains(logs, "schema="+thisVersion) {
				t.Fatalf("after %s: recorded %s, logged:\n%s", undo, got, logs)
			}
		}
	})
}

// The record is written before the upgrade: an upgrade that stops halfway
// (here, a unique index it cannot build) leaves a database that the builds
// this one shuts out already refuse.
func TestRecordComesBeforeTheUpgrade(t *testing.T) {
	eachSchemaDB(t, func(t *testing.T, db *schemaDB) {
		db.exec(t, `DELETE FROM settings WHERE name IN ('schema_version', 'schema_compatible_from')`)
		db.exec(t, `DROP INDEX idx_groups_name`)
		now := time.Now().UTC()
		db.exec(t, `INSERT INTO groups (id, name, created_at, updated_at) VALUES (?, ?, ?, ?), (?, ?, ?, ?)`,
			"g1", "Lobby", now, now, "g2", "Lobby", now, now)
		if _, _, err := db.open(t, AsTheActiveInstance(nil)); err == nil {
			t.Fatal("the upgrade did not fail")
		}
		if got := db.recorded(t); got != thisBuild {
			t.Fatalf("after a failed upgrade the database records %s, want %s", got, thisBuild)
		}
	})
}

// A database a newer build upgraded in a way this build would damage is
// refused, by serve and by the tools, and left as it was: no index this
// build would make, no counter, no setting.
func TestNewerIncompatibleSchemaIsRefused(t *testing.T) {
	eachSchemaDB(t, func(t *testing.T, db *schemaDB) {
		db.record(t, newer, newer)
		db.exec(t, `DROP INDEX idx_commands_open_device_fn`) // as if the newer build had
		db.exec(t, `DELETE FROM counters`)
		before := db.snapshot(t)
		for _, c := range []struct {
			name    string
			options []Option
		}{
			{"serve", []Option{AsTheActiveInstance(nil), WaitForServer()}},
			{"tool", []Option{WithoutMigration()}},
		} {
			_, logs, err := db.open(t, c.options...)
			if !errors.Is(err, ErrNewerSchema) {
				t.Fatalf("%s: Open: %v", c.name, err)
			}
			for _, want := range []string{"schema version " + newer, "this build is schema version " + thisVersion, "Nothing was changed",
				"Run the newer build", "restore the backup taken before that upgrade"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("%s: the error lacks %q: %v", c.name, want, err)
				}
			}
			if strings.Contains(logs, "database ready") {
				t.Errorf("%s: logged ready:\n%s", c.name, logs)
			}
			if after := db.snapshot(t); !slices.Equal(before, after) {
				t.Fatalf("%s: the database changed:\nbefore %q\nafter  %q", c.name, before, after)
			}
		}
		if !db.claimFree(t) {
			t.Fatal("the refused start kept the claim")
		}
	})
}

// An older build that may run on a newer build's database opens it, says so,
// and keeps the newer build's numbers.
func TestNewerCompatibleSchemaOpens(t *testing.T) {
	eachSchemaDB(t, func(t *testing.T, db *schemaDB) {
		db.record(t, newer, thisVersion)
		st, logs, err := db.open(t, AsTheActiveInstance(nil))
		if err != nil {
			t.Fatal(err)
		}
		st.Close()
		if !strings.Contains(logs, "level=WARN") || !strings.Contains(logs, "a newer build of devicehooks wrote this database") ||
			!strings.Contains(logs, "database_schema="+newer) || !strings.Contains(logs, "database ready") {
			t.Fatalf("the start's log:\n%s", logs)
		}
		if got := db.recorded(t); got != newer+"/"+thisVersion {
			t.Fatalf("recorded %s after this build ran, want the newer build's %s/%s", got, newer, thisVersion)
		}
		if _, _, err := db.open(t, WithoutMigration()); err != nil {
			t.Fatalf("a tool: %v", err)
		}
	})
}

// A standby of a build the database has outgrown stops at once, not at
// takeover, when it would leave no instance running.
func TestStandbyOfAnOutgrownBuildStops(t *testing.T) {
	eachSchemaDB(t, func(t *testing.T, db *schemaDB) {
		if _, _, err := db.open(t, AsTheActiveInstance(nil)); err != nil {
			t.Fatal(err)
		}
		db.record(t, newer, newer) // the active instance is a newer build
		waits := 0
		_, _, err := db.open(t, AsTheActiveInstance(func(*Store, bool) error { waits++; return nil }))
		if !errors.Is(err, ErrNewerSchema) || waits != 0 {
			t.Fatalf("a standby: %v after %d waits", err, waits)
		}
	})
}

// A record that is not a number is refused, not guessed at.
func TestUnreadableSchemaVersionIsRefused(t *testing.T) {
	eachSchemaDB(t, func(t *testing.T, db *schemaDB) {
		db.record(t, newer, "two")
		before := db.snapshot(t)
		_, _, err := db.open(t)
		if err == nil || !strings.Contains(err.Error(), `schema_compatible_from holds "two"`) {
			t.Fatalf("Open: %v", err)
		}
		if after := db.snapshot(t); !slices.Equal(before, after) {
			t.Fatalf("the database changed:\nbefore %q\nafter  %q", before, after)
		}
	})
}
