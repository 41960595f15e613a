package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
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
	// AllowAnonymous admits clients without a username (development only); they
	// are still subject to Allow with an empty username.
	AllowAnonymous bool
	// Allow is the ACL: may username read (write=false) or write this topic?
	Allow func(username, topic string, write bool) bool
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
	srv     *mqtt.Server
	tcpAddr string
	wsAddr  string
	hook    *deviceHook
	close   sync.Once
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
	if cfg.SessionExpiry <= 0 {
		cfg.SessionExpiry = DefaultSessionExpiry
	}
	opts.Capabilities.MaximumSessionExpiryInterval = uint32(max(1, cfg.SessionExpiry/time.Second))
	srv := mqtt.New(opts)
	hook := &deviceHook{cfg: cfg, srv: srv, log: cfg.Logger, present: map[*mqtt.Client]string{}, watching: map[string]watched{}}
	if hook.log == nil {
		hook.log = slog.Default()
	}
	if err := srv.AddHook(hook, nil); err != nil {
		return nil, fmt.Errorf("broker: add hook: %w", err)
	}
	e := &Embedded{srv: srv, hook: hook}

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
	e.hook.watch(topic)
	err := e.srv.Publish(topic, payload, retained, 1)
	if e.hook.unwatch(topic) && err == nil {
		err = ErrDropped
	}
	done(err)
}

// Connected is always true: the broker is in the process.
func (e *Embedded) Connected() bool { return true }

// Subscribe calls handler for every message on filter, including retained ones.
// handler runs on the publishing client's goroutine: it must not block for long.
func (e *Embedded) Subscribe(filter string, handler func(topic string, payload []byte, retained bool)) error {
	err := e.srv.Subscribe(filter, 1, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		handler(pk.TopicName, pk.Payload, pk.FixedHeader.Retain)
	})
	if err == nil {
		e.hook.addRoute(filter, handler)
	}
	return err
}

// Disconnect closes every connection logged in as username (after a token
// rotation or a device's deletion).
func (e *Embedded) Disconnect(username string) {
	for _, cl := range e.srv.Clients.GetAll() {
		if !cl.Net.Inline && string(cl.Properties.Username) == username {
			_ = e.srv.DisconnectClient(cl, packets.ErrNotAuthorized)
		}
	}
}

// Clients returns how many network clients are connected.
func (e *Embedded) Clients() int {
	n := 0
	for _, cl := range e.srv.Clients.GetAll() {
		if !cl.Net.Inline && !cl.Closed() {
			n++
		}
	}
	return n
}

// Close stops the listeners and disconnects every client; safe to call twice.
func (e *Embedded) Close() error {
	var err error
	e.close.Do(func() { err = e.srv.Close() })
	return err
}

// deviceHook admits clients by username and password, enforces the ACL, and
// follows presence subscriptions.
type deviceHook struct {
	mqtt.HookBase
	cfg EmbeddedConfig
	srv *mqtt.Server
	log *slog.Logger

	mu      sync.Mutex
	present map[*mqtt.Client]string // connection -> the device it is present as

	dropMu   sync.Mutex
	watching map[string]watched // topics of the inline publishes in progress

	routeMu sync.Mutex              // serialises addRoute; deliver reads without it
	routes  atomic.Pointer[[]route] // the server's subscriptions, for ServerOnly topics
}

// route is one of the server's subscriptions.
type route struct {
	filter  string
	handler func(topic string, payload []byte, retained bool)
}

// watched counts the inline publishes in progress on one topic, and whether a
// message on it was dropped meanwhile. Two at once on the same topic both report
// a drop of either: the message is sent again, and players dedupe by command id.
type watched struct {
	n       int
	dropped bool
}

func (h *deviceHook) ID() string { return "devicehooks-auth" }

func (h *deviceHook) Provides(b byte) bool {
	switch b { // asked for every hook on every event: keep it cheap
	case mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnSubscribed, mqtt.OnSessionEstablish,
		mqtt.OnSessionEstablished, mqtt.OnUnsubscribed, mqtt.OnDisconnect, mqtt.OnPublishDropped, mqtt.OnWill:
		return true
	case mqtt.OnPublish:
		return h.cfg.Unretained != nil || h.cfg.ServerOnly != nil
	}
	return false
}

