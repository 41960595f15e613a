package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// EmbeddedConfig configures the embedded broker.
type EmbeddedConfig struct {
	TCPAddr string // required, e.g. ":1883" or "127.0.0.1:0"
	WSAddr  string // optional MQTT over WebSocket, e.g. ":8083"

	// Authenticate admits a client by MQTT username and password.
	Authenticate func(username, password string) bool
	// PlausibleUser tells a username that could be a login's (a device id)
	// from one that could not: a refused login's line shows the first, and
	// only the length of the other, which anyone may have typed.
	PlausibleUser func(username string) bool
	// AllowAnonymous admits clients without a username (development only); they
	// are still subject to Allow with an empty username.
	AllowAnonymous bool
	// Allow is the ACL: may username read (write=false) or write this topic?
	Allow func(username, topic string, write bool) bool
	// WhyRefused, if set, says why Allow (or WillAllowed: access "will")
	// refused a logged-in client a topic, for the log line that tells its
	// developer; access is "subscribe", "publish" or "will".
	WhyRefused func(username, topic, access string) string
	// WillAllowed says whether username may name this topic as its last will
	// (a player's own status topic); nil leaves it to Allow, as a write.
	WillAllowed func(username, topic string) bool
	// PresenceOf tells which subscription makes a client present, and as which
	// device (its own commands topic); OnPresent and OnAbsent follow such
	// subscriptions, once per connection.
	PresenceOf func(username, filter string) (deviceID string, ok bool)
	OnPresent  func(deviceID string)
	OnAbsent   func(deviceID string)
	// Unretained, if set, names topics whose retained messages (and wills) the
	// broker forwards as live ones but does not keep: topics only the server
	// reads, and needs only live. A player's retained status would otherwise be
	// kept for nothing, and mochi copies every retained message once a second to
	// look for expired ones.
	Unretained func(topic string) bool
	// ServerOnly, if set, names topics that no client may read (the ACL lets
	// none subscribe to them): only the server's own subscriptions (Subscribe)
	// can match them. A client's message on one goes straight to the matching
	// handler, without the broker's routing, whose topic-index lookup
	// allocates several KB per message; every player's acks and status take
	// this path. Wills are still routed.
	ServerOnly func(topic string) bool

	// SessionExpiry is how long the broker keeps a persistent session (MQTT
	// 3.1.1 clean session off, or a v5 session expiry) after its client has
	// gone, with its subscriptions and what is queued for it. Default
	// DefaultSessionExpiry.
	SessionExpiry time.Duration

	Logger *slog.Logger
}

// DefaultSessionExpiry is as long as a command can live (its TTL is 7 days at
// most): a session kept longer could only hold expired ones. mochi's own
// default (136 years) kept the session of a deleted device, or of a player
// reinstalled under another client id, for good, collecting up to 8192
// commands.
const DefaultSessionExpiry = 7 * 24 * time.Hour

// MaxPacketSize bounds every MQTT packet the embedded broker reads.
const MaxPacketSize = 256 << 10

// Embedded is a running mochi-mqtt broker.
type Embedded struct {
	srv      *mqtt.Server
	tcpAddr  string
	wsAddr   string
	auth     *authHook
	routing  *routingHook
	sessions *sessionsHook
	presence *presenceHook
	close    sync.Once
}

// ErrDropped means the broker took a message but dropped it for a subscriber
// whose write queue was full (a client that reads slower than it is sent to).
var ErrDropped = errors.New("broker: message dropped: the subscriber's write queue is full")

