package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"devicehooks/internal/testenv"
)

// TestPublishReportsDrops: mochi drops a message rather than wait when a
// subscriber's write queue is full; Publish must say so, so that delivery sends
// the command again instead of counting it as published. Every message is either
// received or reported dropped.
func TestPublishReportsDrops(t *testing.T) {
	e := startBroker(t, EmbeddedConfig{})
	var received atomic.Int64
	c := connect(t, e, "sub", nil)
	wait(t, "subscribe", c.Subscribe("dev/commands", 1, func(paho.Client, paho.Message) { received.Add(1) }))

	// On one P the client's write loop runs only when the publisher is preempted
	// (every 10ms), so a burst overflows its write queue.
	const n = 5000
	var dropped int64
	procs := runtime.GOMAXPROCS(1)
	for range n {
		e.Publish("dev/commands", []byte("command"), false, func(err error) {
			switch {
			case errors.Is(err, ErrDropped):
				dropped++
			case err != nil:
				t.Errorf("publish: %v", err)
			}
		})
	}
	runtime.GOMAXPROCS(procs)
	if dropped == 0 {
		t.Fatalf("no drop reported for a burst of %d", n)
	}
	deadline := time.Now().Add(10 * time.Second)
	for received.Load() < n-dropped && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // anything more would be a drop not reported
	if got := received.Load(); got != n-dropped {
		t.Fatalf("received %d, published %d, reported dropped %d", got, n, dropped)
	}
	// Other topics are not affected.
	e.Publish("other/commands", []byte("x"), false, func(err error) {
		if err != nil {
			t.Errorf("publish on a topic without a subscriber: %v", err)
		}
	})
}

// TestUnconfirmedCountsWhatAPlayerHasNotAcknowledged: Unconfirmed counts the
// QoS 1 messages a device's connection subscribed to its commands has been sent
// and not acknowledged yet, the fewest of such connections (one that reads is
// not held up by one that does not), and none for a device without one; a
// connection of the device that does not subscribe does not count.
func TestUnconfirmedCountsWhatAPlayerHasNotAcknowledged(t *testing.T) {
	e := startBroker(t, EmbeddedConfig{PresenceOf: func(user, filter string) (string, bool) {
		return user, filter == user+"/commands"
	}})
	gate := make(chan struct{})
	slow := connect(t, e, "dev", func(o *paho.ClientOptions) { o.SetClientID("dev-slow") })
	// paho acknowledges a message once its handler returns.
	wait(t, "subscribe", slow.Subscribe("dev/commands", 1, func(paho.Client, paho.Message) { <-gate }))
	publish := func(n int) {
		for range n {
			e.Publish("dev/commands", []byte("command"), false, func(err error) {
				if err != nil {
					t.Errorf("publish: %v", err)
				}
			})
		}
	}
	publish(10)
	if got := e.Unconfirmed("dev"); got != 10 {
		t.Fatalf("Unconfirmed = %d with 10 sent to a player that acknowledges none, want 10", got)
	}
	other := connect(t, e, "dev", func(o *paho.ClientOptions) { o.SetClientID("dev-acks") })
	wait(t, "publish", other.Publish("dev/acks", 1, false, "ack"))
	if got := e.Unconfirmed("dev"); got != 10 {
		t.Fatalf("Unconfirmed = %d with a connection that does not subscribe beside, want 10", got)
	}
	var fastGot atomic.Int64
	wait(t, "subscribe", other.Subscribe("dev/commands", 1, func(paho.Client, paho.Message) { fastGot.Add(1) }))
	publish(1)
	testenv.WaitFor(t, 5*time.Second, "the second connection to have its command", func() bool { return fastGot.Load() == 1 })
	testenv.WaitFor(t, 5*time.Second, "the fewest unacknowledged: the second connection's", func() bool { return e.Unconfirmed("dev") == 0 })
	other.Disconnect(0)
	testenv.WaitFor(t, 5*time.Second, "the first connection's 11 once the second is gone", func() bool { return e.Unconfirmed("dev") == 11 })
	close(gate)
	testenv.WaitFor(t, 5*time.Second, "none once the player has acknowledged them", func() bool { return e.Unconfirmed("dev") == 0 })
	if got := e.Unconfirmed("nobody"); got != 0 {
		t.Fatalf("Unconfirmed = %d for a device without a connection", got)
	}
}