// OnPublish forwards a retained message on an Unretained topic as a live one,
// and hands a client's message on a ServerOnly topic to the server's handler,
// telling mochi to acknowledge it but route it no further.
func (h *deviceHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Retain && h.cfg.Unretained != nil && h.cfg.Unretained(pk.TopicName) {
		pk.FixedHeader.Retain = false
	}
	if !cl.Net.Inline && h.cfg.ServerOnly != nil && h.cfg.ServerOnly(pk.TopicName) &&
		h.deliver(pk.TopicName, pk.Payload, pk.FixedHeader.Retain) {
		return pk, packets.CodeSuccessIgnore
	}
	return pk, nil
}

// addRoute notes one of the server's subscriptions; as in mochi, a second
// subscription to the same filter replaces the first. Subscribe may run while
// clients publish: the list is copied, never changed in place.
func (h *deviceHook) addRoute(filter string, handler func(topic string, payload []byte, retained bool)) {
	h.routeMu.Lock()
	defer h.routeMu.Unlock()
	var routes []route
	if old := h.routes.Load(); old != nil {
		for _, r := range *old {
			if r.filter != filter {
				routes = append(routes, r)
			}
		}
	}
	routes = append(routes, route{filter, handler})
	h.routes.Store(&routes)
}

// deliver calls the handler of every server subscription matching topic, as
// mochi's routing would, and tells whether there was one.
func (h *deviceHook) deliver(topic string, payload []byte, retained bool) bool {
	routes := h.routes.Load()
	if routes == nil {
		return false
	}
	found := false
	for _, r := range *routes {
		if matches(r.filter, topic) {
			r.handler(topic, payload, retained)
			found = true
		}
	}
	return found
}

// matches tells whether an MQTT topic filter (with + and # wildcards) matches
// a topic name.
func matches(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false // [MQTT-4.7.2-1]
	}
	for {
		f, fRest, fMore := strings.Cut(filter, "/")
		if f == "#" {
			return true
		}
		t, tRest, tMore := strings.Cut(topic, "/")
		if f != "+" && f != t {
			return false
		}
		switch {
		case !tMore:
			return !fMore || fRest == "#" // "a/#" matches "a" too
		case !fMore:
			return false
		}
		filter, topic = fRest, tRest
	}
}

// OnWill sends every will as a live message, never retained: the ACL lets a
// client set a will only on a topic it may publish to (OnConnect), and those
// are read by the server alone, which needs them live.
func (h *deviceHook) OnWill(_ *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	will.Retain = false
	return will, nil
}

// OnConnect refuses, as not authorised, a client whose will names a topic its
// username may not publish to. mochi publishes a will without asking the ACL,
// so a device could otherwise send any message to any topic, retained, by
// connecting with it as its will and dropping the connection. Authentication
// follows and checks that the username is the client's own.
func (h *deviceHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	if !pk.Connect.WillFlag {
		return nil
	}
	user := string(pk.Connect.Username)
	if h.cfg.Allow != nil && h.cfg.Allow(user, pk.Connect.WillTopic, true) {
		return nil
	}
	// Debug: logged before authentication, so anyone could fill the log.
	h.log.Debug("mqtt: connection refused: its will's topic is not one the client may publish to",
		"user", user, "will_topic", pk.Connect.WillTopic, "remote", cl.Net.Remote)
	code := packets.ErrNotAuthorized
	if cl.Properties.ProtocolVersion < 5 {
		// mochi sends MQTT 3's "not authorised" (5) for this one; it has no
		// MQTT 3 code for ErrNotAuthorized and would send 0x87.
		code = packets.ErrBadUsernameOrPassword
	}
	if err := h.srv.SendConnack(cl, code, false, nil); err != nil {
		return err
	}
	return code
}

// watch starts noting drops of inline messages on topic; unwatch stops and tells
// whether one was dropped.
func (h *deviceHook) watch(topic string) {
	h.dropMu.Lock()
	w := h.watching[topic]
	w.n++
	h.watching[topic] = w
	h.dropMu.Unlock()
}

func (h *deviceHook) unwatch(topic string) bool {
	h.dropMu.Lock()
	defer h.dropMu.Unlock()
	w := h.watching[topic]
	if w.n--; w.n <= 0 {
		delete(h.watching, topic)
	} else {
		h.watching[topic] = w
	}
	return w.dropped
}

