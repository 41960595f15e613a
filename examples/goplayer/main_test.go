package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"devicehooks/actions"
	"devicehooks/broker"
	"devicehooks/internal/testenv"
)

// The example player against the real embedded broker, with the server's device
// authentication (username = device id, password = token) and the contract ACL.

const (
	device  = "lobby-1"
	token   = "dhd_example-player-test-token"
	wait    = 10 * time.Second
	devBase = "devicehooks/devices/" + device + "/"
)

var topics = actions.Topics{Prefix: "devicehooks"}

// startBroker starts the embedded broker as cmd/devicehooks does, knowing one
// device; wsAddr "127.0.0.1:0" adds its WebSocket listener. The device's token
// is token until the test stores another one in tok.
func startBroker(t *testing.T, wsAddr string) (b *broker.Embedded, tok *atomic.Pointer[string]) {
	t.Helper()
	return startBrokerWith(t, broker.EmbeddedConfig{TCPAddr: "127.0.0.1:0", WSAddr: wsAddr})
}

// startBrokerWith starts the embedded broker on cfg's listeners, with the
// device authentication and (unless cfg has one) the contract ACL.
func startBrokerWith(t *testing.T, cfg broker.EmbeddedConfig) (b *broker.Embedded, tok *atomic.Pointer[string]) {
	t.Helper()
	tok = new(atomic.Pointer[string])
	tok.Store(ptr(token))
	cfg.Authenticate = func(user, pass string) bool { return user == device && pass == *tok.Load() }
	if cfg.Allow == nil {
		cfg.Allow = topics.Allowed
	}
	cfg.Logger = slog.New(slog.DiscardHandler)
	b, err := broker.StartEmbedded(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b, tok
}

func ptr[T any](v T) *T { return &v }

// recorder keeps what the player published on one topic, decoded.
type recorder struct {
	mu   sync.Mutex
	msgs []map[string]any
}

func record(t *testing.T, b *broker.Embedded, topic string) *recorder {
	t.Helper()
	r := &recorder{}
	err := b.Subscribe(topic, func(_ string, payload []byte, _ bool) {
		var m map[string]any
		if err := json.Unmarshal(payload, &m); err != nil {
			t.Errorf("%s: not JSON: %s", topic, payload)
			return
		}
		r.mu.Lock()
		r.msgs = append(r.msgs, m)
		r.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// matching returns the messages whose fields equal want.
func (r *recorder) matching(want map[string]any) []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []map[string]any
next:
	for _, m := range r.msgs {
		for k, v := range want {
			if m[k] != v {
				continue next
			}
		}
		out = append(out, m)
	}
	return out
}

// waitN waits until n messages match want and returns the last one.
func (r *recorder) waitN(t *testing.T, n int, want map[string]any) map[string]any {
	t.Helper()
	testenv.WaitFor(t, wait, fmt.Sprintf("%d message(s) matching %v", n, want), func() bool {
		return len(r.matching(want)) >= n
	})
	got := r.matching(want)
	return got[len(got)-1]
}

// publish sends a message as the server would (the inline client bypasses the ACL).
func publish(t *testing.T, b *broker.Embedded, kind string, msg any, retained bool) {
	t.Helper()
	payload, err := json.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	b.Publish(devBase+kind, payload, retained, func(err error) {
		if err != nil {
			t.Errorf("publish %s: %v", kind, err)
		}
	})
}

func cmd(id, function string, params map[string]any, expires *time.Time) actions.CommandMessage {
	return actions.CommandMessage{ID: id, DispatchID: "d-" + id, Function: function, Params: params,
		IssuedAt: time.Now().UTC(), ExpiresAt: expires}
}

func desiredDoc(version int64, emergency bool, message string) actions.DesiredMessage {
	return actions.DesiredMessage{Version: version, UpdatedAt: time.Now().UTC(),
		Emergency: actions.EmergencyDesired{Enabled: emergency, Message: message}}
}

func TestPlayer(t *testing.T) {
	var (
		mu       sync.Mutex
		status   *recorder
		absences []int // each time the device went absent: how many offline statuses with a time had come
	)
	b, _ := startBrokerWith(t, broker.EmbeddedConfig{TCPAddr: "127.0.0.1:0", PresenceOf: topics.PresenceOf,
		OnAbsent: func(string) {
			mu.Lock()
			defer mu.Unlock()
			n := 0
			for _, m := range status.matching(map[string]any{"state": "offline"}) {
				if m["at"] != nil {
					n++
				}
			}
			absences = append(absences, n)
		}})
	mu.Lock()
	status = record(t, b, devBase+"status")
	mu.Unlock()
	acks := record(t, b, devBase+"acks")
	// Desired state retained before the player starts: applied at once on connect.
	publish(t, b, "desired", desiredDoc(2, true, "Fire drill at 10:00"), true)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &testenv.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, config{Broker: "tcp://" + b.Addr(), Device: device, Token: token, Prefix: "devicehooks"}, out)
	}()

	online := status.waitN(t, 1, map[string]any{"state": "online"})
	if at, _ := online["at"].(string); at == "" {
		t.Fatalf("online status without at: %v", online)
	}
	out.WaitFor(t, wait, `desired v2: emergency=true "Fire drill at 10:00"`)

	// A command is applied once and acked; a repeat is acked again, not applied again.
	load := cmd("c1", "load_url", map[string]any{"url": "https://example.com/menu"}, nil)
	publish(t, b, "commands", load, false)
	a := acks.waitN(t, 1, map[string]any{"id": "c1", "status": "succeeded"})
	if at, _ := a["at"].(string); at == "" {
		t.Fatalf("ack without at: %v", a)
	}
	publish(t, b, "commands", load, false)
	acks.waitN(t, 2, map[string]any{"id": "c1", "status": "succeeded"})
	if n := strings.Count(out.String(), "load_url https://example.com/menu"); n != 1 {
		t.Fatalf("load_url applied %d times, want 1:\n%s", n, out)
	}
	out.WaitFor(t, wait, "repeat of c1: acked again, not applied again")
	// Only http(s) URLs are shown.
	publish(t, b, "commands", cmd("c7", "load_url", map[string]any{"url": "javascript:alert(1)"}, nil), false)
	if d := acks.waitN(t, 1, map[string]any{"id": "c7", "status": "failed"}); !strings.Contains(d["detail"].(string), "http or https") {
		t.Fatalf("failed ack detail: %v", d)
	}
	if strings.Contains(out.String(), "javascript:") {
		t.Fatalf("a javascript: URL was shown:\n%s", out)
	}
	// A sensor value past 2^53 is passed on exactly, not rounded by a float64.
	b.Publish(devBase+"commands", []byte(`{"id":"c8","function":"sensor_event","params":{"id":"s1","event":"count","value":12345678901234567891}}`), false, func(error) {})
	acks.waitN(t, 1, map[string]any{"id": "c8", "status": "succeeded"})
	out.WaitFor(t, wait, "sensor_event id=s1 event=count value=12345678901234567891\n")

	// An expired command is not applied, and is rejected.
	past := time.Now().Add(-time.Minute).UTC()
	publish(t, b, "commands", cmd("c2", "restart", nil, &past), false)
	acks.waitN(t, 1, map[string]any{"id": "c2", "status": "rejected", "detail": "expired"})
	// One not yet expired is applied.
	future := time.Now().Add(time.Minute).UTC()
	publish(t, b, "commands", cmd("c3", "set_emergency", map[string]any{"enabled": false}, &future), false)
	acks.waitN(t, 1, map[string]any{"id": "c3", "status": "succeeded"})
	if strings.Contains(out.String(), "restart") {
		t.Fatalf("the expired restart was applied:\n%s", out)
	}
	out.WaitFor(t, wait, "set_emergency on=false")

	// An unknown function fails, with a detail.
	publish(t, b, "commands", cmd("c4", "self_destruct", nil, nil), false)
	if d := acks.waitN(t, 1, map[string]any{"id": "c4", "status": "failed"}); !strings.Contains(d["detail"].(string), "unknown function") {
		t.Fatalf("failed ack detail: %v", d)
	}

	// A command with an id that does not decode is acked failed, not dropped
	// (it would come back on every connect).
	b.Publish(devBase+"commands", []byte(`{"id":"c6","function":"restart","expires_at":"in ten minutes"}`), false, func(error) {})
	if d := acks.waitN(t, 1, map[string]any{"id": "c6", "status": "failed"}); !strings.Contains(d["detail"].(string), "unreadable command") {
		t.Fatalf("failed ack detail: %v", d)
	}

	// Desired state: an older version is ignored, a newer one applied.
	publish(t, b, "desired", desiredDoc(1, false, "stale"), true)
	publish(t, b, "desired", desiredDoc(3, false, ""), true)
	out.WaitFor(t, wait, "desired v3: emergency=false")
	if strings.Contains(out.String(), "desired v1") {
		t.Fatalf("an older desired state was applied:\n%s", out)
	}

	// Cut the connection from the broker's side (as a token rotation does): the
	// last will says offline without "at"; the player reconnects, resubscribes
	// and says online again, and commands still reach it.
	b.Disconnect(device)
	will := status.waitN(t, 1, map[string]any{"state": "offline"})
	if _, ok := will["at"]; ok {
		t.Fatalf("the last will has an at: %v", will)
	}
	status.waitN(t, 2, map[string]any{"state": "online"})
	publish(t, b, "commands", cmd("c5", "refresh_content", nil, nil), false)
	acks.waitN(t, 1, map[string]any{"id": "c5", "status": "succeeded"})
	if n := strings.Count(out.String(), "desired v3"); n != 1 {
		t.Fatalf("the retained desired v3 was applied %d times after a reconnect, want 1:\n%s", n, out)
	}

	// A clean stop says offline, with a time, before disconnecting.
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(wait):
		t.Fatal("run did not return after cancel")
	}
	if last := status.waitN(t, 2, map[string]any{"state": "offline"}); last["at"] == nil {
		t.Fatalf("offline status without at: %v", last)
	}
	// And before that it unsubscribes from its commands: the device is absent
	// before its offline, so that no command can arrive after it, when the
	// player could no longer ack it.
	testenv.WaitFor(t, wait, "the device absent after the stop", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(absences) >= 2
	})
	mu.Lock()
	if want := []int{0, 0}; !slices.Equal(absences, want) {
		t.Errorf("offline statuses with a time before each absence (the broker's Disconnect, the stop): %v, want %v", absences, want)
	}
	mu.Unlock()
	t.Logf("player output:\n%s", out)
}

