package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"devicehooks/internal/testenv"
)

// A real devicehooks server (built from cmd/devicehooks, run as its own
// process) with its embedded broker and a temp SQLite database: for what only
// the server can tell, such as the state of a dispatch's command.

const adminToken = "example-player-test-admin-token-0123456789"

type server struct {
	t        *testing.T
	base     string // http://127.0.0.1:PORT
	mqttAddr string
	log      *testenv.Buffer
}

func startServer(t *testing.T) *server {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "devicehooks")
	if out, err := exec.Command("go", "build", "-o", bin, "devicehooks/cmd/devicehooks").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	httpAddr, mqttAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	s := &server{t: t, base: "http://" + httpAddr, mqttAddr: mqttAddr, log: &testenv.Buffer{}}
	cmd := exec.Command(bin, "serve", "--http-addr", httpAddr, "--mqtt-listen", mqttAddr, "--mqtt-ws-listen", "",
		"--db", filepath.Join(dir, "devicehooks.db"), "--secret-file", filepath.Join(dir, "secret"),
		"--admin-token", adminToken, "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("server log:\n%s", s.log)
		}
	})
	testenv.WaitFor(t, 20*time.Second, "devicehooks answers /healthz", func() bool {
		resp, err := http.Get(s.base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return s
}

// call sends a JSON request with the admin token (or the API key, for the
// webhook) and returns the decoded answer, failing the test on another status.
func (s *server) call(want int, method, path string, body any, header ...string) map[string]any {
	s.t.Helper()
	b, _ := json.Marshal(body)
	req, err := http.NewRequest(method, s.base+path, bytes.NewReader(b))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+adminToken)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	if resp.StatusCode != want {
		s.t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, raw)
	}
	return out
}

// createDevice registers the device and returns its token.
func (s *server) createDevice(id string) string {
	s.t.Helper()
	return s.call(http.StatusCreated, "POST", "/api/v1/devices", map[string]any{"id": id, "name": "Screen " + id})["token"].(string)
}

// createAction creates an action for one device and returns its event id.
func (s *server) createAction(function, deviceID string) string {
	s.t.Helper()
	return s.call(http.StatusCreated, "POST", "/api/v1/actions", map[string]any{
		"name": "test " + function, "function": function, "target": map[string]any{"type": "device", "id": deviceID},
	})["event_id"].(string)
}

// trigger calls the webhook with a new API key and returns the dispatch id.
func (s *server) trigger(event string) string {
	s.t.Helper()
	key := s.call(http.StatusCreated, "POST", "/api/v1/api-keys", map[string]any{"name": "k " + event})["key"].(string)
	return s.call(http.StatusOK, "POST", "/public-api/integration/webhooks", map[string]any{"event_id": event},
		"x-webhook-apikey", key)["dispatch_id"].(string)
}

// waitCommandState waits until the dispatch's (single) command is in state.
func (s *server) waitCommandState(dispatchID, state string) {
	s.t.Helper()
	testenv.WaitFor(s.t, wait, "the command of dispatch "+dispatchID+" "+state, func() bool {
		cmds, _ := s.call(http.StatusOK, "GET", "/api/v1/dispatches/"+dispatchID, nil)["commands"].([]any)
		return len(cmds) == 1 && cmds[0].(map[string]any)["state"] == state
	})
}

// waitOnline waits until the server shows the device online (or offline).
func (s *server) waitOnline(deviceID string, online bool) {
	s.t.Helper()
	testenv.WaitFor(s.t, wait, fmt.Sprintf("device %s online: %t", deviceID, online), func() bool {
		return s.call(http.StatusOK, "GET", "/api/v1/devices/"+deviceID, nil)["online"] == online
	})
}
