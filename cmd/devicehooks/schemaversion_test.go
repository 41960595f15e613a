package main

import (
	"context"
	"database/sql"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"devicehooks/internal/testenv"
	"devicehooks/store"
)

// A build started on a database that a newer build upgraded beyond what it
// may run on (its recorded "compatible from" is newer than this build's
// schema) stops with a message that names both versions and what to do, and
// a non-zero exit; so do its tools. The database keeps the newer build's
// record, and the admin's password is unchanged.
func TestOutgrownBuildRefusesToStart(t *testing.T) {
	bin := buildBinary(t)
	newer := strconv.Itoa(store.SchemaVersion + 1)
	for _, db := range []struct {
		name, driver string
		dsn          func(t *testing.T) string
	}{
		{"sqlite", "sqlite3", func(t *testing.T) string { return filepath.Join(t.TempDir(), "devicehooks.db") }},
		{"postgres", "pgx", func(t *testing.T) string { return testenv.Postgres(t) }},
	} {
		t.Run(db.name, func(t *testing.T) {
			dsn := db.dsn(t)
			s := startServer(t, Config{DB: dsn, AdminUser: uiUser, AdminPassword: uiPassword})
			s.stop()
			side, err := sql.Open(db.driver, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer side.Close()
			// As a newer build that older ones must not run after would record it.
			if _, err := side.Exec(`UPDATE settings SET value = $1 WHERE name IN ('schema_version', 'schema_compatible_from')`, newer); err != nil {
				t.Fatal(err)
			}
			before := settingsOf(t, side)

			for _, c := range []struct {
				name  string
				args  []string
				stdin string
			}{
				{"serve", []string{"serve", "--db", dsn, "--secret-file", s.cfg.SecretFile,
					"--http-addr", testenv.FreeAddr(t), "--mqtt-listen", "127.0.0.1:0", "--mqtt-ws-listen="}, ""},
				// Without its secret file: the one the start makes goes again.
				{"serve without its secret", []string{"serve", "--db", dsn, "--secret-file", filepath.Join(t.TempDir(), "new.secret"),
					"--http-addr", testenv.FreeAddr(t), "--mqtt-listen", "127.0.0.1:0", "--mqtt-ws-listen="}, ""},
				{"reset-password", []string{"reset-password", "--db", dsn}, "a brand new passphrase\n"},
				{"mosquitto-passwd", []string{"mosquitto-passwd", "--db", dsn}, ""},
			} {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				cmd := exec.CommandContext(ctx, bin, c.args...)
				cmd.Dir, cmd.Stdin = t.TempDir(), strings.NewReader(c.stdin)
				out, err := cmd.CombinedOutput()
				cancel()
				if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() <= 0 {
					t.Fatalf("%s: %v, want a non-zero exit:\n%s", c.name, err, out)
				}
				for _, want := range []string{"upgraded by a newer build", "the database records schema version " + newer + ", and that only builds of schema version " + newer + " or newer may run on it",
					"this build is schema version " + strconv.Itoa(store.SchemaVersion), "Run the newer build", "restore the backup taken before that upgrade"} {
					if !strings.Contains(string(out), want) {
						t.Errorf("%s: the output lacks %q:\n%s", c.name, want, out)
					}
				}
				if strings.Contains(string(out), "devicehooks serving") {
					t.Errorf("%s served:\n%s", c.name, out)
				}
				for _, a := range c.args {
					if _, err := os.Stat(a); strings.HasSuffix(a, "new.secret") && err == nil {
						t.Errorf("%s left the secret file it made: %s", c.name, a)
					}
				}
			}
			if after := settingsOf(t, side); after != before {
				t.Fatalf("the settings or the password changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

// settingsOf lists the database's settings and the admins' password hashes,
// one name=value a line.
func settingsOf(t *testing.T, db *sql.DB) string {
	t.Helper()
	rows, err := db.Query(`SELECT name, value FROM settings UNION ALL SELECT username, password_hash FROM admin_users ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var name, value string
		if err := rows.Scan(&name, &value); err != nil {
			t.Fatal(err)
		}
		b.WriteString(name + "=" + value + "\n")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