func TestPlayerWrongToken(t *testing.T) {
	b, _ := startBroker(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	err := run(ctx, config{Broker: "tcp://" + b.Addr(), Device: device, Token: "dhd_wrong", Prefix: "devicehooks"}, &testenv.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "token") {
		t.Fatalf("run with a wrong token: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatal("run waited for the context instead of failing")
	}
}

func TestPlayerWrongPrefix(t *testing.T) {
	b, _ := startBroker(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	err := run(ctx, config{Broker: "tcp://" + b.Addr(), Device: device, Token: token, Prefix: "signage"}, &testenv.Buffer{})
	// The embedded broker refuses the connection: the player's will names a
	// status topic under the wrong prefix, which it may not publish to.
	if err == nil || !strings.Contains(err.Error(), "-prefix") {
		t.Fatalf("run with a wrong topic prefix: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatal("run waited for the context instead of failing")
	}
}

// The same player over MQTT-over-WebSocket, as a player behind a proxy that
// only passes HTTP would connect.
func TestPlayerOverWebSocket(t *testing.T) {
	b, _ := startBroker(t, "127.0.0.1:0")
	status := record(t, b, devBase+"status")
	acks := record(t, b, devBase+"acks")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, config{Broker: "ws://" + b.WSAddr() + "/mqtt", Device: device, Token: token, Prefix: "devicehooks"}, &testenv.Buffer{})
	}()
	status.waitN(t, 1, map[string]any{"state": "online"})
	publish(t, b, "commands", cmd("w1", "refresh_content", nil, nil), false)
	acks.waitN(t, 1, map[string]any{"id": "w1", "status": "succeeded"})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(wait):
		t.Fatal("run did not return after cancel")
	}
	status.waitN(t, 1, map[string]any{"state": "offline"})
}

// A token rotation closes the connection and refuses the old token: the will
// says offline, the player keeps trying (and says why), and still stops cleanly.
func TestPlayerTokenRotated(t *testing.T) {
	b, tok := startBroker(t, "")
	status := record(t, b, devBase+"status")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &testenv.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, config{Broker: "tcp://" + b.Addr(), Device: device, Token: token, Prefix: "devicehooks"}, out)
	}()
	status.waitN(t, 1, map[string]any{"state": "online"})
	tok.Store(ptr("dhd_rotated"))
	b.Disconnect(device)
	status.waitN(t, 1, map[string]any{"state": "offline"})
	out.WaitFor(t, wait, "reconnecting: not Authorized")
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(wait):
		t.Fatal("run did not return after cancel")
	}
	if n := len(status.matching(map[string]any{"state": "online"})); n != 1 {
		t.Fatalf("%d online statuses, want 1", n)
	}
}

