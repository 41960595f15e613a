package store

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"devicehooks/internal/testenv"
)

// reopenable runs f on a fresh SQLite file and on a fresh PostgreSQL
// database, with a function that closes the store and opens it again, as an
// upgrade's first start does, and what the store logged.
func reopenable(t *testing.T, f func(t *testing.T, st *Store, reopen func() *Store, logs *testenv.Buffer)) {
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			dsn := filepath.Join(t.TempDir(), "upgrade.db")
			if name == "postgres" {
				dsn = testenv.Postgres(t)
			}
			var logs testenv.Buffer
			open := func() *Store {
				t.Helper()
				st, err := Open(context.Background(), dsn, slog.New(slog.NewTextHandler(&logs, nil)))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { st.Close() })
				return st
			}
			st := open()
			f(t, st, func() *Store { st.Close(); st = open(); return st }, &logs)
		})
	}
}

// A build from before the desired-state counter, run on a database after an
// upgrade (a downgrade), numbers each device's versions on its own, past the
// counter. The next start puts the counter past them again: a player ignores
// a desired state whose version is not newer than the one it applied, so a
// version given twice would leave a screen in emergency mode.
func TestDesiredCounterRisesPastADowngradesVersions(t *testing.T) {
	reopenable(t, func(t *testing.T, st *Store, reopen func() *Store, _ *testenv.Buffer) {
		ctx := context.Background()
		if err := st.CreateDevice(ctx, testDevice("d1")); err != nil {
			t.Fatal(err)
		}
		writeDesired(t, st, "first", true)
		// The old build fired twelve more desired changes at d1.
		if err := st.db.Exec(`UPDATE devices SET desired_version = 13 WHERE id = 'd1'`).Error; err != nil {
			t.Fatal(err)
		}
		st = reopen()
		writeDesired(t, st, "after", false)
		ds, err := st.DevicesWithDesired(ctx, []string{"d1"})
		if err != nil || len(ds) != 1 || ds[0].DesiredVersion <= 13 {
			t.Fatalf("after the upgrade again: %+v, %v; want a version past 13", ds, err)
		}
	})
}

func writeDesired(t *testing.T, st *Store, id string, paused bool) {
	t.Helper()
	now := time.Now().UTC()
	nd := &NewDispatch{Dispatch: Dispatch{ID: id, ActionID: "a", ActionName: "a", EventID: "e", Function: "pause_loop", Method: "POST", Targets: 1, CreatedAt: now},
		Commands: []Command{{ID: id + "-c", DispatchID: id, DeviceID: "d1", State: StateQueued, Function: "pause_loop", Payload: "{}", CreatedAt: now, ExpiresAt: now.Add(time.Minute)}},
		Desired:  &DesiredChange{LoopPaused: &paused}}
	if _, err := st.WriteDispatches(context.Background(), []*NewDispatch{nd}); err != nil {
		t.Fatal(err)
	}
}

// The first builds kept an API key's address ranges in a column gorm named
// c_id_rs. An upgrade from one moves them to cidrs, where they are read: a
// key limited to some addresses must not come out of an upgrade open to all.
func TestAddressLimitsOfAnEarlyBuildSurviveTheUpgrade(t *testing.T) {
	reopenable(t, func(t *testing.T, st *Store, reopen func() *Store, logs *testenv.Buffer) {
		ctx := context.Background()
		now := time.Now().UTC()
		for _, id := range []string{"limited", "open", "newer"} {
			k := &APIKey{ID: id, Name: id, Prefix: "dhk_" + id, LookupHash: "hash-" + id, CreatedAt: now}
			if id == "newer" {
				k.CIDRs = `["198.51.100.0/24"]` // set by this build: kept
			}
			if err := st.CreateAPIKey(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		for _, q := range []string{
			`ALTER TABLE api_keys ADD COLUMN c_id_rs text NOT NULL DEFAULT '[]'`,
			`UPDATE api_keys SET c_id_rs = '["203.0.113.0/24"]' WHERE id IN ('limited', 'newer')`,
		} {
			if err := st.db.Exec(q).Error; err != nil {
				t.Fatal(err)
			}
		}
		st = reopen()
		for id, want := range map[string]string{"limited": `["203.0.113.0/24"]`, "open": `[]`, "newer": `["198.51.100.0/24"]`} {
			k, err := st.APIKey(ctx, id)
			if err != nil || k.CIDRs != want {
				t.Errorf("key %s after the upgrade: cidrs %q, %v; want %q", id, k.CIDRs, err, want)
			}
		}
		if out := logs.String(); strings.Count(out, "upgrade: restored") != 1 || !strings.Contains(out, "rows=1") {
			t.Errorf("the restored limits are not logged once, with their count:\n%s", out)
		}
		if st.db.Migrator().HasColumn("api_keys", "c_id_rs") {
			t.Error("the old column is still there: a later start would copy it again over a limit cleared since")
		}
		st = reopen() // and a second start has nothing to move
		if k, err := st.APIKey(ctx, "limited"); err != nil || k.CIDRs != `["203.0.113.0/24"]` {
			t.Errorf("after a second start: %+v, %v", k, err)
		}
	})
}

// A database file from a build that made it readable by all is named in a
// warning at start, with the command that fixes it; a private one is not.
func TestSharedDatabaseFileIsWarnedOf(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shared.db")
	openTestSQLiteAt(t, path).Close()
	var logs testenv.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	reopen := func() {
		st, err := Open(context.Background(), path, log)
		if err != nil {
			t.Fatal(err)
		}
		st.Close()
	}
	reopen()
	if strings.Contains(logs.String(), "level=WARN") {
		t.Fatalf("a private file is warned of:\n%s", logs.String())
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	reopen()
	if out := logs.String(); !strings.Contains(out, "level=WARN") || !strings.Contains(out, "chmod 600 "+path) || !strings.Contains(out, "mode=0644") {
		t.Fatalf("no warning with the fix for a file open to all:\n%s", out)
	}
}

// A tool (reset-password, mosquitto-passwd) opens the database without
// changing it: on one an older build made, it says to start the server once,
// not what statement failed to prepare.
func TestToolsOnANotYetUpgradedDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	st := openTestSQLiteAt(t, path)
	if err := st.db.Exec(`ALTER TABLE devices DROP COLUMN status_at`).Error; err != nil { // as before d0f593d
		t.Fatal(err)
	}
	st.Close()
	_, err := Open(context.Background(), path, nil, WithoutMigration())
	if err == nil || !strings.Contains(err.Error(), "start `devicehooks serve` of this build on it once") {
		t.Fatalf("a tool on an older build's database: %v", err)
	}
}
