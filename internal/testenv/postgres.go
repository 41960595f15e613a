package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresEnv names the environment variable that points the tests at an
// existing PostgreSQL server (a postgres:// URL of a role that may CREATE
// DATABASE) instead of starting a throwaway one.
const PostgresEnv = "DEVICEHOOKS_TEST_POSTGRES"

const pgStatementTimeout = 30 * time.Second

var (
	pgOnce   sync.Once
	pgServer *postgresServer // nil with an external server or on failure
	pgAdmin  string          // DSN for CREATE/DROP DATABASE
	pgErr    error           // why no server is available
)

// Postgres returns the DSN of a fresh, empty database (CREATE DATABASE with a
// unique name per call) on a throwaway PostgreSQL server started once per
// test binary. If DEVICEHOOKS_TEST_POSTGRES is set to a postgres:// URL, that
// server is used instead of starting one. Otherwise it finds initdb/pg_ctl
// under /usr/lib/postgresql/*/bin (highest version) or on PATH, and as root
// runs them through `runuser -u postgres --`; the server listens on a free
// 127.0.0.1 port with fsync off. The DSN has the form
// postgres://postgres@127.0.0.1:PORT/DBNAME?sslmode=disable. The database is
// dropped (WITH (FORCE)) in t.Cleanup. The package must run its tests through
// Main, which stops the server.
func Postgres(t testing.TB) string {
	t.Helper()
	external := os.Getenv(PostgresEnv)
	if external == "" && !mainRunning.Load() {
		t.Fatalf("testenv.Postgres: this test binary does not run through testenv.Main, so the PostgreSQL server would be left running; add\n\tfunc TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }")
	}
	pgOnce.Do(func() {
		if external != "" {
			pgAdmin, pgErr = checkExternalURL(external)
			return
		}
		pgServer, pgErr = startPostgres()
		if pgErr == nil {
			pgAdmin = pgServer.dsn("postgres")
		}
	})
	if pgErr != nil {
		if external != "" {
			t.Fatalf("testenv: %s: %v", PostgresEnv, pgErr)
		}
		Need(t, "PostgreSQL (Debian package postgresql: initdb, pg_ctl)", pgErr)
		return ""
	}

	name := databaseName(t.Name())
	if err := adminExec(pgAdmin, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("testenv: create database %s: %v%s", name, err, pgServer.logTail())
	}
	t.Cleanup(func() {
		err := adminExec(pgAdmin, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
		if err != nil {
			t.Errorf("testenv: drop database %s: %v%s", name, err, pgServer.logTail())
		}
	})
	dsn, err := withDatabase(pgAdmin, name)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return dsn
}

// checkExternalURL validates the DEVICEHOOKS_TEST_POSTGRES value.
func checkExternalURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return "", fmt.Errorf("want a postgres:// URL, got scheme %q", u.Scheme)
	}
	if err := adminExec(raw, "SELECT 1"); err != nil {
		return "", fmt.Errorf("server %s: %w", u.Redacted(), err)
	}
	return raw, nil
}

// withDatabase returns dsn with its database name replaced by name.
func withDatabase(dsn, name string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", fmt.Errorf("bad DSN: %w", err)
	}
	u.Path, u.RawPath = "/"+name, ""
	return u.String(), nil
}

// adminExec runs one statement on a fresh connection (CREATE/DROP DATABASE
// cannot run inside a transaction or through a pooled session).
func adminExec(dsn, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), pgStatementTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

var nonIdent = regexp.MustCompile(`[^a-z0-9]+`)

// databaseName makes a unique, readable database name from a test name:
// t_<test name, shortened>_<random hex>, at most 63 bytes.
func databaseName(testName string) string {
	base := strings.Trim(nonIdent.ReplaceAllString(strings.ToLower(testName), "_"), "_")
	if len(base) > 40 {
		base = base[:40]
	}
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return "t_" + base + "_" + hex.EncodeToString(b[:])
}