// StartEmbedded binds the listeners and starts the broker.
func StartEmbedded(cfg EmbeddedConfig) (*Embedded, error) {
	opts := &mqtt.Options{InlineClient: true, Logger: mochiLogger(cfg.Logger)}
	// A partial Capabilities makes clients fail to connect: start from the defaults.
	opts.Capabilities = mqtt.NewDefaultServerCapabilities()
	// The default (8192) preallocates a 64 KB channel per client: 650 MB for
	// 10,000 players. A player has a handful of commands in flight at most.
	opts.Capabilities.MaximumClientWritesPending = 256
	// mochi's default (a day) deletes retained messages older than that: a
	// player restarting a day after its desired state last changed got none.
	opts.Capabilities.MaximumMessageExpiryInterval = 0
	// Without a limit mochi allocates whatever size a CONNECT header claims
	// (up to 256 MB) before authenticating: cap every packet.
	opts.Capabilities.MaximumPacketSize = MaxPacketSize
	// MQTT 5 topic aliases from clients: none (the CONNACK then announces no
	// maximum, which is 0). mochi checks the ACL before it resolves an alias,
	// so an ack sent by alias was refused (PUBACK 0x87) and lost, the player
	// connected all the while; with none allowed, a client that sends one
	// anyway is disconnected (0x94), which it and its log can see.
	opts.Capabilities.TopicAliasMaximum = 0
	if cfg.SessionExpiry <= 0 {
		cfg.SessionExpiry = DefaultSessionExpiry
	}
	opts.Capabilities.MaximumSessionExpiryInterval = uint32(max(1, cfg.SessionExpiry/time.Second))
	srv := mqtt.New(opts)
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	auth := &authHook{cfg: cfg, srv: srv, log: log, refusedLog: newRefusalLog(cfg.PlausibleUser)}
	routing := &routingHook{cfg: cfg, watching: map[string]watched{}}
	sessions := &sessionsHook{srv: srv, max: MaxSessionsPerLogin, byUser: map[string][]string{}}
	presence := &presenceHook{cfg: cfg, srv: srv, present: map[*mqtt.Client]string{}, byDevice: map[string][]*mqtt.Client{}}
	for _, hook := range []mqtt.Hook{
		auth,
		presence,
		sessions,
		routing,
		&packetIDHook{},
		&connackHook{},
		&mqtt3DisconnectHook{},
	} {
		if err := srv.AddHook(hook, nil); err != nil {
			return nil, fmt.Errorf("broker: add hook %s: %w", hook.ID(), err)
		}
	}
	e := &Embedded{srv: srv, auth: auth, routing: routing, sessions: sessions, presence: presence}

	ln, err := net.Listen("tcp", cfg.TCPAddr)
	if err != nil {
		return nil, fmt.Errorf("broker: listen mqtt %s: %w", cfg.TCPAddr, err)
	}
	e.tcpAddr = ln.Addr().String()
	if err := srv.AddListener(&netListener{id: "tcp", ln: ln, closeClients: e.safeCloseClients}); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("broker: add tcp listener: %w", err)
	}
	if cfg.WSAddr != "" {
		wln, err := net.Listen("tcp", cfg.WSAddr)
		if err != nil {
			_ = srv.Close()
			return nil, fmt.Errorf("broker: listen mqtt websocket %s: %w", cfg.WSAddr, err)
		}
		e.wsAddr = wln.Addr().String()
		wl := newWSListener("ws", wln)
		wl.closeClients = e.safeCloseClients
		if err := srv.AddListener(wl); err != nil {
			_ = wln.Close()
			_ = srv.Close()
			return nil, fmt.Errorf("broker: add websocket listener: %w", err)
		}
	}
	if err := srv.Serve(); err != nil {
		_ = srv.Close()
		return nil, fmt.Errorf("broker: serve: %w", err)
	}
	return e, nil
}

// mqtt3DisconnectHook keeps the broker from sending DISCONNECT to an MQTT 3.1
// or 3.1.1 client: there only the client sends it (MQTT 3.1.1 §3.14), and the
// server just closes the connection. mochi's DisconnectClient, the one place
// that builds a server's DISCONNECT, writes it whatever the client's version;
// every client the broker throws out goes through it (Disconnect, a refused
// QoS 1 publish inside mochi, a takeover, a session past the bound, Close).
type mqtt3DisconnectHook struct{ mqtt.HookBase }

func (h *mqtt3DisconnectHook) ID() string { return "devicehooks-mqtt3-disconnect" }

func (h *mqtt3DisconnectHook) Provides(b byte) bool { return b == mqtt.OnPacketEncode }

// OnPacketEncode makes a DISCONNECT to an MQTT 3 client one that mochi cannot
// encode, so that it writes nothing; DisconnectClient then closes the
// connection as before (the will is sent, presence follows as ever).
func (h *mqtt3DisconnectHook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type == packets.Disconnect && cl.Properties.ProtocolVersion < 5 {
		pk.FixedHeader.Type = packets.Reserved
	}
	return pk
}

