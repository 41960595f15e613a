package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// postgres is the PostgreSQL server the benchmark runs devicehooks on (--postgres)
// instead of a fresh SQLite file: each broker's variant gets a database of its
// own, made on it and dropped at the end. When the server runs on this machine,
// its processes' CPU is measured in each load window as the server's is, since
// the database's share of a trigger's cost is then no longer in devicehooks'
// process.
type postgres struct {
	admin      string // URL of a role that may CREATE DATABASE
	version    string // server_version
	postmaster int    // the server's process id, 0 when it is not on this machine
}

// openPostgres checks that the server at admin answers, and finds its processes.
func openPostgres(ctx context.Context, admin string) (*postgres, error) {
	u, err := url.Parse(admin)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, errors.New("--postgres takes a postgres:// URL of a role that may create databases")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return nil, fmt.Errorf("--postgres: %w", err)
	}
	defer conn.Close(context.Background())
	p := &postgres{admin: admin}
	var backend int
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version'), pg_backend_pid()").Scan(&p.version, &backend); err != nil {
		return nil, fmt.Errorf("--postgres: %w", err)
	}
	if local(conn.Config().Host) {
		p.postmaster = postmasterOf(backend)
	}
	return p, nil
}

// local reports whether a PostgreSQL host is this machine: loopback, or a Unix
// socket's folder.
func local(host string) bool {
	if strings.HasPrefix(host, "/") || host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// postmasterOf is the parent of a local backend process: the server's first
// process, whose children are all of its processes. 0 if the backend is not a
// postgres process of this machine.
func postmasterOf(backend int) int {
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", backend))
	if err != nil || strings.TrimSpace(string(comm)) != "postgres" {
		return 0
	}
	_, ppid, err := cpuAndParent(backend)
	if err != nil {
		return 0
	}
	return ppid
}

// cpu is the CPU time of the server's processes (the postmaster and its
// children: backends, WAL writer, checkpointer...) by process id; nil when the
// server is not on this machine. A backend that ends between two readings takes
// its time with it; devicehooks keeps its connections open.
func (p *postgres) cpu() map[int]time.Duration {
	if p == nil || p.postmaster == 0 {
		return nil
	}
	out := map[int]time.Duration{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		if t, ppid, err := cpuAndParent(pid); err == nil && (pid == p.postmaster || ppid == p.postmaster) {
			out[pid] = t
		}
	}
	return out
}

// cpuBetween is the server's CPU time from reading a to reading b: a process
// that started between them counts whole.
func cpuBetween(a, b map[int]time.Duration) time.Duration {
	var d time.Duration
	for pid, t := range b {
		d += t - a[pid]
	}
	return d
}

// pgDatabase is one variant's database.
type pgDatabase struct {
	p    *postgres
	name string
	url  string
}

// createDatabase makes an empty database for one variant.
func (p *postgres) createDatabase(ctx context.Context, variant string) (*pgDatabase, error) {
	name := fmt.Sprintf("devicehooks_bench_%s_%d", variant, time.Now().UnixNano())
	if err := p.exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return nil, fmt.Errorf("create database %s: %w", name, err)
	}
	u, _ := url.Parse(p.admin) // parsed in openPostgres
	u.Path = "/" + name
	return &pgDatabase{p: p, name: name, url: u.String()}, nil
}

// drop drops the database; WITH (FORCE), since a server that did not stop in
// time still holds connections.
func (d *pgDatabase) drop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return d.p.exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{d.name}.Sanitize()+" WITH (FORCE)")
}

func (p *postgres) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, p.admin)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}