// start runs the player until ctx ends; its result comes on the channel.
func start(ctx context.Context, cfg config, out io.Writer) <-chan error {
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, out) }()
	return done
}

// A restart against the real server: the player exits (for its supervisor to
// start it again) only once the broker has its ack, so the command is settled
// `succeeded` and never sent again; started again, it stays up.
func TestPlayerRestartsAfterItsAck(t *testing.T) {
	s := startServer(t)
	cfg := config{Broker: "tcp://" + s.mqttAddr, Device: device, Token: s.createDevice(device), Prefix: "devicehooks"}
	restart, refresh := s.createAction("restart", device), s.createAction("refresh_content", device)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &testenv.Buffer{}
	done := start(ctx, cfg, out)
	s.waitOnline(device, true)
	id := s.trigger(restart)
	select {
	case err := <-done:
		if !errors.Is(err, errRestart) {
			t.Fatalf("run after a restart command: %v, want errRestart\n%s", err, out)
		}
	case <-time.After(wait):
		t.Fatalf("run did not return after a restart command:\n%s", out)
	}
	// The player has disconnected: whatever reached the server did so before.
	s.waitCommandState(id, "succeeded")
	s.waitOnline(device, false)
	if !strings.Contains(out.String(), "restart: once the broker has the ack\noffline\n") {
		t.Fatalf("player output:\n%s", out)
	}

	// What a supervisor does: start it again. The restart does not come back.
	out2 := &testenv.Buffer{}
	done2 := start(ctx, cfg, out2)
	s.waitOnline(device, true)
	s.waitCommandState(s.trigger(refresh), "succeeded")
	select {
	case err := <-done2:
		t.Fatalf("the restarted player exited: %v\n%s", err, out2)
	default:
	}
	if strings.Contains(out2.String(), "restart") {
		t.Fatalf("the restart came back:\n%s", out2)
	}
	cancel()
	if err := <-done2; err != nil {
		t.Fatal(err)
	}
}

