package main

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"devicehooks/internal/testenv"
	"devicehooks/secrets"
	"devicehooks/simulator"
)

const serverMQTTPassword = "server-password-for-the-test-broker"

// recipeBroker is a Mosquitto that admits devices only through the password
// file and ACL of docs/ (the documented recipe), with an account for devicehooks.
type recipeBroker struct {
	*testenv.Mosquitto
	t            testing.TB
	passwd       string
	serverPasswd string
}

func startRecipeBroker(t testing.TB) *recipeBroker {
	t.Helper()
	dir := t.TempDir()
	rb := &recipeBroker{t: t, passwd: filepath.Join(dir, "mosquitto.passwd"), serverPasswd: filepath.Join(dir, "server.passwd")}
	line := []byte("devicehooks:" + secrets.MosquittoHash(serverMQTTPassword) + "\n")
	os.WriteFile(rb.serverPasswd, line, 0o600)
	os.WriteFile(rb.passwd, line, 0o600)
	acl, err := os.ReadFile("../../docs/mosquitto.acl")
	if err != nil {
		t.Fatal(err)
	}
	aclFile := filepath.Join(dir, "mosquitto.acl")
	os.WriteFile(aclFile, acl, 0o600)
	rb.Mosquitto = testenv.StartMosquitto(t, testenv.MosquittoConfig{PasswordFile: rb.passwd, ACLFile: aclFile})
	return rb
}

// sync exports the devices of the database the documented way
// (devicehooks mosquitto-passwd --include) and reloads Mosquitto.
func (rb *recipeBroker) sync(dsn string) {
	rb.t.Helper()
	var out strings.Builder
	include, err := os.Open(rb.serverPasswd)
	if err != nil {
		rb.t.Fatal(err)
	}
	defer include.Close()
	if err := writeMosquittoPasswd(context.Background(), dsn, include, rb.serverPasswd, &out); err != nil {
		rb.t.Fatal(err)
	}
	if err := os.WriteFile(rb.passwd, []byte(out.String()), 0o600); err != nil {
		rb.t.Fatal(err)
	}
	rb.Reload()
}

// A device id that is also a user of the --include file fails the export
// with nothing written: its output may go straight to the live file.
func TestMosquittoPasswdWritesNothingWhenItFails(t *testing.T) {
	s := startServer(t, Config{})
	for i := range 60 { // more than a buffer's 4 KiB of lines before the clash
		s.createDevice(fmt.Sprintf("lobby-%02d", i))
	}
	include := filepath.Join(t.TempDir(), "server.passwd")
	os.WriteFile(include, []byte("lobby-59:"+secrets.MosquittoHash(serverMQTTPassword)+"\n"), 0o600)
	var out, notes strings.Builder
	if rc := runMosquittoPasswd(context.Background(), []string{"--db", s.cfg.DB, "--include", include}, &out, &notes); rc != 1 ||
		!strings.Contains(notes.String(), `device id "lobby-59" is also a user in`) || out.Len() > 0 {
		t.Fatalf("exit %d, wrote %d bytes, said %q", rc, out.Len(), notes.String())
	}
}

// An export from a database without devicehooks' tables (before the first
// start, or the wrong database) fails and says why: a file without the devices
// must never replace the live one. Its output is not to be used.
func TestMosquittoPasswdRefusesADatabaseWithoutTables(t *testing.T) {
	dir := t.TempDir()
	include := filepath.Join(dir, "server.passwd")
	os.WriteFile(include, []byte("devicehooks:"+secrets.MosquittoHash(serverMQTTPassword)+"\n"), 0o600)
	empty, other := filepath.Join(dir, "empty.db"), filepath.Join(dir, "other.db")
	os.WriteFile(empty, nil, 0o600)
	db, err := sql.Open("sqlite3", other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE t (x)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	check := func(t *testing.T, dsn string) {
		var out, notes strings.Builder
		if rc := runMosquittoPasswd(context.Background(), []string{"--db", dsn, "--include", include}, &out, &notes); rc != 1 ||
			!strings.Contains(notes.String(), "no devicehooks tables") || !strings.Contains(notes.String(), "--include file alone") {
			t.Errorf("exit %d, said %q", rc, notes.String())
		}
	}
	t.Run("sqlite, empty", func(t *testing.T) { check(t, empty) })
	t.Run("sqlite, another database", func(t *testing.T) { check(t, other) })
	t.Run("postgres, empty", func(t *testing.T) { check(t, testenv.Postgres(t)) })
}

// serverFlags are the serve flags that log in to this broker.
func (rb *recipeBroker) serverFlags() []string {
	return []string{"--mqtt-url", rb.URL(), "--mqtt-username", "devicehooks", "--mqtt-password", serverMQTTPassword}
}

// startMosquittoWithRecipe starts a recipe broker and a devicehooks logged in to
// it; every device the test creates is exported to Mosquitto at once.
func startMosquittoWithRecipe(t *testing.T, cfg Config) (*server, *recipeBroker, func()) {
	t.Helper()
	rb := startRecipeBroker(t)
	cfg.MQTTURL, cfg.MQTTUsername, cfg.MQTTPassword = rb.URL(), "devicehooks", serverMQTTPassword
	s := startServer(t, cfg)
	testenv.WaitFor(t, 10*time.Second, "devicehooks logged in to mosquitto", s.app.brokerConnected)
	sync := func() { rb.sync(s.cfg.DB) }
	s.afterDevice = sync
	return s, rb, sync
}

// transport is a way players reach the broker.
type transport struct {
	name  string
	start func(t *testing.T) (s *server, url string, sync func())
}

var transports = []transport{
	{"embedded tcp", func(t *testing.T) (*server, string, func()) {
		s := startServer(t, Config{})
		return s, s.mqttURL(), func() {}
	}},
	{"embedded websocket", func(t *testing.T) (*server, string, func()) {
		s := startServer(t, Config{MQTTWSListen: "127.0.0.1:0"})
		return s, "ws://" + s.app.embedded.WSAddr() + "/mqtt", func() {}
	}},
	{"mosquitto recipe", func(t *testing.T) (*server, string, func()) {
		s, _, sync := startMosquittoWithRecipe(t, Config{})
		return s, s.cfg.MQTTURL, sync
	}},
}

// dial connects a raw client and returns it, or the connect error.
func dial(url, user, pass string) (paho.Client, error) {
	opts := paho.NewClientOptions().AddBroker(url).SetClientID("raw-" + secrets.RandomString(6)).
		SetUsername(user).SetPassword(pass).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
	c := paho.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, fmt.Errorf("connect timed out")
	}
	return c, tok.Error()
}

