package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat; it is 100
// on every Linux architecture Go supports.
const clockTicks = 100

// process is a child process the benchmark started: the devicehooks server or
// Mosquitto. It dies with the benchmark (Pdeathsig) even if the benchmark is killed.
type process struct {
	name string
	log  string // path of the file holding all its output
	cmd  *exec.Cmd
	out  *limitedTee // stdout and stderr, for error messages
	done chan struct{}
	err  error
}

// startProcess starts bin with args; its output goes to logPath and to memory.
func startProcess(name, logPath string, bin string, args ...string) (*process, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	p := &process{name: name, log: logPath, out: &limitedTee{file: logf, limit: 64 << 10}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		_ = logf.Close()
		close(p.done)
	}()
	return p, nil
}

// pid is the child's process id.
func (p *process) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits up to grace before SIGKILL. Safe to call twice.
func (p *process) stop(grace time.Duration) {
	if p == nil || p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// stat reads the process's CPU time and memory.
func (p *process) stat() (procStat, error) {
	if p.exited() {
		return procStat{}, fmt.Errorf("%s is not running", p.name)
	}
	return readProcStat(p.pid())
}

// alive fails if the process has died, with its last output.
func (p *process) alive() error {
	if p.exited() {
		return fmt.Errorf("%s exited: %v\n%s", p.name, p.err, p.tail())
	}
	return nil
}

// tail returns the end of the process's output, for an error message.
func (p *process) tail() string {
	p.out.mu.Lock()
	s := p.out.mem.String()
	p.out.mu.Unlock()
	if len(s) > 4000 {
		s = "..." + s[len(s)-4000:]
	}
	return s
}

// limitedTee writes everything to a file and the first limit bytes to memory.
type limitedTee struct {
	file  *os.File
	limit int

	mu  sync.Mutex
	mem bytes.Buffer
}

func (t *limitedTee) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if room := t.limit - t.mem.Len(); room > 0 {
		t.mem.Write(b[:min(room, len(b))])
	}
	return t.file.Write(b)
}

// procStat is a process's CPU time and memory at one moment.
type procStat struct {
	CPU   time.Duration // user + system
	RSS   int64         // bytes resident now (VmRSS)
	HWM   int64         // peak resident bytes (VmHWM)
	Taken time.Time
}

// readProcStat reads /proc/PID/stat and /proc/PID/status.
func readProcStat(pid int) (procStat, error) {
	st := procStat{Taken: time.Now()}
	var err error
	if st.CPU, _, err = cpuAndParent(pid); err != nil {
		return st, err
	}
	status, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return st, err
	}
	defer status.Close()
	sc := bufio.NewScanner(status)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "VmRSS:"):
			st.RSS = parseKB(line)
		case strings.HasPrefix(line, "VmHWM:"):
			st.HWM = parseKB(line)
		}
	}
	return st, sc.Err()
}

// cpuAndParent reads a process's CPU time (user + system) and its parent's id
// from /proc/PID/stat.
func cpuAndParent(pid int) (time.Duration, int, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The command name (field 2) may hold spaces: fields count from after ')'.
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return 0, 0, errors.New("bench: unexpected /proc stat format")
	}
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 13 {
		return 0, 0, errors.New("bench: short /proc stat")
	}
	ppid, _ := strconv.Atoi(f[1])               // field 4
	utime, _ := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	return time.Duration(utime+stime) * time.Second / clockTicks, ppid, nil
}

func parseKB(line string) int64 {
	f := strings.Fields(line)
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.ParseInt(f[1], 10, 64)
	return n * 1024
}

// resetPeakRSS clears VmHWM (writing 5 to /proc/PID/clear_refs), so that a later
// reading is the peak of what follows. It reports whether the kernel allowed it.
func resetPeakRSS(pid int) bool {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0) == nil
}

// freeAddr returns a 127.0.0.1 address with a port that was free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// waitTCP waits until addr accepts connections, or the process exits, or timeout.
func waitTCP(ctx context.Context, p *process, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			return nil
		}
		if p.exited() {
			return fmt.Errorf("%s exited during start-up: %v\n%s", p.name, p.err, p.tail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not accept connections on %s within %v\n%s", p.name, addr, timeout, p.tail())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitHealthy waits until GET /healthz answers 200.
func waitHealthy(ctx context.Context, p *process, base string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	for {
		resp, err := client.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if p.exited() {
			return fmt.Errorf("%s exited during start-up: %v\n%s", p.name, p.err, p.tail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not healthy within %v\n%s", p.name, timeout, p.tail())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// buildServer compiles ./cmd/devicehooks of the module into dir.
func buildServer(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("bench: not inside the devicehooks module; pass --bin")
	}
	bin := filepath.Join(dir, "devicehooks")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/devicehooks")
	cmd.Dir = filepath.Dir(gomod)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/devicehooks: %w\n%s", err, msg)
	}
	return bin, nil
}

// raiseFileLimit lifts the soft open-files limit to the hard one; child processes
// inherit it. 10,000 players need 10,000 sockets here and as many in the server.
func raiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, err
		}
	}
	return lim.Cur, nil
}
