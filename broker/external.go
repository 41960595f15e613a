package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"devicehooks/secrets"
)

// ExternalConfig configures the connection to an external broker.
type ExternalConfig struct {
	URL      string // tcp://host:1883, ssl://host:8883, ws://host/mqtt
	Username string
	Password string
	ClientID string
	// OnConnect runs after every (re)connection, once subscriptions are renewed.
	OnConnect func()
	// OnSubscriptionsReset runs whenever what the subscriptions told (the
	// players' presence) is void: when an established connection drops, and
	// again after every (re)connection before the subscriptions are renewed
	// (and their retained messages replayed). paho runs its lost handler and
	// its first reconnect at once, and a late lost handler must not undo what
	// the new connection's replay said, so it is skipped once connected again.
	OnSubscriptionsReset func()
	Logger               *slog.Logger
}

// External is a paho client of an external broker (Mosquitto, or a clustered
// one). It reconnects by itself and renews its subscriptions on every connect,
// since a restarted broker has forgotten them.
type External struct {
	client paho.Client
	log    *slog.Logger
	url    string // redacted, for the log

	downSince  atomic.Int64 // unix nanoseconds since the connection has been down; 0 while up
	reconnects atomic.Int64 // reconnect attempts since it went down
	connected  atomic.Bool  // the first connection was made: paho reconnects from then on

	failMu     sync.Mutex
	lastFailed string // why the last reconnect failed, as logged

	mu   sync.Mutex
	subs map[string]paho.MessageHandler
	lost chan struct{} // closed when the current connection drops

	stop chan struct{}

	reminders reminders // watch's; a test's may be sooner
}

// publishAckTimeout bounds how long a publish may wait for the broker's PUBACK
// before it counts as failed (the command then stays queued and is sent again).
const publishAckTimeout = 30 * time.Second

// NewExternal prepares a client; Subscribe, then Start it.
func NewExternal(cfg ExternalConfig) *External {
	if cfg.ClientID == "" {
		cfg.ClientID = "devicehooks-" + secrets.RandomString(8)
	}
	x := &External{
		log: cfg.Logger, url: secrets.RedactURL(cfg.URL), subs: map[string]paho.MessageHandler{},
		lost: make(chan struct{}),
		stop: make(chan struct{}),

		reminders: defaultReminders,
	}
	opts := paho.NewClientOptions().
		AddBroker(cfg.URL).
		SetClientID(cfg.ClientID).
		SetUsername(cfg.Username).
		SetPassword(cfg.Password).
		// Durable delivery lives in our database, not in paho's store. paho's
		// memory store stays all the same: after a reconnect paho sends again
		// what was in flight (players dedupe by id and ignore what has
		// expired), and only those PUBACKs free the message ids; with a store
		// that keeps nothing, each publish in flight at a drop would hold its
		// id for good (auto-reconnect does not free them), until none is left.
		SetCleanSession(true).
		// The first connection is retried by Start, which logs why it fails;
		// after it, paho reconnects by itself (and watch says for how long).
		SetAutoReconnect(true).
		SetConnectRetry(false).
		SetMaxReconnectInterval(5 * time.Second).
		SetReconnectingHandler(func(paho.Client, *paho.ClientOptions) { x.reconnects.Add(1) }).
		SetConnectionNotificationHandler(func(_ paho.Client, n paho.ConnectionNotification) {
			if f, ok := n.(paho.ConnectionNotificationFailed); ok && x.connected.Load() {
				x.reconnectFailed(f.Reason)
			}
		}).
		SetConnectTimeout(5 * time.Second).
		SetKeepAlive(15 * time.Second).
		SetWriteTimeout(10 * time.Second).
		SetOrderMatters(true).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			x.log.Warn("mqtt broker connection lost; reconnecting", "broker", x.url, "err", err)
			x.down()
			x.connectionLost()
			if cfg.OnSubscriptionsReset != nil && !x.client.IsConnectionOpen() {
				cfg.OnSubscriptionsReset()
			}
		}).
		SetOnConnectHandler(func(c paho.Client) {
			x.log.Info("mqtt broker connected", "broker", x.url)
			x.connected.Store(true)
			x.downSince.Store(0)
			x.reconnects.Store(0)
			x.failMu.Lock()
			x.lastFailed = ""
			x.failMu.Unlock()
			if cfg.OnSubscriptionsReset != nil {
				cfg.OnSubscriptionsReset()
			}
			x.resubscribe()
			if cfg.OnConnect != nil {
				cfg.OnConnect()
			}
		})
	x.client = paho.NewClient(opts)
	return x
}

// Start begins connecting. It does not wait for the broker: devicehooks serves
// (and queues commands) while the broker is away, and retries until Close.
func (x *External) Start() {
	x.down()
	go x.connect()
	go x.watch()
}