func TestDeviceAuthAndACL(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			s, url, sync := tr.start(t)
			tokA, tokB := s.createDevice("dev-a"), s.createDevice("dev-b")
			sync()
			_, key := s.createKey("k")
			evB := s.createAction("refresh_content", map[string]any{"type": "device", "id": "dev-b"}, nil)

			if _, err := dial(url, "dev-a", tokB); err == nil {
				t.Fatal("a device logged in with another device's token")
			}
			if _, err := dial(url, "dev-a", "dhd_wrong"); err == nil {
				t.Fatal("a wrong token was accepted")
			}
			if _, err := dial(url, "", ""); err == nil {
				t.Fatal("an anonymous client was accepted")
			}

			a, err := dial(url, "dev-a", tokA)
			if err != nil {
				t.Fatalf("dev-a with its own token: %v", err)
			}
			defer a.Disconnect(50)
			var stolen atomic.Int32
			sub := a.Subscribe("devicehooks/devices/dev-b/commands", 1, func(paho.Client, paho.Message) { stolen.Add(1) })
			sub.WaitTimeout(5 * time.Second)
			if q := sub.(*paho.SubscribeToken).Result()["devicehooks/devices/dev-b/commands"]; q != 0x80 {
				t.Logf("broker granted qos %d for another device's commands (it must still deliver nothing)", q)
			}
			// Wildcards: the embedded broker refuses them; Mosquitto grants
			// them and delivers only dev-a's own messages (players.md).
			wild := map[string]byte{"devicehooks/devices/+/commands": 1, "devicehooks/devices/#": 1}
			sub = a.SubscribeMultiple(wild, func(_ paho.Client, m paho.Message) {
				if !strings.HasPrefix(m.Topic(), "devicehooks/devices/dev-a/") {
					stolen.Add(1)
				}
			})
			sub.WaitTimeout(5 * time.Second)
			for topic, q := range sub.(*paho.SubscribeToken).Result() {
				if q != 0x80 && tr.name != "mosquitto recipe" {
					t.Errorf("the embedded broker granted qos %d for %s", q, topic)
				}
			}
			// dev-b receives its command; dev-a sees nothing of it.
			b := connectPlayer(t, url, "devicehooks", "dev-b", tokB)
			s.waitOnline("dev-b")
			status, ans := s.post(key, `{"event_id":"`+evB+`"}`)
			if status != http.StatusOK {
				t.Fatal(status, ans)
			}
			cmd := b.next(10 * time.Second)
			// dev-a may not ack dev-b's command, on dev-b's topic or on its own.
			a.Publish("devicehooks/devices/dev-b/acks", 1, false, `{"id":"`+cmd["id"].(string)+`","status":"failed"}`).WaitTimeout(2 * time.Second)
			if a2, err := dial(url, "dev-a", tokA); err == nil {
				a2.Publish("devicehooks/devices/dev-a/acks", 1, false, `{"id":"`+cmd["id"].(string)+`","status":"failed"}`).WaitTimeout(2 * time.Second)
				// Nor publish commands, even to itself.
				a2.Publish("devicehooks/devices/dev-b/commands", 1, false, `{"id":"forged","function":"restart"}`).WaitTimeout(2 * time.Second)
				a2.Disconnect(50)
			}
			b.none(500 * time.Millisecond)
			if stolen.Load() != 0 {
				t.Fatal("dev-a received dev-b's command")
			}
			// Published, not failed: the mark may come after the command (a
			// writer round), but never changes a settled command, so a forged
			// ack taken would keep this from ever holding, and the real ack
			// below from counting.
			waitDispatch(t, s, ans["dispatch_id"].(string), map[string]float64{"published": 1})
			b.ack("devicehooks", cmd["id"].(string), "succeeded")
			waitDispatch(t, s, ans["dispatch_id"].(string), map[string]float64{"succeeded": 1})
		})
	}
}

// TestWillsObeyTheACL: a will is a message the broker publishes for the
// client. A device may set one only on a topic it may publish to (its status):
// a will on another device's commands or desired state would forge a command,
// or a retained emergency, for that device once the connection drops. The
// embedded broker refuses such a connection; Mosquitto may refuse it or drop
// the will. Either way the victim gets nothing.
func TestWillsObeyTheACL(t *testing.T) {
	const forged = `{"id":"forged","function":"load_url","params":{"url":"https://evil.example/"},"version":9007199254740991}`
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			s, brokerURL, sync := tr.start(t)
			tokA, tokB := s.createDevice("dev-a"), s.createDevice("dev-b")
			sync()
			got := make(chan string, 10)
			watch := func(c paho.Client) {
				for _, kind := range []string{"commands", "desired"} {
					c.Subscribe("devicehooks/devices/dev-b/"+kind, 1, func(_ paho.Client, m paho.Message) {
						if strings.Contains(string(m.Payload()), "forged") {
							got <- m.Topic()
						}
					}).WaitTimeout(5 * time.Second)
				}
			}
			victim, err := dial(brokerURL, "dev-b", tokB)
			if err != nil {
				t.Fatal(err)
			}
			defer victim.Disconnect(50)
			watch(victim)

			// connectWithWill connects as dev-a with a will on topic and, if
			// the broker takes it, drops the connection as a crash would (or,
			// with drop false, disconnects, which discards the will).
			connectWithWill := func(topic string, drop bool) (refused bool) {
				var conn net.Conn
				opts := paho.NewClientOptions().AddBroker(brokerURL).SetClientID("will-"+secrets.RandomString(6)).
					SetUsername("dev-a").SetPassword(tokA).SetAutoReconnect(false).SetConnectTimeout(5*time.Second).
					SetWill(topic, forged, 1, true)
				if addr, ok := strings.CutPrefix(brokerURL, "tcp://"); ok {
					opts.SetCustomOpenConnectionFn(func(*url.URL, paho.ClientOptions) (net.Conn, error) {
						nc, err := net.Dial("tcp", addr)
						conn = nc
						return nc, err
					})
				}
				c := paho.NewClient(opts)
				tok := c.Connect()
				if !tok.WaitTimeout(10 * time.Second) {
					t.Fatal("connect timed out")
				}
				if tok.Error() != nil {
					return true
				}
				if !drop {
					c.Disconnect(50)
					return false
				}
				if conn == nil {
					t.Fatalf("the broker took a will on %s (this test can drop only a TCP connection)", topic)
				}
				conn.Close()
				return false
			}
			for _, topic := range []string{"devicehooks/devices/dev-b/commands", "devicehooks/devices/dev-b/desired",
				"devicehooks/devices/dev-a/commands", "devicehooks/devices/dev-b/status", "devicehooks/devices/dev-a/acks"} {
				if !connectWithWill(topic, true) && tr.name != "mosquitto recipe" {
					t.Errorf("the embedded broker took a will on %s", topic)
				}
			}
			select {
			case topic := <-got:
				t.Fatalf("dev-a's will reached %s", topic)
			case <-time.After(time.Second):
			}
			// Nor was anything retained for dev-b's next connection.
			again, err := dial(brokerURL, "dev-b", tokB)
			if err != nil {
				t.Fatal(err)
			}
			defer again.Disconnect(50)
			watch(again)
			select {
			case topic := <-got:
				t.Fatalf("a forged message was retained on %s", topic)
			case <-time.After(500 * time.Millisecond):
			}
			if connectWithWill("devicehooks/devices/dev-a/status", false) {
				t.Error("dev-a was refused with a will on its own status")
			}
		})
	}
}

