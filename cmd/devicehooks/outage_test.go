package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"devicehooks/auth"
	"devicehooks/internal/testenv"
	"devicehooks/secrets"
)

// collect reads n commands and returns their ids, failing on a duplicate.
func (p *player) collect(n int, timeout time.Duration) map[string]bool {
	p.t.Helper()
	got := map[string]bool{}
	deadline := time.After(timeout)
	for len(got) < n {
		select {
		case c := <-p.cmds:
			id := c["id"].(string)
			if got[id] {
				p.t.Fatalf("player %s: command %s delivered twice", p.id, id)
			}
			got[id] = true
		case <-deadline:
			p.t.Fatalf("player %s: %d of %d commands within %s", p.id, len(got), n, timeout)
		}
	}
	return got
}

func TestBrokerOutageQueuesAndDelivers(t *testing.T) {
	s, m, _ := startMosquittoWithRecipe(t, Config{AdminUser: uiUser, AdminPassword: uiPassword})
	p, key, eventID := setupLoadURL(t, s)

	m.Kill()
	testenv.WaitFor(t, 10*time.Second, "server notices the broker is gone", func() bool { return !s.app.brokerConnected() })
	// The dashboard says so: devices shown offline are not known to be.
	dashboard := func() string {
		t.Helper()
		var session *http.Cookie
		for _, c := range postSignIn(t, s.base, uiUser, uiPassword).Cookies() {
			if c.Name == "devicehooks_session" {
				session = c
			}
		}
		req, _ := http.NewRequest(http.MethodGet, s.base+"/", nil)
		req.AddCookie(session)
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		page, _ := io.ReadAll(resp.Body)
		return string(page)
	}
	if page := dashboard(); !strings.Contains(page, `id="broker-down"`) {
		t.Fatalf("the dashboard does not say the broker is unreachable:\n%s", page)
	}
	const n = 20
	for i := 0; i < n; i++ {
		if status, body := s.post(key, `{"event_id":"`+eventID+`"}`); status != http.StatusOK {
			t.Fatalf("trigger %d during the outage: %d %v", i, status, body)
		}
	}
	m.Start()
	p.collect(n, 20*time.Second)
	p.none(300 * time.Millisecond)
	if page := dashboard(); strings.Contains(page, `id="broker-down"`) {
		t.Fatal("the dashboard still says the broker is unreachable")
	}
}

func TestQueuedCommandsSurviveRestart(t *testing.T) {
	t.Run("embedded broker, device offline", func(t *testing.T) {
		s := startServer(t, Config{})
		token := s.createDevice("d1")
		_, key := s.createKey("k")
		ev := s.createAction("refresh_content", map[string]any{"type": "device", "id": "d1"}, nil)
		for i := 0; i < 3; i++ {
			if status, _ := s.post(key, `{"event_id":"`+ev+`"}`); status != http.StatusOK {
				t.Fatal(status)
			}
		}
		s.restart()
		p := connectPlayer(t, s.mqttURL(), "devicehooks", "d1", token)
		p.collect(3, 10*time.Second)
		p.none(300 * time.Millisecond)
	})
	t.Run("external broker down across the restart", func(t *testing.T) {
		s, m, _ := startMosquittoWithRecipe(t, Config{})
		p, key, eventID := setupLoadURL(t, s)
		m.Kill()
		testenv.WaitFor(t, 10*time.Second, "broker gone", func() bool { return !s.app.brokerConnected() })
		for i := 0; i < 5; i++ {
			if status, _ := s.post(key, `{"event_id":"`+eventID+`"}`); status != http.StatusOK {
				t.Fatal(status)
			}
		}
		s.stop()
		m.Start()
		s.start()
		p.collect(5, 20*time.Second)
		p.none(300 * time.Millisecond)
	})
}

