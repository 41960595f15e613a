package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	mosquittoStartTimeout = 10 * time.Second // until the port accepts
	mosquittoStopTimeout  = 5 * time.Second  // SIGTERM grace before SIGKILL
	mosquittoStartTries   = 3                // fresh ports tried by StartMosquitto
)

// MosquittoConfig configures a throwaway Mosquitto.
type MosquittoConfig struct {
	PasswordFile string // if set: allow_anonymous false + password_file
	ACLFile      string // if set: acl_file
	Extra        string // extra config lines appended verbatim
}

// Mosquitto is a real mosquitto process on 127.0.0.1 (Debian package
// `mosquitto`, binary /usr/sbin/mosquitto or on PATH), used to test the
// external-broker path. Its methods that take no testing.TB report failures
// on the test that started it, so call them from that test's goroutine.
type Mosquitto struct {
	t       testing.TB
	bin     string
	dir     string // t.TempDir(): config, log, stdout/stderr
	conf    string
	logFile string
	outFile string
	addr    string

	mu   sync.Mutex
	cmd  *exec.Cmd     // nil when not running
	done chan struct{} // closed when cmd has exited
	werr error         // cmd.Wait result, valid once done is closed
}

// StartMosquitto writes a config file (listener <port> 127.0.0.1;
// allow_anonymous true unless PasswordFile; persistence false; log to a file
// in t.TempDir(), whose content is included in failure messages), starts it,
// waits until the port accepts TCP connections (deadline 10s), and stops it
// in t.Cleanup. It Need()s the mosquitto binary.
func StartMosquitto(t testing.TB, cfg MosquittoConfig) *Mosquitto {
	t.Helper()
	bin, err := mosquittoBinary()
	if err != nil {
		Need(t, "Mosquitto (Debian package mosquitto)", err)
		return nil
	}
	dir := t.TempDir()
	m := &Mosquitto{
		t:       t,
		bin:     bin,
		dir:     dir,
		conf:    filepath.Join(dir, "mosquitto.conf"),
		logFile: filepath.Join(dir, "mosquitto.log"),
		outFile: filepath.Join(dir, "mosquitto.out"),
	}
	t.Cleanup(m.Stop)
	// A port picked by FreeAddr can be taken before mosquitto binds it:
	// try a few fresh ports before giving up.
	for try := 1; ; try++ {
		m.addr = FreeAddr(t)
		if err = m.writeConfig(cfg); err != nil {
			t.Fatalf("testenv: mosquitto config: %v", err)
		}
		if err = m.start(); err == nil {
			return m
		}
		if try == mosquittoStartTries {
			t.Fatalf("testenv: mosquitto did not start on %s: %v\n%s", m.addr, err, m.Logs())
		}
		t.Logf("testenv: mosquitto on %s failed (%v); retrying on another port", m.addr, err)
	}
}

func mosquittoBinary() (string, error) {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p, nil
	}
	const fallback = "/usr/sbin/mosquitto"
	if _, err := os.Stat(fallback); err != nil {
		return "", errors.New("no mosquitto on PATH and no " + fallback)
	}
	return fallback, nil
}

func (m *Mosquitto) writeConfig(cfg MosquittoConfig) error {
	var b strings.Builder
	_, port, _ := strings.Cut(m.addr, ":")
	fmt.Fprintf(&b, "listener %s 127.0.0.1\n", port)
	if cfg.PasswordFile != "" {
		fmt.Fprintf(&b, "allow_anonymous false\npassword_file %s\n", cfg.PasswordFile)
	} else {
		b.WriteString("allow_anonymous true\n")
	}
	if cfg.ACLFile != "" {
		fmt.Fprintf(&b, "acl_file %s\n", cfg.ACLFile)
	}
	b.WriteString("persistence false\n")
	fmt.Fprintf(&b, "log_dest file %s\nconnection_messages true\n", m.logFile)
	if os.Geteuid() == 0 {
		// As root mosquitto would switch to user "mosquitto", which can't
		// read t.TempDir() (mode 0700) on start or on reload.
		b.WriteString("user root\n")
	}
	if cfg.Extra != "" {
		b.WriteString(cfg.Extra)
		b.WriteString("\n")
	}
	return os.WriteFile(m.conf, []byte(b.String()), 0o600)
}

// URL returns the broker URL for MQTT clients: "tcp://127.0.0.1:PORT".
func (m *Mosquitto) URL() string { return "tcp://" + m.addr }