// TestConcurrentPublishesReportTheirOwnDrops: delivery publishes a fan-out from
// several goroutines; each must learn of the drops on its own topic, and only
// those.
func TestConcurrentPublishesReportTheirOwnDrops(t *testing.T) {
	e := startBroker(t, EmbeddedConfig{})
	topics := []string{"a/commands", "b/commands"}
	var received [2]atomic.Int64
	c := connect(t, e, "sub", nil)
	for i, topic := range topics {
		wait(t, "subscribe", c.Subscribe(topic, 1, func(paho.Client, paho.Message) { received[i].Add(1) }))
	}

	const n = 5000
	var dropped [2]int64
	var wg sync.WaitGroup
	procs := runtime.GOMAXPROCS(1) // see TestPublishReportsDrops
	for i, topic := range topics {
		wg.Go(func() {
			for range n {
				e.Publish(topic, []byte("command"), false, func(err error) {
					if errors.Is(err, ErrDropped) {
						dropped[i]++
					} else if err != nil {
						t.Errorf("publish: %v", err)
					}
				})
			}
		})
	}
	wg.Wait()
	runtime.GOMAXPROCS(procs)
	if dropped[0]+dropped[1] == 0 {
		t.Fatalf("no drop reported for two bursts of %d", n)
	}
	deadline := time.Now().Add(10 * time.Second)
	for received[0].Load()+received[1].Load() < 2*n-dropped[0]-dropped[1] && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	for i, topic := range topics {
		if got := received[i].Load(); got != n-dropped[i] {
			t.Errorf("%s: received %d, published %d, reported dropped %d", topic, got, n, dropped[i])
		}
	}
}

