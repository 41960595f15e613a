package simulator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// waitTimeout bounds every wait in these tests.
const waitTimeout = 5 * time.Second

// refusedUser is a username the test broker refuses.
const refusedUser = "refused"

// testAuth lets everyone in except refusedUser.
type testAuth struct{ mqtt.HookBase }

func (h *testAuth) ID() string { return "test-auth" }
func (h *testAuth) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}
func (h *testAuth) OnConnectAuthenticate(cl *mqtt.Client, _ packets.Packet) bool {
	return string(cl.Properties.Username) != refusedUser
}
func (h *testAuth) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

// message is one publish seen by the broker's inline subscriber.
type message struct {
	topic   string
	payload []byte
	retain  bool
}

// broker is a real mochi broker on 127.0.0.1 that records every status and ack.
type broker struct {
	srv   *mqtt.Server
	url   string // tcp://
	wsURL string // ws://

	mu   sync.Mutex
	msgs []message
}

func startBroker(t *testing.T) *broker {
	t.Helper()
	srv := mqtt.New(&mqtt.Options{
		InlineClient: true,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err := srv.AddHook(new(testAuth), nil); err != nil {
		t.Fatal(err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "tcp", Address: "127.0.0.1:0"})
	if err := srv.AddListener(tcp); err != nil { // binds the port
		t.Fatal(err)
	}
	// mochi's WebSocket listener binds only in Serve and cannot report a :0 port,
	// so pick a free port first.
	wsAddr := freeAddr(t)
	if err := srv.AddListener(listeners.NewWebsocket(listeners.Config{ID: "ws", Address: wsAddr})); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeBroker(srv) })
	eventually(t, "the WebSocket listener", func() bool {
		c, err := net.Dial("tcp", wsAddr)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	})

	b := &broker{srv: srv, url: "tcp://" + tcp.Address(), wsURL: "ws://" + wsAddr + "/mqtt"}
	for i, filter := range []string{"devicehooks/devices/+/status", "devicehooks/devices/+/acks"} {
		if err := srv.Subscribe(filter, i+1, b.record); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// closeBroker closes srv once no client is connected. mochi's Close deadlocks
// when a client is removed while it closes the listeners (v2.7.9: it takes the
// clients' read lock twice, and a waiting removal blocks the second), and a
// test's simulator may have just dropped its connections: disconnect what is
// left, and wait until mochi has removed every client.
func closeBroker(srv *mqtt.Server) {
	for _, cl := range srv.Clients.GetAll() {
		if !cl.Net.Inline && !cl.Closed() {
			_ = srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	}
	for deadline := time.Now().Add(waitTimeout); atomic.LoadInt64(&srv.Info.ClientsConnected) > 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	_ = srv.Close()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func (b *broker) record(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.msgs = append(b.msgs, message{pk.TopicName, bytes.Clone(pk.Payload), pk.FixedHeader.Retain})
}

// clients is how many clients the broker counts as connected; it counts one gone only
// after deciding about its will.
func (b *broker) clients() int64 { return atomic.LoadInt64(&b.srv.Info.ClientsConnected) }

// messages returns what was recorded on topic so far.
func (b *broker) messages(topic string) []message {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []message
	for _, m := range b.msgs {
		if m.topic == topic {
			out = append(out, m)
		}
	}
	return out
}

// publish sends v as JSON the way the devicehooks server would.
func (b *broker) publish(t *testing.T, topic string, v any, retain bool) {
	t.Helper()
	payload, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.srv.Publish(topic, payload, retain, 1); err != nil {
		t.Fatal(err)
	}
}

// waitAcks waits for at least n acks from device and returns them decoded.
func (b *broker) waitAcks(t *testing.T, device string, n int) []ack {
	t.Helper()
	topic := "devicehooks/devices/" + device + "/acks"
	eventually(t, fmt.Sprintf("%d ack(s) on %s", n, topic), func() bool { return len(b.messages(topic)) >= n })
	var acks []ack
	for _, m := range b.messages(topic) {
		if m.retain {
			t.Errorf("ack published retained: %s", m.payload)
		}
		var a ack
		if err := json.Unmarshal(m.payload, &a); err != nil {
			t.Fatalf("ack %s: %v", m.payload, err)
		}
		acks = append(acks, a)
	}
	return acks
}

// statuses decodes the status documents published for device, in order.
func (b *broker) statuses(t *testing.T, device string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, m := range b.messages("devicehooks/devices/" + device + "/status") {
		if !m.retain {
			t.Errorf("status published without retain: %s", m.payload)
		}
		var st map[string]any
		if err := json.Unmarshal(m.payload, &st); err != nil {
			t.Fatalf("status %s: %v", m.payload, err)
		}
		out = append(out, st)
	}
	return out
}

// eventually polls cond until it holds or waitTimeout passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// never checks that cond stays false for the whole window: the way to assert that
// something does not happen.
func never(t *testing.T, what string, window time.Duration, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(window); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if cond() {
			t.Fatalf("unexpected: %s", what)
		}
	}
}

// recorder collects simulator events.
type recorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *recorder) add(ev Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

// kinds returns the kinds of device's events, in order, leaving out connection events.
func (r *recorder) kinds(device string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, ev := range r.events {
		if ev.DeviceID == device && ev.Kind != KindConnected && ev.Kind != KindDisconnected {
			out = append(out, ev.Kind)
		}
	}
	return out
}

// startSim starts n players sim-00001... on b; tweak adjusts the config first.
func startSim(t *testing.T, b *broker, n int, tweak func(*Config)) (*Sim, *recorder) {
	t.Helper()
	rec := &recorder{}
	cfg := Config{BrokerURL: b.url, Players: testCreds(n), OnEvent: rec.add}
	if tweak != nil {
		tweak(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	s, err := Start(ctx, cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(s.Close)
	return s, rec
}

func testCreds(n int) []Credentials {
	creds := make([]Credentials, n)
	for i := range creds {
		id := fmt.Sprintf("sim-%05d", i+1)
		creds[i] = Credentials{DeviceID: id, Token: "token-" + id}
	}
	return creds
}

func commandTopic(device string) string { return "devicehooks/devices/" + device + "/commands" }
func desiredTopic(device string) string { return "devicehooks/devices/" + device + "/desired" }

// loadURL is a load_url command as the server sends it.
func loadURL(id, url string) Command {
	return Command{
		ID: id, DispatchID: "d-" + id, Function: "load_url",
		Params: map[string]any{"url": url}, IssuedAt: time.Now().UTC(),
	}
}

// containsAll reports whether err's text contains every part.
func containsAll(err error, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			return false
		}
	}
	return true
}
