//go:build linux

package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"devicehooks/internal/testenv"
)

// serve runs with gcshrinkstackoff=1 unless the operator's GODEBUG says otherwise;
// the rest of GODEBUG is kept.
func TestServeSetsRuntimeGODEBUG(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short (testing.Short): builds the binary")
	}
	bin := buildBinary(t)
	for _, tc := range []struct{ env, want string }{
		{"", "GODEBUG=gcshrinkstackoff=1"},
		{"GODEBUG=http2debug=0", "GODEBUG=http2debug=0,gcshrinkstackoff=1"},
		{"GODEBUG=gcshrinkstackoff=0", "GODEBUG=gcshrinkstackoff=0"},
	} {
		dir := t.TempDir()
		logf, err := os.Create(filepath.Join(dir, "server.log"))
		if err != nil {
			t.Fatal(err)
		}
		addr := testenv.FreeAddr(t)
		p := &proc{t: t, bin: bin, log: logf, base: "http://" + addr, args: []string{"serve",
			"--http-addr", addr, "--db", filepath.Join(dir, "dh.db"), "--admin-token", testAdminToken,
			"--secret-file", filepath.Join(dir, "secret"), "--log-level", "warn",
			"--mqtt-listen", testenv.FreeAddr(t), "--mqtt-ws-listen", "",
		}}
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "GODEBUG=") {
				p.env = append(p.env, kv)
			}
		}
		if tc.env != "" {
			p.env = append(p.env, tc.env)
		}
		p.start()
		raw, err := os.ReadFile("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/environ")
		p.kill()
		logf.Close()
		if err != nil {
			t.Fatal(err)
		}
		var godebug string
		for _, kv := range strings.Split(string(raw), "\x00") {
			if strings.HasPrefix(kv, "GODEBUG=") {
				godebug = kv
			}
		}
		if godebug != tc.want {
			t.Errorf("started with %q: the server runs with %q, want %q", tc.env, godebug, tc.want)
		}
	}
}
