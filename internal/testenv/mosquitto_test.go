package testenv

import (
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestMosquittoStopStartSamePort(t *testing.T) {
	m := StartMosquitto(t, MosquittoConfig{})
	if m.URL() != "tcp://"+m.Addr() {
		t.Fatalf("URL() = %q, Addr() = %q", m.URL(), m.Addr())
	}
	if !acceptsTCP(m.Addr()) {
		t.Fatalf("no TCP connection to %s\n%s", m.Addr(), m.Logs())
	}
	if rc := mqttConnect(t, m.Addr(), "", ""); rc != 0 {
		t.Fatalf("anonymous CONNECT: return code %d, want 0\n%s", rc, m.Logs())
	}

	m.Stop()
	if acceptsTCP(m.Addr()) {
		t.Fatalf("%s still accepts connections after Stop", m.Addr())
	}
	m.Stop() // idempotent

	addr := m.Addr()
	m.Start()
	if m.Addr() != addr {
		t.Fatalf("Start moved the broker from %s to %s", addr, m.Addr())
	}
	if rc := mqttConnect(t, m.Addr(), "", ""); rc != 0 {
		t.Fatalf("CONNECT after restart: return code %d, want 0\n%s", rc, m.Logs())
	}

	m.Kill()
	m.Kill() // idempotent
	if acceptsTCP(m.Addr()) {
		t.Fatalf("%s still accepts connections after Kill", m.Addr())
	}
	m.Start()
	m.Start() // restarts a running broker
	if !acceptsTCP(m.Addr()) {
		t.Fatalf("no TCP connection to %s after Start\n%s", m.Addr(), m.Logs())
	}
}

func TestMosquittoPasswordFileAndReload(t *testing.T) {
	passwd, err := exec.LookPath("mosquitto_passwd")
	if err != nil {
		Need(t, "mosquitto_passwd (Debian package mosquitto)", err)
	}
	file := filepath.Join(t.TempDir(), "passwd")
	addUser := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(passwd, args...).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd %v: %v\n%s", args, err, out)
		}
	}
	addUser("-c", "-b", file, "alice", "secret-a")
	m := StartMosquitto(t, MosquittoConfig{PasswordFile: file, Extra: "# extra line"})

	const ok, notAuthorized = 0, 5
	if rc := mqttConnect(t, m.Addr(), "alice", "secret-a"); rc != ok {
		t.Fatalf("alice: return code %d, want %d\n%s", rc, ok, m.Logs())
	}
	if rc := mqttConnect(t, m.Addr(), "", ""); rc != notAuthorized {
		t.Fatalf("anonymous: return code %d, want %d\n%s", rc, notAuthorized, m.Logs())
	}
	if rc := mqttConnect(t, m.Addr(), "bob", "secret-b"); rc != notAuthorized {
		t.Fatalf("bob before reload: return code %d, want %d\n%s", rc, notAuthorized, m.Logs())
	}

	addUser("-b", file, "bob", "secret-b")
	m.Reload()
	// No wait: Reload returns only once mosquitto has reloaded.
	if rc := mqttConnect(t, m.Addr(), "bob", "secret-b"); rc != ok {
		t.Fatalf("bob after reload: return code %d, want %d\n%s", rc, ok, m.Logs())
	}
	conf, err := os.ReadFile(m.ConfigFile())
	if err != nil || !containsLine(string(conf), "# extra line") || !containsLine(string(conf), "allow_anonymous false") {
		t.Fatalf("config (%v):\n%s", err, conf)
	}
}

func containsLine(text, line string) bool {
	return slices.Contains(strings.Split(text, "\n"), line)
}

// mqttConnect sends an MQTT 3.1.1 CONNECT (with credentials if user is set)
// and returns the CONNACK return code.
func mqttConnect(t *testing.T, addr, user, pass string) byte {
	t.Helper()
	str := func(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }
	flags := byte(0x02) // clean session
	payload := str("testenv-probe")
	if user != "" {
		flags |= 0x80 | 0x40
		payload = append(append(payload, str(user)...), str(pass)...)
	}
	body := append(append(str("MQTT"), 4, flags, 0, 30), payload...)
	if len(body) > 127 {
		t.Fatalf("CONNECT too long for a one-byte length: %d", len(body))
	}
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write(append([]byte{0x10, byte(len(body))}, body...)); err != nil {
		t.Fatalf("write CONNECT: %v", err)
	}
	ack := make([]byte, 4)
	if _, err := io.ReadFull(conn, ack); err != nil {
		t.Fatalf("read CONNACK: %v", err)
	}
	if ack[0] != 0x20 || ack[1] != 2 {
		t.Fatalf("not a CONNACK: % x", ack)
	}
	return ack[3]
}
