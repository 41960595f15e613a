package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// mosquitto is a Mosquitto broker the benchmark runs on a free loopback port.
type mosquitto struct {
	proc    *process
	addr    string
	version string
}

// findMosquitto returns the mosquitto binary, or "".
func findMosquitto() string {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/mosquitto"); err == nil {
		return "/usr/sbin/mosquitto"
	}
	return ""
}

// mosquittoConf is the broker's configuration for the benchmark: anonymous
// loopback clients (players present their device token as a password, which
// Mosquitto without a password file ignores), no persistence, Nagle off (the
// embedded broker's Go sockets have it off too), and queues deep enough for a
// fan-out to every player and a burst to one player.
const mosquittoConf = `listener %s 127.0.0.1
allow_anonymous true
persistence false
set_tcp_nodelay true
max_inflight_messages 1000
max_queued_messages 100000
max_connections -1
log_dest file %s
log_type error
log_type warning
%s`

// startMosquitto writes a config into dir and starts mosquitto on a free port.
func startMosquitto(ctx context.Context, bin, dir string) (*mosquitto, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	_, port, _ := strings.Cut(addr, ":")
	user := ""
	if os.Geteuid() == 0 {
		user = "user root\n" // else it switches to user mosquitto, who cannot read dir
	}
	conf := filepath.Join(dir, "mosquitto.conf")
	content := fmt.Sprintf(mosquittoConf, port, filepath.Join(dir, "mosquitto.log"), user)
	if err := os.WriteFile(conf, []byte(content), 0o600); err != nil {
		return nil, err
	}
	m := &mosquitto{addr: addr}
	if out, _ := exec.CommandContext(ctx, bin, "-h").CombinedOutput(); len(out) > 0 {
		m.version, _, _ = strings.Cut(string(out), "\n")
	}
	if m.proc, err = startProcess("mosquitto", filepath.Join(dir, "mosquitto.out"), bin, "-c", conf); err != nil {
		return nil, err
	}
	if err := waitTCP(ctx, m.proc, addr, 10*time.Second); err != nil {
		m.stop()
		return nil, err
	}
	return m, nil
}

// url is the broker URL for MQTT clients.
func (m *mosquitto) url() string { return "tcp://" + m.addr }

// stop ends mosquitto.
func (m *mosquitto) stop() {
	if m != nil && m.proc != nil {
		m.proc.stop(5 * time.Second)
	}
}
