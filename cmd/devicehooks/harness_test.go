package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"devicehooks/internal/pahostore"
	"devicehooks/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

const testAdminToken = "test-admin-token-0123456789abcdefghijklmnop"

// server is a devicehooks App started for a test.
type server struct {
	t      testing.TB
	app    *App
	cfg    Config
	logs   *testenv.Buffer
	stdout *testenv.Buffer
	base   string
	// afterDevice, if set, runs after createDevice (to export credentials to an
	// external broker).
	afterDevice func()
}

// startServer runs the real wiring on 127.0.0.1:0 with a temp SQLite database (or
// the DSN in cfg.DB) and the embedded broker (or cfg.MQTTURL). Fields left empty
// in cfg get test defaults: a zero that is meant (DispatchDays 0, "keep all")
// is set by a tweak, which runs last.
func startServer(t testing.TB, overrides Config, tweaks ...func(*Config)) *server {
	t.Helper()
	cfg := withDefaults(overrides)
	dir := t.TempDir()
	if overrides.DB == "" {
		cfg.DB = filepath.Join(dir, "devicehooks.db")
	}
	if overrides.HTTPAddr == "" {
		cfg.HTTPAddr = "127.0.0.1:0"
	}
	if overrides.MQTTListen == "" {
		cfg.MQTTListen = "127.0.0.1:0"
	}
	if overrides.MQTTWSListen == "" {
		cfg.MQTTWSListen = "" // off unless a test asks for it
	}
	if overrides.AdminToken == "" {
		cfg.AdminToken = testAdminToken
	}
	if overrides.SecretFile == "" && overrides.Secret == "" {
		cfg.SecretFile = filepath.Join(dir, "devicehooks.secret")
	}
	for _, tweak := range tweaks {
		tweak(&cfg)
	}
	s := &server{t: t, cfg: cfg, logs: &testenv.Buffer{}, stdout: &testenv.Buffer{}}
	s.start()
	t.Cleanup(s.stop)
	return s
}

// withDefaults is DefaultConfig with the non-zero fields of overrides on top
// (so a zero field cannot override: see startServer's tweaks).
func withDefaults(overrides Config) Config {
	cfg := DefaultConfig()
	dst, src := reflect.ValueOf(&cfg).Elem(), reflect.ValueOf(overrides)
	for i := 0; i < src.NumField(); i++ {
		if !src.Field(i).IsZero() {
			dst.Field(i).Set(src.Field(i))
		}
	}
	return cfg
}

