package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
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
	// OnConnectionLost runs when an established connection drops, and again
	// after every (re)connection before the subscriptions are renewed (and
	// their retained messages replayed): paho runs its lost handler and its
	// first reconnect at once, and a late lost handler must not undo what the
	// new connection's replay said, so it is skipped once connected again.
	OnConnectionLost func()
	Logger           *slog.Logger
}

// External is a paho client of an external broker (Mosquitto, or a clustered
// one). It reconnects by itself and renews its subscriptions on every connect,
// since a restarted broker has forgotten them.
type External struct {
	client paho.Client
	log    *slog.Logger

	mu   sync.Mutex
	subs map[string]paho.MessageHandler
	lost chan struct{} // closed when the current connection drops

	stop chan struct{}
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
		log: cfg.Logger, subs: map[string]paho.MessageHandler{},
		lost: make(chan struct{}),
		stop: make(chan struct{}),
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
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(5 * time.Second).
		SetConnectTimeout(5 * time.Second).
		SetKeepAlive(15 * time.Second).
		SetWriteTimeout(10 * time.Second).
		SetOrderMatters(true).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			x.log.Warn("mqtt broker connection lost; reconnecting", "broker", secrets.RedactURL(cfg.URL), "err", err)
			x.connectionLost()
			if cfg.OnConnectionLost != nil && !x.client.IsConnectionOpen() {
				cfg.OnConnectionLost()
			}
		}).
		SetOnConnectHandler(func(c paho.Client) {
			x.log.Info("mqtt broker connected", "broker", secrets.RedactURL(cfg.URL))
			if cfg.OnConnectionLost != nil {
				cfg.OnConnectionLost()
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
// (and queues commands) while the broker is away, and paho retries until Close.
func (x *External) Start() {
	x.client.Connect()
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
