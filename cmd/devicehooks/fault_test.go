package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"devicehooks/internal/testenv"
)

// proc is the devicehooks binary running as a child process, so it can be killed
// with SIGKILL like a crash.
type proc struct {
	t    *testing.T
	bin  string
	args []string
	log  *os.File
	cmd  *exec.Cmd
	base string
	env  []string // the environment, if not this process's
}

func (p *proc) start() {
	p.t.Helper()
	p.cmd = exec.Command(p.bin, p.args...)
	p.cmd.Stdout, p.cmd.Stderr, p.cmd.Env = p.log, p.log, p.env
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	testenv.WaitFor(p.t, 20*time.Second, "devicehooks answers /healthz", func() bool {
		resp, err := http.Get(p.base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	_, _ = p.cmd.Process.Wait()
}

func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "devicehooks")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestNothingAcceptedIsLost fires 2,000 triggers while the broker is killed and
// restarted and devicehooks itself is killed with SIGKILL and restarted: every
// trigger that got a 200 reaches the player, and no dispatch is half written.
func TestNothingAcceptedIsLost(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short (testing.Short): the fault test runs in make test")
	}
	m := startRecipeBroker(t)
	dir := t.TempDir()
	logf, _ := os.Create(filepath.Join(dir, "server.log"))
	defer logf.Close()
	addr := testenv.FreeAddr(t)
	db := filepath.Join(dir, "dh.db")
	p := &proc{t: t, bin: buildBinary(t), log: logf, base: "http://" + addr, args: append([]string{"serve",
		"--http-addr", addr, "--db", db, "--admin-token", testAdminToken,
		"--secret-file", filepath.Join(dir, "secret"), "--log-level", "warn",
	}, m.serverFlags()...)}
	p.start()
	defer p.kill()
	s := &server{t: t, base: p.base}
	s.afterDevice = func() { m.sync(db) }
	token := s.createDevice("fault-1")
	_, key := s.createKey("k")
	ev := s.createAction("refresh_content", map[string]any{"type": "device", "id": "fault-1"}, nil)

	var (
		mu       sync.Mutex
		received = map[string]int{} // dispatch id -> commands received
	)
	player := connectPlayer(t, m.URL(), "devicehooks", "fault-1", token)
	go func() {
		for raw := range player.raw {
			mu.Lock()
			received[jsonField(raw, "dispatch_id")]++
			mu.Unlock()
			// Best effort: while the broker is down the ack is lost and the
			// command is sent again later (at least once; counted as a duplicate).
			player.client.Publish("devicehooks/devices/fault-1/acks", 1, false,
				`{"id":"`+jsonField(raw, "id")+`","status":"succeeded"}`)
		}
	}()
	go func() { // connectPlayer's typed channel is not used here
		for range player.cmds {
		}
	}()
	testenv.WaitFor(t, 10*time.Second, "the player's online status reaches devicehooks", func() bool {
		return s.mustCall(http.StatusOK, "GET", "/api/v1/devices/fault-1", nil)["online"] == true
	})

	const total = 2000
	var (
		fired    atomic.Int64
		accepted sync.Map // dispatch id -> true
		nAcc     atomic.Int64
		wg       sync.WaitGroup
	)
	client := &http.Client{Timeout: 10 * time.Second}
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for fired.Add(1) <= total {
				req, _ := http.NewRequest("POST", p.base+"/public-api/integration/webhooks", strings.NewReader(`{"event_id":"`+ev+`"}`))
				req.Header.Set("x-webhook-apikey", key)
				resp, err := client.Do(req)
				if err != nil {
					time.Sleep(20 * time.Millisecond) // devicehooks is down
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					accepted.Store(jsonField(body, "dispatch_id"), true)
					nAcc.Add(1)
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	chaos := []struct {
		at   int64
		what string
		do   func()
	}{
		{300, "kill the broker", func() { m.Kill(); time.Sleep(300 * time.Millisecond); m.Start() }},
		{800, "SIGKILL devicehooks", func() { p.kill(); time.Sleep(300 * time.Millisecond); p.start() }},
		{1200, "restart the broker", func() { m.Stop(); time.Sleep(300 * time.Millisecond); m.Start() }},
		{1600, "SIGKILL devicehooks and the broker", func() {
			p.kill()
			m.Kill()
			time.Sleep(300 * time.Millisecond)
			m.Start()
			p.start()
		}},
	}
	for _, c := range chaos {
		for fired.Load() < c.at {
			time.Sleep(5 * time.Millisecond)
		}
		t.Logf("after %d triggers: %s", fired.Load(), c.what)
		c.do()
	}
	wg.Wait()

	var missing []string
	deadline := time.Now().Add(60 * time.Second)
	for {
		missing = missing[:0]
		mu.Lock()
		accepted.Range(func(k, _ any) bool {
			if received[k.(string)] == 0 {
				missing = append(missing, k.(string))
			}
			return true
		})
		mu.Unlock()
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	mu.Lock()
	dups := 0
	for _, n := range received {
		dups += n - 1
	}
	delivered := len(received)
	mu.Unlock()
	t.Logf("accepted %d, delivered %d distinct (including triggers whose 200 was lost to a kill), duplicates %d", nAcc.Load(), delivered, dups)
	if len(missing) > 0 {
		log, _ := os.ReadFile(logf.Name())
		t.Fatalf("%d accepted triggers never reached the player, e.g. %v\nserver log:\n%s", len(missing), missing[:min(5, len(missing))], tail(log, 4000))
	}
	if nAcc.Load() < total/2 {
		t.Fatalf("only %d of %d triggers were accepted", nAcc.Load(), total)
	}

	// Nothing half written: every stored dispatch has its one command.
	for offset := 0; ; offset += 500 {
		out := s.mustCall(200, "GET", fmt.Sprintf("/api/v1/dispatches?limit=500&offset=%d", offset), nil)
		items := out["items"].([]any)
		for _, it := range items {
			d := it.(map[string]any)
			sum := 0.0
			for _, n := range d["counts"].(map[string]any) {
				sum += n.(float64)
			}
			if sum != d["targets"].(float64) {
				t.Fatalf("dispatch %v has %v commands for %v targets", d["id"], sum, d["targets"])
			}
		}
		if len(items) < 500 {
			break
		}
	}
}

func jsonField(raw []byte, name string) string {
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	s, _ := m[name].(string)
	return s
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(bytes.TrimSpace(b))
}

// TestSignalsStopGracefully: SIGTERM, SIGINT and SIGHUP (a closed terminal)
// each stop the server the same way: it logs, closes, and exits 0.
func TestSignalsStopGracefully(t *testing.T) {
	bin := buildBinary(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			logf, err := os.Create(filepath.Join(dir, "server.log"))
			if err != nil {
				t.Fatal(err)
			}
			defer logf.Close()
			addr := testenv.FreeAddr(t)
			p := &proc{t: t, bin: bin, log: logf, base: "http://" + addr, args: []string{"serve",
				"--db", filepath.Join(dir, "dh.db"), "--http-addr", addr, "--mqtt-listen", "127.0.0.1:0", "--mqtt-ws-listen="}}
			p.start()
			if err := p.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- p.cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("exit after %v: %v", sig, err)
				}
			case <-time.After(20 * time.Second):
				p.kill()
				t.Fatalf("still running 20 s after %v", sig)
			}
			logs, _ := os.ReadFile(logf.Name())
			for _, want := range []string{`msg="devicehooks serving" version=`, "shutting down", "msg=stopped"} {
				if !strings.Contains(string(logs), want) {
					t.Fatalf("the log lacks %q:\n%s", want, logs)
				}
			}
		})
	}
}