func (s *server) start() {
	s.t.Helper()
	log := slog.New(slog.NewTextHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s.app = &App{Config: s.cfg, Log: log, Stdout: s.stdout}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.app.Open(ctx); err != nil {
		s.t.Fatalf("start devicehooks: %v\n%s", err, s.logs.String())
	}
	s.base = "http://" + s.app.HTTPAddr()
	// Restart on the same addresses.
	s.cfg.HTTPAddr = s.app.HTTPAddr()
	if s.app.embedded != nil {
		s.cfg.MQTTListen = s.app.embedded.Addr()
		if ws := s.app.embedded.WSAddr(); ws != "" {
			s.cfg.MQTTWSListen = ws
		}
	}
}

func (s *server) stop() { s.app.Close() }

// restart closes the server and opens it again on the same database and ports.
func (s *server) restart() {
	s.t.Helper()
	s.stop()
	s.start()
}

// mqttURL is the broker devices connect to.
func (s *server) mqttURL() string {
	if s.cfg.MQTTURL != "" {
		return s.cfg.MQTTURL
	}
	return "tcp://" + s.app.embedded.Addr()
}

// metricsText scrapes /metrics with the admin token.
func (s *server) metricsText() string {
	s.t.Helper()
	req, _ := http.NewRequest("GET", s.base+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		s.t.Fatalf("scrape /metrics: %v %v", resp, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// call sends a management-API request with the admin token and decodes the JSON answer.
func (s *server) call(method, path string, body any) (int, map[string]any) {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.base+path, rd)
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	req.Header.Set("Content-Type", "application/json")
	return s.do(req)
}

func (s *server) do(req *http.Request) (int, map[string]any) {
	s.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(raw) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &out); err != nil {
			s.t.Fatalf("%s %s: answer is not JSON: %v: %s", req.Method, req.URL, err, raw)
		}
	}
	return resp.StatusCode, out
}

// mustCall is call that fails the test unless the status is want.
func (s *server) mustCall(want int, method, path string, body any) map[string]any {
	s.t.Helper()
	status, out := s.call(method, path, body)
	if status != want {
		s.t.Fatalf("%s %s: status %d, want %d: %v", method, path, status, want, out)
	}
	return out
}

// createDevice registers a device and returns its token.
func (s *server) createDevice(id string) string {
	s.t.Helper()
	out := s.mustCall(http.StatusCreated, "POST", "/api/v1/devices", map[string]any{"id": id, "name": "Screen " + id})
	if s.afterDevice != nil {
		s.afterDevice()
	}
	return out["token"].(string)
}

// createKey creates an API key and returns (id, key).
func (s *server) createKey(name string) (string, string) {
	s.t.Helper()
	out := s.mustCall(http.StatusCreated, "POST", "/api/v1/api-keys", map[string]any{"name": name})
	return out["id"].(string), out["key"].(string)
}

// createAction creates an action and returns its event id.
func (s *server) createAction(function string, target, params map[string]any) string {
	s.t.Helper()
	out := s.mustCall(http.StatusCreated, "POST", "/api/v1/actions", map[string]any{
		"name": "test " + function, "function": function, "target": target, "params": params,
	})
	return out["event_id"].(string)
}

// post calls the webhook by POST with a raw body and extra headers.
// webhookAnswer is a webhook call's status and JSON body (status 0: no answer).
type webhookAnswer struct {
	status int
	body   map[string]any
}

// postWaiting triggers event with ?wait=seconds on another goroutine, and
// answers on the channel. Not through post, which may fail the test: only the
// test's own goroutine may.
func (s *server) postWaiting(key, event string, seconds int) <-chan webhookAnswer {
	waited := make(chan webhookAnswer, 1)
	go func() {
		req, _ := http.NewRequest("POST", fmt.Sprintf("%s/public-api/integration/webhooks?wait=%d", s.base, seconds),
			strings.NewReader(`{"event_id":"`+event+`"}`))
		req.Header.Set("x-webhook-apikey", key)
		var a webhookAnswer
		if resp, err := http.DefaultClient.Do(req); err == nil {
			a.status = resp.StatusCode
			_ = json.NewDecoder(resp.Body).Decode(&a.body)
			resp.Body.Close()
		}
		waited <- a
	}()
	return waited
}

func (s *server) post(key, body string, headers ...string) (int, map[string]any) {
	s.t.Helper()
	return s.do(s.webhookPost(key, body, headers...))
}

// webhookPost is a webhook call by POST with key (if any) and headers as
// name, value pairs.
func (s *server) webhookPost(key, body string, headers ...string) *http.Request {
	req, _ := http.NewRequest("POST", s.base+"/public-api/integration/webhooks", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("x-webhook-apikey", key)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return req
}

// get calls the webhook by GET with a raw query string.
func (s *server) get(query string, headers ...string) (int, map[string]any) {
	s.t.Helper()
	req, _ := http.NewRequest("GET", s.base+"/public-api/integration/webhooks?"+query, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return s.do(req)
}

// player is a real MQTT client logged in as a device.
type player struct {
	t      testing.TB
	id     string
	client paho.Client
	cmds   chan map[string]any
	raw    chan []byte
}

// connectPlayer connects as a device, subscribes to its commands topic, then
// publishes its retained online status (the contract's order: subscribe first).
func connectPlayer(t testing.TB, brokerURL, prefix, id, token string) *player {
	t.Helper()
	p := &player{t: t, id: id, cmds: make(chan map[string]any, 1000), raw: make(chan []byte, 1000)}
	status := prefix + "/devices/" + id + "/status"
	opts := paho.NewClientOptions().AddBroker(brokerURL).SetClientID("test-"+id).
		SetUsername(id).SetPassword(token).SetCleanSession(true).
		SetAutoReconnect(true).SetStore(pahostore.New()).
		SetConnectRetry(true).SetConnectRetryInterval(100*time.Millisecond).
		SetMaxReconnectInterval(500*time.Millisecond).
		SetWill(status, `{"state":"offline"}`, 1, true)
	onMsg := func(_ paho.Client, m paho.Message) {
		var cmd map[string]any
		if err := json.Unmarshal(m.Payload(), &cmd); err != nil {
			t.Errorf("player %s: command is not JSON: %s", id, m.Payload())
			return
		}
		p.raw <- m.Payload()
		p.cmds <- cmd
	}
	opts.SetOnConnectHandler(func(c paho.Client) {
		tok := c.Subscribe(prefix+"/devices/"+id+"/commands", 1, onMsg)
		// A connection lost meanwhile (the fault test kills the broker) is no
		// failure: paho reconnects, and this runs again.
		if tok.WaitTimeout(5*time.Second) && tok.Error() != nil && c.IsConnectionOpen() {
			t.Errorf("player %s: subscribe: %v", id, tok.Error())
		}
		at := time.Now().UTC().Format(time.RFC3339Nano)
		c.Publish(status, 1, true, fmt.Sprintf(`{"state":"online","at":%q}`, at)).WaitTimeout(5 * time.Second)
	})
	p.client = paho.NewClient(opts)
	tok := p.client.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("player %s: connect: %v", id, tok.Error())
	}
	t.Cleanup(func() { p.client.Disconnect(100) })
	return p
}

// next waits for the next command.
func (p *player) next(timeout time.Duration) map[string]any {
	p.t.Helper()
	select {
	case c := <-p.cmds:
		return c
	case <-time.After(timeout):
		p.t.Fatalf("player %s: no command within %s", p.id, timeout)
		return nil
	}
}

// none asserts no command arrives within d.
func (p *player) none(d time.Duration) {
	p.t.Helper()
	select {
	case c := <-p.cmds:
		p.t.Fatalf("player %s: unexpected command %v", p.id, c)
	case <-time.After(d):
	}
}

// ack answers a command.
func (p *player) ack(prefix, cmdID, status string) {
	p.t.Helper()
	body := fmt.Sprintf(`{"id":%q,"status":%q,"at":%q}`, cmdID, status, time.Now().UTC().Format(time.RFC3339Nano))
	tok := p.client.Publish(prefix+"/devices/"+p.id+"/acks", 1, false, body)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		p.t.Fatalf("player %s: ack: %v", p.id, tok.Error())
	}
}

// waitOnline waits until the server sees the device online.
func (s *server) waitOnline(ids ...string) {
	s.t.Helper()
	for _, id := range ids {
		testenv.WaitFor(s.t, 10*time.Second, "device "+id+" online", func() bool {
			return s.app.presence.Online(id)
		})
	}
}
