package testenv

import (
	"database/sql"
	"testing"

	_ "github.com/mattn/go-sqlite3" // the "sqlite3" driver
)

// SQLiteSide opens a plain connection to the SQLite file a store under test
// uses, for what the store offers no way to do: installing a trigger that makes
// its writes fail, say (CREATE TRIGGER t BEFORE UPDATE ON devices BEGIN SELECT
// RAISE(ABORT, 'injected'); END). Every statement must succeed.
func SQLiteSide(t testing.TB, path string) func(query string) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return func(query string) {
		t.Helper()
		if _, err := db.Exec(query); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
	}
}