func TestAnonymousOnlyWithDevelopmentFlag(t *testing.T) {
	s := startServer(t, Config{MQTTAllowAnonymous: true})
	s.createDevice("dev-1")
	_, key := s.createKey("k")
	ev := s.createAction("restart", map[string]any{"type": "device", "id": "dev-1"}, nil)
	c, err := dial(s.mqttURL(), "", "")
	if err != nil {
		t.Fatalf("anonymous with --mqtt-allow-anonymous: %v", err)
	}
	defer c.Disconnect(50)
	// An anonymous player acts as the one device it names: it gets its commands...
	got := make(chan string, 10)
	c.Subscribe("devicehooks/devices/dev-1/commands", 1, func(_ paho.Client, m paho.Message) { got <- string(m.Payload()) }).WaitTimeout(5 * time.Second)
	s.waitOnline("dev-1")
	s.post(key, `{"event_id":"`+ev+`"}`)
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("the anonymous player got no command")
	}
	// ...but may not read every device's commands with a wildcard.
	sub := c.Subscribe("devicehooks/devices/+/commands", 1, func(paho.Client, paho.Message) {})
	sub.WaitTimeout(5 * time.Second)
	if q := sub.(*paho.SubscribeToken).Result()["devicehooks/devices/+/commands"]; q != 0x80 {
		t.Fatalf("wildcard subscription granted (qos %d)", q)
	}
}

// TestClientIDTakeoverRefused: a device that connects with another device's client
// id gets its own session; the other device stays connected and online.
func TestClientIDTakeoverRefused(t *testing.T) {
	s := startServer(t, Config{})
	tokA, tokB := s.createDevice("dev-a"), s.createDevice("dev-b")
	_, key := s.createKey("k")
	ev := s.createAction("restart", map[string]any{"type": "device", "id": "dev-b"}, nil)
	b := connectPlayer(t, s.mqttURL(), "devicehooks", "dev-b", tokB) // client id "test-dev-b"
	s.waitOnline("dev-b")
	opts := paho.NewClientOptions().AddBroker(s.mqttURL()).SetClientID("test-dev-b").
		SetUsername("dev-a").SetPassword(tokA).SetAutoReconnect(false)
	a := paho.NewClient(opts)
	if tok := a.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("dev-a: %v", tok.Error())
	}
	defer a.Disconnect(50)
	time.Sleep(200 * time.Millisecond) // a takeover would close dev-b now
	if !s.app.presence.Online("dev-b") {
		t.Fatal("dev-b was knocked offline by another device reusing its client id")
	}
	s.post(key, `{"event_id":"`+ev+`"}`)
	b.next(5 * time.Second)
}

// waitDispatch waits until the dispatch's command counts are exactly want.
func waitDispatch(t *testing.T, s *server, id string, want map[string]float64) map[string]any {
	t.Helper()
	var d map[string]any
	testenv.WaitFor(t, 15*time.Second, fmt.Sprintf("dispatch %s reaches %v", id, want), func() bool {
		_, d = s.call("GET", "/api/v1/dispatches/"+id, nil)
		counts, _ := d["counts"].(map[string]any)
		if len(counts) != len(want) {
			return false
		}
		for k, v := range want {
			if counts[k] != v {
				return false
			}
		}
		return true
	})
	return d
}

// startSim runs simulated players, stopped at the end of the test.
func startSim(t *testing.T, s *server, cfg simulator.Config, creds ...simulator.Credentials) *simulator.Sim {
	t.Helper()
	cfg.BrokerURL, cfg.Players = s.mqttURL(), creds
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sim, err := simulator.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	return sim
}

func TestCommandLifecycle(t *testing.T) {
	s := startServer(t, Config{})
	ids := []string{"ok", "bad", "off"}
	creds := map[string]simulator.Credentials{}
	for _, id := range ids {
		creds[id] = simulator.Credentials{DeviceID: id, Token: s.createDevice(id)}
	}
	group := s.mustCall(http.StatusCreated, "POST", "/api/v1/groups", map[string]any{"name": "mixed", "device_ids": ids})
	_, key := s.createKey("k")
	ev := s.createAction("refresh_content", map[string]any{"type": "group", "id": group["id"]}, nil)

	startSim(t, s, simulator.Config{}, creds["ok"])
	startSim(t, s, simulator.Config{FailureRate: 1}, creds["bad"])
	s.waitOnline("ok", "bad")
	_, ans := s.post(key, `{"event_id":"`+ev+`"}`)
	id := ans["dispatch_id"].(string)
	d := waitDispatch(t, s, id, map[string]float64{"succeeded": 1, "failed": 1, "queued": 1})
	if d["status"] != "pending" {
		t.Fatalf("status %v", d["status"])
	}

	// The offline player connects before the TTL: it gets the command and acks it.
	off := startSim(t, s, simulator.Config{}, creds["off"])
	waitDispatch(t, s, id, map[string]float64{"succeeded": 2, "failed": 1})
	if st := off.Stats(); st.Commands != 1 {
		t.Fatalf("the late player got %d commands", st.Commands)
	}

	// A command whose TTL passes while its device is offline expires and is never delivered.
	lateTok := s.createDevice("late")
	short := s.mustCall(http.StatusCreated, "POST", "/api/v1/actions", map[string]any{
		"name": "short", "function": "restart", "target": map[string]any{"type": "device", "id": "late"}, "ttl_s": 1,
	})["event_id"].(string)
	_, ans = s.post(key, `{"event_id":"`+short+`"}`)
	waitDispatch(t, s, ans["dispatch_id"].(string), map[string]float64{"expired": 1})
	late := startSim(t, s, simulator.Config{}, simulator.Credentials{DeviceID: "late", Token: lateTok})
	s.waitOnline("late")
	time.Sleep(300 * time.Millisecond) // a window in which nothing may arrive
	if st := late.Stats(); st.Commands != 0 {
		t.Fatalf("an expired command was delivered (%d commands)", st.Commands)
	}
}