// safeCloseClients disconnects a listener's clients when it closes. mochi's own
// (closeListenerClients) takes the clients' read lock twice, recursively, and
// deadlocks Close when a client disconnects at that moment (v2.7.9).
func (e *Embedded) safeCloseClients(listener string) {
	for _, cl := range e.srv.Clients.GetAll() {
		if cl.Net.Listener == listener && !cl.Closed() {
			_ = e.srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	}
}

// Addr is the bound MQTT TCP address.
func (e *Embedded) Addr() string { return e.tcpAddr }

// WSAddr is the bound MQTT-over-WebSocket address, or "".
func (e *Embedded) WSAddr() string { return e.wsAddr }

// Publish publishes through the inline client, which bypasses the ACL. The
// broker has handed the message to its subscribers' write queues when this
// returns, so done runs at once: with ErrDropped if a queue was full and the
// message was dropped (mochi drops rather than blocks), so that it is sent again.
// It may be called from several goroutines at once.
func (e *Embedded) Publish(topic string, payload []byte, retained bool, done func(error)) {
	e.routing.watch(topic)
	err := e.srv.Publish(topic, payload, retained, 1)
	if e.routing.unwatch(topic) && err == nil {
		err = ErrDropped
	}
	done(err)
}

// Unconfirmed returns how many messages a device's player has been sent and
// not yet acknowledged (PUBACK), or has waiting in its write queue: the fewest
// of its connections subscribed to its commands topic (PresenceOf). mochi
// queues at most MaximumClientWritesPending (256) messages for a connection
// and drops what comes past that, so delivery keeps a device's commands
// within a window of this count.
func (e *Embedded) Unconfirmed(device string) int { return e.presence.unconfirmed(device) }

// Connected is always true: the broker is in the process.
func (e *Embedded) Connected() bool { return true }

// Subscribe calls handler for every message on filter, including retained ones.
// handler runs on the publishing client's goroutine: it must not block for long.
func (e *Embedded) Subscribe(filter string, handler func(topic string, payload []byte, retained bool)) error {
	err := e.srv.Subscribe(filter, 1, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		handler(pk.TopicName, pk.Payload, pk.FixedHeader.Retain)
	})
	if err == nil {
		e.routing.addRoute(filter, handler)
	}
	return err
}

// Disconnect closes every connection logged in as username and deletes the
// sessions kept for it, with the commands queued in them (after a token
// rotation or a device's deletion: nothing sent under the old token is
// delivered under the new one).
func (e *Embedded) Disconnect(username string) {
	e.sessions.endAll(username, packets.ErrNotAuthorized)
	for _, cl := range e.srv.Clients.GetAll() { // one still logging in
		if !cl.Net.Inline && string(cl.Properties.Username) == username {
			throwOut(e.srv, cl, packets.ErrNotAuthorized)
		}
	}
}

// throwOut closes a client's connection from the server's side, its will
// sent first, as for any close but the client's own DISCONNECT. mochi sends
// the will only if the client's reader is inside a read when the
// connection closes: between two packets (just after the subscription that
// made the device present, say) it reads the close as the client's own and
// drops the will. Taking the will's flag first sends it once, whichever way
// the reader ends.
func throwOut(srv *mqtt.Server, cl *mqtt.Client, code packets.Code) {
	if atomic.CompareAndSwapUint32(&cl.Properties.Will.Flag, 1, 0) {
		w := cl.Properties.Will
		_ = srv.Publish(w.TopicName, w.Payload, false, w.Qos) // never retained, as OnWill makes every will
	}
	_ = srv.DisconnectClient(cl, code)
}

// RefusedLogins counts the connections refused for their username and
// password (or without one), since start.
func (e *Embedded) RefusedLogins() int64 { return e.auth.refused.Load() }

// Denied counts what the embedded broker refused of logged-in clients, since
// start: a will, a subscription or a publish on a topic the device may not use.
func (e *Embedded) Denied() int64 { return e.auth.denied.Load() }

// Close stops the listeners and disconnects every client; safe to call twice.
func (e *Embedded) Close() error {
	var err error
	e.close.Do(func() { err = e.srv.Close() })
	return err
}