// Addr returns the broker address: "127.0.0.1:PORT".
func (m *Mosquitto) Addr() string { return m.addr }

// ConfigFile returns the path of the generated mosquitto.conf.
func (m *Mosquitto) ConfigFile() string { return m.conf }

// Logs returns mosquitto's log file and its stdout/stderr, for failure
// messages.
func (m *Mosquitto) Logs() string {
	var b strings.Builder
	for _, f := range []struct{ name, path string }{{"log", m.logFile}, {"stdout/stderr", m.outFile}} {
		data, err := os.ReadFile(f.path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(&b, "--- mosquitto %s: %v\n", f.name, err)
			continue
		}
		fmt.Fprintf(&b, "--- mosquitto %s (%s):\n%s", f.name, f.path, data)
	}
	return b.String()
}

// Start (re)starts mosquitto on the SAME port with the same config (a running
// one is stopped first) and waits until the port accepts TCP connections;
// t.Fatal on failure.
func (m *Mosquitto) Start() {
	m.t.Helper()
	m.Stop()
	if err := m.start(); err != nil {
		m.t.Fatalf("testenv: mosquitto did not restart on %s: %v\n%s", m.addr, err, m.Logs())
	}
}

// start launches the process and waits until it accepts connections; on
// failure the process is gone when it returns.
func (m *Mosquitto) start() error {
	out, err := os.OpenFile(m.outFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer out.Close() // the child keeps its own copy
	cmd := exec.Command(m.bin, "-c", m.conf)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = childProcAttr(syscall.SIGKILL)
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	m.mu.Lock()
	m.cmd, m.done, m.werr = cmd, done, nil
	m.mu.Unlock()
	go func() {
		err := cmd.Wait()
		m.mu.Lock()
		m.werr = err
		m.mu.Unlock()
		close(done)
	}()

	exited := func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	}
	// The process must still be alive after the port accepted, or the
	// connection went to whoever else owns the port.
	ok := poll(mosquittoStartTimeout, func() bool { return exited() || acceptsTCP(m.addr) && !exited() })
	switch {
	case exited():
		m.mu.Lock()
		err, m.cmd = m.werr, nil
		m.mu.Unlock()
		return fmt.Errorf("mosquitto exited during start-up: %v", err)
	case !ok:
		m.Kill()
		return fmt.Errorf("port %s did not accept connections within %v", m.addr, mosquittoStartTimeout)
	}
	return nil
}

// running returns the current process and its exit channel, or nil.
func (m *Mosquitto) running() (*exec.Cmd, chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cmd, m.done
}

// Stop sends SIGTERM and waits for mosquitto to exit (after 5s: SIGKILL).
// It is idempotent.
func (m *Mosquitto) Stop() { m.signalAndWait(syscall.SIGTERM, mosquittoStopTimeout) }

// Kill sends SIGKILL and waits for mosquitto to exit. It is idempotent.
func (m *Mosquitto) Kill() { m.signalAndWait(syscall.SIGKILL, mosquittoStopTimeout) }

func (m *Mosquitto) signalAndWait(sig syscall.Signal, grace time.Duration) {
	cmd, done := m.running()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-done // SIGKILL cannot be ignored
	}
	m.mu.Lock()
	if m.cmd == cmd {
		m.cmd = nil
	}
	m.mu.Unlock()
}

// Reload sends SIGHUP, so mosquitto re-reads its password and ACL files, and
// waits (deadline 10s) until mosquitto has logged "Reloading config.".
// Mosquitto handles the reload in its single network thread before serving
// further packets, so connections made after Reload returns see the new files.
func (m *Mosquitto) Reload() {
	m.t.Helper()
	cmd, _ := m.running()
	if cmd == nil {
		m.t.Fatalf("testenv: mosquitto Reload: not running")
		return
	}
	before := m.reloadCount()
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		m.t.Fatalf("testenv: mosquitto Reload: %v\n%s", err, m.Logs())
		return
	}
	if !poll(mosquittoStartTimeout, func() bool { return m.reloadCount() > before }) {
		m.t.Fatalf("testenv: mosquitto did not log a reload within %v\n%s", mosquittoStartTimeout, m.Logs())
	}
}

func (m *Mosquitto) reloadCount() int {
	data, _ := os.ReadFile(m.logFile)
	return strings.Count(string(data), "Reloading config.")
}