func TestWebhookWaitsForAcks(t *testing.T) {
	s := startServer(t, Config{})
	creds := simulator.Credentials{DeviceID: "w1", Token: s.createDevice("w1")}
	_, key := s.createKey("k")
	ev := s.createAction("restart", map[string]any{"type": "device", "id": "w1"}, nil)
	startSim(t, s, simulator.Config{AckDelay: 50 * time.Millisecond}, creds)
	s.waitOnline("w1")
	status, ans := s.post(key, `{"event_id":"`+ev+`"}`, "Prefer", "wait=5")
	cmds, _ := ans["commands"].([]any)
	if status != 200 || ans["settled"] != true || len(cmds) != 1 || cmds[0].(map[string]any)["state"] != "succeeded" {
		t.Fatalf("waited answer: %d %v", status, ans)
	}
	// Without a player the wait ends at its bound, unsettled.
	s.createDevice("w2")
	ev2 := s.createAction("restart", map[string]any{"type": "device", "id": "w2"}, nil)
	start := time.Now()
	_, ans = s.post(key, `{"event_id":"`+ev2+`"}`, "Prefer", "wait=0.3")
	if ans["settled"] != false || time.Since(start) > 5*time.Second {
		t.Fatalf("unsettled wait: %v", ans)
	}
	// A command that expires first ends the wait: expired is final.
	out := s.mustCall(http.StatusCreated, "POST", "/api/v1/actions", map[string]any{
		"name": "short", "function": "restart", "target": map[string]any{"type": "device", "id": "w2"}, "ttl_s": 1,
	})
	start = time.Now()
	_, ans = s.post(key, `{"event_id":"`+out["event_id"].(string)+`"}`, "Prefer", "wait=20")
	cmds, _ = ans["commands"].([]any)
	if ans["settled"] != true || len(cmds) != 1 || cmds[0].(map[string]any)["state"] != "expired" || time.Since(start) > 10*time.Second {
		t.Fatalf("wait past the command's expiry: %v after %v", ans, time.Since(start))
	}
	// With no devices to reach, there is nothing to wait for.
	s.mustCall(http.StatusCreated, "POST", "/api/v1/groups", map[string]any{"name": "empty"})
	groups := s.mustCall(http.StatusOK, "GET", "/api/v1/groups", nil)["items"].([]any)
	empty := s.createAction("restart", map[string]any{"type": "group", "id": groups[0].(map[string]any)["id"]}, nil)
	_, ans = s.post(key, `{"event_id":"`+empty+`"}`, "Prefer", "wait=5")
	if ans["settled"] != true || ans["targets"] != float64(0) {
		t.Fatalf("wait with no targets: %v", ans)
	}
}

// A browser that opened a link with ?wait= is told how it went, not that
// the command is queued: the outcome when every device has answered, and
// the devices that did not succeed, with their detail.
func TestWaitedLinkPageSaysHowItWent(t *testing.T) {
	s := startServer(t, Config{})
	failing := simulator.Credentials{DeviceID: "a", Token: s.createDevice("a")}
	s.createDevice("b") // offline
	_, key := s.createKey("k")
	toA := s.createAction("restart", map[string]any{"type": "device", "id": "a"}, nil)
	toAll := s.createAction("restart", map[string]any{"type": "all"}, nil)
	startSim(t, s, simulator.Config{FailureRate: 1}, failing)
	s.waitOnline("a")
	page := func(event, wait string) string {
		t.Helper()
		payload := base64.URLEncoding.EncodeToString([]byte(`{"event_id":"` + event + `"}`))
		req, _ := http.NewRequest("GET", s.base+"/public-api/integration/webhooks?api_key="+url.QueryEscape(key)+"&payload="+payload+"&wait="+wait, nil)
		req.Header.Set("Accept", "text/html")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		return string(body)
	}
	settled := page(toA, "5")
	// Its heading and colour say it failed: "Accepted" alone, in green, reads as done.
	for _, want := range []string{`<div class="err" id="accepted">`, "<h1>Accepted, but no device carried it out</h1>",
		"Every device has answered", `<strong id="outcome">1 failed</strong>`, `<li><code>a</code> failed`} {
		if !strings.Contains(settled, want) {
			t.Errorf("the settled page lacks %q:\n%s", want, settled)
		}
	}
	if strings.Contains(settled, "queued for delivery") {
		t.Errorf("the settled page says the command is queued:\n%s", settled)
	}
	// b is offline: the wait runs out whatever its length, and a's failure
	// is recorded well within it on a loaded machine.
	unsettled := page(toAll, "3")
	for _, want := range []string{`<div class="warn" id="accepted">`, "<h1>Accepted, but not every device carried it out</h1>",
		"Not every device had answered", "1 failed", "1 queued", `<li><code>b</code> queued`} {
		if !strings.Contains(unsettled, want) {
			t.Errorf("the unsettled page lacks %q:\n%s", want, unsettled)
		}
	}
	// With no device to wait for, it says so.
	s.mustCall(http.StatusCreated, "POST", "/api/v1/groups", map[string]any{"name": "empty"})
	group := s.mustCall(http.StatusOK, "GET", "/api/v1/groups", nil)["items"].([]any)[0].(map[string]any)["id"]
	if empty := page(s.createAction("restart", map[string]any{"type": "group", "id": group}, nil), "5"); !strings.Contains(empty, "It reached no device") ||
		!strings.Contains(empty, `<div class="ok" id="accepted">`) {
		t.Errorf("the page of a trigger to an empty group:\n%s", empty)
	}
	// Without ?wait= the page says what it always did, and with no device
	// that there was none.
	if plain := page(toA, "0"); !strings.Contains(plain, "queued for delivery") || strings.Contains(plain, "outcome") ||
		!strings.Contains(plain, `<div class="ok" id="accepted">`) {
		t.Errorf("the page without a wait:\n%s", plain)
	}
	if empty := page(s.createAction("restart", map[string]any{"type": "group", "id": group}, nil), "0"); !strings.Contains(empty, "It reached no device") ||
		strings.Contains(empty, "queued for delivery") {
		t.Errorf("the page of a trigger to an empty group, without a wait:\n%s", empty)
	}
}

func TestDesiredStateSurvivesReconnect(t *testing.T) {
	s := startServer(t, Config{})
	creds := simulator.Credentials{DeviceID: "e1", Token: s.createDevice("e1")}
	_, key := s.createKey("k")
	ev := s.createAction("set_emergency", map[string]any{"type": "all"}, map[string]any{"enabled": true, "message": "Evacuate"})
	sim := startSim(t, s, simulator.Config{}, creds)
	s.waitOnline("e1")
	_, ans := s.post(key, `{"event_id":"`+ev+`"}`)
	waitDispatch(t, s, ans["dispatch_id"].(string), map[string]float64{"succeeded": 1})
	testenv.WaitFor(t, 5*time.Second, "desired state applied", func() bool {
		return sim.Player("e1").Desired != nil
	})
	sim.Close()

	again := startSim(t, s, simulator.Config{}, creds)
	testenv.WaitFor(t, 5*time.Second, "retained desired state after reconnect", func() bool {
		st := again.Player("e1")
		return st.Desired != nil && st.Desired.Emergency.Enabled && st.Desired.Emergency.Message == "Evacuate" && st.Desired.Version == 1
	})
	time.Sleep(300 * time.Millisecond) // a window in which no old command may arrive
	if st := again.Stats(); st.Commands != 0 {
		t.Fatalf("the acked set_emergency command was sent again (%d commands)", st.Commands)
	}
	dev := s.mustCall(http.StatusOK, "GET", "/api/v1/devices/e1", nil)
	if dev["desired"].(map[string]any)["emergency"].(map[string]any)["enabled"] != true {
		t.Fatalf("device desired state: %v", dev["desired"])
	}
}

