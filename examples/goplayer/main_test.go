package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
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
	tok = new(atomic.Pointer[string])
	tok.Store(ptr(token))
	b, err := broker.StartEmbedded(broker.EmbeddedConfig{
		TCPAddr:      "127.0.0.1:0",
		WSAddr:       wsAddr,
		Authenticate: func(user, pass string) bool { return user == device && pass == *tok.Load() },
		Allow:        topics.Allowed,
		Logger:       slog.New(slog.DiscardHandler),
	})
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
	b, _ := startBroker(t, "")
	status := record(t, b, devBase+"status")
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
	b.Publish(devBase+"commands", []byte(`{"id":"c6","function":"sensor_event","params":{"value":1e400}}`), false, func(error) {})
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
	publish(t, b, "commands", cmd("w1", "restart", nil, nil), false)
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