// TestUnretainedTopicsAreForwardedNotKept: a retained message or will on an
// Unretained topic reaches those subscribed at the time, as a live message, and
// is not kept for later subscribers; other retained messages still are.
func TestUnretainedTopicsAreForwardedNotKept(t *testing.T) {
	e := startBroker(t, EmbeddedConfig{
		Unretained: func(topic string) bool { return strings.HasSuffix(topic, "/status") },
	})
	type msg struct {
		topic, payload string
		retained       bool
	}
	live := make(chan msg, 10)
	if err := e.Subscribe("d/#", func(topic string, payload []byte, retained bool) {
		live <- msg{topic, string(payload), retained}
	}); err != nil {
		t.Fatal(err)
	}

	c, drop := connectDroppable(t, e, "d", func(o *paho.ClientOptions) { o.SetBinaryWill("d/status", []byte("offline"), 1, true) })
	for _, p := range []msg{{"d/status", "online", true}, {"d/desired", "state", true}} {
		wait(t, "publish", c.Publish(p.topic, 1, true, p.payload))
		if got := receive(t, live, "live message"); got.topic != p.topic || got.payload != p.payload || got.retained != (p.topic == "d/desired") {
			t.Fatalf("live subscriber got %+v after publishing %+v", got, p)
		}
	}
	drop() // not a clean disconnect: the will goes out
	if got := receive(t, live, "live message"); got != (msg{"d/status", "offline", false}) {
		t.Fatalf("live subscriber got %+v, want the will as a live message", got)
	}

	later := make(chan string, 10)
	s := connect(t, e, "s", nil)
	wait(t, "subscribe", s.Subscribe("d/#", 1, func(_ paho.Client, m paho.Message) { later <- m.Topic() }))
	select {
	case topic := <-later:
		if topic != "d/desired" {
			t.Fatalf("a later subscriber got a kept message on %s", topic)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the retained desired state was not kept")
	}
	select {
	case topic := <-later:
		t.Fatalf("a later subscriber got a kept message on %s", topic)
	case <-time.After(300 * time.Millisecond):
	}
}

// TestServerOnlyTopicsGoStraightToTheServer: a client's message on a ServerOnly
// topic reaches the server's handler once, at any QoS, acknowledged, and is
// routed and kept no further; a will on such a topic is still routed, and other
// topics are routed as before.
func TestServerOnlyTopicsGoStraightToTheServer(t *testing.T) {
	e := startBroker(t, EmbeddedConfig{
		Unretained: func(topic string) bool { return strings.HasSuffix(topic, "/status") },
		ServerOnly: func(topic string) bool {
			return strings.HasSuffix(topic, "/acks") || strings.HasSuffix(topic, "/status")
		},
	})
	type msg struct {
		topic, payload string
		retained       bool
	}
	handled := make(chan msg, 10)
	for _, f := range []string{"d/+/acks", "d/+/status", "d/+/other"} {
		if err := e.Subscribe(f, func(topic string, payload []byte, retained bool) {
			handled <- msg{topic, string(payload), retained}
		}); err != nil {
			t.Fatal(err)
		}
	}
	// The test's ACL lets this client read anything, which the real one never
	// allows on a ServerOnly topic: it gets what the broker routes.
	routed := make(chan string, 10)
	spy := connect(t, e, "spy", nil)
	wait(t, "subscribe", spy.Subscribe("d/#", 1, func(_ paho.Client, m paho.Message) { routed <- m.Topic() }))

	c, drop := connectDroppable(t, e, "p", func(o *paho.ClientOptions) { o.SetBinaryWill("d/p/status", []byte("offline"), 1, true) })
	for _, p := range []struct {
		msg
		qos byte
	}{
		{msg{"d/p/acks", "ack", false}, 1},
		{msg{"d/p/acks", "ack at most once", false}, 0},
		{msg{"d/p/acks", "ack exactly once", false}, 2},
		{msg{"d/p/acks", "retained ack", true}, 1}, // the handler sees the flag, the broker keeps nothing
		{msg{"d/p/status", "online", true}, 1},     // Unretained: a live message
		{msg{"d/p/other", "x", false}, 1},
	} {
		wait(t, "publish "+p.payload, c.Publish(p.topic, p.qos, p.retained, p.payload)) // acknowledged
		want := p.msg
		want.retained = p.retained && p.topic == "d/p/acks"
		if got := receive(t, handled, "handled message"); got != want {
			t.Fatalf("handler got %+v after publishing %+v", got, p)
		}
	}
	if topic := receive(t, routed, "routed message"); topic != "d/p/other" {
		t.Fatalf("a ServerOnly message was routed: %s", topic)
	}
	later := connect(t, e, "later", nil)
	wait(t, "subscribe", later.Subscribe("d/p/acks", 1, func(_ paho.Client, m paho.Message) {
		t.Errorf("the retained ack was kept: %q", m.Payload())
	}))
	drop() // not a clean disconnect: the will goes out, routed
	if got := receive(t, handled, "will"); got != (msg{"d/p/status", "offline", false}) {
		t.Fatalf("handler got %+v, want the will", got)
	}
	if topic := receive(t, routed, "routed message"); topic != "d/p/status" {
		t.Fatalf("routed %s, want the will", topic)
	}
	select {
	case m := <-handled:
		t.Fatalf("handler got %+v again", m)
	case topic := <-routed:
		t.Fatalf("routed %s again", topic)
	case <-time.After(300 * time.Millisecond):
	}
}

func TestMatches(t *testing.T) {
	for _, c := range []struct {
		filter, topic string
		want          bool
	}{
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"a/+/c", "a/b/c", true},
		{"a/+/c", "a/b/d", false},
		{"a/+/c", "a/b/c/d", false},
		{"a/+", "a", false},
		{"a/#", "a", true},
		{"a/#", "a/b/c", true},
		{"#", "a/b", true},
		{"+/+", "/b", true},
		{"a", "a/b", false},
		{"a/b", "a", false},
		{"#", "$SYS/x", false},
		{"+/x", "$SYS/x", false},
		{"$SYS/#", "$SYS/x", true},
		{"a/#", "a/$b", true},
		{"a/+", "a/", true},
		{"a/+/#", "a/b", true},
		{"a/+/#", "a", false},
	} {
		if got := matches(c.filter, c.topic); got != c.want {
			t.Errorf("matches(%q, %q) = %v, want %v", c.filter, c.topic, got, c.want)
		}
	}
}