func TestPresence(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			s, url, sync := tr.start(t)
			creds := simulator.Credentials{DeviceID: "p1", Token: s.createDevice("p1")}
			sync()
			online := func() bool {
				_, d := s.call("GET", "/api/v1/devices/p1", nil)
				return d["online"] == true
			}
			offline := func() bool { return !online() }
			start := func() *simulator.Sim {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				sim, err := simulator.Start(ctx, simulator.Config{BrokerURL: url, Players: []simulator.Credentials{creds}})
				if err != nil {
					t.Fatal(err)
				}
				return sim
			}
			sim := start()
			testenv.WaitFor(t, 10*time.Second, "online after connect", online)
			sim.Close()
			testenv.WaitFor(t, 10*time.Second, "offline after a clean disconnect", offline)
			sim = start()
			testenv.WaitFor(t, 10*time.Second, "online again", online)
			sim.Drop("p1")
			testenv.WaitFor(t, 20*time.Second, "offline after an abrupt drop", offline)
			sim.Close()
			_, d := s.call("GET", "/api/v1/devices/p1", nil)
			if d["last_seen"] == nil {
				t.Fatal("last_seen not recorded")
			}
		})
	}
}

// TestDeletedDeviceLeavesNoRetainedState: a device deleted and created again
// with the same id (new hardware in the same place) does not get the old
// device's retained desired state, such as an emergency.
func TestDeletedDeviceLeavesNoRetainedState(t *testing.T) {
	for _, tr := range transports {
		if tr.name == "embedded websocket" {
			continue // the same broker as embedded tcp
		}
		t.Run(tr.name, func(t *testing.T) {
			s, url, exportPasswords := tr.start(t)
			tok := s.createDevice("r1")
			exportPasswords()
			_, key := s.createKey("k")
			ev := s.createAction("set_emergency", map[string]any{"type": "all"}, map[string]any{"enabled": true, "message": "Evacuate"})
			if status, ans := s.post(key, `{"event_id":"`+ev+`"}`); status != http.StatusOK {
				t.Fatalf("trigger: %d %v", status, ans)
			}
			retained := func(token string) []string {
				c, err := dial(url, "r1", token)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Disconnect(0)
				var (
					mu  sync.Mutex
					out []string
				)
				c.Subscribe("devicehooks/devices/r1/desired", 1, func(_ paho.Client, m paho.Message) {
					mu.Lock()
					out = append(out, string(m.Payload()))
					mu.Unlock()
				}).WaitTimeout(5 * time.Second)
				time.Sleep(500 * time.Millisecond)
				mu.Lock()
				defer mu.Unlock()
				return slices.Clone(out)
			}
			testenv.WaitFor(t, 5*time.Second, "the emergency retained", func() bool { return len(retained(tok)) == 1 })
			s.mustCall(http.StatusNoContent, "DELETE", "/api/v1/devices/r1", nil)
			tok = s.createDevice("r1")
			exportPasswords()
			// The retained message is cleared by the delivery goroutine, after
			// the DELETE's answer; nothing publishes it again.
			testenv.WaitFor(t, 10*time.Second, "the deleted r1's desired state cleared", func() bool {
				return len(retained(tok)) == 0
			})
		})
	}
}

// TestDevicesStayOnlineAcrossARestart: with an external broker, players that
// stay connected while devicehooks restarts are online again as soon as the
// broker replays their retained status, the very message devicehooks had
// received live before, and get what is triggered next.
func TestDevicesStayOnlineAcrossARestart(t *testing.T) {
	s, _, _ := startMosquittoWithRecipe(t, Config{})
	p, key, eventID := setupLoadURL(t, s)
	s.restart()
	s.waitOnline("lobby-1")
	status, ans := s.post(key, `{"event_id":"`+eventID+`"}`)
	if status != http.StatusOK {
		t.Fatalf("trigger: %d %v", status, ans)
	}
	checkLoadURL(t, p.next(5*time.Second), ans)
}

// TestReconnectWithoutAWillGetsWhatItMissed: with an external broker, a player
// whose connection ended without its will reaching devicehooks (a clean
// DISCONNECT here; Mosquitto dropping it on a password change does the same)
// is still held online, so a command sent meanwhile goes to nobody. Its
// "online" when it connects again starts a new session, which gets the
// command again.
func TestReconnectWithoutAWillGetsWhatItMissed(t *testing.T) {
	s, m, tok := leftWithoutAWill(t, "rw1")
	_, key := s.createKey("k")
	ev := s.createAction("restart", map[string]any{"type": "device", "id": "rw1"}, nil)
	status, ans := s.post(key, `{"event_id":"`+ev+`"}`)
	if status != http.StatusOK {
		t.Fatalf("trigger: %d %v", status, ans)
	}
	waitDispatch(t, s, ans["dispatch_id"].(string), map[string]float64{"published": 1}) // to nobody

	again := connectPlayer(t, m.URL(), "devicehooks", "rw1", tok)
	if cmd := again.next(10 * time.Second); cmd["dispatch_id"] != ans["dispatch_id"] {
		t.Fatalf("after the reconnect: %v, want the command of dispatch %v", cmd, ans["dispatch_id"])
	}
}

// leftWithoutAWill starts devicehooks on the Mosquitto recipe with a device id
// whose player connected, came online, and then left with a clean DISCONNECT,
// which suppresses its will: devicehooks still holds it online.
func leftWithoutAWill(t *testing.T, id string) (*server, *recipeBroker, string) {
	t.Helper()
	s, m, sync := startMosquittoWithRecipe(t, Config{})
	tok := s.createDevice(id)
	sync()
	p := connectPlayer(t, m.URL(), "devicehooks", id, tok)
	s.waitOnline(id)
	p.client.Disconnect(50)
	return s, m, tok
}

// With an external broker, no device may take devicehooks' own username there:
// the broker's accounts are one list, and the export would refuse it.
func TestServersBrokerUsernameIsNoDeviceID(t *testing.T) {
	s, _, _ := startMosquittoWithRecipe(t, Config{})
	status, ans := s.call("POST", "/api/v1/devices", map[string]any{"id": "devicehooks"})
	wantError(t, "a device named as the server's broker account", status, ans, http.StatusUnprocessableEntity, "invalid_params")
	if f := ans["error"].(map[string]any)["field"]; f != "id" {
		t.Fatalf("field %v, want id", f)
	}
}

// TestStaleRetainedStatusIgnored replays an old retained "online" to a restarted
// devicehooks that knows the device went offline later: the old message loses.
func TestStaleRetainedStatusIgnored(t *testing.T) {
	s, m, tok := leftWithoutAWill(t, "st1")
	c, err := dial(m.URL(), "st1", tok)
	if err != nil {
		t.Fatal(err)
	}
	// Its will was not sent, so the device says it is offline itself, now.
	c.Publish("devicehooks/devices/st1/status", 1, true, `{"state":"offline","at":"`+time.Now().UTC().Format(time.RFC3339Nano)+`"}`).WaitTimeout(5 * time.Second)
	testenv.WaitFor(t, 10*time.Second, "offline", func() bool { return !s.app.presence.Online("st1") })
	s.stop()
	// While devicehooks is down, an old "online" becomes the retained message.
	old := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano)
	c.Publish("devicehooks/devices/st1/status", 1, true, `{"state":"online","at":"`+old+`"}`).WaitTimeout(5 * time.Second)
	c.Disconnect(50)
	s.start()
	testenv.WaitFor(t, 10*time.Second, "connected", s.app.brokerConnected)
	time.Sleep(500 * time.Millisecond) // let the replay arrive
	if s.app.presence.Online("st1") {
		t.Fatal("a stale retained status overwrote a newer state")
	}
	// Control: a newer retained "online", replayed the same way, does win.
	s.stop()
	c, err = dial(m.URL(), "st1", tok)
	if err != nil {
		t.Fatal(err)
	}
	c.Publish("devicehooks/devices/st1/status", 1, true, `{"state":"online","at":"`+time.Now().UTC().Format(time.RFC3339Nano)+`"}`).WaitTimeout(5 * time.Second)
	c.Disconnect(50)
	s.start()
	testenv.WaitFor(t, 10*time.Second, "a newer retained status applies", func() bool { return s.app.presence.Online("st1") })
}

