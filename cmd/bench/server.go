package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// benchAdminToken is the bootstrap admin token the benchmark gives the server.
const benchAdminToken = "bench-admin-token-0123456789abcdefghijklmnopqrstuv"

// server is the devicehooks binary under test, run as a child process so that its
// CPU time and memory are measured apart from the load generator and the players.
type server struct {
	bin     string
	dir     string // database, secret and logs
	mqttURL string // external broker, or "" for the embedded one
	db      string // a PostgreSQL database's URL, or "" for an SQLite file in dir
	pprof   bool

	proc      *process
	httpAddr  string
	mqttAddr  string // embedded broker's TCP address
	pprofAddr string
	starts    int
}

// newServer prepares a server in a fresh directory under dir, with its own
// database: db, or an SQLite file in that directory.
func newServer(bin, dir, name, mqttURL, db string, pprof bool) (*server, error) {
	d := filepath.Join(dir, name)
	if err := os.MkdirAll(d, 0o700); err != nil {
		return nil, err
	}
	if db == "" {
		db = filepath.Join(d, "bench.db")
	}
	return &server{bin: bin, dir: d, mqttURL: mqttURL, db: db, pprof: pprof}, nil
}

// start runs `devicehooks serve` on fresh loopback ports and waits until /healthz
// answers. The database persists across restarts.
func (s *server) start(ctx context.Context) error {
	var err error
	if s.httpAddr, err = freeAddr(); err != nil {
		return err
	}
	args := []string{"serve",
		"--http-addr", s.httpAddr,
		"--db", s.db,
		"--secret-file", filepath.Join(s.dir, "bench.secret"),
		"--admin-token", benchAdminToken,
		"--admin-password", "bench-password-0123456789",
		"--mqtt-ws-listen", "",
		"--log-level", "warn",
	}
	if s.mqttURL != "" {
		args = append(args, "--mqtt-url", s.mqttURL)
	} else {
		if s.mqttAddr, err = freeAddr(); err != nil {
			return err
		}
		args = append(args, "--mqtt-listen", s.mqttAddr)
	}
	if s.pprof {
		if s.pprofAddr, err = freeAddr(); err != nil {
			return err
		}
		args = append(args, "--pprof-addr", s.pprofAddr)
	}
	s.starts++
	logPath := filepath.Join(s.dir, fmt.Sprintf("server-%d.log", s.starts))
	if s.proc, err = startProcess("devicehooks", logPath, s.bin, args...); err != nil {
		return err
	}
	if err := waitHealthy(ctx, s.proc, s.base(), 60*time.Second); err != nil {
		s.stop()
		return err
	}
	if s.mqttURL == "" {
		if err := waitTCP(ctx, s.proc, s.mqttAddr, 10*time.Second); err != nil {
			s.stop()
			return err
		}
	}
	return nil
}

// restart stops the server and starts it again on the same database.
func (s *server) restart(ctx context.Context) error {
	s.stop()
	return s.start(ctx)
}

// stop ends the server gracefully (SIGTERM, then SIGKILL after 20 s).
func (s *server) stop() {
	if s.proc != nil {
		s.proc.stop(20 * time.Second)
	}
}

// base is the server's HTTP base URL.
func (s *server) base() string { return "http://" + s.httpAddr }

// brokerURL is where players connect.
func (s *server) brokerURL() string {
	if s.mqttURL != "" {
		return s.mqttURL
	}
	return "tcp://" + s.mqttAddr
}

// stat reads the server's CPU time and memory.
func (s *server) stat() (procStat, error) {
	if s.proc == nil {
		return procStat{}, fmt.Errorf("devicehooks was not started")
	}
	return s.proc.stat()
}

// alive fails if the server has died, with its last output.
func (s *server) alive() error {
	if s.proc == nil {
		return fmt.Errorf("devicehooks was not started")
	}
	return s.proc.alive()
}

// warnings returns the lines the server logged (at warn level and above), at
// most three per message, so that a flood of one warning stays readable.
func (s *server) warnings() []string {
	if s.proc == nil {
		return nil
	}
	raw, err := os.ReadFile(s.proc.log)
	if err != nil {
		return nil
	}
	var out []string
	seen := map[string]int{}
	for _, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		key := line
		if i := strings.Index(line, "msg="); i >= 0 {
			key = line[i:]
			if j := strings.Index(key, " "); j > 0 {
				key = key[:j]
			}
		}
		seen[key]++
		switch {
		case seen[key] <= 3:
			out = append(out, line)
		case seen[key] == 4:
			out = append(out, "... (more of "+key+")")
		}
	}
	return out
}