// A player that starts before its broker keeps trying (it does not exit), and
// gets online once the broker is there.
func TestPlayerWaitsForTheBroker(t *testing.T) {
	addr := testenv.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &testenv.Buffer{}
	done := start(ctx, config{Broker: "tcp://" + addr, Device: device, Token: token, Prefix: "devicehooks"}, out)
	out.WaitFor(t, wait, "connecting: ") // connection refused: nobody listens yet
	b, _ := startBrokerWith(t, broker.EmbeddedConfig{TCPAddr: addr})
	acks := record(t, b, devBase+"acks")
	out.WaitFor(t, wait, "online as "+device)
	publish(t, b, "commands", cmd("b1", "refresh_content", nil, nil), false)
	acks.waitN(t, 1, map[string]any{"id": "b1", "status": "succeeded"})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A SUBSCRIBE left unanswered: the player gives the connection up and makes a
// new one, rather than stay connected but never online.
func TestPlayerWithoutSuback(t *testing.T) {
	defer func(d time.Duration) { subackTimeout = d }(subackTimeout)
	subackTimeout = 300 * time.Millisecond
	var held atomic.Bool
	release := make(chan struct{})
	b, _ := startBrokerWith(t, broker.EmbeddedConfig{TCPAddr: "127.0.0.1:0",
		Allow: func(user, topic string, write bool) bool {
			if !write && topic == devBase+"commands" && held.CompareAndSwap(false, true) {
				<-release // the first subscription only: no SUBACK until the test ends
			}
			return topics.Allowed(user, topic, write)
		}})
	t.Cleanup(func() { close(release) }) // before the broker closes
	status := record(t, b, devBase+"status")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &testenv.Buffer{}
	done := start(ctx, config{Broker: "tcp://" + b.Addr(), Device: device, Token: token, Prefix: "devicehooks"}, out)
	out.WaitFor(t, wait, "connection lost: no SUBACK")
	status.waitN(t, 1, map[string]any{"state": "online"})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