// TestSimulateCommand runs `devicehooks simulate` with 100 players against a
// running server and fires an "all devices" trigger at them.
func TestSimulateCommand(t *testing.T) {
	s := startServer(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	out := &testenv.Buffer{}
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"simulate", "--api", s.base, "--mqtt", s.mqttURL(), "--admin-token", testAdminToken,
			"--players", "100", "--ack-delay", "10ms", "--quiet"}, out, out)
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("simulate exited %d:\n%s", code, out.String())
		}
	}()
	testenv.WaitFor(t, 60*time.Second, "100 simulated players online", func() bool { return s.app.presence.OnlineCount() == 100 })
	_, key := s.createKey("k")
	ev := s.createAction("load_url", map[string]any{"type": "all"}, map[string]any{"url": "https://example.com/all"})
	_, ans := s.post(key, `{"event_id":"`+ev+`"}`)
	waitDispatch(t, s, ans["dispatch_id"].(string), map[string]float64{"succeeded": 100})
}

// TestSimulateLeavesNoDeviceBehind: when provisioning fails part way (here on
// a device that exists already), simulate deletes the devices it created: their
// tokens were never shown, so nobody could use them, and they would make every
// later run fail the same way.
func TestSimulateLeavesNoDeviceBehind(t *testing.T) {
	s := startServer(t, Config{})
	s.createDevice("t-00002")
	out := &testenv.Buffer{}
	code := run(context.Background(), []string{"simulate", "--api", s.base, "--mqtt", s.mqttURL(), "--admin-token", testAdminToken,
		"--players", "20", "--prefix-name", "t", "--quiet"}, out, out)
	if code != 1 || !strings.Contains(out.String(), "t-00002") || !strings.Contains(out.String(), "already exists") {
		t.Fatalf("simulate exited %d, want 1 naming t-00002 as existing:\n%s", code, out.String())
	}
	devices := s.mustCall(http.StatusOK, "GET", "/api/v1/devices", nil)
	if devices["total"] != float64(1) {
		t.Fatalf("devices left after the failed provisioning: %v", devices["items"])
	}
}

// TestSimulateSaysWhyTheBrokerRefusesItsPlayers: Mosquitto knows the devices
// simulate creates only once they are exported. simulate says so, and shows
// their tokens (with --quiet too), with which they connect once exported.
func TestSimulateSaysWhyTheBrokerRefusesItsPlayers(t *testing.T) {
	s, rb, _ := startMosquittoWithRecipe(t, Config{})
	out := &testenv.Buffer{}
	code := run(context.Background(), []string{"simulate", "--api", s.base, "--mqtt", rb.URL(), "--admin-token", testAdminToken,
		"--players", "2", "--prefix-name", "m", "--quiet"}, out, out)
	if code != 1 || !strings.Contains(out.String(), "not Authorized") || !strings.Contains(out.String(), "devicehooks mosquitto-passwd") {
		t.Fatalf("simulate exited %d, want 1 saying to export the devices:\n%s", code, out.String())
	}
	var devices []string
	for line := range strings.Lines(out.String()) {
		if cred := strings.TrimSpace(line); strings.HasPrefix(cred, "m-0000") {
			devices = append(devices, "--device", cred)
		}
	}
	if len(devices) != 4 {
		t.Fatalf("the tokens of the 2 devices created are not shown:\n%s", out.String())
	}

	rb.sync(s.cfg.DB)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	again := &testenv.Buffer{}
	go func() {
		done <- run(ctx, append([]string{"simulate", "--mqtt", rb.URL(), "--quiet"}, devices...), again, again)
	}()
	testenv.WaitFor(t, 20*time.Second, "the exported devices online", func() bool { return s.app.presence.OnlineCount() == 2 })
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("simulate with the tokens shown exited %d:\n%s", code, again.String())
	}
	wrong := &testenv.Buffer{}
	if code := run(context.Background(), []string{"simulate", "--mqtt", rb.URL(), "--device", "m-00001:dhd_wrong"}, wrong, wrong); code != 1 ||
		!strings.Contains(wrong.String(), "check each --device id:token") {
		t.Fatalf("simulate with a wrong token exited %d:\n%s", code, wrong.String())
	}
}

