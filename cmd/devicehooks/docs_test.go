package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"devicehooks/internal/testenv"
)

// TestReadmeListsEveryFlag keeps the README's configuration table in step with
// the flags: each flag and its environment variable must be there.
func TestReadmeListsEveryFlag(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var c Config
	serveFlags(&c, io.Discard).VisitAll(func(f *flag.Flag) {
		env := envName(f.Name)
		if !strings.Contains(string(readme), "| `--"+f.Name+"` | `"+env+"` |") {
			t.Errorf("README.md's configuration table lacks --%s (%s)", f.Name, env)
		}
	})
}

// TestOperationsListsEveryMetric keeps operations.md's metrics table in step
// with what /metrics serves.
func TestOperationsListsEveryMetric(t *testing.T) {
	ops, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, Config{})
	names := regexp.MustCompile(`(?m)^# HELP (devicehooks_\w+) `).FindAllStringSubmatch(s.metricsText(), -1)
	if len(names) < 10 {
		t.Fatalf("only %d devicehooks metrics served", len(names))
	}
	for _, n := range names {
		if !regexp.MustCompile("(?m)^\\| [^|]*`" + n[1] + "[`{]").Match(ops) { // in a row's first column
			t.Errorf("operations.md's metrics table lacks %s", n[1])
		}
	}
}

// The example systemd unit and its environment file name only real settings,
// systemd takes the unit without a complaint, and its security analysis rates
// it OK. (examples/systemd/check.sh runs it under systemd.)
func TestSystemdExample(t *testing.T) {
	unit, err := os.ReadFile("../../examples/systemd/devicehooks.service")
	if err != nil {
		t.Fatal(err)
	}
	env, err := os.ReadFile("../../examples/systemd/devicehooks.env")
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	var c Config
	serveFlags(&c, io.Discard).VisitAll(func(f *flag.Flag) { known[envName(f.Name)] = true })
	for _, name := range regexp.MustCompile(`DEVICEHOOKS_[A-Z_]+`).FindAllString(string(unit)+string(env), -1) {
		if !known[name] {
			t.Errorf("the systemd example names %s, which is no setting of devicehooks serve", name)
		}
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		testenv.Need(t, "systemd-analyze (Debian: systemd)", err)
	}
	// verify checks that ExecStart's program exists: this test's own stands in.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	const execStart = "ExecStart=/usr/local/bin/devicehooks serve"
	if !strings.Contains(string(unit), execStart) {
		t.Fatalf("the unit has no %q", execStart)
	}
	path := filepath.Join(t.TempDir(), "devicehooks.service")
	if err := os.WriteFile(path, []byte(strings.Replace(string(unit), execStart, "ExecStart="+exe+" serve", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	// Complaints about this unit, not about the machine's others it names.
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "devicehooks.service") {
			t.Errorf("systemd-analyze verify: %s", line)
		}
	}
	if err != nil {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err = exec.Command(analyze, "security", "--offline=true", "--no-pager", path).CombinedOutput()
	if err != nil && strings.Contains(string(out), "--offline") {
		testenv.Need(t, "systemd-analyze security --offline (systemd 250 or later)", fmt.Errorf("%v: %s", err, out))
	}
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for devicehooks.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security gave no exposure level:\n%s", out)
	}
	if level, err := strconv.ParseFloat(string(m[1]), 64); err != nil || level > 2.0 {
		t.Errorf("systemd-analyze security: exposure %s, want at most 2.0\n%s", m[1], out)
	}
}

// operations.md's Mosquitto configuration is docs/mosquitto.conf, line for
// line (TestRecipeBrokerKeepsEveryAckOfABurst runs the file's limits).
func TestOperationsShowsTheMosquittoConf(t *testing.T) {
	conf, err := os.ReadFile("../../docs/mosquitto.conf")
	if err != nil {
		t.Fatal(err)
	}
	ops, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	want.WriteString("   ```\n")
	for _, line := range strings.Split(string(conf), "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			want.WriteString("   " + line + "\n")
		}
	}
	want.WriteString("   ```\n")
	if !strings.Contains(string(ops), want.String()) {
		t.Errorf("operations.md does not show docs/mosquitto.conf's settings as one block:\n%s", want.String())
	}
}