// TestRetainedMessagesDoNotExpire: a retained desired state stays however old it
// is (mochi's default removed retained messages after a day).
func TestRetainedMessagesDoNotExpire(t *testing.T) {
	e := startBroker(t, EmbeddedConfig{})
	e.srv.Topics.RetainMessage(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Retain: true},
		TopicName:   "d/desired", Payload: []byte("state"),
		Created: time.Now().Add(-48 * time.Hour).Unix(),
	})
	time.Sleep(1500 * time.Millisecond) // mochi looks for expired messages every second
	if got := e.srv.Topics.Messages("d/desired"); len(got) != 1 {
		t.Fatalf("a two-day-old retained message is gone (%d left)", len(got))
	}
}

// startBroker starts an embedded broker on loopback that admits every client,
// named or anonymous, to every topic, with cfg's other settings; the test stops it.
func startBroker(t *testing.T, cfg EmbeddedConfig) *Embedded {
	t.Helper()
	cfg.TCPAddr, cfg.AllowAnonymous, cfg.Logger = "127.0.0.1:0", true, slog.New(slog.DiscardHandler)
	cfg.Authenticate = func(string, string) bool { return true }
	cfg.Allow = func(string, string, bool) bool { return true }
	e, err := StartEmbedded(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// connect connects a paho client to e with id as its client id and username;
// set, if not nil, adds options. The test disconnects it.
func connect(t *testing.T, e *Embedded, id string, set func(*paho.ClientOptions)) paho.Client {
	t.Helper()
	opts := paho.NewClientOptions().AddBroker("tcp://" + e.Addr()).SetClientID(id).SetUsername(id).SetAutoReconnect(false)
	if set != nil {
		set(opts)
	}
	c := paho.NewClient(opts)
	wait(t, "connect", c.Connect())
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

// connectDroppable is connect, and also returns what drops the connection as a
// crash or a network failure would, without a DISCONNECT: the broker sends the
// client's will. (When the broker closes a connection itself, mochi sends the
// will only if the client's read loop is waiting in a read at that moment.)
func connectDroppable(t *testing.T, e *Embedded, id string, set func(*paho.ClientOptions)) (paho.Client, func()) {
	t.Helper()
	var (
		mu   sync.Mutex
		conn net.Conn
	)
	c := connect(t, e, id, func(o *paho.ClientOptions) {
		if set != nil {
			set(o)
		}
		o.SetCustomOpenConnectionFn(func(*url.URL, paho.ClientOptions) (net.Conn, error) {
			nc, err := net.Dial("tcp", e.Addr())
			mu.Lock()
			conn = nc
			mu.Unlock()
			return nc, err
		})
	})
	return c, func() {
		mu.Lock()
		defer mu.Unlock()
		conn.Close()
	}
}

// receive returns the next value from ch, failing the test after 5 s without one.
func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("no %s within 5 s", what)
		var zero T
		return zero
	}
}

// wait fails the test unless tok completes without error within 5 s.
func wait(t *testing.T, what string, tok paho.Token) {
	t.Helper()
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("%s: %v", what, tok.Error())
	}
}

// A player that reconnects with the same client id while mochi is still
// tearing down its previous connection keeps the new session: mochi removes a
// closed clean session by client id, and a reconnect set up in between used to
// lose its entry, so that nothing published to it arrived (mochi-mqtt/server#483).
func TestReconnectDuringTeardownKeepsTheNewSession(t *testing.T) {
	e := startBroker(t, EmbeddedConfig{})
	if err := e.srv.AddHook(&slowTeardown{}, nil); err != nil {
		t.Fatal(err)
	}
	const topic = "dev/commands"
	old := connect(t, e, "player", nil)
	wait(t, "subscribe", old.Subscribe(topic, 1, nil))
	old.Disconnect(0)
	time.Sleep(50 * time.Millisecond) // its teardown is under way, held up for 300 ms

	connectAndReceive(t, e, topic, 400*time.Millisecond)
}

// connectAndReceive connects a client as "player" and subscribes it to topic;
// once settle has passed (the previous connection's teardown is over), a
// message published on topic must reach it.
func connectAndReceive(t *testing.T, e *Embedded, topic string, settle time.Duration) {
	t.Helper()
	got := make(chan struct{}, 1)
	c := connect(t, e, "player", nil)
	wait(t, "subscribe", c.Subscribe(topic, 1, func(paho.Client, paho.Message) {
		select {
		case got <- struct{}{}:
		default:
		}
	}))
	time.Sleep(settle)
	e.Publish(topic, []byte("command"), false, func(err error) {
		if err != nil {
			t.Errorf("publish: %v", err)
		}
	})
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("the new connection got nothing: the old connection's teardown removed its session")
	}
}