// TestNewerDesiredStateSupersedesQueuedCommands: an emergency switched on and
// then off while a player is offline must not come back when it connects. The
// "on" command, still queued, is superseded by the "off" (marked expired, with
// the dispatch that replaced it), so the player gets only the "off", even once
// the "off" command itself has expired; other functions' commands still go.
func TestNewerDesiredStateSupersedesQueuedCommands(t *testing.T) {
	s := startServer(t, Config{})
	token := s.createDevice("lobby")
	_, key := s.createKey("k")
	target := map[string]any{"type": "device", "id": "lobby"}
	on := s.createAction("set_emergency", target, map[string]any{"enabled": true, "message": "Evacuate"})
	off := s.mustCall(http.StatusCreated, "POST", "/api/v1/actions", map[string]any{
		"name": "all clear", "function": "set_emergency", "target": target, "params": map[string]any{"enabled": false}, "ttl_s": 1,
	})["event_id"].(string)
	pause := s.createAction("pause_loop", target, nil)
	refresh := s.createAction("refresh_content", target, nil)

	fire := func(ev string) string {
		status, ans := s.post(key, `{"event_id":"`+ev+`"}`)
		if status != http.StatusOK {
			t.Fatalf("trigger %s: %d %v", ev, status, ans)
		}
		return ans["dispatch_id"].(string)
	}
	onDispatch, pauseDispatch, refreshDispatch := fire(on), fire(pause), fire(refresh)
	offDispatch := fire(off)
	d := waitDispatch(t, s, onDispatch, map[string]float64{"expired": 1, "superseded": 1})
	if cmds := d["commands"].([]any); cmds[0].(map[string]any)["detail"] != "superseded by dispatch "+offDispatch {
		t.Fatalf("the superseded command: %v", cmds[0])
	}
	// Replaced on purpose: not a failure, as the dashboard's attention has it.
	if d["status"] != "superseded" {
		t.Errorf("the superseded dispatch's status: %v", d["status"])
	}
	if d := waitDispatch(t, s, offDispatch, map[string]float64{"expired": 1}); d["status"] != "failed" { // its own short TTL
		t.Errorf("the expired dispatch's status: %v", d["status"])
	}

	p := connectPlayer(t, s.mqttURL(), "devicehooks", "lobby", token)
	got := map[string]bool{}
	for range 2 {
		got[p.next(10 * time.Second)["function"].(string)] = true
	}
	if !got["pause_loop"] || !got["refresh_content"] {
		t.Fatalf("the player got %v, want pause_loop and refresh_content", got)
	}
	p.none(500 * time.Millisecond)
	waitDispatch(t, s, pauseDispatch, map[string]float64{"published": 1})
	waitDispatch(t, s, refreshDispatch, map[string]float64{"published": 1})
	dev := s.mustCall(http.StatusOK, "GET", "/api/v1/devices/lobby", nil)
	if em, _ := dev["desired"].(map[string]any)["emergency"].(map[string]any); em["enabled"] != false {
		t.Fatalf("desired state: %v", dev["desired"])
	}

	// A call waiting for its emergency's ack is answered once a newer change
	// supersedes it: its command is final then.
	p.client.Disconnect(50)
	testenv.WaitFor(t, 10*time.Second, "lobby offline", func() bool { return !s.app.presence.Online("lobby") })
	waited := s.postWaiting(key, on, 20)
	testenv.WaitFor(t, 10*time.Second, "the waiting call's dispatch", func() bool {
		return s.mustCall(http.StatusOK, "GET", "/api/v1/dispatches", nil)["total"] == float64(5)
	})
	start := time.Now()
	fire(off)
	select {
	case a := <-waited:
		cmds, _ := a.body["commands"].([]any)
		if a.status != http.StatusOK || a.body["settled"] != true || len(cmds) != 1 || cmds[0].(map[string]any)["state"] != "expired" {
			t.Fatalf("the superseded wait: %d %v", a.status, a.body)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the superseded call still waits %v after the newer change", time.Since(start))
	}
}

// A player that unsubscribes from its commands topic, though still connected,
// is offline: a command for it stays queued, and reaches it when it listens
// again.
func TestUnsubscribedPlayerIsOffline(t *testing.T) {
	s := startServer(t, Config{})
	token := s.createDevice("u1")
	_, key := s.createKey("k")
	ev := s.createAction("refresh_content", map[string]any{"type": "device", "id": "u1"}, nil)
	online := func() bool { return s.mustCall(http.StatusOK, "GET", "/api/v1/devices/u1", nil)["online"] == true }
	c, err := dial(s.mqttURL(), "u1", token)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(50)
	got := make(chan string, 10)
	commands := "devicehooks/devices/u1/commands"
	subscribe := func() {
		t.Helper()
		if tok := c.Subscribe(commands, 1, func(_ paho.Client, m paho.Message) { got <- string(m.Payload()) }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe: %v", tok.Error())
		}
	}
	subscribe()
	testenv.WaitFor(t, 10*time.Second, "u1 online", online)
	if tok := c.Unsubscribe(commands); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("unsubscribe: %v", tok.Error())
	}
	testenv.WaitFor(t, 10*time.Second, "u1 offline after unsubscribing", func() bool { return !online() })
	_, ans := s.post(key, `{"event_id":"`+ev+`"}`)
	dispatch := ans["dispatch_id"].(string)
	waitDispatch(t, s, dispatch, map[string]float64{"queued": 1})
	subscribe()
	select {
	case m := <-got:
		if !strings.Contains(m, dispatch) {
			t.Fatalf("got %s", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the queued command did not come once the player listened again")
	}
}

// Logins the embedded broker refuses are counted in /metrics (not logged:
// anyone could fill the log with them).
func TestRefusedLoginsAreCounted(t *testing.T) {
	s := startServer(t, Config{})
	s.createDevice("r1")
	for _, pass := range []string{"wrong", ""} {
		if c, err := dial(s.mqttURL(), "r1", pass); err == nil {
			c.Disconnect(50)
			t.Fatalf("logged in with password %q", pass)
		}
	}
	// paho tries MQTT 3.1.1 and then 3.1: each refused dial is two refusals.
	if m := s.metricsText(); !strings.Contains(m, "devicehooks_mqtt_logins_refused_total 4\n") {
		t.Fatalf("metrics after two refused dials:\n%s", m)
	}
}

// The recipe's Mosquitto keeps every ack of a burst of fan-outs: devicehooks'
// own subscription gets them all at once, which Mosquitto's defaults (20 in
// flight, 1,000 queued) drop without a word, leaving commands the screens ran
// "published" until they expire. The limits come from docs/mosquitto.conf, as
// operations.md tells operators to use it; docs/operations.md shows the same
// file (TestOperationsShowsTheMosquittoConf).
func TestRecipeBrokerKeepsEveryAckOfABurst(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short (testing.Short): 1,200 players; it runs in make test")
	}
	conf, err := os.ReadFile("../../docs/mosquitto.conf")
	if err != nil {
		t.Fatal(err)
	}
	var limits []string
	for _, line := range strings.Split(string(conf), "\n") {
		if strings.HasPrefix(line, "max_") {
			limits = append(limits, line)
		}
	}
	if len(limits) != 2 {
		t.Fatalf("docs/mosquitto.conf sets %q, want the in-flight and queue limits", limits)
	}
	m := testenv.StartMosquitto(t, testenv.MosquittoConfig{Extra: strings.Join(limits, "\n")})
	s := startServer(t, Config{MQTTURL: m.URL()})
	const players, bursts = 1200, 6
	creds := make([]simulator.Credentials, players)
	for i := range creds {
		id := fmt.Sprintf("burst-%04d", i)
		creds[i] = simulator.Credentials{DeviceID: id, Token: s.createDevice(id)}
	}
	startSim(t, s, simulator.Config{AckDelay: 20 * time.Millisecond}, creds...)
	testenv.WaitFor(t, 60*time.Second, "every player online", func() bool { return s.app.presence.OnlineCount() == players })
	_, key := s.createKey("burst")
	ev := s.createAction("refresh_content", map[string]any{"type": "all"}, nil)
	ids := make([]string, bursts)
	for i := range ids { // back to back: 7,200 acks within a second or two
		status, ans := s.post(key, `{"event_id":"`+ev+`"}`)
		if status != http.StatusOK {
			t.Fatalf("trigger %d: %d %v", i, status, ans)
		}
		ids[i] = ans["dispatch_id"].(string)
	}
	// The list's counts, not each dispatch's 1,200 commands: one read a round.
	pending := func() []string {
		_, got := s.call("GET", "/api/v1/dispatches?limit=50", nil)
		succeeded := map[string]bool{}
		for _, it := range got["items"].([]any) {
			d := it.(map[string]any)
			counts, _ := d["counts"].(map[string]any)
			succeeded[d["id"].(string)] = counts["succeeded"] == float64(players)
		}
		return slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return succeeded[id] })
	}
	testenv.WaitFor(t, 60*time.Second, "every command of the bursts acked", func() bool { return len(pending()) == 0 })
}

