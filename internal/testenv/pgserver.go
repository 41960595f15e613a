package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	pgDirPattern   = "devicehooks-pg-*" // under os.TempDir()
	pgOwnerFile    = "owner.pid"        // pid of the test binary that owns the server
	pgCmdTimeout   = 2 * time.Minute    // initdb, pg_ctl start/stop
	pgStartTries   = 3                  // fresh ports tried when start fails
	pgLogTailBytes = 4000
)

// postgresServer is a throwaway PostgreSQL cluster in its own temp dir.
type postgresServer struct {
	bin  string // directory holding initdb and pg_ctl
	dir  string // temp dir: data/, postgres.log, socket, owner.pid
	port string
	// asUser is "postgres" when running as root (initdb refuses root).
	asUser string
}

func (s *postgresServer) data() string { return filepath.Join(s.dir, "data") }
func (s *postgresServer) log() string  { return filepath.Join(s.dir, "postgres.log") }

// dsn returns the URL of database db on this server.
func (s *postgresServer) dsn(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%s/%s?sslmode=disable", s.port, db)
}

// startPostgres creates and starts a cluster on a free port.
func startPostgres() (*postgresServer, error) {
	bin, err := postgresBinDir()
	if err != nil {
		return nil, err
	}
	s := &postgresServer{bin: bin}
	if os.Geteuid() == 0 {
		s.asUser = "postgres"
		if _, err := exec.LookPath("runuser"); err != nil {
			return nil, fmt.Errorf("running as root needs runuser (util-linux): %w", err)
		}
	}
	sweepStalePostgres(s)
	if s.dir, err = makeServerDir(s.asUser); err != nil {
		return nil, err
	}
	if err := s.run("initdb", "-D", s.data(), "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		_ = os.RemoveAll(s.dir)
		return nil, err
	}
	// Another process can take the port between picking and binding it.
	for try := 1; ; try++ {
		if err = s.start(); err == nil {
			return s, nil
		}
		if try == pgStartTries {
			_ = os.RemoveAll(s.dir)
			return nil, err
		}
	}
}

func (s *postgresServer) start() error {
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	_, s.port, _ = net.SplitHostPort(addr)
	opts := fmt.Sprintf("-p %s -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c synchronous_commit=off -k '%s'",
		s.port, s.dir)
	err = s.run("pg_ctl", "-D", s.data(), "-l", s.log(), "-w", "-t", "60", "-o", opts, "start")
	if err != nil {
		// A failed -w start may leave a postmaster behind; make sure it is gone.
		_ = s.run("pg_ctl", "-D", s.data(), "-m", "immediate", "-w", "stop")
		return fmt.Errorf("%w%s", err, s.logTail())
	}
	return nil
}

// stop stops the server at once (its data is thrown away) and removes its dir.
func (s *postgresServer) stop() error {
	err := s.run("pg_ctl", "-D", s.data(), "-m", "immediate", "-w", "-t", "60", "stop")
	if rmErr := os.RemoveAll(s.dir); err == nil {
		err = rmErr
	}
	return err
}

// run runs initdb or pg_ctl from s.bin, as s.asUser if set.
func (s *postgresServer) run(tool string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), pgCmdTimeout)
	defer cancel()
	argv := append([]string{filepath.Join(s.bin, tool)}, args...)
	if s.asUser != "" {
		argv = append([]string{"runuser", "-u", s.asUser, "--"}, argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = s.dir // readable by the postgres user, unlike root's cwd
	// SIGTERM, not SIGKILL: runuser passes it on to the command it runs.
	cmd.SysProcAttr = childProcAttr(syscall.SIGTERM)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", strings.Join(argv, " "), err, out)
	}
	return nil
}

// logTail returns the end of the server log for error messages ("" for an
// external server).
func (s *postgresServer) logTail() string {
	if s == nil {
		return ""
	}
	data, err := os.ReadFile(s.log())
	if err != nil {
		return ""
	}
	if len(data) > pgLogTailBytes {
		data = data[len(data)-pgLogTailBytes:]
	}
	return "\n--- postgres log (" + s.log() + "):\n" + string(data)
}

// postgresBinDir finds the directory with initdb and pg_ctl: the highest
// version under /usr/lib/postgresql/*/bin, else the one of pg_ctl on PATH.
func postgresBinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionLess(dirs[i], dirs[j]) })
	for i := len(dirs) - 1; i >= 0; i-- {
		if isFile(filepath.Join(dirs[i], "initdb")) && isFile(filepath.Join(dirs[i], "pg_ctl")) {
			return dirs[i], nil
		}
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil && isFile(filepath.Join(filepath.Dir(p), "initdb")) {
		return filepath.Dir(p), nil
	}
	return "", errors.New("no initdb and pg_ctl under /usr/lib/postgresql/*/bin or on PATH")
}

// versionLess compares /usr/lib/postgresql/<version>/bin paths numerically.
func versionLess(a, b string) bool {
	va := strings.Split(filepath.Base(filepath.Dir(a)), ".")
	vb := strings.Split(filepath.Base(filepath.Dir(b)), ".")
	for i := 0; i < len(va) && i < len(vb); i++ {
		x, _ := strconv.Atoi(va[i])
		y, _ := strconv.Atoi(vb[i])
		if x != y {
			return x < y
		}
	}
	return len(va) < len(vb)
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// makeServerDir creates the server's temp dir, records this process as its
// owner and hands it to owner (if set).
func makeServerDir(owner string) (string, error) {
	dir, err := os.MkdirTemp("", pgDirPattern)
	if err != nil {
		return "", err
	}
	pid := []byte(strconv.Itoa(os.Getpid()))
	if err := os.WriteFile(filepath.Join(dir, pgOwnerFile), pid, 0o644); err != nil {
		_ = os.RemoveAll(dir)
		return "", err
	}
	if owner != "" {
		if err := chownTo(dir, owner); err != nil {
			_ = os.RemoveAll(dir)
			return "", err
		}
	}
	return dir, nil
}

func chownTo(dir, name string) error {
	u, err := user.Lookup(name)
	if err != nil {
		return fmt.Errorf("user %q (created by the postgresql package): %w", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return os.Chown(dir, uid, gid)
}

// sweepStalePostgres stops and removes servers left behind by test binaries
// that died without running Main's cleanup (a test timeout, a kill).
func sweepStalePostgres(like *postgresServer) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), pgDirPattern))
	for _, dir := range dirs {
		data, err := os.ReadFile(filepath.Join(dir, pgOwnerFile))
		if err != nil {
			continue // being created right now, or not ours
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
		if err != nil || pid <= 0 || processAlive(pid) {
			continue
		}
		stale := *like
		stale.dir = dir
		_ = stale.run("pg_ctl", "-D", stale.data(), "-m", "immediate", "-w", "-t", "30", "stop")
		_ = os.RemoveAll(dir)
	}
}

// processAlive reports whether a live (not zombie) process has this pid.
func processAlive(pid int) bool {
	if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		// "pid (comm) S ...": the state follows the last ')'.
		i := bytes.LastIndexByte(stat, ')')
		return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	err = p.Signal(syscall.Signal(0))
	return err == nil || errors.Is(err, syscall.EPERM)
}