// OnPublishDropped runs, on the publishing goroutine, when mochi drops a message
// for a client whose write queue is full.
func (h *deviceHook) OnPublishDropped(cl *mqtt.Client, pk packets.Packet) {
	if pk.Origin != mqtt.InlineClientId {
		return
	}
	h.dropMu.Lock()
	if w, ok := h.watching[pk.TopicName]; ok {
		w.dropped = true
		h.watching[pk.TopicName] = w
	}
	h.dropMu.Unlock()
}

func (h *deviceHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	user := string(pk.Connect.Username)
	ok := false
	if user == "" {
		ok = h.cfg.AllowAnonymous && len(pk.Connect.Password) == 0
	} else {
		ok = h.cfg.Authenticate != nil && h.cfg.Authenticate(user, string(pk.Connect.Password))
	}
	if ok {
		// Sessions are found by client id: put each login's ids in its own
		// namespace, so a device that reuses another's client id cannot take
		// over (and disconnect) that device's session.
		cl.ID = user + "\x00" + cl.ID
	}
	return ok
}

func (h *deviceHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	return h.cfg.Allow != nil && h.cfg.Allow(string(cl.Properties.Username), topic, write)
}

// teardownWait bounds how long a reconnect waits for its previous connection's
// teardown.
const teardownWait = time.Second

// OnSessionEstablish runs once a client has logged in, before mochi looks for
// an earlier session of its client id. If the earlier connection has closed
// and mochi is still tearing its clean session down, it waits for that to end
// (teardownWait at most). mochi deletes the closed client by client id at the
// end of its teardown; a reconnect set up before then was deleted in its place,
// and nothing published to it arrived until it reconnected again
// (mochi-mqtt/server#483). A page reload or a quick reconnect of a player hits
// it. An earlier connection still open is taken over as before.
func (h *deviceHook) OnSessionEstablish(cl *mqtt.Client, _ packets.Packet) {
	deadline := time.Now().Add(teardownWait)
	for time.Now().Before(deadline) {
		old, ok := h.srv.Clients.Get(cl.ID)
		if !ok || old == cl || !old.Closed() || !endsWithConnection(old) {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// endsWithConnection tells whether mochi discards cl's session when its
// connection ends (as mochi decides it in attachClient).
func endsWithConnection(cl *mqtt.Client) bool {
	if cl.Properties.ProtocolVersion == 5 {
		return cl.Properties.Props.SessionExpiryInterval == 0
	}
	return cl.Properties.Clean
}

// OnSessionEstablished covers a resumed session whose subscriptions were kept.
func (h *deviceHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	for filter := range cl.State.Subscriptions.GetAll() {
		h.subscribed(cl, filter)
	}
}

func (h *deviceHook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, reasonCodes []byte) {
	if cl.Net.Inline {
		return
	}
	for i, f := range pk.Filters {
		if i < len(reasonCodes) && reasonCodes[i] < 0x80 { // granted
			h.subscribed(cl, f.Filter)
		}
	}
}

func (h *deviceHook) subscribed(cl *mqtt.Client, filter string) {
	if h.cfg.PresenceOf == nil {
		return
	}
	id, ok := h.cfg.PresenceOf(string(cl.Properties.Username), filter)
	if !ok {
		return
	}
	h.mu.Lock()
	_, already := h.present[cl]
	if !already {
		h.present[cl] = id
	}
	h.mu.Unlock()
	if !already && h.cfg.OnPresent != nil {
		h.cfg.OnPresent(id)
	}
}

// OnUnsubscribed: a connection that no longer listens on its commands topic is
// no longer present, though still connected (nothing sent would reach it).
func (h *deviceHook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	if cl.Net.Inline || h.cfg.PresenceOf == nil {
		return
	}
	for _, f := range pk.Filters {
		if _, ok := h.cfg.PresenceOf(string(cl.Properties.Username), f.Filter); ok {
			h.absent(cl)
		}
	}
}

func (h *deviceHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) { h.absent(cl) }

func (h *deviceHook) absent(cl *mqtt.Client) {
	h.mu.Lock()
	id, was := h.present[cl]
	delete(h.present, cl)
	h.mu.Unlock()
	if was && h.cfg.OnAbsent != nil {
		h.cfg.OnAbsent(id)
	}
}