// connect makes the first connection, logging why an attempt fails (a wrong
// URL, a broker that is not running, a refused login) whenever the reason
// changes, and retrying every few seconds.
func (x *External) connect() {
	wait, logged := time.Second, ""
	for {
		tok := x.client.Connect()
		select {
		case <-tok.Done():
		case <-x.stop:
		}
		select {
		case <-x.stop:
			// Close may have disconnected before this attempt began: end it
			// here, or it would connect after Close.
			tok.WaitTimeout(10 * time.Second)
			x.client.Disconnect(0)
			return
		default:
		}
		err := tok.Error()
		if err == nil {
			return
		}
		x.reconnects.Add(1) // counted as paho's are, for watch's reminder
		if msg := err.Error(); msg != logged {
			x.log.Error("mqtt broker: cannot connect; retrying", "broker", x.url, "err", err)
			logged = msg
		}
		select {
		case <-time.After(wait):
		case <-x.stop:
			return
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// reconnectFailed logs why paho's reconnect failed (a broker that now refuses
// the login, say), whenever the reason changes: connect does the same for the
// first connection.
func (x *External) reconnectFailed(err error) {
	if err == nil {
		return
	}
	x.failMu.Lock()
	changed := err.Error() != x.lastFailed
	x.lastFailed = err.Error()
	x.failMu.Unlock()
	if changed {
		x.log.Error("mqtt broker: cannot reconnect; retrying", "broker", x.url, "err", err)
	}
}

// down notes that the connection is down, from now unless it already was.
func (x *External) down() { x.downSince.CompareAndSwap(0, time.Now().UnixNano()) }

// reminders are when watch says the broker is still away: first so long
// into an outage, then every so often, looking at every tick.
type reminders struct{ first, every, tick time.Duration }

var defaultReminders = reminders{first: 30 * time.Second, every: time.Minute, tick: 10 * time.Second}

// watch logs, while the broker stays away, for how long it has been (paho's
// reconnect attempts say nothing), so that an outage is not silent in the log.
func (x *External) watch() {
	r := x.reminders
	t := time.NewTicker(r.tick)
	defer t.Stop()
	var last time.Time
	for {
		select {
		case <-t.C:
		case <-x.stop:
			return
		}
		since := x.downSince.Load()
		if since == 0 {
			last = time.Time{}
			continue
		}
		down := time.Since(time.Unix(0, since))
		// Half a tick's slack: the tick a minute after the last reminder
		// comes a hair under a minute after it (it was logged after its tick).
		if down >= r.first && time.Since(last) >= r.every-r.tick/2 {
			x.log.Warn("mqtt broker still unreachable; commands wait in the database until it is back",
				"broker", x.url, "down", down.Round(time.Second), "reconnect_attempts", x.reconnects.Load())
			last = time.Now()
		}
	}
}

// Publish sends at QoS 1 and calls done when the broker's PUBACK arrives, or with
// an error as soon as the connection drops (paho forgets in-flight publishes of a
// clean session then; the command stays queued and is sent again).
func (x *External) Publish(topic string, payload []byte, retained bool, done func(error)) {
	lost := x.lostSignal()
	tok := x.client.Publish(topic, 1, retained, payload)
	go func() {
		t := time.NewTimer(publishAckTimeout)
		defer t.Stop()
		select {
		case <-tok.Done():
			done(tok.Error())
		case <-lost:
			done(errors.New("broker: connection lost before the PUBACK"))
		case <-t.C:
			done(fmt.Errorf("broker: no PUBACK within %s", publishAckTimeout))
		case <-x.stop:
			done(errors.New("broker: client closed"))
		}
	}()
}

// lostSignal returns a channel closed when the current connection drops.
func (x *External) lostSignal() <-chan struct{} {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.lost
}

// connectionLost fails every publish waiting on the dropped connection.
func (x *External) connectionLost() {
	x.mu.Lock()
	close(x.lost)
	x.lost = make(chan struct{})
	x.mu.Unlock()
}

// Connected reports whether the connection is up now (paho's IsConnected stays
// true while it reconnects).
func (x *External) Connected() bool { return x.client.IsConnectionOpen() }

// Subscribe subscribes at QoS 1 now (if connected) and after every reconnect.
func (x *External) Subscribe(filter string, handler func(topic string, payload []byte, retained bool)) error {
	h := func(_ paho.Client, m paho.Message) { handler(m.Topic(), m.Payload(), m.Retained()) }
	x.mu.Lock()
	x.subs[filter] = h
	x.mu.Unlock()
	if x.client.IsConnectionOpen() {
		return x.subscribe(filter, h)
	}
	return nil
}

func (x *External) resubscribe() {
	x.mu.Lock()
	subs := make(map[string]paho.MessageHandler, len(x.subs))
	for f, h := range x.subs {
		subs[f] = h
	}
	x.mu.Unlock()
	for f, h := range subs {
		if err := x.subscribe(f, h); err != nil {
			x.log.Error("mqtt subscribe", "filter", f, "err", err)
		}
	}
}

func (x *External) subscribe(filter string, h paho.MessageHandler) error {
	tok := x.client.Subscribe(filter, 1, h)
	if !tok.WaitTimeout(10 * time.Second) {
		return fmt.Errorf("broker: subscribe %s: timed out", filter)
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("broker: subscribe %s: %w", filter, err)
	}
	return nil
}

// Close disconnects from the broker.
func (x *External) Close() error {
	select {
	case <-x.stop:
		return nil
	default:
	}
	close(x.stop)
	x.client.Disconnect(250)
	return nil
}