// TestNoSecretsInPlaintext checks the database files and the logs for every key
// and token the server handed out, after they were used in headers and links.
func TestNoSecretsInPlaintext(t *testing.T) {
	s := startServer(t, Config{})
	p, key, eventID := setupLoadURL(t, s)
	s.post(key, `{"event_id":"`+eventID+`"}`)
	s.get("api_key=" + key + "&payload=eyJldmVudF9pZCI6IiJ9")
	s.get("api_key=" + key + "&payload=bad")
	p.next(5 * time.Second)
	// The server decodes a query's names: a link's credentials written with
	// escaped names work, and must be masked all the same.
	keyID := s.mustCall(http.StatusOK, "GET", "/api/v1/api-keys", nil)["items"].([]any)[0].(map[string]any)["id"].(string)
	payload := base64.RawURLEncoding.EncodeToString([]byte(`{"event_id":"` + eventID + `"}`))
	exp := time.Now().Add(time.Hour).Unix()
	sig := auth.SignLink(key, keyID, exp, payload, false)
	for _, q := range []string{
		"key_id=" + keyID + "&expires=" + strconv.FormatInt(exp, 10) + "&payload=" + payload + "&%73ig=" + sig,
		"api%5Fkey=" + key + "&payload=" + payload,
	} {
		if status, ans := s.get(q); status != http.StatusOK {
			t.Fatalf("GET ?%s: %d %v", q, status, ans)
		}
		p.next(5 * time.Second)
	}
	secondID, _ := s.createKey("second")
	revealed := s.mustCall(http.StatusOK, "POST", "/api/v1/api-keys/"+secondID+"/reveal", nil)["key"].(string)
	deviceToken := s.createDevice("d2")
	s.stop() // flush and checkpoint

	secrets := []string{key, revealed, deviceToken}
	var files []string
	for _, suffix := range []string{"", "-wal", "-shm"} {
		files = append(files, s.cfg.DB+suffix)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, sec := range secrets {
			if bytes.Contains(b, []byte(sec)) {
				t.Fatalf("%s holds a secret in plaintext", filepath.Base(f))
			}
		}
	}
	logs := s.logs.String()
	if !strings.Contains(logs, "api_key=dhk_") {
		t.Fatalf("the access log should show the masked key prefix:\n%s", logs)
	}
	// A link's payload carries the event id, half of what fires it.
	for _, sec := range append(secrets, testAdminToken, sig, payload) {
		if strings.Contains(logs, sec) {
			t.Fatalf("a secret appears in the log:\n%s", logs)
		}
	}
}

// TestAckWhileTheServerIsAwayIsRecovered: with an external broker, an ack
// that a player publishes while devicehooks is not connected is lost (nobody
// is subscribed). When devicehooks is back, the player's retained status
// brings it online again, the command it never heard back about is sent
// again, and the player's ack of the repeat (docs/players.md) settles it.
func TestAckWhileTheServerIsAwayIsRecovered(t *testing.T) {
	s, _, _ := startMosquittoWithRecipe(t, Config{})
	p, key, eventID := setupLoadURL(t, s)
	status, ans := s.post(key, `{"event_id":"`+eventID+`"}`)
	if status != http.StatusOK {
		t.Fatalf("trigger: %d %v", status, ans)
	}
	id := p.next(5 * time.Second)["id"].(string)
	s.stop()
	p.ack("devicehooks", id, "succeeded") // into the void
	s.start()
	if again := p.next(20 * time.Second)["id"]; again != id {
		t.Fatalf("sent again: %v, want the unacked %s", again, id)
	}
	p.ack("devicehooks", id, "succeeded")
	testenv.WaitFor(t, 10*time.Second, "the command succeeded", func() bool {
		d := s.mustCall(http.StatusOK, "GET", "/api/v1/dispatches/"+ans["dispatch_id"].(string), nil)
		cmds, _ := d["commands"].([]any)
		return len(cmds) == 1 && cmds[0].(map[string]any)["state"] == "succeeded"
	})
}