// simulate --no-ack does not claim to ack what its players leave unacked.
func TestSimulateLinesWithoutAcks(t *testing.T) {
	expires := time.Now()
	cmd := &simulator.Command{ID: "c1", Function: "restart", ExpiresAt: &expires}
	for _, c := range []struct {
		kind        string
		noAck       bool
		want, never string
	}{
		{simulator.KindDuplicate, false, "acked again", "not acked"},
		{simulator.KindDuplicate, true, "not acked (--no-ack)", "acked again"},
		{simulator.KindExpired, false, ": rejected", "not acked"},
		{simulator.KindExpired, true, ": not acked (--no-ack)", "rejected"},
	} {
		got := describeEvent(simulator.Event{Kind: c.kind, Command: cmd}, c.noAck)
		if !strings.Contains(got, c.want) || strings.Contains(got, c.never) {
			t.Errorf("%s, no-ack %v: %q", c.kind, c.noAck, got)
		}
	}
}

// TestBacklogReachesASlowPlayerInOrder: a player that comes back to a backlog
// larger than the embedded broker queues for a connection (256), and reads it
// slowly, gets every command once and in order. mochi drops what comes past
// that queue; delivery sent the dropped commands again, after newer ones,
// until it kept each device within a window of unacknowledged commands.
func TestBacklogReachesASlowPlayerInOrder(t *testing.T) {
	s := startServer(t, Config{})
	want, tok := backlog(t, s, "slow-1")
	gate := make(chan struct{})
	_, got := gatedPlayer(t, s, "slow-1", tok, "slow", gate)
	// The player reads (almost) none of the backlog: all but 128 wait for it.
	waitHeld(t, s, len(want))
	close(gate)
	receiveInOrder(t, got, want)
	if held := s.app.delivery.Held(); held != 0 {
		t.Fatalf("%d commands held once the player has them all", held)
	}
}

// TestHeldBacklogGoesToTheNextSession: what delivery holds back for a player
// that reads nothing goes, with what that player was sent, to the player's
// next connection, in order, held again while that one reads nothing either.
func TestHeldBacklogGoesToTheNextSession(t *testing.T) {
	s := startServer(t, Config{})
	want, tok := backlog(t, s, "slow-2")
	first := make(chan struct{})
	defer close(first) // the first player's handler returns, to a closed connection
	gatedPlayer(t, s, "slow-2", tok, "player", first)
	waitHeld(t, s, len(want))
	// The same client id: the broker ends the first connection, and the
	// device stays online through the second, a new session.
	second := make(chan struct{})
	_, got := gatedPlayer(t, s, "slow-2", tok, "player", second)
	time.Sleep(200 * time.Millisecond) // the new session's read, held too
	waitHeld(t, s, len(want))
	close(second)
	receiveInOrder(t, got, want)
}

// waitHeld waits until delivery holds back most of a backlog of n commands
// (all but the 128 in the player's window and the few it may have read), as
// the metrics say.
func waitHeld(t *testing.T, s *server, n int) {
	t.Helper()
	re := regexp.MustCompile(`(?m)^devicehooks_commands_held (\d+)$`)
	testenv.WaitFor(t, 10*time.Second, "the backlog held", func() bool {
		m := re.FindStringSubmatch(s.metricsText())
		if m == nil {
			t.Fatal("no devicehooks_commands_held in the metrics")
		}
		held, _ := strconv.Atoi(m[1])
		return held > n-128-50
	})
}

// backlog makes a device, and triggers 1,500 commands of 2.5 KB to it while it
// is offline (the connection's buffers take few of them); it returns their
// dispatch ids in order, and the device's token.
func backlog(t *testing.T, s *server, id string) ([]string, string) {
	t.Helper()
	tok := s.createDevice(id)
	_, key := s.createKey("backlog")
	ev := s.createAction("sensor_event", map[string]any{"type": "device", "id": id}, nil)
	sensor, value := strings.Repeat("s", 200), strings.Repeat("v", 2000)
	want := make([]string, 1500)
	for i := range want {
		status, ans := s.post(key, fmt.Sprintf(`{"event_id":%q,"sensor_data":{"id":%q,"event":"e%d","value":%q}}`, ev, sensor, i, value))
		if status != http.StatusOK {
			t.Fatalf("trigger %d: %d %v", i, status, ans)
		}
		want[i] = ans["dispatch_id"].(string)
	}
	return want, tok
}

// gatedPlayer connects a player as device id and comes online; from then on
// its handler waits for gate before it takes a command: paho reads nothing
// more, and acknowledges nothing, while a handler runs (not before, or the
// subscription's and the status's acknowledgements could wait behind it). It
// returns the client, and the commands' dispatch ids as they come.
func gatedPlayer(t *testing.T, s *server, id, token, clientID string, gate chan struct{}) (paho.Client, <-chan string) {
	t.Helper()
	got := make(chan string, 10000)
	var gated atomic.Bool
	c := paho.NewClient(paho.NewClientOptions().AddBroker(s.mqttURL()).SetClientID(clientID).
		SetUsername(id).SetPassword(token).SetCleanSession(true).SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	sub := c.Subscribe("devicehooks/devices/"+id+"/commands", 1, func(_ paho.Client, m paho.Message) {
		if gated.Load() {
			<-gate
		}
		var cmd struct {
			DispatchID string `json:"dispatch_id"`
		}
		if err := json.Unmarshal(m.Payload(), &cmd); err != nil {
			t.Errorf("command is not JSON: %.100s", m.Payload())
		}
		got <- cmd.DispatchID
	})
	if !sub.WaitTimeout(5*time.Second) || sub.Error() != nil {
		t.Fatalf("subscribe: %v", sub.Error())
	}
	since := time.Now()
	online := fmt.Sprintf(`{"state":"online","at":%q}`, since.UTC().Format(time.RFC3339Nano))
	if pub := c.Publish("devicehooks/devices/"+id+"/status", 1, true, online); !pub.WaitTimeout(5*time.Second) || pub.Error() != nil {
		t.Fatalf("status: %v", pub.Error())
	}
	testenv.WaitFor(t, 10*time.Second, "device "+id+" online from this connection", func() bool {
		at, ok := s.app.presence.OnlineSince(id)
		return ok && !at.Before(since.Add(-time.Second))
	})
	gated.Store(true)
	return c, got
}

// receiveInOrder asserts that got brings want's dispatch ids, each once, in
// their order.
func receiveInOrder(t *testing.T, got <-chan string, want []string) {
	t.Helper()
	var order []string
	for len(order) < len(want) {
		select {
		case d := <-got:
			order = append(order, d)
		case <-time.After(30 * time.Second):
			t.Fatalf("the player has %d of %d commands", len(order), len(want))
		}
	}
	select {
	case d := <-got:
		t.Fatalf("a command came twice or more: dispatch %s", d)
	case <-time.After(500 * time.Millisecond):
	}
	for i := range want {
		if order[i] != want[i] {
			t.Fatalf("command %d of the backlog is dispatch %s, want %s (the %dth)", i, order[i], want[i], slices.Index(want, order[i]))
		}
	}
}
