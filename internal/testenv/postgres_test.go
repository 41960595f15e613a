package testenv

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestPostgresGivesSeparateUsableDatabases(t *testing.T) {
	a, b := Postgres(t), Postgres(t)
	if a == b {
		t.Fatalf("two calls gave the same DSN %q", a)
	}
	for i, dsn := range []string{a, b} {
		if os.Getenv(PostgresEnv) == "" {
			u, err := url.Parse(dsn)
			if err != nil || u.Scheme != "postgres" || u.User.Username() != "postgres" ||
				u.Hostname() != "127.0.0.1" || u.Query().Get("sslmode") != "disable" {
				t.Fatalf("DSN %q (%v) is not postgres://postgres@127.0.0.1:PORT/DB?sslmode=disable", dsn, err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatalf("connect %s: %v", dsn, err)
		}
		defer conn.Close(context.Background())
		// The same table name in both databases: they must be separate.
		if _, err := conn.Exec(ctx, `CREATE TABLE things (id int PRIMARY KEY, name text NOT NULL)`); err != nil {
			t.Fatalf("create table in %s: %v", dsn, err)
		}
		if _, err := conn.Exec(ctx, `INSERT INTO things VALUES ($1, 'x')`, i); err != nil {
			t.Fatalf("insert: %v", err)
		}
		var n, id int
		if err := conn.QueryRow(ctx, `SELECT count(*), max(id) FROM things`).Scan(&n, &id); err != nil {
			t.Fatalf("query: %v", err)
		}
		if n != 1 || id != i {
			t.Fatalf("database %d: count=%d id=%d, want 1 row with id %d", i, n, id, i)
		}
	}
}

func TestPostgresDropsDatabaseInCleanup(t *testing.T) {
	var name string
	t.Run("user", func(t *testing.T) {
		// Cleanups run last-registered first: this connection is still
		// open when the database is dropped, and the drop must force it out.
		var conn *pgx.Conn
		t.Cleanup(func() {
			if conn != nil {
				_ = conn.Close(context.Background())
			}
		})
		u, err := url.Parse(Postgres(t))
		if err != nil {
			t.Fatal(err)
		}
		name = u.Path[1:]
		if conn, err = pgx.Connect(context.Background(), u.String()); err != nil {
			t.Fatal(err)
		}
	})
	if name == "" {
		t.Fatal("subtest did not get a database")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, pgAdmin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Fatalf("database %s still exists after its test ended", name)
	}
}

func TestDatabaseName(t *testing.T) {
	valid := regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)
	long := "TestSomething/with a very long subtest name that goes on and on and on and on"
	a, b := databaseName(long), databaseName(long)
	if a == b {
		t.Fatalf("databaseName is not unique: %q twice", a)
	}
	for _, n := range []string{a, databaseName("T"), databaseName("/")} {
		if !valid.MatchString(n) {
			t.Fatalf("databaseName gave %q: not a plain identifier of at most 63 bytes", n)
		}
	}
}

func TestVersionLess(t *testing.T) {
	if !versionLess("/usr/lib/postgresql/9.6/bin", "/usr/lib/postgresql/15/bin") ||
		versionLess("/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin") {
		t.Fatal("versionLess does not compare versions numerically")
	}
}

func TestPostgresInParallelTests(t *testing.T) {
	for i := range 6 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			conn, err := pgx.Connect(ctx, Postgres(t))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(context.Background())
			if _, err := conn.Exec(ctx, `CREATE TABLE t (id int)`); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestProcessAlive(t *testing.T) {
	if !processAlive(os.Getpid()) {
		t.Fatal("processAlive(own pid) = false")
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatalf("cannot run true (coreutils): %v", err)
	}
	if processAlive(cmd.Process.Pid) {
		t.Fatalf("processAlive(%d) = true for a finished child", cmd.Process.Pid)
	}
}