// slowTeardown holds up the first teardown of a closed client's subscriptions,
// which mochi runs after finding the client not taken over and before deleting
// it by client id: the window in which a reconnect lost its session.
type slowTeardown struct {
	mqtt.HookBase
	slept atomic.Bool
}

func (h *slowTeardown) ID() string           { return "slow-teardown" }
func (h *slowTeardown) Provides(b byte) bool { return b == mqtt.OnUnsubscribed }

func (h *slowTeardown) OnUnsubscribed(cl *mqtt.Client, _ packets.Packet) {
	if cl.Closed() && h.slept.CompareAndSwap(false, true) {
		time.Sleep(300 * time.Millisecond)
	}
}

// A player that connects again with the same client id while its previous
// connection is still open (a page reloaded before the browser closed the old
// socket) keeps the new session. mochi closes the old connection and, on
// another goroutine, tears it down; when that teardown ran between mochi's
// takeover steps, it found the old client "not taken over" and deleted the
// client id after the new one had been added under it, so nothing published
// to the player arrived until it reconnected again.
func TestTakeoverKeepsTheNewSession(t *testing.T) {
	e := startBroker(t, EmbeddedConfig{})
	if err := e.srv.AddHook(&slowTakeover{}, nil); err != nil {
		t.Fatal(err)
	}
	const topic = "dev/commands"
	old := connect(t, e, "player", nil)
	wait(t, "subscribe", old.Subscribe(topic, 1, nil))

	connectAndReceive(t, e, topic, 500*time.Millisecond) // takes over while the old one is open
}

// slowTakeover widens, the same way each time, the window a takeover left
// open: the new connection's removal of the old one's subscriptions (which
// still lists them) takes 100 ms, and the old connection's own teardown
// (which finds them gone) 300 ms, so that it deletes the client id after the
// new connection is set up.
type slowTakeover struct{ mqtt.HookBase }

func (h *slowTakeover) ID() string           { return "slow-takeover" }
func (h *slowTakeover) Provides(b byte) bool { return b == mqtt.OnUnsubscribed }

func (h *slowTakeover) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	if cl.Net.Inline || !cl.Closed() {
		return
	}
	if len(pk.Filters) > 0 {
		time.Sleep(100 * time.Millisecond)
	} else {
		time.Sleep(300 * time.Millisecond)
	}
}

// TestPersistentSessionsExpire: a persistent session whose client has gone is
// dropped after SessionExpiry, with what was queued for it.
func TestPersistentSessionsExpire(t *testing.T) {
	e := startBroker(t, EmbeddedConfig{SessionExpiry: time.Second})
	c := connect(t, e, "gone", func(o *paho.ClientOptions) { o.SetCleanSession(false) })
	wait(t, "subscribe", c.Subscribe("dev/commands", 1, func(paho.Client, paho.Message) {}))
	c.Disconnect(0)
	session := func() bool {
		for _, cl := range e.srv.Clients.GetAll() {
			if strings.HasSuffix(cl.ID, "gone") {
				return true
			}
		}
		return false
	}
	if !session() {
		t.Fatal("the persistent session was not kept at all")
	}
	deadline := time.Now().Add(10 * time.Second)
	for session() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if session() {
		t.Fatal("the persistent session outlived SessionExpiry")
	}
}