// TestShutdownAnswersCallsThatWait stops the server while a call waits for an
// ack that cannot come: the call is answered at once, unsettled, before the
// database closes, and its committed command still reaches the device.
func TestShutdownAnswersCallsThatWait(t *testing.T) {
	s := startServer(t, Config{})
	token := s.createDevice("sd1")
	_, key := s.createKey("k")
	ev := s.createAction("restart", map[string]any{"type": "device", "id": "sd1"}, nil)

	type answer struct {
		status int
		body   map[string]any
		err    error
	}
	got := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest("POST", s.base+"/public-api/integration/webhooks?wait=30", strings.NewReader(`{"event_id":"`+ev+`"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("x-webhook-apikey", key)
		var a answer
		resp, err := http.DefaultClient.Do(req)
		if a.err = err; err == nil {
			a.status = resp.StatusCode
			a.err = json.NewDecoder(resp.Body).Decode(&a.body)
			resp.Body.Close()
		}
		got <- a
	}()
	testenv.WaitFor(t, 10*time.Second, "the call's dispatch recorded", func() bool {
		_, ans := s.call("GET", "/api/v1/dispatches", nil)
		items, _ := ans["items"].([]any)
		return len(items) == 1
	})

	start := time.Now()
	s.stop()
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("shutdown took %v with a call waiting", took)
	}
	var a answer
	select {
	case a = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting call was not answered")
	}
	cmds, _ := a.body["commands"].([]any)
	if a.err != nil || a.status != http.StatusOK || a.body["settled"] != false || len(cmds) != 1 {
		t.Fatalf("answer at shutdown: %d %v %v", a.status, a.body, a.err)
	}
	if logs := s.logs.String(); strings.Contains(logs, "database is closed") {
		t.Fatalf("the call used the closed database:\n%s", logs)
	}

	s.start()
	p := connectPlayer(t, s.mqttURL(), "devicehooks", "sd1", token)
	p.collect(1, 10*time.Second)
}

// A broker devicehooks cannot reach or log in to is said in the log, with
// why, not only in /healthz: a wrong password, then nothing listening.
func TestExternalBrokerConnectFailuresAreLogged(t *testing.T) {
	rb := startRecipeBroker(t)
	s := startServer(t, Config{MQTTURL: rb.URL(), MQTTUsername: "devicehooks", MQTTPassword: "wrong-password"})
	testenv.WaitFor(t, 10*time.Second, "a refused login in the log", func() bool {
		return strings.Contains(s.logs.String(), `msg="mqtt broker: cannot connect; retrying"`) &&
			strings.Contains(s.logs.String(), "not Authorized")
	})
	if s.app.brokerConnected() {
		t.Fatal("connected with a wrong password")
	}
	s.stop()

	s.cfg.MQTTURL, s.cfg.MQTTPassword = "tcp://"+testenv.FreeAddr(t), serverMQTTPassword
	before := len(s.logs.String())
	s.start()
	testenv.WaitFor(t, 10*time.Second, "an unreachable broker in the log", func() bool {
		logs := s.logs.String()[before:]
		return strings.Contains(logs, `msg="mqtt broker: cannot connect; retrying"`) && strings.Contains(logs, "connection refused")
	})
	s.stop()

	s.cfg.MQTTURL = rb.URL()
	s.start()
	testenv.WaitFor(t, 10*time.Second, "connected", s.app.brokerConnected)

	// The broker refuses devicehooks' login from now on (its password was
	// changed there): the reconnects say why too.
	before = len(s.logs.String())
	line := "devicehooks:" + secrets.MosquittoHash("another-password") + "\n"
	if err := os.WriteFile(rb.passwd, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	rb.Reload()
	testenv.WaitFor(t, 20*time.Second, "a refused reconnect in the log", func() bool {
		logs := s.logs.String()[before:]
		return strings.Contains(logs, `msg="mqtt broker: cannot reconnect; retrying"`) && strings.Contains(logs, "not Authorized")
	})
}

// TestOneActiveInstancePerDatabase: a second devicehooks on the same database
// waits as a standby, without serving or changing the schema, and takes over
// when the first stops. On PostgreSQL, an instance whose claim's connection
// is cut stops, since another may be active then.
func TestOneActiveInstancePerDatabase(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "dh.db")
			if backend == "postgres" {
				db = testenv.Postgres(t)
			}
			first := startServer(t, Config{DB: db})
			first.createKey("k")

			logs := &testenv.Buffer{}
			cfg := withDefaults(Config{DB: db, Secret: "", SecretFile: first.cfg.SecretFile, HTTPAddr: "127.0.0.1:0", MQTTListen: "127.0.0.1:0", AdminToken: testAdminToken})
			cfg.MQTTWSListen = ""
			cfg.MetricsAddr = testenv.FreeAddr(t)
			second := &App{Config: cfg, Log: slog.New(slog.NewTextHandler(logs, nil)), Stdout: io.Discard}
			active := func() string { // devicehooks_active from the second's metrics
				resp, err := http.Get("http://" + cfg.MetricsAddr + "/metrics")
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				if h := resp.Header; h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Cache-Control") != "no-store" {
					t.Errorf("--metrics-addr answers without the API's headers: %v", h)
				}
				b, _ := io.ReadAll(resp.Body)
				for _, line := range strings.Split(string(b), "\n") {
					if v, ok := strings.CutPrefix(line, "devicehooks_active "); ok {
						return v
					}
				}
				t.Fatalf("no devicehooks_active in:\n%s", b)
				return ""
			}
			opened := make(chan error, 1)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			go func() { opened <- second.Open(ctx) }()
			logs.WaitFor(t, 10*time.Second, "waiting as a standby")
			select {
			case err := <-opened:
				t.Fatalf("the second instance started beside the first: %v", err)
			case <-time.After(500 * time.Millisecond):
			}
			// A standby is no target that is down: its metrics say it waits.
			if v := active(); v != "0" {
				t.Fatalf("a standby's devicehooks_active = %s", v)
			}

			first.stop()
			select {
			case err := <-opened:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("the standby did not take over")
			}
			defer second.Close()
			if v := active(); v != "1" {
				t.Fatalf("the new active instance's devicehooks_active = %s", v)
			}
			// /metrics only: a scrape of a wrong path fails.
			if resp, err := http.Get("http://" + cfg.MetricsAddr + "/"); err != nil || resp.StatusCode != http.StatusNotFound {
				t.Fatalf("GET / on --metrics-addr: %v, %v; want 404", resp, err)
			} else {
				resp.Body.Close()
			}
			// The new active instance serves the same data.
			next := &server{t: t, base: "http://" + second.HTTPAddr()}
			if keys := next.mustCall(http.StatusOK, "GET", "/api/v1/api-keys", nil); keys["total"] != float64(1) {
				t.Fatalf("keys through the new active instance: %v", keys)
			}

			if backend == "postgres" {
				// Cut the claim's connection, as a network failure would.
				side, err := sql.Open("pgx", db)
				if err != nil {
					t.Fatal(err)
				}
				defer side.Close()
				if _, err := side.Exec(`SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()`); err != nil {
					t.Fatal(err)
				}
				mqttAddr := second.embedded.Addr()
				select {
				case err := <-second.Failed():
					if !strings.Contains(err.Error(), "claim") {
						t.Fatalf("failed with %v", err)
					}
				case <-time.After(20 * time.Second):
					t.Fatal("an instance that lost its claim kept running")
				}
				// It stops sending without being told to close (Close lets
				// its calls in flight finish first): its broker closes.
				testenv.WaitFor(t, 5*time.Second, "the MQTT side closed", func() bool {
					c, err := net.DialTimeout("tcp", mqttAddr, time.Second)
					if err == nil {
						c.Close()
					}
					return err != nil
				})
				if v := active(); v != "0" {
					t.Fatalf("an instance that lost its claim says devicehooks_active %s while it stops", v)
				}
			}
		})
	}
}

// TestLockedTablesAreAnsweredHonestly (PostgreSQL): a table of the trigger
// path held by another session (an ALTER TABLE, a LOCK TABLE, a VACUUM FULL)
// gets callers a 503 in bounded time rather than a call that hangs for as
// long as the lock, and /healthz says that writes are refused while it lasts.
func TestLockedTablesAreAnsweredHonestly(t *testing.T) {
	dsn := testenv.Postgres(t)
	s := startServer(t, Config{DB: dsn})
	s.createDevice("p1")
	_, key := s.createKey("k")
	ev := s.createAction("refresh_content", map[string]any{"type": "device", "id": "p1"}, nil)
	pause := s.createAction("pause_loop", map[string]any{"type": "device", "id": "p1"}, nil)
	everyone := s.createAction("restart", map[string]any{"type": "all"}, nil)
	side, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer side.Close()
	lock := func(table string) (release func()) {
		tx, err := side.Begin()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(`LOCK TABLE ` + table + ` IN ACCESS EXCLUSIVE MODE`); err != nil {
			t.Fatal(err)
		}
		return func() { _ = tx.Rollback() }
	}
	callEvent := func(ev string) (int, map[string]any) {
		ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "POST", s.base+"/public-api/integration/webhooks", strings.NewReader(`{"event_id":"`+ev+`"}`))
		req.Header.Set("x-webhook-apikey", key)
		return s.do(req)
	}
	call := func() (int, map[string]any) { return callEvent(ev) }

	// The key, not yet cached, cannot be read.
	release := lock("api_keys")
	status, ans := call()
	release()
	wantError(t, "a call while api_keys is locked", status, ans, http.StatusServiceUnavailable, "unavailable")

	// The trigger cannot be written: the call is refused, and /healthz
	// says so until the lock goes.
	if status, ans := call(); status != http.StatusOK {
		t.Fatalf("a call with nothing locked: %d %v", status, ans)
	}
	release = lock("commands")
	defer release()
	status, ans = call()
	wantError(t, "a call while commands is locked", status, ans, http.StatusServiceUnavailable, "unavailable")
	status, health := s.call("GET", "/healthz", nil)
	if status != http.StatusServiceUnavailable || health["database"] != "refusing writes" {
		t.Fatalf("/healthz while commands is locked: %d %v", status, health)
	}
	release()
	testenv.WaitFor(t, 10*time.Second, "/healthz ok once the lock is gone", func() bool {
		status, _ := s.call("GET", "/healthz", nil)
		return status == http.StatusOK
	})

	// devices: every device's ids cannot be read, nor a change of desired
	// state written (it locks its devices' rows).
	release = lock("devices")
	defer release()
	status, ans = callEvent(everyone)
	wantError(t, "a call to every device while devices is locked", status, ans, http.StatusServiceUnavailable, "unavailable")
	status, ans = callEvent(pause)
	wantError(t, "a pause while devices is locked", status, ans, http.StatusServiceUnavailable, "unavailable")
	status, health = s.call("GET", "/healthz", nil)
	if status != http.StatusServiceUnavailable || health["database"] != "refusing writes" {
		t.Fatalf("/healthz while devices is locked: %d %v", status, health)
	}
}