// A player's packet identifiers are its own (MQTT 5, 2.2.1): a SUBSCRIBE, or
// a QoS 1 PUBLISH, under the identifier of a message the broker sent it and
// it has not PUBACKed yet is handled as any other, and that message stays in
// flight. Both sides count from 1, so a player with commands waiting for it
// that subscribes to a second topic in a second SUBSCRIBE used to be refused
// it (0x91, "packet identifier in use", even on MQTT 3.1.1).
func TestPlayersPacketIDsAreItsOwn(t *testing.T) {
	e := startBroker(t, EmbeddedConfig{})
	got := make(chan paho.Message, 10)
	c := connect(t, e, "player", func(o *paho.ClientOptions) { o.SetAutoAckDisabled(true) })
	wait(t, "subscribe", c.Subscribe("dev/commands", 1, func(_ paho.Client, m paho.Message) { got <- m }))
	for i := range 3 {
		e.Publish("dev/commands", []byte{'0' + byte(i)}, false, func(error) {})
	}
	var held []paho.Message // not PUBACKed yet: the broker's identifiers 1, 2 and 3 are in flight
	for range 3 {
		held = append(held, receive(t, got, "command"))
	}
	cl, ok := e.srv.Clients.Get("player\x00player") // ids are kept per user (hook_auth.go)
	if !ok {
		t.Fatal("no client")
	}
	inFlight := func(want int, when string) {
		t.Helper()
		testenv.WaitFor(t, 5*time.Second, fmt.Sprintf("%s: %d messages in flight", when, want), func() bool { return cl.State.Inflight.Len() == want })
	}
	inFlight(3, "before")

	tok := c.Subscribe("dev/desired", 1, nil) // paho's identifier 2
	wait(t, "the second subscribe", tok)
	if code := tok.(*paho.SubscribeToken).Result()["dev/desired"]; code != 1 {
		t.Fatalf("the second SUBSCRIBE was refused: code %#x", code)
	}
	wait(t, "a QoS 1 publish", c.Publish("dev/status", 1, false, "online")) // paho's 3
	inFlight(3, "after the player's own packets")

	for i := range 3 {
		e.Publish("dev/commands", []byte{'3' + byte(i)}, false, func(error) {})
		held = append(held, receive(t, got, "command")) // the broker's 4, 5 and 6
	}
	wait(t, "unsubscribe", c.Unsubscribe("dev/desired")) // paho's 4
	if _, ok := cl.State.Subscriptions.Get("dev/desired"); ok {
		t.Fatal("the UNSUBSCRIBE was refused")
	}
	inFlight(6, "after the unsubscribe")
	for _, m := range held {
		m.Ack()
	}
	inFlight(0, "after the PUBACKs")
}

// One login cannot pile up sessions: connecting under ever new client ids
// with persistent sessions (a stolen device token, or a misconfigured player
// with a random client id) leaves MaxSessionsPerLogin sessions at most, the
// newest; its newest connection always gets in, and an older one still
// connected is closed. Disconnect (a token rotation) deletes the kept ones,
// with the commands queued in them.
func TestSessionsPerLoginAreBounded(t *testing.T) {
	e := startBroker(t, EmbeddedConfig{})
	const topic = "dev/commands"
	persistent := func(user string) func(*paho.ClientOptions) {
		return func(o *paho.ClientOptions) { o.SetCleanSession(false).SetUsername(user) }
	}
	live := connect(t, e, "first", persistent("dev"))
	wait(t, "subscribe", live.Subscribe(topic, 1, func(paho.Client, paho.Message) {}))
	for i := range 3 * MaxSessionsPerLogin {
		c := connect(t, e, fmt.Sprint("ghost-", i), persistent("dev"))
		wait(t, "subscribe", c.Subscribe(topic, 1, func(paho.Client, paho.Message) {}))
		c.Disconnect(0)
	}
	kept := func(user string) (n int) {
		for _, cl := range e.srv.Clients.GetAll() {
			if string(cl.Properties.Username) == user {
				n++
			}
		}
		return n
	}
	deadline := time.Now().Add(5 * time.Second)
	for live.IsConnectionOpen() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if live.IsConnectionOpen() {
		t.Fatal("the oldest session's connection is still open past the bound")
	}
	if n := kept("dev"); n != MaxSessionsPerLogin || e.sessions.sessions("dev") != n {
		t.Fatalf("%d sessions kept for one login (%d counted), want %d", n, e.sessions.sessions("dev"), MaxSessionsPerLogin)
	}
	// Another login is not touched by this one's bound.
	other := connect(t, e, "other", persistent("other"))
	wait(t, "subscribe", other.Subscribe(topic, 1, func(paho.Client, paho.Message) {}))
	if !other.IsConnectionOpen() {
		t.Fatal("another login's connection was closed")
	}
	e.Disconnect("dev")
	if n := kept("dev"); n != 0 {
		t.Fatalf("%d sessions kept after Disconnect", n)
	}
	if n := kept("other"); n != 1 {
		t.Fatalf("Disconnect of one login left %d sessions of another", n)
	}
}
